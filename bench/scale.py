"""Lists at scale: inbox, team and overdue views and case search among N open cases on PostgreSQL.

Builds --cases open cases (default 1,000,000) of tests/fixtures/pathways/review.bpmn in a council: one case
is started through the service (its task, task role and pending timers written by the service), the rest
are bulk-loaded copies of its rows with COPY through psycopg (fresh task and timer ids, due dates spread,
the encrypted columns -- case data and engine state -- copied as they are, ciphertext). Of the open tasks:

- a quarter wait, unassigned, for ``social_worker`` (the role inbox: tens of thousands and more);
- the rest are with ``family_support`` workers, about 26 each (the inbox of a user with few tasks);
- a fifth are overdue.

Twenty more cases are started through the service with a child each (distinct names), for search by name.
Then a fresh service process, connected as an unprivileged role (row-level security on, as in production),
answers each list through the REST API (Flask's test client: no HTTP server, so the figures are the
service's and the database's) --repeat times after three warm-up calls, and the script prints the median
and p95 of each, the SQL statements each ran, and the process RSS before and after.

    .venv/bin/python bench/scale.py [--cases 1000000] [--repeat 50] [--database-url URL]
    DATA_ENCRYPTION_KEYS=... .venv/bin/python bench/scale.py --build-only --database-url URL   # then, quiet:
    DATA_ENCRYPTION_KEYS=... .venv/bin/python bench/scale.py --measure-only --database-url URL

Without --database-url it starts a throwaway PostgreSQL of its own (initdb + pg_ctl, as tests/conftest.py
does) and removes it afterwards; --database-url takes an empty database whose owner may create roles.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from throwaway_postgres import start_postgres, stop_postgres  # noqa: E402 (bench/ is the script's folder)
KEY_GIVEN = bool(os.environ.get("DATA_ENCRYPTION_KEYS"))  # a database built to measure later needs its key kept
if not os.environ.get("DATA_ENCRYPTION_KEYS"):  # a throwaway key for a throwaway database (the measuring child too)
    from cryptography.fernet import Fernet

    os.environ["DATA_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()

PATHWAY = ROOT / "tests" / "fixtures" / "pathways"
PROCESS = "test_review"
NOW = datetime.now(timezone.utc).replace(microsecond=0)  # "overdue" is against the service's clock: now
CHUNK = 50_000
PER_WORKER = 26
APP_ROLE = "bench_app"
CHILDREN = [("Zebedee", "Quinlan"), ("Ottilie", "Marchbanks"), ("Barnaby", "Featherstone"), ("Isolde", "Pennywhistle"),
            ("Caspian", "Wolstenholme"), ("Philippa", "Ravenscroft"), ("Ambrose", "Thistlewood"),
            ("Henrietta", "Blackadder"), ("Leopold", "Cattermole"), ("Wilhelmina", "Drinkwater"),
            ("Percival", "Ollerenshaw"), ("Clementine", "Higginbottom"), ("Montgomery", "Fotheringham"),
            ("Araminta", "Winterbottom"), ("Bartholomew", "Greengrass"), ("Seraphina", "Honeysett"),
            ("Cornelius", "Applethwaite"), ("Rosamund", "Sidebottom"), ("Evander", "Tattersall"),
            ("Marigold", "Butterworth")]


# -- a throwaway PostgreSQL ------------------------------------------------------------------------

# -- building -------------------------------------------------------------------------------------

def _copy(cursor, table: str, columns: list[str], rows) -> None:
    """COPY rows (tuples of str/None) into table, in text format."""
    def field(value) -> str:
        if value is None:
            return "\\N"
        return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for n, row in enumerate(rows, 1):
            buffer.write("\t".join(field(v) for v in row))
            buffer.write("\n")
            if n % 10_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def build(url: str, total: int) -> dict:
    import psycopg
    from flask_migrate import upgrade
    from sqlalchemy import select, text

    from service import cases, councils, create_app, deployments, tenancy
    from service.auth import save_user
    from service.engine import clock
    from service.models import OpenTask, PendingTimer, db, reference_suffixes

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    workers = max(1, (total * 3 // 4) // PER_WORKER)
    with app.app_context():
        upgrade()
        council, _ = councils.create_council(db.session, "bench", "Bench Council")
        tenancy.act_for(db.session, council)
        files = {p.name: p.read_bytes() for p in sorted(PATHWAY.iterdir()) if p.is_file()}
        deployments.deploy(db.session, files, "bench")
        save_user(db.session, "bench-front", ["front_door", "social_worker"], council=council, token="token-front")
        save_user(db.session, "bench-role", ["social_worker"], council=council, token="token-role")
        save_user(db.session, "bench-manager", ["team_manager"], council=council, token="token-manager")
        db.session.commit()
        starter = tenancy_actor(db.session, "bench-front", council.id)
        with clock.clock_at(NOW - timedelta(days=3)):
            template = cases.start_case(db.session, PROCESS, "BENCH-0", {"needs": 3}, starter)
            for given, family in CHILDREN:
                cases.start_case(db.session, PROCESS, f"CHILD-{family.upper()}", {"needs": 3}, starter,
                                 child={"given_name": given, "family_name": family, "date_of_birth": "2015-04-01"})
        db.session.commit()
        [task] = db.session.scalars(select(OpenTask).where(OpenTask.case_id == template.id)).all()
        timers = db.session.scalars(select(PendingTimer).where(PendingTimer.case_id == template.id)).all()
        council_id, version_id, first_id = council.id, template.process_version_id, template.id
        db.session.execute(text("SELECT set_config('app.all_councils', 'on', false)"))
        raw = {r[0]: r[1:] for r in db.session.execute(text(
            "SELECT 'case', data::text, state::text, state_format, waiting_for::text, waiting_signals::text "
            "FROM cases WHERE id = :id"),
            {"id": template.id})}
        timer_props = {t.id: json.dumps(t.properties or {}) for t in timers}
        timer_rows = [(t.name, t.title, t.attached_task_id == task.id, timer_props[t.id], t.due_at - NOW) for t in timers]
        task_name, task_title, task_lane, role = task.name, task.title, task.lane, task.roles[0]
        starter_id = db.session.scalar(text("SELECT id FROM users WHERE name = 'bench-front'"))
        db.session.commit()
    data, state, state_format, waiting_for, waiting_signals = raw["case"]

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    rng = random.Random(16)
    with psycopg.connect(plain, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("SELECT set_config('app.all_councils', 'on', false)")
        cur.execute("SELECT coalesce(max(id), 0) FROM users")
        first_user = cur.fetchone()[0] + 1
        _copy(cur, "users", ["id", "name", "session_version", "is_operator", "created_at"],
              ((first_user + w, f"fs-{w}", 1, "f", NOW.isoformat()) for w in range(workers)))
        _copy(cur, "memberships", ["user_id", "council_id", "role"],
              ((first_user + w, council_id, "family_support") for w in range(workers)))
        cur.execute(f"SELECT setval(pg_get_serial_sequence('users', 'id'), {first_user + workers})")
        cur.execute("SELECT coalesce(max(id), 0) FROM cases")
        next_case = cur.fetchone()[0] + 1
        rebuild = _set_indexes_aside(cur)
        conn.commit()
        for chunk_start in range(1, total, CHUNK):
            count = min(CHUNK, total - chunk_start)
            ids = range(next_case, next_case + count)
            next_case += count
            case_rows, task_rows, role_rows, timer_rows_out, suffix_rows = [], [], [], [], []
            for case_id in ids:
                n = case_id - first_id
                updated = NOW - timedelta(minutes=rng.randrange(0, 60 * 24 * 365))
                created = updated - timedelta(days=1)
                due = NOW + timedelta(hours=rng.randrange(-24 * 20, 24 * 80))  # a fifth overdue
                task_id = str(uuid.uuid4())
                assignee = None if n % 4 == 0 else first_user + rng.randrange(workers)
                case_rows.append((case_id, council_id, version_id, f"BENCH-{n}", "active", data, state, state_format,
                                  starter_id, created.isoformat(), updated.isoformat(), (NOW + timedelta(days=1)).isoformat(),
                                  waiting_for, waiting_signals, 0, 1))
                suffix_rows.extend((council_id, case_id, "\\x" + suffix.hex())
                                   for suffix in reference_suffixes(f"BENCH-{n}"))
                task_rows.append((task_id, council_id, case_id, task_name, task_title, task_lane, assignee,
                                  due.isoformat(), created.isoformat()))
                role_rows.append((task_id, role, council_id))
                for name, title, attached, props, offset in timer_rows:
                    timer_rows_out.append((str(uuid.uuid4()), council_id, case_id, name, title,
                                           (created + offset + timedelta(days=3)).isoformat(),
                                           task_id if attached else None, props))
            _copy(cur, "cases", ["id", "council_id", "process_version_id", "reference", "status", "data", "state",
                                 "state_format", "started_by_id", "created_at", "updated_at", "next_timer_at",
                                 "waiting_for", "waiting_signals", "timer_failures", "lock_version"], case_rows)
            _copy(cur, "reference_suffixes", ["council_id", "case_id", "suffix"], suffix_rows)
            _copy(cur, "tasks", ["id", "council_id", "case_id", "name", "title", "lane", "assignee_id", "due_at",
                                 "created_at"], task_rows)
            _copy(cur, "task_roles", ["task_id", "role", "council_id"], role_rows)
            _copy(cur, "pending_timers", ["id", "council_id", "case_id", "name", "title", "due_at", "attached_task_id",
                                          "properties"], timer_rows_out)
            conn.commit()
            print(f"  {next_case - first_id:,} cases loaded, {time.perf_counter() - started:.0f} s", file=sys.stderr)
        cur.execute(f"SELECT setval(pg_get_serial_sequence('cases', 'id'), {next_case})")
        conn.commit()
        load_seconds = time.perf_counter() - started
        indexed = time.perf_counter()
        _put_indexes_back(conn, cur, rebuild)
        index_seconds = time.perf_counter() - indexed
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
        cur.execute(f"""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN CREATE ROLE {APP_ROLE} LOGIN; END IF;
            END $$;
            GRANT USAGE ON SCHEMA public TO {APP_ROLE};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};""")
        cur.execute("SELECT count(*) FROM tasks WHERE closed_at IS NULL AND assignee_id IS NULL")
        pool = cur.fetchone()[0]
        cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cur.fetchone()[0]
    with app.app_context():
        save_user(db.session, "fs-0", ["family_support"], council=tenancy.council_by_key(db.session, "bench"),
                  token="token-few")
        db.session.commit()
    return {"cases": total, "workers": workers, "pool": pool, "load_seconds": load_seconds, "size": size,
            "index_seconds": index_seconds, "build_seconds": time.perf_counter() - started}


#: The tables the build fills by the million: their secondary indexes and foreign keys are set aside while it
#: loads and put back after, as a bulk load should (one sorted index build instead of a million insertions each).
BULK_TABLES = ("cases", "reference_suffixes", "tasks", "task_roles", "pending_timers")


def _set_indexes_aside(cur) -> list[str]:
    """Drop the bulk tables' secondary indexes and foreign keys; return the statements that make them again."""
    tables = list(BULK_TABLES)
    cur.execute("""SELECT i.indexdef, format('DROP INDEX %%I', i.indexname) FROM pg_indexes i
                   WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""", (tables,))
    indexes = cur.fetchall()
    cur.execute("""SELECT format('ALTER TABLE %%I ADD CONSTRAINT %%I %%s', c.conrelid::regclass, c.conname,
                                 pg_get_constraintdef(c.oid)),
                          format('ALTER TABLE %%I DROP CONSTRAINT %%I', c.conrelid::regclass, c.conname)
                   FROM pg_constraint c
                   WHERE c.contype = 'f' AND (c.conrelid::regclass::text = ANY(%s)
                                              OR c.confrelid::regclass::text = ANY(%s))""", (tables, tables))
    keys = cur.fetchall()
    for _make, drop in keys + indexes:
        cur.execute(drop)
    return [make for make, _drop in indexes + keys]


