"""The AfC step up from PEH to CSC (afc_step_up) through the REST API, on a frozen clock.

Protocol: /work/shared/protocols/achieving-for-children.txt, section 3 and the 'Protocol for STEP UP from PEH to
CSC' with its document check list. Outcomes reached: stepped_up, no_step_up (after the managers' discussion and after
SPA advice and the Transitions Meeting) and safeguarding_referral; the unplanned step up after a safeguarding
incident; consent; the document check list coming back while documents are missing; the 24-hour allocation and the
other timers with their reminders and escalations.
"""
from __future__ import annotations

import pytest
from afc_support import Flow, refuse_or_return, urgent_tasks, utc

KEY = "afc_step_up"
ALL_DOCS = ["caf_dpr", "transfer_summary", "chronology", "genogram"]


def start_data(**changes):
    data = {"child_name": "Alex", "sending_manager": "Pat PEH", "peh_team": "fss", "receiving_manager": "Chris CSC",
            "transitions_meeting_date": "2026-12-24", "rationale": "Needs escalating", "caf_in_place": True,
            "safeguarding_incident": "no", "significant_harm": "no"}
    data.update(changes)
    return data


def discussion(threshold="met", agree="yes"):
    return {"receiving_manager": "Chris CSC", "decision_date": "2026-12-21", "threshold_met": threshold,
            "managers_agree": agree, "decision_reason": "Discussed"}


@pytest.fixture
def flow(pathways, frozen_clock):
    return Flow(pathways, frozen_clock, KEY)


def test_process_definition(pathways):
    process = pathways.get(f"/processes/{KEY}", as_="admin").json
    assert process["roles"] == ["csc_manager", "csc_social_worker", "peh_manager", "spa"]
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert required == ["child_name", "sending_manager", "transitions_meeting_date", "rationale", "safeguarding_incident",
                        "significant_harm"]
    harm = next(f for f in process["start_form"]["fields"] if f["key"] == "significant_harm")
    assert (harm["type"], [v["value"] for v in harm["options"]]) == ("radio", ["yes", "no", "unsure"])
    assert "STEP UP from PEH to CSC" in process["documentation"]


def test_planned_step_up_agreed_to_stepped_up(flow):
    flow.start(start_data())
    task = flow.task("Task_InitialDiscussion")
    assert task["roles"] == ["csc_manager"]
    assert flow.due("Task_InitialDiscussion") == utc(2026, 12, 24, 17, 0)  # by the end of the meeting day
    assert "step_up_decision" not in flow.case["data"]
    flow.complete("Task_InitialDiscussion", discussion("met", "yes"), "csc_manager")
    assert flow.rules() == ["Rule_AgreedThresholdMet"]
    assert flow.case["data"]["step_up_decision"] == "step_up_agreed"
    assert flow.open() == ["Task_AllocateSocialWorker", "Task_ReferToSpa"]
    assert flow.due("Task_AllocateSocialWorker") == utc(2026, 12, 22, 9, 0)  # within 24 hours
    assert flow.due("Task_ReferToSpa") == utc(2026, 12, 22, 9, 0)

    # Consent not sought and no reason or no manager: the referral does not go on; with both it does.
    refuse_or_return(flow, "Task_ReferToSpa", {"consent": "not_sought", "transitions_meeting_date": "2027-01-07"},
                     "peh_manager")
    refuse_or_return(flow, "Task_ReferToSpa", {"consent": "not_sought", "consent_override_reason": "undue_delay",
                                               "transitions_meeting_date": "2027-01-07"}, "peh_manager")
    assert flow.open() == ["Task_AllocateSocialWorker", "Task_ReferToSpa"]
    flow.complete("Task_ReferToSpa", {"consent": "not_sought", "consent_override_reason": "undue_delay",
                                      "consent_override_agreed_by": "Team Manager",
                                      "transitions_meeting_date": "2027-01-07"}, "peh_manager")
    assert flow.open() == ["Task_AllocateSocialWorker", "Task_SendDocumentChecklist"]
    # A week (5 working days, over the New Year bank holiday) before the meeting of 7 January.
    assert flow.due("Task_SendDocumentChecklist") == utc(2026, 12, 30, 9, 0)

    # the allocation names a real CSC social worker of the council, never free text
    flow.complete("Task_AllocateSocialWorker", {"allocated_worker": "Sam Social"}, "csc_manager", status=422)
    flow.complete("Task_AllocateSocialWorker", {"allocated_worker": flow.users["csc_social_worker"]}, "csc_manager")
    assert flow.open() == ["Task_SendDocumentChecklist"]
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ALL_DOCS}, "peh_manager")
    assert flow.open() == ["Task_AgreeStepUpPlan"]  # all shared: nothing to chase
    assert flow.due("Task_AgreeStepUpPlan") == utc(2027, 1, 7, 17, 0)
    flow.complete("Task_AgreeStepUpPlan", {"transition_plan": "Plan", "tac_visit_date": "2027-01-11"}, "csc_manager")
    assert flow.task("Task_TacJointVisit")["roles"] == ["csc_social_worker"]
    assert flow.task("Task_TacJointVisit")["assignee"] == flow.users["csc_social_worker"]  # the allocated worker's
    assert flow.due("Task_TacJointVisit") == utc(2027, 1, 11, 17, 0)
    flow.complete("Task_TacJointVisit", {"tac_visit_held": True, "roles_explained": True}, "csc_social_worker")
    assert flow.outcome() == "stepped_up"
    data = flow.case["data"]
    assert (data["allocated_worker"], data["child_name"], data["consent_override_reason"]) == \
        ("user-csc_social_worker", "Alex", "undue_delay")


