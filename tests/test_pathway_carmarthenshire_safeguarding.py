"""The safeguarding rules of issue 12 in the four Carmarthenshire pathways, through the REST API on both databases.

Protocol: /work/shared/protocols/carmarthenshire-taf.txt; review: shared/notes/reviews/safeguarding-review.md
(Carmarthenshire table). Each test pins one fix, in every place a Carmarthenshire pathway asks the question:
significant harm "yes" reaches CRT's urgent task first (role crt); consent "refused" and "not_sought" at every
consent question, and a voluntary service (TAF plan, step down or step across to TAF) never entered without
"given"; reasons required; the TAF plan carrying on through a step up; the referrer told.

The service side of issue 12 (1-hour due time, emergency duty team, escalation, the `voluntary` guard, hidden
fields neither required nor stored) is built by the lead at the same time: these tests assert routes, roles and
outcomes, and where the service may refuse a step itself (422) they accept either that or the diagram's own route.
"""
from __future__ import annotations

import pytest

from pathlib import Path

from carmarthenshire_helpers import ApiCase, prepare

from conftest import sqlite_only

#: SQLite only (conftest.sqlite_only): PostgreSQL is covered by Halton's step down and the API tests.
database_url = sqlite_only()

ROOT = Path(__file__).resolve().parent.parent

ROLES = ["crt", "crt_manager", "keyworker", "social_worker", "taf_coordinator", "taf_manager"]
URGENT = "Task_UrgentCrtSignificantHarm"
URGENT_CRT = {"risk_summary": "Taken by CRT", "crt_manager_phoned": True, "crt_referral_received": True}
NOT_SOUGHT = {"consent": "not_sought", "consent_override_reason": "increase_risk", "consent_override_agreed_by": "Ann"}
CONSENTS = [pytest.param({"consent": "refused"}, id="refused"), pytest.param(NOT_SOUGHT, id="not_sought")]
LEVEL_NO = {"significant_harm": "no", "number_of_needs": 3, "needs_met_by_taf": True, "family_engaging": True}
LEVEL_YES = {**LEVEL_NO, "significant_harm": "yes"}
ACAS = {"significant_harm": "no", "number_of_needs": 4, "needs_met_by_taf": False, "family_engaging": True}


@pytest.fixture
def carm(api, frozen_clock):
    """The reference pathways deployed (on SQLite: see database_url)."""
    paths = [p for folder in ("bpmn", "dmn", "forms") for p in sorted((ROOT / folder).glob("carmarthenshire_*"))]
    response = api.deploy(paths, replay=True)  # the four Carmarthenshire pathways only: quicker than all sixteen
    assert response.status_code == 201, response.json
    return prepare(api, frozen_clock, ROLES)


class Case(ApiCase):
    reference = "CARM-SAFE-1"


def attempt(case, name, data, role):
    task = case.task(name)
    return case.api.post(f"/tasks/{task['id']}/complete", json={"data": data}, as_=case.api.as_role(role))


def handed_on(case):
    return [(e["detail"]["process"], e["detail"]["to_case"]) for e in case.history() if e["event"] == "case_handed_on"]


def other(api, case_id):
    return api.get(f"/cases/{case_id}", as_="admin").json


def assert_urgent_crt_first(case):
    assert case.open() == [URGENT]
    task = case.task(URGENT)
    assert task["roles"] == ["crt"]
    fields = [f["key"] for f in case.api.get(f"/tasks/{task['id']}", as_="admin").json["form"]["fields"]]
    assert {"risk_summary", "crt_manager_phoned"} <= set(fields)


def tasks_ever(case):
    return {e["task"] for e in case.history() if e["event"] in ("task_created", "task_completed")} | set(case.open())


# -- significant harm "yes": CRT's urgent task first, everywhere it is asked -------------------------------------

def step_up(api, **data):
    return Case(api, {"allocation_decision": "multi_agency", "concerns": "Bruises seen at nursery",
                      "significant_harm": "no", **data}, role="keyworker", key="carmarthenshire_step_up")


@pytest.mark.parametrize("allocation", ["single_agency", "multi_agency"])
def test_step_up_start_significant_harm_goes_to_crt_before_any_consultation(carm, allocation):
    case = step_up(carm, allocation_decision=allocation, significant_harm="yes")
    assert_urgent_crt_first(case)  # no single-agency consultation (2 working days), no record of concerns
    case.complete(URGENT, URGENT_CRT, "crt")
    assert case.open() == ["Task_UrgentMarf"]
    assert "Task_ConsultOnMultiAgency" not in tasks_ever(case) and "Task_RecordConcerns" not in tasks_ever(case)


