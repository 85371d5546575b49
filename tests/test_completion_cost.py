"""A completion and a case start cost their engine step plus a handful of SQL statements (issue 16).

Counted with SQLAlchemy's ``before_cursor_execute`` on the service's own engine, so that a change which
reads the case again, or loads rows one at a time, fails here instead of in production.
"""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from conftest import FIXTURES
from service.models import db

PATHWAY = FIXTURES / "pathways"
#: What a completion of Task_Assess sends: the token and user (on PostgreSQL setting the transaction's council
#: scope too, once the caller is cached: tests/test_tenancy.py); the task, the case's open tasks, the case, its
#: state and timers in one; the case; the closed task; the new task and its role; the timers; the audit (the
#: step's two events, the task and the decision, in one Core INSERT). On PostgreSQL the case, the tasks, the role,
#: the timers and the audit are one statement (service.step_writes). No NOTIFY on PostgreSQL: the new timers are
#: days away, so every process's safety sweep reads them first (service.scheduler.notify_horizon).
MOST_PER_COMPLETION = {"sqlite": 9, "postgresql": 3}
#: A start: the token and user (and the scope); the pathway; the case (its first step's columns in its INSERT);
#: its reference suffixes; the new task and its role; the timers; the audit (on PostgreSQL these five are one
#: statement, the case's id drawn ahead: service.step_writes.CaseIds; no NOTIFY, as above).
MOST_PER_START = {"sqlite": 8, "postgresql": 3}


@contextmanager
def statements(app, parameters: bool = False):
    """The SQL statements sent meanwhile (with how many parameters each, if ``parameters``)."""
    sent = []

    def seen(conn, cursor, statement, bound, context, executemany):
        text = " ".join(statement.split())
        sent.append((text, len(bound or ())) if parameters else text)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def _dialect(app) -> str:
    return "postgresql" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else "sqlite"


def test_a_completion_and_a_start_send_a_handful_of_statements(api, app):
    api.deploy(PATHWAY)
    api.post("/cases", json={"process": "test_review", "reference": "WARM", "data": {"needs": 3}})  # caches warm
    with statements(app) as sent:
        response = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}})
    assert response.status_code == 201, response.json
    assert len(sent) <= MOST_PER_START[_dialect(app)], "\n".join(s[:120] for s in sent)
    assert not [s for s in sent if s.startswith("UPDATE cases")], "the new case was written twice"
    assert not [s for s in sent if s.startswith("SELECT set_config")], "the scope was set apart from the token read"
    [task] = response.json["tasks"]

    with statements(app) as sent:
        done = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}})
    assert done.status_code == 200, done.json
    assert len(sent) <= MOST_PER_COMPLETION[_dialect(app)], "\n".join(s[:120] for s in sent)
    assert not [s for s in sent if s.startswith("SELECT tasks") and "JOIN" not in s], "the tasks were read again"
    audit = [s for s in sent if "INSERT INTO audit_events" in s]
    assert len(audit) == 1, "one INSERT for the step's events"
    if _dialect(app) == "postgresql":
        assert audit[0].startswith("WITH"), "the step's events were written apart from its other rows"
    assert [t["name"] for t in done.json["tasks"]] == ["Task_Approve"]


def test_the_answer_is_what_the_schema_would_dump_and_what_a_fresh_read_shows(api, app):
    """Answering from what was just written (no second read, no second dump) answers the same as reading the
    case afresh and dumping it through the schema."""
    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}})
    assert started.json == api.get(f"/cases/{started.json['id']}").json
    [task] = started.json["tasks"]
    done = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True, "summary": "Seen"}}).json
    again = api.get(f"/cases/{done['id']}").json  # read afresh, dumped through CaseSchema
    assert done == again
    assert {t["name"] for t in started.json["timers"]} == {"Event_RemindWorker", "Event_Escalate"}


