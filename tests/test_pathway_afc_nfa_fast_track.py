"""The AfC NFA fast track (afc_nfa_fast_track) through the REST API, on a frozen clock.

Protocol: /work/shared/protocols/achieving-for-children.txt, section 4 (the NFA cohort): SPA refers on to PEH
within 24 hours, PEH allocate within 48 hours and contact the family within five working days. Outcomes reached:
engaged, family_declined, not_enrolled, not_reached and safeguarding_referral. The SPA is not asked about consent: PEH
seek it when they contact the family, and only consent = given enrols the family in (voluntary) PEH. A family not reached
is tried three times, then the case closes and the referring social worker is told, as on every other outcome.
"""
from __future__ import annotations

import pytest
from afc_support import Flow, process_properties, urgent_tasks, utc

KEY = "afc_nfa_fast_track"


def start_data(**changes):
    data = {"child_name": "Max", "social_worker_name": "Sam", "assessment_completed_on": "2026-12-18",
            "recommended_tier": "tier_2", "recommended_intervention": "Parenting programme"}
    data.update(changes)
    return data


@pytest.fixture
def flow(pathways, frozen_clock):
    return Flow(pathways, frozen_clock, KEY)


def to_contact(flow):
    flow.start(start_data(), role="csc_social_worker")
    flow.complete("Task_SpaReferToPeh", {"spa_notes": "Referred"}, "spa")
    flow.complete("Task_AllocatePeh", {"allocated_team": "fss", "allocated_worker": flow.users["peh_practitioner"]}, "peh_manager")


def tell_referrer(flow):
    assert flow.open() == ["Task_TellReferrer"]
    assert flow.task("Task_TellReferrer")["roles"] == ["peh_practitioner"]
    flow.complete("Task_TellReferrer", {"referrer_told_on": "2026-12-23", "referrer_feedback": "Told Sam"},
                  "peh_practitioner")


def test_process_definition(pathways):
    process = pathways.get(f"/processes/{KEY}", as_="admin").json
    # The social worker starts the case (and, as its starter, can follow it); the tasks are the SPA's and PEH's.
    assert process["roles"] == ["peh_manager", "peh_practitioner", "spa"]
    required = [f["key"] for f in process["start_form"]["fields"] if f["required"]]
    assert required == ["child_name", "social_worker_name", "recommended_tier", "recommended_intervention"]


def test_engaged_with_every_timescale(flow):
    flow.start(start_data(), role="csc_social_worker")
    task = flow.task("Task_SpaReferToPeh")
    assert task["roles"] == ["spa"]
    assert flow.due("Task_SpaReferToPeh") == utc(2026, 12, 22, 9, 0)  # within 24 hours
    flow.fire(utc(2026, 12, 22, 9, 0))
    assert flow.notes("spa") == ["NFA fast track: refer on to PEH (24 hours)"]
    flow.fire(utc(2026, 12, 23, 9, 0))
    assert flow.notes("spa_manager") == ["NFA fast track: not referred on to PEH after 48 hours"]
    # The SPA is not asked about consent (PEH have not sought it yet): it refers on.
    fields = [f["key"] for f in flow.task("Task_SpaReferToPeh")["form"]["fields"]]
    assert "consent" not in fields
    flow.complete("Task_SpaReferToPeh", {"spa_notes": "Parenting programme"}, "spa")
    assert flow.task("Task_AllocatePeh")["roles"] == ["peh_manager"]
    assert flow.due("Task_AllocatePeh") == utc(2026, 12, 25, 9, 0)  # within 48 hours
    flow.fire(utc(2026, 12, 25, 9, 0))
    assert flow.notes("peh_manager") == ["NFA fast track: allocate to a PEH team (48 hours)"]
    flow.fire(utc(2026, 12, 26, 9, 0))
    assert flow.notes("head_of_integrated_working") == ["NFA fast track: not allocated after 72 hours"]
    flow.complete("Task_AllocatePeh", {"allocated_team": "fss", "allocated_worker": flow.users["peh_practitioner"]}, "peh_manager")
    # Saturday 26 December + five working days, skipping the bank holidays of Monday 28 December and Friday
    # 1 January: 29, 30, 31 December, 4 and 5 January.
    assert flow.task("Task_ContactFamily")["roles"] == ["peh_practitioner"]
    assert flow.due("Task_ContactFamily") == utc(2027, 1, 5, 9, 0)
    assert flow.timers() == {"Event_ContactFamilyReminder": utc(2027, 1, 5, 9, 0),
                             "Event_ContactFamilyEscalation": utc(2027, 1, 6, 9, 0)}
    flow.fire(utc(2027, 1, 5, 9, 0))
    assert flow.notes("peh_practitioner") == ["NFA fast track: contact the family (5 working days)"]
    flow.fire(utc(2027, 1, 6, 9, 0))
    assert "NFA fast track: family not contacted within 5 working days" in flow.notes("peh_manager")
    flow.complete("Task_ContactFamily", {"family_reached": "yes", "consent": "given", "family_response_notes": "Keen"},
                  "peh_practitioner")
    tell_referrer(flow)
    assert flow.outcome() == "engaged"
    assert flow.case["data"]["referrer_feedback"] == "Told Sam"
    data = flow.case["data"]
    assert (data["recommended_intervention"], data["allocated_worker"]) == ("Parenting programme", "user-peh_practitioner")


