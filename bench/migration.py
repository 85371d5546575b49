"""Moving running cases to another version, a page at a time against every case in one request.

Starts ``--cases`` cases of the approval diagram (tests/fixtures/pathways/review.bpmn), half of them past the
assessment (waiting on ``Task_Approve``), then deploys a second version in which ``Task_Approve`` is renamed
``Task_SignOff``, and times through the REST API (Flask's test client):

- the check of the first page (``GET /api/v1/versions/<id>/migration?to=``) and the move of every case page by
  page (``POST`` with the mapping and ``after``), ``case_migration.MIGRATION_PAGE`` cases a request;
- the same check with the whole version in one request, as before the pages (``MIGRATION_PAGE`` set past the
  number of cases).

Each prints the wall time of a request and how much this process's peak memory (``ru_maxrss``) grew in it. The
one-request check runs last, so that its growth is not hidden by an earlier peak.

    .venv/bin/python bench/migration.py [--cases 2000] [--database-url URL]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import task_completion  # noqa: E402  (its setup: one council, the bench user, the fixtures deployed)

from service import case_migration, deployments  # noqa: E402
from service.auth import save_user  # noqa: E402
from service.cases import Actor, complete_task, start_case  # noqa: E402
from service.models import db  # noqa: E402

ROOT = task_completion.ROOT
FIXTURES = ROOT / "tests/fixtures/pathways"
MAPPING = {"Task_Approve": "Task_SignOff"}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(app, council_id: int, count: int) -> tuple[int, int]:
    """``count`` cases of version 1 (every other one past the assessment), then version 2: their ids."""
    actor = Actor("bench", tuple(task_completion.ROLES), council_id=council_id)
    with app.app_context():
        from service import tenancy
        from service.models import Council
        council = db.session.get(Council, council_id)
        tenancy.act_for(db.session, council)
        save_user(db.session, "bench-analyst", ["analyst"], council=council, token="bench-analyst-token")
        for i in range(count):
            case = start_case(db.session, "test_review", f"MIGRATE-{i}", {"needs": 3}, actor)
            if i % 2:
                complete_task(db.session, case.tasks[0].id, {"risk": True, "summary": "Seen"}, actor)
            if i % 200 == 199:
                db.session.commit()
        db.session.commit()
        old = deployments.get_process(db.session, "test_review").id
        review = (FIXTURES / "review.bpmn").read_text().replace("Task_Approve", "Task_SignOff")
        deployments.deploy(db.session, {"review.bpmn": review.encode(),
                                        "test_level.dmn": (FIXTURES / "test_level.dmn").read_bytes()}, "bench")
        db.session.commit()
        new = deployments.get_process(db.session, "test_review").id
        db.session.remove()
    return old, new


def timed(action) -> tuple[float, float, object]:
    before, started = peak_mib(), time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, peak_mib() - before, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-migration-')) / 'bench.db'}"
    app, council_id, _, _ = task_completion.setup(url, 1)
    old, new = build(app, council_id, args.cases)
    client, headers = app.test_client(), {"Authorization": "Bearer bench-analyst-token"}
    print(f"database: {url.split(':', 1)[0]}; {args.cases:,} active cases of version 1; "
          f"{case_migration.MIGRATION_PAGE} a page")

    def check(source: int, target: int, mapping: dict[str, str]):
        query = f"to={target}" + "".join(f"&map={k}:{v}" for k, v in mapping.items())
        response = client.get(f"/api/v1/versions/{source}/migration?{query}", headers=headers)
        assert response.status_code == 200, response.json
        return response.json

    wall, grew, first = timed(lambda: check(old, new, MAPPING))
    print(f"  check, the first page: {wall:.0f} ms, {len(first['cases'])} cases, peak memory +{grew:.1f} MiB")
    moves, after, moved = [], None, 0
    while True:
        body = {"to": new, "mapping": MAPPING, "dry_run": False, **({"after": after} if after else {})}
        wall, _, answer = timed(lambda: client.post(f"/api/v1/versions/{old}/migration", json=body,
                                                    headers=headers).json)
        moves.append(wall)
        moved += sum(1 for row in answer["cases"] if row["status"] == "moved")
        after = answer["next"]
        if after is None:
            break
    print(f"  move, page by page: {len(moves)} requests, {moved:,} cases moved, median {statistics.median(moves):.0f} "
          f"ms a request, max {max(moves):.0f} ms")
    case_migration.MIGRATION_PAGE = 10 ** 9  # the same cases, checked back in one request, as before the pages
    wall, grew, whole = timed(lambda: check(new, old, {v: k for k, v in MAPPING.items()}))
    print(f"  check, every case in one request (as before the pages): {wall:.0f} ms, {len(whole['cases']):,} cases, "
          f"peak memory +{grew:.1f} MiB")


if __name__ == "__main__":
    main()
