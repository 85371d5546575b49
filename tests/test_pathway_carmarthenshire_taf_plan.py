"""The Carmarthenshire Team Around the Family plan, through the REST API, over a year of simulated time.

Protocol: /work/shared/protocols/carmarthenshire-taf.txt, sections 1, 4 and 7. Outcomes: closed_outcomes_met,
family_withdrew, stepped_up (hand-over start:carmarthenshire_step_up), safeguarding_referral.
"""
from __future__ import annotations


import pytest

from service import scheduler
from carmarthenshire_helpers import ApiCase, london, notes, prepare, when  # noqa: F401

KEY = "carmarthenshire_taf_plan"
ROLES = ["taf_coordinator", "keyworker", "taf_manager", "crt"]
REFERRAL = {"family_name": "Price", "referrer": "Health visitor", "family_outcomes": "Settled sleep; nursery place",
            "consent": "given"}
PLAN = {"jaff_part_2_complete": True, "plan_outcomes": "Sleep routine; nursery", "plan_agreed_with_family": True}


class Case(ApiCase):
    key, role, reference = KEY, "taf_coordinator", "CARM-PLAN-1"


@pytest.fixture
def api(pathways, frozen_clock):
    return prepare(pathways, frozen_clock, ROLES)



def allocated(api, **extra):
    """A referral accepted at the allocation meeting, keyworker selected, JAFF part 2 open."""
    case = Case(api, {**REFERRAL, **extra})
    case.complete("Task_AllocationMeeting", {"allocation_decision": "multi_agency", "taf_number": "TAF-9",
                                             "taf_coordinator_name": "user-taf_coordinator", "keyworker_agency": "Flying Start"},
                  "taf_coordinator")
    case.complete("Task_SelectKeyworker", {"keyworker_name": "user-keyworker"}, "keyworker")
    return case


def reviewing(api):
    case = allocated(api)
    case.complete("Task_JaffPart2", PLAN, "keyworker")
    return case


def test_process_definition(api):
    process = api.get(f"/processes/{KEY}", as_="admin").json
    assert process["roles"] == ["crt", "keyworker", "taf_coordinator"]  # taf_manager: escalations only
    # required when shown: the override's reason and who agreed show only when consent is not sought
    assert [f["key"] for f in process["start_form"]["fields"] if f["required"]] == [
        "family_outcomes", "consent", "consent_override_reason", "consent_override_agreed_by"]


