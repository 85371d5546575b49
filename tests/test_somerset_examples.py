"""Somerset's four worked examples run as written, step by step with their facts, through the REST API.
Protocol: /work/shared/protocols/somerset.txt, 'Examples of transition between services' 1 to 4."""
from __future__ import annotations

import pytest

from somerset_helpers import CONSENT_GIVEN, Somerset, level, london


@pytest.fixture
def som(pathways, frozen_clock):
    frozen_clock.move_to(london(2027, 1, 11, 9, 0))
    return Somerset(pathways, frozen_clock)


def test_example_1_step_in(som):
    """A PFSA working with a family for six months, after a TAS two months earlier, asks the Early Help Hub for a
    Step-In; a FIS representative attends the next TAF; the family's needs are still being met; FIS offers advice
    with no current role; Citizens Advice is identified; the plan is updated and the next TAF date set."""
    cid = som.start("somerset_step_in", {
        "family_name": "Example One", "service_requested": "family_intervention_service",
        "step_in_need": "Advice and support offered is difficult for the family to sustain; impact on the child",
        "support_so_far": "PFSA for six months; discussed at the Team Around the School two months ago; "
                          "intervention still not progressing"}, "lead_practitioner", reference="EX-1")["id"]
    # "Initially the PFSA seeks consent from the family"
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    # "sends a request for a Step-In to the Early Help Hub"
    som.complete(cid, "Task_SendStepInRequest", {"eha_and_plan_sent": True, "taf_meeting_date": "2027-01-20",
                                                 "taf_meeting_time": "15:30", "taf_meeting_location": "School"})
    # "a Family Intervention Service (FIS) representative attends the next TAF meeting"
    som.complete(cid, "Task_BookRepresentative", {"service_representative": "FIS representative",
                                                  "information_provided": True}, role="early_help_hub")
    som.clock.move_to(london(2027, 1, 20, 16, 30))
    # "agree that the family's needs are still being met"; "no current role for the service"
    som.complete(cid, "Task_TafMeetingWithService", {
        **level(needs=2), "service_role": "advice_only",
        "service_advice": "FIS worker offers advice; the family's needs are still being met"},
        role="stepping_in_service")
    assert som.rules(cid) == [("Rule_Additional", "Rule_AdditionalShareEha")]
    # "support from Citizen Advice ... The plan for the family is reviewed and updated and a date set for the next
    # Team Around the Family (TAF) meeting."
    case = som.complete(cid, "Task_UpdatePlan", {
        "other_support_identified": "Citizens Advice: review and manage debts", "plan_updated": True,
        "next_taf_date": "2027-03-03"}, role="lead_practitioner")
    assert (case["status"], case["outcome"]) == ("completed", "no_role")
    assert case["data"]["other_support_identified"].startswith("Citizens Advice")
    assert som.handed_on(cid) == []


def test_example_2_step_in_leading_to_step_up(som):
    """A TAF where domestic abuse incidents increase despite intensive support asks Children's Social Care to
    Step-In; the attending social worker agrees social care support is required; the family's needs are Stepped-Up
    to Children's Social Care to complete a Child and Family Assessment."""
    cid = som.start("somerset_step_in", {
        "family_name": "Example Two", "service_requested": "childrens_social_care",
        "step_in_need": "Incidents of domestic abuse increasing even with intensive support",
        "support_so_far": "Ongoing TAF with intensive support"}, "lead_practitioner", reference="EX-2")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    som.complete(cid, "Task_SendStepInRequest", {"eha_and_plan_sent": True, "taf_meeting_date": "2027-01-19",
                                                 "taf_meeting_time": "10:00", "taf_meeting_location": "Family hub"})
    # "A social worker is booked to Step-In to the next TAF meeting."
    som.complete(cid, "Task_BookRepresentative", {"service_representative": "Social worker",
                                                  "information_provided": True})
    # "The attending social worker agrees that there is additional support required from social care"
    case = som.complete(cid, "Task_TafMeetingWithService", {
        **level(impaired=True, escalating=True, needs=2), "service_role": "join",
        "service_advice": "Social work input required: C&F Assessment"}, role="stepping_in_service")
    assert case["outcome"] == "stepped_up"
    assert som.rules(cid) == [("Rule_ChildInNeed", "Rule_AcuteChildInNeed")]
    # "... and the families needs are Stepped-Up to Children's Social Care"
    (step_up,) = som.handed_on(cid)
    assert (step_up["process"], step_up["reference"]) == ("somerset_step_up", "EX-2")
    sid = step_up["id"]
    assert step_up["data"]["step_in_need"] == "Incidents of domestic abuse increasing even with intensive support"
    som.complete(sid, "Task_RecordConsent", CONSENT_GIVEN)
    som.complete(sid, "Task_SubmitEhaToSomersetDirect", {"eha_submitted_to_somerset_direct": True})
    # "... to complete a Child and Family (C&F) Assessment."
    case = som.complete(sid, "Task_SomersetDirectDecision", {
        "sd_decision": "child_in_need_request", "sd_decision_reason": "C&F Assessment agreed at the TAF"})
    assert case["outcome"] == "child_in_need_request"


