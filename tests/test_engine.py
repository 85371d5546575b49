"""Engine details that once went wrong: state with dates, the clock decisions read, the sandbox after a load."""
from __future__ import annotations

import datetime
import json
import uuid

from conftest import FIXTURES
from service.engine import clock, runtime
from service.engine.bundle import build_bundle
from service.engine.decisions import feel
from service.engine.specs import Journal


def review_process():
    files = {p.name: p.read_bytes() for p in (FIXTURES / "pathways").iterdir()}
    return build_bundle(files).processes["test_review"]


def test_dates_in_case_data_survive_a_save_and_load():
    process = review_process()
    workflow, snap = runtime.start(process, {"needs": 1})
    task = workflow.get_task_from_id(uuid.UUID(snap.tasks[0].id))
    task.data["meeting"] = datetime.date(2027, 1, 6)
    task.data["called_at"] = datetime.datetime(2027, 1, 4, 9, 30, tzinfo=datetime.timezone.utc)
    loaded, _ = runtime.load(process, runtime.dump(workflow))
    data = loaded.get_task_from_id(task.id).data
    assert data["meeting"] == datetime.date(2027, 1, 6)
    assert data["called_at"] == datetime.datetime(2027, 1, 4, 9, 30, tzinfo=datetime.timezone.utc)


def test_feel_today_reads_the_service_clock(frozen_clock):
    frozen_clock.move_to(datetime.datetime(2027, 3, 28, 23, 30, tzinfo=datetime.timezone.utc))
    assert feel.BUILTINS["today"]() == datetime.date(2027, 3, 29)  # already Monday in London (BST)


def test_a_loaded_case_runs_in_the_sandbox_not_the_default_engine():
    process = review_process()
    workflow, _ = runtime.start(process, {"needs": 1})
    loaded, journal = runtime.load(process, runtime.dump(workflow))
    assert loaded.script_engine is journal and isinstance(journal, Journal)
    assert type(journal.environment).__name__ == "SandboxedEnvironment"


def test_the_clock_in_force_is_the_one_installed(frozen_clock):
    assert clock.now() == frozen_clock.now()
    with clock.clock_at(datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)):
        assert clock.now().year == 2030
    assert clock.now() == frozen_clock.now()


def _shape(state: str) -> list:
    """Each task's element, state and what it keeps of itself, without ids or times."""
    dct = json.loads(state)
    return sorted((t["task_spec"], t["state"], tuple(sorted(t["internal_data"]))) for t in dct["tasks"].values())


def test_a_reminder_fired_ahead_runs_on_at_the_next_step_as_the_engines_own_firing_would_leave_it():
    """review.bpmn's P2D reminder (notify): marked fired in the state as the engine loads it (runtime.catch_up,
    from the note the sweep left on the case), the engine's next step runs its path on without a firing of its
    own, and leaves the case as firing it itself would have."""
    process = review_process()
    t0 = datetime.datetime(2026, 12, 21, 9, 0, tzinfo=datetime.timezone.utc)
    later = t0 + datetime.timedelta(days=2, minutes=1)
    with clock.clock_at(t0):
        workflow, snap = runtime.start(process, {"needs": 1})
    state = runtime.dump(workflow)
    remind, escalate = snap.timers
    assert remind.name in runtime.notify_only_timers(process) and escalate.name in runtime.notify_only_timers(process)
    fired = {remind.id: (remind.name, later, None)}
    assert runtime.catch_up(state, {}, {remind.id: (remind.name, t0, None)}) == state  # not due by then
    assert runtime.catch_up(state, {}, {snap.tasks[0].id: ("Task_Assess", later, None)}) == state  # not a timer
    older = json.dumps({**json.loads(state), "format": "pathways-2"})
    assert runtime.catch_up(older, {}, fired) == older
    ahead = runtime.catch_up(state, {}, fired)
    assert ahead != state and runtime.catch_up(ahead, {}, fired) == ahead  # marked once
    with clock.clock_at(later):
        loaded, _ = runtime.load(process, ahead)
        assert [t.name for t in runtime.snapshot(loaded).timers] == [escalate.name]  # nothing due of it now
        quick, journal = runtime.load(process, ahead)
        after_ahead = runtime.fire_timers(quick, journal)
        engine, journal = runtime.load(process, state)
        after_engine = runtime.fire_timers(engine, journal)
    assert after_ahead.journal == [] and [e.event for e in after_engine.journal] == ["timer_fired"]
    assert _shape(runtime.dump(quick)) == _shape(runtime.dump(engine))
    assert after_ahead.timers == after_engine.timers and after_ahead.tasks == after_engine.tasks


def test_facts_worked_out_from_a_process_go_when_the_process_goes():
    """What the runtime works out once from a parsed process is kept on it, not in the module: a pathway version
    dropped from the app's cache is freed with its facts (a module-level dict keyed by id() kept every version
    ever parsed alive, and could answer a new process that reused a freed one's id)."""
    import gc
    import weakref

    process = review_process()
    facts = (runtime.notify_only_timers(process), runtime.correlation_keys(process),
             runtime.ad_hoc_activities(process))
    assert runtime.notify_only_timers(process) is facts[0]  # worked out once
    assert set(process.derived) == {"notify_only_timers", "correlation_keys", "ad_hoc_activities"}
    gone = weakref.ref(process)
    del process
    gc.collect()
    assert gone() is None
