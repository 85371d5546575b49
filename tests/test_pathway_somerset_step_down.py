"""Somerset Step-Down through the REST API: the family's agreement (consent), agreement with the receiving
practitioner before the C&F Assessment is completed (reminder, escalation), a disagreement handed to Resolving
Professional Differences and resumed when it concludes, the TAF plan with its five required components, the review
date as a timer, reviews that go on until a recorded closure or a hand-over, the contingency Step-Up with the level of
need, significant harm at a review (Somerset Direct first), lack of engagement (the EHA is reviewed, never a reason to
end), consent refused or not sought (no voluntary early help, what happens next recorded), immediate risk that never
ends the Step-Down (statutory), and a professional difference ended through immediate risk.
Protocol: /work/shared/protocols/somerset.txt ('Step-Down', example 4)."""
from __future__ import annotations

import pytest

from somerset_helpers import (CONSENT, CONSENT_GIVEN, CP_REFERRAL, URGENT_REFERRAL, Somerset, bpmn_properties,
                              london)

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


CONTINUE = {"risk_of_significant_harm": "no", "family_engaging": "yes", "review_decision": "continue",
            "review_date": "2027-06-14", "review_notes": "Progress holds"}
CLOSE = {"risk_of_significant_harm": "no", "family_engaging": "yes", "review_decision": "close",
         "closure_reason": "needs_met", "review_notes": "Objectives met; universal services"}


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
    # The first review does not end the plan: the next review date is set and the case waits for it.
    case = som.complete(cid, "Task_TafReview", CONTINUE)
    assert case["status"] == "active" and som.open(cid) == []
    assert som.timers(cid) == {"Event_ReviewDate": london(2027, 6, 14, 9, 0)}
    som.fire(london(2027, 6, 14, 9, 0))
    assert som.open(cid) == ["Task_TafReview"]
    case = som.complete(cid, "Task_TafReview", CLOSE)
    assert (case["status"], case["outcome"]) == ("completed", "stepped_down")
    assert case["data"]["step_up_triggers"].startswith("Relationship resumes")
    assert case["data"]["closure_reason"] == "needs_met"
    assert som.handed_on(cid) == []


def test_a_review_asks_significant_harm_and_engagement(som):
    cid = to_review(som)
    errors = som.complete(cid, "Task_TafReview", {"review_notes": "x"}, status=422)["errors"]
    assert {"risk_of_significant_harm", "family_engaging"} <= set(errors)
    som.complete(cid, "Task_TafReview", {**CONTINUE, "risk_of_significant_harm": True}, status=422)  # not a checkbox


def test_significant_harm_at_a_review_goes_to_somerset_direct_first_then_steps_up(som):
    cid = to_review(som)
    som.complete(cid, "Task_TafReview", {"risk_of_significant_harm": "yes", "family_engaging": "yes",
                                         "review_notes": "Bruising seen; child says the ex-partner is back"})
    case = som.case(cid)
    assert [t["name"] for t in case["tasks"]] == ["Task_ChildProtectionReferral"]
    assert som.roles(cid, "Task_ChildProtectionReferral") == ["somerset_direct"]
    assert som.handed_on(cid) == []  # nothing else happens before the referral
    case = som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
    assert case["outcome"] == "stepped_down"
    (step_up,) = som.handed_on(cid)
    assert step_up["process"] == "somerset_step_up"
    # Somerset Direct has the referral: the Step-Up goes straight to the follow-up EHA, no consent gate first.
    assert som.rules(step_up["id"]) == [("Rule_SignificantHarm", "Rule_AcuteChildProtectionReferred")]
    assert [t["name"] for t in step_up["tasks"]] == ["Task_SubmitFollowUpEha"]
    assert step_up["data"]["somerset_direct_reference"] == "SD-42"


def test_significant_harm_unsure_at_a_review_steps_up_to_somerset_directs_decision(som):
    cid = to_review(som)
    case = som.complete(cid, "Task_TafReview", {"risk_of_significant_harm": "unsure", "family_engaging": "yes",
                                                "review_notes": "Unexplained absences"})
    assert case["outcome"] == "stepped_down"
    (step_up,) = som.handed_on(cid)
    assert som.rules(step_up["id"]) == [("Rule_SignificantHarmUnsure", "Rule_AcuteChildInNeed")]
    assert [t["name"] for t in step_up["tasks"]] == ["Task_RecordConsent"]


