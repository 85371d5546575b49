"""Somerset Step-Up through the REST API: every branch to each outcome, the level-of-need decision (DRD) in the
audit, consent (given, refused, not sought at every consent question), significant harm first (an urgent child protection
referral taken by Somerset Direct before anything else), the follow-up EHA within one working day, Somerset Direct's
decision with reminders and escalations, threshold disagreements handed to Resolving Professional Differences, and
immediate risk. Safeguarding rules: issue 12, docs/safeguarding.md (Somerset).
Protocol: /work/shared/protocols/somerset.txt ('Step-Up', 'Requesting involvement from Children's Social Care')."""
from __future__ import annotations

import pytest

from somerset_helpers import (CONSENT, CONSENT_GIVEN, CONSENT_NOT_SOUGHT, CONSENT_REFUSED, CP_REFERRAL,
                              URGENT_REFERRAL, Somerset, bpmn_properties, level, london)

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
    assert required == ["family_name", "concerns", "concerns_reasons", "risk_of_significant_harm", "number_of_needs"]
    (harm,) = [f for f in body["start_form"]["fields"] if f["key"] == "risk_of_significant_harm"]
    assert harm["type"] == "radio" and [o["value"] for o in harm["options"]] == ["yes", "no", "unsure"]
    # The start form asks what the referrer knows: evidence and level of need, nothing else is required.
    response = som.api.post("/cases", json={"process": KEY, "reference": "X", "data": {"family_name": "B"}},
                            as_=som.users["lead_practitioner"])
    assert response.status_code == 422
    assert set(response.json["errors"]) >= {"concerns", "concerns_reasons", "number_of_needs", "risk_of_significant_harm"}


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

def test_consent_not_sought_needs_a_reason_and_is_only_for_a_request_to_childrens_social_care(som):
    cid = start(som, impaired=True)  # child in need: a request to Children's Social Care (statutory)
    # Not sought and no reason or manager: refused by the form (once the server evaluates conditional.hide) or, if
    # the form lets it through, the case asks again. Either way it never goes on.
    task = som.task(cid, "Task_RecordConsent")
    response = som.api.post(f"/tasks/{task['id']}/complete", json={"data": {"consent": "not_sought",
                                                                             "consent_rationale": "x"}},
                            as_=som.users["lead_practitioner"])
    assert response.status_code in (200, 422), response.json
    assert som.open(cid) == ["Task_RecordConsent"]
    # A reason that is not one of the three is refused by the form.
    som.complete(cid, "Task_RecordConsent", {**CONSENT_NOT_SOUGHT, "consent_override_reason": "keep_relationship"},
                 status=422)
    som.complete(cid, "Task_RecordConsent", CONSENT_NOT_SOUGHT)
    assert som.open(cid) == ["Task_SubmitEhaToSomersetDirect"]
    data = som.case(cid)["data"]
    assert (data["consent"], data["consent_override_reason"], data["consent_override_agreed_by"]) == (
        "not_sought", "increase_risk", "Team manager A. Patel")


def test_consent_rationale_is_required(som):
    cid = start(som, escalating=True, needs=3)
    errors = som.complete(cid, "Task_RecordConsent", {"consent": "given"}, status=422)["errors"]
    assert "consent_rationale" in errors


@pytest.mark.parametrize("need", [{"needs": 3}, {"escalating": True, "needs": 3}], ids=["additional", "complex"])
@pytest.mark.parametrize("answer", ["refused", "not_sought"])
def test_early_help_never_starts_without_consent_given(som, need, answer):
    """Additional (share the EHA, TAF) and complex (TAF, Early Help Hub) needs are voluntary early help: refused or
    not sought goes to the practitioner's decision on what happens next, never to the service."""
    cid = start(som, **need)
    som.complete(cid, "Task_RecordConsent", CONSENT[answer])
    assert som.open(cid) == ["Task_ConsentRefused"]
    case = som.complete(cid, "Task_ConsentRefused", {"consent_next_step": "continue_current_support",
                                                     "consent_refused_notes": "TAS support continues; review in 6 weeks"})
    assert (case["status"], case["outcome"]) == ("completed", "needs_met")
    reached = {e["task"] for e in som.history(cid)}
    assert not reached & {"Task_ShareEha", "Task_HoldTafMeeting", "Task_SubmitEhaToHub", "Task_HubDecision"}


