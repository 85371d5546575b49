"""Sandbox cases (service/sandbox.py): a pathway run by the engine alone, on a clock of its own.

The small pathway tests/fixtures/sandbox/sandbox_visit.bpmn (a form, a reminder a day on, an escalation five
working days on), and the reference pathway Halton step down (bpmn/, dmn/, forms/). No database, except in
the test that proves a sandbox writes nothing to the tables of real cases.
"""
from __future__ import annotations

import contextvars
import json
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select

from conftest import FIXTURES, ROOT, everything, in_council
from service import notifications, safeguarding, scenarios
from service.engine import calendar
from service.engine.bundle import build_bundle
from service.engine.clock import LONDON
from service.sandbox import ESCALATION, Sandbox, SandboxError, clock_move

SANDBOX = FIXTURES / "sandbox"
MONDAY = datetime(2027, 1, 4, 9, 0, tzinfo=LONDON)  # Monday 4 January 2027, 09:00 (GMT: London is UTC)
UTC = timezone.utc


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def visit():
    files = {p.name: p.read_bytes() for p in SANDBOX.iterdir() if p.suffix in (".bpmn", ".form", ".dmn")}
    return build_bundle(files).processes["sandbox_visit"]


@pytest.fixture(scope="module")
def halton():
    files = {p.name: p.read_bytes() for folder in ("bpmn", "dmn", "forms")
             for p in (ROOT / folder).glob("halton_*") if p.is_file()}
    return build_bundle(files).processes["halton_step_down"]


def in_calendar(working: calendar.WorkingCalendar, action):
    """Run ``action`` with ``working`` as the acting council's calendar (as ``tenancy.act_for`` sets it)."""
    def run():
        calendar.set_calendar(working)
        return action()
    return contextvars.copy_context().run(run)


def started(visit, at=MONDAY, **kwargs) -> Sandbox:
    return Sandbox.start(visit, {"child_name": "Alex"}, at, role="social_worker", **kwargs)


# -- starting, tasks, due dates ------------------------------------------------------------------------

def test_a_started_sandbox_shows_its_task_timers_and_due_dates_on_its_own_clock(visit):
    box = started(visit)
    view = box.view()
    assert view.now == MONDAY and view.status == "active" and view.outcome is None
    [task] = view.tasks
    assert (task["element"], task["roles"], task["form"]) == ("Task_Visit", ["social_worker"], "Task_Visit")
    assert instant(task["due_at"]) == london(2027, 1, 7, 9, 0)  # three working days from the sandbox clock
    assert [(t["element"], instant(t["due_at"]), t["reminder"]) for t in view.timers] == [
        ("Event_Reminder", london(2027, 1, 5, 9, 0), True), ("Event_Late", london(2027, 1, 11, 9, 0), True)]
    assert view.path[0] == "Event_Start"
    assert "immediate_risk" in view.messages
    assert view.data == {"child_name": "Alex"}


def test_the_start_form_is_checked_as_the_service_checks_it(visit):
    with pytest.raises(SandboxError) as refused:
        Sandbox.start(visit, {}, MONDAY)
    assert "child_name" in refused.value.errors and "the start form" in refused.value.message


def test_a_role_that_may_not_start_the_pathway_is_refused(visit):
    with pytest.raises(SandboxError, match="may not start"):
        Sandbox.start(visit, {"child_name": "Alex"}, MONDAY, role="early_intervention")


def test_answers_are_validated_by_the_service_s_own_form_validation(visit):
    box = started(visit)
    with pytest.raises(SandboxError) as refused:
        box.complete("Task_Visit", {"visit_notes": "No answer to the question"}, "social_worker")
    assert set(refused.value.errors) == {"seen_child"}
    assert "Task_Visit" in refused.value.message and "seen_child" in refused.value.message
    with pytest.raises(SandboxError) as refused:
        box.complete("Task_Visit", {"seen_child": "maybe"}, "social_worker")
    assert "seen_child" in refused.value.errors
    assert [t["element"] for t in box.view().tasks] == ["Task_Visit"]  # nothing moved
    assert box.steps == []


def test_a_task_is_completed_by_one_of_its_roles_only(visit):
    box = started(visit)
    with pytest.raises(SandboxError, match="social_worker"):
        box.complete("Task_Visit", {"seen_child": "yes"}, "team_manager")
    box.complete("Task_Visit", {"seen_child": "yes"}, "social_worker")
    view = box.view()
    assert (view.status, view.outcome, view.tasks, view.timers) == ("completed", "seen", [], [])
    assert view.path[-2:] == ["Gateway_Seen", "Event_Seen"]