def test_no_caf_no_caf_documents_needed(flow):
    flow.start(start_data(caf_in_place=False))
    flow.complete("Task_InitialDiscussion", discussion(), "csc_manager")
    flow.complete("Task_ReferToSpa", {"consent": "given", "transitions_meeting_date": "2027-01-07"}, "peh_manager")
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ["transfer_summary", "chronology", "genogram"]},
                  "peh_manager")
    assert flow.open() == ["Task_AllocateSocialWorker"]  # the plan waits for the allocation too
    flow.complete("Task_AllocateSocialWorker", {"allocated_worker": flow.users["csc_social_worker"]}, "csc_manager")
    assert flow.open() == ["Task_AgreeStepUpPlan"]


def test_threshold_not_met_no_step_up(flow):
    flow.start(start_data())
    flow.complete("Task_InitialDiscussion", discussion("not_met", "yes"), "csc_manager")
    assert flow.rules() == ["Rule_AgreedThresholdNotMet"]
    assert flow.outcome() == "no_step_up"
    assert flow.case["data"]["decision_reason"] == "Discussed"


def test_threshold_unclear_spa_advises_then_the_meeting_decides_no_step_up(flow):
    flow.start(start_data())
    flow.complete("Task_InitialDiscussion", discussion("unclear", "yes"), "csc_manager")
    assert flow.open() == ["Task_SpaThresholdAdvice"]
    assert flow.task("Task_SpaThresholdAdvice")["roles"] == ["spa"]
    flow.complete("Task_SpaThresholdAdvice", {"spa_threshold_advice": "Below threshold"}, "spa")
    assert flow.due("Task_DecideAtMeeting") == utc(2026, 12, 30, 9, 0)  # within a week: 5 working days
    # The meeting's decision needs its reasons.
    flow.complete("Task_DecideAtMeeting", {"decision_date": "2026-12-24", "decided_by": "Service Manager",
                                           "meeting_decision": "no_step_up"}, "csc_manager", status=422)
    flow.complete("Task_DecideAtMeeting", {"decision_date": "2026-12-24", "decided_by": "Service Manager",
                                           "meeting_decision": "no_step_up", "decision_reason": "Not met"},
                  "csc_manager")
    assert flow.rules() == ["Rule_ThresholdUnclear", "Rule_MeetingNoStepUp"]
    assert flow.outcome() == "no_step_up"


def test_managers_disagree_the_meeting_agrees_the_step_up(flow):
    flow.start(start_data())
    flow.complete("Task_InitialDiscussion", discussion("met", "no"), "csc_manager")
    assert flow.open() == ["Task_DecideAtMeeting"]
    flow.complete("Task_DecideAtMeeting", {"decision_date": "2026-12-24", "decided_by": "Service Manager",
                                           "meeting_decision": "step_up", "decision_reason": "Met"}, "csc_manager")
    assert flow.rules() == ["Rule_ManagersDisagree", "Rule_MeetingStepUp"]
    assert flow.open() == ["Task_AllocateSocialWorker", "Task_ReferToSpa"]


