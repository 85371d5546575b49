"""Halton step down from Children's Social Care (the final CIN meeting), driven through the REST API.

Protocol: /work/shared/protocols/halton.txt, section 2: the invitation of the locality early intervention
team, the four outcomes of the final CIN meeting, the CIN minutes becoming the CAF (received at least 2 weeks
before the first CAF review), the Early Intervention step-down form; 1.5 safeguarding first (issue 12: a risk
of significant harm at the final CIN meeting goes to an urgent iCART referral; no CAF without consent given;
the child is open to CSC, so immediate risk does not interrupt the step down).
Runs on SQLite and PostgreSQL. The clock starts on Monday 21 December 2026, 09:00 London (bank holidays 25 and 28 December, 1 January).
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
    refused_without_the_override,
    top_level_ends,
)

from service import scheduler


@pytest.fixture
def pathways(app):
    """The reference pathways on SQLite and on PostgreSQL."""
    return deployed(app)


KEY = "halton_step_down"
NEEDS = {
    "remain_open": {"risk_of_significant_harm": "no", "needs_count": 3, "needs_severity": "complex",
                    "plan_progress": "progressing"},
    "stepped_down_caf": {"risk_of_significant_harm": "no", "needs_count": 2, "needs_severity": "additional",
                         "plan_progress": "progressing"},
    "universal_plus": {"risk_of_significant_harm": "no", "needs_count": 1, "needs_severity": "low",
                       "plan_progress": "progressing"},
    "universal": {"risk_of_significant_harm": "no", "needs_count": 0, "needs_severity": "low",
                  "plan_progress": "progressing"},
}


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
        return self.complete("Task_FinalCinMeeting", {**needs, **consent_answers(consent), **extra}, self.sw)

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


def test_the_diagram_follows_the_safeguarding_conventions():
    tree = diagram(KEY)
    process = tree.find("{http://www.omg.org/spec/BPMN/20100524/MODEL}process")
    assert prop(process, "statutory") == "true"  # the child is on CIN while it runs
    assert element(tree, "Event_ImmediateRisk").get("isInterrupting") == "false"
    assert prop(element(tree, "Task_SafeguardingReferralAtMeeting"), "urgent") == "true"
    assert prop(element(tree, "Event_SteppedDownCaf"), "voluntary") == "true"
    outcomes = {end.get("id"): prop(end, "outcome") for end in top_level_ends(tree)}
    assert None not in outcomes.values(), outcomes
    assert set(outcomes.values()) == {"remain_open", "safeguarding_referral", "stepped_down_caf", "universal_plus",
                                      "universal"}


def test_significant_harm_is_a_required_yes_no_unsure_radio_and_the_plan_asked_is_the_cin_plan(pathways,
                                                                                                 frozen_clock):
    flow = Flow(pathways)
    flow.invite()
    fields = {f["key"]: f for f in flow.task("Task_FinalCinMeeting")["form"]["fields"]}
    harm = fields["risk_of_significant_harm"]
    assert harm["type"] == "radio" and harm["required"] is True
    assert [o["value"] for o in harm["options"]] == ["yes", "no", "unsure"]
    assert fields["plan_progress"]["label"] == "Progress of the CIN plan"  # there is no CAF plan yet
    assert [o["value"] for o in fields["consent"]["options"]] == ["given", "refused", "not_sought"]
    without = {k: v for k, v in NEEDS["stepped_down_caf"].items() if k != "risk_of_significant_harm"}
    bad = pathways.post(f"/tasks/{flow.task('Task_FinalCinMeeting')['id']}/complete", as_=flow.sw,
                        json={"data": {**without, **consent_answers("given")}})
    assert bad.status_code == 422 and "risk_of_significant_harm" in bad.json["errors"]


@pytest.mark.parametrize("harm", ["yes", "unsure"])
@pytest.mark.parametrize("answer", ["given", "refused", "not_sought"])
def test_significant_harm_at_the_final_cin_meeting_goes_to_an_urgent_icart_referral_first(pathways, frozen_clock,
                                                                                           harm, answer):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting({**NEEDS["stepped_down_caf"], "risk_of_significant_harm": harm}, consent=answer,
                 first_caf_review_date="2027-02-10")
    # Nothing before it: no consent check, no decision, no step-down form.
    assert flow.open() == ["Task_SafeguardingReferralAtMeeting"]
    assert flow.decisions() == []
    task = flow.task("Task_SafeguardingReferralAtMeeting")
    assert task["roles"] == ["icart"]
    icart = pathways.as_role("icart")
    bad = pathways.post(f"/tasks/{task['id']}/complete", as_=icart,
                        json={"data": {"safeguarding_action": "Strategy discussion"}})
    assert bad.status_code == 422 and "referrer_told" in bad.json["errors"]  # the social worker hears the outcome
    flow.complete("Task_SafeguardingReferralAtMeeting", {"safeguarding_action": "Strategy discussion",
                                                         "referrer_told": True}, icart)
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "safeguarding_referral"


@pytest.mark.parametrize("answer", ["refused", "not_sought"])
def test_no_caf_without_consent_given(pathways, frozen_clock, answer):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting(NEEDS["stepped_down_caf"], consent=answer, first_caf_review_date="2027-02-10",
                 step_up_indicators="Police call-outs")
    assert flow.decisions() == [("Task_CheckConsent", {"refused": "Rule_ConsentRefused",
                                                        "not_sought": "Rule_ConsentNotSoughtWithReason"}[answer]),
                                ("Task_DecideLevelOfNeed", "Rule_Level2Additional"),
                                ("Task_DecideCinOutcome", "Rule_CafRefusedUniversalPlus")]
    assert flow.case["data"]["cin_outcome"] == "universal_plus"
    assert flow.open() == ["Task_AdviseUniversalPlus", "Task_StepDownForm"]  # no CIN minutes become a CAF
    flow.complete("Task_AdviseUniversalPlus", {"services_advised": "Family hub"}, flow.ei)
    flow.step_down_form("universal_plus")
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "universal_plus"


@pytest.mark.parametrize("answer", ["refused", "not_sought"])
def test_consent_not_sought_needs_the_reason_and_the_manager(pathways, frozen_clock, answer):
    flow = Flow(pathways)
    flow.invite()
    task = flow.task("Task_FinalCinMeeting")
    case = refused_without_the_override(pathways, task["id"], flow.sw, NEEDS["stepped_down_caf"])
    if case is None:
        return
    flow.case = case
    assert flow.decisions() == [("Task_CheckConsent", "Rule_ConsentNotRecorded")]
    # Task_RecordConsent: refused or not sought (with the reason), never a CAF.
    flow.complete("Task_RecordConsent", consent_answers(answer), flow.sw)
    assert flow.decisions()[-1] == ("Task_DecideCinOutcome", "Rule_CafRefusedUniversalPlus")
    assert flow.open() == ["Task_AdviseUniversalPlus", "Task_StepDownForm"]


def test_the_final_cin_outcome_table_never_steps_down_to_a_caf_without_consent(pathways):
    def evaluate(**inputs):
        response = pathways.post("/decisions/halton_final_cin_outcome/evaluate", json={"inputs": inputs},
                                 as_="analyst")
        assert response.status_code == 200, response.json
        return response.json["outputs"], response.json["matched_rules"][0]["id"]

    assert evaluate(level=2, needs_count=2, consent="given") == ("stepped_down_caf", "Rule_SteppedDownCaf")
    assert evaluate(level=2, needs_count=2, consent="not_sought") == ("universal_plus", "Rule_CafRefusedUniversalPlus")
    assert evaluate(level=2, needs_count=2, consent="refused") == ("universal_plus", "Rule_CafRefusedUniversalPlus")
    assert evaluate(level=4, needs_count=2, consent="given") == ("safeguarding_referral",
                                                                 "Rule_SignificantHarmSafeguarding")
    assert evaluate(level=3, needs_count=2, consent="given") == ("remain_open", "Rule_RemainOpen")


def test_immediate_risk_does_not_interrupt_the_step_down_of_a_child_on_cin(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.invite()
    flow.meeting(NEEDS["stepped_down_caf"], first_caf_review_date="2027-02-10")
    waiting = flow.open()
    timers = flow.timers()
    response = pathways.post(f"/cases/{flow.id}/messages", as_=flow.sw,
                             json={"name": "immediate_risk", "data": {"what_happened": "Disclosure at school"}})
    assert response.status_code == 200, response.json
    flow.case = response.json
    assert flow.open() == sorted([*waiting, "Task_UrgentIcartReferral"])  # the CIN work goes on
    # the CIN timers go on; the service adds the urgent referral's escalation at the hour
    now = flow.timers()
    assert [name for name in now if name not in timers] == ["safeguarding:urgent_escalation"]
    assert {name: due for name, due in now.items() if name in timers} == timers
    assert flow.task("Task_UrgentIcartReferral")["roles"] == ["icart"]
    flow.complete("Task_UrgentIcartReferral", {"risk_summary": "Disclosure", "safeguarding_procedures_started": True},
                  pathways.as_role("icart"))
    assert flow.case["status"] == "active" and flow.open() == waiting