def test_a_task_may_be_named_by_its_id_and_an_unknown_one_is_refused_naming_the_open_ones(visit):
    box = started(visit)
    with pytest.raises(SandboxError, match="Task_Visit"):
        box.complete("Task_Nope", {"seen_child": "yes"})
    box.complete(box.view().tasks[0]["id"], {"seen_child": "no"})
    assert box.view().outcome == "not_seen"


# -- the clock and the timers ---------------------------------------------------------------------------

def test_timers_fire_in_due_order_each_at_its_due_time(visit):
    box = started(visit)
    fired = box.move_clock(by="+2 weeks")
    assert fired == ["Event_Reminder", "Event_Late"]
    view = box.view()
    assert view.now == london(2027, 1, 18, 9, 0)
    assert [(n["element"], instant(n["at"]), n["kind"], n["roles"]) for n in view.notifications] == [
        ("Event_Reminder", london(2027, 1, 5, 9, 0), "reminder", ["social_worker"]),
        ("Event_Late", london(2027, 1, 11, 9, 0), "escalation", ["team_manager"])]
    assert [t["element"] for t in view.tasks] == ["Task_Reallocate"]  # the escalation interrupted the visit
    assert view.path.index("Event_Reminder") < view.path.index("Event_Late")


def test_the_next_timer_moves_the_clock_to_its_due_time_and_fires_it_alone(visit):
    box = started(visit)
    assert box.move_clock(next_timer=True) == ["Event_Reminder"]
    assert box.view().now == london(2027, 1, 5, 9, 0)
    assert [t["element"] for t in box.view().timers] == ["Event_Late"]
    assert box.move_clock(by="+1 day") == []
    assert box.move_clock(to=london(2027, 1, 11, 9, 0)) == ["Event_Late"]
    with pytest.raises(SandboxError, match="no timer"):
        box.move_clock(next_timer=True)


def test_a_notification_has_the_service_s_wording(visit, halton):
    box = started(visit)
    box.move_clock(next_timer=True)
    [note] = box.view().notifications
    kind, subject, body = notifications.timer_wording(
        {"notify": "task"}, reference="SANDBOX", pathway=visit.name, element="Event_Reminder",
        task_title="Visit the family", task_due_at=london(2027, 1, 7, 9, 0))
    assert (note["kind"], note["subject"], note["text"]) == (kind, subject, body)
    assert note["subject"] == "Reminder: Visit the family (case SANDBOX)"
    assert "Due: Thursday 07 January 2027, 09:00" in note["text"]


def test_working_days_are_the_acting_council_s(visit):
    closed_wednesday = calendar.WorkingCalendar(closures=[date(2027, 1, 6)])
    view = in_calendar(closed_wednesday, lambda: started(visit).view())
    assert instant(view.tasks[0]["due_at"]) == london(2027, 1, 8, 9, 0)
    assert {t["element"]: instant(t["due_at"]) for t in view.timers}["Event_Late"] == london(2027, 1, 12, 9, 0)
    moved = in_calendar(closed_wednesday, lambda: clock_move("+2 working days", MONDAY.astimezone(UTC)))
    assert moved == london(2027, 1, 7, 9, 0)
    # Bank holidays of the council's country: Christmas Day and Boxing Day (on Monday 28th) in England.
    assert clock_move("+5 working days", london(2026, 12, 21, 9, 0)) == london(2026, 12, 30, 9, 0)


def test_clock_moves_keep_london_wall_time_across_a_clock_change():
    before = london(2027, 3, 22, 9, 0)  # GMT
    assert clock_move("+1 week", before) == london(2027, 3, 29, 9, 0)  # BST: 08:00 UTC
    assert clock_move("+2 months", london(2027, 1, 31, 9, 0)) == london(2027, 3, 31, 9, 0)
    assert clock_move("+3 hours", before) == london(2027, 3, 22, 12, 0)
    with pytest.raises(SandboxError, match="not a clock move"):
        clock_move("a fortnight", before)


def test_the_clock_never_moves_back(visit):
    box = started(visit)
    with pytest.raises(SandboxError, match="only moves on"):
        box.move_clock(to=london(2027, 1, 1, 9, 0))


# -- messages, urgent steps, safeguarding ---------------------------------------------------------------

