"""The Carmarthenshire step-up pathway (TAF to statutory services), through the REST API.

Protocol: /work/shared/protocols/carmarthenshire-taf.txt, section 7 and the step-up pathway (single and multi
agency); thresholds in dmn/carmarthenshire_level_of_support.dmn. Outcomes: continue_taf, stepped_up,
safeguarding_referral.
"""
from __future__ import annotations


import pytest

from service import scheduler
from carmarthenshire_helpers import ApiCase, london, notes, prepare, when  # noqa: F401

KEY = "carmarthenshire_step_up"
ROLES = ["keyworker", "taf_coordinator", "taf_manager", "crt_manager", "crt", "social_worker"]
TARGETED = {"significant_harm": "unsure", "number_of_needs": 2, "needs_met_by_taf": True, "family_engaging": True}
ACAS = {"significant_harm": "no", "number_of_needs": 4, "needs_met_by_taf": False, "family_engaging": True}
URGENT_CRT = {"risk_summary": "Taken by CRT", "crt_manager_phoned": True, "crt_referral_received": True}
PROTECTIVE = {"significant_harm": "yes", "number_of_needs": 1, "needs_met_by_taf": True, "family_engaging": True}


def DECIDED(decision):
    return {"crt_decision": decision, "crt_decision_reason": "Assessed on the MARF", "referrer_informed": True}


class Case(ApiCase):
    key, role, reference = KEY, "keyworker", "CARM-UP-1"


@pytest.fixture
def api(pathways, frozen_clock):
    return prepare(pathways, frozen_clock, ROLES)



def multi_agency(api, **extra):
    return Case(api, {"allocation_decision": "multi_agency", "concerns": "Neglect worries", "family_name": "Evans",
                      "significant_harm": "no", **extra})


def to_manager(case, level):
    case.complete("Task_RecordConcerns", level, "taf_coordinator")


def test_process_definition(api):
    process = api.get(f"/processes/{KEY}", as_="admin").json
    assert process["roles"] == sorted(["crt", "crt_manager", "keyworker", "social_worker", "taf_coordinator",
                                       "taf_manager"])
    assert [f["key"] for f in process["start_form"]["fields"] if f["required"]] == ["allocation_decision", "concerns", "significant_harm"]


def test_targeted_level_not_agreed_continues_taf(api):
    case = multi_agency(api)
    task = case.task("Task_RecordConcerns")
    assert task["roles"] == ["taf_coordinator"]
    assert when(task["due_at"]) == london(2027, 1, 12, 9, 0)
    assert case.json["data"]["concerns"] == "Neglect worries"
    to_manager(case, TARGETED)
    assert case.rules("Task_LevelOfSupport") == [["Rule_ConcernTargeted"]]
    assert case.json["data"]["level"] == {"level_of_support": "targeted", "taf_can_support": True}
    task = case.task("Task_DiscussWithTafManager")
    assert task["roles"] == ["taf_manager"]
    assert case.timers() == {"Event_DiscussWithTafManagerReminder": london(2027, 1, 11, 13, 0),
                             "Event_TafManagerUnavailable": london(2027, 1, 12, 9, 0)}
    done = case.complete("Task_DiscussWithTafManager", {"step_up_agreed": "not_agreed",
                                                        "taf_manager_reason": "TAF plan can meet the needs"},
                         "taf_manager")
    # The immediate-risk listener does not keep a finished case open.
    assert (done["status"], done["outcome"], done["timers"]) == ("completed", "continue_taf", [])


