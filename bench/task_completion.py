"""Completing a user task and starting a case through the REST API, against a bare engine that persists.

Bare engine (:class:`BareEngine`), per completion, on one connection of the same database: SELECT the case's
state, load it (spec cached), complete the task, run the engine steps, dump the state, one UPDATE and a commit.
Per start: run the start event to the first task, dump the state, one INSERT and a commit. Its statements are
built once, as the service's are. The state column is the service's own (encrypted at rest), so both sides pay
for encryption. ``bench/completion_floor.py`` adds the least a service on this stack can do.
Service: POST /api/v1/tasks/<id>/complete and POST /api/v1/cases through Flask's test client: token,
roles, form validation, safeguarding checks, the same engine work, task/timer rows, audit, one commit,
the case as JSON. The SQL statements each request sends are counted (``before_cursor_execute``).

Diagrams: the approval diagram (tests/fixtures/pathways/review.bpmn, ``test_review``: complete
Task_Assess, which runs a decision to the manager's approval task) and ``carmarthenshire_step_down``
(complete Task_CompleteJaffPart1).

Once set up, the process is settled as ``service.wsgi`` settles a service process (``settle_process``: what
start-up built is frozen out of the garbage collector's full collections), for both sides alike.

Each bare engine's completion (start) is followed by the service's, so that the machine's load moves both
alike; each is timed in wall time and in this process's CPU time (``time.process_time``). The ratios: of
the medians of wall time, the median of the interleaved pairs' ratios, and of the medians of CPU time.

    .venv/bin/python bench/task_completion.py [--cases 200] [--others 0] [--database-url URL] [--show-statements]
        [--profile]

With ``--others N`` the council also holds N open cases that are not measured (copies of a started case's rows
under new ids: its state, open task and role, timers), as a council does: a statement that read the whole
council's rows for one case's shows there.

With ``--profile``, ``BENCH_CALLEES=<regular expression>`` also prints what the matching functions called.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not os.environ.get("DATA_ENCRYPTION_KEYS"):  # a throwaway key for a throwaway database
    from cryptography.fernet import Fernet
    os.environ["DATA_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()

from flask import Flask  # noqa: E402
from sqlalchemy import bindparam, column, event, insert, select, table, text, update  # noqa: E402

from service import councils, create_app, deployments, settle_process, tenancy  # noqa: E402
from service.auth import save_user  # noqa: E402
from service.cases import Actor, start_case  # noqa: E402
from service.encryption import ENCRYPTED  # noqa: E402
from service.engine import runtime  # noqa: E402
from service.models import Case, OpenTask, PendingTimer, TaskRole, db  # noqa: E402

DIAGRAMS = [
    # key, start data, task to complete, its answers, role
    ("test_review", {"needs": 3}, "Task_Assess", {"risk": True, "summary": "Seen at home"}),
    ("carmarthenshire_step_down", {"weeks_open": 9, "family_accepts_support": "yes", "safety_plan": "yes"},
     "Task_CompleteJaffPart1", {"family_outcomes": "Regular school attendance", "consent": "given",
                                "consent_form": "signed", "shared_with_family": True}),
]
ROLES = ["social_worker", "team_manager", "early_help_worker", "front_door", "lead_professional"]


class Statements:
    """Counts the SQL statements sent to the database while ``on``."""

    def __init__(self, engine) -> None:
        self.engine, self.on, self.count, self.seen = engine, False, 0, Counter()
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.on:
            self.count += 1
            self.seen[" ".join(statement.split())[:150]] += 1


def median_p90(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, sorted(samples)[int(len(samples) * 0.9)] * 1000


@dataclass
class Prepared:
    """One diagram's cases, started through the service layer: the bare engine completes the first ``count``
    (case id, task id), the service the tasks of the others."""
    bare: list[tuple[int, str]]
    api: list[str]
    process: Any
    version_id: int


def prepare(session, key: str, start_data: dict, task_name: str, count: int, actor: Actor,
            prefix: str = "BENCH") -> Prepared:
    """Start 2 x ``count`` cases of ``key`` (committed) and take the open ``task_name`` of each."""
    started = [start_case(session, key, f"{prefix}-{key}-{i}", dict(start_data), actor) for i in range(count * 2)]
    session.commit()
    version = started[0].process
    return Prepared([(c.id, next(t.id for t in c.tasks if t.name == task_name)) for c in started[:count]],
                    [next(t.id for t in c.tasks if t.name == task_name) for c in started[count:]],
                    deployments.process_definition(session, version), version.id)


class BareEngine:
    """The engine alone, persisting on one connection: a completion reads the case's state, completes the task,
    runs on and saves the state (one ``UPDATE``); a start runs to the first task and inserts the case; each
    commits. Its statements are built once, as the service's are (building one costs as much as sending it)."""

    _cases = Case.__table__
    _read_state = select(_cases.c.state, _cases.c.state_format).where(_cases.c.id == bindparam("case_id"))
    _save_state = update(_cases).where(_cases.c.id == bindparam("case_id")).values(state=bindparam("state"))
    _insert_case = insert(_cases)

    def __init__(self, connection, council_id: int, process, version_id: int, limits, prefix: str = "") -> None:
        self.connection, self.council_id, self.process, self.version_id = connection, council_id, process, version_id
        self.limits, self.prefix = limits, prefix
        if connection.dialect.name == "postgresql":  # row-level security: the scope is set once for the connection
            connection.execute(text("SELECT set_config('app.council_id', :c, false)"), {"c": str(council_id)})
            connection.commit()

    def complete(self, case_id: int, task_id: str, answers: dict) -> None:
        state, state_format = self.connection.execute(self._read_state, {"case_id": case_id}).one()
        workflow, journal = runtime.load(self.process, state, state_format, limits=self.limits)
        runtime.complete_task(workflow, journal, task_id, dict(answers))
        self.connection.execute(self._save_state, {"case_id": case_id, "state": runtime.dump(workflow)})
        self.connection.commit()

    def start(self, i: int, start_data: dict) -> None:
        workflow, _ = runtime.start(self.process, dict(start_data), limits=self.limits)
        self.connection.execute(self._insert_case, {
            "council_id": self.council_id, "process_version_id": self.version_id,
            "reference": f"BARE-{self.prefix}{i}", "status": "active", "state": runtime.dump(workflow),
            "state_format": runtime.STATE_FORMAT, "data": {}, "lock_version": 1})
        self.connection.commit()


