"""Halton unplanned step up: a contact or referral for a child with an open CAF, through the REST API.

Protocol: /work/shared/protocols/halton.txt, section 4, 5.1, 5.2 ii, 1.5. The lead professional of the family's
open CAF is told in the contact case itself (Task_InformLeadProfessional: the CAF may be on any pathway, or on
EIS only), and an open halton_step_up case of the same reference also gets the message unplanned_referral.
Significant harm goes to the urgent iCART task first (issue 12).
The clock starts on Monday 21 December 2026, 09:00 London.
"""
from __future__ import annotations

import pytest
from halton_helpers import (
    at,
    consent_answers,
    deployed,
    diagram,
    element,
    london,
    prop,
    top_level_ends,
)

from service import scheduler

from conftest import sqlite_only

#: SQLite only (conftest.sqlite_only): PostgreSQL is covered by Halton's step down and the API tests.
database_url = sqlite_only()


@pytest.fixture
def pathways(app):
    """The reference pathways (on SQLite: see database_url)."""
    return deployed(app)


KEY = "halton_unplanned_step_up"
LEVEL_1 = {"risk_of_significant_harm": "no", "needs_count": 1, "needs_severity": "low",
           "plan_progress": "progressing"}
LEVEL_3 = {"risk_of_significant_harm": "no", "needs_count": 3, "needs_severity": "complex",
           "plan_progress": "progressing"}
LEVEL_4 = {"risk_of_significant_harm": "yes", "needs_count": 1, "needs_severity": "complex",
           "plan_progress": "progressing"}


class Case:
    def __init__(self, api, case):
        self.api, self.case = api, case

    @property
    def id(self):
        return self.case["id"]

    def task(self, name):
        matches = [t for t in self.case["tasks"] if t["name"] == name]
        assert len(matches) == 1, f"{name} not open; open: {self.open()}"
        return matches[0]

    def open(self):
        return sorted(t["name"] for t in self.case["tasks"])

    def timers(self):
        return {t["name"]: at(t["due_at"]) for t in self.case["timers"]}

    def complete(self, name, data, as_):
        response = self.api.post(f"/tasks/{self.task(name)['id']}/complete", as_=as_, json={"data": data})
        assert response.status_code == 200, response.json
        self.case = response.json
        assert self.case["status"] != "error", self.case["error"]
        return self.case

    def refresh(self):
        self.case = self.api.get(f"/cases/{self.id}", as_="admin").json
        return self.case

    def history(self):
        return self.api.get(f"/cases/{self.id}/history", as_="admin").json

    def decisions(self):
        return [(e["task"], e["detail"]["matched_rules"][0]["id"] if e["detail"]["matched_rules"] else None)
                for e in self.history() if e["event"] == "decision_taken"]


def contact(api, reference="HAL-CAF-1", consent="given", **data) -> Case:
    icart = api.as_role("icart")
    response = api.post("/cases", as_=icart, json={"process": KEY, "reference": reference, "data": {
        "child_name": "Sam", "contact_source": "police", "contact_summary": "Police called to a domestic incident",
        "caf_lead_professional": "A. Teacher", **consent_answers(consent), **data}})
    assert response.status_code == 201, response.json
    return Case(api, response.json)


def open_caf(api, reference="HAL-CAF-1") -> Case:
    """A halton_step_up case (the family's open CAF) waiting at iCART screening."""
    lp = api.as_role("lead_professional")
    response = api.post("/cases", as_=lp, json={"process": "halton_step_up", "reference": reference, "data": {
        "child_name": "Sam", "caf_concerns": "Needs increasing", "step_up_meeting_date": "2027-01-11"}})
    assert response.status_code == 201, response.json
    caf = Case(api, response.json)
    caf.complete("Task_IcartReferral", {"step_up_requested": True, "step_up_meeting_venue": "Widnes",
                                        **consent_answers("given")}, lp)
    assert caf.open() == ["Task_IcartScreening"]
    return caf


def screen(case: Case, needs, no_consensus=False, task="Task_ScreenContact", role="icart"):
    return case.complete(task, {**needs, "screening_notes": "Screened", "no_consensus": no_consensus},
                         case.api.as_role(role))


def authorise(case: Case, answer="yes"):
    """5.1: the team manager authorises iCART's decision (levels 1-3)."""
    assert case.open() == ["Task_AuthoriseScreening"]
    assert case.task("Task_AuthoriseScreening")["roles"] == ["team_manager"]
    return case.complete("Task_AuthoriseScreening", {"screening_authorised": answer},
                         case.api.as_role("team_manager"))