def test_what_happens_after_a_refusal_is_required(som):
    cid = start(som, escalating=True, needs=2)
    som.complete(cid, "Task_RecordConsent", CONSENT_REFUSED)
    errors = som.complete(cid, "Task_ConsentRefused", {"consent_next_step": "continue_current_support"},
                          status=422)["errors"]
    assert "consent_refused_notes" in errors


def test_consent_refused_then_given_on_discussing_again(som):
    cid = start(som, impaired=True)
    som.complete(cid, "Task_RecordConsent", CONSENT_REFUSED)
    assert som.open(cid) == ["Task_ConsentRefused"]
    som.complete(cid, "Task_ConsentRefused", {"consent_next_step": "seek_again", "consent_refused_notes": "Meet again"})
    som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
    assert som.open(cid) == ["Task_SubmitEhaToSomersetDirect"]


def test_a_refusal_never_blocks_a_child_protection_referral(som):
    cid = start(som, escalating=True, needs=2)
    som.complete(cid, "Task_RecordConsent", CONSENT_REFUSED)
    som.complete(cid, "Task_ConsentRefused", {"consent_next_step": "child_protection_referral",
                                              "consent_refused_notes": "Father's reaction: child frightened to go home"})
    assert som.open(cid) == ["Task_ChildProtectionReferral"]
    assert som.roles(cid, "Task_ChildProtectionReferral") == ["somerset_direct"]
    som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
    assert som.open(cid) == ["Task_SubmitFollowUpEha"]


@pytest.mark.parametrize("need", [{"escalating": True, "needs": 2}, {"impaired": True, "needs": 3}],
                         ids=["complex", "child_in_need"])
def test_a_child_protection_enquiry_after_a_refusal_is_what_the_practitioner_asked_for(som, need):
    """'Discuss the EHA and process with the family unless you are making a child protection referral': after a
    refusal the practitioner made a child protection referral, so Somerset Direct opening an enquiry is their own
    view, whatever level of need was placed before: never put to them to respond to or dispute (Gateway_SameView
    compares Somerset Direct's decision with practitioner_request)."""
    cid = start(som, **need)
    som.complete(cid, "Task_RecordConsent", CONSENT_REFUSED)
    som.complete(cid, "Task_ConsentRefused", {"consent_next_step": "child_protection_referral",
                                              "consent_refused_notes": "Father's reaction: child frightened to go home"})
    som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
    som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True, **CONSENT_REFUSED})
    case = som.complete(cid, "Task_SomersetDirectDecision", {"sd_decision": "child_protection_enquiry",
                                                             "sd_decision_reason": "Strategy discussion"})
    assert (case["status"], case["outcome"], som.open(cid)) == ("completed", "child_protection_enquiry", [])
    assert som.handed_on(cid) == []


def test_a_child_protection_referral_that_somerset_direct_does_not_take_up_is_put_to_the_practitioner(som):
    cid = start(som, escalating=True, needs=2)
    som.complete(cid, "Task_RecordConsent", CONSENT_REFUSED)
    som.complete(cid, "Task_ConsentRefused", {"consent_next_step": "child_protection_referral",
                                              "consent_refused_notes": "Father's reaction: child frightened to go home"})
    som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
    som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True, **CONSENT_REFUSED})
    som.complete(cid, "Task_SomersetDirectDecision", {"sd_decision": "child_in_need_request",
                                                      "sd_decision_reason": "No evidence of significant harm"})
    assert som.open(cid) == ["Task_RespondToDecision"]


def test_voluntary_and_urgent_marks(som):
    for end in ("Event_AdditionalSupport", "Event_EarlyHelpEscalated"):
        assert bpmn_properties(KEY, end)["voluntary"] == "true"
    assert bpmn_properties(KEY, "Task_ChildProtectionReferral") == {"urgent": "true"}
    assert "voluntary" not in bpmn_properties(KEY, "Event_NeedsMetWithoutRequest")


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
        "other_agency": "Early Help Hub", "difference_about_child_protection": "no"})
    assert case["outcome"] == "needs_met"
    (rpd,) = som.handed_on(cid)
    assert (rpd["process"], rpd["reference"], rpd["started_from_case_id"]) == (
        "somerset_professional_differences", "SOM-0001", cid)
    assert rpd["data"]["hub_decision_reason"] == "Met by TAF"
    assert rpd["data"]["difference_summary"] == "Needs escalating for 6 months"
    assert [t["name"] for t in rpd["tasks"]] == ["Task_Step1"]


# ---- acute: child protection enquiry and child in need -------------------------------------------------------------