def test_step_up_record_of_concerns_significant_harm_goes_to_crt(carm):
    case = step_up(carm)
    case.complete("Task_RecordConcerns", LEVEL_YES, "taf_coordinator")
    assert_urgent_crt_first(case)
    assert "Task_DiscussWithTafManager" not in tasks_ever(case)


def test_step_up_managers_threshold_significant_harm_goes_to_crt(carm):
    case = step_up(carm)
    case.complete("Task_RecordConcerns", ACAS, "taf_coordinator")
    case.complete("Task_DiscussWithTafManager", {"step_up_agreed": "agreed", "taf_manager_reason": "x",
                                                 "consult_crt_manager": "yes"}, "taf_manager")
    case.complete("Task_CrtConsultation", {"crt_view": "disagree"}, "crt_manager")
    case.complete("Task_ManagersConsult", {**LEVEL_YES, "threshold_decision_reason": "Bruising"}, "taf_manager")
    assert_urgent_crt_first(case)


@pytest.mark.parametrize("consent", [pytest.param({"consent": "given"}, id="given"), *CONSENTS])
def test_step_across_significant_harm_goes_to_crt_and_is_never_declined(carm, consent):
    case = Case(carm, {"contact_summary": "Father rang: child hit"}, role="crt", key="carmarthenshire_step_across")
    case.complete("Task_CrtJaffPart1", {"family_outcomes": "Safety", **LEVEL_YES, **consent}, "crt")
    assert_urgent_crt_first(case)  # before the consent question, the level of support or any TAF discussion
    case.complete(URGENT, URGENT_CRT, "crt")
    done = case.json
    assert (done["status"], done["outcome"]) == ("completed", "safeguarding_referral")
    assert not tasks_ever(case) & {"Task_DiscussUnclearReferral", "Task_AllocationMeeting", "Task_RecordDecline",
                                   "Task_RecordNoConsent"}
    assert handed_on(case) == []


def plan(api, **data):
    return Case(api, {"family_outcomes": "Settled sleep", "consent": "given", "allocation_decision": "multi_agency",
                      **data}, role="taf_coordinator", key="carmarthenshire_taf_plan")


def reviewing(api):
    case = plan(api)
    case.complete("Task_JaffPart2", {"jaff_part_2_complete": True, "plan_outcomes": "Sleep", "plan_agreed_with_family": True}, "keyworker")
    return case


def test_taf_plan_review_significant_harm_opens_crt_first_in_the_step_up(carm):
    case = reviewing(carm)
    case.complete("Task_ReviewPlan", {"review_outcome": "step_up", "concerns": "Disclosure to keyworker",
                                      "significant_harm": "yes"}, "keyworker")
    [(process, up_id)] = handed_on(case)
    up = Case.__new__(Case)
    up.api, up.id = carm, up_id
    assert process == "carmarthenshire_step_up"
    assert_urgent_crt_first(up)
    assert case.json["status"] == "active" and case.open() == ["Task_ReviewPlan"]


# -- consent: refused and not sought at every consent question --------------------------------------------------

def step_down(api, weeks=10, **data):
    return Case(api, {"weeks_open": weeks, "family_accepts_support": "yes", "safety_plan": "yes", **data},
                role="social_worker", key="carmarthenshire_step_down")


JAFF = {"family_outcomes": "School every day", "shared_with_family": True}


@pytest.mark.parametrize("consent", CONSENTS)
def test_step_down_jaff_without_consent_never_reaches_allocation(carm, consent):
    case = step_down(carm)
    response = attempt(case, "Task_CompleteJaffPart1", {**JAFF, **consent, "family_informed": "informed"},
                       "social_worker")
    assert response.status_code == 200, response.json
    done = case.json
    assert (done["status"], done["outcome"]) == ("completed", "remains_statutory")
    assert not tasks_ever(case) & {"Task_CheckJaffPart1", "Task_AllocationDecision"}
    assert handed_on(case) == []
    assert done["data"]["consent"] == consent["consent"]