def test_agreed_referral_acas_long_term_is_stepped_up(api):
    case = multi_agency(api)
    to_manager(case, ACAS)
    assert case.rules("Task_LevelOfSupport") == [["Rule_NeedsBeyondTaf"]]
    case.complete("Task_DiscussWithTafManager", {"step_up_agreed": "agreed", "taf_manager_reason": "ACAS needed",
                                                 "consult_crt_manager": "yes"},
                  "taf_manager")
    task = case.task("Task_CrtConsultation")
    assert task["roles"] == ["crt_manager"]
    case.complete("Task_CrtConsultation", {"crt_view": "agree"}, "crt_manager")
    marf = case.task("Task_CompleteMarf")
    assert marf["roles"] == ["keyworker"]
    assert when(marf["due_at"]) == london(2027, 1, 12, 9, 0)
    assert case.timers() == {"Event_CompleteMarfReminder": london(2027, 1, 12, 9, 0),
                             "Event_CompleteMarfEscalation": london(2027, 1, 13, 9, 0)}
    # Reminder to the keyworker, then escalation to the TAF manager; the MARF stays open.
    api.clock.move_to(london(2027, 1, 13, 9, 0))
    assert scheduler.fire_due(api.app) == 2
    assert notes(api, "keyworker") == [("reminder", "Step-up MARF not yet sent")]
    assert ("escalation", "Step-up MARF overdue") in notes(api, "taf_manager")
    assert case.open() == ["Task_CompleteMarf"]
    # Consent not sought without a reason: refused, and the MARF stays open.
    marf = case.task("Task_CompleteMarf")
    refused = api.post(f"/tasks/{marf['id']}/complete", as_=api.as_role("keyworker"),
                       json={"data": {"marf_summary": "Needs beyond TAF", "consent": "not_sought"}})
    assert refused.status_code == 422
    assert {"consent_override_reason", "consent_override_agreed_by"} <= set(refused.json["errors"])
    assert case.open() == ["Task_CompleteMarf"]
    case.complete("Task_CompleteMarf", {"marf_summary": "Needs beyond TAF", "consent": "not_sought",
                                        "consent_override_reason": "undue_delay", "consent_override_agreed_by": "Ann",
                                        "family_informed": "informed"}, "keyworker")
    decision = case.task("Task_CrtDecision")
    assert decision["roles"] == ["crt"]
    assert when(decision["due_at"]) == london(2027, 1, 14, 9, 0)
    case.complete("Task_CrtDecision", DECIDED("acas"), "crt")
    task = case.task("Task_DiscussAssessment")
    assert sorted(task["roles"]) == ["social_worker", "taf_coordinator"]
    assert when(task["due_at"]) == london(2027, 3, 12, 9, 0)  # 42 working days
    assert case.json["status"] == "active"  # does not close automatically to TAF
    case.complete("Task_DiscussAssessment", {"long_term_statutory": "yes"}, "social_worker")
    data = case.json
    assert (data["status"], data["outcome"]) == ("completed", "stepped_up")
    assert data["data"]["consent_override_reason"] == "undue_delay"


def test_acas_not_long_term_continues_taf(api):
    case = multi_agency(api)
    to_manager(case, ACAS)
    case.complete("Task_DiscussWithTafManager", {"step_up_agreed": "agreed", "taf_manager_reason": "x", "consult_crt_manager": "yes"}, "taf_manager")
    case.complete("Task_CrtConsultation", {"crt_view": "agree"}, "crt_manager")
    case.complete("Task_CompleteMarf", {"marf_summary": "x", "consent": "given"}, "keyworker")
    case.complete("Task_CrtDecision", DECIDED("acas"), "crt")
    case.complete("Task_DiscussAssessment", {"long_term_statutory": "no"}, "taf_coordinator")
    assert case.json["outcome"] == "continue_taf"


