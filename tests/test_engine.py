"""Engine details that once went wrong: state with dates, the clock decisions read, the sandbox after a load."""
from __future__ import annotations

import datetime
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
