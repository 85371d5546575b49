"""The safeguarding rules the service enforces on every pathway (docs/safeguarding.md), tested once, generically.

The pathways in fixtures/safeguarding follow the conventions; the tests then break each rule in a copy
of them and show the deploy refused, or drive a case through the REST API with the clock moved.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import FIXTURES, ROOT, everything
from service import scheduler
from service.deployments import read_folders
from service.engine import clock, conventions
from service.engine.bundle import build_bundle
from service.models import Notification, PendingTimer, db

SAFEGUARDING = FIXTURES / "safeguarding"
FRIDAY_6PM = datetime(2026, 12, 18, 18, 0, tzinfo=timezone.utc)  # London is on GMT in December
MONDAY_10AM = datetime(2026, 12, 21, 10, 0, tzinfo=timezone.utc)
WHAT = {"what_happened": "The child said her stepfather hit her last night."}


def _files(**replaced: bytes) -> list[tuple[str, bytes]]:
    files = {p.name: p.read_bytes() for p in SAFEGUARDING.iterdir()}
    files.update(replaced)
    return sorted(files.items())


def _deploy(api, files: list[tuple[str, bytes]]):
    from io import BytesIO
    return api.post("/deployments", data={"files": [(BytesIO(content), name) for name, content in files]},
                    as_="analyst", content_type="multipart/form-data")


@pytest.fixture
def deployed(api):
    response = _deploy(api, _files())
    assert response.status_code == 201, response.json
    api.as_role("keyworker")
    for role in ("emergency_duty_team", "emergency_duty_manager", "front_door_manager"):
        api.as_role(role)
    return api


def _start(api, key="sg_early_help", **data):
    body = {"concerns": "Bruising seen at school", "significant_harm": "no", "consent": "given", **data}
    if key != "sg_early_help":
        body = data
    return api.post("/cases", json={"process": key, "reference": "FAM-1", "data": body}, as_="user-keyworker")


def _at(instant: datetime):
    return clock.set_clock(clock.FixedClock(instant))


def _urgent(case: dict) -> dict:
    [task] = [t for t in case["tasks"] if t["name"].startswith(("Task_UrgentReferral", "Task_FrontDoorReferral"))]
    return task


# -- at deploy: the conventions ------------------------------------------------------------------

def _edit(name: str, old: str, new: str) -> tuple[str, bytes]:
    text = (SAFEGUARDING / name).read_text()
    assert old in text, old
    return name, text.replace(old, new).encode()


def _form(name: str, change) -> tuple[str, bytes]:
    document = json.loads((SAFEGUARDING / name).read_text())
    change(document["components"])
    return name, json.dumps(document).encode()


def _refused(api, *replaced: tuple[str, bytes]) -> list[dict]:
    response = _deploy(api, _files(**dict(replaced)))
    assert response.status_code == 400, response.json
    return response.json["errors"]


def test_a_pathway_that_does_not_catch_immediate_risk_is_refused(api):
    problems = _refused(api, _edit("sg_plan.bpmn", 'name="immediate_risk"', 'name="something_else"'))
    assert [(p["file"], p["element"]) for p in problems] == [("sg_plan.bpmn", "sg_plan")]
    assert "immediate_risk" in problems[0]["message"]


def test_immediate_risk_must_not_end_a_statutory_pathway(api):
    problems = _refused(api, _edit("sg_forgetful.bpmn", 'isInterrupting="false"', 'isInterrupting="true"'))
    assert [p["element"] for p in problems] == ["Event_ImmediateRisk_sg_forgetful"]
    assert "reviews go on" in problems[0]["message"]


def test_significant_harm_must_be_a_required_yes_no_unsure_radio(api):
    def checkbox(components):
        components[0] = {"type": "checkbox", "key": "significant_harm", "label": "Significant harm"}
    problems = _refused(api, _form("sg_visit.form", checkbox))
    assert [(p["file"], p["element"]) for p in problems] == [("sg_visit.form", "significant_harm")]
    assert "yes, no, unsure" in problems[0]["message"]


def test_consent_must_offer_refused_and_ask_who_agreed_an_override(api):
    def no_refused(components):
        components[0]["values"] = [v for v in components[0]["values"] if v["value"] != "refused"]
        del components[2]
    problems = _refused(api, _form("sg_plan_start.form", no_refused))
    assert {p["element"] for p in problems} == {"consent"}
    assert any("given, refused, not_sought" in p["message"] for p in problems)
    assert any("consent_override_agreed_by" in p["message"] for p in problems)


def test_every_end_of_a_pathway_names_its_outcome(api):
    problems = _refused(api, _edit("sg_plan.bpmn", '<camunda:property name="outcome" value="closed" />', ""))
    assert [p["element"] for p in problems] == ["Event_Closed"]


def test_every_reference_pathway_follows_the_conventions():
    files = read_folders(ROOT)
    for council in ("carmarthenshire", "somerset", "halton", "afc", "rochdale"):
        bundle = build_bundle({name: content for name, content in files.items() if name.startswith(council)})
        assert conventions.problems(bundle) == [], council
        for key, process in bundle.processes.items():
            assert process.safeguarding.catches_immediate_risk, key
            assert process.safeguarding.urgent_tasks, key


# -- immediate risk, 24 hours a day ---------------------------------------------------------------

def test_immediate_risk_out_of_hours_goes_to_the_emergency_duty_team_and_escalates_at_the_hour(deployed, app):
    previous = _at(FRIDAY_6PM)
    try:
        case = _start(deployed).json
        response = deployed.post(f"/cases/{case['id']}/messages", json={"name": "immediate_risk", "data": WHAT},
                                 as_="user-keyworker")
        assert response.status_code == 200, response.json
        urgent = _urgent(response.json)
        assert "emergency_duty_team" in urgent["roles"] and "front_door" in urgent["roles"]
        assert datetime.fromisoformat(urgent["due_at"]) == FRIDAY_6PM + timedelta(hours=1)
        assert response.json["data"]["what_happened"] == WHAT["what_happened"]
        edt_inbox = deployed.get("/tasks", as_="user-emergency_duty_team").json
        assert [t["id"] for t in edt_inbox] == [urgent["id"]]

        assert scheduler.fire_due(app, FRIDAY_6PM + timedelta(minutes=59, seconds=59)) == 0
        assert scheduler.fire_due(app, FRIDAY_6PM + timedelta(hours=1)) == 1
        assert scheduler.fire_due(app, FRIDAY_6PM + timedelta(hours=2)) == 0  # exactly once
        with app.app_context(), everything():
            told = db.session.scalars(db.select(Notification).where(Notification.kind == "escalation")).all()
            people = {n.user_id for n in told}
            assert len(told) == 1 and "Urgent" in told[0].subject
            assert told[0].email_next_attempt_at is None or told[0].email_next_attempt_at <= FRIDAY_6PM + timedelta(hours=1)
        manager = deployed.get("/notifications", as_="user-emergency_duty_manager").json
        assert [n["kind"] for n in manager] == ["escalation"]
        assert len(people) == 1
    finally:
        clock.set_clock(previous)


def test_immediate_risk_in_office_hours_escalates_to_the_team_manager_unless_picked_up(deployed, app):
    previous = _at(MONDAY_10AM)
    try:
        first = _start(deployed).json
        second = deployed.post("/cases", json={"process": "sg_early_help", "reference": "FAM-2", "data": {
            "concerns": "x", "significant_harm": "no", "consent": "given"}}, as_="user-keyworker").json
        urgent = [_urgent(deployed.post(f"/cases/{c['id']}/messages", json={"name": "immediate_risk", "data": WHAT},
                                        as_="user-keyworker").json) for c in (first, second)]
        assert all(u["roles"] == ["front_door"] for u in urgent)  # in office hours: the front door only
        assert datetime.fromisoformat(urgent[0]["due_at"]) == MONDAY_10AM + timedelta(hours=1)
        assert deployed.post(f"/tasks/{urgent[1]['id']}/claim", json={}, as_="front").status_code == 200
        assert scheduler.fire_due(app, MONDAY_10AM + timedelta(hours=1)) == 2
        managers = {name: deployed.get("/notifications", as_=name).json
                    for name in ("manager", "user-front_door_manager", "user-emergency_duty_manager")}
        assert [n["case_id"] for n in managers["manager"]] == [first["id"]]  # the one nobody picked up
        assert [n["case_id"] for n in managers["user-front_door_manager"]] == [first["id"]]
        assert managers["user-emergency_duty_manager"] == []
    finally:
        clock.set_clock(previous)


def test_a_completed_urgent_step_does_not_escalate(deployed, app):
    previous = _at(MONDAY_10AM)
    try:
        case = _start(deployed, significant_harm="yes").json
        urgent = _urgent(case)
        done = deployed.post(f"/tasks/{urgent['id']}/complete", json={"data": {"action_taken": "Strategy discussion held"}},
                             as_="front")
        assert done.status_code == 200, done.json
        with app.app_context(), everything():
            assert db.session.scalar(db.select(db.func.count()).select_from(PendingTimer)) == 0
        assert scheduler.fire_due(app, MONDAY_10AM + timedelta(hours=2)) == 0
    finally:
        clock.set_clock(previous)


def test_an_escalation_wakes_every_timer_service_at_once(deployed, app, monkeypatch):
    """The escalation is an hour away, beyond every process's safety sweep (no NOTIFY needed by the horizon), yet
    its commit tells every process on PostgreSQL and this process's own timer service on any database: a child
    at risk never waits on a sweep that runs late."""
    from sqlalchemy import event

    reread, sent = [], []

    class Service:
        def reread(self):
            reread.append(True)

    def seen(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    monkeypatch.setattr(scheduler, "_running_services", {Service()})
    with app.app_context():
        engine = db.engine
    previous = _at(MONDAY_10AM)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        case = _start(deployed, significant_harm="yes").json
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        clock.set_clock(previous)
    assert datetime.fromisoformat(_urgent(case)["due_at"]) == MONDAY_10AM + timedelta(hours=1)
    assert app.config["TIMER_SAFETY_INTERVAL_SECONDS"] * 2 < 3600  # beyond the horizon
    postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    assert len([s for s in sent if "pg_notify" in s]) == (1 if postgres else 0)
    assert reread == [True]


def test_raising_immediate_risk_says_what_happened(deployed):
    case = _start(deployed).json
    for data in ({}, {"what_happened": "   "}, {"what_happened": 3}):
        response = deployed.post(f"/cases/{case['id']}/messages", json={"name": "immediate_risk", "data": data},
                                 as_="user-keyworker")
        assert response.status_code == 422, data
        assert "what_happened" in response.json["errors"]


def test_a_second_report_of_immediate_risk_has_its_own_account(deployed):
    case = deployed.post("/cases", json={"process": "sg_forgetful", "reference": "FAM-8", "data": {}},
                         as_="user-keyworker").json
    send = lambda text: deployed.post(f"/cases/{case['id']}/messages",  # noqa: E731
                                      json={"name": "immediate_risk", "data": {"what_happened": text}},
                                      as_="user-keyworker")
    assert send("First: a bruise").status_code == 200
    assert case["id"] and send("Second: a disclosure").json["data"]["what_happened"] == "Second: a disclosure"


def test_anyone_who_can_see_the_case_can_raise_immediate_risk(deployed):
    case = _start(deployed).json
    response = deployed.post(f"/cases/{case['id']}/messages", json={"name": "immediate_risk", "data": WHAT},
                             as_="user-keyworker")
    assert response.status_code == 200, response.json


def test_immediate_risk_in_a_statutory_case_keeps_its_reviews(deployed):
    case = deployed.post("/cases", json={"process": "sg_forgetful", "reference": "FAM-3", "data": {}},
                         as_="user-keyworker").json
    after = deployed.post(f"/cases/{case['id']}/messages", json={"name": "immediate_risk", "data": WHAT},
                          as_="user-keyworker").json
    assert after["status"] == "active"
    assert {t["name"] for t in after["tasks"]} == {"Task_Visit", "Task_UrgentReferral_sg_forgetful"}


# -- rule 1: significant harm reaches the front door first ----------------------------------------

def test_significant_harm_at_the_start_opens_the_urgent_referral_first(deployed, frozen_clock):
    case = _start(deployed, significant_harm="yes").json
    assert [t["name"] for t in case["tasks"]] == ["Task_FrontDoorReferral"]
    urgent = _urgent(case)
    assert datetime.fromisoformat(urgent["due_at"]) == frozen_clock.now() + timedelta(hours=1)


def test_significant_harm_ignored_by_the_drawing_is_referred_by_the_service(deployed):
    case = deployed.post("/cases", json={"process": "sg_forgetful", "reference": "FAM-4", "data": {}},
                         as_="user-keyworker").json
    [visit] = case["tasks"]
    done = deployed.post(f"/tasks/{visit['id']}/complete", json={"data": {"significant_harm": "yes"}}, as_="user-keyworker")
    assert done.status_code == 200, done.json
    assert {t["name"] for t in done.json["tasks"]} == {"Task_Review", "Task_UrgentReferral_sg_forgetful"}
    history = deployed.get(f"/cases/{case['id']}/history", as_="user-keyworker").json
    assert "significant_harm_referred" in [e["event"] for e in history]
    assert "Statutory visit" in done.json["data"]["what_happened"]


def test_significant_harm_no_or_unsure_goes_on_as_drawn(deployed):
    case = deployed.post("/cases", json={"process": "sg_forgetful", "reference": "FAM-5", "data": {}},
                         as_="user-keyworker").json
    done = deployed.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"significant_harm": "unsure"}},
                         as_="user-keyworker").json
    assert [t["name"] for t in done["tasks"]] == ["Task_Review"]


# -- rule 3: consent, both ways ------------------------------------------------------------------

def test_consent_not_sought_needs_the_reason_and_who_agreed(deployed):
    response = _start(deployed, consent="not_sought")
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"consent_override_reason", "consent_override_agreed_by"}
    response = _start(deployed, consent="not_sought", consent_override_reason="undue_delay",
                      consent_override_agreed_by="Tess Team Manager", significant_harm="yes")
    assert response.status_code == 201, response.json
    assert response.json["data"]["consent_override_agreed_by"] == "Tess Team Manager"


def test_a_missing_consent_override_never_holds_up_significant_harm(deployed):
    response = _start(deployed, consent="not_sought", significant_harm="yes")
    assert response.status_code == 201, response.json
    assert [t["name"] for t in response.json["tasks"]] == ["Task_FrontDoorReferral"]


def test_a_hidden_override_reason_is_not_kept(deployed):
    response = _start(deployed, consent="given", consent_override_reason="undue_delay")
    assert response.status_code == 201
    assert "consent_override_reason" not in response.json["data"]


def test_a_voluntary_service_never_starts_without_consent_given(deployed):
    for consent, extra in (("refused", {}), ("not_sought", {"consent_override_reason": "increase_risk",
                                                             "consent_override_agreed_by": "A manager"})):
        response = deployed.post("/cases", json={"process": "sg_plan", "reference": "FAM-6",
                                                 "data": {"consent": consent, **extra}}, as_="user-keyworker")
        assert response.status_code == 422, consent
        assert "consent" in response.json["errors"]
    assert deployed.post("/cases", json={"process": "sg_plan", "reference": "FAM-6",
                                         "data": {"consent": "given"}}, as_="user-keyworker").status_code == 201


def test_a_step_that_would_enrol_the_family_without_consent_is_refused_and_nothing_changes(deployed):
    case = _start(deployed, consent="refused").json
    [visit] = case["tasks"]
    response = deployed.post(f"/tasks/{visit['id']}/complete", json={"data": {"significant_harm": "no"}}, as_="user-keyworker")
    assert response.status_code == 422
    assert "voluntary service" in response.json["message"]
    again = deployed.get(f"/cases/{case['id']}", as_="user-keyworker").json
    assert again["status"] == "active" and [t["id"] for t in again["tasks"]] == [visit["id"]]