def test_a_year_of_3_monthly_reviews_then_closed_outcomes_met(api):
    case = Case(api, REFERRAL)
    meeting = case.task("Task_AllocationMeeting")
    assert meeting["roles"] == ["taf_coordinator"]
    assert when(meeting["due_at"]) == london(2027, 1, 13, 10, 0)
    api.clock.move_to(london(2027, 1, 13, 11, 0))
    case.complete("Task_AllocationMeeting", {"allocation_decision": "multi_agency", "taf_number": "TAF-9",
                                             "taf_coordinator_name": "user-taf_coordinator", "keyworker_agency": "Flying Start"},
                  "taf_coordinator")
    task = case.task("Task_SelectKeyworker")
    assert (task["roles"], when(task["due_at"])) == (["keyworker"], london(2027, 1, 20, 11, 0))
    api.clock.move_to(london(2027, 1, 14, 9, 0))
    case.complete("Task_SelectKeyworker", {"keyworker_name": "user-keyworker"}, "keyworker")
    task = case.task("Task_JaffPart2")
    assert when(task["due_at"]) == london(2027, 2, 11, 9, 0)  # 20 working days
    assert task["assignee"] == "user-keyworker"  # the keyworker chosen is a user of the role, and does the plan
    assert case.timers() == {"Event_JaffPart2Reminder": london(2027, 2, 11, 9, 0),
                             "Event_JaffPart2Escalation": london(2027, 2, 18, 9, 0)}
    api.clock.move_to(london(2027, 2, 18, 9, 0))
    assert scheduler.fire_due(api.app) == 2
    assert notes(api, "keyworker") == [("reminder", "JAFF part 2 and the plan are due")]
    assert notes(api, "taf_manager") == [("escalation", "JAFF part 2 and the plan are a week overdue")]
    case.complete("Task_JaffPart2", PLAN, "keyworker")

    # Review 1: due 3 months after the plan; the keyworker is reminded on the day.
    review = case.task("Task_ReviewPlan")
    assert (review["roles"], when(review["due_at"])) == (["keyworker"], london(2027, 5, 18, 9, 0))
    assert case.timers() == {"Event_ReviewPlanReminder": london(2027, 5, 18, 9, 0),
                             "Event_ReviewPlanEscalation": london(2027, 6, 1, 9, 0)}
    api.clock.move_to(london(2027, 5, 18, 9, 0))
    assert scheduler.fire_due(api.app) == 1
    assert notes(api, "keyworker")[0] == ("reminder", "The 3-monthly TAF plan review is due")
    api.clock.move_to(london(2027, 5, 18, 10, 0))
    case.complete("Task_ReviewPlan", {"review_outcome": "continue", "review_progress": "Sleep better"}, "keyworker")

    # Review 2: let it run two weeks overdue: the TAF manager is told, the review stays open.
    assert when(case.task("Task_ReviewPlan")["due_at"]) == london(2027, 8, 18, 10, 0)
    api.clock.move_to(london(2027, 9, 1, 10, 0))
    assert scheduler.fire_due(api.app) == 2
    assert notes(api, "taf_manager")[0] == ("escalation", "The 3-monthly TAF plan review is two weeks overdue")
    assert case.open() == ["Task_ReviewPlan"]
    assert case.timers() == {}
    case.complete("Task_ReviewPlan", {"review_outcome": "continue"}, "keyworker")

    # Review 3: held early, nothing fires; the next is due 3 months after it.
    assert when(case.task("Task_ReviewPlan")["due_at"]) == london(2027, 12, 1, 10, 0)
    api.clock.move_to(london(2027, 11, 1, 10, 0))
    assert scheduler.fire_due(api.app) == 0
    case.complete("Task_ReviewPlan", {"review_outcome": "continue"}, "keyworker")

    # Review 4, a year on: outcomes met, the coordinator closes the plan.
    assert when(case.task("Task_ReviewPlan")["due_at"]) == london(2028, 2, 1, 10, 0)
    api.clock.move_to(london(2028, 2, 1, 10, 0))
    assert scheduler.fire_due(api.app) == 1
    assert case.open() == ["Task_ReviewPlan"]  # one review at a time: the case does not grow
    assert len(case.timers()) == 1
    case.complete("Task_ReviewPlan", {"review_outcome": "outcomes_met"}, "keyworker")
    task = case.task("Task_CloseTaf")
    assert (task["roles"], when(task["due_at"])) == (["taf_coordinator"], london(2028, 2, 8, 10, 0))
    case.complete("Task_CloseTaf", {"closure_on_care_first": True, "agencies_informed": True}, "taf_coordinator")
    assert (case.json["status"], case.json["outcome"]) == ("completed", "closed_outcomes_met")
    reviews = [e for e in case.history() if e["event"] == "task_completed" and e["task"] == "Task_ReviewPlan"]
    assert len(reviews) == 4
    fired = [e["task"] for e in case.history() if e["event"] == "timer_fired"]
    assert sorted(fired) == sorted(["Event_JaffPart2Reminder", "Event_JaffPart2Escalation"]
                                   + ["Event_ReviewPlanReminder"] * 3 + ["Event_ReviewPlanEscalation"])


def test_review_family_wish_to_withdraw(api):
    case = reviewing(api)
    case.complete("Task_ReviewPlan", {"review_outcome": "family_withdraws"}, "keyworker")
    task = case.task("Task_RecordWithdrawal")
    assert task["roles"] == ["taf_coordinator"]
    case.complete("Task_RecordWithdrawal", {"withdrawal_on_care_first": True, "agencies_informed": True},
                  "taf_coordinator")
    assert case.json["outcome"] == "family_withdrew"


@pytest.mark.parametrize("stage", ["Task_AllocationMeeting", "Task_SelectKeyworker", "Task_JaffPart2",
                                   "Task_ReviewPlan"])
