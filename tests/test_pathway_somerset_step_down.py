"""Somerset Step-Down through the REST API: the family's agreement (consent), agreement with the receiving
practitioner before the C&F Assessment is completed (reminder, escalation), a disagreement handed to Resolving
Professional Differences and resumed when it concludes, the TAF plan with its five required components, the review
date as a timer, the contingency Step-Up, and immediate risk.
Protocol: /work/shared/protocols/somerset.txt ('Step-Down', example 4)."""
from __future__ import annotations

import pytest

from somerset_helpers import CONSENT_GIVEN, Somerset, london

KEY = "somerset_step_down"
START = {"family_name": "White", "assessment_concerns": "Domestic abuse by the mother's partner",
         "change_in_circumstances": "Relationship ended; ex-partner moved out",
         "ongoing_needs": "Behaviour at school; finances; parenting", "receiving_practitioner": "PFSA",
         "assessment_due_date": "2027-01-18"}
PLAN = {"taf_attendees": "Mother, father, PFSA, Head of Year", "information_handed_over": True,
        "recognised_progress": "Mother ended the relationship and kept the children safe",
        "actions_with_timescales": "PFSA: budgeting by 1 March; school: behaviour plan by 8 February",
        "step_up_triggers": "Relationship resumes and a further domestic abuse incident: PFSA submits an EHA to "
                            "Somerset Direct",
        "review_date": "2027-03-15", "devised_with_family": True, "lead_practitioner_name": "PFSA"}


@pytest.fixture
def som(pathways, frozen_clock):
    frozen_clock.move_to(london(2027, 1, 11, 9, 0))
    return Somerset(pathways, frozen_clock)


def agreed(som) -> int:
    cid = som.start(KEY, START, "social_worker")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    assert som.roles(cid, "Task_AgreeStepDown") == ["lead_practitioner"]
    som.complete(cid, "Task_AgreeStepDown", {"step_down_agreed": "agreed",
                                             "step_down_agreement_reason": "Risks significantly reduced"})
    return cid


def to_review(som) -> int:
    cid = agreed(som)
    som.complete(cid, "Task_FinaliseAssessment", {"assessment_finalised": True, "taf_meeting_date": "2027-01-25"})
    som.complete(cid, "Task_StepDownTaf", PLAN)
    som.complete(cid, "Task_RecordFirstReview", {"minutes_recorded": True})
    assert som.timers(cid) == {"Event_ReviewDate": london(2027, 3, 15, 9, 0)}
    som.fire(london(2027, 3, 15, 9, 0))
    return cid


def test_stepped_down_with_the_plan_and_its_review_date(som):
    cid = agreed(som)
    assert som.roles(cid, "Task_FinaliseAssessment") == ["social_worker"]
    som.complete(cid, "Task_FinaliseAssessment", {"assessment_finalised": True, "taf_meeting_date": "2027-01-25"})
    assert som.due(cid, "Task_StepDownTaf") == london(2027, 1, 25, 9, 0)
    assert som.timers(cid) == {"Event_TafReminder": london(2027, 1, 26, 9, 0),
                               "Event_TafEscalation": london(2027, 1, 28, 9, 0)}
    # The plan must carry every component.
    missing = som.complete(cid, "Task_StepDownTaf", {"taf_attendees": "Mother"}, status=422)["errors"]
    assert {"recognised_progress", "actions_with_timescales", "step_up_triggers", "review_date",
            "devised_with_family", "information_handed_over"} <= set(missing)
    som.fire(london(2027, 1, 26, 9, 0))
    assert som.subjects("social_worker") == ["Step-Down: the Early Help Action Plan is not recorded"]
    som.fire(london(2027, 1, 28, 9, 0))
    assert som.subjects("team_manager") == ["Step-Down: the Early Help Action Plan is overdue"]
    som.complete(cid, "Task_StepDownTaf", PLAN)
    assert som.roles(cid, "Task_RecordFirstReview") == ["lead_practitioner"]
    som.complete(cid, "Task_RecordFirstReview", {"minutes_recorded": True})
    # The case waits for the review date (09:00) with nothing to do.
    assert som.open(cid) == []
    assert som.timers(cid) == {"Event_ReviewDate": london(2027, 3, 15, 9, 0)}
    assert som.fire(london(2027, 3, 15, 8, 59)) == 0
    assert som.fire(london(2027, 3, 15, 9, 0)) == 1
    assert som.due(cid, "Task_TafReview") == london(2027, 3, 15, 17, 0)
    assert som.timers(cid) == {"Event_ReviewReminder": london(2027, 3, 16, 9, 0),
                               "Event_ReviewEscalation": london(2027, 3, 22, 9, 0)}
    som.fire(london(2027, 3, 16, 9, 0))
    assert som.subjects("lead_practitioner") == ["Step-Down: the TAF review is not recorded"]
    som.fire(london(2027, 3, 22, 9, 0))
    assert som.subjects("early_help_manager") == ["Step-Down: the TAF review is a week overdue"]
    case = som.complete(cid, "Task_TafReview", {"step_up_trigger_met": False, "review_notes": "Progress holds"})
    assert (case["status"], case["outcome"]) == ("completed", "stepped_down")
    assert case["data"]["step_up_triggers"].startswith("Relationship resumes")
    assert som.handed_on(cid) == []


