"""Data protection, as a council's data protection officer asks: nothing personal in logs, case data
encrypted at rest (and its key rotated), an access log for the auditor, a tamper-evident audit log,
erasure when retention ends. On SQLite and on PostgreSQL under row-level security."""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from click.testing import Result
from cryptography.fernet import Fernet
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from conftest import FIXTURES, Api, Browser, everything, in_council, password_hash, save_user
from service import audit, cases, create_app, encryption, scheduler
from service.models import AccessEvent, AuditEvent, Case, Notification, OpenTask, PendingTimer, db
from service.policy import Actor

NAME = "Tallulah Quixley"  # the child: it must appear nowhere but in the service's answers
ROLES = {"worker": ["social_worker"], "manager": ["team_manager"], "auditor": ["auditor"], "admin": ["admin"],
         "analyst": ["analyst"]}


@pytest.fixture
def council(app, frozen_clock):
    """The fixture pathway deployed; a case about NAME with an open task, a timer and (after 2 days) a reminder."""
    tokens = {}
    with app.app_context():
        for name, roles in ROLES.items():
            user, _ = save_user(db.session, name, roles, token=f"token-{name}", email=f"{name}@council.example")
            user.password_hash = password_hash(f"pw-{name}")
            tokens[name] = f"token-{name}"
        db.session.commit()
    api = Api(app, tokens)
    assert api.deploy(FIXTURES / "pathways").status_code == 201
    return api


def start(api, reference="FAM-1", name=NAME):
    """A case about ``name`` (the fixture's start form asks only for needs: the name comes as a hand-over would
    bring it, past the form), with its open task and timer; the case as the API shows it."""
    with api.app.app_context():
        in_council(db.session)
        case = cases.start_case(db.session, "test_review", reference, {"needs": 3, "family_name": name},
                                Actor("worker", ("social_worker",)), validate=False)
        db.session.commit()
        case_id = case.id
    return api.get(f"/cases/{case_id}", as_="admin").json


def raw(app, query: str, **params) -> list[tuple]:
    """What the database itself holds (as a stolen copy would show it)."""
    with app.app_context(), everything():
        return [tuple(row) for row in db.session.execute(text(query), params)]


def run(app, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args))


# -- logs ------------------------------------------------------------------------------------------

def test_a_failed_statement_names_no_value(app):
    with app.app_context():
        with pytest.raises(Exception) as failed:
            db.session.execute(text("INSERT INTO no_such_table (name) VALUES (:name)"), {"name": NAME})
        db.session.rollback()
    assert NAME not in str(failed.value)  # hide_parameters


def test_an_unexpected_error_is_logged_without_its_message_or_values(council, caplog, monkeypatch):
    case = start(council)

    def failing(session, *args, **kwargs):  # a bug that fails on a statement holding a child's name
        session.execute(text("INSERT INTO no_such_table (name) VALUES (:name)"), {"name": NAME})

    monkeypatch.setattr(cases, "get_case", failing)
    with caplog.at_level(logging.INFO):
        response = council.get(f"/cases/{case['id']}")
    assert response.status_code == 500 and NAME not in response.get_data(as_text=True)
    logged = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "unexpected error in GET" in logged and "Traceback" in logged
    assert "OperationalError" in logged or "ProgrammingError" in logged
    assert NAME not in logged and "Quixley" not in logged


def test_an_exception_message_never_reaches_a_service_log(app, caplog):
    with caplog.at_level(logging.INFO):
        try:
            raise ValueError(f"bad value {NAME}")
        except ValueError:
            logging.getLogger("service.scheduler").exception("firing timers of case 1 failed")
    assert "ValueError" in caplog.text and NAME not in caplog.text


# -- encryption at rest ----------------------------------------------------------------------------

