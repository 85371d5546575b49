"""Completing a user task through the REST API, against the bare SpiffWorkflow cost on the same diagram.

Bare engine: load the case's state (spec cached), complete the task, run the engine steps, save the state.
Service: POST /api/v1/tasks/<id>/complete through Flask's test client on SQLite (WAL): authentication,
form validation, the same engine work, task/timer rows, audit log, one commit.

    .venv/bin/python bench/task_completion.py [--cases 300] [--database-url URL]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import create_app, deployments  # noqa: E402
from service.auth import save_user  # noqa: E402
from service.cases import Actor, start_case  # noqa: E402
from service import councils, tenancy  # noqa: E402
from service.engine import runtime  # noqa: E402
from service.models import Case, db  # noqa: E402

PROCESS = "carmarthenshire_step_down"
TASK = "Task_CompleteJaffPart1"
DATA = {"family_outcomes": "Regular school attendance", "consent": "given", "consent_form": "signed",
        "shared_with_family": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context():
        from flask_migrate import upgrade
        upgrade()
        council, _ = councils.create_council(db.session, "bench", "Bench Council")
        tenancy.act_for(db.session, council)
        deployments.deploy(db.session, deployments.read_folders(ROOT), "bench")
        save_user(db.session, "bench", ["social_worker"], council=council, token="bench-token")
        actor = Actor("bench", ("social_worker",), council_id=council.id)
        cases = [start_case(db.session, PROCESS, f"BENCH-{i}", {"weeks_open": 9, "family_accepts_support": "yes", "safety_plan": "yes"}, actor)
                 for i in range(args.cases * 2)]
        db.session.commit()
        process = deployments.process_definition(db.session, cases[0].process)
        states = [(c.state, next(t.id for t in c.tasks if t.name == TASK)) for c in cases[:args.cases]]
        api_tasks = [next(t.id for t in c.tasks if t.name == TASK) for c in cases[args.cases:]]

    bare = []
    for state, task_id in states:
        started = time.perf_counter()
        workflow, journal = runtime.load(process, state)
        runtime.complete_task(workflow, journal, task_id, dict(DATA))
        runtime.dump(workflow)
        bare.append(time.perf_counter() - started)

    client = app.test_client()
    headers = {"Authorization": "Bearer bench-token"}
    service = []
    for task_id in api_tasks:
        started = time.perf_counter()
        response = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": DATA}, headers=headers)
        service.append(time.perf_counter() - started)
        assert response.status_code == 200, response.json

    bare_ms, service_ms = statistics.median(bare) * 1000, statistics.median(service) * 1000
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split(':', 1)[0]}, diagram: {PROCESS}, "
          f"task: {TASK}, {args.cases} completions each")
    print(f"bare SpiffWorkflow (load, complete, engine steps, save): median {bare_ms:.2f} ms, "
          f"p90 {sorted(bare)[int(len(bare) * 0.9)] * 1000:.2f} ms")
    print(f"service (POST /api/v1/tasks/<id>/complete):           median {service_ms:.2f} ms, "
          f"p90 {sorted(service)[int(len(service) * 0.9)] * 1000:.2f} ms")
    print(f"ratio service / bare engine: {service_ms / bare_ms:.2f}x")


if __name__ == "__main__":
    main()
