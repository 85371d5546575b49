"""The REST contract, driven over HTTP with a small pathway that uses every engine feature."""
from __future__ import annotations

import threading
from datetime import timedelta

from conftest import FIXTURES, everything
from service import scheduler
from service.engine import runtime

PATHWAY = FIXTURES / "pathways"


def start(api, needs=3, reference="FAM-1"):
    response = api.post("/cases", json={"process": "test_review", "reference": reference, "data": {"needs": needs}})
    assert response.status_code == 201, response.json
    return response.json


def test_every_call_needs_a_valid_token(api):
    assert api.get("/processes", as_=None).status_code == 401
    response = api.get("/processes", headers={"Authorization": "Bearer nope"}, as_=None)
    assert response.status_code == 401
    assert "Bearer" in response.json["message"]


def test_only_an_analyst_deploys(api):
    response = api.deploy(PATHWAY, as_="worker")
    assert response.status_code == 403
    assert "analyst" in response.json["message"]


def test_deploying_unchanged_files_makes_no_new_version(api):
    first = api.deploy(PATHWAY)
    assert first.status_code == 201, first.json
    assert first.json["processes"] == [{"key": "test_review", "name": "Test review", "version": 1, "status": "published"}]
    again = api.deploy(PATHWAY)
    assert again.json["id"] == first.json["id"]
    assert again.json["processes"][0]["version"] == 1


def test_process_lists_roles_and_start_form(api):
    api.deploy(PATHWAY)
    assert api.get("/processes").json == [{"key": "test_review", "name": "Test review", "version": 1}]
    process = api.get("/processes/test_review").json
    assert process["roles"] == ["front_door", "social_worker", "team_manager"]
    assert process["start_form"]["fields"] == [
        {"key": "needs", "label": "Number of needs", "type": "number", "required": True, "options": []}]
    assert api.get("/processes/nothing").status_code == 404


def test_start_validates_the_start_form(api):
    api.deploy(PATHWAY)
    response = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {}})
    assert response.status_code == 422
    assert "needs" in response.json["errors"]
    response = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": "x"}})
    assert response.status_code == 422
    assert api.post("/cases", json={"process": "nope", "reference": "F", "data": {}}).status_code == 404


def test_a_case_runs_from_start_to_end(api, frozen_clock):
    api.deploy(PATHWAY)
    case = start(api)
    assert case["status"] == "active" and case["version"] == 1
    [task] = case["tasks"]
    assert task["name"] == "Task_Assess" and task["roles"] == ["social_worker"]
    assert task["due_at"].startswith("2026-12-23T09:00")
    assert {t["name"] for t in case["timers"]} == {"Event_RemindWorker", "Event_Escalate"}
    assert [f["key"] for f in task["form"]["fields"]] == ["risk", "summary"]

    inbox = api.get("/tasks").json
    assert [t["id"] for t in inbox] == [task["id"]]
    assert api.get("/tasks", as_="manager").json == []

    response = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": "yes"}})
    assert response.status_code == 422 and "risk" in response.json["errors"]
    response = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}})
    assert response.status_code == 200, response.json
    case = response.json
    assert case["data"]["level"] == "acute"
    [approve] = case["tasks"]
    assert approve["name"] == "Task_Approve"

    assert api.post(f"/tasks/{approve['id']}/complete", json={"data": {}}).status_code == 403
    done = api.post(f"/tasks/{approve['id']}/complete", json={"data": {}}, as_="manager").json
    assert done["status"] == "completed" and done["data"]["outcome"] == "stepped_up"
    assert done["tasks"] == [] and done["timers"] == []

    events = [e["event"] for e in api.get(f"/cases/{case['id']}/history").json]
    assert events == ["case_started", "task_completed", "decision_taken", "task_completed", "case_completed"]
    decision = api.get(f"/cases/{case['id']}/history").json[2]["detail"]
    assert decision["matched_rules"][0]["id"] == "Rule_Acute"


