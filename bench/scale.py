"""The benchmark suite at a country's scale: N open cases on PostgreSQL (default 1,000,000), then one run that
measures lists, completions and starts, timers, memory and state bytes among them.

Builds --cases open cases of tests/fixtures/pathways/review.bpmn in a council: one case
is started through the service (its task, task role and pending timers written by the service), the rest
are bulk-loaded copies of its rows with COPY through psycopg (fresh task and timer ids, due dates spread,
the encrypted columns -- case data and engine state -- copied as they are, ciphertext). Of the open tasks:

- a quarter wait, unassigned, for ``social_worker`` (the role inbox: tens of thousands and more);
- the rest are with ``family_support`` workers, about 26 each (the inbox of a user with few tasks);
- a fifth are overdue.

Twenty more cases are started through the service with a child each (distinct names), for search by name.

The measuring run (``--measure-only``, or after the build) first migrates the database to the code's head, then,
in a fresh service process connected as an unprivileged role (row-level security on, as in production), through
the REST API (Flask's test client: no HTTP server, so the figures are the service's and the database's):

1. each list --repeat times after three warm-up calls: median and p95 of wall time, the process's CPU time and
   the time inside SQL, and the statements each ran; so too a signal and two keyed messages for whoever waits
   for them (the council's admin sends them; no case takes them);
2. --pairs completions of the approval task and --pairs case starts, each after a bare engine's that persists on
   the same database (bench/task_completion.py), with the ratios;
3. the service process's RSS before and after, and its peak;
4. the stored bytes of each case's state and data (every case, and those started through the API in this run);
5. timers: --due of the built cases' reminders falling due over --window seconds, a few seconds after
   --processes live timer processes are ready (bench/timers.py's ``live``): fires per second, latency after
   due (p50, p95, max, share within 1 s), exactly once, CPU per fire and each process's peak RSS;

and ends with the figures as one markdown table.

    .venv/bin/python bench/scale.py [--cases 1000000] [--repeat 50] [--pairs 100] [--due 10000] [--window 10]
                                    [--processes 2] [--database-url URL]
    DATA_ENCRYPTION_KEYS=... .venv/bin/python bench/scale.py --build-only --database-url URL   # then, quiet:
    DATA_ENCRYPTION_KEYS=... .venv/bin/python bench/scale.py --measure-only --database-url URL

Without --database-url it starts a throwaway PostgreSQL of its own (initdb + pg_ctl, as tests/conftest.py
does) and removes it afterwards; --database-url takes an empty database whose owner may create roles.
The measuring run writes to the database (its cases, the bare engine's, the fired timers; the pending timers
the build left overdue are moved a year on): measure a copy if the built one must stay as built.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
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

from figures import load_average, p95, peak_rss_mib, rss_mib  # noqa: E402 (bench/ is the script's folder)
from throwaway_postgres import start_postgres, stop_postgres  # noqa: E402
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
BULK_TABLES = ("cases", "reference_suffixes", "case_waits", "tasks", "task_roles", "pending_timers")


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

def migrate(url: str) -> None:
    """Bring a database built before to the code's head (a migration may have added or dropped an index since),
    and let the service's role use what the migrations made. Run in a process of its own (``--migrate-only``),
    so that the measured service process's memory is its own."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from service import create_app
    from service.models import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context():
        upgrade()
        with db.engine.begin() as connection:
            connection.execute(text(f"""
                GRANT USAGE ON SCHEMA public TO {APP_ROLE};
                GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};"""))


def service_app(url: str):
    """The service as production runs it: connected as the unprivileged role (row-level security on)."""
    from service import create_app, settle_process

    app_url = url.replace("://postgres@", f"://{APP_ROLE}@")
    app = create_app({"SQLALCHEMY_DATABASE_URI": app_url, "TIMERS_ENABLED": False, "API_TOKEN_DAYS": 3650})
    settle_process()  # as service.wsgi does
    return app, app.test_client()