def safeguard(case: Case):
    """The urgent iCART task; iCART tells the referrer (and the lead professional) the outcome."""
    icart = case.api.as_role("icart")
    task = case.task("Task_SafeguardingProcedures")
    assert task["roles"] == ["icart"]
    bad = case.api.post(f"/tasks/{task['id']}/complete", as_=icart,
                        json={"data": {"safeguarding_action": "Strategy discussion"}})
    assert bad.status_code == 422 and "referrer_told" in bad.json["errors"]
    return case.complete("Task_SafeguardingProcedures", {"safeguarding_action": "Strategy discussion",
                                                         "referrer_told": True}, icart)


def test_process_definition(pathways):
    process = pathways.get(f"/processes/{KEY}").json
    assert process["roles"] == ["divisional_manager", "icart", "lead_professional", "social_worker", "team_manager"]
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert required[:4] == ["child_name", "contact_source", "contact_summary", "consent"]
    assert "section 4" in process["documentation"]


def test_the_diagram_follows_the_safeguarding_conventions():
    tree = diagram(KEY)
    assert prop(element(tree, "Task_SafeguardingProcedures"), "urgent") == "true"
    outcomes = {end.get("id"): prop(end, "outcome") for end in top_level_ends(tree)}
    assert None not in outcomes.values(), outcomes
    assert set(outcomes.values()) == {"recorded_for_lead_professional", "safeguarding_referral", "stepped_up"}


def test_no_csc_involvement_is_recorded_and_reaches_the_lead_professional(pathways, frozen_clock):
    caf = open_caf(pathways)
    other_family = open_caf(pathways, reference="HAL-CAF-2")
    case = contact(pathways)
    task = case.task("Task_ScreenContact")
    assert task["roles"] == ["icart"]
    assert at(task["due_at"]) == london(2026, 12, 22, 9, 0)
    screen(case, LEVEL_1)
    assert case.decisions() == [("Task_CheckConsent", "Rule_ConsentGiven"),
                                ("Task_ScreeningLevel", "Rule_Level1LowNeeds")]
    authorise(case)
    icart = pathways.as_role("icart")
    bad = pathways.post(f"/tasks/{case.task('Task_RecordContact')['id']}/complete", as_=icart,
                        json={"data": {"contact_recorded": True}})
    assert bad.status_code == 422 and "referrer_told" in bad.json["errors"]  # the police hear the outcome
    case.complete("Task_RecordContact", {"contact_recorded": True, "review_meeting_suggested": True,
                                         "referrer_told": True, "referrer_told_notes": "Police told: CAF continues"},
                  icart)
    # 4.1: the lead professional of the open CAF has it in this case, whatever pathway the CAF is on.
    task = case.task("Task_InformLeadProfessional")
    assert task["roles"] == ["lead_professional"]
    assert at(task["due_at"]) == london(2026, 12, 23, 9, 0)
    assert case.case["data"]["contact_summary"] == "Police called to a domestic incident"
    sent = [e for e in case.history() if e["event"] == "message_sent"]
    assert [(e["detail"]["name"], e["detail"]["to_cases"]) for e in sent] == [("unplanned_referral", [caf.id])]
    case.complete("Task_InformLeadProfessional", {"unplanned_review_decision": "review_meeting"},
                  pathways.as_role("lead_professional"))
    assert case.case["status"] == "completed"
    assert case.case["outcome"] == "recorded_for_lead_professional"

    # An open halton_step_up case of the family also gets it (non-interrupting) and records it for its meeting;
    # the step up goes on. 4.1: the contact is sent to the lead professional once: no second task there.
    caf.refresh()
    assert caf.open() == ["Task_IcartScreening"]
    referral = caf.case["data"]["unplanned_referral"]
    assert referral == {"child_name": "Sam", "contact_source": "police",
                        "contact_summary": "Police called to a domestic incident", "level": 1,
                        "csc_involvement": False}
    # Another family's CAF hears nothing.
    other_family.refresh()
    assert other_family.open() == ["Task_IcartScreening"]


def test_a_contact_without_an_open_caf_case_in_the_service_still_reaches_the_lead_professional(pathways,
                                                                                                frozen_clock):
    case = contact(pathways, reference="HAL-NO-CAF")  # the CAF is on EIS only
    screen(case, LEVEL_1)
    authorise(case)
    case.complete("Task_RecordContact", {"contact_recorded": True, "referrer_told": True}, pathways.as_role("icart"))
    sent = [e for e in case.history() if e["event"] == "message_sent"]
    assert sent[0]["detail"]["to_cases"] == []
    assert case.open() == ["Task_InformLeadProfessional"]
    case.complete("Task_InformLeadProfessional", {"unplanned_review_decision": "noted"},
                  pathways.as_role("lead_professional"))
    assert case.case["outcome"] == "recorded_for_lead_professional"


