"""The Carmarthenshire step-across pathway (CRT to TAF), through the REST API.

Protocol: /work/shared/protocols/carmarthenshire-taf.txt, sections 2, 8 and the step-across pathway; level of support in
dmn/carmarthenshire_level_of_support.dmn. Outcomes: declined, stepped_across (hand-over start:carmarthenshire_taf_plan),
safeguarding_referral.
"""
from __future__ import annotations


import pytest

from service import scheduler
from carmarthenshire_helpers import ApiCase, london, notes, prepare, when  # noqa: F401

KEY = "carmarthenshire_step_across"
ROLES = ["crt", "taf_coordinator", "taf_manager", "keyworker"]
TARGETED = {"significant_harm": "no", "number_of_needs": 3, "needs_met_by_taf": True, "family_engaging": True}
UNIVERSAL = {"significant_harm": "no", "number_of_needs": 0, "needs_met_by_taf": True, "family_engaging": True}


class Case(ApiCase):
    key, role, reference = KEY, "crt", "CARM-ACROSS-1"


@pytest.fixture
def api(pathways, frozen_clock):
    return prepare(pathways, frozen_clock, ROLES)



def jaff(level=TARGETED, **extra):
    return {"family_outcomes": "Calmer mornings; school every day", "not_discussed_sections": "Health: NOT DISCUSSED",
            "consent": "given", **level, **extra}


def to_meeting(api, level=TARGETED):
    case = Case(api, {"contact_summary": "Mother rang CRT asking for help with routines", "family_name": "Morgan"})
    case.complete("Task_CrtJaffPart1", jaff(level), "crt")
    return case


def test_process_definition(api):
    process = api.get(f"/processes/{KEY}", as_="admin").json
    assert process["roles"] == ["crt", "taf_coordinator", "taf_manager"]
    assert [f["key"] for f in process["start_form"]["fields"] if f["required"]] == ["contact_summary"]


def test_accepted_referral_steps_across_and_starts_the_taf_plan(api):
    case = Case(api, {"contact_summary": "Mother rang CRT asking for help", "family_name": "Morgan"})
    task = case.task("Task_CrtJaffPart1")
    assert task["roles"] == ["crt"]
    assert when(task["due_at"]) == london(2027, 1, 12, 9, 0)
    case.complete("Task_CrtJaffPart1", jaff(), "crt")
    assert case.rules("Task_LevelOfSupport") == [["Rule_MultipleNeedsTargeted"]]
    meeting = case.task("Task_AllocationMeeting")
    assert meeting["roles"] == ["taf_coordinator"]
    assert when(meeting["due_at"]) == london(2027, 1, 13, 10, 0)  # the next Wednesday
    assert case.timers() == {"Event_AllocationMeetingReminder": london(2027, 1, 14, 10, 0),
                             "Event_AllocationEscalation": london(2027, 1, 20, 10, 0)}
    api.clock.move_to(london(2027, 1, 14, 10, 0))
    assert scheduler.fire_due(api.app) == 1
    assert notes(api, "taf_coordinator") == [("reminder", "Step-across allocation decision not yet recorded")]
    case.complete("Task_AllocationMeeting", {"allocation_decision": "multi_agency", "taf_number": "TAF-77",
                                             "taf_coordinator_name": "user-taf_coordinator"}, "taf_coordinator")
    assert case.timers() == {"Event_RecordAllocationReminder": london(2027, 1, 15, 10, 0)}
    case.complete("Task_RecordAllocation", {"decision_on_care_first": True, "crt_emailed": True,
                                            "keyworker_agency": "Youth service", "keyworker_name": "Dafydd"},
                  "taf_coordinator")
    task = case.task("Task_AgreeStartDate")
    assert when(task["due_at"]) == london(2027, 1, 28, 10, 0)
    case.complete("Task_AgreeStartDate", {"taf_start_date": "2027-02-01", "start_date_logged": True}, "taf_coordinator")
    done = case.json
    assert (done["status"], done["outcome"]) == ("completed", "stepped_across")
    handed = [e for e in case.history() if e["event"] == "case_handed_on"]
    assert [e["detail"]["process"] for e in handed] == ["carmarthenshire_taf_plan"]
    plan = api.get(f"/cases/{handed[0]['detail']['to_case']}", as_="admin").json
    assert (plan["process"], plan["reference"], plan["started_from_case_id"]) == (
        "carmarthenshire_taf_plan", "CARM-ACROSS-1", case.id)
    data = plan["data"]
    assert (data["family_outcomes"], data["keyworker_name"], data["taf_number"], data["not_discussed_sections"]) == (
        "Calmer mornings; school every day", "Dafydd", "TAF-77", "Health: NOT DISCUSSED")
    assert "outcome" not in data
    # Allocated already: the plan goes straight to the keyworker's JAFF part 2.
    assert [t["name"] for t in plan["tasks"]] == ["Task_JaffPart2"]