def test_example_3_step_up(som):
    """A 14-year-old discussed at a TAS (attendance, emotional health and wellbeing, parental mental health);
    concerns increase despite targeted support; needs have escalated and FIS is the appropriate service; the Lead
    Practitioner discusses the needs with the parents, holds a TAF, gains consent and submits the EHA to the Early
    Help Hub requesting FIS."""
    cid = som.start("somerset_step_up", {
        "family_name": "Example Three", "child_name": "14-year-old",
        "concerns": "Attendance; emotional health and wellbeing; parental mental health",
        "concerns_reasons": "Concerns continuing to increase (Team Around the School)",
        "support_in_place": "Targeted support", "support_outcome": "Concerns continue to increase",
        **level(escalating=True, needs=3)}, "lead_practitioner", reference="EX-3")["id"]
    # "agree that need within the family have escalated"
    assert som.rules(cid) == [("Rule_Complex", "Rule_ComplexJointEha")]
    # "The Lead Practitioner for the family discusses with the parents the identified needs"
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    # "... before holding a TAF meeting with the family and current involved practitioners"
    som.complete(cid, "Task_HoldTafMeeting", {"lead_practitioner_name": "Lead Practitioner",
                                              "taf_meeting_date": "2027-01-13", "taf_actions": "Shared actions",
                                              "service_requested": "Family Intervention Service"})
    # "... and gains consent to submit an EHA to the Early Help Hub requesting FIS support."
    som.complete(cid, "Task_SubmitEhaToHub", {"eha_submitted_to_hub": True})
    case = som.complete(cid, "Task_HubDecision", {"hub_decision": "accepted",
                                                  "allocated_service": "Family Intervention Service",
                                                  "hub_decision_reason": "Escalated needs"})
    assert (case["status"], case["outcome"]) == ("completed", "early_help_escalated")


def test_example_4_step_down(som):
    """After a C&F Assessment for domestic abuse by the mother's partner, the relationship ends and the risks to the
    7-year-old are significantly reduced; ongoing PFSA support agreed with the mother; the social worker agrees the
    Step-Down with the PFSA before completing the assessment, finalises it, convenes a TAF (mother, father, PFSA,
    Head of Year) with a clear handover; ELSA support added; contingency planning; the PFSA's minutes form the first
    TAF review and the ongoing Early Help Action Plan."""
    cid = som.start("somerset_step_down", {
        "family_name": "Example Four",
        "assessment_concerns": "Domestic abuse perpetrated by the mother's partner",
        "change_in_circumstances": "Mother ended the relationship; ex-partner moved out; risks to the 7-year-old "
                                   "significantly reduced",
        "ongoing_needs": "Child's behaviour at school; financial difficulties; parenting challenges",
        "receiving_practitioner": "Parent Family Support Adviser (PFSA)", "assessment_due_date": "2027-01-22"},
        "social_worker", reference="EX-4")["id"]
    # "It is identified and agreed with the mother"
    som.complete(cid, "Task_RecordConsent", {**CONSENT_GIVEN, "consent_given_by": "Mother"})
    # "The social worker contacts the PFSA prior to completion of the C&F Assessment ... they agree on the Step-Down"
    som.complete(cid, "Task_AgreeStepDown", {"step_down_agreed": "agreed",
                                             "step_down_agreement_reason": "Assessment and action plan discussed"},
                 role="lead_practitioner")
    # "the social worker finalised the C&F Assessment, including the agreed actions ... convenes a TAF"
    som.complete(cid, "Task_FinaliseAssessment", {"assessment_finalised": True, "taf_meeting_date": "2027-01-27"})
    som.clock.move_to(london(2027, 1, 27, 11, 0))
    som.complete(cid, "Task_StepDownTaf", {
        "taf_attendees": "Mother, father, PFSA, Head of Year", "information_handed_over": True,
        "recognised_progress": "Mother ended the relationship; the children are safer",
        "actions_with_timescales": "C&F Action Plan actions with their timescales",
        "step_up_triggers": "Should the relationship with the ex-partner begin again and there is a further "
                            "domestic abuse incident, the PFSA submits an EHA to Somerset Direct to Step-Up again",
        "review_date": "2027-04-28", "devised_with_family": True,
        "additional_support": "School Emotional Literacy Support Assistant (ELSA)",
        "lead_practitioner_name": "PFSA"})
    # "The PFSA takes their own minutes at the meeting, which forms the first TAF review and ongoing EH Action Plan."
    som.complete(cid, "Task_RecordFirstReview", {"minutes_recorded": True}, role="lead_practitioner")
    assert som.timers(cid) == {"Event_ReviewDate": london(2027, 4, 28, 9, 0)}
    som.fire(london(2027, 4, 28, 9, 0))
    case = som.complete(cid, "Task_TafReview", {"risk_of_significant_harm": "no", "step_up_trigger_met": False,
                                                "family_engaging": "yes", "review_decision": "close",
                                                "closure_reason": "needs_met",
                                                "review_notes": "Plan holding; ELSA sessions helping"})
    assert (case["status"], case["outcome"]) == ("completed", "stepped_down")
    assert case["data"]["additional_support"].startswith("School Emotional Literacy")