def test_step_down_with_consent_given_goes_to_the_taf_box(carm):
    case = step_down(carm)
    case.complete("Task_CompleteJaffPart1", {**JAFF, "consent": "given", "consent_form": "signed"}, "social_worker")
    assert case.open() == ["Task_CheckJaffPart1"]


def test_step_down_jaff_must_be_shared_with_the_family(carm):
    case = step_down(carm)
    response = attempt(case, "Task_CompleteJaffPart1", {"family_outcomes": "x", "consent": "given",
                                                        "consent_form": "signed"}, "social_worker")
    assert response.status_code == 422 and "shared_with_family" in response.json["errors"]


@pytest.mark.parametrize("consent", CONSENTS)
def test_step_across_without_consent_is_never_referred_to_taf(carm, consent):
    case = Case(carm, {"contact_summary": "Mother asked for help"}, role="crt", key="carmarthenshire_step_across")
    case.complete("Task_CrtJaffPart1", {"family_outcomes": "Routines", **LEVEL_NO, **consent}, "crt")
    task = case.task("Task_RecordNoConsent")
    assert task["roles"] == ["crt"]
    response = attempt(case, "Task_RecordNoConsent", {"no_consent_next_step": "signposted"}, "crt")
    assert response.status_code == 422 and "no_consent_notes" in response.json["errors"]  # the reason is required
    case.complete("Task_RecordNoConsent", {"no_consent_next_step": "signposted", "no_consent_notes": "Told of "
                                           "the family centre"}, "crt")
    done = case.json
    assert (done["status"], done["outcome"]) == ("completed", "no_consent")
    assert not tasks_ever(case) & {"Task_LevelOfSupport", "Task_AllocationMeeting", "Task_DiscussUnclearReferral"}
    assert handed_on(case) == []


@pytest.mark.parametrize("consent", CONSENTS)
def test_step_up_marf_refusal_never_blocks_the_referral(carm, consent):
    case = step_up(carm)
    case.complete("Task_RecordConcerns", ACAS, "taf_coordinator")
    case.complete("Task_DiscussWithTafManager", {"step_up_agreed": "agreed", "taf_manager_reason": "x",
                                                 "consult_crt_manager": "no"}, "taf_manager")
    case.complete("Task_CompleteMarf", {"marf_summary": "Needs beyond TAF", **consent, "family_informed": "informed"},
                  "keyworker")
    assert case.open() == ["Task_CrtDecision"]
    assert case.json["data"]["family_informed"] == "informed"  # section 1: 'Families are informed of this'


@pytest.mark.parametrize("consent", CONSENTS)
def test_step_up_urgent_marf_refusal_never_blocks_the_referral(carm, consent):
    case = step_up(carm, significant_harm="yes")
    case.complete(URGENT, URGENT_CRT, "crt")
    case.complete("Task_UrgentMarf", {"marf_summary": "Bruising", "crt_manager_phoned": True, **consent,
                                      "family_informed": "not_informed_risk"}, "keyworker")
    assert case.open() == ["Task_CrtDecision"]


@pytest.mark.parametrize("consent", CONSENTS)
def test_taf_plan_never_starts_without_consent(carm, consent):
    response = carm.post("/cases", json={"process": "carmarthenshire_taf_plan", "reference": "CARM-SAFE-1",
                                         "data": {"family_outcomes": "x", **consent}},
                         as_=carm.as_role("taf_coordinator"))
    if response.status_code == 422:  # the service's voluntary guard
        return
    assert response.status_code == 201, response.json
    case = other(carm, response.json["id"])
    assert (case["status"], case["outcome"], case["tasks"]) == ("completed", "no_consent", [])


# -- step down: the family accept support and manage their own safety plan (section 6) ---------------------------

@pytest.mark.parametrize("weeks, answers", [
    (10, {"safety_plan": "no"}), (10, {"family_accepts_support": "no"}), (3, {"safety_plan": "no"})])
def test_step_down_needs_acceptance_and_an_own_safety_plan(carm, weeks, answers):
    case = step_down(carm, weeks, **answers)
    if weeks < 8:
        case.complete("Task_AgreeNextStepsWithFamily", {"family_support": "supported_referral"}, "social_worker")
    done = case.json
    assert (done["status"], done["outcome"]) == ("completed", "remains_statutory")
    assert "Task_CompleteJaffPart1" not in tasks_ever(case)