def test_an_urgent_step_is_due_within_the_hour_and_escalates_when_nobody_picks_it_up(visit):
    evening = london(2027, 1, 4, 19, 0)  # outside office hours: the emergency duty team has it too
    box = started(visit, at=evening)
    box.message("immediate_risk", {"what_happened": "Disclosure at school"})
    urgent = next(t for t in box.view().tasks if t["element"] == "Task_UrgentReferralSandboxVisit")
    assert urgent["roles"] == ["front_door", safeguarding.EMERGENCY_DUTY_TEAM]
    assert instant(urgent["due_at"]) == london(2027, 1, 4, 20, 0)
    assert (ESCALATION, london(2027, 1, 4, 20, 0)) in [(t["element"], instant(t["due_at"])) for t in box.view().timers]
    assert box.move_clock(by="+2 hours") == [ESCALATION]
    [note] = box.view().notifications
    assert note["roles"] == [safeguarding.EMERGENCY_DUTY_MANAGER]
    assert note["subject"] == "Urgent: nobody has picked up 'Urgent referral to the front door' (case SANDBOX)"
    assert instant(note["at"]) == london(2027, 1, 4, 20, 0)
    assert ESCALATION not in [t["element"] for t in box.view().timers]  # once only


def test_a_closed_urgent_step_does_not_escalate(visit):
    box = started(visit)
    box.message("immediate_risk", {"what_happened": "Disclosure at school"})
    box.complete("Task_UrgentReferralSandboxVisit", {}, "front_door")
    assert ESCALATION not in box.move_clock(by="+2 hours")


def test_a_message_adds_answers_and_says_which_it_left_as_they_were(visit):
    box = started(visit)  # as the service's message endpoint: a message never changes an answer the case has
    box.message("immediate_risk", {"what_happened": "Disclosure at school", "child_name": "Someone else"})
    assert box.last_not_changed == ["child_name"]
    assert box.data["child_name"] == "Alex" and box.data["what_happened"] == "Disclosure at school"
    box.complete("Task_UrgentReferralSandboxVisit", {}, "front_door")
    assert box.last_not_changed == []  # said once, for the message that sent it


def test_a_message_nothing_waits_for_is_refused(visit):
    box = started(visit)
    with pytest.raises(SandboxError, match="immediate_risk"):
        box.message("family_update")


def test_significant_harm_at_the_final_cin_meeting_opens_the_urgent_referral_and_escalates(halton):
    box = Sandbox.start(halton, {"child_name": "Alex", "final_cin_meeting_date": "2027-01-06"}, MONDAY)
    box.complete("Task_InviteEarlyIntervention", {"cin_meeting_time": "10:00", "cin_meeting_venue": "Runcorn",
                                                  "work_completed": "Plan", "outstanding_actions": "None",
                                                  "invitation_emailed": True}, "social_worker")
    box.complete("Task_FinalCinMeeting", {"risk_of_significant_harm": "yes", "needs_count": 3,
                                          "needs_severity": "complex", "plan_progress": "drifting",
                                          "consent": "given"}, "social_worker")
    assert [t["element"] for t in box.view().tasks] == ["Task_SafeguardingReferralAtMeeting"]
    box.move_clock(by="+1 day")
    [note] = box.view().notifications
    assert note["element"] == ESCALATION and note["roles"] == ["icart_manager", "team_manager"]


# -- the reference pathway ----------------------------------------------------------------------------

def test_halton_step_down_to_a_caf_as_the_service_runs_it(halton):
    box = Sandbox.start(halton, {"child_name": "Alex", "final_cin_meeting_date": "2027-01-06"},
                        london(2026, 12, 21, 9, 0), role="social_worker")
    [task] = box.view().tasks
    assert instant(task["due_at"]) == london(2027, 1, 5, 9, 0)  # the working day before the meeting
    assert task["form"] == "halton_cin_invitation"
    assert box.move_clock(to=london(2027, 1, 5, 9, 0)) == ["Event_InvitationReminder"]
    assert box.view().notifications[-1]["subject"] == "Final CIN meeting: invite the early intervention team"
    box.complete("Task_InviteEarlyIntervention", {"cin_meeting_time": "10:00", "cin_meeting_venue": "Runcorn",
                                                  "work_completed": "Plan", "outstanding_actions": "None",
                                                  "invitation_emailed": True}, "social_worker")
    box.complete("Task_FinalCinMeeting", {"risk_of_significant_harm": "no", "needs_count": 2,
                                          "needs_severity": "additional", "plan_progress": "progressing",
                                          "consent": "given", "first_caf_review_date": "2027-02-10",
                                          "step_up_indicators": "Missed school"}, "social_worker")
    view = box.view()
    assert view.data["cin_outcome"] == "stepped_down_caf"
    tasks = {t["element"]: t for t in view.tasks}
    assert sorted(tasks) == ["Task_CinDocumentsAsCaf", "Task_StepDownForm"]
    assert instant(tasks["Task_CinDocumentsAsCaf"]["due_at"]) == london(2027, 1, 27, 9, 0)
    assert {t["element"]: instant(t["due_at"]) for t in view.timers} == {
        "Event_CinDocumentsReminder": london(2027, 1, 20, 9, 0),
        "Event_CinDocumentsEscalation": london(2027, 1, 27, 9, 0)}
    assert box.move_clock(by="+4 weeks") == ["Event_CinDocumentsReminder", "Event_CinDocumentsEscalation"]
    escalation = box.view().notifications[-1]
    assert (escalation["kind"], escalation["roles"]) == ("escalation", ["team_manager"])
    assert escalation["subject"] == "CIN documents not received 2 weeks before the first CAF review"
    assert sorted(t["element"] for t in box.view().tasks) == ["Task_ManagerCinDocuments", "Task_StepDownForm"]


