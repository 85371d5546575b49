"""Rehearsals (issue 17 item 5): an analyst runs a pathway version as a sandbox case on a clock they move.

Through the API and the pages: the start form and each task's form are checked as for a real case; due dates,
timers and reminders follow the sandbox clock, not the service's; a rehearsal is never a case, a task, a timer,
a notification, an audit line or an email (those tables stay empty, the timer sweep finds nothing); it is the
council's analysts' (policy.may_rehearse), stored encrypted, and recorded as a scenario file that downloads or
is added to the pathway through the ordinary deploy (policy.require_deployer).
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text, update

from conftest import FIXTURES, Browser, everything, in_council, page_text
from service import scheduler
from service.models import (AccessEvent, AuditEvent, Case, Deployment, Notification, OpenTask, PendingTimer,
                            ProcessVersion, Rehearsal, db)

PATHWAY = FIXTURES / "pathways"
START = "2027-01-04T09:00:00+00:00"  # a Monday; the service's own clock stands at 21 December 2026


@pytest.fixture
def deployed(api, frozen_clock):
    assert api.deploy(PATHWAY).status_code == 201
    with api.app.app_context(), everything():
        version = db.session.scalars(select(ProcessVersion.id).where(ProcessVersion.key == "test_review")).one()
    return api, version


def _start(api, version, as_="analyst", **extra):
    return api.post("/rehearsals", json={"version_id": version, "data": {"needs": 2}, "as": "social_worker",
                                         "at": START, "name": "Two needs", **extra}, as_=as_)


def _rows(app) -> dict[str, int]:
    with app.app_context(), everything():
        return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                for model in (Case, OpenTask, PendingTimer, Notification, AuditEvent, AccessEvent)}


def test_a_rehearsal_runs_on_its_own_clock_and_is_never_a_real_case(deployed, frozen_clock):
    api, version = deployed
    before = _rows(api.app)
    started = _start(api, version)
    assert started.status_code == 201, started.json
    body = started.json
    assert body["now"].startswith("2027-01-04T09:00") and body["status"] == "active"
    [task] = body["tasks"]
    assert task["element"] == "Task_Assess" and task["due_at"].startswith("2027-01-06T09:00")  # P2D from the sandbox
    assert {t["element"] for t in body["timers"]} >= {"Event_RemindWorker", "Event_Escalate"}
    rid = body["id"]

    moved = api.post(f"/rehearsals/{rid}/actions", json={"clock": "+1 week"}, as_="analyst")
    assert moved.status_code == 200, moved.json
    assert "Event_RemindWorker" in moved.json["fired"] and "Event_Escalate" in moved.json["fired"]
    assert moved.json["now"].startswith("2027-01-11T09:00")
    assert [n["element"] for n in moved.json["notifications"]][:1] == ["Event_RemindWorker"]
    assert moved.json["tasks"][0]["due_at"].startswith("2027-01-06T09:00")  # the task's due date did not move

    refused = api.post(f"/rehearsals/{rid}/actions", json={"complete": "Task_Assess", "as": "team_manager",
                                                           "data": {"risk": False}}, as_="analyst")
    assert refused.status_code == 422 and "role" in refused.json["errors"]
    done = api.post(f"/rehearsals/{rid}/actions", json={"complete": "Task_Assess", "as": "social_worker",
                                                        "data": {"risk": False, "summary": "fine"}}, as_="analyst")
    assert done.status_code == 200, done.json
    assert done.json["tasks"] == [] and "family_update" in done.json["messages"]
    assert "Task_Assess" in done.json["path"]
    finished = api.post(f"/rehearsals/{rid}/actions", json={"message": "family_update",
                                                            "data": {"summary": "changed by the message"}},
                        as_="analyst")
    assert finished.status_code == 200, finished.json
    assert "not_changed" not in done.json  # as the message endpoint: it adds answers, never changes one, and says so
    assert finished.json["not_changed"] == ["summary"] and finished.json["data"]["summary"] == "fine"
    assert finished.json["status"] == "completed" and finished.json["outcome"] == "closed"
    assert len(finished.json["steps"]) == 3

    # Nothing of it is anywhere a real case would be: no case, task, timer, notification, audit line or access
    # log line; no list shows it, and the timer sweep finds nothing, even long after.
    assert _rows(api.app) == before == {name: 0 for name in before}
    assert api.get("/cases", as_="admin").json["total"] == 0
    assert api.get("/tasks", as_="worker").json == [] and api.get("/notifications", as_="worker").json == []
    frozen_clock.advance(days=400)
    assert scheduler.fire_due(api.app) == 0
    assert api.get(f"/rehearsals/{rid}", as_="analyst").json["now"].startswith("2027-01-11T09:00")  # its own clock


def test_the_start_form_and_a_tasks_form_are_checked_as_for_a_real_case(deployed):
    api, version = deployed
    missing = api.post("/rehearsals", json={"version_id": version, "data": {}}, as_="analyst")
    assert missing.status_code == 422 and set(missing.json["errors"]) == {"needs"}
    wrong = api.post("/rehearsals", json={"version_id": version, "data": {"needs": "three"}}, as_="analyst")
    assert wrong.status_code == 422 and "needs" in wrong.json["errors"]
    assert _start(api, version, **{"as": "juggler"}).status_code == 422
    assert api.post("/rehearsals", json={"data": {"needs": 1}}, as_="analyst").status_code == 422
    rid = _start(api, version).json["id"]
    unanswered = api.post(f"/rehearsals/{rid}/actions", json={"complete": "Task_Assess", "data": {}}, as_="analyst")
    assert unanswered.status_code == 422 and set(unanswered.json["errors"]) == {"risk"}
    assert api.post(f"/rehearsals/{rid}/actions", json={"complete": "Task_Nothing", "data": {}},
                    as_="analyst").status_code == 404
    assert api.post(f"/rehearsals/{rid}/actions", json={"clock": "tomorrowish"}, as_="analyst").status_code == 422
    assert api.post(f"/rehearsals/{rid}/actions", json={"clock": "2026-01-01T09:00:00+00:00"},
                    as_="analyst").status_code == 422  # the clock only goes forward
    assert api.post(f"/rehearsals/{rid}/actions", json={"message": "nobody_waits"}, as_="analyst").status_code == 422
    assert api.post(f"/rehearsals/{rid}/actions", json={"clock": "+1 day", "message": "x"},
                    as_="analyst").status_code == 422
    nxt = api.post(f"/rehearsals/{rid}/actions", json={"clock": "next timer"}, as_="analyst")
    assert nxt.status_code == 200 and nxt.json["now"].startswith("2027-01-06T09:00")
    assert nxt.json["fired"] == ["Event_RemindWorker"]


def test_a_draft_version_is_rehearsed_too(deployed):
    api, version = deployed
    with api.app.app_context():
        in_council(db.session)
        db.session.execute(update(ProcessVersion).where(ProcessVersion.id == version).values(status="draft"))
        db.session.commit()
    assert _start(api, version).status_code == 201


def test_rehearsals_are_for_the_councils_analysts_and_approvers(deployed):
    api, version = deployed
    rid = _start(api, version).json["id"]
    for who in ("worker", "manager", "front"):
        assert _start(api, version, as_=who).status_code == 403
        assert api.get(f"/rehearsals/{rid}", as_=who).status_code == 403
        assert api.get("/rehearsals", as_=who).status_code == 403
        assert api.post(f"/rehearsals/{rid}/actions", json={"clock": "+1 day"}, as_=who).status_code == 403
    approver = api.as_role("pathway_approver")
    assert api.get(f"/rehearsals/{rid}", as_=approver).status_code == 200  # an approver rehearses a draft
    assert api.get(f"/rehearsals/{rid}/scenario", as_=approver).status_code == 200
    assert api.post(f"/rehearsals/{rid}/scenario", json={}, as_=approver).status_code == 403  # not a deployer
    assert [r["id"] for r in api.get("/rehearsals", as_="admin").json] == [rid]
    assert api.get("/rehearsals/99999", as_="analyst").status_code == 404


def test_the_sandbox_is_encrypted_at_rest(deployed):
    api, version = deployed
    rid = _start(api, version).json["id"]
    assert api.post(f"/rehearsals/{rid}/actions", json={"complete": "Task_Assess", "as": "social_worker",
                                                        "data": {"risk": False, "summary": "Zebra crossing"}},
                    as_="analyst").status_code == 200
    with api.app.app_context(), everything():
        raw = db.session.execute(text("SELECT state FROM rehearsals")).scalar_one()
        assert "Zebra" not in raw and "Task_Assess" not in raw
        row = db.session.get(Rehearsal, rid)
        assert "Zebra crossing" in row.state  # the service reads it back


def test_recorded_as_a_scenario_it_downloads_and_is_added_to_the_pathway(deployed):
    api, version = deployed
    rid = _start(api, version).json["id"]
    api.post(f"/rehearsals/{rid}/actions", json={"clock": "+1 week"}, as_="analyst")
    api.post(f"/rehearsals/{rid}/actions", json={"complete": "Task_Assess", "as": "social_worker",
                                                 "data": {"risk": False}}, as_="analyst")
    download = api.get(f"/rehearsals/{rid}/scenario?name=Two needs, a reminder", as_="analyst")
    assert download.status_code == 200
    assert "test_review.two_needs_a_reminder.scenario.json" in download.headers["Content-Disposition"]
    scenario = json.loads(download.get_data(as_text=True))
    assert scenario["process"] == "test_review" and len(scenario["steps"]) == 2
    added = api.post(f"/rehearsals/{rid}/scenario", json={"name": "Two needs, a reminder"}, as_="analyst")
    assert added.status_code == 201, added.json
    assert added.json["created"] is True
    with api.app.app_context(), everything():
        deployment = db.session.get(Deployment, added.json["id"])
        assert "test_review.two_needs_a_reminder.scenario.json" in {f.name for f in deployment.files}
        assert deployment.source == "rehearsal"


# -- the pages -----------------------------------------------------------------------------------

def test_the_pages_start_act_move_the_clock_and_link_from_the_version(deployed):
    api, version = deployed
    browser = Browser(api.app)
    browser.sign_in("analyst", "password-analyst")
    assert "Rehearse this version" in page_text(browser.get(f"/analyst/versions/{version}"))
    start = browser.get(f"/analyst/versions/{version}/rehearse")
    assert start.status_code == 200 and "Number of needs" in page_text(start)
    refused = browser.post(f"/analyst/versions/{version}/rehearse", {"name": "Pages", "role": "social_worker",
                                                                     "at-day": "4", "at-month": "1", "at-year": "2027"})
    assert refused.status_code == 422 and "There is a problem" in page_text(refused)
    started = browser.post(f"/analyst/versions/{version}/rehearse", {"name": "Pages", "role": "social_worker",
                                                                     "needs": "2", "at-day": "4", "at-month": "1",
                                                                     "at-year": "2027"})
    assert started.status_code == 302, page_text(started)
    url = started.headers["Location"]
    page = browser.get(url)
    text_ = page_text(page)
    assert "Assess the family" in text_ and "Monday 4 January 2027 at 9am" in text_ and "Overdue" not in text_
    with api.app.app_context(), everything():
        rid = db.session.scalars(select(Rehearsal.id).where(Rehearsal.name == "Pages")).one()
    moved = browser.post(f"/analyst/rehearsals/{rid}/clock", {"move": "+1 week"})
    assert moved.status_code == 302
    after = page_text(browser.get(url))
    assert "Overdue" in after and "Monday 11 January 2027 at 9am" in after and "Assessment due" in after
    task_id = api.get(f"/rehearsals/{rid}", as_="analyst").json["tasks"][0]["id"]
    form = browser.get(f"/analyst/rehearsals/{rid}/tasks/{task_id}")
    assert form.status_code == 200 and "Risk of significant harm" in page_text(form)
    wrong = browser.post(f"/analyst/rehearsals/{rid}/tasks/{task_id}", {"role": "social_worker"})
    assert wrong.status_code == 422 and "There is a problem" in page_text(wrong)
    done = browser.post(f"/analyst/rehearsals/{rid}/tasks/{task_id}", {"role": "social_worker", "risk": "false"})
    assert done.status_code == 302
    waiting = page_text(browser.get(url))
    assert "Send the message family_update" in waiting
    assert browser.post(f"/analyst/rehearsals/{rid}/send", {"kind": "message", "name": "family_update"}).status_code == 302
    assert "Finished: closed" in page_text(browser.get(url))
    download = browser.post(f"/analyst/rehearsals/{rid}/scenario", {"scenario": "Pages", "action": "download"})
    assert download.status_code == 200 and download.mimetype == "application/json"


def test_a_worker_cannot_open_the_rehearsal_pages(deployed):
    api, version = deployed
    rid = _start(api, version).json["id"]
    browser = Browser(api.app)
    browser.sign_in("worker", "password-worker")
    assert browser.get(f"/analyst/versions/{version}/rehearse").status_code == 403
    assert browser.get(f"/analyst/rehearsals/{rid}").status_code == 403
    assert browser.post(f"/analyst/rehearsals/{rid}/clock", {"move": "+1 day"}).status_code == 403


def test_row_level_security_hides_rehearsals_outside_their_council(deployed, database_url):
    """On PostgreSQL the table has the council policy of migration 5a1e0c0c1110: without the council's scope the
    service's role reads no rehearsal, and cannot write one into another council."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row-level security is PostgreSQL's")
    from sqlalchemy import create_engine

    from conftest import APP_ROLE
    api, version = deployed
    assert _start(api, version).status_code == 201
    engine = create_engine(database_url.replace("://postgres@", f"://{APP_ROLE}@"))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM rehearsals")).scalar() == 0
            council = connection.execute(text("SELECT council_id FROM process_versions")).scalar()  # RLS: none
            assert council is None
            with api.app.app_context(), everything():
                council = db.session.scalars(select(Rehearsal.council_id)).one()
            connection.execute(text("SELECT set_config('app.council_id', :c, false)"), {"c": str(council)})
            assert connection.execute(text("SELECT count(*) FROM rehearsals")).scalar() == 1
            connection.execute(text("SELECT set_config('app.council_id', :c, false)"), {"c": str(council + 1000)})
            assert connection.execute(text("SELECT count(*) FROM rehearsals")).scalar() == 0
            with pytest.raises(Exception, match="row-level security"):
                connection.execute(text("INSERT INTO rehearsals (council_id, process_version_id, name, state, "
                                        "created_at, updated_at, lock_version) VALUES (:c, :v, 'x', 'x', now(), "
                                        "now(), 1)"), {"c": council, "v": version})
    finally:
        engine.dispose()


