"""Halton unplanned step up: a contact or referral for a child with an open CAF, through the REST API.

Protocol: /work/shared/protocols/halton.txt, section 4. The lead professional of the open CAF (a
halton_step_up case of the same reference) is told by the message unplanned_referral, which the service
delivers to the other open case waiting for it. The clock starts on Monday 21 December 2026, 09:00 London.
"""
from __future__ import annotations

from datetime import datetime

from service import scheduler
from service.engine.clock import LONDON

KEY = "halton_unplanned_step_up"
LEVEL_1 = {"risk_of_significant_harm": False, "needs_count": 1, "needs_severity": "low",
           "plan_progress": "progressing"}
LEVEL_3 = {"risk_of_significant_harm": False, "needs_count": 3, "needs_severity": "complex",
           "plan_progress": "progressing"}
LEVEL_4 = {"risk_of_significant_harm": True, "needs_count": 1, "needs_severity": "complex",
           "plan_progress": "progressing"}


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(LONDON) if value else None


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
        "caf_lead_professional": "A. Teacher", "consent": consent, **data}})
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
                                        "consent": "given"}, lp)
    assert caf.open() == ["Task_IcartScreening"]
    return caf


def screen(case: Case, needs, no_consensus=False):
    return case.complete("Task_ScreenContact", {**needs, "screening_notes": "Screened", "no_consensus": no_consensus},
                         case.api.as_role("icart"))


def test_process_definition(pathways):
    process = pathways.get(f"/processes/{KEY}").json
    assert process["roles"] == ["divisional_manager", "icart", "social_worker", "team_manager"]
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert required == ["child_name", "contact_source", "contact_summary", "consent"]
    assert "section 4" in process["documentation"]


def test_no_csc_involvement_is_recorded_and_reaches_the_lead_professional_of_the_open_caf(pathways, frozen_clock):
    caf = open_caf(pathways)
    other_family = open_caf(pathways, reference="HAL-CAF-2")
    case = contact(pathways)
    task = case.task("Task_ScreenContact")
    assert task["roles"] == ["icart"]
    assert at(task["due_at"]) == london(2026, 12, 22, 9, 0)
    screen(case, LEVEL_1)
    assert case.decisions() == [("Task_CheckConsent", "Rule_ConsentGiven"),
                                ("Task_ScreeningLevel", "Rule_Level1LowNeeds")]
    case.complete("Task_RecordContact", {"contact_recorded": True, "review_meeting_suggested": True},
                  pathways.as_role("icart"))
    assert case.case["status"] == "completed"
    assert case.case["outcome"] == "recorded_for_lead_professional"
    sent = [e for e in case.history() if e["event"] == "message_sent"]
    assert [(e["detail"]["name"], e["detail"]["to_cases"]) for e in sent] == [("unplanned_referral", [caf.id])]

    # The open CAF: the lead professional gets a review task; the step up goes on (non-interrupting).
    caf.refresh()
    assert caf.open() == ["Task_IcartScreening", "Task_ReviewUnplannedReferral"]
    task = caf.task("Task_ReviewUnplannedReferral")
    assert task["title"] == "Referral received on your CAF: review"
    assert task["roles"] == ["lead_professional"]
    assert at(task["due_at"]) == london(2026, 12, 23, 9, 0)
    received = [e for e in caf.history() if e["event"] == "message_received"]
    assert [e["detail"]["name"] for e in received] == ["unplanned_referral"]
    assert received[0]["actor"] == "system"
    referral = caf.case["data"]["unplanned_referral"]
    assert referral == {"child_name": "Sam", "contact_source": "police",
                        "contact_summary": "Police called to a domestic incident", "level": 1,
                        "csc_involvement": False}
    assert caf.case["data"]["consent"] == "given" and "contact_summary" not in caf.case["data"]
    caf.complete("Task_ReviewUnplannedReferral", {"unplanned_review_decision": "review_meeting"},
                 pathways.as_role("lead_professional"))
    assert caf.open() == ["Task_IcartScreening"]
    assert caf.case["status"] == "active"
    # ... and the step up still runs to its own outcome.
    caf.complete("Task_IcartScreening", {"risk_of_significant_harm": False, "needs_count": 2,
                                         "needs_severity": "additional", "plan_progress": "progressing",
                                         "screening_notes": "x", "no_consensus": False}, pathways.as_role("icart"))
    caf.complete("Task_EarlyInterventionAdvice", {"advice_offered": "Review meeting"}, pathways.as_role("icart"))
    assert caf.case["status"] == "completed" and caf.case["outcome"] == "early_intervention_advice"

    # Another family's CAF hears nothing.
    other_family.refresh()
    assert other_family.open() == ["Task_IcartScreening"]