LISTS = [
    ("inbox, a user with few tasks (26 assigned)", "few", "/api/v1/tasks"),
    ("inbox, a role with every unassigned task", "role", "/api/v1/tasks"),
    ("inbox, the role's next page (cursor)", "role", None),
    ("team overdue view (manager)", "manager", "/api/v1/tasks?overdue=true"),
    ("case search by a child's name", "front", "/api/v1/cases?q=Pennywhistle"),
    ("case search by reference (part of)", "front", "/api/v1/cases?reference=BENCH-4242"),
    ("case search, q= a reference", "front", "/api/v1/cases?q=BENCH-77777"),
    ("case list, first page", "front", "/api/v1/cases"),
    ("my cases (manager: none)", "manager", "/api/v1/cases?mine=true"),
    ("a case's answers (and the cases it handed over to)", "front", "/api/v1/cases/{case}/answers"),
    ("notifications", "few", "/api/v1/notifications"),
    ("the workload, first page (a manager of every pathway)", "manager", "/api/v1/workload"),
    ("a worker's whole pile (the workload's first worker)", "manager", "/api/v1/workload/workers/{worker}"),
    ("the tasks waiting for a role (250,020 nobody has taken)", "manager", "/api/v1/workload/waiting?role=social_worker"),
    # The cases waiting for a signal or message, found (none here) without reading every case: a body is a POST.
    ("a signal no case waits for (POST /signals)", "admin", "/api/v1/signals",
     {"name": "no_case_waits_for_this", "reference": "BENCH-SIGNAL"}),
    ("a keyed message no case waits for (POST /messages)", "admin", "/api/v1/messages",
     {"name": "school_report", "correlation_key": "NOBODY"}),
    ("a keyed message every case waits for without a key (immediate risk)", "admin", "/api/v1/messages",
     {"name": "immediate_risk", "correlation_key": "NOBODY"}),
    # Compared by each case's data (Camunda 7): refused (422) past 10,000 waiting cases, before any is read; with the
    # case's reference (the business key), only its cases are read.
    ("a message by case data every case waits for (immediate risk: refused)", "front", "/api/v1/messages",
     {"name": "immediate_risk", "correlation_keys": {"child": "NOBODY"}}),
    ("the same with the case's reference", "front", "/api/v1/messages",
     {"name": "immediate_risk", "correlation_keys": {"child": "NOBODY"}, "reference": "BENCH-4242"}),
]


def _admin(app) -> None:
    """The council's admin (who may send a signal to every case), token ``token-admin``, made once."""
    from sqlalchemy import select

    from service import tenancy
    from service.auth import save_user
    from service.models import User, db

    with app.app_context():
        tenancy.act_for(db.session, tenancy.council_by_key(db.session, "bench"))
        if db.session.scalar(select(User.id).where(User.name == "bench-admin")) is None:
            save_user(db.session, "bench-admin", ["admin"], council=tenancy.council_by_key(db.session, "bench"),
                      token="token-admin")
            db.session.commit()
        db.session.remove()