def test_lack_of_engagement_is_not_a_reason_to_end_the_plan(som):
    cid = to_review(som)
    # The plan cannot close for lack of engagement: the EHA is reviewed instead.
    som.complete(cid, "Task_TafReview", {**CLOSE, "family_engaging": "no"})
    assert som.open(cid) == ["Task_ReviewEha"]
    assert som.roles(cid, "Task_ReviewEha") == ["lead_practitioner"]
    assert som.case(cid)["status"] == "active"
    som.complete(cid, "Task_ReviewEha", {"eha_review_result": "alternative_approach", "review_date": "2027-04-12",
                                         "eha_review_notes": "Home visits instead of office appointments"})
    assert som.timers(cid) == {"Event_ReviewDate": london(2027, 4, 12, 9, 0)}
    som.fire(london(2027, 4, 12, 9, 0))
    case = som.complete(cid, "Task_TafReview", {**CONTINUE, "family_engaging": "no"})
    assert som.open(cid) == ["Task_ReviewEha"]
    case = som.complete(cid, "Task_ReviewEha", {"eha_review_result": "needs_escalated",
                                                "eha_review_notes": "Needs have escalated"})
    assert case["outcome"] == "stepped_down"
    (step_up,) = som.handed_on(cid)
    assert step_up["process"] == "somerset_step_up"


def test_a_family_withdrawing_consent_closes_the_plan_with_its_reason(som):
    cid = to_review(som)
    case = som.complete(cid, "Task_TafReview", {**CLOSE, "family_engaging": "no", "closure_reason": "consent_withdrawn"})
    assert (case["status"], case["outcome"]) == ("completed", "stepped_down")
    assert case["data"]["closure_reason"] == "consent_withdrawn"


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


def test_contingency_trigger_at_review_hands_on_to_step_up_with_the_level_of_need(som):
    """Example 4: a further domestic abuse incident means an EHA to Somerset Direct, never only 'share the EHA'."""
    cid = to_review(som)
    case = som.complete(cid, "Task_TafReview", {"risk_of_significant_harm": "no", "step_up_trigger_met": True,
                                                "family_engaging": "yes", "number_of_needs": 1,
                                                "review_notes": "Ex-partner returned; incident on 10 March"})
    assert case["outcome"] == "stepped_down"
    (step_up,) = som.handed_on(cid)
    assert (step_up["process"], step_up["reference"]) == ("somerset_step_up", "SOM-0001")
    data = step_up["data"]
    assert data["step_up_triggers"] == PLAN["step_up_triggers"]
    assert data["review_notes"] == "Ex-partner returned; incident on 10 March"
    assert (data["risk_of_significant_harm"], data["step_up_trigger_met"], data["number_of_needs"]) == ("no", True, 1)
    assert som.rules(step_up["id"]) == [("Rule_ContingencyTrigger", "Rule_AcuteChildInNeed")]
    assert data["need"] == {"level_of_need": "acute", "eha_action": "child_in_need_request"}
    som.complete(step_up["id"], "Task_RecordConsent", CONSENT_GIVEN)
    assert som.open(step_up["id"]) == ["Task_SubmitEhaToSomersetDirect"]


def test_disagreement_goes_to_rpd_and_the_step_down_resumes_when_it_concludes(som):
    cid = som.start(KEY, START, "social_worker")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    som.complete(cid, "Task_AgreeStepDown", {
        "step_down_agreed": "not_agreed", "step_down_agreement_reason": "Ex-partner still visiting",
        "difference_summary": "Risk not yet reduced enough for early help", "other_agency": "Children's Social Care",
        "difference_about_child_protection": "no"})
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


