"""Somerset Step-Up through the REST API: every branch to each outcome, the level-of-need decision (DRD) in the
audit, consent, the follow-up EHA within one working day, Somerset Direct's decision with reminders and
escalations, threshold disagreements handed to Resolving Professional Differences, and immediate risk.
Protocol: /work/shared/protocols/somerset.txt ('Step-Up', 'Requesting involvement from Children's Social Care')."""
from __future__ import annotations

import pytest

from somerset_helpers import CONSENT_GIVEN, Somerset, level, london

KEY = "somerset_step_up"
EVIDENCE = {"family_name": "Brown", "child_name": "Sam", "concerns": "Attendance 60%, low mood",
            "concerns_reasons": "School records; disclosures to the school nurse",
            "support_in_place": "School counsellor since September", "support_outcome": "No improvement"}


@pytest.fixture
def som(pathways, frozen_clock):
    frozen_clock.move_to(london(2027, 1, 11, 9, 0))  # Monday 11 January 2027
    return Somerset(pathways, frozen_clock)


def start(som, **need):
    return som.start(KEY, {**EVIDENCE, **level(**need)}, "lead_practitioner")["id"]


def test_definition_and_start_form(som):
    response = som.api.get(f"/processes/{KEY}", as_="admin")
    assert response.status_code == 200, response.json
    body = response.json
    assert set(body["roles"]) == {"lead_practitioner", "early_help_hub", "somerset_direct"}
    required = [f["key"] for f in body["start_form"]["fields"] if f["required"]]
    assert required == ["family_name", "concerns", "concerns_reasons", "number_of_needs"]
    # The start form asks what the referrer knows: evidence and level of need, nothing else is required.
    response = som.api.post("/cases", json={"process": KEY, "reference": "X", "data": {"family_name": "B"}},
                            as_=som.users["lead_practitioner"])
    assert response.status_code == 422
    assert set(response.json["errors"]) >= {"concerns", "concerns_reasons", "number_of_needs"}


def test_universal_needs_are_met_without_an_eha(som):
    cid = start(som, universal=True, needs=1)
    assert som.rules(cid) == [("Rule_Universal", "Rule_UniversalStoreOnOwnFile")]
    assert som.case(cid)["data"]["need"] == {"level_of_need": "universal", "eha_action": "store_on_own_file"}
    assert som.open(cid) == ["Task_KeepOnOwnFile"]  # no consent: nothing is shared
    case = som.complete(cid, "Task_KeepOnOwnFile", {"stored_on_own_file": True})
    assert (case["status"], case["outcome"]) == ("completed", "needs_met")


@pytest.mark.parametrize("need, rule", [({"needs": 3}, "Rule_Additional"),
                                        ({"escalating": True, "needs": 1}, "Rule_SingleNeedEscalating")])
def test_additional_needs_share_the_eha_with_consent(som, need, rule):
    cid = start(som, **need)
    assert som.rules(cid) == [(rule, "Rule_AdditionalShareEha")]
    assert som.open(cid) == ["Task_RecordConsent"]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    assert som.roles(cid, "Task_ShareEha") == ["lead_practitioner"]
    case = som.complete(cid, "Task_ShareEha", {"joining_agency": "Young carers", "eha_shared": True,
                                               "taf_considered": True})
    assert case["outcome"] == "early_help_escalated"
    assert case["data"]["consent"] == "given"


# ---- consent -----------------------------------------------------------------------------------------------------

def test_consent_not_sought_needs_one_of_the_three_reasons(som):
    cid = start(som, escalating=True, needs=3)
    # Not sought and no reason: the case refuses to go on and asks again.
    som.complete(cid, "Task_RecordConsent", {"consent": "not_sought"})
    assert som.open(cid) == ["Task_RecordConsent"]
    # A reason that is not one of the three is refused by the form.
    som.complete(cid, "Task_RecordConsent", {"consent": "not_sought",
                                             "consent_not_sought_reason": "keep_relationship"}, status=422)
    som.complete(cid, "Task_RecordConsent", {"consent": "not_sought", "consent_not_sought_reason": "undue_delay",
                                             "consent_rationale": "Allegation needs enquiry today"})
    assert som.open(cid) == ["Task_HoldTafMeeting"]
    data = som.case(cid)["data"]
    assert (data["consent"], data["consent_not_sought_reason"]) == ("not_sought", "undue_delay")
    completed = [e for e in som.history(cid) if e["event"] == "task_completed" and e["task"] == "Task_RecordConsent"]
    assert [e["detail"]["data"]["consent_not_sought_reason"] for e in completed] == [None, "undue_delay"]


def test_consent_refused_then_given_on_discussing_again(som):
    cid = start(som, impaired=True)
    som.complete(cid, "Task_RecordConsent", {"consent": "refused"})
    assert som.open(cid) == ["Task_ConsentRefused"]
    som.complete(cid, "Task_ConsentRefused", {"consent_next_step": "seek_again"})
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    assert som.open(cid) == ["Task_SubmitEhaToSomersetDirect"]