def test_agreement_reminder_and_escalation_before_the_assessment_is_completed(som):
    cid = som.start(KEY, START, "social_worker")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    assert som.due(cid, "Task_AgreeStepDown") == london(2027, 1, 18, 9, 0)
    assert som.timers(cid) == {"Event_AgreementReminder": london(2027, 1, 18, 9, 0),
                               "Event_AgreementEscalation": london(2027, 1, 20, 9, 0)}
    som.fire(london(2027, 1, 20, 9, 0))
    assert som.subjects("lead_practitioner") == [
        "Step-Down: agree the action plan before the C&F Assessment is completed"]
    assert som.subjects("early_help_manager") == ["Step-Down agreement overdue"]
    assert som.open(cid) == ["Task_AgreeStepDown"]


def test_contingency_trigger_at_review_hands_on_to_step_up(som):
    cid = to_review(som)
    case = som.complete(cid, "Task_TafReview", {"step_up_trigger_met": True,
                                                "review_notes": "Ex-partner returned; incident on 10 March"})
    assert case["outcome"] == "stepped_down"
    (step_up,) = som.handed_on(cid)
    assert (step_up["process"], step_up["reference"]) == ("somerset_step_up", "SOM-0001")
    assert step_up["data"]["step_up_triggers"] == PLAN["step_up_triggers"]
    assert step_up["data"]["review_notes"] == "Ex-partner returned; incident on 10 March"


def test_disagreement_goes_to_rpd_and_the_step_down_resumes_when_it_concludes(som):
    cid = som.start(KEY, START, "social_worker")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    som.complete(cid, "Task_AgreeStepDown", {
        "step_down_agreed": "not_agreed", "step_down_agreement_reason": "Ex-partner still visiting",
        "difference_summary": "Risk not yet reduced enough for early help", "other_agency": "Children's Social Care"})
    case = som.case(cid)
    assert case["status"] == "active" and case["tasks"] == []
    (rpd,) = som.handed_on(cid)
    assert rpd["process"] == "somerset_professional_differences"
    assert rpd["data"]["difference_summary"] == "Risk not yet reduced enough for early help"
    som.complete(rpd["id"], "Task_Step1", {"rpd_step_1_result": "resolved",
                                           "rpd_step_1_notes": "Safety plan first; then step down"})
    assert som.case(rpd["id"])["outcome"] == "resolved_informally"
    assert som.messages_sent(rpd["id"]) == [{"name": "professional_difference_concluded", "to_cases": [cid]}]
    # The step-down resumes with the RPD decision in its data, and the agreement is asked again.
    case = som.case(cid)
    assert [t["name"] for t in case["tasks"]] == ["Task_AgreeStepDown"]
    assert case["data"]["rpd_step_1_notes"] == "Safety plan first; then step down"
    som.complete(cid, "Task_AgreeStepDown", {"step_down_agreed": "agreed", "step_down_agreement_reason": "Agreed"})
    assert som.open(cid) == ["Task_FinaliseAssessment"]


def test_consent_not_given_does_not_go_on(som):
    cid = som.start(KEY, START, "social_worker")["id"]
    som.complete(cid, "Task_RecordConsent", {"consent": "refused"})
    assert som.open(cid) == ["Task_RecordConsent"]


@pytest.mark.parametrize("stage", ["agreement", "waiting_for_rpd", "waiting_for_review"])
def test_immediate_risk_interrupts(som, stage):
    if stage == "waiting_for_review":
        cid = agreed(som)
        som.complete(cid, "Task_FinaliseAssessment", {"assessment_finalised": True, "taf_meeting_date": "2027-01-25"})
        som.complete(cid, "Task_StepDownTaf", PLAN)
        som.complete(cid, "Task_RecordFirstReview", {"minutes_recorded": True})
    else:
        cid = som.start(KEY, START, "social_worker")["id"]
        som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
        if stage == "waiting_for_rpd":
            som.complete(cid, "Task_AgreeStepDown", {"step_down_agreed": "not_agreed",
                                                     "step_down_agreement_reason": "No", "difference_summary": "x",
                                                     "other_agency": "CSC"})
    case = som.message(cid, "immediate_risk", {"risk_summary_from": "police"})
    assert [t["name"] for t in case["tasks"]] == ["Task_UrgentReferral"]
    assert som.timers(cid) == {}
    som.fire(london(2027, 4, 1, 9, 0))
    assert som.open(cid) == ["Task_UrgentReferral"]
    case = som.complete(cid, "Task_UrgentReferral", {"risk_summary": "Incident"}, role="somerset_direct")
    assert case["outcome"] == "safeguarding_referral"