def test_step_down_start_asks_both_conditions(carm):
    process = carm.get("/processes/carmarthenshire_step_down", as_="admin").json
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert {"family_accepts_support", "safety_plan"} <= set(required)


# -- decisions carry their reasons; the referrer is told -------------------------------------------------------

def to_step_down_allocation(api):
    case = step_down(api)
    case.complete("Task_CompleteJaffPart1", {**JAFF, "consent": "given", "consent_form": "signed"}, "social_worker")
    case.complete("Task_CheckJaffPart1", {"jaff_complete": True}, "taf_coordinator")
    return case


def test_step_down_decline_is_never_recorded_without_reasons(carm):
    case = to_step_down_allocation(carm)
    response = attempt(case, "Task_AllocationDecision", {"allocation_decision": "declined"}, "taf_coordinator")
    if response.status_code == 422:  # the service evaluates the form's conditional: reasons required on a decline
        assert "decline_reasons" in response.json["errors"]
        case.complete("Task_AllocationDecision", {"allocation_decision": "declined", "decline_reasons": "Not TAF"},
                      "taf_coordinator")
    response = attempt(case, "Task_ExplainDecline", {"decline_explained": True, "decline_logged_on_care_first": True},
                       "taf_coordinator")
    assert response.status_code == 422 and "decline_reasons" in response.json["errors"]
    case.complete("Task_ExplainDecline", {"decline_reasons": "Single agency fits", "decline_explained": True,
                                          "decline_logged_on_care_first": True}, "taf_coordinator")
    assert case.json["outcome"] == "declined" and case.json["data"]["decline_reasons"]


def to_crt_decision(api):
    case = step_up(api)
    case.complete("Task_RecordConcerns", ACAS, "taf_coordinator")
    case.complete("Task_DiscussWithTafManager", {"step_up_agreed": "agreed", "taf_manager_reason": "x",
                                                 "consult_crt_manager": "no"}, "taf_manager")
    assert case.open() == ["Task_CompleteMarf"]  # the CRT consultation is optional ('may')
    case.complete("Task_CompleteMarf", {"marf_summary": "x", "consent": "given"}, "keyworker")
    return case


def test_crt_decision_needs_its_reason_and_the_referrer_told(carm):
    case = to_crt_decision(carm)
    response = attempt(case, "Task_CrtDecision", {"crt_decision": "no_statutory"}, "crt")
    assert response.status_code == 422
    assert {"crt_decision_reason", "referrer_informed"} <= set(response.json["errors"])
    case.complete("Task_CrtDecision", {"crt_decision": "no_statutory", "crt_decision_reason": "TAF can meet it",
                                       "referrer_informed": True}, "crt")
    assert case.json["outcome"] == "continue_taf"


# -- no child drops out of review ------------------------------------------------------------------------------

def test_step_down_hands_the_family_to_the_taf_plan(carm):
    case = to_step_down_allocation(carm)
    case.complete("Task_AllocationDecision", {"allocation_decision": "multi_agency", "taf_number": "TAF-1"},
                  "taf_coordinator")
    case.complete("Task_ContactSocialWorker", {"social_worker_contacted": True, "meeting_date": "2026-12-22"},
                  "taf_coordinator")
    case.complete("Task_StepDownMeeting", {"taf_start_date": "2026-12-21", "personal_outcomes": "School",
                                           "family_understands_taf": True, "intervention_plan": "Weekly sessions",
                                           "key_worker_agency": "Youth service"}, "taf_coordinator")
    case.complete("Task_CloseToStatutoryServices", {"care_first_complete": True}, "social_worker")
    assert case.json["outcome"] == "stepped_down"
    [(process, plan_id)] = handed_on(case)
    new = other(carm, plan_id)
    assert (process, new["status"], new["reference"]) == ("carmarthenshire_taf_plan", "active", "CARM-SAFE-1")
    assert (new["data"]["consent"], new["data"]["family_outcomes"], new["data"]["taf_number"]) == (
        "given", "School every day", "TAF-1")
    assert [t["name"] for t in new["tasks"]] == ["Task_JaffPart2"]  # allocated already: the keyworker's plan next