def test_ids_past_the_database_integer_are_simply_not_there(deployed):
    api, _ = deployed
    for huge in (2**31, 2**63, 2**64):
        assert api.post("/rehearsals", json={"version_id": huge, "data": {"needs": 1}}, as_="analyst").status_code == 404
        assert api.get(f"/rehearsals?version_id={huge}", as_="analyst").json == []


def test_a_message_the_case_waits_for_opens_its_step_and_the_escalation_follows_the_sandbox_clock(deployed):
    """Immediate risk sent to a rehearsal: its urgent step opens, escalated after its hour by the sandbox clock (as
    the service escalates a real one), in words; from the page too, where a refusal shows on the page."""
    api, version = deployed
    rid = _start(api, version).json["id"]
    risk = api.post(f"/rehearsals/{rid}/actions", json={"message": "immediate_risk",
                                                        "data": {"what_happened": "Disclosure at school"}},
                    as_="analyst")
    assert risk.status_code == 200, risk.json
    assert [t["element"] for t in risk.json["tasks"]] == ["Task_UrgentReferral"]
    later = api.post(f"/rehearsals/{rid}/actions", json={"clock": "+2 hours"}, as_="analyst")
    assert later.status_code == 200, later.json
    assert later.json["fired"] and later.json["notifications"][-1]["kind"] == "escalation"
    assert _rows(api.app)["notifications"] == 0
    other = _start(api, version).json["id"]
    browser = Browser(api.app)
    browser.sign_in("analyst", "password-analyst")
    sent = browser.post(f"/analyst/rehearsals/{other}/send", {"kind": "message", "name": "immediate_risk"})
    assert sent.status_code in (302, 422), page_text(sent)
    if sent.status_code == 422:
        assert "There is a problem" in page_text(sent)
    assert browser.post(f"/analyst/rehearsals/{other}/send", {"kind": "signal", "name": "nothing"}).status_code == 422


def test_rehearsals_nobody_has_used_for_the_retention_period_are_removed_by_erase_due(deployed, frozen_clock):
    """A rehearsal's answers may look like a real child's: unused for REHEARSAL_RETENTION_DAYS (90), it goes."""
    api, version = deployed
    old = _start(api, version, name="Old").json["id"]
    frozen_clock.advance(days=60)
    recent = _start(api, version, name="Recent").json["id"]
    frozen_clock.advance(days=31)  # old: 91 days unused; recent: 31
    cli = api.app.test_cli_runner()

    dry = cli.invoke(args=["data", "erase-due", "--dry-run"])
    assert dry.exit_code == 0 and f"rehearsal {old} " in dry.output and f"rehearsal {recent} " not in dry.output
    assert "1 rehearsals due for removal" in dry.output

    done = cli.invoke(args=["data", "erase-due"])
    assert done.exit_code == 0 and "1 rehearsals removed" in done.output
    with api.app.app_context(), everything():
        assert db.session.scalars(select(Rehearsal.id).order_by(Rehearsal.id)).all() == [recent]
    assert api.get(f"/rehearsals/{recent}", as_="analyst").status_code == 200
