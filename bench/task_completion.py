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

    .venv/bin/python bench/task_completion.py [--cases 200] [--database-url URL] [--show-statements]
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
        files = {**deployments.read_folders(ROOT), **deployments.read_folders(ROOT, [ROOT / "tests/fixtures/pathways"])}
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
    ratios = []
    for key, start_data, task_name, answers in DIAGRAMS:
        bare_ids, api_tasks, process, version_id = prepared[key]
        # -- the bare engine that persists, on one connection of its own
        bare_complete, bare_start, bare_statements = [], [], []
        with app.app_context(), engine.connect() as connection:  # the app: the state's encryption key
            if postgres:  # row-level security: the scope is set once for the connection, not per transaction
                connection.execute(text("SELECT set_config('app.council_id', :c, false)"), {"c": str(council_id)})
                connection.commit()
            for case_id, task_id in bare_ids:
                counter.on, counter.count = True, 0
                started = time.perf_counter()
                state, state_format = connection.execute(
                    select(cases_table.c.state, cases_table.c.state_format).where(cases_table.c.id == case_id)).one()
                workflow, journal = runtime.load(process, state, state_format, limits=limits)
                runtime.complete_task(workflow, journal, task_id, dict(answers))
                connection.execute(update(cases_table).where(cases_table.c.id == case_id)
                                   .values(state=runtime.dump(workflow)))
                connection.commit()
                bare_complete.append(time.perf_counter() - started)
                counter.on = False
                bare_statements.append(counter.count)
            for i in range(args.cases):
                started = time.perf_counter()
                workflow, _ = runtime.start(process, dict(start_data), limits=limits)
                connection.execute(insert(cases_table).values(
                    council_id=council_id, process_version_id=version_id, reference=f"BARE-{i}", status="active",
                    state=runtime.dump(workflow), state_format=runtime.STATE_FORMAT, data={}, lock_version=1))
                connection.commit()
                bare_start.append(time.perf_counter() - started)
        # -- the service
        service_complete, complete_statements = [], []
        if args.profile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        for task_id in api_tasks:
            counter.on, counter.count = True, 0
            counter.seen.clear()
            started = time.perf_counter()
            response = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": answers}, headers=headers)
            service_complete.append(time.perf_counter() - started)
            counter.on = False
            complete_statements.append(counter.count)
            assert response.status_code == 200, response.json
        last_completion = dict(counter.seen)
        if args.profile:
            import pstats
            profiler.disable()
            stats = pstats.Stats(profiler).sort_stats("cumulative")
            stats.print_stats(r"service/|flask/app|smorest|runtime|werkzeug/test", 45)
            stats.print_callees(r"session.py:\d+\(flush\)|_flush|unitofwork.py:\d+\(execute\)|persistence.py:\d+\(save_obj\)")
        service_start, start_statements = [], []
        for i in range(args.cases):
            counter.on, counter.count = True, 0
            counter.seen.clear()
            started = time.perf_counter()
            response = client.post("/api/v1/cases", json={"process": key, "reference": f"API-{key}-{i}",
                                                          "data": start_data}, headers=headers)
            service_start.append(time.perf_counter() - started)
            counter.on = False
            start_statements.append(counter.count)
            assert response.status_code == 201, response.json
        last_start = dict(counter.seen)

        print(f"\n{key}: complete {task_name}")
        for label, samples, statements in (
                ("bare engine, completion (SELECT, load, complete, run on, dump, UPDATE, commit)",
                 bare_complete, bare_statements),
                ("service, POST /api/v1/tasks/<id>/complete", service_complete, complete_statements),
                ("bare engine, start to first task (start, dump, INSERT, commit)", bare_start, None),
                ("service, POST /api/v1/cases", service_start, start_statements)):
            median, p90 = median_p90(samples)
            more = f", {statistics.median(statements):.0f} SQL statements" if statements else ""
            print(f"  {label}: median {median:.2f} ms, p90 {p90:.2f} ms{more}")
        completion = statistics.median(service_complete) / statistics.median(bare_complete)
        start = statistics.median(service_start) / statistics.median(bare_start)
        ratios.append((key, completion, start))
        print(f"  ratio service / bare engine that persists: completion {completion:.2f}x, start {start:.2f}x")
        if args.show_statements:
            for title, seen in (("completion", last_completion), ("start", last_start)):
                print(f"  statements of the last {title}:")
                for statement, times in seen.items():
                    print(f"    {times} x {statement}")


if __name__ == "__main__":
    main()