def test_the_case_list_is_what_its_schema_would_dump_and_reads_no_case_data(api, app):
    """A page of cases is answered as plain JSON (no second dump), the same as dumping it through CaseListSchema;
    and it neither reads nor decrypts any case's data, which it does not show."""
    from sqlalchemy import select

    from conftest import in_council
    from service import cases as case_service
    from service import paging
    from service.api.schemas import CaseListSchema, case_summary_json
    from service.models import User
    from service.policy import Actor

    api.deploy(PATHWAY)
    for n in range(3):
        api.post("/cases", json={"process": "test_review", "reference": f"FAM-{n}", "data": {"needs": 3}})
    with statements(app) as sent:
        answer = api.get("/cases?per_page=2")
    assert answer.status_code == 200, answer.json
    assert not [s for s in sent if "cases.data" in s], "the list read the cases' data"
    with app.app_context():
        council = in_council(db.session)
        worker = db.session.scalar(select(User).where(User.name == "worker"))
        cases, total = case_service.list_cases(db.session, Actor("worker", ("social_worker",), worker.id, council.id),
                                               per_page=2)
        dumped = CaseListSchema().dump({"cases": [case_summary_json(c) for c in cases], "total": total, "page": 1,
                                        "per_page": 2, "next": paging.case_cursor(cases[-1])})
    assert answer.json == dumped and [c["reference"] for c in dumped["cases"]] == ["FAM-2", "FAM-1"]


def test_a_task_completed_twice_or_by_someone_without_its_role_is_refused_as_before(api):
    api.deploy(PATHWAY)
    task = api.post("/cases", json={"process": "test_review", "reference": "FAM-1",
                                    "data": {"needs": 3}}).json["tasks"][0]
    assert api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}}, as_="manager").status_code == 403
    assert api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}}).status_code == 200
    assert api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}}).status_code == 409
    assert api.post("/tasks/nothing/complete", json={"data": {}}).status_code == 404


def test_the_steps_audit_events_are_checked_as_a_flush_checks_rows(api, app):
    """The step's audit events skip the ORM (with the step's rows, or one Core INSERT for those recorded after
    them): they are checked for what their columns hold as :func:`service.limits._check_rows` checks ORM rows,
    and written in the acting council only."""
    import pytest
    from conftest import in_council

    from service import cases, step_writes, tenancy
    from service.errors import InvalidData
    from service.models import Case
    from service.policy import Actor

    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    writers = {"apart": step_writes.write_audit,
               "with the step": lambda session, rows: step_writes.StepWrites(case).write(session, audit=rows)}
    for how, write in writers.items():
        with app.app_context():
            council = in_council(db.session)
            case = db.session.get(Case, started["id"])
            assert case.council_id == council.id
            row = cases._audit_row(case, Actor("x" * 81), "task_completed", None, {})
            with pytest.raises(InvalidData) as refused:
                write(db.session, [row])
            assert "audit_events.actor" in refused.value.errors, how
            with pytest.raises(InvalidData):
                write(db.session, [cases._audit_row(case, Actor("worker"), "note", None, {"a": "b\x00"})])
            tenancy.leave(db.session)
            with pytest.raises(tenancy.Unscoped):
                write(db.session, [cases._audit_row(case, Actor("worker"), "note", None, {})])
            db.session.rollback()


def test_a_steps_audit_events_take_their_ids_in_the_order_they_were_recorded(api, app):
    """The audit chain is sealed in id order, so the step's events (written with its rows, on PostgreSQL as one
    document inside the step's statement) must take their ids in the order the step recorded them."""
    from sqlalchemy import select

    from conftest import in_council
    from service import cases, step_writes
    from service.models import AuditEvent, Case
    from service.policy import Actor

    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    recorded = [f"note_{n}" for n in (3, 1, 4, 1, 5, 9, 2, 6)]
    with app.app_context():
        in_council(db.session)
        case = db.session.get(Case, started["id"])
        rows = [cases._audit_row(case, Actor("worker"), event, None, {"n": n}) for n, event in enumerate(recorded)]
        step_writes.StepWrites(case).write(db.session, audit=rows)
        assert rows == [], "the rows written were left for a second write"
        written = db.session.execute(select(AuditEvent.event, AuditEvent.detail).where(
            AuditEvent.case_id == case.id, AuditEvent.event.like("note_%")).order_by(AuditEvent.id)).all()
        db.session.rollback()
    assert [(event, detail["n"]) for event, detail in written] == [(e, n) for n, e in enumerate(recorded)]