def test_significant_harm_goes_to_somerset_direct_first_then_the_follow_up_eha_over_christmas(som):
    som.clock.move_to(london(2026, 12, 24, 15, 0))  # Christmas Eve, a Thursday
    cid = start(som, risk="yes")
    assert som.rules(cid) == [("Rule_SignificantHarm", "Rule_AcuteChildProtection")]
    # The urgent referral is the first and only step: no consent question before it.
    case = som.case(cid)
    assert [t["name"] for t in case["tasks"]] == ["Task_ChildProtectionReferral"]
    assert som.roles(cid, "Task_ChildProtectionReferral") == ["somerset_direct"]
    assert "consent" not in case["data"]
    som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
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
    som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True, **CONSENT_NOT_SOUGHT})
    assert som.timers(cid) == {"Event_DecisionReminder": london(2026, 12, 31, 15, 0),
                               "Event_DecisionEscalation": london(2027, 1, 4, 15, 0)}
    assert som.roles(cid, "Task_SomersetDirectDecision") == ["somerset_direct"]
    case = som.complete(cid, "Task_SomersetDirectDecision", {"sd_decision": "child_protection_enquiry",
                                                             "sd_decision_reason": "Strategy discussion"})
    assert case["outcome"] == "child_protection_enquiry"
    assert som.timers(cid) == {}


@pytest.mark.parametrize("answer", ["given", "refused", "not_sought"])
def test_consent_on_the_follow_up_eha_is_recorded_and_never_stops_the_referral(som, answer):
    cid = start(som, risk="yes")
    som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
    som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True, **CONSENT[answer]})
    assert som.open(cid) == ["Task_SomersetDirectDecision"]
    assert som.case(cid)["data"]["consent"] == answer
    case = som.complete(cid, "Task_SomersetDirectDecision", {"sd_decision": "child_protection_enquiry",
                                                             "sd_decision_reason": "Strategy discussion"})
    assert case["outcome"] == "child_protection_enquiry"


def test_follow_up_eha_asks_consent_with_the_override_fields(som):
    cid = start(som, risk="yes")
    som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
    errors = som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True},
                          status=422)["errors"]
    assert {"consent", "consent_rationale"} <= set(errors)


def test_the_child_protection_referral_needs_somerset_directs_reference_and_summary(som):
    cid = start(som, risk="yes")
    errors = som.complete(cid, "Task_ChildProtectionReferral", {}, status=422)["errors"]
    assert {"somerset_direct_reference", "cp_referral_summary"} <= set(errors)


def test_significant_harm_unsure_is_a_request_to_somerset_direct_never_read_as_no(som):
    cid = start(som, risk="unsure", needs=1)
    assert som.rules(cid) == [("Rule_SignificantHarmUnsure", "Rule_AcuteChildInNeed")]
    som.complete(cid, "Task_RecordConsent", CONSENT_NOT_SOUGHT)
    assert som.open(cid) == ["Task_SubmitEhaToSomersetDirect"]


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
    if need.get("risk") == "yes":
        som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
        som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True, **CONSENT_GIVEN})
    else:
        som.complete(cid, "Task_RecordConsent", CONSENT_GIVEN)
        som.complete(cid, "Task_SubmitEhaToSomersetDirect", {"eha_submitted_to_somerset_direct": True})
    return cid


def test_somerset_direct_disagrees_and_practitioner_accepts(som):
    cid = _to_somerset_direct(som, risk="yes")
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
        "other_agency": "Somerset Direct", "difference_about_child_protection": "no"})
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
        cid = start(som, risk="yes")
        som.complete(cid, "Task_ChildProtectionReferral", CP_REFERRAL)
        if stage == "somerset_direct":
            som.complete(cid, "Task_SubmitFollowUpEha", {"eha_submitted_to_somerset_direct": True, **CONSENT_GIVEN})
    som.clock.move_to(london(2027, 1, 11, 16, 30))
    case = som.message(cid, "immediate_risk", {"what_happened": "Child disclosed an injury at school"})
    assert [t["name"] for t in case["tasks"]] == ["Task_UrgentReferral"]
    assert som.roles(cid, "Task_UrgentReferral") == ["somerset_direct"]
    assert som.timers(cid) == {}
    assert som.case(cid)["data"]["what_happened"] == "Child disclosed an injury at school"
    case = som.complete(cid, "Task_UrgentReferral", {**URGENT_REFERRAL, "police_called": True})
    assert (case["status"], case["outcome"]) == ("completed", "safeguarding_referral")
