"""Completing a user task and starting a case through the REST API, against a bare engine that persists.

Bare engine, per completion, on one connection of the same database: SELECT the case's state, load it (spec
cached), complete the task, run the engine steps, dump the state, one UPDATE and a commit. Per start: run
the start event to the first task, dump the state, one INSERT and a commit. The state column is the
service's own (encrypted at rest), so both sides pay for encryption.
Service: POST /api/v1/tasks/<id>/complete and POST /api/v1/cases through Flask's test client: token,
roles, form validation, safeguarding checks, the same engine work, task/timer rows, audit, one commit,
the case as JSON. The SQL statements each request sends are counted (``before_cursor_execute``).

Diagrams: the approval diagram (tests/fixtures/pathways/review.bpmn, ``test_review``: complete
Task_Assess, which runs a decision to the manager's approval task) and ``carmarthenshire_step_down``
(complete Task_CompleteJaffPart1).

Each bare engine's completion (start) is followed by the service's, so that the machine's load moves both
alike; each is timed in wall time and in this process's CPU time (``time.process_time``). The ratios: of
the medians of wall time, the median of the interleaved pairs' ratios, and of the medians of CPU time.

    .venv/bin/python bench/task_completion.py [--cases 200] [--database-url URL] [--show-statements] [--profile]

With ``--profile``, ``BENCH_CALLEES=<regular expression>`` also prints what the matching functions called.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not os.environ.get("DATA_ENCRYPTION_KEYS"):  # a throwaway key for a throwaway database
    from cryptography.fernet import Fernet
    os.environ["DATA_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()

from sqlalchemy import event, insert, select, text, update  # noqa: E402

from service import councils, create_app, deployments, tenancy  # noqa: E402
from service.auth import save_user  # noqa: E402
from service.cases import Actor, start_case  # noqa: E402
from service.engine import runtime  # noqa: E402
from service.models import Case, db  # noqa: E402

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
        self.on, self.count, self.seen = False, 0, Counter()
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.on:
            self.count += 1
            self.seen[" ".join(statement.split())[:150]] += 1


def median_p90(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, sorted(samples)[int(len(samples) * 0.9)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--database-url")
    parser.add_argument("--show-statements", action="store_true", help="print the statements of the last request")
    parser.add_argument("--profile", action="store_true", help="profile the service's completions (cProfile)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    postgres = url.startswith("postgresql")
    with app.app_context():
        from flask_migrate import upgrade
        if postgres:
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
        prepared = {}
        for key, start_data, task_name, _ in DIAGRAMS:
            cases = [start_case(db.session, key, f"BENCH-{key}-{i}", dict(start_data), actor)
                     for i in range(args.cases * 2)]
            db.session.commit()
            version = cases[0].process
            prepared[key] = ([(c.id, next(t.id for t in c.tasks if t.name == task_name)) for c in cases[:args.cases]],
                             [next(t.id for t in c.tasks if t.name == task_name) for c in cases[args.cases:]],
                             deployments.process_definition(db.session, version), version.id)
        db.session.remove()
        engine = db.engine
    counter = Statements(engine)
    limits = app.extensions["engine_limits"]
    cases_table = Case.__table__
    print(f"database: {url.split(':', 1)[0]}; {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.cases} of each")
    client = app.test_client()
    headers = {"Authorization": "Bearer bench-token"}

    def measure(key: str, start_data: dict, task_name: str, answers: dict) -> None:
        """One diagram: its completions and starts, bare engine and service interleaved."""
        bare_ids, api_tasks, process, version_id = prepared[key]
        profiler = None
        if args.profile:
            import cProfile
            profiler = cProfile.Profile(time.process_time)  # CPU time: the load does not move it much
        # Interleaved: a bare engine's completion, then the service's, and so on (the machine's load moves
        # both alike); wall time and the process's CPU time of each.
        samples = {name: ([], []) for name in ("bare_complete", "service_complete", "bare_start", "service_start")}
        complete_statements, start_statements, bare_statements = [], [], []
        last_completion, last_start = {}, {}
        with app.app_context(), engine.connect() as connection:  # the app: the state's encryption key
            if postgres:  # row-level security: the scope is set once for the connection, not per transaction
                connection.execute(text("SELECT set_config('app.council_id', :c, false)"), {"c": str(council_id)})
                connection.commit()

            def bare_completion(case_id: str, task_id: str) -> None:
                state, state_format = connection.execute(
                    select(cases_table.c.state, cases_table.c.state_format).where(cases_table.c.id == case_id)).one()
                workflow, journal = runtime.load(process, state, state_format, limits=limits)
                runtime.complete_task(workflow, journal, task_id, dict(answers))
                connection.execute(update(cases_table).where(cases_table.c.id == case_id)
                                   .values(state=runtime.dump(workflow)))
                connection.commit()

            def bare_start_case(i: int) -> None:
                workflow, _ = runtime.start(process, dict(start_data), limits=limits)
                connection.execute(insert(cases_table).values(
                    council_id=council_id, process_version_id=version_id, reference=f"BARE-{i}", status="active",
                    state=runtime.dump(workflow), state_format=runtime.STATE_FORMAT, data={}, lock_version=1))
                connection.commit()

            def timed(name: str, action, *arguments, statements: list[int] | None = None,
                      profiled: bool = False) -> None:
                counter.on, counter.count = True, 0
                counter.seen.clear()
                wall, cpu = time.perf_counter(), time.process_time()
                if profiled and profiler:
                    profiler.enable()
                action(*arguments)
                if profiled and profiler:
                    profiler.disable()
                samples[name][0].append(time.perf_counter() - wall)
                samples[name][1].append(time.process_time() - cpu)
                counter.on = False
                if statements is not None:
                    statements.append(counter.count)

            def service_completion(task_id: str) -> None:
                response = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": answers}, headers=headers)
                assert response.status_code == 200, response.json

            def service_start_case(i: int) -> None:
                response = client.post("/api/v1/cases", json={"process": key, "reference": f"API-{key}-{i}",
                                                              "data": start_data}, headers=headers)
                assert response.status_code == 201, response.json

            for (case_id, task_id), api_task in zip(bare_ids, api_tasks):
                timed("bare_complete", bare_completion, case_id, task_id, statements=bare_statements)
                timed("service_complete", service_completion, api_task, statements=complete_statements,
                      profiled=True)
                last_completion = dict(counter.seen)
            for i in range(args.cases):
                timed("bare_start", bare_start_case, i)
                timed("service_start", service_start_case, i, statements=start_statements)
                last_start = dict(counter.seen)
        if profiler:
            import pstats
            stats = pstats.Stats(profiler).sort_stats("cumulative")
            stats.print_stats(r"service/|flask/app|smorest|runtime|werkzeug/test", 45)
            if os.environ.get("BENCH_CALLEES"):
                stats.print_callees(os.environ["BENCH_CALLEES"])

        print(f"\n{key}: complete {task_name}")
        for label, name, statements in (
                ("bare engine, completion (SELECT, load, complete, run on, dump, UPDATE, commit)", "bare_complete",
                 bare_statements),
                ("service, POST /api/v1/tasks/<id>/complete", "service_complete", complete_statements),
                ("bare engine, start to first task (start, dump, INSERT, commit)", "bare_start", None),
                ("service, POST /api/v1/cases", "service_start", start_statements)):
            wall, cpu = samples[name]
            median, p90 = median_p90(wall)
            more = f", {statistics.median(statements):.0f} SQL statements" if statements else ""
            print(f"  {label}: median {median:.2f} ms, p90 {p90:.2f} ms, CPU median {statistics.median(cpu) * 1000:.2f} ms"
                  f"{more}")
        for what, bare, service in (("completion", "bare_complete", "service_complete"),
                                    ("start", "bare_start", "service_start")):
            wall = statistics.median(samples[service][0]) / statistics.median(samples[bare][0])
            cpu = statistics.median(samples[service][1]) / statistics.median(samples[bare][1])
            pairs = statistics.median(s / b for s, b in zip(samples[service][0], samples[bare][0]))
            print(f"  ratio service / bare engine that persists, {what}: {wall:.2f}x (medians of wall time), "
                  f"{pairs:.2f}x (median of interleaved pairs), {cpu:.2f}x (medians of CPU time)")
        if args.show_statements:
            for title, seen in (("completion", last_completion), ("start", last_start)):
                print(f"  statements of the last {title}:")
                for statement, times in seen.items():
                    print(f"    {times} x {statement}")

    for diagram in DIAGRAMS:
        measure(*diagram)

if __name__ == "__main__":
    main()