class CpuInApp:
    """The app's WSGI callable wrapped to count the CPU seconds spent inside it (``seconds``, set to 0 before a
    request): the service's side of a request without the test client building it and reading the answer."""

    def __init__(self, app: Flask) -> None:
        self.app, self.wsgi_app, self.seconds = app, app.wsgi_app, 0.0

    def __enter__(self) -> CpuInApp:
        self.app.wsgi_app = self._timed
        return self

    def __exit__(self, *_exc) -> None:
        self.app.wsgi_app = self.wsgi_app

    def _timed(self, environ, start_response):
        began = time.process_time()
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            self.seconds += time.process_time() - began


@dataclass
class Measured:
    """Wall and CPU seconds of each action (``bare_complete``, ``service_complete``, ``bare_start``,
    ``service_start``), interleaved, with the statements each sent and those of the last service requests."""
    samples: dict[str, tuple[list[float], list[float]]]
    #: CPU seconds of each service request inside the WSGI app: without the test client building the request and
    #: reading the answer, which a client does in its own process.
    inside: dict[str, list[float]]
    statements: dict[str, list[int]]
    last_completion: dict[str, int]
    last_start: dict[str, int]


def interleave(app, client, headers: dict, council_id: int, prepared: Prepared, key: str, start_data: dict,
               answers: dict, counter: Statements, profiler=None, prefix: str = "") -> Measured:
    """One diagram's completions, then its starts: a bare engine's, then the service's, and so on (the
    machine's load moves both alike); wall time and this process's CPU time of each."""
    engine, limits = counter.engine, app.extensions["engine_limits"]
    process, version_id = prepared.process, prepared.version_id
    samples = {name: ([], []) for name in ("bare_complete", "service_complete", "bare_start", "service_start")}
    statements = {name: [] for name in samples}
    last_completion, last_start = {}, {}
    inside = {"service_complete": [], "service_start": []}
    in_app = CpuInApp(app)
    # The bare engine runs in an app context of its own (the state's encryption key), pushed for each of its
    # runs outside the timing: a service request then pushes its own, with a session of its own, as in production
    # (under one app context for all, every request would share one session and find the last one's rows in it).
    with engine.connect() as connection:
        bare = BareEngine(connection, council_id, process, version_id, limits, prefix)

        def service_completion(task_id: str) -> None:
            response = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": answers}, headers=headers)
            assert response.status_code == 200, response.json

        def service_start_case(i: int) -> None:
            response = client.post("/api/v1/cases", json={"process": key, "reference": f"API-{prefix}{key}-{i}",
                                                          "data": start_data}, headers=headers)
            assert response.status_code == 201, response.json

        def timed(name: str, action, *arguments, profiled: bool = False) -> None:
            if name.startswith("bare"):
                with app.app_context():
                    _timed(name, action, *arguments, profiled=profiled)
            else:
                _timed(name, action, *arguments, profiled=profiled)

        def _timed(name: str, action, *arguments, profiled: bool = False) -> None:
            counter.on, counter.count = True, 0
            counter.seen.clear()
            in_app.seconds = 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            if profiled and profiler:
                profiler.enable()
            action(*arguments)
            if profiled and profiler:
                profiler.disable()
            samples[name][0].append(time.perf_counter() - wall)
            samples[name][1].append(time.process_time() - cpu)
            if name in inside:
                inside[name].append(in_app.seconds)
            counter.on = False
            statements[name].append(counter.count)

        with in_app:
            for (case_id, task_id), api_task in zip(prepared.bare, prepared.api):
                timed("bare_complete", bare.complete, case_id, task_id, answers)
                timed("service_complete", service_completion, api_task, profiled=True)
                last_completion = dict(counter.seen)
            for i in range(len(prepared.bare)):
                timed("bare_start", bare.start, i, start_data)
                timed("service_start", service_start_case, i)
                last_start = dict(counter.seen)
    return Measured(samples, inside, statements, last_completion, last_start)


