"""Halton planned step up from a CAF to Children's Social Care, driven through the REST API.

Protocol: /work/shared/protocols/halton.txt, section 3 and the step-up flow chart (2 weeks' notice of the
step-up meeting, iCART screening, the meeting held within 2 weeks), 5.2 ii (Contact Challenge Meeting).
The clock starts on Monday 21 December 2026, 09:00 London (bank holidays 25 and 28 December, 1 January).
"""
from __future__ import annotations

from datetime import datetime

import pytest

from service import scheduler
from service.engine.clock import LONDON

KEY = "halton_step_up"
LEVEL_3 = {"risk_of_significant_harm": False, "needs_count": 3, "needs_severity": "complex",
           "plan_progress": "progressing"}
LEVEL_2 = {"risk_of_significant_harm": False, "needs_count": 2, "needs_severity": "additional",
           "plan_progress": "progressing"}
LEVEL_4 = {"risk_of_significant_harm": True, "needs_count": 4, "needs_severity": "complex",
           "plan_progress": "drifting"}


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(LONDON) if value else None


class Flow:
    """One case and the people working on it."""

    def __init__(self, api, reference="HAL-UP-1", meeting="2027-01-11", **data):
        self.api = api
        self.lp = api.as_role("lead_professional")
        self.icart = api.as_role("icart")
        self.manager = api.as_role("team_manager")
        self.divisional = api.as_role("divisional_manager")
        response = api.post("/cases", as_=self.lp, json={"process": KEY, "reference": reference, "data": {
            "child_name": "Sam", "caf_reference": "EIS-42", "caf_concerns": "Needs increasing",
            "step_up_meeting_date": meeting, **data}})
        assert response.status_code == 201, response.json
        self.case = response.json

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

    def refer(self, consent="given", **extra):
        return self.complete("Task_IcartReferral", {"step_up_requested": True, "step_up_meeting_venue": "10:00, Widnes",
                                                    "consent": consent, **extra}, self.lp)

    def screen(self, needs, no_consensus=False):
        return self.complete("Task_IcartScreening", {**needs, "screening_notes": "Reviewed",
                                                     "no_consensus": no_consensus}, self.icart)


def notifications(api, user):
    return [n["subject"] for n in api.get("/notifications", as_=user).json]


def test_process_definition(pathways):
    process = pathways.get(f"/processes/{KEY}").json
    assert process["roles"] == ["divisional_manager", "icart", "lead_professional", "team_manager"]
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert required == ["child_name", "caf_concerns", "step_up_meeting_date"]
    assert "section 3" in process["documentation"]


def test_level_3_step_up_agreed_at_the_meeting(pathways, frozen_clock):
    flow = Flow(pathways)
    task = flow.task("Task_IcartReferral")
    assert task["roles"] == ["lead_professional"]
    assert at(task["due_at"]) == london(2026, 12, 28, 9, 0)  # 2 weeks before the 11 January meeting
    assert flow.timers() == {"Event_NoticeReminder": london(2026, 12, 23, 9, 0),
                             "Event_NoticeMissed": london(2026, 12, 28, 9, 0)}
    flow.refer()
    assert flow.case["data"]["consent_recorded"] is True
    task = flow.task("Task_IcartScreening")
    assert task["roles"] == ["icart"]
    assert at(task["due_at"]) == london(2026, 12, 22, 9, 0)  # 1 working day
    assert flow.timers() == {"Event_ScreeningReminder": london(2026, 12, 22, 9, 0),
                             "Event_ScreeningEscalation": london(2026, 12, 23, 9, 0)}
    flow.screen(LEVEL_3)
    assert flow.case["data"]["level"] == 3
    assert flow.decisions() == [("Task_CheckConsent", "Rule_ConsentGiven"),
                                ("Task_ScreeningLevel", "Rule_Level3Complex")]
    task = flow.task("Task_StepUpMeeting")
    assert at(task["due_at"]) == london(2027, 1, 11, 17, 0)
    assert flow.timers() == {"Event_MeetingReminder": london(2027, 1, 12, 9, 0),
                             "Event_MeetingNotWithin2Weeks": london(2027, 1, 4, 9, 0)}
    flow.complete("Task_StepUpMeeting", {**LEVEL_3, "recommendations": "Social work assessment"}, flow.icart)
    assert flow.decisions()[-1] == ("Task_MeetingLevel", "Rule_Level3Complex")
    assert flow.open() == ["Task_CloseCaf", "Task_LoadRandI"]
    assert flow.task("Task_CloseCaf")["roles"] == ["lead_professional"]
    flow.complete("Task_LoadRandI", {"r_and_i_loaded": True, "area_team": "Runcorn"}, flow.icart)
    assert flow.case["status"] == "active"
    flow.complete("Task_CloseCaf", {"caf_closed": True}, flow.lp)
    assert flow.case["status"] == "completed"
    assert flow.case["outcome"] == "stepped_up"
    assert flow.case["data"]["area_team"] == "Runcorn"