def test_the_database_holds_no_plaintext_case_data(council, frozen_clock):
    case = start(council)
    [task] = case["tasks"]
    with council.app.app_context():
        in_council(db.session)
        cases.save_draft(db.session, task["id"], {"summary": f"{NAME} seen at home"}, cases.SERVICE)
        db.session.commit()
    frozen_clock.advance(days=2, minutes=1)
    assert scheduler.fire_due(council.app) == 1  # a reminder: its body names the case
    assert council.get(f"/cases/{case['id']}").json["data"]["family_name"] == NAME  # the service reads it
    stored = raw(council.app, "SELECT data, state, error FROM cases") + raw(council.app, "SELECT detail FROM audit_events") \
        + raw(council.app, "SELECT draft FROM tasks") + raw(council.app, "SELECT body FROM notifications")
    text_of = " ".join(str(value) for row in stored for value in row)
    assert NAME not in text_of and "Quixley" not in text_of and "FAM-1" not in text_of
    assert all(str(value).startswith("gAAAA") for row in stored for value in row if value is not None)


def _app_with_keys(app, keys: str):
    return create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "TIMERS_ENABLED": False,
                       "TESTING": True, "SECRET_KEY": "test", "DATA_ENCRYPTION_KEYS": keys})


def test_a_key_is_rotated_and_the_old_one_can_go(council):
    case = start(council)
    old = council.app.config.get("DATA_ENCRYPTION_KEYS") or encryption.configured_keys(council.app)[0]
    new = Fernet.generate_key().decode()
    both = _app_with_keys(council.app, f"{new},{old}")
    result = run(both, "data", "rotate-key")
    assert result.exit_code == 0, result.output
    assert "cases.data: 1 values re-encrypted" in result.output
    only_new = Api(_app_with_keys(council.app, new), council.tokens)
    assert only_new.get(f"/cases/{case['id']}").json["data"]["family_name"] == NAME
    only_old = _app_with_keys(council.app, old)
    with only_old.app_context(), everything(), pytest.raises(encryption.NoKey):
        db.session.get(Case, case["id"]).data


def test_a_rotation_commits_each_batch_so_the_service_never_waits_for_the_whole_run(council):
    """Rotating every value of a million cases in one transaction would hold each row's lock until the end: a
    completion on an early case would wait for the whole run. Each batch is committed on its own."""
    from sqlalchemy import event

    start(council)
    start(council, "FAM-2")
    old = council.app.config.get("DATA_ENCRYPTION_KEYS") or encryption.configured_keys(council.app)[0]
    both = _app_with_keys(council.app, f"{Fernet.generate_key().decode()},{old}")
    with both.app_context(), everything():
        commits = []
        event.listen(db.session(), "after_commit", lambda session: commits.append(1))
        counts = encryption.rotate(db.session, batch=1)
    assert counts["cases.data"] == 2
    assert len(commits) >= sum(counts.values())  # a batch of one value: a commit each


def test_without_a_key_a_deployment_refuses_to_start_and_a_test_gets_one(tmp_path):
    settings = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}", "TIMERS_ENABLED": False,
                "SECRET_KEY": "test", "DATA_ENCRYPTION_KEYS": ""}
    with pytest.raises(encryption.NoKey):
        create_app(settings)
    with pytest.raises(encryption.NoKey):
        create_app({**settings, "DATA_ENCRYPTION_KEYS": "not-a-key"})
    assert create_app({**settings, "TESTING": True}).extensions[encryption.EXTENSION] is not None
    assert create_app({**settings, "DEVELOPMENT": True}).extensions[encryption.EXTENSION] is not None


# -- the access log --------------------------------------------------------------------------------