def ratios(measured: Measured, bare: str, service: str) -> tuple[float, float, float]:
    """Service / bare engine: of the medians of wall time, the median of the interleaved pairs, of CPU medians."""
    samples = measured.samples
    wall = statistics.median(samples[service][0]) / statistics.median(samples[bare][0])
    cpu = statistics.median(samples[service][1]) / statistics.median(samples[bare][1])
    pairs = statistics.median(s / b for s, b in zip(samples[service][0], samples[bare][0]))
    return wall, pairs, cpu


def report(key: str, task_name: str, measured: Measured, show_statements: bool = False) -> None:
    print(f"\n{key}: complete {task_name}")
    for label, name, counted in (
            ("bare engine, completion (SELECT, load, complete, run on, dump, UPDATE, commit)", "bare_complete", True),
            ("service, POST /api/v1/tasks/<id>/complete", "service_complete", True),
            ("bare engine, start to first task (start, dump, INSERT, commit)", "bare_start", False),
            ("service, POST /api/v1/cases", "service_start", True)):
        wall, cpu = measured.samples[name]
        median, p90 = median_p90(wall)
        more = f", {statistics.median(measured.statements[name]):.0f} SQL statements" if counted else ""
        print(f"  {label}: median {median:.2f} ms, p90 {p90:.2f} ms, CPU median {statistics.median(cpu) * 1000:.2f} ms"
              f"{more}")
    for what, bare, service in (("completion", "bare_complete", "service_complete"),
                                ("start", "bare_start", "service_start")):
        wall, pairs, cpu = ratios(measured, bare, service)
        print(f"  ratio service / bare engine that persists, {what}: {wall:.2f}x (medians of wall time), "
              f"{pairs:.2f}x (median of interleaved pairs), {cpu:.2f}x (medians of CPU time)")
        inside = statistics.median(measured.inside[service])
        print(f"    the service's side alone (inside the WSGI app, without the test client's work): CPU median "
              f"{inside * 1000:.2f} ms, {inside / statistics.median(measured.samples[bare][1]):.2f}x")
    if show_statements:
        for title, seen in (("completion", measured.last_completion), ("start", measured.last_start)):
            print(f"  statements of the last {title}:")
            for statement, times in seen.items():
                print(f"    {times} x {statement}")