def test_a_referral_sent_to_the_caf_from_outside_the_service_still_reaches_its_lead_professional(pathways,
                                                                                                  frozen_clock):
    """Only a contact the service itself recorded without CSC involvement (4.1, csc_involvement false) skips the step
    up's review task, because the contact case gave the lead professional one; anything else comes to them here."""
    caf = open_caf(pathways, reference="HAL-CAF-EXT")
    response = pathways.post(f"/cases/{caf.id}/messages", as_=pathways.as_role("icart"),
                             json={"name": "unplanned_referral", "data": {"contact_summary": "EDT call overnight"}})
    assert response.status_code == 200, response.json
    caf.refresh()
    assert caf.open() == ["Task_IcartScreening", "Task_ReviewUnplannedReferral"]


def test_csc_involvement_instigates_a_sap_and_the_caf_closes_after_allocation(pathways, frozen_clock):
    caf = open_caf(pathways)
    case = contact(pathways)
    screen(case, LEVEL_3)
    authorise(case)
    task = case.task("Task_InstigateSap")
    assert task["roles"] == ["icart"]
    case.complete("Task_InstigateSap", {"r_and_i_loaded": True, "area_team": "Widnes", "referrer_told": True},
                  pathways.as_role("icart"))
    assert case.open() == ["Task_AllocateSocialWorker"]
    assert case.task("Task_AllocateSocialWorker")["roles"] == ["team_manager"]
    caf.refresh()
    assert "unplanned_referral" not in caf.case["data"]  # nobody is told the CAF closes before allocation
    case.complete("Task_AllocateSocialWorker", {"allocated_social_worker": "J. Smith"},
                  pathways.as_role("team_manager"))
    task = case.task("Task_ContactLeadProfessional")
    assert task["roles"] == ["social_worker"]
    assert at(task["due_at"]) == london(2026, 12, 23, 9, 0)
    caf.refresh()
    assert caf.case["data"]["unplanned_referral"]["csc_involvement"] is True
    assert "Task_ReviewUnplannedReferral" in caf.open()
    case.complete("Task_ContactLeadProfessional", {"lead_professional_contacted": True, "caf_closed": True},
                  pathways.as_role("social_worker"))
    assert case.case["outcome"] == "stepped_up"
    assert case.case["data"]["allocated_social_worker"] == "J. Smith"


