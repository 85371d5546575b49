"""A case that lives for years: its stored state and the time a step takes stay flat, however often it loops.

Through the engine API (start, complete_task, fire_timers, deliver_message, dump, load), as the service
drives a case: every step loads the stored state and saves it again.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import USERS, Api, everything, save_user
import constructs_support as draw
from service.engine import runtime, spiff
from service.engine.bundle import build_bundle
from service.models import Case as CaseRow, db
from test_completion_cost import statements

#: Loops of the REST API test (GROWTH_LOOPS=100 while working on it; the issue asks for 1,000).
LOOPS = int(os.environ.get("GROWTH_LOOPS", "1000"))
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "constructs"


def process_of(name: str, *also: str):
    files = {n: (FIXTURES / n).read_bytes() for n in (name, *also)}
    return build_bundle(files).processes[name.removesuffix(".bpmn")]


class Case:
    """One case kept as the service keeps it: stored as text between steps."""

    def __init__(self, process, data=None) -> None:
        self.process = process
        self.workflow, self.snap = runtime.start(process, data or {})
        self.state = runtime.dump(self.workflow)

    def step(self, action, *args) -> float:
        """Load, act, save; return the seconds it took."""
        started = time.perf_counter()
        workflow, journal = runtime.load(self.process, self.state)
        self.snap = action(workflow, journal, *args)
        self.state = runtime.dump(workflow)
        self.workflow = workflow
        return time.perf_counter() - started

    def task(self, name: str) -> str:
        return next(t.id for t in self.snap.tasks if t.name == name)

    def complete(self, name: str, data: dict) -> float:
        return self.step(runtime.complete_task, self.task(name), data)


def review_once(case: Case, clock, number: int) -> float:
    """One review: late enough for the reminder to fire, then done, then three months on to the next."""
    clock.move_to(clock.now() + timedelta(days=15))
    case.step(runtime.fire_timers)
    elapsed = case.complete("Task_ReviewPlan", {"close": False, "review": number})
    clock.move_to(clock.now() + timedelta(days=100))
    case.step(runtime.fire_timers)
    return elapsed


def test_a_plan_reviewed_a_thousand_times_keeps_its_state_and_step_time_flat(frozen_clock):
    case = Case(process_of("review_loop.bpmn"))
    sizes, states = {}, {}
    for number in range(1, 1001):
        review_once(case, frozen_clock, number)
        sizes[number] = len(case.state)
        assert [t.name for t in case.snap.tasks] == ["Task_ReviewPlan"], f"review {number}"
        if number in (10, 1000):
            states[number] = (case.state, case.task("Task_ReviewPlan"))
    first_size = max(sizes[n] for n in range(1, 11))
    assert max(sizes.values()) <= 2 * first_size, (first_size, max(sizes.values()))
    assert spiff.tree_depth(case.workflow) < 15
    assert json.loads(case.state)["format"] == runtime.STATE_FORMAT
    # Time a completion at review 10 and at review 1000 turn about, so that a busy machine slows both alike.
    early, late = completion_times(case.process, *states[10]), completion_times(case.process, *states[1000])
    for _ in range(4):
        early += completion_times(case.process, *states[10])
        late += completion_times(case.process, *states[1000])
    assert statistics.median(late) <= 2 * statistics.median(early), (statistics.median(early), statistics.median(late))
    case.complete("Task_ReviewPlan", {"close": True})
    assert case.snap.completed and case.snap.data["outcome"] == "closed" and case.snap.data["review"] == 1000


def completion_times(process, state: str, task_id: str, repeat: int = 5) -> list[float]:
    """Seconds to load ``state``, complete the review and save, ``repeat`` times."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        workflow, journal = runtime.load(process, state)
        runtime.complete_task(workflow, journal, task_id, {"close": False})
        runtime.dump(workflow)
        times.append(time.perf_counter() - started)
    return times


def test_messages_received_all_along_a_review_do_not_grow_the_case(frozen_clock):
    case = Case(process_of("review_loop.bpmn"))
    sizes = []
    for number in range(300):
        case.step(runtime.deliver_message, "family_update", {"update": number})
        sizes.append(len(case.state))
    assert "family_update" in case.snap.messages
    assert max(sizes) <= 2 * sizes[0]
    assert case.snap.data["update"] == 299