def test_a_completed_task_is_no_longer_open(api):
    api.deploy(PATHWAY)
    task = start(api, needs=1)["tasks"][0]
    assert api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": False}}).status_code == 200
    again = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": False}})
    assert again.status_code == 409
    assert "no longer open" in again.json["message"]
    assert api.post("/tasks/not-a-task/complete", json={"data": {}}).status_code == 404


def test_unknown_case_is_404_and_other_roles_get_403(api, tokens, app):
    api.deploy(PATHWAY)
    case = start(api)
    assert api.get("/cases/999999").status_code == 404
    with app.app_context(), everything():
        from conftest import save_user
        from service.models import db
        save_user(db.session, "outsider", ["youth_worker"], token="token-outsider")
        db.session.commit()
    api.tokens["outsider"] = "token-outsider"
    assert api.get(f"/cases/{case['id']}", as_="outsider").status_code == 403


def test_messages_reach_only_what_waits_for_them(api):
    api.deploy(PATHWAY)
    case = start(api, needs=1)
    response = api.post(f"/cases/{case['id']}/messages", json={"name": "family_update", "data": {}})
    assert response.status_code == 409
    assert response.json["waiting"] == ["immediate_risk"]
    api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"risk": False}})
    response = api.post(f"/cases/{case['id']}/messages", json={"name": "family_update", "data": {"moved": True}})
    assert response.status_code == 200
    assert response.json["data"]["outcome"] == "closed" and response.json["data"]["moved"] is True


def test_immediate_risk_interrupts_every_waiting_step(api, frozen_clock):
    api.deploy(PATHWAY)
    case = start(api)
    response = api.post(f"/cases/{case['id']}/messages", json={"name": "immediate_risk",
                                                                   "data": {"what_happened": "A disclosure at school"}})
    case = response.json
    assert [t["name"] for t in case["tasks"]] == ["Task_UrgentReferral"]
    # the engine's timers went with the steps; the one left is the escalation the service adds
    assert [t["name"] for t in case["timers"]] == ["safeguarding:urgent_escalation"]
    assert case["tasks"][0]["due_at"].startswith("2026-12-21T10:00")  # within the hour, not the working day
    assert api.get("/tasks").json == []
    done = api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}}, as_="front").json
    assert done["status"] == "completed" and done["data"]["outcome"] == "safeguarding_referral"


def test_an_engine_error_keeps_the_last_good_state(api):
    api.deploy(PATHWAY)
    case = start(api, needs=3)  # the table deliberately has no rule for three needs without risk
    task = case["tasks"][0]
    response = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": False}})
    assert response.status_code == 200
    case = response.json
    assert case["status"] == "error"
    assert case["error"]["element"] == "Task_Level"
    assert "Level of need" in case["error"]["message"] or "test_level" in case["error"]["message"]
    assert [t["id"] for t in case["tasks"]] == [task["id"]]  # still waiting where it was
    history = api.get(f"/cases/{case['id']}/history").json
    assert history[-1]["event"] == "error"
    fixed = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}}).json
    assert fixed["status"] == "active" and fixed["tasks"][0]["name"] == "Task_Approve"


