"""The Rochdale step-up pathway (rochdale_step_up) through the REST API, on a frozen clock.

Protocol: /work/shared/protocols/rochdale.txt, sections 1 to 3. Every outcome of the step up is reached:
referrer_advised, tac_continues, child_in_need, child_protection, caf_offered (and safeguarding_referral),
with the threshold decisions' matched rules, consent, the attachments of 2.4, the CIN meeting (7 days) and
child protection conference (15 days) timers, the managers' consultation on a disputed threshold, the
unplanned-referral message (2.5) and the hand-over to rochdale_step_down.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from service import scheduler

from conftest import sqlite_only

#: SQLite only (conftest.sqlite_only): PostgreSQL is covered by Halton's step down and the API tests.
database_url = sqlite_only()

KEY = "rochdale_step_up"
ALL_ATTACHMENTS = ["marf", "caf", "tac_delivery_plan", "last_tac_meeting"]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def referral(**changes) -> dict:
    data = {"child_name": "Sam", "referrer_name": "Ann Lee", "referrer_agency": "Oak School",
            "referrer_is_lead_professional": True, "caf_in_place": "yes", "concerns": "Needs have escalated",
            "significant_harm": "no", "discussed_with_line_manager": True, "consent": "given",
            "attachments": ALL_ATTACHMENTS}
    data.update(changes)
    return data


class Flow:
    def __init__(self, api, clock):
        self.api, self.clock = api, clock
        self.users = {role: api.as_role(role) for role in
                      ("lead_professional", "frt", "social_worker", "team_manager", "caf_team")}

    def start(self, data, reference="ROC-1", role="lead_professional"):
        response = self.api.post("/cases", json={"process": KEY, "reference": reference, "data": data},
                                 as_=self.users[role])
        assert response.status_code == 201, response.json
        self.case = response.json
        return self.case

    def refresh(self, case_id=None):
        self.case = self.api.get(f"/cases/{case_id or self.case['id']}", as_="admin").json
        return self.case

    def open(self) -> list[str]:
        return sorted(t["name"] for t in self.refresh()["tasks"])

    def task(self, name):
        matches = [t for t in self.refresh()["tasks"] if t["name"] == name]
        assert len(matches) == 1, f"{name} not open; open: {[t['name'] for t in self.case['tasks']]}"
        return matches[0]

    def complete(self, name, data, role):
        task = self.task(name)
        assert role in task["roles"], (name, task["roles"])
        response = self.api.post(f"/tasks/{task['id']}/complete", json={"data": data}, as_=self.users[role])
        assert response.status_code == 200, response.json
        self.case = response.json
        return self.case

    def fire(self, at=None):
        if at is not None:
            self.clock.move_to(at)
        return scheduler.fire_due(self.api.app)

    def history(self):
        return self.api.get(f"/cases/{self.case['id']}/history", as_="admin").json

    def rules(self):
        return [e["detail"]["matched_rules"][0]["id"] for e in self.history() if e["event"] == "decision_taken"]

    def notes(self, role):
        return [n["subject"] for n in self.api.get("/notifications", as_=self.users[role]).json]

    def screen(self, level, risk="no", name="Task_ScreenRequest"):
        assert self.task(name)["roles"] == ["frt"]
        return self.complete(name, {"level_of_need": level, "risk_of_significant_harm": risk}, "frt")

    def strategy(self, date, decision="s47"):
        task = self.task("Task_StrategyDiscussion")
        assert task["roles"] == ["frt"]
        return self.complete("Task_StrategyDiscussion", {
            "strategy_discussion_date": date, "strategy_discussion_participants": "FRT, police, health",
            "strategy_discussion_decision": decision, "strategy_discussion_notes": "Safety plan agreed"}, "frt")


@pytest.fixture
def flow(api, frozen_clock):
    """With the reference pathways (on SQLite: see database_url)."""
    api.deploy_pathways()
    return Flow(api, frozen_clock)


def due(task) -> datetime:
    return datetime.fromisoformat(task["due_at"]).astimezone(timezone.utc)


def test_process_is_deployed_with_its_roles(flow):
    process = flow.api.get(f"/processes/{KEY}", as_="admin").json
    assert set(process["roles"]) == {"lead_professional", "frt", "social_worker", "team_manager", "caf_team"}
    required = {f["key"] for f in process["start_form"]["fields"] if f["required"]}
    assert required == {"child_name", "referrer_name", "referrer_agency", "caf_in_place", "concerns", "significant_harm",
                        "consent", "consent_override_reason", "consent_override_agreed_by"}  # the last two when shown
    fields = {f["key"]: f for f in process["start_form"]["fields"]}
    assert fields["significant_harm"]["type"] == "radio"
    assert [o["value"] for o in fields["significant_harm"]["options"]] == ["yes", "no", "unsure"]
    assert [o["value"] for o in fields["consent"]["options"]] == ["given", "refused", "not_sought"]
    assert [o["value"] for o in fields["consent_override_reason"]["options"]] == [
        "increase_risk", "prejudice_enquiry", "undue_delay"]
    assert "consent_override_agreed_by" in fields and "child_protection_concern" not in fields


# ---- not accepted: TAC continues / referrer advised -------------------------------------------

def test_below_threshold_with_a_caf_the_tac_continues(flow):
    flow.start(referral())
    task = flow.task("Task_ScreenRequest")
    assert due(task) == utc(2026, 12, 22, 9, 0)  # one working day
    flow.screen(level=3)
    assert flow.case["data"]["frt_route"] == "tac_continues"
    assert flow.rules() == ["Rule_TacContinues"]
    flow.complete("Task_ExplainDecision", {"decision_made_known": True, "decision_reasons": "Level 3"}, "frt")
    flow.complete("Task_ConsiderDecision", {"referrer_response": "agree"}, "lead_professional")
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "tac_continues"


def test_no_caf_referrer_advised_and_caf_team_support(flow):
    flow.start(referral(caf_in_place="no", referrer_is_lead_professional=False, attachments=["marf"]))
    flow.screen(level=2)
    assert flow.rules() == ["Rule_AdviseReferrer"]
    flow.complete("Task_ExplainDecision", {"decision_made_known": True, "decision_reasons": "Level 2",
                                           "caf_encouraged": True}, "frt")
    flow.complete("Task_ConsiderDecision", {"referrer_response": "agree", "referrer_unsure_caf": True},
                  "lead_professional")
    flow.complete("Task_CafInformationSheet", {"caf_information_sheet_sent": True}, "social_worker")
    flow.complete("Task_CafTeamContactsReferrer", {"caf_team_contacted_referrer": True}, "caf_team")
    assert flow.case["outcome"] == "referrer_advised"


def test_no_caf_referrer_advised_directly(flow):
    flow.start(referral(caf_in_place="unknown", attachments=["marf"]))
    flow.screen(level=1)
    flow.complete("Task_ExplainDecision", {"decision_made_known": True, "decision_reasons": "Universal"}, "frt")
    flow.complete("Task_ConsiderDecision", {"referrer_response": "agree"}, "lead_professional")
    assert flow.case["outcome"] == "referrer_advised"


def test_disputed_threshold_goes_to_the_managers_consultation(flow):
    flow.start(referral())
    flow.screen(level=3)
    flow.complete("Task_ExplainDecision", {"decision_made_known": True, "decision_reasons": "Level 3"}, "frt")
    flow.complete("Task_ConsiderDecision", {"referrer_response": "disagree", "disagreement_reason": "Escalating"},
                  "lead_professional")
    flow.complete("Task_ThresholdConsultation", {"consultation_decision": "uphold",
                                                 "consultation_reason": "Needs met by TAC"}, "team_manager")
    assert flow.case["outcome"] == "tac_continues"
    assert flow.case["data"]["consultation_reason"] == "Needs met by TAC"
    # the other way: the manager allocates an initial assessment
    flow.start(referral(), reference="ROC-2")
    flow.screen(level=3)
    flow.complete("Task_ExplainDecision", {"decision_made_known": True, "decision_reasons": "x"}, "frt")
    flow.complete("Task_ConsiderDecision", {"referrer_response": "disagree"}, "lead_professional")
    flow.complete("Task_ThresholdConsultation", {"consultation_decision": "assess", "consultation_reason": "Risk"},
                  "team_manager")
    assert flow.open() == ["Task_InitialAssessment"]


# ---- consent and attachments ------------------------------------------------------------------

def test_consent_not_sought_needs_a_reason_and_the_line_manager(flow):
    # Without the reason and the manager the request does not go on: the service refuses the answer (422,
    # once it evaluates conditional.hide) or, failing that, the diagram asks again (Gateway_ConsentRecorded).
    response = flow.api.post("/cases", json={"process": KEY, "reference": "ROC-1", "data": referral(consent="not_sought")},
                             as_=flow.users["lead_professional"])
    assert response.status_code in (201, 422), response.json
    if response.status_code == 201:
        assert [t["name"] for t in response.json["tasks"]] == ["Task_RecordConsent"]
    flow.start(referral(consent="refused"))  # no "what happens next" yet: the lead professional records consent
    assert flow.open() == ["Task_RecordConsent"]
    task = flow.task("Task_RecordConsent")
    assert task["roles"] == ["lead_professional"]
    options = {f["key"]: [o["value"] for o in f.get("options") or []] for f in task["form"]["fields"]}
    assert options["consent"] == ["given", "refused", "not_sought"]
    assert options["consent_override_reason"] == ["increase_risk", "prejudice_enquiry", "undue_delay"]
    flow.clock.move_to(utc(2026, 12, 23, 10, 0))
    response = flow.api.post(f"/tasks/{task['id']}/complete", as_=flow.users["lead_professional"], json={
        "data": {"consent": "not_sought", "consent_override_reason": "increase_risk"}})
    assert response.status_code in (200, 422), response.json
    assert flow.open() == ["Task_RecordConsent"]  # no line manager: not gone on
    flow.complete("Task_RecordConsent", {"consent": "not_sought", "consent_override_reason": "increase_risk",
                                         "consent_override_agreed_by": "J Smith"}, "lead_professional")
    assert flow.open() == ["Task_ScreenRequest"]
    assert flow.case["data"]["consent_override_agreed_by"] == "J Smith"
    # received when the complete request reaches the FRT: the decision is due one working day later
    assert due(flow.task("Task_ScreenRequest")) == utc(2026, 12, 24, 10, 0)


def test_consent_refused_is_recorded_with_what_happens_next(flow):
    flow.start(referral(consent="refused", consent_refused_next="no_request"))
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "consent_refused"
    assert flow.case["data"]["consent_refused_next"] == "no_request"
    # a refusal without what happens next: the lead professional records it
    flow.start(referral(consent="refused"), reference="ROC-2")
    assert flow.open() == ["Task_RecordConsent"]
    flow.complete("Task_RecordConsent", {"consent": "refused", "consent_refused_next": "no_request"}, "lead_professional")
    assert flow.case["outcome"] == "consent_refused"
    # or the family agree after all
    flow.start(referral(consent="refused"), reference="ROC-3")
    flow.complete("Task_RecordConsent", {"consent": "given"}, "lead_professional")
    assert flow.open() == ["Task_ScreenRequest"]


def test_step_up_waits_for_its_attachments_and_reminds(flow):
    flow.start(referral(attachments=["marf", "caf"]))
    assert flow.open() == ["Task_SendAttachments"]
    assert due(flow.task("Task_SendAttachments")) == utc(2026, 12, 22, 9, 0)
    assert flow.fire(utc(2026, 12, 22, 9, 0)) == 1
    assert flow.fire(utc(2026, 12, 23, 9, 0)) == 1
    assert flow.notes("lead_professional").count("Step-up request: attachments still missing") == 2
    flow.complete("Task_SendAttachments", {"attachments": ["marf", "caf", "tac_delivery_plan"]}, "lead_professional")
    assert flow.open() == ["Task_SendAttachments"]
    flow.complete("Task_SendAttachments", {"attachments": ALL_ATTACHMENTS}, "lead_professional")
    assert flow.open() == ["Task_ScreenRequest"]
    assert flow.case["data"]["attachments"] == ALL_ATTACHMENTS


@pytest.mark.parametrize("consent", [
    {"consent": "refused"},
    {"consent": "not_sought", "consent_override_reason": "increase_risk", "consent_override_agreed_by": "J Smith"},
    {"consent": "given"}])
def test_significant_harm_goes_to_the_frt_urgently_before_consent_or_documents(flow, consent):
    flow.start(referral(significant_harm="yes", attachments=[], **consent))
    assert flow.open() == ["Task_UrgentScreening"]  # nothing before it: no consent question, no documents
    task = flow.task("Task_UrgentScreening")
    assert task["roles"] == ["frt"]
    assert flow.case["data"]["referral_received_at"].startswith("2026-12-21T09:00")
    flow.screen(level=4, risk="yes", name="Task_UrgentScreening")
    assert flow.rules() == ["Rule_ChildProtectionConcern"]
    assert flow.open() == ["Task_StrategyDiscussion"]  # urgent, for the FRT, before any S47 enquiry


def test_screening_reminder_and_escalation(flow):
    flow.start(referral())
    flow.users["team_manager"]
    assert flow.fire(utc(2026, 12, 22, 9, 0)) == 1
    assert "Step-up request not yet screened" in flow.notes("frt")
    assert flow.fire(utc(2026, 12, 23, 9, 0)) == 1
    assert "Step-up request unscreened for 2 working days" in flow.notes("team_manager")
    assert flow.open() == ["Task_ScreenRequest"]


# ---- assessment: child in need, child protection, CAF ------------------------------------------

def _assess(flow, **findings):
    flow.screen(level=4)
    assert flow.rules()[-1] == "Rule_MeetsChildInNeedThreshold"
    task = flow.task("Task_InitialAssessment")
    assert due(task) == utc(2027, 2, 25, 9, 0)  # 45 working days (25 and 28 December, 1 January off)
    data = {"assessment_summary": "Assessed", "tac_lead_professional_informed": True, "child_in_need": False,
            "assessment_significant_harm": "no", "ongoing_needs": False}
    data.update(findings)
    flow.complete("Task_InitialAssessment", data, "social_worker")


def test_child_in_need_meeting_within_7_days_then_handed_to_step_down(flow):
    flow.start(referral())
    _assess(flow, child_in_need=True)
    assert flow.rules()[-1] == "Rule_ChildInNeed"
    task = flow.task("Task_ConveneCinMeeting")
    assert task["roles"] == ["social_worker"]
    assert due(task) == utc(2026, 12, 28, 9, 0)  # 7 days
    assert flow.fire(utc(2026, 12, 26, 9, 0)) == 1
    assert "Child in Need meeting due within 7 days" in flow.notes("social_worker")
    assert flow.fire(utc(2026, 12, 28, 9, 0)) == 1
    assert "Child in Need meeting not held within 7 days" in flow.notes("team_manager")
    first = flow.case["id"]
    flow.complete("Task_ConveneCinMeeting", {"cin_meeting_date": "2026-12-29", "professionals_invited": True,
                                             "current_plan": "cin"}, "social_worker")
    assert flow.case["outcome"] == "child_in_need"
    handed = [e for e in flow.history() if e["event"] == "case_handed_on"]
    assert handed and handed[0]["detail"]["process"] == "rochdale_step_down"
    new = flow.refresh(handed[0]["detail"]["to_case"])
    assert (new["process"], new["reference"], new["started_from_case_id"]) == ("rochdale_step_down", "ROC-1", first)
    assert new["data"]["child_name"] == "Sam" and new["data"]["current_plan"] == "cin"
    assert [t["name"] for t in new["tasks"]] == ["Task_CinPlan"]


def test_strategy_discussion_then_icpc_in_15_working_days_then_reviews_at_3_then_6_months(flow):
    flow.start(referral())
    flow.screen(level=4, risk="yes")  # the FRT finds reasonable cause to suspect significant harm
    assert flow.rules() == ["Rule_ChildProtectionConcern"]
    assert flow.open() == ["Task_StrategyDiscussion"]
    flow.clock.move_to(utc(2026, 12, 21, 11, 0))
    flow.strategy("2026-12-21")
    task = flow.task("Task_S47Enquiry")
    assert task["roles"] == ["social_worker"]
    assert due(task) == utc(2027, 1, 7, 9, 0)  # 10 working days after the strategy discussion
    flow.complete("Task_S47Enquiry", {"assessment_summary": "S47", "tac_lead_professional_informed": True,
                                      "s47_outcome": "continuing_risk"}, "social_worker")
    assert flow.rules()[-1] == "Rule_ChildProtectionConference"
    task = flow.task("Task_ConveneIcpc")
    # 15 working days from the strategy discussion (25, 28 December and 1 January are bank holidays)
    assert due(task) == utc(2027, 1, 14, 9, 0)
    assert flow.fire(utc(2027, 1, 12, 9, 0)) == 1
    assert "Child protection conference due within 15 working days of the strategy discussion" in flow.notes("social_worker")
    assert flow.fire(utc(2027, 1, 14, 9, 0)) == 1
    assert "Child protection conference not held within 15 working days of the strategy discussion" in flow.notes(
        "team_manager")
    flow.complete("Task_ConveneIcpc", {"icpc_date": "2027-01-13", "professionals_invited": True,
                                       "current_plan": "cp"}, "social_worker")
    assert flow.case["outcome"] == "child_protection"
    handed = [e for e in flow.history() if e["event"] == "case_handed_on"][0]["detail"]["to_case"]
    new = flow.refresh(handed)
    assert [t["name"] for t in new["tasks"]] == ["Task_CpReviewConference"]
    review = new["tasks"][0]
    # first review conference 3 months after the initial one (09:00 London, summer time: 08:00 UTC)
    assert due(review) == utc(2027, 4, 13, 8, 0)
    flow.clock.move_to(utc(2027, 4, 12, 10, 0))
    flow.complete("Task_CpReviewConference", {"cp_review_date": "2027-04-12", "cp_plan_decision": "continue"},
                  "social_worker")
    # then at most 6 months after the previous conference, not after the task
    assert due(flow.task("Task_CpReviewConference")) == utc(2027, 10, 12, 8, 0)
    flow.clock.move_to(utc(2027, 10, 20, 10, 0))  # held late
    flow.complete("Task_CpReviewConference", {"cp_review_date": "2027-10-05", "cp_plan_decision": "continue"},
                  "social_worker")
    assert due(flow.task("Task_CpReviewConference")) == utc(2028, 4, 5, 8, 0)
    assert flow.case["data"]["cp_review_basis"] == "previous_review"


def test_strategy_discussion_without_s47_goes_on_to_the_assessment_from_receipt(flow):
    flow.start(referral())
    flow.screen(level=4, risk="yes")
    flow.clock.move_to(utc(2026, 12, 23, 9, 0))
    flow.strategy("2026-12-23", decision="no_s47")
    assert flow.open() == ["Task_InitialAssessment"]
    assert due(flow.task("Task_InitialAssessment")) == utc(2027, 2, 25, 9, 0)  # 45 working days from receipt


@pytest.mark.parametrize("answer", ["yes", "unsure"])
def test_significant_harm_at_the_assessment_opens_the_urgent_strategy_discussion_first(flow, answer):
    flow.start(referral())
    _assess(flow, assessment_significant_harm=answer)
    assert flow.rules()[-1] == "Rule_StrategyDiscussion"
    assert flow.open() == ["Task_StrategyDiscussion"]
    assert flow.task("Task_StrategyDiscussion")["roles"] == ["frt"]
    flow.strategy("2027-01-04")
    assert due(flow.task("Task_S47Enquiry")) == utc(2027, 1, 18, 9, 0)
    flow.complete("Task_S47Enquiry", {"assessment_summary": "S47", "tac_lead_professional_informed": True,
                                      "s47_outcome": "continuing_risk"}, "social_worker")
    assert due(flow.task("Task_ConveneIcpc")) == utc(2027, 1, 25, 9, 0)  # 15 working days from 4 January


def test_significant_harm_unsure_at_screening_goes_to_the_assessment(flow):
    flow.start(referral())
    flow.screen(level=3, risk="unsure")
    assert flow.rules() == ["Rule_SignificantHarmUnsure"]
    assert flow.open() == ["Task_InitialAssessment"]


def test_s47_without_continuing_risk_goes_to_a_cin_meeting(flow):
    flow.start(referral(significant_harm="yes"))
    flow.screen(level=4, risk="yes", name="Task_UrgentScreening")
    flow.strategy("2026-12-21")
    flow.complete("Task_S47Enquiry", {"assessment_summary": "S47", "tac_lead_professional_informed": True,
                                      "s47_outcome": "no_continuing_risk", "child_in_need": True},
                  "social_worker")
    assert flow.rules()[-1] == "Rule_ChildInNeedAfterS47"
    assert flow.open() == ["Task_ConveneCinMeeting"]


def test_conference_without_a_plan_goes_to_a_cin_meeting(flow):
    flow.start(referral(significant_harm="yes"))
    flow.screen(level=4, risk="yes", name="Task_UrgentScreening")
    flow.strategy("2026-12-21")
    flow.complete("Task_S47Enquiry", {"assessment_summary": "S47", "s47_outcome": "continuing_risk"}, "social_worker")
    flow.complete("Task_ConveneIcpc", {"icpc_date": "2026-12-30", "professionals_invited": True,
                                       "current_plan": "cin"}, "social_worker")
    assert flow.open() == ["Task_ConveneCinMeeting"]
    flow.complete("Task_ConveneCinMeeting", {"cin_meeting_date": "2027-01-04", "professionals_invited": True,
                                             "current_plan": "cin"}, "social_worker")
    assert flow.case["outcome"] == "child_in_need"


def test_assessment_counts_from_receipt_even_after_a_managers_consultation(flow):
    flow.start(referral())
    flow.screen(level=3)
    flow.complete("Task_ExplainDecision", {"decision_made_known": True, "decision_reasons": "x"}, "frt")
    flow.clock.move_to(utc(2027, 1, 6, 9, 0))
    flow.complete("Task_ConsiderDecision", {"referrer_response": "disagree"}, "lead_professional")
    flow.complete("Task_ThresholdConsultation", {"consultation_decision": "assess", "consultation_reason": "Risk"},
                  "team_manager")
    assert due(flow.task("Task_InitialAssessment")) == utc(2027, 2, 25, 9, 0)


CAF_AGREEMENT = {"agreement_letter_completed": True, "caf_information_sheet_sent": True}


def test_not_in_need_family_wish_a_caf_with_consent(flow):
    flow.start(referral(caf_in_place="no", attachments=["marf"]))
    _assess(flow, ongoing_needs=True)
    assert flow.rules()[-1] == "Rule_CafTacSupport"
    response = flow.api.post(f"/tasks/{flow.task('Task_CommunicateDecision')['id']}/complete",
                             json={"data": {"decision_communicated": True, "family_wants_caf": "yes"}},
                             as_=flow.users["social_worker"])
    assert response.status_code == 422  # the referrer must be told the outcome
    flow.complete("Task_CommunicateDecision", {"decision_communicated": True, "family_wants_caf": "yes",
                                               "referrer_told_outcome": True}, "social_worker")
    flow.complete("Task_CafAgreement", {"consent": "given", **CAF_AGREEMENT}, "social_worker")
    task = flow.task("Task_EstablishCaf")
    assert task["roles"] == ["caf_team"]
    flow.complete("Task_EstablishCaf", {"caf_team_contacted_family": True, "lead_professional_name": "Health visitor",
                                        "next_tac_meeting_date": "2027-01-12"}, "caf_team")
    assert flow.case["outcome"] == "caf_offered"


@pytest.mark.parametrize("consent", [
    {"consent": "refused"},
    {"consent": "not_sought", "consent_override_reason": "undue_delay", "consent_override_agreed_by": "J Smith"}])
def test_no_caf_without_consent_given(flow, consent):
    flow.start(referral(caf_in_place="no", attachments=["marf"]))
    _assess(flow, ongoing_needs=True)
    flow.complete("Task_CommunicateDecision", {"decision_communicated": True, "family_wants_caf": "yes",
                                               "referrer_told_outcome": True}, "social_worker")
    flow.complete("Task_CafAgreement", consent, "social_worker")
    assert flow.case["status"] == "completed" and flow.case["outcome"] == "referrer_advised"


def test_not_in_need_family_decline_and_the_lead_professional_is_told(flow):
    flow.start(referral(caf_in_place="no", attachments=["marf"]))
    _assess(flow, ongoing_needs=True)
    flow.complete("Task_CommunicateDecision", {"decision_communicated": True, "family_wants_caf": "no",
                                               "referrer_told_outcome": True}, "social_worker")
    assert flow.case["outcome"] == "referrer_advised"
    assert flow.case["data"]["referrer_told_outcome"] is True
    flow.start(referral(), reference="ROC-2")
    _assess(flow)
    assert flow.rules()[-1] == "Rule_NoFurtherAction"
    flow.complete("Task_CommunicateDecision", {"decision_communicated": True, "family_wants_caf": "no",
                                               "referrer_told_outcome": True}, "social_worker")
    task = flow.task("Task_LeadProfessionalTold")  # the TAC lead professional of the open CAF, in their inbox
    assert task["roles"] == ["lead_professional"]
    assert due(task) == utc(2026, 12, 23, 9, 0)
    flow.complete("Task_LeadProfessionalTold", {"lead_professional_acknowledged": True}, "lead_professional")
    assert flow.case["outcome"] == "tac_continues"


# ---- unplanned referral (2.5) and immediate risk ------------------------------------------------

def test_unplanned_referral_informs_the_lead_professional_of_the_open_caf(flow):
    planned = flow.start(referral())
    unrelated = flow.start(referral(caf_in_place="no", attachments=["marf"]), reference="OTHER")
    flow.start(referral(referrer_is_lead_professional=False, referrer_name="Dr Patel", referrer_agency="GP",
                        caf_in_place="unknown", attachments=["marf"]), reference="ROC-1", role="frt")
    sent = [e for e in flow.history() if e["event"] == "message_sent"]
    assert sent and sent[0]["detail"]["name"] == "unplanned_referral"
    assert sent[0]["detail"]["to_cases"] == [planned["id"]]
    received = flow.refresh(planned["id"])
    assert sorted(t["name"] for t in received["tasks"]) == ["Task_LiaiseOnUnplannedReferral", "Task_ScreenRequest"]
    assert received["data"]["unplanned_referral"]["referrer_agency"] == "GP"
    assert received["data"]["referrer_name"] == "Ann Lee"  # not overwritten by the other referral's data
    task = [t for t in received["tasks"] if t["name"] == "Task_LiaiseOnUnplannedReferral"][0]
    assert task["roles"] == ["lead_professional"] and due(task) == utc(2026, 12, 22, 9, 0)
    response = flow.api.post(f"/tasks/{task['id']}/complete", json={"data": {"unplanned_referral_acknowledged": True}},
                             as_=flow.users["lead_professional"])
    assert response.status_code == 200
    assert [t["name"] for t in response.json["tasks"]] == ["Task_ScreenRequest"]
    assert response.json["status"] == "active"
    assert "unplanned_referral" in flow.api.get(f"/cases/{planned['id']}", as_="admin").json["data"]
    assert [t["name"] for t in flow.refresh(unrelated["id"])["tasks"]] == ["Task_ScreenRequest"]


def test_immediate_risk_interrupts_the_step_up(flow):
    flow.start(referral())
    flow.screen(level=4)
    flow.clock.move_to(utc(2026, 12, 22, 14, 0))
    response = flow.api.post(f"/cases/{flow.case['id']}/messages",
                             json={"name": "immediate_risk", "data": {"what_happened": "Disclosure at school"}})
    assert response.status_code == 200, response.json
    task = flow.task("Task_UrgentFrtReferral")
    assert task["roles"] == ["frt"]
    assert flow.open() == ["Task_UrgentFrtReferral"]
    fields = {f["key"] for f in task["form"]["fields"]}
    assert "what_happened" in fields and flow.case["data"]["what_happened"] == "Disclosure at school"
    assert [t["name"] for t in flow.case["timers"]] == ["safeguarding:urgent_escalation"]  # the referral's, at the hour
    flow.complete("Task_UrgentFrtReferral", {"what_happened": "Disclosure at school", "frt_action_taken": "Police informed"}, "frt")
    assert flow.case["outcome"] == "safeguarding_referral"