@pytest.mark.parametrize("agreed, rule, then", [
    (TARGETED, "Rule_ConcernTargeted", "continue_taf"),
    (ACAS, "Rule_NeedsBeyondTaf", "Task_CompleteMarf"),
    (PROTECTIVE, "Rule_Protective", "Task_UrgentCrtSignificantHarm"),
])
def test_threshold_disagreement_goes_to_both_managers(api, agreed, rule, then):
    case = multi_agency(api)
    to_manager(case, ACAS)
    case.complete("Task_DiscussWithTafManager", {"step_up_agreed": "agreed", "taf_manager_reason": "x", "consult_crt_manager": "yes"}, "taf_manager")
    case.complete("Task_CrtConsultation", {"crt_view": "disagree", "crt_manager_notes": "Targeted"}, "crt_manager")
    task = case.task("Task_ManagersConsult")
    assert sorted(task["roles"]) == ["crt_manager", "taf_manager"]
    assert when(task["due_at"]) == london(2027, 1, 12, 9, 0)
    # Either manager may record it; the reason is required.
    response = api.post(f"/tasks/{task['id']}/complete", json={"data": agreed}, as_=api.as_role("crt_manager"))
    assert response.status_code == 422 and "threshold_decision_reason" in response.json["errors"]
    case.complete("Task_ManagersConsult", {**agreed, "threshold_decision_reason": "Agreed on CYSUR criteria"},
                  "crt_manager")
    assert case.rules("Task_AgreedLevelOfSupport") == [[rule]]
    if then == "continue_taf":
        assert case.json["outcome"] == "continue_taf"
        assert case.json["data"]["threshold_decision_reason"] == "Agreed on CYSUR criteria"
    else:
        assert case.open() == [then]


def test_single_agency_consultation(api):
    case = Case(api, {"allocation_decision": "single_agency", "concerns": "Worried", "significant_harm": "no"})
    task = case.task("Task_ConsultOnMultiAgency")
    assert task["roles"] == ["keyworker"]
    assert when(task["due_at"]) == london(2027, 1, 13, 9, 0)
    # Not consulted and no reason: the keyworker must say why.
    case.complete("Task_ConsultOnMultiAgency", {"consulted_taf": "not_consulted"}, "keyworker")
    assert case.open() == ["Task_ConsultOnMultiAgency"]
    case.complete("Task_ConsultOnMultiAgency", {"consulted_taf": "not_consulted",
                                                "not_consulted_reason": "Manager on leave"}, "keyworker")
    assert case.open() == ["Task_RecordConcerns"]
    assert case.json["data"]["not_consulted_reason"] == "Manager on leave"


def test_single_agency_multi_agency_next_continues_taf(api):
    case = Case(api, {"allocation_decision": "single_agency", "concerns": "Worried", "significant_harm": "no"})
    case.complete("Task_ConsultOnMultiAgency", {"consulted_taf": "consulted", "multi_agency_next": True}, "keyworker")
    assert (case.json["status"], case.json["outcome"]) == ("completed", "continue_taf")


@pytest.mark.parametrize("involvement, outcome", [("statutory", "safeguarding_referral"), ("none", "continue_taf")])
def test_protective_level_urgent_referral_and_s47(api, involvement, outcome):
    case = multi_agency(api)
    to_manager(case, PROTECTIVE)
    assert case.rules("Task_LevelOfSupport") == [["Rule_Protective"]]
    assert case.open() == ["Task_UrgentCrtSignificantHarm"]  # CRT first: no discussion with the managers
    assert case.task("Task_UrgentCrtSignificantHarm")["roles"] == ["crt"]
    case.complete("Task_UrgentCrtSignificantHarm", URGENT_CRT, "crt")
    task = case.task("Task_UrgentMarf")
    assert sorted(task["roles"]) == ["keyworker", "taf_coordinator", "taf_manager"]
    assert when(task["due_at"]) == london(2027, 1, 11, 10, 0)  # urgent: within the hour (docs/safeguarding.md)
    api.clock.move_to(london(2027, 1, 11, 11, 0))
    assert scheduler.fire_due(api.app) == 2  # the service's escalation at the hour, and the diagram's own
    assert ("escalation", "Urgent referral for a child in need of protection not yet made") in notes(api, "taf_manager")
    response = api.post(f"/tasks/{task['id']}/complete", json={"data": {"marf_summary": "x", "consent": "given"}},
                        as_=api.as_role("taf_coordinator"))
    assert response.status_code == 422 and "crt_manager_phoned" in response.json["errors"]
    case.complete("Task_UrgentMarf", {"marf_summary": "Bruising", "crt_manager_phoned": True, "consent": "not_sought",
                                      "consent_override_reason": "increase_risk", "consent_override_agreed_by": "Ann",
                                      "family_informed": "not_informed_risk"}, "taf_coordinator")
    case.complete("Task_CrtDecision", DECIDED("s47"), "crt")
    assert case.json["status"] == "active"  # TAF does not close until the S47 outcome is discussed
    task = case.task("Task_DiscussS47Outcome")
    assert sorted(task["roles"]) == ["social_worker", "taf_coordinator"]
    case.complete("Task_DiscussS47Outcome", {"s47_further_involvement": involvement}, "taf_coordinator")
    assert (case.json["status"], case.json["outcome"]) == ("completed", outcome)