def acas_step_up_from_plan(api, long_term):
    """A plan that steps up; the step up's ACAS ends stepped_up (long term) or continue_taf."""
    case = reviewing(api)
    case.complete("Task_ReviewPlan", {"review_outcome": "step_up", "concerns": "Worse", "significant_harm": "no"},
                  "keyworker")
    [(_, up_id)] = handed_on(case)
    up = Case.__new__(Case)
    up.api, up.id = api, up_id
    up.complete("Task_RecordConcerns", ACAS, "taf_coordinator")
    up.complete("Task_DiscussWithTafManager", {"step_up_agreed": "agreed", "taf_manager_reason": "x",
                                               "consult_crt_manager": "no"}, "taf_manager")
    up.complete("Task_CompleteMarf", {"marf_summary": "x", "consent": "given"}, "keyworker")
    up.complete("Task_CrtDecision", {"crt_decision": "acas", "crt_decision_reason": "Assess",
                                     "referrer_informed": True}, "crt")
    assert case.json["status"] == "active" and case.open() == ["Task_ReviewPlan"]  # reviews go on meanwhile
    up.complete("Task_DiscussAssessment", {"long_term_statutory": long_term}, "taf_coordinator")
    return case, up


def test_step_up_to_long_term_statutory_closes_the_plan(carm):
    case, up = acas_step_up_from_plan(carm, "yes")
    assert up.json["outcome"] == "stepped_up"
    done = case.json
    assert (done["status"], done["outcome"]) == ("completed", "stepped_up")
    assert done["data"]["long_term_statutory"] == "yes"  # the reason travels with the message


def test_step_up_whose_immediate_risk_s47_goes_statutory_closes_the_plan_and_stops_the_taf_side(carm):
    """Section 7: after the S47 raised by immediate risk, statutory services take the case: it closes to TAF.
    The step up ends safeguarding_referral at once (its record of concerns stops) and the plan closes."""
    case = reviewing(carm)
    case.complete("Task_ReviewPlan", {"review_outcome": "step_up", "concerns": "Worse", "significant_harm": "no"},
                  "keyworker")
    [(_, up_id)] = handed_on(case)
    up = Case.__new__(Case)
    up.api, up.id = carm, up_id
    up.message("immediate_risk", {"what_happened": "A disclosure at school"})
    up.complete("Task_UrgentCrtReferral", {"risk_summary": "x", "crt_manager_phoned": True}, "crt")
    assert up.open() == ["Task_DiscussRiskS47Outcome", "Task_RecordConcerns"]
    assert case.json["status"] == "active"  # the plan keeps its reviews until the S47 outcome is discussed
    up.complete("Task_DiscussRiskS47Outcome", {"s47_further_involvement": "statutory"}, "social_worker")
    assert (up.json["status"], up.json["outcome"], up.open()) == ("completed", "safeguarding_referral", [])
    assert case.json["status"] == "completed" and case.open() == []


def test_step_up_ending_continue_taf_leaves_the_plan_reviewing(carm):
    case, up = acas_step_up_from_plan(carm, "no")
    assert up.json["outcome"] == "continue_taf"
    assert case.json["status"] == "active" and case.open() == ["Task_ReviewPlan"]
    assert case.timers()  # the 3-monthly review reminder is still set


# -- immediate risk: CRT's urgent task shows what happened -----------------------------------------------------

@pytest.mark.parametrize("key, data, role", [
    ("carmarthenshire_step_down", {"weeks_open": 10, "family_accepts_support": "yes", "safety_plan": "yes"},
     "social_worker"),
    ("carmarthenshire_step_up", {"allocation_decision": "multi_agency", "concerns": "x", "significant_harm": "no"},
     "keyworker"),
    ("carmarthenshire_step_across", {"contact_summary": "x"}, "crt"),
    ("carmarthenshire_taf_plan", {"family_outcomes": "x", "consent": "given"}, "taf_coordinator"),
])
def test_immediate_risk_reaches_crt_with_what_happened(carm, key, data, role):
    case = Case(carm, data, role=role, key=key)
    waiting = case.open()
    case.message("immediate_risk", {"what_happened": "Child disclosed being hit"})
    task = case.task("Task_UrgentCrtReferral")
    assert task["roles"] == ["crt"]
    form = carm.get(f"/tasks/{task['id']}", as_="admin").json["form"]
    assert "what_happened" in [f["key"] for f in form["fields"]]
    assert case.json["data"]["what_happened"] == "Child disclosed being hit"
    if key != "carmarthenshire_step_across":  # statutory step down, step up and plan: nothing is interrupted
        assert set(waiting) < set(case.open())