def measure_lists(app, client, repeat: int) -> list[dict]:
    """Each list, --repeat times after three warm-ups: wall, the process's CPU, time inside SQL, statements."""
    from urllib.parse import quote

    from sqlalchemy import event

    from service.models import db

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
    results = []
    _admin(app)
    for label, who, path, *posted in LISTS:
        headers = {"Authorization": f"Bearer token-{who}"}
        if path is None:  # the page after the first, by the cursor the first page gives
            first = client.get("/api/v1/tasks", headers=headers)
            path = f"/api/v1/tasks?after={quote(first.headers['X-Next-Cursor'])}"
        if "{worker}" in path:  # the first worker of the workload's first page
            path = path.format(worker=client.get("/api/v1/workload", headers=headers).json["by_worker"][0]["key"])
        if "{case}" in path:  # a built case: BENCH-4242's
            found = client.get("/api/v1/cases?reference=BENCH-4242", headers=headers).json["cases"]
            path = path.format(case=next(c["id"] for c in found if c["reference"] == "BENCH-4242"))
        times, cpu, sql, shown = [], [], [], None
        for n in range(3 + repeat):
            statements[0], in_sql[0] = 0, 0.0
            started, cpu_started = time.perf_counter(), time.process_time()
            response = (client.post(path, json=posted[0], headers=headers) if posted
                        else client.get(path, headers=headers))
            elapsed = (time.perf_counter() - started) * 1000
            # 409: a message that no case takes and no pathway starts with; 422: one too many cases could take
            assert response.status_code in ((200, 409, 422) if posted else (200,)), (
                path, response.status_code, response.get_data(as_text=True)[:300])
            if n >= 3:
                times.append(elapsed)
                cpu.append((time.process_time() - cpu_started) * 1000)
                sql.append(in_sql[0] * 1000)
            body = response.json
            shown = _shown(body)
            total = body.get("total") if isinstance(body, dict) else None
        results.append({"label": label, "path": path, "median_ms": statistics.median(times),
                        "p95_ms": p95(times), "cpu_median_ms": statistics.median(cpu), "cpu_p95_ms": p95(cpu),
                        "sql_median_ms": statistics.median(sql), "sql_p95_ms": p95(sql),
                        "statements": statements[0], "shown": shown, "total": total})
    event.remove(engine, "before_cursor_execute", count)
    event.remove(engine, "after_cursor_execute", counted)
    return results


def measure_completions(app, client, pairs: int, tag: str):
    """Completions and starts of the approval diagram among the built cases, through the API as the front door
    user, each after the bare engine's (which persists on the same database): bench/task_completion.py's
    ``prepare`` and ``interleave``. The cases are started here through the service layer (the built ones are
    copies of one case's state: their rows' ids are not their state's)."""
    import task_completion

    from service import tenancy
    from service.models import db

    with app.app_context():
        council = tenancy.council_by_key(db.session, "bench")
        tenancy.act_for(db.session, council)
        actor = tenancy_actor(db.session, "bench-front", council.id)
        prepared = task_completion.prepare(db.session, PROCESS, {"needs": 3}, "Task_Assess", pairs, actor,
                                           prefix=f"SUITE-{tag}")
        council_id = council.id
        counter = task_completion.Statements(db.engine)
        db.session.remove()
    return task_completion.interleave(app, client, {"Authorization": "Bearer token-front"}, council_id, prepared,
                                      PROCESS, {"needs": 3}, {"risk": True, "summary": "Seen at home"}, counter,
                                      prefix=f"{tag}-")


def state_bytes(url: str, tag: str) -> list[dict]:
    """The stored state and data of each case (ciphertext: octet_length; on disk after TOAST: pg_column_size),
    median and p95: of every active case (the built ones are copies of one), of the cases this run started through
    the service (at their first task), and of those it completed once through the service (the next task)."""
    import psycopg

    groups = [("every active case", "status = 'active'", ()),
              ("started through the API in this run", "reference LIKE %s", (f"API-{tag}-%",)),
              ("started, then completed once through the API", "reference LIKE %s AND id IN "
               "(SELECT case_id FROM audit_events WHERE event = 'task_completed')", (f"SUITE-{tag}-%",))]
    out = []
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn, conn.cursor() as cur:
        for label, where, params in groups:
            cur.execute(f"""
                SELECT count(*),
                       percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY octet_length(state)),
                       percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY pg_column_size(state)),
                       percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY octet_length(data)),
                       percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY pg_column_size(data))
                FROM cases WHERE {where}""", params)
            count, state, state_disk, data, data_disk = cur.fetchone()
            out.append({"label": label, "cases": count, "state": state, "state_disk": state_disk, "data": data,
                        "data_disk": data_disk})
    return out