def add_others(session, template_id: int, count: int) -> None:
    """``count`` more open cases in the council: copies of case ``template_id``'s row (its ciphertext as it is)
    and of its open tasks, their roles and its timers, under new ids, written 5,000 cases at a time (on PostgreSQL
    then analysed, as autovacuum would: its planner's statistics of nearly empty tables would mislead it; SQLite
    keeps none)."""
    def raw(model):  # the table's columns, an encrypted one as the text it is stored as: ciphertext is copied
        return table(model.__tablename__, *[column(c.name, c.type.impl if isinstance(c.type, ENCRYPTED) else c.type)
                                            for c in model.__table__.columns])

    cases, tasks, roles, timers = raw(Case), raw(OpenTask), raw(TaskRole), raw(PendingTimer)
    connection = session.connection()
    [case] = [dict(r._mapping) for r in connection.execute(select(cases).where(cases.c.id == template_id))]
    own_tasks = [dict(r._mapping) for r in connection.execute(
        select(tasks).where(tasks.c.case_id == template_id, tasks.c.closed_at.is_(None)))]
    own_roles = [dict(r._mapping) for r in connection.execute(
        select(roles).where(roles.c.task_id.in_([t["id"] for t in own_tasks])))]
    own_timers = [dict(r._mapping) for r in connection.execute(select(timers).where(timers.c.case_id == template_id))]
    first = connection.execute(text("SELECT max(id) FROM cases")).scalar() + 1000
    for start in range(0, count, 5000):
        rows = {name: [] for name in ("cases", "tasks", "roles", "timers")}
        for case_id in range(first + start, first + min(count, start + 5000)):
            rows["cases"].append({**case, "id": case_id, "reference": f"OTHER-{case_id}"})
            ids = {t["id"]: str(uuid.uuid4()) for t in own_tasks}
            rows["tasks"] += [{**t, "id": ids[t["id"]], "case_id": case_id} for t in own_tasks]
            rows["roles"] += [{**r, "task_id": ids[r["task_id"]]} for r in own_roles]
            rows["timers"] += [{**t, "id": str(uuid.uuid4()), "case_id": case_id,
                                "attached_task_id": ids.get(t["attached_task_id"])} for t in own_timers]
        for name, raw_table in (("cases", cases), ("tasks", tasks), ("roles", roles), ("timers", timers)):
            if rows[name]:
                connection.execute(insert(raw_table), rows[name])
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:  # the sequence past the ids written here
        connection.execute(text("SELECT setval(pg_get_serial_sequence('cases', 'id'), (SELECT max(id) FROM cases))"))
    session.commit()
    if postgresql:  # statistics of the tables as they now are, as autovacuum would gather them before long
        with session.get_bind().connect() as own:
            own.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def setup(url: str, cases: int, others: int = 0) -> tuple[Flask, int, dict[str, Prepared], Statements]:
    """A fresh schema on ``url`` (PostgreSQL: its public schema emptied), one council with Carmarthenshire's
    pathways and the test fixtures, the bench user, ``cases`` cases of each diagram for each side and ``others``
    cases not measured (:func:`add_others`): (the app, the council's id, each diagram's prepared cases, the
    statement counter)."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context():
        from flask_migrate import upgrade
        if url.startswith("postgresql"):
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
        council, _ = councils.create_council(db.session, "bench", "Bench Council")
        tenancy.act_for(db.session, council)
        files = {name: content for name, content in deployments.read_folders(ROOT).items()  # one council's
                 if name.startswith("carmarthenshire")}  # (all councils' files are over the upload limit)
        files.update(deployments.read_folders(ROOT, [ROOT / "tests/fixtures/pathways"]))
        deployments.deploy(db.session, files, "bench")
        save_user(db.session, "bench", ROLES, council=council, token="bench-token")
        db.session.commit()
        council_id = council.id
        actor = Actor("bench", tuple(ROLES), council_id=council_id)
        prepared = {key: prepare(db.session, key, start_data, task_name, cases, actor)
                    for key, start_data, task_name, _ in DIAGRAMS}
        if others:
            add_others(db.session, prepared[DIAGRAMS[0][0]].bare[0][0], others)
        db.session.remove()
        counter = Statements(db.engine)
    # As service.wsgi does: what start-up built is left out of the full collections, each of which walked it
    # (a 130 ms pause every few hundred requests, 0.16 ms a request on average).
    settle_process()
    return app, council_id, prepared, counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--others", type=int, default=0, help="open cases in the council that are not measured")
    parser.add_argument("--database-url")
    parser.add_argument("--show-statements", action="store_true", help="print the statements of the last request")
    parser.add_argument("--profile", action="store_true", help="profile the service's completions (cProfile)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    app, council_id, prepared, counter = setup(url, args.cases, args.others)
    print(f"database: {url.split(':', 1)[0]}; {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.cases} of each; {args.others:,} other open cases")
    client = app.test_client()
    headers = {"Authorization": "Bearer bench-token"}
    for key, start_data, task_name, answers in DIAGRAMS:
        profiler = None
        if args.profile:
            import cProfile
            profiler = cProfile.Profile(time.process_time)  # CPU time: the load does not move it much
        measured = interleave(app, client, headers, council_id, prepared[key], key, start_data, answers, counter,
                              profiler)
        if profiler:
            import pstats
            stats = pstats.Stats(profiler).sort_stats("cumulative")
            stats.print_stats(r"service/|flask/app|smorest|runtime|werkzeug/test", 45)
            if os.environ.get("BENCH_CALLEES"):
                stats.print_callees(os.environ["BENCH_CALLEES"])
        report(key, task_name, measured, args.show_statements)


if __name__ == "__main__":
    main()