def test_every_read_of_a_case_or_task_is_in_the_access_log_for_the_auditor_alone(council):
    case = start(council)
    task = case["tasks"][0]["id"]
    council.get(f"/cases/{case['id']}", as_="manager")
    council.get(f"/cases/{case['id']}/history")
    council.get(f"/tasks/{task}")
    browser = Browser(council.app)
    browser.sign_in("worker")
    assert browser.get(f"/cases/{case['id']}").status_code == 200
    assert browser.get(f"/cases/{case['id']}/diagram.bpmn").status_code == 200
    assert browser.get(f"/tasks/{task}").status_code == 200

    log = council.get(f"/access-log?case={case['id']}", as_="auditor")
    assert log.status_code == 200
    assert [(e["user"], e["purpose"], e["task"]) for e in log.json] == [
        ("worker", "task_page", task), ("worker", "diagram", None), ("worker", "case_page", None),
        ("worker", "task", task), ("worker", "case_history", None), ("manager", "case", None),
        ("admin", "case", None)]
    assert all(e["case"] == case["id"] and e["at"] for e in log.json)
    assert [e["purpose"] for e in council.get("/access-log?user=manager", as_="auditor").json] == ["case"]
    assert council.get("/access-log?page=2", as_="auditor").json == []
    for someone in ("worker", "manager", "admin"):  # not even the admin, whose reads it records
        assert council.get("/access-log", as_=someone).status_code == 403


def test_another_councils_auditor_sees_nothing_of_this_councils_reads(council):
    case = start(council)
    council.get(f"/cases/{case['id']}")
    with council.app.app_context():
        save_user(db.session, "other-auditor", ["auditor"], council="other", token="token-other-auditor")
        db.session.commit()
    council.tokens["other-auditor"] = "token-other-auditor"
    assert council.get(f"/access-log?case={case['id']}", as_="other-auditor").json == []
    assert council.get("/access-log", as_="other-auditor").json == []


def test_access_and_audit_events_cannot_be_changed_or_deleted(council):
    case = start(council)
    council.get(f"/cases/{case['id']}")
    with council.app.app_context():
        in_council(db.session)
        access = db.session.scalars(select(AccessEvent)).first()
        db.session.delete(access)
        with pytest.raises(audit.AppendOnly):
            db.session.flush()
        db.session.rollback()
        event = db.session.scalars(select(AuditEvent)).first()
        event.actor = "someone else"
        with pytest.raises(audit.AppendOnly):
            db.session.flush()
        db.session.rollback()
        from sqlalchemy import delete

        with pytest.raises(audit.AppendOnly):
            db.session.execute(delete(AuditEvent).where(AuditEvent.case_id == case["id"]))
        db.session.rollback()


# -- the audit chain -------------------------------------------------------------------------------

def test_the_audit_chain_verifies_and_names_the_first_changed_event(council):
    case = start(council)
    council.post(f"/cases/{case['id']}/messages", json={"name": "family_update", "data": {"note": "moved"}})
    start(council, "FAM-2")
    result = run(council.app, "audit", "verify")
    assert result.exit_code == 0 and "test: " in result.output and "the chain is intact" in result.output
    events = raw(council.app, "SELECT id, seq FROM audit_events ORDER BY seq")
    assert [seq for _, seq in events] == list(range(1, len(events) + 1))
    second = events[1][0]
    with council.app.app_context(), everything():  # someone with the database changes what was recorded
        db.session.execute(text("UPDATE audit_events SET detail = :d WHERE id = :id"),
                           {"d": encryption.encrypt('{"data": {"needs": 0}}'), "id": second})
        db.session.commit()
    result = run(council.app, "audit", "verify", "--council", "test")
    assert result.exit_code == 1
    assert f"the chain breaks at event {second}" in result.output and "its detail was changed" in result.output


def test_a_deleted_or_rewritten_audit_event_breaks_the_chain(council):
    for reference in ("FAM-1", "FAM-2", "FAM-3"):
        start(council, reference)
    assert run(council.app, "audit", "seal").exit_code == 0  # what is committed is chained
    events = raw(council.app, "SELECT id FROM audit_events ORDER BY seq")
    with council.app.app_context(), everything():
        db.session.execute(text("UPDATE audit_events SET actor = 'nobody' WHERE id = :id"), {"id": events[-1][0]})
        db.session.commit()
    assert "its fields were changed" in run(council.app, "audit", "verify").output
    with council.app.app_context(), everything():
        db.session.execute(text("DELETE FROM audit_events WHERE id IN (:a, :b)"),
                           {"a": events[0][0], "b": events[-1][0]})
        db.session.commit()
    output = run(council.app, "audit", "verify").output
    assert f"event {events[1][0]}" in output and "number 1 is missing" in output