def test_rounds_of_parallel_checks_and_a_called_summary_join_correctly_and_stay_flat():
    case = Case(process_of("loop_parallel.bpmn", "loop_summary.bpmn"))
    sizes = []
    for number in range(60):
        first, second = ("Task_CheckSchool", "Task_CheckHealth") if number % 2 else ("Task_CheckHealth",
                                                                                    "Task_CheckSchool")
        assert sorted(t.name for t in case.snap.tasks) == ["Task_CheckHealth", "Task_CheckSchool"], number
        case.complete(first, {first: number})
        assert [t.name for t in case.snap.tasks] == [second], f"round {number}: the join fired on one branch"
        case.complete(second, {second: number})
        assert [t.name for t in case.snap.tasks] == ["Task_Summarise"], number
        case.complete("Task_Summarise", {"again": True, "summary": number})
        sizes.append(len(case.state))
    assert max(sizes) <= 2 * sizes[2]
    assert len(case.workflow.subprocesses) <= 2 and spiff.tree_depth(case.workflow) < 20
    case.complete("Task_CheckSchool", {})
    case.complete("Task_CheckHealth", {})
    case.complete("Task_Summarise", {"again": False})
    assert case.snap.completed and case.snap.data["summary"] == 59


def legacy_dump(workflow) -> str:
    """A state as the service wrote it before the format was kept inside (``spiff-1.5``)."""
    return spiff.state_json(workflow)


def test_a_state_of_the_older_format_loads_compacted_and_saves_in_the_new(frozen_clock, monkeypatch):
    process = process_of("review_loop.bpmn")
    case = Case(process)
    with monkeypatch.context() as patch:
        patch.setattr(spiff, "compact", lambda workflow: 0)  # as the service ran before issue 15
        for number in range(1, 31):
            review_once(case, frozen_clock, number)
    workflow, _ = runtime.load(process, case.state)
    old = legacy_dump(workflow)
    assert spiff.tree_depth(workflow) > 100
    loaded, journal = runtime.load(process, old, "spiff-1.5")
    assert spiff.tree_depth(loaded) < 15
    snap = runtime.complete_task(loaded, journal, case.task("Task_ReviewPlan"), {"close": True})
    assert snap.completed and snap.data["outcome"] == "closed" and snap.data["review"] == 30
    assert json.loads(runtime.dump(loaded))["format"] == runtime.STATE_FORMAT == "pathways-3"


@pytest.mark.parametrize("inside, column", [("pathways-9", None), (None, "spiff-1.4")])
def test_a_state_in_a_format_this_engine_does_not_know_is_refused(inside, column):
    process = process_of("review_loop.bpmn")
    workflow, _ = runtime.start(process, {})
    state = json.loads(runtime.dump(workflow))
    state.pop("format")
    if inside:
        state["format"] = inside
    with pytest.raises(runtime.EngineError, match=f"format '{inside or column}'.*cannot read"):
        runtime.load(process, json.dumps(state), column)


def test_rounds_of_visits_to_each_child_and_a_gateway_waiting_for_news_stay_flat(frozen_clock):
    children = [{"name": "Amy"}, {"name": "Ben"}]
    case = Case(process_of("loop_visits.bpmn"), {"children": children})
    sizes = []
    for number in range(50):
        assert [t.title for t in case.snap.tasks] == ["Visit the child: Amy", "Visit the child: Ben"], number
        for task in reversed(case.snap.tasks):
            case.step(runtime.complete_task, task.id, {"round": number})
        assert case.snap.tasks == [] and case.snap.messages == ["family_update", "immediate_risk"]
        assert [t.name for t in case.snap.timers] == ["Event_QuietWeek"]
        assert case.snap.data["child_answers"] == [{"child": child, "round": number} for child in children]
        frozen_clock.move_to(frozen_clock.now() + timedelta(days=6))
        case.step(runtime.deliver_message, "family_update", {"news": number})
        sizes.append(len(case.state))
    assert max(sizes) <= 2 * sizes[2] and spiff.tree_depth(case.workflow) < 15
    for task in list(case.snap.tasks):
        case.step(runtime.complete_task, task.id, {})
    frozen_clock.move_to(frozen_clock.now() + timedelta(days=8))
    case.step(runtime.fire_timers)
    assert case.snap.completed and case.snap.data["outcome"] == "quiet" and case.snap.data["news"] == 49


# -- the same, through the REST API ------------------------------------------------------------------