def test_each_process_draws_new_cases_ids_ahead_and_no_two_cases_share_one(api, app, tokens, monkeypatch):
    """On PostgreSQL a start's case takes an id drawn ahead from the sequence (its INSERT goes in its first step's
    statement): two service processes on one database, each drawing its own ids a few at a time, give every case
    an id of its own, and each case is whole (found by its reference, its task open)."""
    import pytest

    from conftest import Api, _settings
    from service import create_app
    from service.step_writes import CaseIds

    if _dialect(app) != "postgresql":
        pytest.skip("SQLite draws no ids ahead: a case's INSERT returns its id")
    monkeypatch.setattr(CaseIds, "AT_ONCE", 3)  # several draws each
    api.deploy(PATHWAY)
    other = create_app(_settings(app.config["SQLALCHEMY_DATABASE_URI"], {}))
    processes = [api, Api(other, tokens)]
    started = {}
    for n in range(14):
        answer = processes[n % 2].post("/cases", json={"process": "test_review", "reference": f"FAM-{n:02d}",
                                                       "data": {"needs": 3}})
        assert answer.status_code == 201, answer.json
        started[answer.json["id"]] = f"FAM-{n:02d}"
    assert len(started) == 14, "two cases were given one id"
    for case_id, reference in started.items():
        [found] = api.get(f"/cases?reference={reference}").json["cases"]
        assert found["id"] == case_id
        assert [t["name"] for t in api.get(f"/cases/{case_id}").json["tasks"]] == ["Task_Assess"]
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_start_stopped_by_the_engine_keeps_its_case_with_the_error(api, app, monkeypatch):
    """A start whose first step fails keeps its case, stopped with the error (its INSERT sent alone, as the step
    that would have carried it writes nothing)."""
    from service.engine import runtime

    api.deploy(PATHWAY)

    def broken(*args, **kwargs):
        raise runtime.EngineError("Gateway_Broken", "the gateway has no way out")

    monkeypatch.setattr(runtime, "start", broken)
    answer = api.post("/cases", json={"process": "test_review", "reference": "FAM-ERR", "data": {"needs": 3}})
    assert answer.status_code == 201, answer.json
    assert answer.json["status"] == "error" and answer.json["error"]["element"] == "Gateway_Broken"
    [found] = api.get("/cases?reference=FAM-ERR").json["cases"]
    assert found["id"] == answer.json["id"] and found["status"] == "error"


def _worker(council_id: int):
    from sqlalchemy import select

    from service.models import User
    from service.policy import Actor

    worker = db.session.scalar(select(User).where(User.name == "worker"))
    return Actor("worker", ("social_worker",), worker.id, council_id)


