"""The AfC step down from CSC to PEH (afc_step_down) through the REST API, on a frozen clock.

Protocol: /work/shared/protocols/achieving-for-children.txt, section 3 and the 'Protocol for STEP DOWN from CSC to
PEH' with its document check list. Outcomes reached: stepped_down, no_step_down (agreed, and decided at the
Transitions Meeting) and safeguarding_referral. The 10-working-day transition runs from Monday 21 December 2026 over
Christmas Day, Boxing Day (substitute Monday 28th) and New Year's Day to Thursday 7 January 2027.
"""
from __future__ import annotations

import pytest
from afc_support import Flow, process_properties, urgent_tasks, utc

KEY = "afc_step_down"
ALL_DOCS = ["consent_form", "assessment_action_plan", "transfer_summary", "chronology", "genogram"]


def start_data(**changes):
    data = {"child_name": "Jo", "sending_manager": "Chris CSC", "csc_team": "irt_rat", "social_worker_name": "Sam",
            "receiving_manager": "Pat PEH", "transitions_meeting_date": "2027-01-07", "rationale": "Needs met"}
    data.update(changes)
    return data


def discussion(can_meet="yes", agree="yes", on="2026-12-21", harm="no"):
    return {"receiving_manager": "Pat PEH", "decision_date": on, "peh_can_meet_needs": can_meet,
            "managers_agree": agree, "decision_reason": "Discussed", "significant_harm": harm}


@pytest.fixture
def flow(pathways, frozen_clock):
    return Flow(pathways, frozen_clock, KEY)


def start(flow, **changes):
    return flow.start(start_data(**changes), role="csc_manager")


def agreed(flow, **changes):
    """Started, the step down agreed by the managers and the family's consent given."""
    start(flow, **changes)
    flow.complete("Task_InitialDiscussion", discussion(), "peh_manager")
    flow.complete("Task_RecordConsent", {"consent": "given"}, "csc_social_worker")


def test_process_definition(pathways):
    process = pathways.get(f"/processes/{KEY}", as_="admin").json
    assert process["roles"] == ["csc_manager", "csc_social_worker", "peh_manager", "peh_practitioner", "spa"]
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert required == ["child_name", "sending_manager", "transitions_meeting_date", "rationale"]


def test_stepped_down_within_10_working_days_over_the_bank_holidays(flow):
    start(flow)
    assert flow.task("Task_InitialDiscussion")["roles"] == ["peh_manager"]
    assert flow.due("Task_InitialDiscussion") == utc(2027, 1, 7, 17, 0)
    flow.complete("Task_InitialDiscussion", discussion(), "peh_manager")
    assert flow.rules() == ["Rule_AgreedPehCanMeetNeeds"]
    # Consent first: nothing is shared with PEH, and no PEH worker allocated, before the family agree.
    assert flow.open() == ["Task_RecordConsent"]
    assert flow.task("Task_RecordConsent")["roles"] == ["csc_social_worker"]
    flow.complete("Task_RecordConsent", {"consent": "given"}, "csc_social_worker")
    assert flow.open() == ["Task_AllocateLeadProfessional", "Task_SendDocumentChecklist"]
    assert flow.due("Task_AllocateLeadProfessional") == utc(2026, 12, 22, 9, 0)  # within 24 hours
    # 5 working days before the meeting of Thursday 7 January: Wednesday 30 December.
    assert flow.due("Task_SendDocumentChecklist") == utc(2026, 12, 30, 9, 0)
    assert flow.task("Task_SendDocumentChecklist")["roles"] == ["csc_social_worker"]

    flow.complete("Task_AllocateLeadProfessional", {"allocated_worker": flow.users["peh_practitioner"]}, "peh_manager")
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ALL_DOCS}, "csc_social_worker")
    assert flow.open() == ["Task_AgreeStepDownPlan"]  # every document shared: nothing to chase
    assert flow.due("Task_AgreeStepDownPlan") == utc(2027, 1, 7, 17, 0)
    # The transition deadline: 10 working days from Monday 21 December is Thursday 7 January, 17:00.
    assert flow.timers() == {"Event_AgreeStepDownPlanReminder": utc(2027, 1, 7, 17, 0),
                             "Event_AgreeStepDownPlanEscalation": utc(2027, 1, 7, 17, 0)}
    flow.clock.move_to(utc(2026, 12, 23, 10, 0))
    flow.complete("Task_AgreeStepDownPlan", {"transition_plan": "Plan", "tac_visit_date": "2027-01-06"},
                  "peh_manager")
    assert flow.task("Task_TacJointVisit")["roles"] == ["peh_practitioner"]
    assert flow.due("Task_TacJointVisit") == utc(2027, 1, 6, 17, 0)
    assert flow.timers() == {"Event_TacJointVisitReminder": utc(2027, 1, 6, 17, 0),
                             "Event_TacJointVisitEscalation": utc(2027, 1, 7, 17, 0)}
    flow.fire(utc(2027, 1, 6, 17, 0))
    assert flow.notes("peh_practitioner") == ["Step down: record the introductory TAC / joint visit"]
    flow.fire(utc(2027, 1, 7, 16, 59))
    assert flow.notes("head_of_integrated_working") == []
    flow.fire(utc(2027, 1, 7, 17, 0))
    assert flow.notes("head_of_integrated_working") == ["Step down: transition not completed within 10 working days"]
    assert flow.open() == ["Task_TacJointVisit"]
    flow.complete("Task_TacJointVisit", {"tac_visit_held": True, "roles_explained": True}, "peh_practitioner")
    assert flow.outcome() == "stepped_down"
    assert flow.case["data"]["allocated_worker"] == "user-peh_practitioner"


