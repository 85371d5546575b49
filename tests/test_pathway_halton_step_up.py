"""Halton planned step up from a CAF to Children's Social Care, driven through the REST API.

Protocol: /work/shared/protocols/halton.txt, section 3 and the step-up flow chart (2 weeks' notice of the
step-up meeting, iCART screening, the meeting held within 2 weeks), 5.1 (management authorisation), 5.2 ii
(Contact Challenge Meeting), 1.5 and 3 N.B. (safeguarding first: issue 12).
The clock starts on Monday 21 December 2026, 09:00 London (bank holidays 25 and 28 December, 1 January).
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

from conftest import sqlite_only

#: SQLite only (conftest.sqlite_only): PostgreSQL is covered by Halton's step down and the API tests.
database_url = sqlite_only()


@pytest.fixture
def pathways(app):
    """The reference pathways (on SQLite: see database_url)."""
    return deployed(app)


KEY = "halton_step_up"
LEVEL_3 = {"risk_of_significant_harm": "no", "needs_count": 3, "needs_severity": "complex",
           "plan_progress": "progressing"}
LEVEL_2 = {"risk_of_significant_harm": "no", "needs_count": 2, "needs_severity": "additional",
           "plan_progress": "progressing"}
LEVEL_4 = {"risk_of_significant_harm": "yes", "needs_count": 4, "needs_severity": "complex",
           "plan_progress": "drifting"}


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
                                                    **consent_answers(consent), **extra}, self.lp)

    def screen(self, needs, no_consensus=False, meeting_notice="kept", task="Task_IcartScreening", as_=None):
        return self.complete(task, {**needs, "screening_notes": "Reviewed", "no_consensus": no_consensus,
                                    "meeting_notice": meeting_notice}, as_ or self.icart)

    def authorise(self, answer="yes"):
        task = self.task("Task_AuthoriseScreening")
        assert task["roles"] == ["team_manager"]
        return self.complete("Task_AuthoriseScreening", {"screening_authorised": answer}, self.manager)

    def safeguard(self):
        """The urgent iCART task: iCART records the action and tells the referrer (the lead professional)."""
        task = self.task("Task_SafeguardingProcedures")
        assert task["roles"] == ["icart"]
        bad = self.api.post(f"/tasks/{task['id']}/complete", as_=self.icart,
                            json={"data": {"safeguarding_action": "Strategy discussion"}})
        assert bad.status_code == 422 and "referrer_told" in bad.json["errors"]
        return self.complete("Task_SafeguardingProcedures", {"safeguarding_action": "Strategy discussion",
                                                             "referrer_told": True,
                                                             "referrer_told_notes": "Phoned the lead professional"},
                             self.icart)


def notifications(api, user):
    return [n["subject"] for n in api.get("/notifications", as_=user).json]


def test_process_definition(pathways):
    process = pathways.get(f"/processes/{KEY}").json
    assert process["roles"] == ["divisional_manager", "icart", "lead_professional", "team_manager"]
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert required == ["child_name", "caf_concerns", "step_up_meeting_date"]
    assert "section 3" in process["documentation"]


def test_the_diagram_follows_the_safeguarding_conventions():
    tree = diagram(KEY)
    assert prop(element(tree, "Task_SafeguardingProcedures"), "urgent") == "true"
    assert element(tree, "Event_NoticeMissed").get("cancelActivity") == "false"  # the notice never blocks
    outcomes = {end.get("id"): prop(end, "outcome") for end in top_level_ends(tree)}
    assert None not in outcomes.values(), outcomes
    assert set(outcomes.values()) == {"continue_caf", "early_intervention_advice", "safeguarding_referral",
                                      "stepped_up"}


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
    harm = {f["key"]: f for f in task["form"]["fields"]}["risk_of_significant_harm"]
    assert (harm["type"], harm["required"], [o["value"] for o in harm["options"]]) == (
        "radio", True, ["yes", "no", "unsure"])  # never a checkbox whose default reads as no
    flow.screen(LEVEL_3)
    assert flow.case["data"]["level"] == 3
    assert flow.decisions() == [("Task_CheckConsent", "Rule_ConsentGiven"),
                                ("Task_ScreeningLevel", "Rule_Level3Complex")]
    # 5.1: iCART's decision is authorised by the team manager before it is acted on.
    assert flow.open() == ["Task_AuthoriseScreening"]
    assert at(flow.task("Task_AuthoriseScreening")["due_at"]) == london(2026, 12, 22, 9, 0)
    flow.authorise()
    task = flow.task("Task_StepUpMeeting")
    assert at(task["due_at"]) == london(2027, 1, 11, 17, 0)
    harm = {f["key"]: f for f in task["form"]["fields"]}["risk_of_significant_harm"]
    assert (harm["type"], harm["required"]) == ("radio", True)
    assert flow.timers() == {"Event_MeetingReminder": london(2027, 1, 12, 9, 0),
                             "Event_MeetingNotWithin2Weeks": london(2027, 1, 4, 9, 0)}
    flow.complete("Task_StepUpMeeting", {**LEVEL_3, "recommendations": "Social work assessment"}, flow.icart)
    assert flow.decisions()[-1] == ("Task_MeetingLevel", "Rule_Level3Complex")
    assert flow.case["data"]["meeting_level"] == 3
    # 3.2: the CAF closes only once the area team has allocated a social worker.
    assert flow.open() == ["Task_LoadRandI"]
    flow.complete("Task_LoadRandI", {"r_and_i_loaded": True, "area_team": "Runcorn"}, flow.icart)
    assert flow.open() == ["Task_AllocateSocialWorker"]
    assert flow.task("Task_AllocateSocialWorker")["roles"] == ["team_manager"]
    bad = pathways.post(f"/tasks/{flow.task('Task_AllocateSocialWorker')['id']}/complete", as_=flow.manager,
                        json={"data": {}})
    assert bad.status_code == 422 and "allocated_social_worker" in bad.json["errors"]
    flow.complete("Task_AllocateSocialWorker", {"allocated_social_worker": "J. Smith"}, flow.manager)
    assert flow.open() == ["Task_CloseCaf"]
    assert flow.task("Task_CloseCaf")["roles"] == ["lead_professional"]
    flow.complete("Task_CloseCaf", {"caf_closed": True}, flow.lp)
    assert flow.case["status"] == "completed"
    assert flow.case["outcome"] == "stepped_up"
    assert flow.case["data"]["area_team"] == "Runcorn"


def test_early_intervention_advice_at_screening(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen(LEVEL_2)
    assert flow.decisions()[-1] == ("Task_ScreeningLevel", "Rule_Level2Additional")
    flow.authorise()
    task = flow.task("Task_EarlyInterventionAdvice")
    assert task["roles"] == ["icart"]
    flow.complete("Task_EarlyInterventionAdvice", {"advice_offered": "Parenting course"}, flow.icart)
    assert flow.case["outcome"] == "early_intervention_advice"


def test_a_decision_the_manager_does_not_authorise_goes_to_the_contact_challenge_meeting(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen(LEVEL_2)
    flow.authorise("no")
    assert flow.open() == ["Task_ContactChallengeMeeting"]
    flow.complete("Task_ContactChallengeMeeting", {"challenge_level": 3, "challenge_reason": "Drift for a year"},
                  flow.divisional)
    assert flow.open() == ["Task_StepUpMeeting"]


def test_drifting_caf_explores_step_up_and_the_meeting_continues_the_caf(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen({**LEVEL_2, "plan_progress": "drifting"})
    assert flow.decisions()[-1] == ("Task_ScreeningLevel", "Rule_Level3Drifting")
    flow.authorise()
    flow.complete("Task_StepUpMeeting", {**LEVEL_2, "recommendations": "More support at CAF level"}, flow.icart)
    assert flow.decisions()[-1] == ("Task_MeetingLevel", "Rule_Level2Additional")
    task = flow.task("Task_ContinueCaf")
    assert task["roles"] == ["lead_professional"]
    flow.complete("Task_ContinueCaf", {"caf_plan_updated": True}, flow.lp)
    assert flow.case["outcome"] == "continue_caf"


def test_less_than_2_weeks_notice_tells_the_manager_but_never_blocks_the_referral(pathways, frozen_clock):
    flow = Flow(pathways, meeting="2027-01-18")
    assert flow.timers() == {"Event_NoticeReminder": london(2026, 12, 30, 9, 0),
                             "Event_NoticeMissed": london(2027, 1, 4, 9, 0)}
    frozen_clock.move_to(london(2026, 12, 30, 8, 59))
    assert scheduler.fire_due(pathways.app) == 0
    frozen_clock.move_to(london(2026, 12, 30, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.lp) == [
        "Step-up referral: iCART needs 2 weeks' notice of the step-up meeting"]
    frozen_clock.move_to(london(2027, 1, 4, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.manager) == [
        "Step-up referral: iCART will have less than 2 weeks' notice of the step-up meeting"]
    flow.refresh()
    assert flow.open() == ["Task_IcartReferral"]  # nothing cancelled: the referral still goes to iCART
    flow.refer()
    assert flow.open() == ["Task_IcartScreening"]
    # iCART checks the notice: the meeting is in 2 weeks less a day, so the lead professional rearranges it.
    fields = {f["key"]: f for f in flow.task("Task_IcartScreening")["form"]["fields"]}
    assert fields["meeting_notice"]["required"] is True
    flow.screen(LEVEL_3, meeting_notice="rearrange")
    flow.authorise()
    task = flow.task("Task_RearrangeStepUpMeeting")
    assert task["roles"] == ["lead_professional"]
    flow.complete("Task_RearrangeStepUpMeeting", {"step_up_meeting_date": "2027-01-25",
                                                  "rearrange_reason": "iCART needs 2 weeks' notice"}, flow.lp)
    assert at(flow.task("Task_StepUpMeeting")["due_at"]) == london(2027, 1, 25, 17, 0)


def test_a_meeting_already_under_2_weeks_away_does_not_stop_the_referral_reaching_icart(pathways, frozen_clock):
    flow = Flow(pathways, meeting="2026-12-30")  # 9 days away when the concern is raised
    scheduler.fire_due(pathways.app)  # the reminder and the notice are already past: they fire at once
    assert notifications(pathways, flow.manager) == [
        "Step-up referral: iCART will have less than 2 weeks' notice of the step-up meeting"]
    flow.refresh()
    assert flow.open() == ["Task_IcartReferral"]
    flow.refer()
    assert flow.open() == ["Task_IcartScreening"]
    flow.screen(LEVEL_3)  # iCART can attend: the date is kept
    flow.authorise()
    assert flow.open() == ["Task_StepUpMeeting"]


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
    flow.screen(LEVEL_3, task="Task_ManagerScreening", as_=flow.manager)
    flow.authorise()
    assert flow.timers()["Event_MeetingNotWithin2Weeks"] == london(2027, 1, 6, 9, 0)  # 2 weeks on

    frozen_clock.move_to(london(2027, 1, 6, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.manager)[0] == "Step-up meeting not held within 2 weeks"
    flow.refresh()
    assert flow.open() == ["Task_StepUpMeeting"]  # the escalation does not cancel the meeting
    frozen_clock.move_to(london(2027, 1, 12, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.icart)[0] == "Step-up meeting: record the recommendations"


def test_no_consensus_goes_to_the_contact_challenge_meeting_due_in_a_working_day(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen(LEVEL_3, no_consensus=True)
    task = flow.task("Task_ContactChallengeMeeting")
    assert task["roles"] == ["divisional_manager"]
    assert at(task["due_at"]) == london(2026, 12, 22, 9, 0)  # 1 working day
    assert flow.timers() == {"Event_ChallengeReminder": london(2026, 12, 22, 9, 0)}
    frozen_clock.move_to(london(2026, 12, 22, 9, 0))
    assert scheduler.fire_due(pathways.app) == 1
    assert notifications(pathways, flow.divisional) == [
        "Contact Challenge Meeting: the level of need is waiting for your decision"]
    flow.refresh()
    bad = pathways.post(f"/tasks/{task['id']}/complete", as_=flow.divisional, json={"data": {"challenge_level": 2}})
    assert bad.status_code == 422 and "challenge_reason" in bad.json["errors"]
    flow.complete("Task_ContactChallengeMeeting", {"challenge_level": 2, "challenge_reason": "Needs met at CAF level"},
                  flow.divisional)
    assert flow.open() == ["Task_EarlyInterventionAdvice"]
    assert flow.case["data"]["challenge_reason"] == "Needs met at CAF level"


@pytest.mark.parametrize("answer, rule", [("refused", "Rule_ConsentRefused"),
                                          ("not_sought", "Rule_ConsentNotSoughtWithReason")])
def test_a_refusal_or_consent_not_sought_still_reaches_icart(pathways, frozen_clock, answer, rule):
    flow = Flow(pathways)
    flow.refer(consent=answer)
    assert flow.decisions() == [("Task_CheckConsent", rule)]
    assert flow.open() == ["Task_IcartScreening"]  # a referral to the statutory service is never blocked
    flow.screen({**LEVEL_3, "risk_of_significant_harm": "yes"})
    assert flow.open() == ["Task_SafeguardingProcedures"]


@pytest.mark.parametrize("answer, rule", [("refused", "Rule_ConsentRefused"),
                                          ("not_sought", "Rule_ConsentNotSoughtWithReason")])
def test_consent_not_sought_needs_the_reason_and_the_manager(pathways, frozen_clock, answer, rule):
    flow = Flow(pathways)
    case = refused_without_the_override(pathways, flow.task("Task_IcartReferral")["id"], flow.lp,
                                        {"step_up_requested": True, "step_up_meeting_venue": "Widnes"})
    if case is None:
        return
    flow.case = case
    assert flow.decisions() == [("Task_CheckConsent", "Rule_ConsentNotRecorded")]
    flow.complete("Task_RecordConsent", consent_answers(answer), flow.lp)
    assert flow.decisions()[-1] == ("Task_CheckConsent", rule)
    assert flow.open() == ["Task_IcartScreening"]


@pytest.mark.parametrize("harm", ["yes", "unsure"])
@pytest.mark.parametrize("where", ["screening", "manager_screening", "meeting", "challenge"])
def test_significant_harm_opens_the_urgent_icart_task_first(pathways, frozen_clock, harm, where):
    flow = Flow(pathways)
    flow.refer()
    if where == "screening":
        flow.screen({**LEVEL_3, "risk_of_significant_harm": harm})
    elif where == "manager_screening":
        frozen_clock.move_to(london(2026, 12, 23, 9, 0))
        scheduler.fire_due(pathways.app)
        flow.refresh()
        flow.screen({**LEVEL_3, "risk_of_significant_harm": harm}, task="Task_ManagerScreening", as_=flow.manager)
    elif where == "meeting":
        flow.screen(LEVEL_3)
        flow.authorise()
        flow.complete("Task_StepUpMeeting", {**LEVEL_3, "risk_of_significant_harm": harm,
                                             "recommendations": "Strategy discussion"}, flow.icart)
    else:  # the managers at the Contact Challenge Meeting find level 4
        flow.screen(LEVEL_3, no_consensus=True)
        flow.complete("Task_ContactChallengeMeeting", {"challenge_level": 4, "challenge_reason": "Injuries"},
                      flow.divisional)
    if where != "challenge":
        assert flow.decisions()[-1][1] == "Rule_Level4SignificantHarm"
    # Nothing else first: no authorisation, no challenge meeting, no step-up meeting waiting.
    assert flow.open() == ["Task_SafeguardingProcedures"]
    flow.safeguard()
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "safeguarding_referral"


@pytest.mark.parametrize("managers_level, then", [(4, None), (3, "Task_StepUpMeeting"),
                                                 (2, "Task_EarlyInterventionAdvice")])
def test_level_4_without_consensus_goes_to_safeguarding_first_and_only_then_to_the_challenge_meeting(
        pathways, frozen_clock, managers_level, then):
    flow = Flow(pathways)
    flow.refer()
    flow.screen(LEVEL_4, no_consensus=True)
    assert flow.open() == ["Task_SafeguardingProcedures"]  # before the Contact Challenge Meeting
    flow.safeguard()
    assert flow.open() == ["Task_ContactChallengeMeeting"]
    flow.complete("Task_ContactChallengeMeeting", {"challenge_level": managers_level, "challenge_reason": "Agreed"},
                  flow.divisional)
    if then is None:
        assert flow.case["status"] == "completed" and flow.case["outcome"] == "safeguarding_referral"
        assert flow.case["data"]["safeguarding_action"] == "Strategy discussion"
    else:
        assert flow.open() == [then]


def test_immediate_risk_interrupts_every_waiting_step(pathways, frozen_clock):
    flow = Flow(pathways)
    flow.refer()
    flow.screen(LEVEL_3)
    flow.authorise()
    frozen_clock.move_to(london(2026, 12, 22, 15, 0))
    response = pathways.post(f"/cases/{flow.id}/messages", as_=flow.lp,
                             json={"name": "immediate_risk", "data": {"what_happened": "Disclosure at school"}})
    assert response.status_code == 200, response.json
    flow.case = response.json
    assert flow.open() == ["Task_UrgentIcartReferral"]
    task = flow.task("Task_UrgentIcartReferral")
    assert task["roles"] == ["icart"]
    # The concern raised is on iCART's form (read only: the worker who raised it wrote it).
    assert "what_happened" in [f["key"] for f in task["form"]["fields"]]
    assert flow.case["data"]["what_happened"] == "Disclosure at school"
    assert list(flow.timers()) == ["safeguarding:urgent_escalation"]  # the urgent referral's, at the hour
    flow.complete("Task_UrgentIcartReferral", {"risk_summary": "Disclosure", "safeguarding_procedures_started": True},
                  flow.icart)
    assert flow.case["outcome"] == "safeguarding_referral"