def plain_bytes(url: str, tag: str) -> dict[str, tuple[int, int]]:
    """The decrypted state's and data's JSON bytes (median, p95) of the cases this run started through the API."""
    from sqlalchemy import select
    from sqlalchemy.orm import undefer

    from service import create_app, tenancy
    from service.models import Case, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context(), tenancy.all_councils(db.session):
        cases = db.session.scalars(select(Case).where(Case.reference.like(f"API-{tag}-%"))
                                   .options(undefer(Case.state))).all()
        state = [len(c.state.encode()) for c in cases]
        data = [len(json.dumps(c.data).encode()) for c in cases]
    return {"state": (int(statistics.median(state)), int(p95(state))),
            "data": (int(statistics.median(data)), int(p95(data)))}


# -- timers among the million -------------------------------------------------------------------------

#: The built cases' timers (tests/fixtures/pathways/review.bpmn): the reminder on the assessment (P2D, notifies
#: the task's people) falls due in the measured ones; the escalation (five working days) does not.
DUE_TIMER = "Event_RemindWorker"


def postpone_overdue(url: str) -> tuple[int, float]:
    """Move every pending timer due within a day a year on (the build spread the cases' start over the past year,
    so most of their timers are overdue: a timer process would fire them all), then VACUUM the table (the due-time
    index would otherwise lead every claim through a million dead entries), and CHECKPOINT, so that PostgreSQL
    writes out those pages now, not while the timers it measures next fall due. Returns (rows moved, seconds)."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        moved = conn.execute("UPDATE pending_timers SET due_at = due_at + interval '365 days' "
                             "WHERE due_at < now() + interval '1 day'").rowcount
        conn.execute("VACUUM ANALYZE pending_timers")
        conn.execute("CHECKPOINT")
    return moved, time.perf_counter() - started


def _random_cases(session, due: int, template_id: int) -> list[int]:
    """``due`` built cases chosen at random, each active with its reminder pending: ids drawn in Python and
    looked up by key. (Ordering 1.97 million timers by a hash to pick them read them all, and on a cold page
    cache met the service's 30 s statement timeout.)"""
    from sqlalchemy import text

    low, high = session.execute(text("SELECT min(id), max(id) FROM cases")).one()
    draw = random.Random()
    chosen: dict[int, None] = {}
    for _ in range(50):  # each round asks for twice what is missing: a few rounds at most
        missing = due - len(chosen)
        if missing <= 0:
            break
        ids = draw.sample(range(low, high + 1), min(high - low + 1, 2 * missing))
        for (case_id,) in session.execute(text(
                "SELECT p.case_id FROM pending_timers p JOIN cases c ON c.id = p.case_id "
                "WHERE p.case_id = ANY(:ids) AND p.name = :name AND c.status = 'active' "
                "AND c.reference LIKE 'BENCH-%' AND c.id <> :template"),
                {"ids": ids, "name": DUE_TIMER, "template": template_id}):
            chosen.setdefault(case_id)
    return list(chosen)[:due]


def _shown(body) -> int | None:
    """How many rows a list's answer shows: its items; a page of cases; the workload's piles' tasks."""
    if isinstance(body, list):
        return len(body)
    if not isinstance(body, dict):
        return None
    if "by_worker" in body:
        return sum(len(pile["tasks"]) for pile in body["by_worker"] + body["by_role"])
    return len(body.get("tasks", body.get("cases", [])))


def make_due(url: str, due: int, first_due: datetime, window: float) -> dict[str, str]:
    """Make ``due`` of the built cases' reminders fall due at instants spread evenly over ``window`` seconds
    from ``first_due``; return their due times by case id (bench/timers.py's ``live`` moves them to the real clock).

    The built cases are copies of one case's state: the state names the template's task and timers, not the
    copy's rows. So each chosen case gets the template's state with its own task and timer ids (as the service
    would have written it) and the escalation's due time its row's; the reminder's due time in the state stays
    the template's, in the past, so the engine fires it when the row falls due and claims the case."""
    from sqlalchemy import bindparam, select, text, update
    from sqlalchemy.orm import undefer

    from service import create_app, tenancy
    from service.models import Case, OpenTask, PendingTimer, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context(), tenancy.all_councils(db.session):
        template = db.session.scalars(select(Case).where(Case.reference == "BENCH-0")
                                      .options(undefer(Case.state))).one()
        template_rows = {row.name: row.id for row in db.session.scalars(
            select(PendingTimer).where(PendingTimer.case_id == template.id))}
        [template_task] = db.session.scalars(select(OpenTask.id).where(OpenTask.case_id == template.id,
                                                                       OpenTask.name == "Task_Assess")).all()
        state = json.loads(template.state)
        for name, timer_id in template_rows.items():  # the other timers' due times: each copy's row's
            if name != DUE_TIMER:
                state["tasks"][timer_id]["internal_data"]["event_value"] = f"@@{name}@@"
        template_state = json.dumps(state, separators=(",", ":"))
        chosen = _random_cases(db.session, due, template.id)
        tasks = dict(db.session.execute(select(OpenTask.case_id, OpenTask.id).where(
            OpenTask.case_id.in_(chosen), OpenTask.name == "Task_Assess", OpenTask.closed_at.is_(None))).all())
        timers: dict[int, dict[str, tuple[str, datetime]]] = {}
        for case_id, timer_id, name, due_at in db.session.execute(select(
                PendingTimer.case_id, PendingTimer.id, PendingTimer.name, PendingTimer.due_at)
                .where(PendingTimer.case_id.in_(chosen))):
            timers.setdefault(case_id, {})[name] = (timer_id, due_at)
        chosen = [case_id for case_id in chosen if case_id in tasks and set(timers.get(case_id, {})) == set(template_rows)]
        states, rows, due_times = [], [], {}
        for i, case_id in enumerate(chosen):
            copy = template_state.replace(template_task, tasks[case_id])
            for name, template_id in template_rows.items():
                timer_id, due_at = timers[case_id][name]
                copy = copy.replace(template_id, timer_id).replace(f"@@{name}@@", due_at.isoformat())
            at = first_due + timedelta(seconds=window * i / max(1, len(chosen) - 1))
            states.append({"case": case_id, "state": copy})
            rows.append({"timer": timers[case_id][DUE_TIMER][0], "due": at})
            due_times[str(case_id)] = at.isoformat()
        cases_table, timers_table = Case.__table__, PendingTimer.__table__
        db.session.execute(update(cases_table).where(cases_table.c.id == bindparam("case"))
                           .values(state=bindparam("state")), states)
        db.session.execute(update(timers_table).where(timers_table.c.id == bindparam("timer"))
                           .values(due_at=bindparam("due")), rows)
        db.session.commit()
    return due_times


def measure_timers(url: str, due: int, window: float, processes: int, workers: int = 4, batch: int = 50) -> dict:
    """``due`` of the built cases' reminders falling due over ``window`` seconds, a few seconds after
    ``processes`` live timer processes are ready (bench/timers.py's ``live``): rate, latency after due, memory."""
    import timers

    moved, seconds = postpone_overdue(url)
    print(f"timers: {moved:,} pending timers overdue or due within a day moved a year on, and the table "
          f"vacuumed, in {seconds:.0f} s")
    started = time.perf_counter()
    recorded = make_due(url, due, datetime.now(timezone.utc) + timedelta(days=1), window)
    print(f"timers: {len(recorded):,} cases' reminders made to fall due over {window:g} s "
          f"({time.perf_counter() - started:.0f} s); load average {load_average()}")
    result = timers.live(url, processes, workers, batch, recorded, lead=3.0, timeout=window + 900,
                         only_due_cases=True)
    timers.report_live(result, processes, workers, window)
    print(f"  load average {load_average()} after the timers")
    return result


def _summary(figures: list[float]) -> str:
    return f"{statistics.median(figures):.1f} / {p95(figures):.1f}"


def _statements(counts: list[int]) -> str:
    median = statistics.median(counts)
    return f"{median:.0f} statement{'' if median == 1 else 's'}"


def report_completions(measured) -> list[tuple[str, str, str, str]]:
    """Print the completions and starts; return their summary rows (figure, wall, CPU, note)."""
    import task_completion

    task_completion.report(PROCESS, "Task_Assess", measured)
    rows = []
    for what, bare, service in (("completion (approval diagram)", "bare_complete", "service_complete"),
                                ("case start (to the first task)", "bare_start", "service_start")):
        wall, pairs, cpu = task_completion.ratios(measured, bare, service)
        ms = {name: ([w * 1000 for w in measured.samples[name][0]], [c * 1000 for c in measured.samples[name][1]])
              for name in (bare, service)}
        rows.append((f"{what} through the API", _summary(ms[service][0]), _summary(ms[service][1]),
                     f"{_statements(measured.statements[service])}; "
                     f"/ bare engine: {wall:.2f}x wall, {pairs:.2f}x pairs, {cpu:.2f}x CPU"))
        rows.append((f"{what}, bare engine that persists", _summary(ms[bare][0]), _summary(ms[bare][1]),
                     _statements(measured.statements[bare])))
    return rows


def main_measure(url: str, repeat: int, pairs: int, due: int, window: float, processes: int) -> None:
    """One measuring run on a built database: lists, completions and starts, memory, state bytes, timers."""
    subprocess.run([sys.executable, __file__, "--migrate-only", "--database-url", url], check=True,
                   stdout=subprocess.DEVNULL)
    tag = datetime.now(timezone.utc).strftime("%H%M%S")  # this run's cases, apart from an earlier run's
    print(f"PostgreSQL, {os.cpu_count()} CPUs; load average {load_average()} at the start")
    app, client = service_app(url)
    rss = {"start": rss_mib()}
    lists = measure_lists(app, client, repeat)
    rss["lists"] = rss_mib()
    print("wall: the request's elapsed time; CPU: the service process's CPU time in it; in SQL: elapsed time "
          "inside the database calls (median / p95, ms)")
    print(f"{'list':46} {'wall':>13} {'CPU':>13} {'in SQL':>13} {'SQL':>4} {'shown':>6} {'total':>7}")
    for r in lists:
        print(f"{r['label']:46} {r['median_ms']:6.1f}/{r['p95_ms']:6.1f} {r['cpu_median_ms']:6.1f}/"
              f"{r['cpu_p95_ms']:6.1f} {r['sql_median_ms']:6.1f}/{r['sql_p95_ms']:6.1f} {r['statements']:4} "
              f"{r['shown'] if r['shown'] is not None else '':>6} {r['total'] if r['total'] is not None else '':>7}")
    print(f"load average {load_average()} after the lists")
    completions = report_completions(measure_completions(app, client, pairs, tag))
    rss.update(completions=rss_mib(), peak=peak_rss_mib())
    print(f"load average {load_average()} after the completions and starts")
    print(f"service (API) process RSS: {rss['start']:.0f} MiB before the lists, {rss['lists']:.0f} MiB after them, "
          f"{rss['completions']:.0f} MiB after {pairs} completions and {pairs} starts; peak {rss['peak']:.0f} MiB")
    sizes = state_bytes(url, tag)
    print("stored bytes per case, median / p95 (octet_length: the ciphertext; on disk: pg_column_size, after TOAST)")
    for size in sizes:
        print(f"  {size['label']} ({size['cases']:,}): state {size['state'][0]:,} / {size['state'][1]:,} "
              f"(on disk {size['state_disk'][0]:,} / {size['state_disk'][1]:,}), data {size['data'][0]:,} / "
              f"{size['data'][1]:,} (on disk {size['data_disk'][0]:,} / {size['data_disk'][1]:,})")
    plain = plain_bytes(url, tag)
    print(f"  decrypted, the cases started through the API in this run: state {plain['state'][0]:,} / "
          f"{plain['state'][1]:,} bytes of JSON, data {plain['data'][0]:,} / {plain['data'][1]:,}")
    fired = measure_timers(url, due, window, processes)
    print_summary(lists, completions, rss, sizes, plain, fired, due, window, processes)


def print_summary(lists: list[dict], completions: list, rss: dict, sizes: list[dict], plain: dict, fired: dict,
                  due: int, window: float, processes: int) -> None:
    """The figures as one markdown table (median / p95 where there are both)."""
    print(f"\n| figure (median / p95) | wall ms | CPU ms | note |\n| --- | --- | --- | --- |")
    for r in lists:
        shown = r["shown"] if r["total"] is None else f"{r['shown']} of {r['total']:,}"
        print(f"| {r['label']} | {r['median_ms']:.1f} / {r['p95_ms']:.1f} | {r['cpu_median_ms']:.1f} / "
              f"{r['cpu_p95_ms']:.1f} | {r['statements']} statements, {shown} shown |")
    for figure, wall, cpu, note in completions:
        print(f"| {figure} | {wall} | {cpu} | {note} |")
    print(f"| timers: {fired['fired']:,} of {due:,} falling due over {window:g} s, {processes} processes | "
          f"latency after due {fired['p50'] * 1000:.0f} / {fired['p95'] * 1000:.0f} (max {fired['max'] * 1000:.0f}) | "
          f"{fired['cpu_ms_per_fire']:.2f} per fire | {fired['fires_per_second']:.0f} fires/s, "
          f"{100 * fired['within_1s']:.1f}% within 1 s, exactly once: {fired['exactly_once']} |")
    print(f"| memory (RSS), MiB | API process: {rss['start']:.0f} before, {rss['completions']:.0f} after, peak "
          f"{rss['peak']:.0f} | timer processes' peak: {', '.join(str(m) for m in fired['peak_rss_mib'])} | |")
    for size in sizes:
        print(f"| state bytes per case, {size['label']} ({size['cases']:,}) | {size['state'][0]:,} / "
              f"{size['state'][1]:,} | on disk {size['state_disk'][0]:,} / {size['state_disk'][1]:,} | data "
              f"{size['data'][0]:,} / {size['data'][1]:,} bytes |")


def _print_built(built: dict) -> None:
    print(f"PostgreSQL, {os.cpu_count()} CPUs, load average {load_average()}")
    print(f"built {built['cases']:,} open cases ({built['pool']:,} tasks unassigned for the role, "
          f"{built['workers']:,} workers with ~{PER_WORKER} each) by COPY in {built['load_seconds']:.0f} s, "
          f"indexes and keys made again in {built['index_seconds']:.0f} s, {built['build_seconds']:.0f} s "
          f"with VACUUM ANALYZE; database {built['size']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50, help="calls of each list measured")
    parser.add_argument("--pairs", type=int, default=100, help="completions and starts measured (and as many of "
                                                               "the bare engine)")
    parser.add_argument("--due", type=int, default=10_000, help="built cases whose reminder falls due")
    parser.add_argument("--window", type=float, default=10.0, help="seconds over which they fall due")
    parser.add_argument("--processes", type=int, default=2, help="live timer processes (4 worker threads each)")
    parser.add_argument("--database-url")
    parser.add_argument("--measure-only", action="store_true",
                        help="measure a database built before (--database-url; DATA_ENCRYPTION_KEYS as it was built)")
    parser.add_argument("--build-only", action="store_true",
                        help="build into --database-url and stop: measure it later, on a quiet machine, with "
                             "--measure-only (keep DATA_ENCRYPTION_KEYS)")
    parser.add_argument("--migrate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    measuring = [sys.executable, __file__, "--measure-only", "--repeat", str(args.repeat), "--pairs",
                 str(args.pairs), "--due", str(args.due), "--window", str(args.window), "--processes",
                 str(args.processes), "--database-url"]
    if args.migrate_only:
        migrate(args.database_url)
        return
    if args.measure_only:
        main_measure(args.database_url, args.repeat, args.pairs, args.due, args.window, args.processes)
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
        sys.stdout.flush()
        subprocess.run([*measuring, url], check=True)  # a fresh process: the service's memory is its own
    finally:
        if not args.database_url:
            stop_postgres(base)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