def test_plan_not_agreed_by_the_deadline_escalates(flow):
    agreed(flow, transitions_meeting_date="2026-12-24")
    flow.complete("Task_AllocateLeadProfessional", {"allocated_worker": flow.users["peh_practitioner"]}, "peh_manager")
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ALL_DOCS}, "csc_social_worker")
    assert flow.due("Task_AgreeStepDownPlan") == utc(2026, 12, 24, 17, 0)
    flow.fire(utc(2026, 12, 24, 17, 0))
    assert flow.notes("peh_manager")[0] == "Step down: agree the plan at the Transitions Meeting"
    flow.fire(utc(2027, 1, 7, 17, 0))
    assert flow.notes("head_of_integrated_working") == ["Step down: transition not completed within 10 working days"]
    assert flow.open() == ["Task_AgreeStepDownPlan"]


def test_allocation_reminded_at_24_hours_escalated_at_48(flow):
    agreed(flow)
    flow.fire(utc(2026, 12, 22, 9, 0))
    assert "Step down: allocate a PEH lead professional (24 hours)" in flow.notes("peh_manager")
    assert flow.notes("head_of_integrated_working") == []
    flow.fire(utc(2026, 12, 23, 9, 0))
    assert flow.notes("head_of_integrated_working") == ["Step down: no PEH lead professional allocated after 48 hours"]
    # The documents are due on 30 December; still missing at the end of the meeting day, the CSC managers hear.
    flow.fire(utc(2026, 12, 30, 9, 0))
    assert "Step down: documents for the PEH manager are due" in flow.notes("csc_social_worker")
    flow.fire(utc(2027, 1, 7, 17, 0))
    assert "Step down: documents still missing at the Transitions Meeting" in flow.notes("csc_manager")


def test_no_step_down_csc_continue(flow):
    start(flow)
    flow.complete("Task_InitialDiscussion", discussion("no", "yes"), "peh_manager")
    assert flow.rules() == ["Rule_AgreedPehCannotMeetNeeds"]
    assert flow.outcome() == "no_step_down"


@pytest.mark.parametrize("can_meet,agree,rule", [("unclear", "yes", "Rule_NeedsUnclear"),
                                                 ("yes", "no", "Rule_ManagersDisagree")])