@pytest.mark.parametrize("incident,harm", [("yes", "no"), ("yes", "unsure"), ("no", "yes"), ("yes", "yes")])
def test_safeguarding_incident_or_significant_harm_goes_first_to_an_urgent_spa_task(flow, incident, harm):
    """Rule 1: the SPA first, as an urgent task, before the discussion, consent question or document check."""
    flow.start(start_data(safeguarding_incident=incident, significant_harm=harm))
    assert flow.open() == ["Task_UrgentReferralToSpa"]
    assert flow.task("Task_UrgentReferralToSpa")["roles"] == ["spa"]
    assert "Task_UrgentReferralToSpa" in urgent_tasks(KEY)
    assert flow.rules() == []  # no threshold decision, no discussion first
    assert flow.case["id"] in flow.tracker()
    flow.complete("Task_UrgentReferralToSpa", {"spa_action": "Strategy discussion held", "spa_reference": "SPA-9"},
                  "spa")
    # Then onto the tracker: the social worker within 24 hours and PEH's written referral with consent.
    assert flow.open() == ["Task_AllocateSocialWorker", "Task_ReferToSpa"]
    # A refusal of consent does not stop or delay the step up: the SPA already has the referral.
    flow.complete("Task_ReferToSpa", {"consent": "refused", "consent_refusal_notes": "Father refuses; SPA told",
                                      "transitions_meeting_date": "2027-01-07"}, "peh_manager")
    flow.complete("Task_AllocateSocialWorker", {"allocated_worker": flow.users["csc_social_worker"]}, "csc_manager")
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ALL_DOCS}, "peh_manager")
    flow.complete("Task_AgreeStepUpPlan", {"transition_plan": "Plan", "tac_visit_date": "2027-01-11"}, "csc_manager")
    flow.complete("Task_TacJointVisit", {"tac_visit_held": True, "roles_explained": True}, "csc_social_worker")
    assert flow.outcome() == "stepped_up"
    assert (flow.case["data"]["spa_action"], flow.case["data"]["consent"]) == ("Strategy discussion held", "refused")


@pytest.mark.parametrize("harm", ["no", "unsure"])
def test_no_incident_and_no_significant_harm_is_a_planned_step_up(flow, harm):
    flow.start(start_data(significant_harm=harm))
    assert flow.open() == ["Task_InitialDiscussion"]


def test_significant_harm_and_the_incident_question_are_required(flow):
    data = start_data()
    del data["significant_harm"]
    flow.start(data, status=422)
    flow.start(start_data(significant_harm=True), status=422)  # a radio, not a checkbox


@pytest.mark.parametrize("consent", ["refused", "not_sought"])
def test_consent_refused_or_not_sought_is_recorded_and_the_step_up_goes_on(flow, consent):
    """A step up is to the statutory service: neither answer stops the referral; each is recorded."""
    flow.start(start_data(caf_in_place=False))
    flow.complete("Task_InitialDiscussion", discussion(), "csc_manager")
    answers = {"consent": consent, "transitions_meeting_date": "2027-01-07"}
    answers.update({"consent_refusal_notes": "Mother refuses; told SPA"} if consent == "refused" else
                   {"consent_override_reason": "increase_risk", "consent_override_agreed_by": "Team Manager"})
    flow.complete("Task_ReferToSpa", answers, "peh_manager")
    assert flow.open() == ["Task_AllocateSocialWorker", "Task_SendDocumentChecklist"]
    assert flow.case["data"]["consent"] == consent


def test_missing_documents_are_chased_and_never_hold_up_the_plan_or_the_visit(flow):
    """'A week ahead, where possible': the plan and the visit go ahead; missing documents are recorded and chased."""
    flow.start(start_data())
    flow.complete("Task_InitialDiscussion", discussion(), "csc_manager")
    flow.complete("Task_ReferToSpa", {"consent": "given", "transitions_meeting_date": "2027-01-07"}, "peh_manager")
    flow.complete("Task_AllocateSocialWorker", {"allocated_worker": flow.users["csc_social_worker"]}, "csc_manager")
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ["transfer_summary"],
                                                 "documents_notes": "Chronology and genogram next week"},
                  "peh_manager")
    assert flow.open() == ["Task_AgreeStepUpPlan", "Task_ChaseMissingDocuments"]
    assert flow.task("Task_ChaseMissingDocuments")["roles"] == ["peh_manager"]
    assert flow.due("Task_ChaseMissingDocuments") == utc(2027, 1, 7, 17, 0)  # by the end of the meeting day
    assert flow.case["data"]["documents_notes"] == "Chronology and genogram next week"
    flow.complete("Task_AgreeStepUpPlan", {"transition_plan": "Plan", "tac_visit_date": "2027-01-11"}, "csc_manager")
    flow.complete("Task_TacJointVisit", {"tac_visit_held": True, "roles_explained": True}, "csc_social_worker")
    assert flow.open() == ["Task_ChaseMissingDocuments"]  # the step up is done; the chase goes on
    flow.complete("Task_ChaseMissingDocuments", {"documents_received": ALL_DOCS[:3],
                                                 "documents_chase_notes": "No CAF DPR: closed before 2024"},
                  "peh_manager")
    assert flow.outcome() == "stepped_up"
    assert flow.case["data"]["documents_chase_notes"] == "No CAF DPR: closed before 2024"