def test_a_case_with_audit_events_cannot_be_deleted(council):
    case = start(council)
    with council.app.app_context(), everything():
        with pytest.raises(IntegrityError) as refused:
            db.session.execute(text("DELETE FROM cases WHERE id = :id"), {"id": case["id"]})
            db.session.commit()
        db.session.rollback()
    assert "foreign key" in str(refused.value).lower()
    assert raw(council.app, "SELECT count(*) FROM audit_events WHERE case_id = :id", id=case["id"])[0][0] > 0


def test_concurrent_appends_never_fork_the_chain(council):
    failures = []

    def starter(prefix):
        client = Api(council.app, council.tokens)
        for i in range(6):
            response = client.post("/cases", json={"process": "test_review", "reference": f"{prefix}-{i}",
                                                   "data": {"needs": 3}})
            if response.status_code != 201:
                failures.append(response.json)

    threads = [threading.Thread(target=starter, args=(p,)) for p in ("A", "B", "C")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    sealers = [threading.Thread(target=run, args=(council.app, "audit", "seal")) for _ in range(3)]
    for thread in sealers:
        thread.start()
    for thread in sealers:
        thread.join()
    seqs = [seq for (seq,) in raw(council.app, "SELECT seq FROM audit_events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    result = run(council.app, "audit", "verify")
    assert result.exit_code == 0, result.output


def test_sealing_chains_what_waits_a_batch_at_a_time(council, monkeypatch):
    """The sweep seals the waiting events :data:`audit.SEAL_BATCH` at a time (a transaction each), so it holds
    one batch in memory however many wait, and the chain is whole."""
    for reference in ("FAM-1", "FAM-2", "FAM-3"):
        start(council, reference)
    [(waiting,)] = raw(council.app, "SELECT count(*) FROM audit_events WHERE seq IS NULL")
    assert waiting > 2
    monkeypatch.setattr(audit, "SEAL_BATCH", 2)
    counts, real = [], audit.seal
    monkeypatch.setattr(audit, "seal", lambda *args: counts.append(real(*args)) or counts[-1])
    with council.app.app_context():
        assert audit.seal_all(db.session) == waiting
    assert max(counts) == 2 and sum(counts) == waiting
    seqs = [seq for (seq,) in raw(council.app, "SELECT seq FROM audit_events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    result = run(council.app, "audit", "verify")
    assert result.exit_code == 0, result.output


def test_an_unsealed_event_never_holds_up_another_case(council, database_url):
    """Writing an audit event takes no lock that another case's transaction waits for (the seal does, briefly).

    On PostgreSQL only: SQLite has one writer at a time whatever the service does."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time")
    first = start(council, "FAM-1")
    with council.app.app_context():
        in_council(db.session)
        db.session.add(AuditEvent(case_id=first["id"], actor="test", event="note", detail={}))
        db.session.flush()  # a transaction that has written an audit event and hangs before its commit
        other = Api(council.app, council.tokens).post("/cases", json={"process": "test_review", "reference": "FAM-2",
                                                                       "data": {"needs": 3}})
        assert other.status_code == 201
        db.session.rollback()


# -- retention and erasure -------------------------------------------------------------------------

def _close(app, case_id: int, days_ago: int, frozen_clock) -> None:
    with app.app_context():
        in_council(db.session)
        case = db.session.get(Case, case_id)
        case.status, case.updated_at = "completed", frozen_clock.now() - timedelta(days=days_ago)
        db.session.commit()


def test_erase_due_erases_what_retention_ends_and_keeps_a_minimal_record(council, frozen_clock):
    old = start(council, "FAM-OLD")
    recent = start(council, "FAM-NEW", name="Another Child")
    council.get(f"/cases/{old['id']}")  # an access log row
    frozen_clock.advance(days=2, minutes=1)
    assert scheduler.fire_due(council.app) == 2  # reminders: notifications of both cases
    _close(council.app, old["id"], 40, frozen_clock)
    _close(council.app, recent["id"], 10, frozen_clock)
    with council.app.app_context():
        in_council(db.session).retention_days = 30
        db.session.commit()

    dry = run(council.app, "data", "erase-due", "--dry-run")
    assert dry.exit_code == 0 and f"case {old['id']}" in dry.output and "1 cases due" in dry.output
    assert "FAM-OLD" not in dry.output and raw(council.app, "SELECT status FROM cases WHERE id = :i", i=old["id"]) \
        == [("completed",)]

    result = run(council.app, "data", "erase-due")
    assert result.exit_code == 0 and "1 cases erased" in result.output and "30 days after closure (council)" in result.output
    with council.app.app_context(), everything():
        erased = db.session.get(Case, old["id"])
        assert erased.status == "erased" and erased.data == {} and erased.state == "" and erased.started_by is None
        assert erased.reference == audit.sha256("test:FAM-OLD")
        for model in (OpenTask, PendingTimer, Notification, AccessEvent):
            assert db.session.scalars(select(model).where(model.case_id == old["id"])).all() == []
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.case_id == old["id"])
                                    .order_by(AuditEvent.seq)).all()
        assert all(e.detail == {} for e in events[:-1]) and events[-1].event == "case_erased"
        assert events[-1].detail["rule"] == "30 days after closure (council)"
        assert events[-1].detail["pathway"] == "test_review" and events[-1].detail["status"] == "completed"
        assert db.session.get(Case, recent["id"]).data["family_name"] == "Another Child"  # not yet due
    assert council.get(f"/cases/{old['id']}").status_code == 404
    assert run(council.app, "audit", "verify").exit_code == 0  # erasure keeps the chain whole


def test_erase_due_holds_a_batch_of_cases_at_a_time(council, frozen_clock, monkeypatch):
    """A first run may find years of a council's closed cases due: they are read a batch at a time, each batch
    erased before the next is read, and none is passed over."""
    from service import retention

    monkeypatch.setattr(retention, "BATCH", 2)
    closed = [start(council, f"FAM-{n}")["id"] for n in range(5)]
    for case_id in closed:
        _close(council.app, case_id, 40, frozen_clock)
    with council.app.app_context():
        in_council(db.session).retention_days = 30
        db.session.commit()
    erase, held = retention.erase, []

    def erase_counting(session, case, rule, council_row):
        held.append(sum(isinstance(row, Case) for row in session.identity_map.values()))
        erase(session, case, rule, council_row)

    monkeypatch.setattr(retention, "erase", erase_counting)
    result = run(council.app, "data", "erase-due")
    assert result.exit_code == 0 and "5 cases erased" in result.output
    assert raw(council.app, "SELECT DISTINCT status FROM cases") == [("erased",)]
    assert max(held) <= 2, held


def test_a_pathway_can_keep_its_cases_for_less_or_longer_than_the_council(council, frozen_clock):
    case = start(council)
    _close(council.app, case["id"], 10, frozen_clock)
    with council.app.app_context():
        in_council(db.session).retention_days = 30
        db.session.commit()
    assert "0 cases due" in run(council.app, "data", "erase-due", "--dry-run").output
    assert council.patch("/council", json={"retention_by_pathway": {"test_review": 0}}, as_="admin").status_code == 422
    changed = council.patch("/council", json={"retention_by_pathway": {"test_review": 7}}, as_="admin")
    assert changed.status_code == 200 and changed.json["retention_by_pathway"] == {"test_review": 7}
    output = run(council.app, "data", "erase-due").output
    assert "1 cases erased" in output and "7 days after closure (pathway test_review)" in output


def test_nothing_is_erased_without_a_retention_period(council, frozen_clock):
    case = start(council)
    _close(council.app, case["id"], 5000, frozen_clock)
    assert "0 cases erased" in run(council.app, "data", "erase-due").output