def test_undecided_cases_go_to_the_transitions_meeting(flow, can_meet, agree, rule):
    start(flow)
    flow.complete("Task_InitialDiscussion", discussion(can_meet, agree), "peh_manager")
    assert flow.open() == ["Task_DecideAtMeeting"]
    assert flow.task("Task_DecideAtMeeting")["roles"] == ["csc_manager"]
    assert flow.due("Task_DecideAtMeeting") == utc(2026, 12, 30, 9, 0)
    flow.fire(utc(2026, 12, 30, 9, 0))
    assert "Step down: decide the case at this week's Transitions Meeting" in flow.notes("csc_manager")
    flow.fire(utc(2027, 1, 7, 9, 0))
    assert flow.notes("head_of_integrated_working") == ["Step down: undecided after two Transitions Meetings"]
    flow.complete("Task_DecideAtMeeting", {"decision_date": "2027-01-07", "decided_by": "Chair",
                                           "meeting_decision": "no_step_down", "decision_reason": "CP plan"},
                  "csc_manager")
    assert flow.rules() == [rule, "Rule_MeetingNoStepDown"]
    assert flow.outcome() == "no_step_down"


def test_meeting_agrees_the_step_down_and_the_deadline_counts_from_the_meeting(flow):
    start(flow)
    flow.complete("Task_InitialDiscussion", discussion("unclear", "no"), "peh_manager")
    flow.clock.move_to(utc(2027, 1, 7, 11, 0))
    flow.complete("Task_DecideAtMeeting", {"decision_date": "2027-01-07", "decided_by": "Chair",
                                           "meeting_decision": "step_down", "decision_reason": "Ready"},
                  "csc_manager")
    assert flow.rules() == ["Rule_NeedsUnclear", "Rule_MeetingStepDown"]
    flow.complete("Task_RecordConsent", {"consent": "given"}, "csc_social_worker")
    flow.complete("Task_AllocateLeadProfessional", {"allocated_worker": flow.users["peh_practitioner"]}, "peh_manager")
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ALL_DOCS}, "csc_social_worker")
    assert flow.timers()["Event_AgreeStepDownPlanEscalation"] == utc(2027, 1, 21, 17, 0)


def test_significant_harm_yes_goes_first_to_an_urgent_spa_task_and_there_is_no_step_down(flow):
    """Rule 1: before the decision, the consent question or the documents; the child stays with CSC."""
    start(flow)
    flow.complete("Task_InitialDiscussion", discussion(harm="yes"), "peh_manager")
    assert flow.open() == ["Task_UrgentReferralToSpa"]
    assert flow.task("Task_UrgentReferralToSpa")["roles"] == ["spa"]
    assert "Task_UrgentReferralToSpa" in urgent_tasks(KEY)
    assert flow.rules() == []  # no step-down decision was taken
    flow.complete("Task_UrgentReferralToSpa", {"spa_action": "Strategy discussion today"}, "spa")
    assert flow.outcome() == "no_step_down"
    assert "consent" not in flow.case["data"]


def test_significant_harm_is_a_required_yes_no_unsure_radio(flow, pathways):
    start(flow)
    answers = discussion()
    del answers["significant_harm"]
    flow.complete("Task_InitialDiscussion", answers, "peh_manager", status=422)
    flow.complete("Task_InitialDiscussion", discussion(harm=False), "peh_manager", status=422)
    flow.complete("Task_InitialDiscussion", discussion(harm="unsure"), "peh_manager")
    assert flow.open() == ["Task_RecordConsent"]  # unsure: the managers weigh it; the step down goes on


def test_marked_statutory_and_stepping_down_enrols_in_voluntary_peh():
    assert process_properties(KEY, KEY)["statutory"] == "true"
    assert process_properties(KEY, "Event_SteppedDown") == {"outcome": "stepped_down", "voluntary": "true"}
    assert process_properties(KEY, "Event_NoStepDownWithoutConsent") == {"outcome": "no_step_down"}
    assert process_properties(KEY, "Event_NoStepDownAtRisk") == {"outcome": "no_step_down"}