def test_declined_at_the_allocation_meeting(api):
    case = to_meeting(api)
    case.complete("Task_AllocationMeeting", {"allocation_decision": "declined", "decline_reasons": "Single agency "
                                             "signposting fits"}, "taf_coordinator")
    task = case.task("Task_RecordDecline")
    assert task["roles"] == ["taf_coordinator"]
    response = api.post(f"/tasks/{task['id']}/complete", json={"data": {"decision_on_care_first": True}},
                        as_=api.as_role("taf_coordinator"))
    assert response.status_code == 422 and {"crt_emailed", "reasons_explained", "decline_reasons"} <= set(
        response.json["errors"])
    case.complete("Task_RecordDecline", {"decision_on_care_first": True, "crt_emailed": True,
                                         "reasons_explained": True, "decline_reasons": "Single agency signposting fits"},
                  "taf_coordinator")
    assert (case.json["status"], case.json["outcome"]) == ("completed", "declined")
    assert not [e for e in case.history() if e["event"] == "case_handed_on"]


@pytest.mark.parametrize("proceed, then", [("no", "Task_RecordDecline"), ("yes", "Task_AllocationMeeting")])
def test_unclear_level_is_discussed_with_a_coordinator_or_manager(api, proceed, then):
    case = to_meeting(api, UNIVERSAL)
    assert case.rules("Task_LevelOfSupport") == [["Rule_NoNeedsUniversal"]]
    task = case.task("Task_DiscussUnclearReferral")
    assert sorted(task["roles"]) == ["taf_coordinator", "taf_manager"]
    case.complete("Task_DiscussUnclearReferral", {"proceed_to_allocation": proceed,
                                                  "unclear_discussion_reason": "Talked to CRT"}, "taf_manager")
    assert case.open() == [then]


def test_allocation_a_week_overdue_goes_to_the_taf_manager(api):
    case = to_meeting(api)
    api.clock.move_to(london(2027, 1, 20, 10, 0))
    assert scheduler.fire_due(api.app) == 2
    assert ("escalation", "Step-across allocation overdue by a week: please decide") in notes(api, "taf_manager")
    task = case.task("Task_ManagerAllocationDecision")
    assert task["roles"] == ["taf_manager"]
    assert when(task["due_at"]) == london(2027, 1, 20, 17, 0)
    case.complete("Task_ManagerAllocationDecision", {"allocation_decision": "single_agency"}, "taf_manager")
    assert case.open() == ["Task_RecordAllocation"]


@pytest.mark.parametrize("stage", ["jaff", "allocation", "start_date"])
def test_immediate_risk_interrupts_every_stage(api, stage):
    case = Case(api, {"contact_summary": "x"})
    if stage != "jaff":
        case.complete("Task_CrtJaffPart1", jaff(), "crt")
    if stage == "start_date":
        case.complete("Task_AllocationMeeting", {"allocation_decision": "single_agency"}, "taf_coordinator")
        case.complete("Task_RecordAllocation", {"decision_on_care_first": True, "crt_emailed": True,
                                                "keyworker_agency": "School", "keyworker_name": "Ann"},
                      "taf_coordinator")
    case.message("immediate_risk", {"risk_reported_by": "police"})
    assert case.open() == ["Task_UrgentCrtReferral"]
    task = case.task("Task_UrgentCrtReferral")
    assert (task["roles"], when(task["due_at"])) == (["crt"], london(2027, 1, 11, 10, 0))  # within the hour
    # only the escalation the service adds is left, at the hour
    assert case.timers() == {"safeguarding:urgent_escalation": london(2027, 1, 11, 10, 0)}
    case.complete("Task_UrgentCrtReferral", {"risk_summary": "Disclosure", "crt_manager_phoned": True}, "crt")
    assert (case.json["status"], case.json["outcome"]) == ("completed", "safeguarding_referral")
    assert not [e for e in case.history() if e["event"] == "case_handed_on"]