# -- saving and recording ----------------------------------------------------------------------------

def test_a_saved_sandbox_goes_on_where_it_was(visit):
    box = started(visit)
    box.move_clock(next_timer=True)
    again = Sandbox.from_json(visit, box.to_json())
    assert again.view() == box.view()
    assert again.move_clock(by="+1 week") == ["Event_Late"]
    with pytest.raises(SandboxError, match="not of"):
        Sandbox.from_json(visit, box.to_json().replace('"process":"sandbox_visit"', '"process":"other"'))


def test_steps_are_recorded_as_a_scenario_that_replays(visit):
    box = started(visit)
    box.move_clock(next_timer=True)
    box.complete("Task_Visit", {"seen_child": "yes"}, "social_worker")
    assert [list(step)[0] for step in box.steps] == ["clock", "complete"]
    assert box.steps[0]["expect"] == {"tasks": ["Task_Visit"], "notifications": ["Event_Reminder"]}
    text = scenarios.from_sandbox(box, "Seen after a reminder")
    recorded = json.loads(text)
    assert recorded["expect"] == {"status": "completed", "outcome": "seen"}
    assert recorded["start"]["at"] == MONDAY.astimezone(UTC).isoformat()
    result = scenarios.run({"sandbox_visit": visit}, scenarios.parse(text, "sandbox_visit.seen.scenario.json"))
    assert result.passed, result.summary()


# -- never a real case ----------------------------------------------------------------------------------

def test_a_sandbox_never_writes_to_the_tables_of_real_cases(api):
    from service.deployments import latest_process_version, process_definition
    from service.models import AuditEvent, Case, Notification, OpenTask, PendingTimer, db

    response = api.deploy(sorted(p for p in SANDBOX.iterdir() if p.suffix == ".bpmn"))
    assert response.status_code == 201, response.json
    tables = (Case, OpenTask, PendingTimer, Notification, AuditEvent)
    with api.app.app_context():
        with everything():
            before = {t.__name__: db.session.scalar(select(func.count()).select_from(t)) for t in tables}
        in_council(db.session)
        process = process_definition(db.session, latest_process_version(db.session, "sandbox_visit"))
        box = Sandbox.start(process, {"child_name": "Alex"}, MONDAY, role="social_worker")
        box.message("immediate_risk", {"what_happened": "Disclosure"})
        box.move_clock(by="+2 weeks")
        box.complete("Task_Reallocate", {}, "team_manager")
        box.complete("Task_UrgentReferralSandboxVisit", {}, "front_door")
        assert box.view().outcome == "reallocated" and len(box.view().notifications) == 3
        db.session.commit()
        with everything():
            after = {t.__name__: db.session.scalar(select(func.count()).select_from(t)) for t in tables}
    assert after == before


def test_a_reminder_already_due_when_its_task_opens_fires_at_once_naming_the_task(halton):
    box = Sandbox.start(halton, {"child_name": "Alex", "final_cin_meeting_date": "2027-01-06"}, MONDAY)
    box.complete("Task_InviteEarlyIntervention", {"cin_meeting_time": "10:00", "cin_meeting_venue": "Runcorn",
                                                  "work_completed": "Plan", "outstanding_actions": "None",
                                                  "invitation_emailed": True}, "social_worker")
    box.complete("Task_FinalCinMeeting", {"risk_of_significant_harm": "no", "needs_count": 2,
                                          "needs_severity": "additional", "plan_progress": "progressing",
                                          "consent": "given", "step_up_indicators": "None"}, "social_worker")
    box.complete("Task_RecordFirstCafReviewDate", {"first_caf_review_date": "2027-01-20"}, "social_worker")
    assert box.last_fired == ["Event_CinDocumentsReminder"]  # due 30 December: the next sweep would fire it
    [note] = box.view().notifications
    assert note["at"] == MONDAY.astimezone(UTC).isoformat()
    assert "Step: Complete the CIN minutes as the CAF and forward them" in note["text"]
    assert box.steps[-1]["expect"]["notifications"] == ["Event_CinDocumentsReminder"]