def _put_indexes_back(conn, cur, statements: list[str]) -> None:
    conn.autocommit = True
    cur.execute("SET maintenance_work_mem = '512MB'")
    for statement in statements:
        cur.execute(statement)
    conn.autocommit = False


def tenancy_actor(session, name: str, council_id: int):
    from sqlalchemy import select

    from service.auth import roles_in
    from service.models import Council, User
    from service.policy import Actor

    user = session.scalars(select(User).where(User.name == name)).one()
    council = session.get(Council, council_id)
    return Actor(user.name, roles_in(session, user, council), user.id, council.id)


# -- measuring ------------------------------------------------------------------------------------

def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _p95(values: list[float]) -> float:
    return values[min(len(values) - 1, max(0, int(round(0.95 * len(values))) - 1))]


def measure(url: str, repeat: int) -> dict:
    """In a fresh process, as the unprivileged role: each list, --repeat times after three warm-ups."""
    from sqlalchemy import event

    from service import create_app
    from service.models import db

    app_url = url.replace("://postgres@", f"://{APP_ROLE}@")
    app = create_app({"SQLALCHEMY_DATABASE_URI": app_url, "TIMERS_ENABLED": False, "API_TOKEN_DAYS": 3650})
    client = app.test_client()
    with app.app_context():
        engine = db.engine
    statements, in_sql, began = [0], [0.0], [0.0]

    def count(*_args):
        statements[0] += 1
        began[0] = time.perf_counter()

    def counted(*_args):
        in_sql[0] += time.perf_counter() - began[0]

    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "after_cursor_execute", counted)
    lists = [
        ("inbox, a user with few tasks (26 assigned)", "few", "/api/v1/tasks"),
        ("inbox, a role with every unassigned task", "role", "/api/v1/tasks"),
        ("inbox, the role's next page (cursor)", "role", None),
        ("team overdue view (manager)", "manager", "/api/v1/tasks?overdue=true"),
        ("case search by a child's name", "front", "/api/v1/cases?q=Pennywhistle"),
        ("case search by reference (part of)", "front", "/api/v1/cases?reference=BENCH-4242"),
        ("case search, q= a reference", "front", "/api/v1/cases?q=BENCH-77777"),
        ("case list, first page", "front", "/api/v1/cases"),
        ("my cases (manager: none)", "manager", "/api/v1/cases?mine=true"),
        ("notifications", "few", "/api/v1/notifications"),
    ]
    rss_before = _rss_mib()
    results = []
    for label, who, path in lists:
        headers = {"Authorization": f"Bearer token-{who}"}
        if path is None:  # the page after the first, by the cursor the first page's last task gives
            from service import paging
            from service.models import OpenTask

            first = client.get("/api/v1/tasks", headers=headers).json
            with app.app_context():
                from service import tenancy
                with tenancy.all_councils(db.session):
                    last = db.session.get(OpenTask, first[-1]["id"])
                    path = f"/api/v1/tasks?after={paging.task_cursor(last)}"
        times, cpu, sql, shown = [], [], [], None
        for n in range(3 + repeat):
            statements[0], in_sql[0] = 0, 0.0
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get(path, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
            if n >= 3:
                times.append(elapsed)
                cpu.append((time.process_time() - cpu_started) * 1000)
                sql.append(in_sql[0] * 1000)
            body = response.json
            shown = len(body) if isinstance(body, list) else len(body.get("cases", [])) if isinstance(body, dict) else None
            total = body.get("total") if isinstance(body, dict) else None
        times.sort()
        cpu.sort()
        sql.sort()
        results.append({"label": label, "path": path, "median_ms": statistics.median(times),
                        "p95_ms": _p95(times), "cpu_median_ms": statistics.median(cpu), "cpu_p95_ms": _p95(cpu),
                        "sql_median_ms": statistics.median(sql), "sql_p95_ms": _p95(sql),
                        "statements": statements[0], "shown": shown, "total": total})
    return {"results": results, "rss_before_mib": rss_before, "rss_after_mib": _rss_mib(),
            "peak_rss_mib": _peak_mib()}


def _peak_mib() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would carry over the builder's across the exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _print_built(built: dict) -> None:
    print(f"PostgreSQL, {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"built {built['cases']:,} open cases ({built['pool']:,} tasks unassigned for the role, "
          f"{built['workers']:,} workers with ~{PER_WORKER} each) by COPY in {built['load_seconds']:.0f} s, "
          f"indexes and keys made again in {built['index_seconds']:.0f} s, {built['build_seconds']:.0f} s "
          f"with VACUUM ANALYZE; database {built['size']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--database-url")
    parser.add_argument("--measure-only", action="store_true",
                        help="measure a database built before (--database-url; DATA_ENCRYPTION_KEYS as it was built)")
    parser.add_argument("--build-only", action="store_true",
                        help="build into --database-url and stop: measure it later, on a quiet machine, with "
                             "--measure-only (keep DATA_ENCRYPTION_KEYS)")
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args.database_url, args.repeat)))
        return
    if args.build_only:
        if not args.database_url or not KEY_GIVEN:
            parser.error("--build-only needs --database-url and your own DATA_ENCRYPTION_KEYS, to measure it later")
        _print_built(build(args.database_url, args.cases))
        return
    base = Path(tempfile.mkdtemp(prefix="bench-scale-pg-"))
    url = args.database_url or start_postgres(base, "fsync=off", "synchronous_commit=off", "shared_buffers=256MB",
                                                         "maintenance_work_mem=256MB", "max_wal_size=4GB")
    try:
        _print_built(build(url, args.cases))
        out = subprocess.run([sys.executable, __file__, "--measure-only", "--database-url", url,
                              "--repeat", str(args.repeat)], check=True, capture_output=True, text=True).stdout
        measured = json.loads(out.strip().splitlines()[-1])
        print("wall: the request's elapsed time; CPU: the service process's CPU time in it; in SQL: elapsed time "
              "inside the database calls (median / p95, ms)")
        print(f"{'list':46} {'wall':>13} {'CPU':>13} {'in SQL':>13} {'SQL':>4} {'shown':>6} {'total':>7}")
        for r in measured["results"]:
            print(f"{r['label']:46} {r['median_ms']:6.1f}/{r['p95_ms']:6.1f} {r['cpu_median_ms']:6.1f}/"
                  f"{r['cpu_p95_ms']:6.1f} {r['sql_median_ms']:6.1f}/{r['sql_p95_ms']:6.1f} {r['statements']:4} "
                  f"{r['shown'] if r['shown'] is not None else '':>6} {r['total'] if r['total'] is not None else '':>7}")
        print(f"service process RSS {measured['rss_before_mib']:.0f} MiB before the lists, "
              f"{measured['rss_after_mib']:.0f} MiB after (peak {measured['peak_rss_mib']:.0f} MiB)")
    finally:
        if not args.database_url:
            stop_postgres(base)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