def test_a_case_moved_on_between_the_read_and_the_write_is_refused_and_keeps_nothing_of_the_step(api, app,
                                                                                                monkeypatch):
    """The step's rows skip the ORM's flush (service.step_writes), not its version check: the case's row is
    written only at the version the step read, so of two steps on one case at once the second is refused (409),
    and none of its rows is written."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.orm.exc import StaleDataError

    from conftest import in_council
    from service import cases
    from service.engine import runtime
    from service.models import Case, OpenTask

    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    [task] = started["tasks"]
    complete = runtime.complete_task

    with app.app_context():
        council = in_council(db.session)
        actor = _worker(council.id)

        def meanwhile(*args, **kwargs):  # another request moves the case on after this one read it
            with db.engine.begin() as other:
                if other.dialect.name == "postgresql":  # row-level security: the council's rows only
                    other.execute(text("SELECT set_config('app.council_id', :c, true)"), {"c": str(council.id)})
                moved = other.execute(text("UPDATE cases SET lock_version = lock_version + 1 WHERE id = :id"),
                                      {"id": started["id"]})
                assert moved.rowcount == 1
            return complete(*args, **kwargs)

        monkeypatch.setattr(runtime, "complete_task", meanwhile)
        with pytest.raises(StaleDataError):
            cases.complete_task(db.session, task["id"], {"risk": True}, actor)
        monkeypatch.setattr(runtime, "complete_task", complete)
        db.session.rollback()
        in_council(db.session)
        assert db.session.get(OpenTask, task["id"]).closed_at is None
        assert [t.name for t in db.session.get(Case, started["id"]).tasks] == ["Task_Assess"]
    again = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}})
    assert again.status_code == 200 and [t["name"] for t in again.json["tasks"]] == ["Task_Approve"]


def test_a_step_rolled_back_leaves_none_of_its_rows_in_the_session(api, app):
    """What a step wrote with Core statements leaves the session when its savepoint or transaction rolls back,
    as what a flush wrote does: a new task is not found, the closed one is open again, the case is at its old
    version (the timer sweep and case migration roll one case's step back and go on with the session)."""
    from conftest import in_council
    from service import cases
    from service.models import Case, OpenTask

    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    [task] = started["tasks"]
    with app.app_context():
        actor = _worker(in_council(db.session).id)
        for rolled_back in ("savepoint", "transaction"):
            version = db.session.get(Case, started["id"]).lock_version
            savepoint = db.session.begin_nested() if rolled_back == "savepoint" else None
            case = cases.complete_task(db.session, task["id"], {"risk": True}, actor)
            [new] = case.tasks
            assert new.name == "Task_Approve" and case.lock_version == version + 1
            new_id = new.id
            if savepoint is not None:
                savepoint.rollback()
            else:
                db.session.rollback()
                in_council(db.session)
            assert db.session.get(OpenTask, new_id) is None, rolled_back
            assert db.session.get(OpenTask, task["id"]).closed_at is None, rolled_back
            case = db.session.get(Case, started["id"])
            assert case.lock_version == version and [t.name for t in case.tasks] == ["Task_Assess"], rolled_back
            assert {t.name for t in case.timers} == {"Event_RemindWorker", "Event_Escalate"}, rolled_back
        savepoint = db.session.begin_nested()
        new_case = cases.start_case(db.session, "test_review", "FAM-2", {"needs": 3}, actor)
        new_case_id, [new_task] = new_case.id, [t.id for t in new_case.tasks]
        savepoint.rollback()
        assert db.session.get(Case, new_case_id) is None and db.session.get(OpenTask, new_task) is None


def test_what_a_step_wrote_is_noted_for_a_rollback_without_keeping_it_alive(api, app):
    """The note a rollback would read holds weak references, as the session's identity map does: a long
    transaction (a case migration, a timer batch) keeps none of the objects its steps wrote alive by it."""
    import gc
    import weakref

    from conftest import in_council
    from service import cases
    from service.step_writes import WRITTEN

    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    with app.app_context():
        actor = _worker(in_council(db.session).id)
        case = cases.complete_task(db.session, started["tasks"][0]["id"], {"risk": True}, actor)
        assert len(db.session.info[WRITTEN]) >= 3  # the case, the closed task, the new task and timer
        written = [weakref.ref(case), weakref.ref(case.tasks[0])]
        del case
        gc.collect()
        assert [ref() for ref in written] == [None, None]
        db.session.rollback()


def test_a_steps_rows_are_checked_as_a_flush_checks_rows(api, app):
    """The step's case, task, role and timer rows are checked for what their columns hold, as
    :func:`service.limits._check_rows` checks ORM rows, and written only in the case's own council."""
    import pytest

    from conftest import in_council
    from service import councils, tenancy
    from service.errors import InvalidData
    from service.models import Case, OpenTask, PendingTimer, TaskRole
    from service.step_writes import StepWrites, insert_case

    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    with app.app_context():
        in_council(db.session)
        case = db.session.get(Case, started["id"])
        writes = StepWrites(case)
        writes.added.append(OpenTask(id="t-long", case_id=case.id, name="Task_X", title="x" * 256, lane=None,
                                     role_rows=[TaskRole(role="social_worker")]))
        with pytest.raises(InvalidData) as refused:
            writes.write(db.session)
        assert "tasks.title" in refused.value.errors
        writes = StepWrites(case)
        writes.added.append(PendingTimer(id="p-nul", case_id=case.id, name="Event_X", title="a\x00b",
                                         due_at=case.created_at, properties={}))
        with pytest.raises(InvalidData) as refused:
            writes.write(db.session)
        assert "pending_timers.title" in refused.value.errors
        with pytest.raises(InvalidData) as refused:
            insert_case(db.session, Case(process=case.process, reference="FAM\x00", status="active", state="",
                                         state_format=case.state_format, data={}))
        assert "cases.reference" in refused.value.errors
        other, _ = councils.create_council(db.session, "elsewhere", "Elsewhere Council")
        tenancy.act_for(db.session, other)
        with pytest.raises(tenancy.Unscoped):
            StepWrites(case).write(db.session)
        with pytest.raises(tenancy.Unscoped):
            StepWrites(case).update_case(db.session, {"status": "completed"})
        with pytest.raises(tenancy.Unscoped):
            insert_case(db.session, Case(process=case.process, reference="FAM-3", status="active", state="",
                                         state_format=case.state_format, data={}, council_id=case.council_id))
        db.session.rollback()


def test_a_steps_statement_is_the_same_however_many_rows_it_adds(api, app):
    """New tasks, their roles and timers go as one document a table (service.step_writes): a step adding three
    tasks sends the statement, and the number of parameters, a step adding one sends. A statement of over 50
    parameters psycopg converts afresh each time, and one per count of rows is one more to compile and prepare.
    The rows written are the rows added."""
    from datetime import timedelta

    import pytest
    from sqlalchemy import select

    from conftest import in_council
    from service.models import Case, OpenTask, PendingTimer, TaskRole
    from service.step_writes import StepWrites

    if _dialect(app) != "postgresql":
        pytest.skip("SQLite sends a step's rows one statement per table")
    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    steps = {}
    for count in (1, 3):
        with app.app_context():
            in_council(db.session)
            case = db.session.get(Case, started["id"])
            writes, created = StepWrites(case), case.created_at
            roles = ("social_worker", "team_manager")
            writes.added.extend(OpenTask(id=f"t-{count}-{n}", case_id=case.id, name=f"Task_{n}", title=f"Task {n}",
                                         lane=None, role_rows=[TaskRole(role=role) for role in roles])
                                for n in range(count))
            writes.added.extend(PendingTimer(id=f"p-{count}-{n}", case_id=case.id, name=f"Event_{n}", title="Remind",
                                             due_at=created + timedelta(days=n), properties={"n": n})
                                for n in range(count))
            with statements(app, parameters=True) as sent:
                writes.write(db.session)
            [steps[count]] = [(statement, size) for statement, size in sent if statement.startswith("WITH")]
            tasks = db.session.execute(select(OpenTask.id, OpenTask.title).where(OpenTask.id.like(f"t-{count}-%"))
                                       .order_by(OpenTask.id)).all()
            held = db.session.scalars(select(TaskRole.role).where(TaskRole.task_id == f"t-{count}-0")
                                      .order_by(TaskRole.role)).all()
            timers = db.session.execute(select(PendingTimer.id, PendingTimer.properties, PendingTimer.due_at)
                                        .where(PendingTimer.id.like(f"p-{count}-%")).order_by(PendingTimer.id)).all()
            db.session.rollback()
        assert tasks == [(f"t-{count}-{n}", f"Task {n}") for n in range(count)]
        assert held == list(roles)
        assert timers == [(f"p-{count}-{n}", {"n": n}, created + timedelta(days=n)) for n in range(count)]
    assert steps[3] == steps[1]
    assert steps[3][1] < 50


def test_the_postgresql_step_statement_is_one_sqlalchemy_caches():
    """The step's one statement on PostgreSQL is built once per shape and must have a cache key: a statement
    SQLAlchemy cannot cache (a multi-row VALUES) is compiled on every step, which cost more than the five
    statements it replaced. So must a new case's, with its reference suffixes."""
    from sqlalchemy.dialects import postgresql

    from service.step_writes import AUDIT_COLUMNS, _at_once_statement, _case_insert_with_suffixes

    shape = (("data", "state", "updated_at"), (("tasks", ("closed_at", "closed_by_id"), 2),), True,
             (("tasks", ("id", "case_id", "name")), ("task_roles", ("task_id", "role", "council_id")),
              ("pending_timers", ("id", "case_id", "due_at")), ("audit_events", AUDIT_COLUMNS)), None)
    assert _at_once_statement(shape, postgresql.dialect())._generate_cache_key() is not None
    start = (None, (), False, (("tasks", ("id", "case_id", "name")), ("audit_events", AUDIT_COLUMNS)),
             ("id", "reference", "council_id"))
    assert _at_once_statement(start, postgresql.dialect())._generate_cache_key() is not None
    assert _case_insert_with_suffixes(("reference", "status", "council_id"))._generate_cache_key() is not None


def _as_loaded(row) -> dict:
    """A row's loaded columns, and whether it is persistent and unchanged in its session."""
    from sqlalchemy import inspect

    state = inspect(row)
    return {"columns": {a.key: state.dict.get(a.key, "<not loaded>") for a in state.mapper.column_attrs},
            "persistent": state.persistent, "modified": state.modified}


def _read_both_ways(app, task_id: str) -> tuple[dict, dict]:
    """The completion's read of ``task_id`` by the ORM (joined loading, as it read before) and as plain rows, each
    in a fresh session."""
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    from conftest import in_council
    from service import cases
    from service.models import Case, OpenTask

    of_case = select(OpenTask.case_id).where(OpenTask.id == task_id).scalar_subquery()
    orm_read = (select(OpenTask).where(OpenTask.case_id == of_case, OpenTask.closed_at.is_(None))
                .options(joinedload(OpenTask.role_rows),
                         joinedload(OpenTask.case).undefer(Case.state).joinedload(Case.timers)))
    seen = {}
    for way in ("orm", "plain"):
        with app.app_context():
            in_council(db.session)
            with statements(app) as sent:
                if way == "orm":
                    tasks = db.session.scalars(orm_read).unique().all()
                else:
                    tasks = cases._open_tasks_as_read(db.session, task_id)
                [task] = tasks
                case = task.case
                seen[way] = {"task": _as_loaded(task), "roles": sorted(r.role for r in task.role_rows),
                             "role rows": [_as_loaded(r) for r in sorted(task.role_rows, key=lambda r: r.role)],
                             "case": _as_loaded(case), "version": _as_loaded(case.process),
                             "timers": [_as_loaded(t) for t in case.timers],
                             "in session": all(r in db.session for r in (task, case, case.process, *case.timers))}
            seen[way]["statements"] = len(sent)  # one: nothing loaded afterwards, one row at a time
            db.session.rollback()
    return seen["orm"], seen["plain"]


def test_the_completions_read_makes_the_rows_the_orm_would(api, app):
    """The completion's read is plain rows made into rows as the ORM makes those it reads: the same columns loaded
    (the case's state with them), the same relations (roles, case, pathway version, timers in due order), each row
    persistent and unchanged in the session, so that the step's writes and the answer work on them as before."""
    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    [task] = started["tasks"]
    orm, plain = _read_both_ways(app, task["id"])
    assert plain == orm and plain["statements"] == 1
    assert plain["case"]["columns"]["state"] != "<not loaded>" and plain["roles"] and len(plain["timers"]) == 2
    assert plain["in session"] and not plain["case"]["modified"]
    done = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}})
    assert done.status_code == 200, done.json
    assert done.json == api.get(f"/cases/{started['id']}").json