@pytest.mark.parametrize("answer", ["refused", "not_sought"])
def test_no_step_down_to_early_help_without_consent_given(som, answer):
    """Refused or not sought: the social worker records what happens next; no agreement, no TAF plan, no loop."""
    cid = som.start(KEY, START, "social_worker")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT[answer])
    assert som.open(cid) == ["Task_ConsentNotGiven"]
    assert som.roles(cid, "Task_ConsentNotGiven") == ["social_worker"]
    errors = som.complete(cid, "Task_ConsentNotGiven", {"step_down_next": "remain_with_csc"}, status=422)["errors"]
    assert "step_down_next_reason" in errors
    case = som.complete(cid, "Task_ConsentNotGiven", {"step_down_next": "remain_with_csc",
                                                      "step_down_next_reason": "C&F plan continues with the social worker"})
    assert (case["status"], case["outcome"]) == ("completed", "not_stepped_down")
    reached = {e["task"] for e in som.history(cid)}
    assert not reached & {"Task_AgreeStepDown", "Task_FinaliseAssessment", "Task_StepDownTaf"}


def test_refused_then_discussed_again_and_given(som):
    cid = som.start(KEY, START, "social_worker")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT["refused"])
    som.complete(cid, "Task_ConsentNotGiven", {"step_down_next": "seek_again", "step_down_next_reason": "Meet mother"})
    assert som.open(cid) == ["Task_RecordConsent"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    assert som.open(cid) == ["Task_AgreeStepDown"]


def test_marks(som):
    assert bpmn_properties(KEY, KEY) == {"statutory": "true"}
    assert bpmn_properties(KEY, "Task_ChildProtectionReferral") == {"urgent": "true"}
    for end in ("Event_SteppedDown", "Event_SteppedDownThenUp", "Event_NotSteppedDown", "Event_StepDownWithdrawn",
                "Event_EscalatedAfterEhaReview"):
        assert "outcome" in bpmn_properties(KEY, end)


def test_a_professional_difference_ended_by_immediate_risk_does_not_leave_the_step_down_waiting(som):
    cid = som.start(KEY, START, "social_worker")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    som.complete(cid, "Task_AgreeStepDown", {"step_down_agreed": "not_agreed", "step_down_agreement_reason": "No",
                                             "difference_summary": "Risk not reduced", "other_agency": "CSC",
                                             "difference_about_child_protection": "no"})
    (rpd,) = som.handed_on(cid)
    som.message(rpd["id"], "immediate_risk", {"what_happened": "Police called to the home"})
    rpd_case = som.complete(rpd["id"], "Task_UrgentReferral", URGENT_REFERRAL)
    assert rpd_case["outcome"] == "safeguarding_referral"
    assert som.messages_sent(rpd["id"]) == [{"name": "professional_difference_concluded", "to_cases": [cid]}]
    # The Step-Down resumes at its agreement, with the referral in its data, and can be withdrawn.
    assert som.open(cid) == ["Task_AgreeStepDown"]
    assert som.case(cid)["data"]["what_happened"] == URGENT_REFERRAL["what_happened"]
    case = som.complete(cid, "Task_AgreeStepDown", {"step_down_agreed": "withdrawn",
                                                    "step_down_agreement_reason": "Referred to Somerset Direct"})
    assert (case["status"], case["outcome"]) == ("completed", "not_stepped_down")


@pytest.mark.parametrize("stage", ["agreement", "waiting_for_rpd", "waiting_for_review"])
def test_immediate_risk_never_ends_the_step_down(som, stage):
    """The child is open to Children's Social Care (statutory): the urgent referral opens and everything goes on."""
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
                                                     "other_agency": "CSC", "difference_about_child_protection": "no"})
    before_tasks, before_timers = som.open(cid), som.timers(cid)
    case = som.message(cid, "immediate_risk", {"what_happened": "Police called to the home"})
    assert sorted(t["name"] for t in case["tasks"]) == sorted(before_tasks + ["Task_UrgentReferral"])
    assert som.roles(cid, "Task_UrgentReferral") == ["somerset_direct"]
    assert som.timers(cid) == before_timers
    case = som.complete(cid, "Task_UrgentReferral", URGENT_REFERRAL)
    assert case["status"] == "active" and case.get("outcome") is None
    assert som.open(cid) == before_tasks
    if stage == "waiting_for_review":  # the review still comes
        som.fire(london(2027, 3, 15, 9, 0))
        assert som.open(cid) == ["Task_TafReview"]
