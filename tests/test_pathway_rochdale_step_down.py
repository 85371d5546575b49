"""The Rochdale step-down pathway (rochdale_step_down) through the REST API, on a frozen clock.

Protocol: /work/shared/protocols/rochdale.txt, sections 4 and 5 (and 2.9). Reaches stepped_down_caf, closed,
remains_cin (and safeguarding_referral); walks a child from a child protection plan to CIN to CAF over months
of simulated time, with the CIN plan reviewed every four weeks and the step down to CAF refused, with the date
it becomes possible, until the child has been on CIN for 3 months (5.1).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conftest import everything, sqlite_only
from service import scheduler
from service.models import Case, db
from service.engine.clock import LONDON


#: SQLite only (conftest.sqlite_only): PostgreSQL is covered by Halton's step down and the API tests.
database_url = sqlite_only()

KEY = "rochdale_step_down"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def due(task) -> datetime:
    return datetime.fromisoformat(task["due_at"]).astimezone(timezone.utc)


class Flow:
    def __init__(self, api, clock):
        self.api, self.clock = api, clock
        self.users = {role: api.as_role(role) for role in ("social_worker", "team_manager", "caf_team", "frt")}

    def start(self, data, reference="ROC-9"):
        response = self.api.post("/cases", json={"process": KEY, "reference": reference, "data": data},
                                 as_=self.users["social_worker"])
        assert response.status_code == 201, response.json
        self.case = response.json
        return self.case

    def refresh(self):
        self.case = self.api.get(f"/cases/{self.case['id']}", as_="admin").json
        return self.case

    def open(self):
        return sorted(t["name"] for t in self.refresh()["tasks"])

    def task(self, name):
        matches = [t for t in self.refresh()["tasks"] if t["name"] == name]
        assert len(matches) == 1, f"{name} not open; open: {[t['name'] for t in self.case['tasks']]}"
        return matches[0]

    def complete(self, name, data, role):
        task = self.task(name)
        assert task["roles"] == [role], (name, task["roles"])
        response = self.api.post(f"/tasks/{task['id']}/complete", json={"data": data}, as_=self.users[role])
        assert response.status_code == 200, response.json
        self.case = response.json
        return self.case

    def fire(self, at):
        self.clock.move_to(at)
        return scheduler.fire_due(self.api.app)

    def timers(self):
        return {t["name"]: datetime.fromisoformat(t["due_at"]).astimezone(timezone.utc)
                for t in self.refresh()["timers"]}

    def history(self):
        return self.api.get(f"/cases/{self.case['id']}/history", as_="admin").json

    def rules(self):
        return [e["detail"]["matched_rules"][0]["id"] for e in self.history() if e["event"] == "decision_taken"]

    def notes(self, role):
        return [n["subject"] for n in self.api.get("/notifications", as_=self.users[role]).json]

    def review(self, date):
        return self.complete("Task_CinPlanReview", {"cin_review_date": date}, "social_worker")

    def refused_review(self, date):
        return self.complete("Task_CinReviewStepDownNotYet", {"cin_review_date": date,
                                                              "cin_review_outcome": "continue_cin"}, "social_worker")

    def propose_step_down(self):
        return self.complete("Task_CinPlan", {"cin_plan_outcome": "consider_step_down"}, "social_worker")

    def state_size(self):
        with self.api.app.app_context(), everything():
            return len(db.session.get(Case, self.case["id"]).state)

    def decide(self, still_in_need=False, ongoing=True, manageable=True):
        return self.complete("Task_StepDownDecision", {
            "still_child_in_need": still_in_need, "ongoing_support_needed": ongoing,
            "unmet_need_manageable_under_caf": manageable, "not_for_monitoring_or_onward_referral": True,
            "step_down_decision_reason": "Reviewed with the social worker"}, "team_manager")


@pytest.fixture
def flow(api, frozen_clock):
    """With the reference pathways (on SQLite: see database_url)."""
    api.deploy_pathways()
    return Flow(api, frozen_clock)


def test_process_is_deployed_with_its_roles(flow):
    process = flow.api.get(f"/processes/{KEY}", as_="admin").json
    assert set(process["roles"]) == {"social_worker", "team_manager", "caf_team", "frt"}
    assert {f["key"] for f in process["start_form"]["fields"] if f["required"]} == {"child_name", "current_plan"}
    keys = {f["key"] for f in process["start_form"]["fields"]}
    assert {"icpc_date", "cp_review_date", "was_on_cp_plan", "cp_plan_ended_date"} <= keys


def test_cp_to_cin_to_caf_over_months_with_the_three_month_rule(flow):
    flow.start({"child_name": "Sam", "current_plan": "cp", "icpc_date": "2026-12-14"})
    task = flow.task("Task_CpReviewConference")
    assert due(task) == utc(2027, 3, 14, 9, 0)  # 3 months after the initial conference, not after the task
    assert flow.case["data"]["cp_review_basis"] == "initial_conference"
    flow.clock.move_to(utc(2027, 1, 4, 10, 0))
    flow.complete("Task_CpReviewConference", {"cp_review_date": "2027-01-04", "cp_plan_decision": "continue"},
                  "social_worker")
    assert flow.open() == ["Task_CpReviewConference"]
    assert due(flow.task("Task_CpReviewConference")) == utc(2027, 7, 4, 8, 0)  # 6 months after that review
    # The plan ends, but without its date the case cannot count the 3 months: asked again.
    flow.complete("Task_CpReviewConference", {"cp_review_date": "2027-01-04", "cp_plan_decision": "end"},
                  "social_worker")
    assert flow.open() == ["Task_CpReviewConference"]
    flow.complete("Task_CpReviewConference", {"cp_review_date": "2027-01-04", "cp_plan_decision": "end",
                                              "cp_plan_ended_date": "2027-01-04"}, "social_worker")

    # On CIN: the plan is reviewed every four weeks (a repeating timer), with an escalation.
    assert flow.open() == ["Task_CinPlan"]
    assert flow.timers() == {"Event_CinReviewDue": utc(2027, 2, 1, 10, 0)}
    assert flow.fire(utc(2027, 2, 1, 10, 0)) == 1
    assert "CIN plan review due (every four weeks)" in flow.notes("social_worker")
    assert flow.open() == ["Task_CinPlan", "Task_CinPlanReview"]
    assert due(flow.task("Task_CinPlanReview")) == utc(2027, 2, 8, 10, 0)
    assert flow.fire(utc(2027, 2, 8, 10, 0)) == 1
    assert "CIN plan review a week overdue" in flow.notes("team_manager")
    flow.review("2027-02-08")
    assert flow.timers() == {"Event_CinReviewDue": utc(2027, 3, 1, 10, 0)}

    # A step down proposed after five weeks on CIN is refused until 3 months after the CP plan ended.
    flow.propose_step_down()
    assert flow.rules()[-1] == "Rule_ThreeMonthsOnCin"
    data = flow.case["data"]
    assert data["step_down_possible_from"] == "2027-04-04"
    assert data["three_month_rule"] == "applies"
    assert flow.open() == ["Task_CinReviewStepDownNotYet"]
    task = flow.task("Task_CinReviewStepDownNotYet")
    assert task["title"] == "Review the CIN plan (step down to CAF not yet possible)"
    fields = {f["key"]: f for f in task["form"]["fields"]}
    assert "step_down_possible_from" in fields
    assert due(task) == utc(2027, 3, 8, 10, 0)  # the next four-weekly review
    # 4 April 2027 09:00 London is 08:00 UTC (summer time)
    assert flow.timers()["Event_StepDownNowPossible"] == utc(2027, 4, 4, 8, 0)

    # Reviews go on every four weeks; nothing brings the step down back early.
    for review_on, next_due in (((2027, 3, 8, 10, 0)), utc(2027, 4, 5, 9, 0)), (((2027, 3, 31, 9, 0)), None):
        flow.clock.move_to(utc(*review_on))
        flow.refused_review(f"{review_on[0]}-{review_on[1]:02}-{review_on[2]:02}")
        assert flow.open() == ["Task_CinReviewStepDownNotYet"]
        if next_due:
            assert due(flow.task("Task_CinReviewStepDownNotYet")) == next_due
        assert flow.timers()["Event_StepDownNowPossible"] == utc(2027, 4, 4, 8, 0)
    assert flow.fire(utc(2027, 4, 4, 7, 59)) == 0
    assert flow.open() == ["Task_CinReviewStepDownNotYet"]

    # The date arrives: the step down comes back to the team manager.
    assert flow.fire(utc(2027, 4, 4, 8, 0)) == 1
    assert flow.open() == ["Task_StepDownDecision"]
    assert "Step down to CAF can now be considered" in flow.notes("team_manager")
    assert "Event_RefusedReviewReminder" not in flow.timers()
    flow.decide()
    assert flow.rules()[-1] == "Rule_OfferCaf"
    assert flow.case["data"]["step_down_route"] == "offer_caf"

    # Consent must be recorded before information goes to the CAF Team.
    flow.complete("Task_ConsultFamily", {"family_wants_caf": "yes", "consent": "given",
                                         "lead_professional_name": "Ms Ray",
                                         "lead_professional_agency": "Oak School"}, "social_worker")
    flow.complete("Task_SendCafInformation", {"caf_information_sent": True}, "social_worker")
    flow.complete("Task_CafTeamReceives", {"lead_professional_confirmed": True, "tac_meeting_date": "2027-04-20"},
                  "caf_team")
    assert due(flow.task("Task_CloseAtTacMeeting")) == utc(2027, 4, 20, 8, 0)
    flow.complete("Task_CloseAtTacMeeting", {"case_closed_to_social_care": True}, "social_worker")
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "stepped_down_caf"
    assert flow.case["data"]["lead_professional_name"] == "Ms Ray"
    assert flow.case["data"]["cp_plan_ended_date"] == "2027-01-04"


def test_step_down_allowed_once_three_months_have_passed(flow):
    flow.start({"child_name": "Ali", "current_plan": "cin", "was_on_cp_plan": "yes", "cp_plan_ended_date": "2026-09-21"})
    flow.propose_step_down()
    assert flow.case["data"]["step_down_possible_from"] == "2026-12-21"  # exactly 3 months: allowed
    assert flow.open() == ["Task_StepDownDecision"]


def test_step_down_refused_one_day_short_of_three_months(flow):
    flow.start({"child_name": "Ali", "current_plan": "cin", "was_on_cp_plan": "yes", "cp_plan_ended_date": "2026-09-22"})
    flow.propose_step_down()
    assert flow.case["data"]["step_down_possible_from"] == "2026-12-22"
    assert flow.open() == ["Task_CinReviewStepDownNotYet"]
    assert flow.fire(utc(2026, 12, 22, 9, 0)) == 1
    assert flow.open() == ["Task_StepDownDecision"]


def test_a_year_of_four_weekly_reviews_does_not_grow_the_case(flow):
    flow.start({"child_name": "Jo", "current_plan": "cin"})
    expected = datetime(2027, 1, 18, 9, 0, tzinfo=LONDON)
    sizes = []
    for _ in range(13):  # a year of reviews, every four weeks at 09:00 London (summer time too)
        assert flow.timers() == {"Event_CinReviewDue": expected}
        assert flow.fire(expected) == 1
        task = flow.task("Task_CinPlanReview")
        assert due(task) == expected + timedelta(weeks=1)  # wall-clock arithmetic in London
        flow.review(expected.date().isoformat())
        assert flow.open() == ["Task_CinPlan"]
        sizes.append(flow.state_size())
        expected = (expected.replace(tzinfo=None) + timedelta(weeks=4)).replace(tzinfo=LONDON)
    assert max(sizes) - min(sizes[1:]) < 1000, sizes  # fired review branches are pruned
    assert len([e for e in flow.history() if e["event"] == "timer_fired"]) == 13
    flow.propose_step_down()
    assert flow.rules()[-1] == "Rule_NoChildProtectionPlan"
    assert flow.case["data"]["three_month_rule"] == "not_applicable"
    assert flow.open() == ["Task_StepDownDecision"]


def _to_decision(flow):
    flow.start({"child_name": "Jo", "current_plan": "cin"})
    flow.propose_step_down()


def test_needs_met_the_case_closes(flow):
    _to_decision(flow)
    flow.decide(ongoing=False)
    assert flow.rules()[-1] == "Rule_NeedsMet"
    flow.complete("Task_CloseCase", {"recorded_on_ics": True, "closure_reason": "Needs met"}, "social_worker")
    assert flow.case["outcome"] == "closed"


def test_family_decline_caf_with_no_other_needs_closes(flow):
    _to_decision(flow)
    flow.decide()
    flow.complete("Task_ConsultFamily", {"family_wants_caf": "no", "consent": "refused", "other_needs_noted": False},
                  "social_worker")
    flow.complete("Task_CloseCase", {"recorded_on_ics": True, "closure_reason": "Family declined CAF"},
                  "social_worker")
    assert flow.case["outcome"] == "closed"


def test_consent_refused_with_no_other_needs_closes(flow):
    _to_decision(flow)
    flow.decide()
    flow.complete("Task_ConsultFamily", {"family_wants_caf": "yes", "consent": "refused", "other_needs_noted": False},
                  "social_worker")
    assert flow.open() == ["Task_CloseCase"]


@pytest.mark.parametrize("answers", [
    {"family_wants_caf": "no", "consent": "refused", "other_needs_noted": True},
    {"family_wants_caf": "yes", "consent": "not_sought", "consent_override_reason": "undue_delay",
     "consent_override_agreed_by": "T Manager", "other_needs_noted": False},
])
def test_no_consent_to_caf_keeps_the_child_on_cin_with_its_reviews(flow, answers):
    _to_decision(flow)
    flow.decide()
    flow.clock.move_to(utc(2026, 12, 23, 9, 0))
    flow.complete("Task_ConsultFamily", answers, "social_worker")
    assert flow.case["status"] == "active"
    assert flow.open() == ["Task_CinPlan"]
    assert flow.timers() == {"Event_CinReviewDue": utc(2027, 1, 20, 9, 0)}  # the four-weekly reviews go on


@pytest.mark.parametrize("inputs, rule", [
    ({"still_in_need": True}, "Rule_StillInNeed"),
    ({"manageable": False}, "Rule_UnmetNeedNotManageable"),
])
def test_team_manager_keeps_the_child_on_cin_and_its_reviews(flow, inputs, rule):
    _to_decision(flow)
    task = flow.task("Task_StepDownDecision")
    assert due(task) == utc(2026, 12, 30, 9, 0)  # 5 working days (25 and 28 December off)
    flow.clock.move_to(utc(2026, 12, 22, 14, 0))
    flow.decide(**inputs)
    assert flow.rules()[-1] == rule
    assert flow.case["status"] == "active" and flow.case["data"]["step_down_route"] == "remain_cin"
    assert flow.case["data"]["step_down_decision_reason"] == "Reviewed with the social worker"
    assert flow.open() == ["Task_CinPlan"]
    assert flow.timers() == {"Event_CinReviewDue": utc(2027, 1, 19, 14, 0)}
    assert flow.fire(utc(2027, 1, 19, 14, 0)) == 1
    assert flow.open() == ["Task_CinPlan", "Task_CinPlanReview"]


def test_a_blank_cp_plan_end_date_cannot_skip_the_three_month_rule(flow):
    flow.start({"child_name": "Ali", "current_plan": "cin", "was_on_cp_plan": "yes"})
    flow.propose_step_down()
    assert flow.rules()[-1] == "Rule_CpPlanEndDateMissing"
    assert flow.open() == ["Task_RecordCpPlanEnded"]
    flow.complete("Task_RecordCpPlanEnded", {"cp_plan_ended_date": "2026-12-01"}, "social_worker")
    assert flow.rules()[-1] == "Rule_ThreeMonthsOnCin"
    assert flow.case["data"]["step_down_possible_from"] == "2027-03-01"
    assert flow.open() == ["Task_CinReviewStepDownNotYet"]


def test_a_review_conference_without_any_date_is_due_at_once(flow):
    flow.start({"child_name": "Ali", "current_plan": "cp"})
    assert flow.case["data"]["cp_review_basis"] == "no_conference_date"
    assert due(flow.task("Task_CpReviewConference")) == utc(2026, 12, 21, 9, 0)


def test_immediate_risk_in_a_cp_case_never_ends_its_reviews(flow):
    flow.start({"child_name": "Ali", "current_plan": "cp", "icpc_date": "2026-12-14"})
    before = flow.timers()
    assert set(before) == {"Event_CpReviewReminder", "Event_CpReviewEscalation"}
    flow.clock.move_to(utc(2026, 12, 22, 15, 0))
    response = flow.api.post(f"/cases/{flow.case['id']}/messages",
                             json={"name": "immediate_risk", "data": {"what_happened": "Injury seen at nursery"}})
    assert response.status_code == 200, response.json
    assert flow.open() == ["Task_CpReviewConference", "Task_UrgentFrtReferral"]
    task = flow.task("Task_UrgentFrtReferral")
    assert task["roles"] == ["frt"]
    assert "what_happened" in {f["key"] for f in task["form"]["fields"]}
    assert without_escalation(flow.timers()) == before  # the review conference's timers go on
    flow.complete("Task_UrgentFrtReferral", {"what_happened": "Injury seen at nursery",
                                             "frt_action_taken": "Strategy discussion convened"}, "frt")
    assert flow.case["status"] == "active" and flow.case.get("outcome") is None
    assert flow.open() == ["Task_CpReviewConference"]
    assert due(flow.task("Task_CpReviewConference")) == utc(2027, 3, 14, 9, 0)


def test_immediate_risk_in_a_cin_case_never_ends_its_reviews(flow):
    flow.start({"child_name": "Ali", "current_plan": "cin", "was_on_cp_plan": "yes", "cp_plan_ended_date": "2026-12-01"})
    flow.propose_step_down()
    assert flow.open() == ["Task_CinReviewStepDownNotYet"]
    before = flow.timers()
    flow.clock.move_to(utc(2026, 12, 22, 15, 0))
    response = flow.api.post(f"/cases/{flow.case['id']}/messages",
                             json={"name": "immediate_risk", "data": {"what_happened": "Disclosure"}})
    assert response.status_code == 200, response.json
    assert flow.open() == ["Task_CinReviewStepDownNotYet", "Task_UrgentFrtReferral"]
    assert without_escalation(flow.timers()) == before
    flow.complete("Task_UrgentFrtReferral", {"what_happened": "Disclosure", "frt_action_taken": "Police called"}, "frt")
    assert flow.case["status"] == "active"
    assert flow.open() == ["Task_CinReviewStepDownNotYet"]


def without_escalation(timers: dict) -> dict:
    """The case's timers less the escalation the service adds to an urgent referral (docs/safeguarding.md)."""
    assert "safeguarding:urgent_escalation" in timers
    return {name: due for name, due in timers.items() if name != "safeguarding:urgent_escalation"}