@pytest.mark.parametrize("answers", [
    {"consent": "refused", "consent_refusal_notes": "Family do not want PEH; CSC to close with advice"},
    {"consent": "not_sought", "consent_override_reason": "increase_risk", "consent_override_agreed_by": "Team Manager"},
], ids=["refused", "not_sought"])
def test_without_consent_given_the_family_is_never_stepped_down_to_voluntary_peh(flow, answers):
    start(flow)
    flow.complete("Task_InitialDiscussion", discussion(), "peh_manager")
    flow.complete("Task_RecordConsent", answers, "csc_social_worker")
    assert flow.outcome() == "no_step_down"
    assert flow.case["data"]["consent"] == answers["consent"]
    reached = [e["detail"].get("element") for e in flow.history()]
    assert "Task_AllocateLeadProfessional" not in str(flow.history())  # no PEH worker, no documents to PEH
    assert "Event_SteppedDown" not in reached


def test_missing_documents_are_chased_and_never_hold_up_the_plan_or_the_visit(flow):
    """'A week ahead where possible': the plan and the visit go ahead; missing documents are recorded and chased."""
    agreed(flow)
    flow.complete("Task_AllocateLeadProfessional", {"allocated_worker": flow.users["peh_practitioner"]}, "peh_manager")
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ["consent_form", "transfer_summary"],
                                                 "documents_notes": "Genogram being drawn"}, "csc_social_worker")
    assert flow.open() == ["Task_AgreeStepDownPlan", "Task_ChaseMissingDocuments"]
    assert flow.task("Task_ChaseMissingDocuments")["roles"] == ["csc_social_worker"]
    assert flow.due("Task_ChaseMissingDocuments") == utc(2027, 1, 7, 17, 0)
    flow.complete("Task_AgreeStepDownPlan", {"transition_plan": "P", "tac_visit_date": "2027-01-05"}, "peh_manager")
    flow.complete("Task_TacJointVisit", {"tac_visit_held": True, "roles_explained": True}, "peh_practitioner")
    assert flow.open() == ["Task_ChaseMissingDocuments"]
    flow.complete("Task_ChaseMissingDocuments", {"documents_received": ALL_DOCS, "documents_chase_notes": "All sent"},
                  "csc_social_worker")
    assert flow.outcome() == "stepped_down"


@pytest.mark.parametrize("stage", ["discussion", "consent", "transition", "tac"])
def test_immediate_risk_reaches_spa_first_and_statutory_work_goes_on(flow, stage):
    """The child is open to CSC while the step down runs: the urgent SPA task opens, nothing is cancelled."""
    start(flow)
    if stage != "discussion":
        flow.complete("Task_InitialDiscussion", discussion(), "peh_manager")
    if stage in ("transition", "tac"):
        flow.complete("Task_RecordConsent", {"consent": "given"}, "csc_social_worker")
    if stage == "tac":
        flow.complete("Task_AllocateLeadProfessional", {"allocated_worker": flow.users["peh_practitioner"]}, "peh_manager")
        flow.complete("Task_SendDocumentChecklist", {"documents_received": ALL_DOCS}, "csc_social_worker")
        flow.complete("Task_AgreeStepDownPlan", {"transition_plan": "P", "tac_visit_date": "2027-01-05"},
                      "peh_manager")
    before, timers = flow.open(), flow.timers()
    flow.message("immediate_risk", {"what_happened": "Bruising seen at school"})
    assert flow.open() == sorted(before + ["Task_UrgentSpaReferral"])
    assert flow.task("Task_UrgentSpaReferral")["roles"] == ["spa"]
    assert "Task_UrgentSpaReferral" in urgent_tasks(KEY)
    now = flow.timers()  # the step down's own clocks go on, beside the urgent referral's escalation
    assert {name: due for name, due in now.items() if name in timers} == timers
    assert [name for name in now if name not in timers] == ["safeguarding:urgent_escalation"]
    flow.complete("Task_UrgentSpaReferral", {"what_happened": "ignored", "spa_action": "Strategy discussion",
                                             "spa_referral_made": True}, "spa")
    assert flow.open() == before
    assert flow.case["data"]["what_happened"] == "Bruising seen at school"  # read-only on the SPA's form
    if stage == "tac":
        flow.complete("Task_TacJointVisit", {"tac_visit_held": True, "roles_explained": True}, "peh_practitioner")
        assert flow.outcome() == "stepped_down"
        assert flow.case["data"]["spa_action"] == "Strategy discussion"