def test_csc_involvement_instigates_a_sap_without_a_step_up_meeting(pathways, frozen_clock):
    caf = open_caf(pathways)
    case = contact(pathways)
    screen(case, LEVEL_3)
    task = case.task("Task_InstigateSap")
    assert task["roles"] == ["icart"]
    case.complete("Task_InstigateSap", {"r_and_i_loaded": True, "area_team": "Widnes",
                                        "allocated_social_worker": "J. Smith"}, pathways.as_role("icart"))
    task = case.task("Task_ContactLeadProfessional")
    assert task["roles"] == ["social_worker"]
    assert at(task["due_at"]) == london(2026, 12, 23, 9, 0)
    caf.refresh()
    assert caf.case["data"]["unplanned_referral"]["csc_involvement"] is True
    assert "Task_ReviewUnplannedReferral" in caf.open()
    case.complete("Task_ContactLeadProfessional", {"lead_professional_contacted": True, "caf_closed": True},
                  pathways.as_role("social_worker"))
    assert case.case["outcome"] == "stepped_up"


def test_a_contact_without_an_open_caf_case_is_still_recorded(pathways, frozen_clock):
    case = contact(pathways, reference="HAL-NO-CAF")
    screen(case, LEVEL_1)
    case.complete("Task_RecordContact", {"contact_recorded": True}, pathways.as_role("icart"))
    assert case.case["outcome"] == "recorded_for_lead_professional"
    sent = [e for e in case.history() if e["event"] == "message_sent"]
    assert sent[0]["detail"]["to_cases"] == []


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
    case.complete("Task_ManagerScreening", {**LEVEL_1, "screening_notes": "x", "no_consensus": True}, manager)
    assert case.task("Task_ContactChallengeMeeting")["roles"] == ["divisional_manager"]
    case.complete("Task_ContactChallengeMeeting", {"level": 3, "challenge_reason": "Repeated incidents"}, divisional)
    assert case.open() == ["Task_InstigateSap"]


def test_consent_not_sought_needs_a_reason(pathways, frozen_clock):
    case = contact(pathways, consent="not_sought")
    assert case.open() == ["Task_RecordConsent"]
    case.complete("Task_RecordConsent", {"consent": "not_sought", "consent_reason": "prejudice_crime_enquiry"},
                  pathways.as_role("icart"))
    assert case.decisions()[-1] == ("Task_CheckConsent", "Rule_ConsentNotSoughtWithReason")
    assert case.open() == ["Task_ScreenContact"]


def test_possible_s47_and_immediate_risk(pathways, frozen_clock):
    icart = pathways.as_role("icart")
    case = contact(pathways)
    screen(case, LEVEL_4)
    case.complete("Task_SafeguardingProcedures", {"safeguarding_action": "Strategy discussion"}, icart)
    assert case.case["outcome"] == "safeguarding_referral"

    case = contact(pathways, reference="HAL-CAF-3")
    response = pathways.post(f"/cases/{case.id}/messages", as_=icart, json={"name": "immediate_risk", "data": {}})
    case.case = response.json
    assert case.open() == ["Task_UrgentIcartReferral"]
    assert at(case.task("Task_UrgentIcartReferral")["due_at"]) == london(2026, 12, 21, 17, 0)
    assert case.timers() == {}
    case.complete("Task_UrgentIcartReferral", {"risk_summary": "x", "safeguarding_procedures_started": True}, icart)
    assert case.case["outcome"] == "safeguarding_referral"
