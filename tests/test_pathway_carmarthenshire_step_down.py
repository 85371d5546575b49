"""The Carmarthenshire step-down pathway, driven through the engine (no Flask, no database).

Builds the bundle from the repository's bpmn/, dmn/ and forms/ files and walks every branch to each
outcome, moving a fixed clock. Every action round-trips the case through dump/load, as the service does
between requests, so state (timers, due dates, loop-backs) must survive serialisation.
Protocol: /work/shared/protocols/carmarthenshire-taf.txt, section 6 and "PATHWAY TO STEP DOWN".
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from service.engine import clock, runtime
from service.engine.bundle import build_bundle
from service.engine.clock import LONDON, FixedClock

ROOT = Path(__file__).resolve().parent.parent
KEY = "carmarthenshire_step_down"
READY = {"family_accepts_support": "yes", "safety_plan": "yes"}  # section 6: accepting support, own safety plan
JAFF = {"family_outcomes": "x", "consent": "given", "consent_form": "signed", "shared_with_family": True}


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


@pytest.fixture(scope="module")
def process():
    files = {}
    for folder, pattern in (("bpmn", "*.bpmn"), ("dmn", "*.dmn"), ("forms", "*.form")):
        for path in sorted((ROOT / folder).glob(pattern)):
            files[f"{folder}/{path.name}"] = path.read_bytes()
    assert f"bpmn/{KEY}.bpmn" in files
    return build_bundle(files).processes[KEY]


@pytest.fixture
def time():
    # Monday 4 January 2027, 09:00 London (no bank holidays in the weeks these tests use).
    fixed = FixedClock(london(2027, 1, 4, 9, 0))
    previous = clock.set_clock(fixed)
    yield fixed
    clock.set_clock(previous)


class Case:
    """One case: every action dumps and reloads the workflow first, as the service does per request."""

    def __init__(self, process, data):
        self.process = process
        self.workflow, self.snap = runtime.start(process, data)
        self.journal = self.snap.journal

    def _reload(self):
        """Replace the workflow by a copy rebuilt from its dumped state; return the copy and its journal."""
        self.workflow, journal = runtime.load(self.process, runtime.dump(self.workflow))
        return self.workflow, journal

    def complete(self, name: str, data: dict | None = None):
        task = self.task(name)
        self.snap = runtime.complete_task(*self._reload(), task.id, data or {})
        return self.snap

    def fire(self):
        self.snap = runtime.fire_timers(*self._reload())
        return self.snap

    def message(self, name: str, payload: dict | None = None):
        self.snap = runtime.deliver_message(*self._reload(), name, payload or {})
        return self.snap

    def task(self, name: str):
        matches = [t for t in self.snap.tasks if t.name == name]
        assert len(matches) == 1, f"{name} not open; open: {self.open()}"
        return matches[0]

    def open(self) -> list[str]:
        return sorted(t.name for t in self.snap.tasks)

    def timers(self) -> dict[str, datetime]:
        return {t.name: t.due_at for t in self.snap.timers}

    def fired(self) -> list[tuple[str, dict]]:
        return [(e.element, e.detail["properties"]) for e in self.snap.journal if e.event == "timer_fired"]


def test_process_definition(process):
    assert process.name == "Step down from statutory services to TAF (Carmarthenshire)"
    assert process.roles == ["crt", "social_worker", "taf_coordinator", "taf_manager"]
    assert process.start_form.id == "carmarthenshire_step_down_start"
    assert [f.key for f in process.start_form.fields if f.is_required] == [
        "weeks_open", "family_accepts_support", "safety_plan"]
    assert "section 6" in process.documentation
    assert b'<camunda:property name="statutory" value="true"/>' in process.diagram


# ---- under 8 weeks ------------------------------------------------------------------------------

def _under_eight_weeks(process, weeks=5) -> Case:
    case = Case(process, {"weeks_open": weeks, **READY})
    assert case.snap.data["route"] == "close"
    decision = [e for e in case.snap.journal if e.event == "decision_taken"]
    assert decision and decision[0].detail["matched_rules"][0]["id"] == "Rule_UnderEightWeeks"
    task = case.task("Task_AgreeNextStepsWithFamily")
    assert task.roles == ["social_worker"]
    assert task.due_at == london(2027, 1, 11, 9, 0)  # working_days(5)
    assert case.open() == ["Task_AgreeNextStepsWithFamily"]
    assert case.snap.messages == ["immediate_risk"]
    return case


def test_under_8_weeks_no_support_closes(process, time):
    case = _under_eight_weeks(process, weeks=7)
    case.complete("Task_AgreeNextStepsWithFamily", {"family_support": "none"})
    assert case.snap.completed
    assert case.snap.data["outcome"] == "closed"


def test_under_8_weeks_self_referral_closes(process, time):
    case = _under_eight_weeks(process, weeks=0)
    case.complete("Task_AgreeNextStepsWithFamily", {"family_support": "self_refer"})
    assert case.snap.completed
    assert case.snap.data["outcome"] == "closed_self_referral"


def test_under_8_weeks_supported_referral_goes_on_to_jaff_then_declined(process, time):
    case = _under_eight_weeks(process)
    time.move_to(london(2027, 1, 5, 14, 0))
    case.complete("Task_AgreeNextStepsWithFamily", {"family_support": "supported_referral"})
    assert case.open() == ["Task_CompleteJaffPart1"]
    assert case.task("Task_CompleteJaffPart1").due_at == london(2027, 1, 12, 14, 0)
    case.complete("Task_CompleteJaffPart1", {**JAFF, "family_outcomes": "Routines", "consent_form": "verbal"})
    case.complete("Task_CheckJaffPart1", {"jaff_complete": True})
    task = case.task("Task_AllocationDecision")
    assert task.due_at == london(2027, 1, 6, 10, 0)  # the next Wednesday meeting
    case.complete("Task_AllocationDecision", {"allocation_decision": "declined", "decline_reasons": "Not TAF"})
    task = case.task("Task_ExplainDecline")
    assert task.roles == ["taf_coordinator"]
    assert case.timers() == {}
    case.complete("Task_ExplainDecline", {"decline_reasons": "Not TAF", "decline_explained": True,
                                          "decline_logged_on_care_first": True})
    assert case.snap.completed
    assert case.snap.data["outcome"] == "declined"
    assert case.snap.data["family_support"] == "supported_referral"


# ---- 8 weeks or more ----------------------------------------------------------------------------

def test_8_weeks_or_more_stepped_down_with_reminders_and_a_returned_jaff(process, time):
    case = Case(process, {"weeks_open": 8, "family_name": "Jones", **READY})
    assert case.snap.data["route"] == "jaff_part_1"
    task = case.task("Task_CompleteJaffPart1")
    assert (task.roles, task.lane) == (["social_worker"], "Social worker")
    assert task.due_at == london(2027, 1, 11, 9, 0)
    assert case.timers() == {"Event_JaffPart1Reminder": london(2027, 1, 11, 9, 0)}

    # Nothing fires early; at the deadline the social worker is reminded and the task stays open.
    time.move_to(london(2027, 1, 11, 8, 59))
    case.fire()
    assert case.fired() == []
    time.move_to(london(2027, 1, 11, 9, 0))
    case.fire()
    assert case.fired() == [("Event_JaffPart1Reminder", {
        "notify": "task", "subject": "JAFF part 1 for the step down to TAF is not yet sent"})]
    assert case.open() == ["Task_CompleteJaffPart1"]
    assert case.timers() == {}

    # Sent to the TAF box, not fully complete: returned to the social worker, with a new reminder.
    case.complete("Task_CompleteJaffPart1", {**JAFF, "family_outcomes": "Better routines", "consent_form": "verbal"})
    check = case.task("Task_CheckJaffPart1")
    assert check.roles == ["taf_coordinator"]
    assert check.due_at == london(2027, 1, 13, 9, 0)
    time.move_to(london(2027, 1, 12, 11, 0))
    case.complete("Task_CheckJaffPart1", {"jaff_complete": False, "jaff_return_reasons": "No signed consent"})
    assert case.open() == ["Task_CompleteJaffPart1"]
    assert case.task("Task_CompleteJaffPart1").due_at == london(2027, 1, 19, 11, 0)
    assert case.timers() == {"Event_JaffPart1Reminder": london(2027, 1, 19, 11, 0)}
    case.complete("Task_CompleteJaffPart1", {**JAFF, "consent_form": "signed"})

    # Complete: to the next Wednesday allocation meeting (Tuesday 12th -> Wednesday 13th).
    case.complete("Task_CheckJaffPart1", {"jaff_complete": True})
    task = case.task("Task_AllocationDecision")
    assert task.roles == ["taf_coordinator"]
    assert task.due_at == london(2027, 1, 13, 10, 0)
    assert case.timers() == {"Event_AllocationReminder": london(2027, 1, 14, 10, 0),
                             "Event_AllocationEscalation": london(2027, 1, 20, 10, 0)}

    # Not recorded the day after the meeting: the coordinator is reminded, the task stays.
    time.move_to(london(2027, 1, 14, 10, 5))
    case.fire()
    assert case.fired() == [("Event_AllocationReminder", {
        "notify": "task", "subject": "Step-down allocation decision not yet recorded"})]
    assert case.open() == ["Task_AllocationDecision"]
    assert case.timers() == {"Event_AllocationEscalation": london(2027, 1, 20, 10, 0)}

    case.complete("Task_AllocationDecision", {"allocation_decision": "multi_agency", "taf_number": "TAF-123"})
    assert case.timers() == {}
    task = case.task("Task_ContactSocialWorker")
    assert task.roles == ["taf_coordinator"]
    case.complete("Task_ContactSocialWorker", {"social_worker_contacted": True, "meeting_date": "2027-01-21"})
    task = case.task("Task_StepDownMeeting")
    assert task.due_at == london(2027, 1, 21, 9, 0)
    case.complete("Task_StepDownMeeting", {
        "family_understands_taf": True, "personal_outcomes": "School attendance", "intervention_plan": "Plan",
        "key_worker_agency": "Youth service", "taf_start_date": "2027-02-01"})

    # The case stays open to statutory services until the agreed date.
    assert case.open() == []
    assert case.timers() == {"Event_TafSupportStarts": london(2027, 2, 1, 9, 0)}
    assert not case.snap.completed
    assert case.snap.messages == ["immediate_risk"]
    time.move_to(london(2027, 1, 31, 12, 0))
    case.fire()
    assert case.open() == []
    time.move_to(london(2027, 2, 1, 9, 0))
    case.fire()
    task = case.task("Task_CloseToStatutoryServices")
    assert task.roles == ["social_worker"]
    assert task.due_at == london(2027, 2, 1, 17, 0)
    case.complete("Task_CloseToStatutoryServices", {"care_first_complete": True})
    assert case.snap.completed
    data = case.snap.data
    assert data["outcome"] == "stepped_down"
    assert [(m.name, m.payload["consent"]) for m in case.snap.thrown] == [("start:carmarthenshire_taf_plan", "given")]
    assert (data["family_name"], data["taf_number"], data["taf_start_date"]) == ("Jones", "TAF-123", "2027-02-01")


def test_allocation_a_week_overdue_escalates_to_the_taf_manager(process, time):
    case = Case(process, {"weeks_open": 20, **READY})
    case.complete("Task_CompleteJaffPart1", JAFF)
    time.move_to(london(2027, 1, 6, 11, 0))  # Wednesday after the meeting: the next one is the 13th
    case.complete("Task_CheckJaffPart1", {"jaff_complete": True})
    assert case.task("Task_AllocationDecision").due_at == london(2027, 1, 13, 10, 0)
    assert case.timers() == {"Event_AllocationReminder": london(2027, 1, 14, 10, 0),
                             "Event_AllocationEscalation": london(2027, 1, 20, 10, 0)}
    time.move_to(london(2027, 1, 20, 10, 0))
    case.fire()  # the reminder and the escalation are both due
    fired = dict(case.fired())
    assert fired["Event_AllocationEscalation"]["notify"] == "taf_manager"
    assert case.open() == ["Task_ManagerAllocationDecision"]  # interrupting: the coordinator's task is gone
    task = case.task("Task_ManagerAllocationDecision")
    assert (task.roles, task.lane) == (["taf_manager"], "TAF manager")
    assert task.due_at == london(2027, 1, 20, 17, 0)
    assert case.timers() == {}
    case.complete("Task_ManagerAllocationDecision", {"allocation_decision": "single_agency"})
    assert case.open() == ["Task_ContactSocialWorker"]
    case.complete("Task_ContactSocialWorker", {"social_worker_contacted": True, "meeting_date": "2027-01-25"})
    case.complete("Task_StepDownMeeting", {"taf_start_date": "2027-01-20"})  # already reached: no wait
    case.complete("Task_CloseToStatutoryServices", {"care_first_complete": True})
    assert case.snap.data["outcome"] == "stepped_down"


# ---- safeguarding first -------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["under_8_weeks", "jaff", "allocation", "waiting_for_start_date"])
def test_immediate_risk_never_interrupts_the_statutory_case(process, time, stage):
    """The child is open to social services while a step down runs (statutory=true): immediate risk opens CRT's
    urgent referral beside the waiting step, and nothing of the step down is lost."""
    if stage == "under_8_weeks":
        case = Case(process, {"weeks_open": 2, **READY})
    else:
        case = Case(process, {"weeks_open": 10, **READY})
    if stage in ("allocation", "waiting_for_start_date"):
        case.complete("Task_CompleteJaffPart1", JAFF)
        case.complete("Task_CheckJaffPart1", {"jaff_complete": True})
    if stage == "waiting_for_start_date":
        case.complete("Task_AllocationDecision", {"allocation_decision": "multi_agency"})
        case.complete("Task_ContactSocialWorker", {"meeting_date": "2027-01-12"})
        case.complete("Task_StepDownMeeting", {"taf_start_date": "2027-03-01"})
        assert case.open() == []
    time.move_to(london(2027, 1, 7, 15, 30))
    case.fire()
    waiting = case.open()
    timers = case.timers()
    assert case.snap.messages == ["immediate_risk"]
    case.message("immediate_risk", {"what_happened": "Disclosure at school"})
    assert case.open() == sorted(waiting + ["Task_UrgentCrtReferral"])
    assert case.task("Task_UrgentCrtReferral").roles == ["crt"]
    assert case.timers() == timers  # nothing of the step down is lost
    assert case.snap.data["what_happened"] == "Disclosure at school"
    case.complete("Task_UrgentCrtReferral", {"risk_summary": "Disclosure", "crt_manager_phoned": True})
    assert not case.snap.completed and case.open() == waiting and case.timers() == timers
    if stage == "waiting_for_start_date":  # the step down then ends: the case completes with its own outcome
        time.move_to(london(2027, 3, 1, 9, 0))
        case.fire()
        case.complete("Task_CloseToStatutoryServices", {"care_first_complete": True})
        assert case.snap.completed and case.snap.data["outcome"] == "stepped_down"


def test_state_survives_dump_and_load(process, time):
    workflow, snap = runtime.start(process, {"weeks_open": 9, **READY})
    state = runtime.dump(workflow)
    restored, journal = runtime.load(process, state)
    again = runtime.snapshot(restored)
    assert [(t.name, t.roles, t.due_at) for t in again.tasks] == [(t.name, t.roles, t.due_at) for t in snap.tasks]
    assert [(t.name, t.due_at) for t in again.timers] == [(t.name, t.due_at) for t in snap.timers]
    assert again.data == snap.data
    assert runtime.dump(restored) == runtime.dump(runtime.load(process, runtime.dump(restored))[0])
    # the restored case runs on: fire the reminder from the restored copy
    time.move_to(london(2027, 1, 11, 9, 0))
    fired = runtime.fire_timers(restored, journal)
    assert [e.element for e in fired.journal if e.event == "timer_fired"] == ["Event_JaffPart1Reminder"]


def test_a_caught_immediate_risk_does_not_break_later_cases(process, time):
    """Regression: SpiffWorkflow 3.2 rewired the shared spec's Start to the triggered event sub-process, so
    every case started after one immediate_risk began inside the (interrupting) sub-process with no open task."""
    first = Case(process, {"weeks_open": 10, **READY})
    first.message("immediate_risk")
    first.complete("Task_UrgentCrtReferral", {"risk_summary": "x", "crt_manager_phoned": True})
    assert first.open() == ["Task_CompleteJaffPart1"]
    later = Case(process, {"weeks_open": 3, **READY})
    assert later.open() == ["Task_AgreeNextStepsWithFamily"]
    later.complete("Task_AgreeNextStepsWithFamily", {"family_support": "none"})
    assert later.snap.completed and later.snap.data["outcome"] == "closed"
    again = Case(process, {"weeks_open": 10, **READY})
    again.message("immediate_risk")
    assert again.open() == ["Task_CompleteJaffPart1", "Task_UrgentCrtReferral"]