def test_early_intervention_advice_at_screening(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen(LEVEL_2)
    assert flow.decisions()[-1] == ("Task_ScreeningLevel", "Rule_Level2Additional")
    task = flow.task("Task_EarlyInterventionAdvice")
    assert task["roles"] == ["icart"]
    flow.complete("Task_EarlyInterventionAdvice", {"advice_offered": "Parenting course"}, flow.icart)
    assert flow.case["outcome"] == "early_intervention_advice"


def test_drifting_caf_explores_step_up_and_the_meeting_continues_the_caf(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen({**LEVEL_2, "plan_progress": "drifting"})
    assert flow.decisions()[-1] == ("Task_ScreeningLevel", "Rule_Level3Drifting")
    flow.complete("Task_StepUpMeeting", {**LEVEL_2, "recommendations": "More support at CAF level"}, flow.icart)
    assert flow.decisions()[-1] == ("Task_MeetingLevel", "Rule_Level2Additional")
    task = flow.task("Task_ContinueCaf")
    assert task["roles"] == ["lead_professional"]
    flow.complete("Task_ContinueCaf", {"caf_plan_updated": True}, flow.lp)
    assert flow.case["outcome"] == "continue_caf"


def test_less_than_2_weeks_notice_reminds_then_escalates_and_the_meeting_is_rearranged(pathways, frozen_clock):
    flow = Flow(pathways, meeting="2027-01-18")
    assert flow.timers() == {"Event_NoticeReminder": london(2026, 12, 30, 9, 0),
                             "Event_NoticeMissed": london(2027, 1, 4, 9, 0)}
    frozen_clock.move_to(london(2026, 12, 30, 8, 59))
    assert scheduler.fire_due(pathways.app) == 0
    frozen_clock.move_to(london(2026, 12, 30, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.lp) == [
        "Step-up referral: iCART needs 2 weeks' notice of the step-up meeting"]
    flow.refresh()
    assert flow.open() == ["Task_IcartReferral"]

    frozen_clock.move_to(london(2027, 1, 4, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.manager) == [
        "Step-up meeting without 2 weeks' notice to iCART: meeting to be rearranged"]
    flow.refresh()
    assert flow.open() == ["Task_RearrangeStepUpMeeting"]
    flow.complete("Task_RearrangeStepUpMeeting", {"step_up_meeting_date": "2027-02-01"}, flow.lp)
    task = flow.task("Task_IcartReferral")
    assert at(task["due_at"]) == london(2027, 1, 18, 9, 0)
    assert flow.timers()["Event_NoticeMissed"] == london(2027, 1, 18, 9, 0)
    flow.refer()
    flow.screen(LEVEL_3)
    assert at(flow.task("Task_StepUpMeeting")["due_at"]) == london(2027, 2, 1, 17, 0)


def test_meeting_not_held_within_2_weeks_escalates_and_overdue_screening_goes_to_the_manager(pathways,
                                                                                               frozen_clock):
    flow = Flow(pathways, meeting="2027-01-11")
    flow.refer()
    frozen_clock.move_to(london(2026, 12, 22, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.icart) == ["Step-up referral waiting for iCART screening"]
    frozen_clock.move_to(london(2026, 12, 23, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.manager) == ["Step-up referral not screened in 2 working days"]
    flow.refresh()
    assert flow.open() == ["Task_ManagerScreening"]
    task = flow.task("Task_ManagerScreening")
    assert task["roles"] == ["team_manager"]
    assert at(task["due_at"]) == london(2026, 12, 23, 17, 0)
    flow.complete("Task_ManagerScreening", {**LEVEL_3, "screening_notes": "Manager", "no_consensus": False},
                  flow.manager)
    assert flow.timers()["Event_MeetingNotWithin2Weeks"] == london(2027, 1, 6, 9, 0)  # 2 weeks on

    frozen_clock.move_to(london(2027, 1, 6, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.manager)[0] == "Step-up meeting not held within 2 weeks"
    flow.refresh()
    assert flow.open() == ["Task_StepUpMeeting"]  # the escalation does not cancel the meeting
    frozen_clock.move_to(london(2027, 1, 12, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.icart)[0] == "Step-up meeting: record the recommendations"


def test_no_consensus_goes_to_the_contact_challenge_meeting(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen(LEVEL_3, no_consensus=True)
    task = flow.task("Task_ContactChallengeMeeting")
    assert task["roles"] == ["divisional_manager"]
    assert at(task["due_at"]) == london(2026, 12, 30, 9, 0)  # 5 working days (25 and 28 December are bank holidays)
    bad = pathways.post(f"/tasks/{task['id']}/complete", as_=flow.divisional, json={"data": {"level": 2}})
    assert bad.status_code == 422 and "challenge_reason" in bad.json["errors"]
    flow.complete("Task_ContactChallengeMeeting", {"level": 2, "challenge_reason": "Needs met at CAF level"},
                  flow.divisional)
    assert flow.open() == ["Task_EarlyInterventionAdvice"]
    assert flow.case["data"]["challenge_reason"] == "Needs met at CAF level"


def test_consent_not_sought_needs_a_reason(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer(consent="not_sought")
    assert flow.decisions() == [("Task_CheckConsent", "Rule_ConsentNotRecorded")]
    assert flow.open() == ["Task_RecordConsent"]
    flow.complete("Task_RecordConsent", {"consent": "not_sought", "consent_reason": "undue_delay"}, flow.lp)
    assert flow.decisions()[-1] == ("Task_CheckConsent", "Rule_ConsentNotSoughtWithReason")
    assert flow.open() == ["Task_IcartScreening"]


@pytest.mark.parametrize("where", ["screening", "meeting"])
def test_possible_s47_supersedes_the_step_up(pathways, frozen_clock, where):
    flow = Flow(pathways)
    flow.refer()
    if where == "meeting":
        flow.screen(LEVEL_3)
        flow.complete("Task_StepUpMeeting", {**LEVEL_4, "recommendations": "Strategy discussion"}, flow.icart)
    else:
        flow.screen(LEVEL_4)
    assert flow.decisions()[-1][1] == "Rule_Level4SignificantHarm"
    task = flow.task("Task_SafeguardingProcedures")
    assert task["roles"] == ["icart"]
    assert at(task["due_at"]) == london(2026, 12, 21, 17, 0)
    flow.complete("Task_SafeguardingProcedures", {"safeguarding_action": "Strategy discussion"}, flow.icart)
    assert flow.case["outcome"] == "safeguarding_referral"


def test_immediate_risk_interrupts_every_waiting_step(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen(LEVEL_3)
    frozen_clock.move_to(london(2026, 12, 22, 15, 0))
    response = pathways.post(f"/cases/{flow.id}/messages", as_=flow.lp,
                             json={"name": "immediate_risk", "data": {"risk_reported_by": "school"}})
    assert response.status_code == 200, response.json
    flow.case = response.json
    assert flow.open() == ["Task_UrgentIcartReferral"]
    task = flow.task("Task_UrgentIcartReferral")
    assert task["roles"] == ["icart"]
    assert at(task["due_at"]) == london(2026, 12, 22, 17, 0)
    assert flow.timers() == {}
    flow.complete("Task_UrgentIcartReferral", {"risk_summary": "Disclosure", "safeguarding_procedures_started": True},
                  flow.icart)
    assert flow.case["outcome"] == "safeguarding_referral"