def test_family_not_reached_then_declined(flow):
    to_contact(flow)
    flow.clock.move_to(utc(2026, 12, 22, 10, 0))
    flow.complete("Task_ContactFamily", {"family_reached": "no", "family_response_notes": "No answer"},
                  "peh_practitioner")
    assert flow.open() == ["Task_ContactFamily"]
    assert flow.due("Task_ContactFamily") == utc(2026, 12, 31, 10, 0)
    flow.complete("Task_ContactFamily", {"family_reached": "yes", "consent": "refused",
                                         "consent_refusal_notes": "Managing"}, "peh_practitioner", status=422)
    flow.complete("Task_ContactFamily", {"family_reached": "yes", "consent": "refused",
                                         "consent_refusal_notes": "Managing; given the parenting line",
                                         "family_response_notes": "Spoke to mother"}, "peh_practitioner")
    tell_referrer(flow)
    assert flow.outcome() == "family_declined"
    assert flow.case["data"]["consent_refusal_notes"] == "Managing; given the parenting line"
    assert flow.case["data"]["contact_attempts"] == 2


def test_not_reached_three_times_closes_with_the_reason_and_the_referrer_told(flow):
    """'Not reached' does not loop for ever: three attempts of five working days, then closed, the referrer told."""
    to_contact(flow)
    for attempt in (1, 2):
        flow.complete("Task_ContactFamily", {"family_reached": "no", "family_response_notes": f"Attempt {attempt}"},
                      "peh_practitioner")
        assert flow.open() == ["Task_ContactFamily"]
    flow.complete("Task_ContactFamily", {"family_reached": "no", "family_response_notes": "Letter, calls, visit"},
                  "peh_practitioner")
    assert flow.case["data"]["contact_attempts"] == 3
    tell_referrer(flow)
    assert flow.outcome() == "not_reached"
    assert flow.case["data"]["family_response_notes"] == "Letter, calls, visit"


def test_consent_not_sought_never_enrols_the_family(flow):
    to_contact(flow)
    flow.complete("Task_ContactFamily", {"family_reached": "yes", "consent": "not_sought",
                                         "consent_override_reason": "increase_risk",
                                         "consent_override_agreed_by": "PEH Team Manager",
                                         "family_response_notes": "Father's behaviour at the door"},
                  "peh_practitioner")
    tell_referrer(flow)
    assert flow.outcome() == "not_enrolled"
    assert flow.case["data"]["consent_override_reason"] == "increase_risk"


def test_only_the_engaged_end_enrols_and_it_is_marked_voluntary():
    assert process_properties(KEY, "Event_Engaged") == {"outcome": "engaged", "voluntary": "true"}
    for end, outcome in (("Event_FamilyDeclined", "family_declined"), ("Event_NotEnrolled", "not_enrolled"),
                         ("Event_NotReached", "not_reached")):
        assert process_properties(KEY, end) == {"outcome": outcome}
    assert "voluntary" not in process_properties(KEY, KEY)  # starting it enrols nobody: consent comes later


def test_nfa_cases_are_not_on_the_transitions_tracker(flow):
    to_contact(flow)
    assert flow.case["id"] not in flow.tracker()


@pytest.mark.parametrize("stage", ["spa", "allocation", "contact"])
def test_immediate_risk_interrupts_every_stage(flow, stage):
    flow.start(start_data(), role="csc_social_worker")
    if stage in ("allocation", "contact"):
        flow.complete("Task_SpaReferToPeh", {"spa_notes": "Referred"}, "spa")
    if stage == "contact":
        flow.complete("Task_AllocatePeh", {"allocated_team": "art", "allocated_worker": flow.users["peh_practitioner"]}, "peh_manager")
    flow.message("immediate_risk", {"what_happened": "Disclosure"})
    assert flow.open() == ["Task_UrgentSpaReferral"]
    assert flow.task("Task_UrgentSpaReferral")["roles"] == ["spa"]
    assert "Task_UrgentSpaReferral" in urgent_tasks(KEY)
    assert list(flow.timers()) == ["safeguarding:urgent_escalation"]  # the stages' timers went with them
    flow.complete("Task_UrgentSpaReferral", {"spa_action": "Strategy discussion", "spa_referral_made": True}, "spa")
    assert flow.outcome() == "safeguarding_referral"