def test_two_workers_racing_exactly_one_wins(api, app, monkeypatch):
    api.deploy(PATHWAY)
    task = start(api, needs=1)["tasks"][0]
    both_loaded = threading.Barrier(2, timeout=20)
    real_complete = runtime.complete_task

    def complete_after_both_loaded(*args, **kwargs):
        both_loaded.wait()  # each worker has read the case before either writes
        return real_complete(*args, **kwargs)

    monkeypatch.setattr(runtime, "complete_task", complete_after_both_loaded)
    results = []

    def worker(answer):
        results.append(app.test_client().post(f"/api/v1/tasks/{task['id']}/complete",
                                              json={"data": {"risk": answer}},
                                              headers={"Authorization": "Bearer token-worker"}).status_code)

    threads = [threading.Thread(target=worker, args=(answer,)) for answer in (False, True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [200, 409]
    history = api.get(f"/cases/{task['case_id']}/history").json
    assert [e["event"] for e in history].count("task_completed") == 1


def test_timers_fire_and_notify(api, app, frozen_clock):
    api.deploy(PATHWAY)
    case = start(api)
    frozen_clock.advance(days=2, minutes=1)
    assert scheduler.fire_due(app) == 1
    notes = api.get("/notifications").json
    assert [n["kind"] for n in notes] == ["reminder"]
    assert "Assess the family" in notes[0]["subject"] and "FAM-1" in notes[0]["subject"]
    frozen_clock.advance(days=7)
    assert scheduler.fire_due(app) == 1
    assert [n["kind"] for n in api.get("/notifications", as_="manager").json] == ["escalation"]
    overdue = api.get("/tasks?overdue=true", as_="admin").json
    assert [t["case_id"] for t in overdue] == [case["id"]]
    assert scheduler.fire_due(app, frozen_clock.now() + timedelta(days=1)) == 0


def test_openapi_document_is_served(api):
    spec = api.get("/openapi.json", as_=None).json
    assert "/api/v1/cases" in spec["paths"] or "/cases" in str(spec["paths"])


def test_an_optional_field_left_out_keeps_what_the_case_knows():
    from werkzeug.datastructures import MultiDict

    from service.cases import _validated
    from service.forms import form_from_formjs

    form = form_from_formjs({"id": "Form_Test", "type": "default", "components": [
        {"id": "Field_A", "key": "plan", "label": "Plan", "type": "textfield", "validate": {"required": True}},
        {"id": "Field_B", "key": "review_date", "label": "Review date", "type": "datetime", "subtype": "date"},
        {"id": "Field_C", "key": "notes", "label": "Notes", "type": "textarea"}]}, "test.form")
    known = {"plan": "Fortnightly visits", "notes": "Met the family", "review_date": "2027-03-01"}
    assert _validated(form, {"plan": "Weekly visits"}) == {"plan": "Weekly visits", "notes": None,
                                                           "review_date": None}
    assert _validated(form, {"plan": "Weekly visits"}, known=known) == {"plan": "Weekly visits"}
    assert _validated(form, {"plan": "Weekly visits", "notes": None}, known=known) == {
        "plan": "Weekly visits", "notes": None}
    html = MultiDict({"plan": "Weekly visits", "notes": "", "review_date-day": "", "review_date-month": "",
                      "review_date-year": ""})
    assert _validated(form, html, "html", known=known) == {"plan": "Weekly visits", "notes": None,
                                                            "review_date": None}


def test_a_reference_is_found_by_any_part_of_it_in_any_case(api):
    """Issue 16: a reference search (``reference=`` and ``q=``) matches any part of the council's case number,
    upper or lower case, ``%`` and ``_`` as themselves; it ranges over the references' suffixes (an index that
    row-level security lets PostgreSQL use), so it finds exactly what a substring match finds."""
    api.deploy(PATHWAY)
    for reference in ("FAM-12", "fam-3_x", "ROC-100%", "Fam-1ab"):
        start(api, reference=reference)

    def found(query: str) -> list[str]:
        response = api.get(f"/cases?{query}")
        assert response.status_code == 200, response.json
        return sorted(case["reference"] for case in response.json["cases"])

    assert found("reference=am-1") == ["FAM-12", "Fam-1ab"]
    assert found("reference=FAM-12") == ["FAM-12"]  # the whole reference
    assert found("reference=12") == ["FAM-12"]  # its end
    assert found("reference=roc") == ["ROC-100%"]  # its start
    assert found("reference=_X") == ["fam-3_x"]  # _ is not a wildcard
    assert found("reference=%25") == ["ROC-100%"]  # nor is %
    assert found("q=1AB") == ["Fam-1ab"]
    assert found("reference=12x") == [] and found("reference=fam-13") == []
