"""Issue 2's promise: a worker takes a Carmarthenshire step-down case from start to end through the REST API,
and the state survives a restart of the service (a new app, nothing cached)."""
from __future__ import annotations

from datetime import datetime

from conftest import Api
from service import create_app, scheduler
from service.engine.clock import LONDON


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def only_task(case: dict, name: str) -> dict:
    [task] = [t for t in case["tasks"] if t["name"] == name]
    return task


def test_step_down_from_start_to_end_over_http_across_a_restart(pathways, frozen_clock, tmp_path):
    frozen_clock.move_to(london(2027, 1, 4, 9, 0))
    worker, coordinator = pathways.as_role("social_worker"), pathways.as_role("taf_coordinator")
    process = pathways.get("/processes/carmarthenshire_step_down").json
    assert process["start_form"]["fields"][0]["key"] == "weeks_open"

    case = pathways.post("/cases", as_=worker, json={
        "process": "carmarthenshire_step_down", "reference": "CARM-0001", "data": {"weeks_open": 9, "family_accepts_support": "yes",
                                                                         "safety_plan": "yes"}}).json
    assert case["data"]["route"] == "jaff_part_1"
    history = pathways.get(f"/cases/{case['id']}/history", as_=worker).json
    assert history[1]["event"] == "decision_taken" and history[1]["detail"]["matched_rules"][0]["index"] == 2

    task = only_task(case, "Task_CompleteJaffPart1")
    missing = pathways.post(f"/tasks/{task['id']}/complete", as_=worker, json={"data": {}})
    assert missing.status_code == 422 and "family_outcomes" in missing.json["errors"]
    case = pathways.post(f"/tasks/{task['id']}/complete", as_=worker, json={"data": {
        "family_outcomes": "Regular school attendance", "consent": "given", "consent_form": "signed",
        "shared_with_family": True}}).json
    task = only_task(case, "Task_CheckJaffPart1")
    assert pathways.post(f"/tasks/{task['id']}/complete", as_=worker, json={"data": {}}).status_code == 403
    case = pathways.post(f"/tasks/{task['id']}/complete", as_=coordinator,
                         json={"data": {"jaff_complete": True}}).json
    allocation = only_task(case, "Task_AllocationDecision")
    assert allocation["due_at"].startswith("2027-01-06T10:00")  # the next Wednesday meeting

    # The service restarts: a new app on the same database, with no parsed specs cached (each app has its own).
    restarted = create_app({"SQLALCHEMY_DATABASE_URI": pathways.app.config["SQLALCHEMY_DATABASE_URI"],
                            "TIMERS_ENABLED": False, "TESTING": True})
    api = Api(restarted, pathways.tokens)
    assert api.get(f"/cases/{case['id']}", as_=coordinator).json == case

    frozen_clock.move_to(london(2027, 1, 7, 10, 5))
    assert scheduler.fire_due(restarted) == 1
    reminders = api.get("/notifications", as_=coordinator).json
    assert [n["subject"] for n in reminders] == ["Step-down allocation decision not yet recorded"]

    case = api.post(f"/tasks/{allocation['id']}/complete", as_=coordinator, json={"data": {
        "allocation_decision": "single_agency"}}).json
    task = only_task(case, "Task_ContactSocialWorker")
    case = api.post(f"/tasks/{task['id']}/complete", as_=coordinator, json={"data": {
        "social_worker_contacted": True, "meeting_date": "2027-01-14"}}).json
    task = only_task(case, "Task_StepDownMeeting")
    case = api.post(f"/tasks/{task['id']}/complete", as_=coordinator, json={"data": {
        "family_understands_taf": True, "personal_outcomes": "Routines", "intervention_plan": "Weekly sessions",
        "key_worker_agency": "Family support", "taf_start_date": "2027-01-18"}}).json
    assert [t["name"] for t in case["timers"]] == ["Event_TafSupportStarts"]

    frozen_clock.move_to(london(2027, 1, 18, 9, 0))
    assert scheduler.fire_due(restarted) == 1
    case = api.get(f"/cases/{case['id']}", as_=worker).json
    task = only_task(case, "Task_CloseToStatutoryServices")
    case = api.post(f"/tasks/{task['id']}/complete", as_=worker, json={"data": {"care_first_complete": True}}).json
    assert case["status"] == "completed" and case["data"]["outcome"] == "stepped_down"
    events = [e["event"] for e in api.get(f"/cases/{case['id']}/history", as_=worker).json]
    assert events.count("task_completed") == 6 and events.count("timer_fired") == 2
    assert events[-2:] == ["case_completed", "case_handed_on"]  # the family go on to the TAF plan
