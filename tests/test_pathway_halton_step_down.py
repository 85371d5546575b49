"""Halton step down from Children's Social Care (the final CIN meeting), driven through the REST API.

Protocol: /work/shared/protocols/halton.txt, section 2: the invitation of the locality early intervention
team, the four outcomes of the final CIN meeting, the CIN minutes becoming the CAF (received at least 2 weeks
before the first CAF review), the Early Intervention step-down form.
The clock starts on Monday 21 December 2026, 09:00 London (bank holidays 25 and 28 December, 1 January).
"""
from __future__ import annotations

from datetime import datetime

import pytest

from service import scheduler
from service.engine.clock import LONDON

KEY = "halton_step_down"
NEEDS = {
    "remain_open": {"risk_of_significant_harm": False, "needs_count": 3, "needs_severity": "complex",
                    "plan_progress": "progressing"},
    "stepped_down_caf": {"risk_of_significant_harm": False, "needs_count": 2, "needs_severity": "additional",
                         "plan_progress": "progressing"},
    "universal_plus": {"risk_of_significant_harm": False, "needs_count": 1, "needs_severity": "low",
                       "plan_progress": "progressing"},
    "universal": {"risk_of_significant_harm": False, "needs_count": 0, "needs_severity": "low",
                  "plan_progress": "progressing"},
}


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(LONDON) if value else None


class Flow:
    def __init__(self, api, reference="HAL-DOWN-1", meeting="2027-01-06"):
        self.api = api
        self.sw = api.as_role("social_worker")
        self.ei = api.as_role("early_intervention")
        self.lp = api.as_role("lead_professional")
        self.manager = api.as_role("team_manager")
        response = api.post("/cases", as_=self.sw, json={"process": KEY, "reference": reference, "data": {
            "child_name": "Alex", "final_cin_meeting_date": meeting}})
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

    def decisions(self):
        history = self.api.get(f"/cases/{self.id}/history", as_="admin").json
        return [(e["task"], e["detail"]["matched_rules"][0]["id"] if e["detail"]["matched_rules"] else None)
                for e in history if e["event"] == "decision_taken"]

    def invite(self):
        return self.complete("Task_InviteEarlyIntervention", {
            "cin_meeting_time": "10:00", "cin_meeting_venue": "Runcorn office", "work_completed": "Plan achieved",
            "outstanding_actions": "School attendance", "invitation_emailed": True}, self.sw)

    def meeting(self, needs, consent="given", **extra):
        return self.complete("Task_FinalCinMeeting", {**needs, "consent": consent, **extra}, self.sw)

    def step_down_form(self, outcome):
        return self.complete("Task_StepDownForm", {"actions_agreed": "Actions", "step_down_form_outcome": outcome},
                             self.ei)


def notifications(api, user):
    return [n["subject"] for n in api.get("/notifications", as_=user).json]


def test_process_definition(pathways):
    process = pathways.get(f"/processes/{KEY}").json
    assert process["roles"] == ["early_intervention", "icart", "lead_professional", "social_worker", "team_manager"]
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert required == ["child_name", "final_cin_meeting_date"]
    assert "section 2" in process["documentation"]


