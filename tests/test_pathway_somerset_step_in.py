"""Somerset Step-In through the REST API: consent, the Step-In request with the meeting's date, time and location,
the Early Help Hub, the TAF meeting with the service (due, reminder, escalation), the level-of-need decision and the
three outcomes (joined, no_role, stepped_up with hand-over to somerset_step_up), and immediate risk.
Protocol: /work/shared/protocols/somerset.txt ('Step-In', examples 1 and 2)."""
from __future__ import annotations

import pytest

from somerset_helpers import (CONSENT, CONSENT_GIVEN, CP_REFERRAL, URGENT_REFERRAL, Somerset, bpmn_properties,
                              level, london)

KEY = "somerset_step_in"
START = {"family_name": "Green", "service_requested": "family_intervention_service",
         "step_in_need": "Routines and debt in the TAF plan", "support_so_far": "PFSA six months"}
REQUEST = {"eha_and_plan_sent": True, "taf_meeting_date": "2027-01-20", "taf_meeting_time": "10:00",
           "taf_meeting_location": "Oak Primary School"}


@pytest.fixture
def som(pathways, frozen_clock):
    frozen_clock.move_to(london(2027, 1, 11, 9, 0))
    return Somerset(pathways, frozen_clock)


def to_meeting(som) -> int:
    cid = som.start(KEY, START, "lead_practitioner")["id"]
    assert som.open(cid) == ["Task_RecordConsent"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    som.complete(cid, "Task_SendStepInRequest", REQUEST)
    assert som.roles(cid, "Task_BookRepresentative") == ["early_help_hub"]
    assert som.due(cid, "Task_BookRepresentative") == london(2027, 1, 20, 9, 0)
    som.complete(cid, "Task_BookRepresentative", {"service_representative": "FIS worker",
                                                  "information_provided": True})
    assert som.roles(cid, "Task_TafMeetingWithService") == ["stepping_in_service"]
    return cid


def test_the_request_must_carry_the_meetings_date_time_and_location(som):
    cid = som.start(KEY, START, "lead_practitioner")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    response = som.complete(cid, "Task_SendStepInRequest", {"eha_and_plan_sent": True}, status=422)
    assert set(response["errors"]) == {"taf_meeting_date", "taf_meeting_time", "taf_meeting_location"}


@pytest.mark.parametrize("answer", ["refused", "not_sought"])
def test_without_consent_given_the_service_is_not_consulted(som, answer):
    """A Step-In brings a service into the family's voluntary TAF plan: refused or not sought, it is not asked."""
    cid = som.start(KEY, START, "lead_practitioner")["id"]
    case = som.complete(cid, "Task_RecordConsent", CONSENT[answer])
    assert (case["status"], case["outcome"]) == ("completed", "no_role")
    assert case["data"]["consent_rationale"]
    assert "Task_SendStepInRequest" not in {e["task"] for e in som.history(cid)}


def test_marks(som):
    assert bpmn_properties(KEY, "Event_Joined")["voluntary"] == "true"
    assert bpmn_properties(KEY, "Task_ChildProtectionReferral") == {"urgent": "true"}


def test_service_joins_with_meeting_reminder_and_escalation(som):
    cid = to_meeting(som)
    assert som.due(cid, "Task_TafMeetingWithService") == london(2027, 1, 20, 9, 0)
    assert som.timers(cid) == {"Event_MeetingReminder": london(2027, 1, 21, 9, 0),
                               "Event_MeetingEscalation": london(2027, 1, 27, 9, 0)}
    som.fire(london(2027, 1, 21, 9, 0))
    assert som.subjects("stepping_in_service") == ["Step-In: the service's view at the TAF is not recorded"]
    som.fire(london(2027, 1, 27, 9, 0))
    assert som.subjects("early_help_manager") == ["Step-In outcome overdue by a week"]
    som.complete(cid, "Task_TafMeetingWithService", {**level(escalating=True, needs=3), "service_role": "join",
                                                     "service_advice": "FIS to join for 12 weeks"})
    assert som.rules(cid) == [("Rule_Complex", "Rule_ComplexJointEha")]
    assert som.timers(cid) == {}
    case = som.complete(cid, "Task_UpdatePlan", {"plan_updated": True, "next_taf_date": "2027-03-01"})
    assert case["outcome"] == "joined"
    assert som.handed_on(cid) == []


def test_advice_only_no_role(som):
    cid = to_meeting(som)
    som.complete(cid, "Task_TafMeetingWithService", {**level(needs=2), "service_role": "advice_only",
                                                     "service_advice": "Advice on routines"})
    case = som.complete(cid, "Task_UpdatePlan", {"plan_updated": True, "next_taf_date": "2027-03-01"})
    assert case["outcome"] == "no_role"


@pytest.mark.parametrize("need, rule", [({"impaired": True}, "Rule_ChildInNeed"),
                                        ({"risk": "unsure"}, "Rule_SignificantHarmUnsure")])
def test_acute_need_steps_up_and_hands_the_case_on(som, need, rule):
    cid = to_meeting(som)
    case = som.complete(cid, "Task_TafMeetingWithService", {**level(**need), "service_role": "join",
                                                            "service_advice": "Social work input required"})
    assert (case["status"], case["outcome"]) == ("completed", "stepped_up")
    assert som.rules(cid)[0][0] == rule
    (step_up,) = som.handed_on(cid)
    assert (step_up["process"], step_up["reference"], step_up["started_from_case_id"]) == (
        "somerset_step_up", "SOM-0001", cid)
    data = step_up["data"]
    assert (data["family_name"], data["consent"], data["taf_meeting_location"]) == (
        "Green", "given", "Oak Primary School")
    # The step-up places the child with the data gathered: nothing is asked again before consent.
    assert som.rules(step_up["id"])[0][0] == rule
    assert [t["name"] for t in step_up["tasks"]] == ["Task_RecordConsent"]


def test_significant_harm_at_the_meeting_goes_to_somerset_direct_first(som):
    cid = to_meeting(som)
    som.complete(cid, "Task_TafMeetingWithService", {**level(risk="yes"), "service_role": "join",
                                                     "service_advice": "Disclosure at the meeting"})
    assert som.rules(cid) == [("Rule_SignificantHarm", "Rule_AcuteChildProtection")]
    case = som.case(cid)
    assert [t["name"] for t in case["tasks"]] == ["Task_ChildProtectionReferral"]
    assert som.roles(cid, "Task_ChildProtectionReferral") == ["somerset_direct"]
    assert som.handed_on(cid) == []
    case = som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
    assert (case["status"], case["outcome"]) == ("completed", "stepped_up")
    (step_up,) = som.handed_on(cid)
    # Somerset Direct has the referral: the Step-Up's next step is the follow-up EHA, not a consent question.
    assert som.rules(step_up["id"]) == [("Rule_SignificantHarm", "Rule_AcuteChildProtectionReferred")]
    assert [t["name"] for t in step_up["tasks"]] == ["Task_SubmitFollowUpEha"]


def test_significant_harm_at_the_meeting_is_a_required_radio(som):
    cid = to_meeting(som)
    base = {**level(needs=2), "service_role": "join", "service_advice": "x"}
    del base["risk_of_significant_harm"]
    assert "risk_of_significant_harm" in som.complete(cid, "Task_TafMeetingWithService", base, status=422)["errors"]
    som.complete(cid, "Task_TafMeetingWithService", {**base, "risk_of_significant_harm": False}, status=422)


@pytest.mark.parametrize("stage", ["request", "booking", "meeting"])
def test_immediate_risk_interrupts(som, stage):
    cid = som.start(KEY, START, "lead_practitioner")["id"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    if stage in ("booking", "meeting"):
        som.complete(cid, "Task_SendStepInRequest", REQUEST)
    if stage == "meeting":
        som.complete(cid, "Task_BookRepresentative", {"service_representative": "x", "information_provided": True})
    case = som.message(cid, "immediate_risk", {"what_happened": "Injury seen"})
    assert [t["name"] for t in case["tasks"]] == ["Task_UrgentReferral"]
    assert som.roles(cid, "Task_UrgentReferral") == ["somerset_direct"]
    assert som.timers(cid) == {}
    case = som.complete(cid, "Task_UrgentReferral", URGENT_REFERRAL)
    assert case["outcome"] == "safeguarding_referral"