def test_consent_refused_and_current_support_continues(som):
    cid = start(som, escalating=True, needs=2)
    som.complete(cid, "Task_RecordConsent", {"consent": "refused"})
    case = som.complete(cid, "Task_ConsentRefused", {"consent_next_step": "continue_current_support"})
    assert case["outcome"] == "needs_met"
    assert "Task_HoldTafMeeting" not in [e["task"] for e in som.history(cid)]


# ---- complex: TAF and the Early Help Hub ---------------------------------------------------------------------------

def _to_hub(som, cid):
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    som.complete(cid, "Task_HoldTafMeeting", {"lead_practitioner_name": "J Smith", "taf_meeting_date": "2027-01-14",
                                              "taf_actions": "Attendance plan", "service_requested": "FIS"})
    som.complete(cid, "Task_SubmitEhaToHub", {"eha_submitted_to_hub": True})
    assert som.roles(cid, "Task_HubDecision") == ["early_help_hub"]


def test_complex_needs_accepted_by_the_early_help_hub(som):
    cid = start(som, escalating=True, needs=3)
    assert som.rules(cid) == [("Rule_Complex", "Rule_ComplexJointEha")]
    _to_hub(som, cid)
    case = som.complete(cid, "Task_HubDecision", {"hub_decision": "accepted", "allocated_service": "FIS",
                                                  "hub_decision_reason": "Multiple escalating needs"})
    assert case["outcome"] == "early_help_escalated"


def test_hub_not_accepting_and_practitioner_accepts(som):
    cid = start(som, escalating=True, needs=2)
    _to_hub(som, cid)
    som.complete(cid, "Task_HubDecision", {"hub_decision": "not_accepted", "hub_decision_reason": "Met by TAF"})
    case = som.complete(cid, "Task_RespondToHubDecision", {"threshold_response": "accept"})
    assert case["outcome"] == "needs_met"
    assert som.handed_on(cid) == []


def test_hub_not_accepting_and_practitioner_disputes_starts_rpd(som):
    cid = start(som, escalating=True, needs=2)
    _to_hub(som, cid)
    som.complete(cid, "Task_HubDecision", {"hub_decision": "not_accepted", "hub_decision_reason": "Met by TAF"})
    case = som.complete(cid, "Task_RespondToHubDecision", {
        "threshold_response": "dispute", "difference_summary": "Needs escalating for 6 months",
        "other_agency": "Early Help Hub"})
    assert case["outcome"] == "needs_met"
    (rpd,) = som.handed_on(cid)
    assert (rpd["process"], rpd["reference"], rpd["started_from_case_id"]) == (
        "somerset_professional_differences", "SOM-0001", cid)
    assert rpd["data"]["hub_decision_reason"] == "Met by TAF"
    assert rpd["data"]["difference_summary"] == "Needs escalating for 6 months"
    assert [t["name"] for t in rpd["tasks"]] == ["Task_Step1"]


# ---- acute: child protection enquiry and child in need -------------------------------------------------------------

def test_child_protection_call_follow_up_eha_within_one_working_day_over_christmas(som):
    som.clock.move_to(london(2026, 12, 24, 15, 0))  # Christmas Eve, a Thursday
    cid = start(som, risk=True)
    assert som.rules(cid) == [("Rule_SignificantHarm", "Rule_AcuteChildProtection")]
    som.complete(cid, "Task_RecordConsent", {"consent": "not_sought", "consent_not_sought_reason": "increased_risk"})
    assert som.due(cid, "Task_PhoneSomersetDirect") == london(2026, 12, 24, 17, 0)
    som.complete(cid, "Task_PhoneSomersetDirect", {"somerset_direct_called": True,
                                                   "somerset_direct_reference": "SD-77"})
    # One working day: Friday 25 and Monday 28 December are bank holidays.
    assert som.due(cid, "Task_SubmitFollowUpEha") == london(2026, 12, 29, 15, 0)
    assert som.timers(cid) == {"Event_FollowUpEhaReminder": london(2026, 12, 29, 15, 0),
                               "Event_FollowUpEhaEscalation": london(2026, 12, 30, 15, 0)}
    assert som.fire(london(2026, 12, 29, 14, 59)) == 0
    assert som.fire(london(2026, 12, 29, 15, 0)) == 1
    assert som.subjects("lead_practitioner") == ["Follow-up EHA to Somerset Direct is due (one working day)"]
    assert som.subjects("early_help_manager") == []
    assert som.fire(london(2026, 12, 30, 15, 0)) == 1
    assert som.subjects("early_help_manager") == ["Follow-up EHA after a child protection call is overdue"]
    assert som.open(cid) == ["Task_SubmitFollowUpEha"]  # both non-interrupting
    som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True})
    assert som.timers(cid) == {"Event_DecisionReminder": london(2026, 12, 31, 15, 0),
                               "Event_DecisionEscalation": london(2027, 1, 4, 15, 0)}
    assert som.roles(cid, "Task_SomersetDirectDecision") == ["somerset_direct"]
    case = som.complete(cid, "Task_SomersetDirectDecision", {"sd_decision": "child_protection_enquiry",
                                                             "sd_decision_reason": "Strategy discussion"})
    assert case["outcome"] == "child_protection_enquiry"
    assert som.timers(cid) == {}