def test_the_checklist_sent_with_every_document_needs_no_chase(flow):
    flow.start(start_data(caf_in_place=False))
    flow.complete("Task_InitialDiscussion", discussion(), "csc_manager")
    flow.complete("Task_ReferToSpa", {"consent": "given", "transitions_meeting_date": "2027-01-07"}, "peh_manager")
    flow.complete("Task_SendDocumentChecklist", {"documents_received": ["transfer_summary", "chronology", "genogram"]},
                  "peh_manager")
    assert flow.open() == ["Task_AllocateSocialWorker"]


def test_timers_remind_and_escalate(flow):
    flow.start(start_data())
    assert flow.timers() == {"Event_InitialDiscussionReminder": utc(2026, 12, 24, 17, 0),
                             "Event_InitialDiscussionEscalation": utc(2027, 1, 5, 17, 0)}
    flow.fire(utc(2026, 12, 24, 16, 59))
    assert flow.notes("csc_manager") == []
    flow.fire(utc(2026, 12, 24, 17, 0))
    assert flow.notes("csc_manager") == ["Step up: the managers' discussion is not yet recorded"]
    flow.fire(utc(2027, 1, 5, 17, 0))  # 5 working days after the meeting, over Christmas and New Year
    assert flow.notes("head_of_integrated_working") == ["Step up: no decision a week after the Transitions Meeting"]
    assert flow.open() == ["Task_InitialDiscussion"]  # the task stays with the CSC manager

    flow.complete("Task_InitialDiscussion", discussion(), "csc_manager")  # at 5 January 17:00
    assert flow.due("Task_AllocateSocialWorker") == utc(2027, 1, 6, 17, 0)
    flow.fire(utc(2027, 1, 6, 17, 0))
    assert "Step up: allocate a CSC social worker (24 hours)" in flow.notes("csc_manager")
    assert "Step up: complete the referral to SPA" in flow.notes("peh_manager")
    flow.fire(utc(2027, 1, 7, 17, 0))
    assert "Step up: no CSC social worker allocated after 48 hours" in flow.notes("head_of_integrated_working")
    assert flow.open() == ["Task_AllocateSocialWorker", "Task_ReferToSpa"]

    # The documents: the meeting is three working days away, so a week ahead is no longer possible: they are
    # due by the end of the working day (it is 17:00: the next one); the receiving CSC managers hear when they
    # are still missing at the end of the meeting day.
    flow.complete("Task_ReferToSpa", {"consent": "given", "transitions_meeting_date": "2027-01-12"}, "peh_manager")
    assert flow.due("Task_SendDocumentChecklist") == utc(2027, 1, 8, 17, 0)
    timers = flow.timers()
    assert timers["Event_SendDocumentChecklistReminder"] == utc(2027, 1, 8, 17, 0)
    assert timers["Event_SendDocumentChecklistEscalation"] == utc(2027, 1, 12, 17, 0)
    flow.fire(utc(2027, 1, 12, 17, 0))
    assert "Step up: documents still missing at the Transitions Meeting" in flow.notes("csc_manager")
    assert "Step up: documents for the CSC manager are due" in flow.notes("peh_manager")


@pytest.mark.parametrize("stage", ["discussion", "transition", "plan"])
def test_immediate_risk_interrupts_every_stage(flow, stage):
    flow.start(start_data(caf_in_place=False))
    if stage in ("transition", "plan"):
        flow.complete("Task_InitialDiscussion", discussion(), "csc_manager")
    if stage == "plan":
        flow.complete("Task_ReferToSpa", {"consent": "given", "transitions_meeting_date": "2027-01-07"},
                      "peh_manager")
        flow.complete("Task_AllocateSocialWorker", {"allocated_worker": flow.users["csc_social_worker"]}, "csc_manager")
        flow.complete("Task_SendDocumentChecklist", {"documents_received": ["transfer_summary", "chronology",
                                                                            "genogram"]}, "peh_manager")
        assert flow.open() == ["Task_AgreeStepUpPlan"]
    flow.clock.move_to(utc(2026, 12, 21, 14, 0))
    flow.message("immediate_risk", {"what_happened": "Disclosure at school", "risk_reported_by": "school"})
    assert flow.open() == ["Task_UrgentSpaReferral"]
    task = flow.task("Task_UrgentSpaReferral")
    assert task["roles"] == ["spa"]
    assert "Task_UrgentSpaReferral" in urgent_tasks(KEY)
    assert list(flow.timers()) == ["safeguarding:urgent_escalation"]  # the stages' timers went with them
    flow.complete("Task_UrgentSpaReferral", {"spa_action": "Strategy discussion", "spa_referral_made": True}, "spa")
    assert flow.outcome() == "safeguarding_referral"
    assert flow.case["data"]["risk_reported_by"] == "school"
    assert flow.case["data"]["what_happened"] == "Disclosure at school"
    assert flow.case["id"] not in flow.tracker()