def test_crt_finds_no_statutory_need(api):
    case = multi_agency(api)
    to_manager(case, PROTECTIVE)
    case.complete("Task_UrgentCrtSignificantHarm", URGENT_CRT, "crt")
    case.complete("Task_UrgentMarf", {"marf_summary": "x", "crt_manager_phoned": True, "consent": "given"}, "keyworker")
    case.complete("Task_CrtDecision", DECIDED("no_statutory"), "crt")
    assert case.json["outcome"] == "continue_taf"


def test_taf_manager_unavailable_goes_direct_to_the_crt_manager(api):
    case = multi_agency(api)
    to_manager(case, ACAS)
    api.clock.move_to(london(2027, 1, 11, 13, 0))
    assert scheduler.fire_due(api.app) == 1
    assert notes(api, "taf_manager") == [("reminder", "Step-up discussion waiting for the TAF manager")]
    assert case.open() == ["Task_DiscussWithTafManager"]
    api.clock.move_to(london(2027, 1, 12, 9, 0))
    assert scheduler.fire_due(api.app) == 1
    assert notes(api, "crt_manager") == [
        ("escalation", "TAF manager not available: step-up discussion comes direct to the CRT manager")]
    assert case.open() == ["Task_CrtConsultation"]
    case.complete("Task_CrtConsultation", {"crt_view": "agree"}, "crt_manager")
    assert case.open() == ["Task_CompleteMarf"]


@pytest.mark.parametrize("involvement, outcome", [("statutory", "safeguarding_referral"), ("none", "continue_taf")])
def test_immediate_risk_does_not_close_taf_until_the_s47_outcome_is_discussed(api, involvement, outcome):
    case = multi_agency(api)
    to_manager(case, TARGETED)
    api.clock.move_to(london(2027, 1, 11, 15, 30))
    case.message("immediate_risk", {"risk_reported_by": "school"})
    # Non-interrupting: the TAF discussion stays open beside the urgent referral.
    assert case.open() == ["Task_DiscussWithTafManager", "Task_UrgentCrtReferral"]
    task = case.task("Task_UrgentCrtReferral")
    assert task["roles"] == ["crt"]
    assert when(task["due_at"]) == london(2027, 1, 11, 16, 30)  # urgent: within the hour
    assert case.json["data"]["risk_reported_by"] == "school"
    # The TAF side finishes first: the case stays open for the referral and the S47 discussion.
    case.complete("Task_DiscussWithTafManager", {"step_up_agreed": "not_agreed", "taf_manager_reason": "x"},
                  "taf_manager")
    assert case.json["status"] == "active"
    case.complete("Task_UrgentCrtReferral", {"risk_summary": "Disclosure at school", "crt_manager_phoned": True}, "crt")
    assert case.json["status"] == "active"
    task = case.task("Task_DiscussRiskS47Outcome")
    assert sorted(task["roles"]) == ["social_worker", "taf_coordinator"]
    assert when(task["due_at"]) == london(2027, 3, 10, 15, 30)
    case.complete("Task_DiscussRiskS47Outcome", {"s47_further_involvement": involvement}, "social_worker")
    assert (case.json["status"], case.json["outcome"]) == ("completed", outcome)