def test_child_in_need_request_with_reminder_and_escalation_at_somerset_direct(som):
    cid = start(som, impaired=True, needs=3)
    assert som.rules(cid) == [("Rule_ChildInNeed", "Rule_AcuteChildInNeed")]
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    som.clock.move_to(london(2027, 1, 11, 14, 0))
    som.complete(cid, "Task_SubmitEhaToSomersetDirect", {"eha_submitted_to_somerset_direct": True})
    assert som.due(cid, "Task_SomersetDirectDecision") == london(2027, 1, 12, 14, 0)
    som.fire(london(2027, 1, 12, 14, 0))
    assert som.subjects("somerset_direct") == ["Step-up request awaiting a Somerset Direct decision"]
    som.fire(london(2027, 1, 13, 14, 0))
    assert som.subjects("team_manager") == ["Step-up request undecided for two working days"]
    case = som.complete(cid, "Task_SomersetDirectDecision", {"sd_decision": "child_in_need_request",
                                                             "sd_decision_reason": "C&F assessment"})
    assert case["outcome"] == "child_in_need_request"


def _to_somerset_direct(som, **need):
    cid = start(som, **need)
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    if need.get("risk"):
        som.complete(cid, "Task_PhoneSomersetDirect", {"somerset_direct_called": True})
        som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True})
    else:
        som.complete(cid, "Task_SubmitEhaToSomersetDirect", {"eha_submitted_to_somerset_direct": True})
    return cid


def test_somerset_direct_disagrees_and_practitioner_accepts(som):
    cid = _to_somerset_direct(som, risk=True)
    som.complete(cid, "Task_SomersetDirectDecision", {"sd_decision": "child_in_need_request",
                                                      "sd_decision_reason": "No evidence of significant harm"})
    assert som.roles(cid, "Task_RespondToDecision") == ["lead_practitioner"]
    case = som.complete(cid, "Task_RespondToDecision", {"threshold_response": "accept"})
    assert case["outcome"] == "child_in_need_request"
    assert som.handed_on(cid) == []


def test_somerset_direct_disagrees_and_practitioner_disputes_starts_rpd(som):
    cid = _to_somerset_direct(som, impaired=True)
    som.complete(cid, "Task_SomersetDirectDecision", {"sd_decision": "early_help",
                                                      "sd_decision_reason": "Needs can be met by FIS"})
    case = som.complete(cid, "Task_RespondToDecision", {
        "threshold_response": "dispute", "difference_summary": "Development significantly impaired",
        "other_agency": "Somerset Direct"})
    # The step-up goes on with Somerset Direct's decision; the difference is resolved in its own case.
    assert case["outcome"] == "early_help_escalated"
    (rpd,) = som.handed_on(cid)
    assert rpd["process"] == "somerset_professional_differences"
    assert rpd["reference"] == "SOM-0001"
    assert (rpd["data"]["sd_decision"], rpd["data"]["sd_decision_reason"]) == ("early_help", "Needs can be met by FIS")
    assert rpd["data"]["need"]["eha_action"] == "child_in_need_request"
    assert "outcome" not in rpd["data"]
    decided = [e for e in som.history(cid) if e["task"] == "Task_SomersetDirectDecision"
               and e["event"] == "task_completed"]
    assert decided[0]["detail"]["data"]["sd_decision_reason"] == "Needs can be met by FIS"


# ---- safeguarding first --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["consent", "follow_up_eha", "somerset_direct", "hub"])
def test_immediate_risk_interrupts_every_stage(som, stage):
    if stage == "hub":
        cid = start(som, escalating=True, needs=3)
        _to_hub(som, cid)
    elif stage == "consent":
        cid = start(som, needs=2)
    else:
        cid = start(som, risk=True)
        som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
        som.complete(cid, "Task_PhoneSomersetDirect", {"somerset_direct_called": True})
        if stage == "somerset_direct":
            som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True})
    som.clock.move_to(london(2027, 1, 11, 16, 30))
    case = som.message(cid, "immediate_risk", {"risk_reported_by": "school"})
    assert [t["name"] for t in case["tasks"]] == ["Task_UrgentReferral"]
    assert som.roles(cid, "Task_UrgentReferral") == ["somerset_direct"]
    assert som.due(cid, "Task_UrgentReferral") == london(2027, 1, 11, 17, 0)
    assert som.timers(cid) == {}
    case = som.complete(cid, "Task_UrgentReferral", {"risk_summary": "Disclosure", "police_called": True})
    assert (case["status"], case["outcome"]) == ("completed", "safeguarding_referral")