#: A plan reviewed until it closes, each review reminded after two weeks (a timer row made and dropped every
#: loop), looping through a gateway: every loop a person's completion through the API, nothing else.
REVIEWED = draw.pathway("reviewed", [
    draw.start(), '<bpmn:exclusiveGateway id="Gateway_Again"/>', draw.task("Task_Review", "Review the plan"),
    draw.event("boundaryEvent", "Event_Late", draw.timer("timeDuration", "P14D"),
               'attachedToRef="Task_Review" cancelActivity="false"'), draw.end("Event_Reminded"),
    '<bpmn:exclusiveGateway id="Gateway_Close" default="Flow_Gateway_Close_Gateway_Again"/>',
    draw.end("Event_Closed", "closed")],
    [("Event_Start", "Gateway_Again"), ("Gateway_Again", "Task_Review"), ("Task_Review", "Gateway_Close"),
     ("Event_Late", "Event_Reminded"), ("Gateway_Close", "Event_Closed", "${close}"),
     ("Gateway_Close", "Gateway_Again")])


@pytest.fixture
def sqlite_api(sqlite_app):
    """The API on SQLite, with the test users (a 1,000-loop case is about the engine and the service, not the
    database: its persistence is covered on both databases elsewhere)."""
    with sqlite_app.app_context():
        for name, roles in USERS.items():
            save_user(db.session, name, roles, token=f"token-{name}")
        db.session.commit()
    return Api(sqlite_app, {name: f"token-{name}" for name in USERS})


class ApiCase:
    """A case of ``reviewed`` driven only through /api/v1."""

    def __init__(self, api, reference: str) -> None:
        self.api = api
        response = api.post("/cases", json={"process": "reviewed", "reference": reference, "data": {}})
        assert response.status_code == 201, response.json
        self.id, self.tasks = response.json["id"], response.json["tasks"]

    def review(self, number: int, close: bool = False) -> tuple[float, int]:
        """Complete the open review: (seconds, SQL statements sent)."""
        [task] = self.tasks
        assert task["name"] == "Task_Review", self.tasks
        with statements(self.api.app) as sent:
            started = time.perf_counter()
            response = self.api.post(f"/tasks/{task['id']}/complete",
                                     json={"data": {"close": close, "review": number}})
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.json
        self.tasks, self.answer = response.json["tasks"], response.json
        if not close:
            assert [t["name"] for t in self.tasks] == ["Task_Review"], f"review {number}: {self.tasks}"
            assert [t["name"] for t in response.json["timers"]] == ["Event_Late"], response.json
        return elapsed, len(sent)

    def stored_size(self) -> int:
        with self.api.app.app_context(), everything():
            return len(db.session.get(CaseRow, self.id).state)


def test_a_review_looped_a_thousand_times_through_the_api_keeps_state_statements_and_time_flat(sqlite_api,
                                                                                            frozen_clock,
                                                                                            monkeypatch):
    """1,000 reviews of one case through POST /tasks/<id>/complete: the stored state stays within 2x of the
    first loops', each completion sends no more statements than the first ones did, and a completion at review
    1,000 takes about as long as one of a new case's first reviews, the two timed turn about so that a busy
    machine slows both alike (a ratio of medians, never a time). The clock stands still: a token's last use is
    written once a minute, and who a caller is is read again every 30 seconds: neither is the case's."""
    from service import auth

    monkeypatch.setattr(auth, "CALLER_CACHE_SECONDS", 24 * 3600)
    api = sqlite_api
    response = draw.deploy(api, ("reviewed.bpmn", REVIEWED))
    assert response.status_code == 201, response.json
    old = ApiCase(api, "FAM-OLD")
    sizes, counts = {}, {}
    for number in range(1, LOOPS + 1):
        _, counts[number] = old.review(number)
        if number <= 10 or number % 50 == 0:
            sizes[number] = old.stored_size()
    first_size = max(sizes[n] for n in range(1, 11))
    assert max(sizes.values()) <= 2 * first_size, (first_size, max(sizes.values()))
    usual = max(counts[n] for n in range(2, 11))
    assert max(counts[n] for n in range(11, LOOPS + 1)) <= usual, {n: c for n, c in counts.items() if c > usual}
    new = ApiCase(api, "FAM-NEW")
    early, late = [], []
    for number in range(1, 31):
        early.append(new.review(number)[0])
        late.append(old.review(LOOPS + number)[0])
    assert statistics.median(late) <= 2 * statistics.median(early), (statistics.median(early),
                                                                      statistics.median(late))
    old.review(LOOPS + 31, close=True)
    assert (old.answer["status"], old.answer["outcome"], old.answer["data"]["review"]) == ("completed", "closed",
                                                                                            LOOPS + 31)
    history = api.get(f"/cases/{old.id}/history?per_page=1", as_="admin")
    assert history.status_code == 200
