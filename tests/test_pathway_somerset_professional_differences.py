"""Somerset Resolving Professional Differences through the REST API: steps 1 and 2 (informal), step 3 (formal, with
its form), escalation, reminders and escalation of late steps, and immediate risk.
Protocol: /work/shared/protocols/somerset.txt ('Resolving Professional Differences (RPD)')."""
from __future__ import annotations

import pytest

from somerset_helpers import URGENT_REFERRAL, Somerset, bpmn_properties, london

KEY = "somerset_professional_differences"
START = {"family_name": "Black", "difference_summary": "Threshold for FIS", "other_agency": "Early Help Hub",
         "difference_about_child_protection": "no"}


@pytest.fixture
def som(pathways, frozen_clock):
    frozen_clock.move_to(london(2027, 1, 11, 9, 0))
    return Somerset(pathways, frozen_clock)


def start(som):
    cid = som.start(KEY, START, "lead_practitioner")["id"]
    assert som.open(cid) == ["Task_Step1"]
    return cid


def test_start_form_needs_the_difference_and_the_other_agency(som):
    response = som.start(KEY, {"family_name": "x"}, "lead_practitioner", status=422)
    assert set(response["errors"]) == {"difference_summary", "other_agency", "difference_about_child_protection"}


def test_resolved_at_step_1(som):
    cid = start(som)
    assert som.due(cid, "Task_Step1") == london(2027, 1, 18, 9, 0)
    case = som.complete(cid, "Task_Step1", {"rpd_step_1_result": "resolved", "rpd_step_1_notes": "Agreed FIS"})
    assert (case["status"], case["outcome"]) == ("completed", "resolved_informally")
    assert case["data"]["rpd_step_1_notes"] == "Agreed FIS"
    assert som.messages_sent(cid) == [{"name": "professional_difference_concluded", "to_cases": []}]


def test_step_1_reminder_and_escalation(som):
    cid = start(som)
    assert som.timers(cid) == {"Event_Step1Reminder": london(2027, 1, 18, 9, 0),
                               "Event_Step1Escalation": london(2027, 1, 25, 9, 0)}
    som.fire(london(2027, 1, 18, 9, 0))
    assert som.subjects("lead_practitioner") == ["Professional difference: record step 1"]
    som.fire(london(2027, 1, 25, 9, 0))
    assert som.subjects("team_manager") == ["Professional difference: step 1 a week overdue"]
    assert som.open(cid) == ["Task_Step1"]


def test_resolved_at_step_2(som):
    cid = start(som)
    som.complete(cid, "Task_Step1", {"rpd_step_1_result": "not_resolved", "rpd_step_1_notes": "No agreement"})
    assert som.roles(cid, "Task_Step2") == ["team_manager"]
    case = som.complete(cid, "Task_Step2", {"rpd_step_2_result": "resolved", "rpd_step_2_notes": "Managers agreed"})
    assert case["outcome"] == "resolved_informally"


def _to_step_3(som):
    cid = start(som)
    som.complete(cid, "Task_Step1", {"rpd_step_1_result": "not_resolved", "rpd_step_1_notes": "No"})
    som.complete(cid, "Task_Step2", {"rpd_step_2_result": "not_resolved", "rpd_step_2_notes": "Stuck"})
    assert som.roles(cid, "Task_Step3Form") == ["team_manager"]
    missing = som.complete(cid, "Task_Step3Form", {}, status=422)["errors"]
    assert set(missing) == {"rpd_views", "rpd_steps_taken", "rpd_outcome_sought"}
    som.complete(cid, "Task_Step3Form", {"rpd_views": "Hub: TAF; school: FIS", "rpd_steps_taken": "Steps 1, 2",
                                         "rpd_outcome_sought": "FIS support"})
    assert som.roles(cid, "Task_Step3Response") == ["senior_manager"]
    return cid


def test_resolved_formally_at_step_3(som):
    cid = _to_step_3(som)
    som.fire(london(2027, 1, 18, 9, 0))
    assert som.subjects("senior_manager") == ["Professional difference: the formal RPD form awaits a response"]
    case = som.complete(cid, "Task_Step3Response", {"rpd_step_3_result": "resolved",
                                                    "rpd_decision": "FIS to allocate: escalating needs"})
    assert case["outcome"] == "resolved_formally"
    assert case["data"]["rpd_decision"] == "FIS to allocate: escalating needs"


def test_escalated_after_step_3(som):
    cid = _to_step_3(som)
    som.complete(cid, "Task_Step3Response", {"rpd_step_3_result": "not_resolved", "rpd_decision": "No agreement"})
    case = som.complete(cid, "Task_Escalate", {"rpd_escalated_to": "SSCP business manager"})
    assert case["outcome"] == "escalated"


def test_a_disagreement_about_child_protection_is_fast_tracked(som):
    cid = som.start(KEY, {**START, "difference_about_child_protection": "yes"}, "lead_practitioner")["id"]
    assert som.open(cid) == ["Task_FastTrack"]
    assert som.roles(cid, "Task_FastTrack") == ["somerset_direct"]
    assert bpmn_properties(KEY, "Task_FastTrack") == {"urgent": "true"}
    errors = som.complete(cid, "Task_FastTrack", {}, status=422)["errors"]
    assert set(errors) == {"fast_track_decision", "fast_track_reason"}
    som.complete(cid, "Task_FastTrack", {"fast_track_decision": "child_protection_enquiry",
                                         "fast_track_reason": "Strategy discussion today"})
    # Step 1 (five working days between practitioners) is skipped: the managers take the rest.
    assert som.open(cid) == ["Task_Step2"]
    assert "Task_Step1" not in {e["task"] for e in som.history(cid)}


def test_immediate_risk_interrupts(som):
    cid = _to_step_3(som)
    case = som.message(cid, "immediate_risk", {"what_happened": "Disclosure"})
    assert [t["name"] for t in case["tasks"]] == ["Task_UrgentReferral"]
    assert som.roles(cid, "Task_UrgentReferral") == ["somerset_direct"]
    assert som.timers(cid) == {}
    case = som.complete(cid, "Task_UrgentReferral", URGENT_REFERRAL)
    assert case["outcome"] == "safeguarding_referral"
    # Like every other ending it tells the case that raised the difference (none here).
    assert som.messages_sent(cid) == [{"name": "professional_difference_concluded", "to_cases": []}]