def test_invitation_and_meeting_due_dates_and_reminders(pathways, frozen_clock):
    flow = Flow(pathways)
    task = flow.task("Task_InviteEarlyIntervention")
    assert task["roles"] == ["social_worker"]
    assert at(task["due_at"]) == london(2027, 1, 5, 9, 0)  # the working day before the meeting
    assert flow.timers() == {"Event_InvitationReminder": london(2027, 1, 5, 9, 0)}
    frozen_clock.move_to(london(2027, 1, 5, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.sw) == ["Final CIN meeting: invite the early intervention team"]
    flow.refresh()
    flow.invite()
    task = flow.task("Task_FinalCinMeeting")
    assert at(task["due_at"]) == london(2027, 1, 6, 17, 0)
    assert flow.timers() == {"Event_MeetingReminder": london(2027, 1, 7, 9, 0)}
    frozen_clock.move_to(london(2027, 1, 7, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.sw)[0] == "Final CIN meeting: record the outcome"
    flow.refresh()
    flow.meeting(NEEDS["remain_open"])
    assert flow.case["outcome"] == "remain_open"


def test_level_3_remains_open_to_csc(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting(NEEDS["remain_open"])
    assert flow.decisions() == [("Task_CheckConsent", "Rule_ConsentGiven"),
                                ("Task_DecideLevelOfNeed", "Rule_Level3Complex"),
                                ("Task_DecideCinOutcome", "Rule_RemainOpen")]
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "remain_open"


def test_step_down_to_caf_with_the_2_week_rule(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting(NEEDS["stepped_down_caf"], first_caf_review_date="2027-02-10",
                 step_up_indicators="Missed school for a week")
    assert flow.case["data"]["level"] == 2 and flow.case["data"]["cin_outcome"] == "stepped_down_caf"
    assert flow.decisions()[-1] == ("Task_DecideCinOutcome", "Rule_SteppedDownCaf")
    assert flow.open() == ["Task_CinDocumentsAsCaf", "Task_StepDownForm"]
    assert flow.task("Task_StepDownForm")["roles"] == ["early_intervention"]
    task = flow.task("Task_CinDocumentsAsCaf")
    assert task["roles"] == ["social_worker"]
    assert at(task["due_at"]) == london(2027, 1, 27, 9, 0)  # 2 weeks before the first CAF review
    assert flow.timers() == {"Event_CinDocumentsReminder": london(2027, 1, 20, 9, 0),
                             "Event_CinDocumentsEscalation": london(2027, 1, 27, 9, 0)}
    flow.step_down_form("stepped_down_caf")
    frozen_clock.move_to(london(2027, 1, 20, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.sw) == [
        "CIN documents due at the early intervention team in a week (2 weeks before the first CAF review)"]
    flow.refresh()
    bad = pathways.post(f"/tasks/{flow.task('Task_CinDocumentsAsCaf')['id']}/complete", as_=flow.sw,
                        json={"data": {"cin_minutes_complete": True, "forwarded_to_early_intervention": True}})
    assert bad.status_code == 422 and "step_up_indicators" in bad.json["errors"]
    flow.complete("Task_CinDocumentsAsCaf", {"step_up_indicators": "Missed school for a week",
                                             "cin_minutes_complete": True, "forwarded_to_early_intervention": True},
                  flow.sw)
    assert flow.timers() == {}
    task = flow.task("Task_UploadCaf")
    assert task["roles"] == ["early_intervention"]
    assert at(task["due_at"]) == london(2027, 2, 9, 9, 0)
    flow.complete("Task_UploadCaf", {"uploaded_to_eis": True, "lead_professional_name": "A. Teacher",
                                     "shared_with_lead_professional": True}, flow.ei)
    task = flow.task("Task_FirstCafReview")
    assert task["roles"] == ["lead_professional"]
    assert at(task["due_at"]) == london(2027, 2, 10, 17, 0)
    assert flow.case["status"] == "active"  # the case stays open until the lead professional has it
    frozen_clock.move_to(london(2027, 2, 11, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.lp) == ["First CAF review: record it and complete the plan in EIS"]
    flow.refresh()
    flow.complete("Task_FirstCafReview", {"first_caf_review_held": True, "delivery_plan_on_eis": True}, flow.lp)
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "stepped_down_caf"
    assert flow.case["data"]["lead_professional_name"] == "A. Teacher"


def test_cin_documents_late_escalate_to_the_team_manager(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting(NEEDS["stepped_down_caf"])  # no first CAF review date yet
    assert "Task_RecordFirstCafReviewDate" in flow.open()
    flow.complete("Task_RecordFirstCafReviewDate", {"first_caf_review_date": "2027-01-20"}, flow.sw)
    task = flow.task("Task_CinDocumentsAsCaf")
    assert at(task["due_at"]) == london(2027, 1, 6, 9, 0)
    frozen_clock.move_to(london(2027, 1, 6, 9, 0))
    assert scheduler.fire_due(pathways.app) == 2  # the reminder (already due) and the escalation
    assert notifications(pathways, flow.manager) == [
        "CIN documents not received 2 weeks before the first CAF review"]
    flow.refresh()
    assert flow.open() == ["Task_ManagerCinDocuments", "Task_StepDownForm"]
    task = flow.task("Task_ManagerCinDocuments")
    assert task["roles"] == ["team_manager"]
    assert at(task["due_at"]) == london(2027, 1, 6, 17, 0)
    flow.complete("Task_ManagerCinDocuments", {"step_up_indicators": "x", "cin_minutes_complete": True,
                                               "forwarded_to_early_intervention": True}, flow.manager)
    assert "Task_UploadCaf" in flow.open()


@pytest.mark.parametrize("outcome, needs, consent, rule, task, role", [
    ("universal_plus", NEEDS["universal_plus"], "given", "Rule_UniversalPlus", "Task_AdviseUniversalPlus",
     "early_intervention"),
    ("universal_plus", NEEDS["stepped_down_caf"], "refused", "Rule_CafRefusedUniversalPlus",
     "Task_AdviseUniversalPlus", "early_intervention"),
    ("universal", NEEDS["universal"], "given", "Rule_Universal", "Task_AdviseUniversal", "social_worker"),
])
def test_universal_plus_and_universal(pathways, frozen_clock, outcome, needs, consent, rule, task, role):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting(needs, consent=consent, step_up_indicators="Police call-outs")
    assert flow.decisions()[-1] == ("Task_DecideCinOutcome", rule)
    assert flow.open() == sorted([task, "Task_StepDownForm"])
    assert flow.task(task)["roles"] == [role]
    data = ({"services_advised": "Family hub"} if task == "Task_AdviseUniversalPlus"
            else {"universal_services_advised": "Children's centre"})
    flow.complete(task, data, flow.ei if role == "early_intervention" else flow.sw)
    assert flow.case["status"] == "active"  # waits for the step-down form
    flow.step_down_form(outcome)
    assert flow.case["status"] == "completed" and flow.case["outcome"] == outcome


def test_consent_not_sought_needs_a_reason(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting(NEEDS["universal"], consent="not_sought")
    assert flow.open() == ["Task_RecordConsent"]
    flow.complete("Task_RecordConsent", {"consent": "not_sought", "consent_reason": "increase_risk"}, flow.sw)
    assert flow.decisions()[-1] == ("Task_DecideCinOutcome", "Rule_Universal")


def test_immediate_risk_interrupts(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting(NEEDS["stepped_down_caf"], first_caf_review_date="2027-02-10")
    response = pathways.post(f"/cases/{flow.id}/messages", as_=flow.sw, json={"name": "immediate_risk", "data": {}})
    assert response.status_code == 200
    flow.case = response.json
    assert flow.open() == ["Task_UrgentIcartReferral"]
    assert flow.task("Task_UrgentIcartReferral")["roles"] == ["icart"]
    assert at(flow.task("Task_UrgentIcartReferral")["due_at"]) == london(2026, 12, 21, 17, 0)
    assert flow.timers() == {}
    flow.complete("Task_UrgentIcartReferral", {"risk_summary": "x", "safeguarding_procedures_started": True},
                  pathways.as_role("icart"))
    assert flow.case["outcome"] == "safeguarding_referral"