def test_immediate_risk_at_the_start_keeps_every_step_open_until_statutory_services_take_the_case(api):
    case = Case(api, {"allocation_decision": "single_agency", "concerns": "x", "significant_harm": "unsure"})
    case.message("immediate_risk")
    assert case.open() == ["Task_ConsultOnMultiAgency", "Task_UrgentCrtReferral"]
    case.complete("Task_UrgentCrtReferral", {"risk_summary": "x", "crt_manager_phoned": True}, "crt")
    assert case.open() == ["Task_ConsultOnMultiAgency", "Task_DiscussRiskS47Outcome"]  # the step up still runs
    case.complete("Task_DiscussRiskS47Outcome", {"s47_further_involvement": "statutory"}, "taf_coordinator")
    # Section 7: open to statutory services, the case closes to TAF: the single-agency consultation stops.
    assert (case.json["status"], case.json["outcome"], case.open()) == ("completed", "safeguarding_referral", [])


@pytest.mark.parametrize("waiting", ["Task_RecordConcerns", "Task_DiscussWithTafManager"])
def test_once_the_s47_after_immediate_risk_goes_statutory_the_taf_side_stops(api, waiting):
    """Section 7: statutory services take the case after the S47, so it closes to TAF: the TAF side's step-up
    work still open ends at once (SubProcess_StatutoryTakesCase) and the case is safeguarding_referral, never
    the outcome of whichever TAF step would have ended later (it used to be continue_taf)."""
    if waiting == "Task_DiscussWithTafManager":
        case = multi_agency(api)
        to_manager(case, TARGETED)
    else:
        case = Case(api, {"allocation_decision": "multi_agency", "concerns": "x", "significant_harm": "no"})
    case.message("immediate_risk", {"what_happened": "A disclosure at school"})
    case.complete("Task_UrgentCrtReferral", {"risk_summary": "x", "crt_manager_phoned": True}, "crt")
    assert case.open() == sorted([waiting, "Task_DiscussRiskS47Outcome"])
    case.complete("Task_DiscussRiskS47Outcome", {"s47_further_involvement": "statutory"}, "social_worker")
    assert (case.json["status"], case.json["outcome"], case.open()) == ("completed", "safeguarding_referral", [])
    assert case.timers() == {}  # the TAF side's reminders went with it


def test_an_immediate_risk_s47_finding_no_further_involvement_never_overrides_the_step_ups_own_outcome(api):
    """The step up's own S47 goes statutory first (the case closes to TAF, safeguarding_referral); the S47 after
    immediate risk then finds no further involvement: that changes nothing for TAF, so the outcome stays (it used
    to become continue_taf, with the plan already closed)."""
    case = multi_agency(api)
    case.message("immediate_risk", {"what_happened": "A disclosure at school"})
    case.complete("Task_UrgentCrtReferral", {"risk_summary": "x", "crt_manager_phoned": True}, "crt")
    to_manager(case, PROTECTIVE)
    case.complete("Task_UrgentCrtSignificantHarm", URGENT_CRT, "crt")
    case.complete("Task_UrgentMarf", {"marf_summary": "Bruising", "crt_manager_phoned": True, "consent": "given",
                                      "family_informed": "informed"}, "taf_coordinator")
    case.complete("Task_CrtDecision", DECIDED("s47"), "crt")
    case.complete("Task_DiscussS47Outcome", {"s47_further_involvement": "statutory"}, "taf_coordinator")
    assert (case.json["status"], case.open()) == ("active", ["Task_DiscussRiskS47Outcome"])
    case.complete("Task_DiscussRiskS47Outcome", {"s47_further_involvement": "none"}, "social_worker")
    assert (case.json["status"], case.json["outcome"]) == ("completed", "safeguarding_referral")
