"""The council's children and families at a council's size: ``GET /people`` and ``GET /families``, with and without
a search, through the REST API (Flask's test client).

Builds ``--people`` families of one child each in one council (a council has about as many children as cases),
written in batches with the service's own column types (names, dates of birth and the family's name encrypted as
the service encrypts them) and each child's blind index (``service.families``' digests under the council's key).
Names are drawn from 200 given names and 500 family names, so a family name is shared by about 1 child in 500.

Then each list, ``--repeat`` times after two warm-ups: the median and p95 of wall time; then once more under
``tracemalloc``, for the most memory the request held at once (Python's allocations). A search that more than
``families.SEARCH_LIMIT`` children match is refused (422), and timed as such.

    .venv/bin/python bench/children.py [--people 100000] [--repeat 20] [--database-url URL]

The names and the blind index are keyed by ``DATA_ENCRYPTION_KEYS``; without it each process makes a key of its own,
so set it to search a database it built from another process (another tree, a throwaway script).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tracemalloc
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import task_completion  # noqa: E402  (its setup: one council, the bench user, the fixtures deployed)

from sqlalchemy import insert, select, text  # noqa: E402

from service import families, tenancy  # noqa: E402
from service.engine import clock  # noqa: E402
from service.models import Council, Family, Person, SearchToken, db  # noqa: E402

GIVEN = [f"{stem}{suffix}" for stem in ("Amel", "Ben", "Cor", "Dar", "Evan", "Flor", "Gab", "Hal", "Isol", "Jas")
         for suffix in ("ia", "o", "an", "ette", "ie", "us", "ine", "el", "a", "ey", "ard", "win", "ora", "ias",
                        "ton", "is", "ena", "ick", "ow", "eth")]
FAMILY = [f"{stem}{suffix}" for stem in ("Price", "Apple", "Butter", "Tatter", "Side", "Penny", "Thistle", "Marl",
                                        "Ash", "Bram", "Crock", "Dun", "Fair", "Gold", "Hart", "Ivy", "Kings",
                                        "Lark", "Moss", "North", "Oak", "Pike", "Quill", "Rook", "Stone")
          for suffix in ("", "thwaite", "worth", "sall", "bottom", "whistle", "ford", "by", "ley", "ton", "wood",
                         "field", "more", "well", "shaw", "croft", "dale", "gate", "holm", "ridge")]
BATCH = 5_000


def build(app, council_id: int, count: int) -> float:
    """``count`` families of one child each, with each child's blind index: seconds taken."""
    began = time.perf_counter()
    rng = random.Random(16)
    with app.app_context():
        council = db.session.get(Council, council_id)
        tenancy.act_for(db.session, council)
        key = families._council_keys(council_id)[0]
        connection = db.session.connection()
        next_family = (connection.execute(text("SELECT max(id) FROM families")).scalar() or 0) + 1
        next_person = (connection.execute(text("SELECT max(id) FROM people")).scalar() or 0) + 1
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            family_rows, person_rows, token_rows = [], [], []
            for n in range(size):
                given, surname = rng.choice(GIVEN), rng.choice(FAMILY)
                born = f"20{rng.randrange(8, 24):02d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
                family_id, person_id = next_family + start + n, next_person + start + n
                now = clock.now()
                family_rows.append({"id": family_id, "council_id": council_id, "name": f"{surname} family",
                                    "created_at": now, "created_by": "bench"})
                person = Person(id=person_id, council_id=council_id, family_id=family_id, given_name=given,
                                family_name=surname, date_of_birth=born, created_at=now, created_by="bench")
                person_rows.append({column: getattr(person, column) for column in
                                    ("id", "council_id", "family_id", "given_name", "family_name", "date_of_birth",
                                     "created_at", "created_by")})
                token_rows += [{"council_id": council_id, "person_id": person_id, "kind": kind,
                                "digest": families._digest(key, kind, value)}
                               for kind, value in sorted(families._values(person))]
            connection.execute(insert(Family.__table__), family_rows)
            connection.execute(insert(Person.__table__), person_rows)
            connection.execute(insert(SearchToken.__table__), token_rows)
        if connection.dialect.name == "postgresql":
            for table in ("families", "people"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
        db.session.commit()
        if connection.dialect.name == "postgresql":
            with db.engine.connect() as own:
                own.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        db.session.remove()
    return time.perf_counter() - began


def common_surname(app, council_id: int) -> str:
    """The family name the most children share (the widest search by name)."""
    with app.app_context():
        tenancy.act_for(db.session, db.session.get(Council, council_id))
        people = db.session.execute(select(Person.family_name).limit(2000)).scalars().all()
        db.session.remove()
    return max(set(people), key=people.count)


def measure(client, headers: dict, path: str, repeat: int) -> tuple[float, float, float, int, str]:
    """Median and p95 wall ms of ``path``, the most memory (MiB) one request of it held, its rows and total (or
    "refused": a search that more than ``families.SEARCH_LIMIT`` children match is answered 422)."""
    for _ in range(2):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200 or answer.status_code == 422 and "q" in answer.json["errors"], (
            path, answer.json)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append((time.perf_counter() - began) * 1000)
    tracemalloc.start()
    client.get(path, headers=headers)
    held = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    body = answer.json
    rows = len(body.get("people", body.get("families", body.get("cases", []))))
    total = f"{body['total']:,}" if answer.status_code == 200 else "refused (422)"
    return statistics.median(times), sorted(times)[max(0, int(len(times) * 0.95) - 1)], held, rows, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-children-')) / 'bench.db'}"
    app, council_id, _, _ = task_completion.setup(url, 1)
    seconds = build(app, council_id, args.people)
    surname = common_surname(app, council_id)
    print(f"database: {url.split(':', 1)[0]}; {args.people:,} children in as many families, built in {seconds:.0f} s; "
          f"the commonest family name: {surname}")
    client, headers = app.test_client(), {"Authorization": "Bearer bench-token"}
    print("| list | median ms | p95 ms | memory held by one request (MiB) | rows | total |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, path in (("every child, first page", "/api/v1/people"),
                        ("every child, page 100", "/api/v1/people?page=100"),
                        ("every family, first page", "/api/v1/families"),
                        ("every family, page 100", "/api/v1/families?page=100"),
                        (f"children named {surname}", f"/api/v1/people?q={surname}"),
                        (f"families with a child named {surname}", f"/api/v1/families?q={surname}"),
                        (f"children with {surname[:5]} in a name", f"/api/v1/people?q={surname[:5]}"),
                        ("children with a name starting with a", "/api/v1/people?q=a"),
                        ("cases of a child with a name starting with a", "/api/v1/cases?q=a")):
        median, p95, held, rows, total = measure(client, headers, path, args.repeat)
        print(f"| {label} | {median:.1f} | {p95:.1f} | {held:.1f} | {rows} | {total} |")


if __name__ == "__main__":
    main()