def test_the_completions_read_decrypts_each_value_once_however_many_rows_it_joins(api, app, monkeypatch):
    """The case's state and data are in every row the read joins (its open tasks x their roles x its timers: 2
    here); each is decrypted once, not once per row."""
    from conftest import in_council
    from service import cases, encryption

    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    [task] = started["tasks"]
    assert len(started["timers"]) == 2
    decrypted = []
    plain = encryption.decrypt
    monkeypatch.setattr(encryption, "decrypt", lambda token: decrypted.append(token) or plain(token))
    with app.app_context():
        in_council(db.session)
        [read] = cases._open_tasks_as_read(db.session, task["id"])
        assert read.case.data == {"needs": 3} and read.case.state
        db.session.rollback()
    assert len(decrypted) == len(set(decrypted)) == 2, "the case's state and data, once each"


def test_the_completions_read_refreshes_a_row_the_session_holds(api, app):
    """A row the session holds already is refreshed from what was read, its changes not yet written given up
    (as the ORM's populate_existing, which the read used before, gives them up)."""
    from conftest import in_council
    from service import cases
    from service.models import Case

    api.deploy(PATHWAY)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}}).json
    [task] = started["tasks"]
    with app.app_context():
        in_council(db.session)
        held = db.session.get(Case, started["id"])
        db.session.execute(Case.__table__.update().where(Case.id == held.id).values(reference="FAM-1-RENAMED"))
        [read] = cases._open_tasks_as_read(db.session, task["id"])
        assert read.case is held and held.reference == "FAM-1-RENAMED" and not db.session.is_modified(held)
        held.reference = "CHANGED-HERE"
        [read] = cases._open_tasks_as_read(db.session, task["id"])
        assert read.case is held and held.reference == "FAM-1-RENAMED" and not db.session.is_modified(held)
        db.session.rollback()