def test_screening_reminder_escalation_and_contact_challenge(pathways, frozen_clock):
    icart, manager = pathways.as_role("icart"), pathways.as_role("team_manager")
    divisional = pathways.as_role("divisional_manager")
    case = contact(pathways)
    frozen_clock.move_to(london(2026, 12, 22, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert [n["subject"] for n in pathways.get("/notifications", as_=icart).json] == [
        "Contact on an open CAF waiting for iCART screening"]
    frozen_clock.move_to(london(2026, 12, 23, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert [n["subject"] for n in pathways.get("/notifications", as_=manager).json] == [
        "Contact on an open CAF not screened in 2 working days"]
    case.refresh()
    assert case.open() == ["Task_ManagerScreening"]
    screen(case, LEVEL_1, no_consensus=True, task="Task_ManagerScreening", role="team_manager")
    task = case.task("Task_ContactChallengeMeeting")
    assert task["roles"] == ["divisional_manager"]
    assert at(task["due_at"]) == london(2026, 12, 24, 9, 0)  # 1 working day
    assert case.timers() == {"Event_ChallengeReminder": london(2026, 12, 24, 9, 0)}
    case.complete("Task_ContactChallengeMeeting", {"challenge_level": 3, "challenge_reason": "Repeated incidents"},
                  divisional)
    assert case.open() == ["Task_InstigateSap"]


def test_a_decision_the_manager_does_not_authorise_goes_to_the_contact_challenge_meeting(pathways, frozen_clock):
    case = contact(pathways)
    screen(case, LEVEL_1)
    authorise(case, "no")
    assert case.open() == ["Task_ContactChallengeMeeting"]
    case.complete("Task_ContactChallengeMeeting", {"challenge_level": 2, "challenge_reason": "Agree: no CSC"},
                  pathways.as_role("divisional_manager"))
    assert case.open() == ["Task_RecordContact"]


@pytest.mark.parametrize("answer, rule", [("refused", "Rule_ConsentRefused"),
                                          ("not_sought", "Rule_ConsentNotSoughtWithReason")])
def test_a_refusal_or_consent_not_sought_is_recorded_and_the_contact_is_still_screened(pathways, frozen_clock,
                                                                                      answer, rule):
    case = contact(pathways, consent=answer)
    assert case.decisions() == [("Task_CheckConsent", rule)]
    assert case.open() == ["Task_ScreenContact"]
    screen(case, {**LEVEL_1, "risk_of_significant_harm": "yes"})
    assert case.open() == ["Task_SafeguardingProcedures"]  # a refusal never delays safeguarding


@pytest.mark.parametrize("answer, rule", [("refused", "Rule_ConsentRefused"),
                                          ("not_sought", "Rule_ConsentNotSoughtWithReason")])
def test_consent_not_sought_needs_the_reason_and_the_manager(pathways, frozen_clock, answer, rule):
    response = pathways.post("/cases", as_=pathways.as_role("icart"), json={"process": KEY, "reference": "HAL-C",
                             "data": {"child_name": "Sam", "contact_source": "school", "contact_summary": "Bruise",
                                      "consent": "not_sought"}})
    if response.status_code == 422:  # once the service requires the fields consent not_sought shows
        assert {"consent_override_reason", "consent_override_agreed_by"} <= set(response.json["errors"])
        return
    assert response.status_code == 201, response.json
    case = Case(pathways, response.json)
    assert case.open() == ["Task_RecordConsent"]
    case.complete("Task_RecordConsent", consent_answers(answer), pathways.as_role("icart"))
    assert case.decisions()[-1] == ("Task_CheckConsent", rule)
    assert case.open() == ["Task_ScreenContact"]


@pytest.mark.parametrize("harm", ["yes", "unsure"])
@pytest.mark.parametrize("where", ["screening", "manager_screening"])
def test_significant_harm_opens_the_urgent_icart_task_first(pathways, frozen_clock, harm, where):
    case = contact(pathways)
    if where == "manager_screening":
        frozen_clock.move_to(london(2026, 12, 23, 9, 0))
        scheduler.fire_due(pathways.app)
        case.refresh()
        screen(case, {**LEVEL_1, "risk_of_significant_harm": harm}, task="Task_ManagerScreening",
               role="team_manager")
    else:
        screen(case, {**LEVEL_1, "risk_of_significant_harm": harm})
    assert case.decisions()[-1] == ("Task_ScreeningLevel", "Rule_Level4SignificantHarm")
    assert case.open() == ["Task_SafeguardingProcedures"]  # before any authorisation or challenge meeting
    safeguard(case)
    assert case.case["status"] == "completed" and case.case["outcome"] == "safeguarding_referral"


def test_the_challenge_meeting_finding_level_4_goes_to_the_urgent_icart_task(pathways, frozen_clock):
    case = contact(pathways)
    screen(case, LEVEL_3, no_consensus=True)
    case.complete("Task_ContactChallengeMeeting", {"challenge_level": 4, "challenge_reason": "Injuries"},
                  pathways.as_role("divisional_manager"))
    assert case.open() == ["Task_SafeguardingProcedures"]
    safeguard(case)  # no second challenge meeting
    assert case.case["status"] == "completed" and case.case["outcome"] == "safeguarding_referral"


@pytest.mark.parametrize("managers_level, then", [(4, None), (3, "Task_InstigateSap"), (1, "Task_RecordContact")])
def test_level_4_without_consensus_goes_to_safeguarding_first_and_only_then_to_the_challenge_meeting(
        pathways, frozen_clock, managers_level, then):
    case = contact(pathways)
    screen(case, LEVEL_4, no_consensus=True)
    assert case.open() == ["Task_SafeguardingProcedures"]
    safeguard(case)
    assert case.open() == ["Task_ContactChallengeMeeting"]
    case.complete("Task_ContactChallengeMeeting", {"challenge_level": managers_level, "challenge_reason": "Agreed"},
                  pathways.as_role("divisional_manager"))
    if then is None:
        assert case.case["status"] == "completed" and case.case["outcome"] == "safeguarding_referral"
    else:
        assert case.open() == [then]


def test_immediate_risk_interrupts(pathways, frozen_clock):
    icart = pathways.as_role("icart")
    case = contact(pathways, reference="HAL-CAF-3")
    response = pathways.post(f"/cases/{case.id}/messages", as_=icart,
                             json={"name": "immediate_risk", "data": {"what_happened": "Second incident"}})
    assert response.status_code == 200, response.json
    case.case = response.json
    assert case.open() == ["Task_UrgentIcartReferral"]
    assert case.task("Task_UrgentIcartReferral")["roles"] == ["icart"]
    assert list(case.timers()) == ["safeguarding:urgent_escalation"]  # the urgent referral's, at the hour
    case.complete("Task_UrgentIcartReferral", {"risk_summary": "x", "safeguarding_procedures_started": True}, icart)
    assert case.case["outcome"] == "safeguarding_referral"
