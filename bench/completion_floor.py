"""How near the service's completion and start are to the floor of their stack: the same requests answered by the
least a Flask and SQLAlchemy service can do and still keep the rows the service keeps.

Issue 16 asks for a completion (and a start) through the API within 2x a bare engine that persists
(``bench/task_completion.py``). This bench adds a third side, the *floor*: two routes on the service's own app
(its hooks, its session per request, its database), which do only

- read the bearer token and its user (the service's statement; on PostgreSQL it sets the council's scope too);
- completion: read the task's case (id, state, data, version) and its open task and timer ids, in two statements;
  start: read the pathway's current version;
- run the engine as the bare engine does (load, complete, run on, dump; or start, dump);
- write the step's rows with statements built once: the case (``UPDATE`` at its version, or ``INSERT`` with its
  reference suffixes), the tasks it closes and opens, their roles, the timers it removes and adds, one audit
  event; then commit;
- answer the case's id and its open tasks as JSON.

It leaves out everything else a completion does: the ORM's rows and identity map, the form's validation, the
roles' and council's policy, the safeguarding rules (a referral for significant harm, consent, urgent tasks),
the assignee's lookup, the workload's allocation, notifications, messages and signals, the values' limits, the
step's journal in the audit, and the whole case in the answer. It is not a service: it is what a service on this
stack cannot go below.

Each diagram of ``task_completion.DIAGRAMS``: a bare engine's completion (start), then the service's, then the
floor's, interleaved; CPU time of each, inside the WSGI app for the service and the floor (the test client's
work left out), and each one's ratio to the bare engine.

    .venv/bin/python bench/completion_floor.py [--cases 200] [--database-url URL]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import task_completion  # noqa: E402  (sets a throwaway encryption key when none is given)
from flask import Flask, abort, jsonify, request  # noqa: E402
from sqlalchemy import bindparam, delete, insert, literal, select, union_all, update  # noqa: E402

from service import tenancy  # noqa: E402
from service.api.access import bearer_token  # noqa: E402
from service.auth import _token_and_user, _token_user_and_scope, hash_token  # noqa: E402
from service.cases import Actor  # noqa: E402
from service.engine import clock, runtime  # noqa: E402
from service.engine.bundle import ProcessDefinition  # noqa: E402
from service.models import AuditEvent, Case, Council, OpenTask, PendingTimer, ProcessVersion, ReferenceSuffix, \
    TaskRole, User, db, reference_suffixes  # noqa: E402

CASES, TASKS, ROLES, TIMERS, AUDIT, SUFFIXES, VERSIONS = (model.__table__ for model in (
    Case, OpenTask, TaskRole, PendingTimer, AuditEvent, ReferenceSuffix, ProcessVersion))
TASK_CASE = (select(CASES.c.id, CASES.c.process_version_id, CASES.c.state, CASES.c.state_format, CASES.c.data,
                    CASES.c.lock_version)
             .select_from(TASKS.join(CASES, CASES.c.id == TASKS.c.case_id))
             .where(TASKS.c.id == bindparam("task_id"), TASKS.c.closed_at.is_(None),
                    TASKS.c.council_id == bindparam("council_id")))
OPEN_ROWS = union_all(
    select(TASKS.c.id, literal("task").label("kind")).where(TASKS.c.case_id == bindparam("case_id"),
                                                            TASKS.c.closed_at.is_(None)),
    select(TIMERS.c.id, literal("timer").label("kind")).where(TIMERS.c.case_id == bindparam("case_id")))
CURRENT_VERSION = (select(VERSIONS.c.id).where(VERSIONS.c.council_id == bindparam("council_id"),
                                               VERSIONS.c.key == bindparam("key"), VERSIONS.c.status == "published")
                   .order_by(VERSIONS.c.version.desc()).limit(1))
SAVE_CASE = update(CASES).where(CASES.c.id == bindparam("b_id"), CASES.c.lock_version == bindparam("b_version")).values(
    state=bindparam("state"), data=bindparam("data"), status=bindparam("status"), updated_at=bindparam("now"),
    next_timer_at=bindparam("next_timer_at"), waiting_for=bindparam("waiting_for"),
    waiting_signals=bindparam("waiting_signals"), lock_version=bindparam("version"))
CLOSE_TASK = update(TASKS).where(TASKS.c.id == bindparam("b_id")).values(closed_at=bindparam("now"))
REMOVE_TIMERS = delete(TIMERS).where(TIMERS.c.id.in_(bindparam("ids", expanding=True)))
INSERT_CASE = insert(CASES).returning(CASES.c.id)
INSERTS = {table: insert(table) for table in (TASKS, ROLES, TIMERS, AUDIT, SUFFIXES)}


def add_floor(app: Flask, council_id: int, user_id: int, session_version: int,
              processes: dict[int, ProcessDefinition]) -> None:
    """The floor's two routes on ``app``: ``POST /bench/floor/tasks/<id>/complete`` and ``POST /bench/floor/cases``
    (``processes``: each version's parsed diagram, by version id, as the service's cache holds them)."""
    limits = app.extensions["engine_limits"]
    postgresql = app.extensions["sqlalchemy"].engine.dialect.name == "postgresql"

    def caller(connection) -> None:
        digest = hash_token(bearer_token())
        if postgresql:  # the statement that reads the token sets the council's scope, as the service's does
            row = connection.execute(_token_user_and_scope(), {
                "digest": digest, "scope_now": clock.now(), "scope_council": str(council_id),
                "scope_user": str(user_id), "scope_user_id": user_id, "scope_version": session_version}).first()
        else:
            row = connection.execute(_token_and_user(), {"digest": digest}).first()
        if row is None or row.revoked_at is not None or row.expires_at <= clock.now():
            abort(401)

    def write_rows(connection, case_id: int, snap, now, open_tasks: set[str], timers: set[str], event: str,
                task: str | None, answers: dict) -> list[dict]:
        opened = [t for t in snap.tasks if t.id not in open_tasks]
        rows = {
            TASKS: [{"id": t.id, "case_id": case_id, "name": t.name, "title": t.title, "lane": t.lane,
                     "due_at": t.due_at, "created_at": now, "council_id": council_id} for t in opened],
            ROLES: [{"task_id": t.id, "role": role, "council_id": council_id} for t in opened for role in t.roles],
            TIMERS: [{"id": t.id, "case_id": case_id, "name": t.name, "title": t.title, "due_at": t.due_at,
                      "attached_task_id": t.attached_to, "properties": t.properties, "council_id": council_id}
                     for t in snap.timers if t.id not in timers],
            AUDIT: [{"case_id": case_id, "at": now, "actor": "bench", "event": event, "task": task,
                     "detail": {"data": answers}, "council_id": council_id}]}
        closed = open_tasks - {t.id for t in snap.tasks}
        if closed:
            connection.execute(CLOSE_TASK, [{"b_id": task_id, "now": now} for task_id in closed])
        removed = timers - {t.id for t in snap.timers}
        if removed:
            connection.execute(REMOVE_TIMERS, {"ids": list(removed)})
        for table, values in rows.items():
            if values:
                connection.execute(INSERTS[table], values)
        return [{"id": t.id, "name": t.name, "title": t.title} for t in snap.tasks]

    def complete(task_id: str):
        answers = request.get_json()["data"]
        connection = db.session.connection()
        caller(connection)
        case = connection.execute(TASK_CASE, {"task_id": task_id, "council_id": council_id}).first()
        if case is None:
            abort(404)
        held = connection.execute(OPEN_ROWS, {"case_id": case.id}).all()
        process = processes[case.process_version_id]  # the service's cache of parsed diagrams, by version
        workflow, journal = runtime.load(process, case.state, case.state_format, limits=limits)
        snap = runtime.complete_task(workflow, journal, task_id, dict(answers))
        now = clock.now()
        saved = connection.execute(SAVE_CASE, {
            "b_id": case.id, "b_version": case.lock_version, "version": case.lock_version + 1,
            "state": runtime.dump(workflow), "data": {**case.data, **snap.data},
            "status": "completed" if snap.completed else "active", "now": now,
            "next_timer_at": snap.timers[0].due_at if snap.timers else None, "waiting_for": snap.messages,
            "waiting_signals": sorted(snap.waiting_signals)})
        if saved.rowcount != 1:
            abort(409)
        tasks = write_rows(connection, case.id, snap, now, {r.id for r in held if r.kind == "task"},
                        {r.id for r in held if r.kind == "timer"}, "task_completed", task_id, answers)
        db.session.commit()
        return jsonify({"id": case.id, "tasks": tasks})

    def start():
        body = request.get_json()
        connection = db.session.connection()
        caller(connection)
        version_id = connection.execute(CURRENT_VERSION, {"council_id": council_id, "key": body["process"]}).scalar()
        if version_id is None:
            abort(404)
        workflow, snap = runtime.start(processes[version_id], dict(body["data"]), limits=limits)
        now = clock.now()
        case_id = connection.execute(INSERT_CASE, {
            "council_id": council_id, "process_version_id": version_id, "reference": body["reference"],
            "status": "active", "state": runtime.dump(workflow), "state_format": runtime.STATE_FORMAT,
            "data": snap.data, "created_at": now, "updated_at": now, "lock_version": 1,
            "next_timer_at": snap.timers[0].due_at if snap.timers else None, "waiting_for": snap.messages,
            "waiting_signals": sorted(snap.waiting_signals), "timer_failures": 0}).scalar_one()
        connection.execute(INSERTS[SUFFIXES], [{"case_id": case_id, "council_id": council_id, "suffix": suffix}
                                               for suffix in reference_suffixes(body["reference"])])
        tasks = write_rows(connection, case_id, snap, now, set(), set(), "case_started", None, body["data"])
        db.session.commit()
        return jsonify({"id": case_id, "tasks": tasks}), 201

    app.add_url_rule("/bench/floor/tasks/<task_id>/complete", "floor_complete", complete, methods=["POST"])
    app.add_url_rule("/bench/floor/cases", "floor_start", start, methods=["POST"])
    csrf = app.extensions["csrf"]  # a bearer token, as the API's routes
    csrf.exempt(complete)
    csrf.exempt(start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-floor-')) / 'bench.db'}"
    app, council_id, prepared, counter = task_completion.setup(url, args.cases)
    floor_tasks = _floor_cases(app, council_id, args.cases)
    with app.app_context():
        user = db.session.scalars(select(User).where(User.name == "bench")).one()
        add_floor(app, council_id, user.id, user.session_version, {p.version_id: p.process for p in prepared.values()})
        db.session.remove()
    print(f"database: {url.split(':', 1)[0]}; {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.cases} of each")
    for key, start_data, task_name, answers in task_completion.DIAGRAMS:
        cpu = measure(app, council_id, prepared[key], floor_tasks[key], key, start_data, answers, counter.engine)
        print(f"\n{key}: complete {task_name}; start")
        for what in ("complete", "start"):
            bare = statistics.median(cpu[f"bare_{what}"])
            shown = [f"bare engine {bare * 1000:.2f} ms"]
            for side in ("service", "floor"):
                median = statistics.median(cpu[f"{side}_{what}"])
                shown.append(f"{side} {median * 1000:.2f} ms ({median / bare:.2f}x)")
            print(f"  {what}, CPU median: " + ", ".join(shown))


def _floor_cases(app: Flask, council_id: int, count: int) -> dict[str, list[str]]:
    """``count`` cases of each diagram for the floor to complete: the open task of each."""
    with app.app_context():
        council = db.session.get(Council, council_id)
        tenancy.act_for(db.session, council)
        actor = Actor("bench", tuple(task_completion.ROLES), council_id=council_id)
        tasks = {key: [task_id for _, task_id in task_completion.prepare(
                     db.session, key, start_data, task_name, count, actor, prefix="FLOOR").bare]
                 for key, start_data, task_name, _ in task_completion.DIAGRAMS}
        db.session.remove()
    return tasks


def measure(app: Flask, council_id: int, prepared: task_completion.Prepared, floor_tasks: list[str], key: str,
            start_data: dict, answers: dict, engine) -> dict[str, list[float]]:
    """CPU seconds of each completion and start: the bare engine's, then the service's, then the floor's."""
    client, headers = app.test_client(), {"Authorization": "Bearer bench-token"}
    cpu: dict[str, list[float]] = {f"{side}_{what}": [] for side in ("bare", "service", "floor")
                                   for what in ("complete", "start")}
    in_app = task_completion.CpuInApp(app)

    def request(name: str, url: str, body: dict, status: int) -> None:
        in_app.seconds = 0.0
        response = client.post(url, json=body, headers=headers)
        assert response.status_code == status, response.get_data(as_text=True)[:500]
        cpu[name].append(in_app.seconds)

    def bare(name: str, action, *arguments) -> None:
        with app.app_context():  # pushed outside the timing, as a request's is
            began = time.process_time()
            action(*arguments)
            cpu[name].append(time.process_time() - began)

    with in_app, engine.connect() as connection:
        engine_alone = task_completion.BareEngine(connection, council_id, prepared.process, prepared.version_id,
                                                  app.extensions["engine_limits"], prefix=key)
        for (case_id, task_id), api_task, floor_task in zip(prepared.bare, prepared.api, floor_tasks):
            bare("bare_complete", engine_alone.complete, case_id, task_id, answers)
            request("service_complete", f"/api/v1/tasks/{api_task}/complete", {"data": answers}, 200)
            request("floor_complete", f"/bench/floor/tasks/{floor_task}/complete", {"data": answers}, 200)
        for i in range(len(prepared.bare)):
            bare("bare_start", engine_alone.start, i, start_data)
            for side, url in (("service", "/api/v1/cases"), ("floor", "/bench/floor/cases")):
                request(f"{side}_start", url, {"process": key, "reference": f"{side.upper()}-{key}-{i}",
                                               "data": start_data}, 201)
    return cpu


if __name__ == "__main__":
    main()