def test_family_can_withdraw_at_any_time(api, stage):
    case = Case(api, REFERRAL)
    for name, data, role in [
        ("Task_AllocationMeeting", {"allocation_decision": "single_agency", "taf_coordinator_name": "user-taf_coordinator",
                                    "keyworker_agency": "School"}, "taf_coordinator"),
        ("Task_SelectKeyworker", {"keyworker_name": "user-keyworker"}, "keyworker"),
        ("Task_JaffPart2", PLAN, "keyworker"),
    ]:
        if name == stage:
            break
        case.complete(name, data, role)
    assert case.open() == [stage]
    case.message("family_withdrew", {"withdrawal_reason": "Managing on our own"})
    assert case.open() == ["Task_RecordWithdrawal"]
    assert case.timers() == {}
    case.complete("Task_RecordWithdrawal", {"withdrawal_on_care_first": True, "agencies_informed": True},
                  "taf_coordinator")
    assert (case.json["status"], case.json["outcome"]) == ("completed", "family_withdrew")
    assert case.json["data"]["withdrawal_reason"] == "Managing on our own"


def step_up_from_review(api, case, significant_harm="no"):
    case.complete("Task_ReviewPlan", {"review_outcome": "step_up", "concerns": "Neglect getting worse",
                                      "significant_harm": significant_harm}, "keyworker")
    handed = [e for e in case.history() if e["event"] == "case_handed_on"]
    assert [e["detail"]["process"] for e in handed] == ["carmarthenshire_step_up"]
    return handed[0]["detail"]["to_case"]


def test_review_step_up_starts_the_step_up_and_the_plan_keeps_its_reviews(api):
    """Section 7: TAF does not close on a step up; the plan's 3-monthly review goes on until the step up's outcome."""
    case = reviewing(api)
    api.clock.move_to(london(2027, 3, 1, 10, 0))
    up_id = step_up_from_review(api, case)
    assert case.json["status"] == "active"
    review = case.task("Task_ReviewPlan")
    assert when(review["due_at"]) == london(2027, 6, 1, 10, 0)  # the next review, 3 months on
    up = api.get(f"/cases/{up_id}", as_="admin").json
    assert (up["process"], up["reference"], up["status"]) == ("carmarthenshire_step_up", "CARM-PLAN-1", "active")
    assert (up["data"]["concerns"], up["data"]["keyworker_name"], up["data"]["allocation_decision"]) == (
        "Neglect getting worse", "user-keyworker", "multi_agency")
    # Multi-agency TAF, no significant harm: straight to the coordinator's record of the concerns.
    assert [t["name"] for t in up["tasks"]] == ["Task_RecordConcerns"]


def test_already_allocated_referral_skips_the_allocation_meeting(api):
    case = Case(api, {**REFERRAL, "allocation_decision": "single_agency"})
    assert case.open() == ["Task_JaffPart2"]


def test_immediate_risk_keeps_the_plan_open(api):
    case = reviewing(api)
    api.clock.move_to(london(2027, 2, 3, 16, 0))
    case.message("immediate_risk", {"risk_reported_by": "nursery"})
    assert case.open() == ["Task_ReviewPlan", "Task_UrgentCrtReferral"]
    task = case.task("Task_UrgentCrtReferral")
    assert (task["roles"], when(task["due_at"])) == (["crt"], london(2027, 2, 3, 17, 0))
    case.complete("Task_UrgentCrtReferral", {"risk_summary": "Injury", "crt_manager_phoned": True}, "crt")
    assert case.json["status"] == "active"  # TAF does not close: the next review decides
    assert case.open() == ["Task_ReviewPlan"]
    case.complete("Task_ReviewPlan", {"review_outcome": "outcomes_met"}, "keyworker")
    case.complete("Task_CloseTaf", {"closure_on_care_first": True, "agencies_informed": True}, "taf_coordinator")
    assert (case.json["status"], case.json["outcome"]) == ("completed", "closed_outcomes_met")


def test_referral_still_open_when_the_plan_ends(api):
    """The plan's end gives the outcome; the case completes only once the urgent referral is made too."""
    case = reviewing(api)
    case.message("immediate_risk")
    case.complete("Task_ReviewPlan", {"review_outcome": "family_withdraws"}, "keyworker")
    case.complete("Task_RecordWithdrawal", {"withdrawal_on_care_first": True, "agencies_informed": True},
                  "taf_coordinator")
    assert case.json["status"] == "active"  # the urgent referral is still owed
    case.complete("Task_UrgentCrtReferral", {"risk_summary": "x", "crt_manager_phoned": True}, "crt")
    assert (case.json["status"], case.json["outcome"]) == ("completed", "family_withdrew")
    assert [e["task"] for e in case.history() if e["event"] == "task_completed"][-1] == "Task_UrgentCrtReferral"
