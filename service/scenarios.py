"""Scenario tests: a file of steps with expectations, replayed on a fresh sandbox case (``service.sandbox``).

One JSON file per scenario, named ``<process_key>.<slug>.scenario.json``, deployed with the pathway::

    {"scenario": "Universal services", "process": "halton_step_down",
     "start": {"at": "2027-01-04T09:00:00+00:00", "as": "social_worker", "data": {...}},
     "steps": [{"complete": "Task_X", "as": "social_worker", "data": {...}, "expect": {...}},
               {"clock": "+4 weeks"}, {"clock": "next timer"}, {"clock": "2027-02-01T09:00:00+00:00"},
               {"message": "Message_X", "data": {}}, {"signal": "Signal_Y", "data": {}}],
     "expect": {"status": "completed", "outcome": "universal"}}

``expect`` (on ``start``, on any step, and at the end) may hold: ``tasks`` (the exact set of open task element
ids), ``tasks_include``, ``timers`` (element id -> due instant, or a list of element ids: the exact set pending),
``notifications`` (the exact set of element ids whose notifications this step sent), ``status``, ``outcome``,
``data`` (a subset the case data must hold), ``path_includes`` (elements the case has run through).

:func:`parse` refuses a malformed file naming the file, the step and the key; :func:`run` never raises for a
failing expectation: its :class:`ScenarioResult` has a result per step saying what was expected and found.
No database, no HTTP: the caller gives the processes (``process_lookup``) and acts for the council whose
calendar counts the working days.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from service.engine import calendar, clock
from service.engine.bundle import ProcessDefinition
from service.engine.limits import Limits
from service.errors import ServiceError
from service.sandbox import Sandbox, SandboxError, clock_move

SUFFIX = ".scenario.json"
ACTIONS = ("complete", "clock", "message", "signal")
EXPECT_KEYS = ("tasks", "tasks_include", "timers", "notifications", "status", "outcome", "data", "path_includes")
STATUSES = ("active", "completed", "error")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}")


class ScenarioError(ServiceError):
    """A malformed scenario file: the message names the file, the step and the key."""

    status = 422


@dataclass
class Scenario:
    name: str                     # the file name
    title: str                    # its "scenario"
    process: str
    start: dict[str, Any]         # {"at" (ISO or None), "as" (role or None), "data", "expect"}
    steps: list[dict[str, Any]]
    expect: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepResult:
    number: int                   # 0: the start; 1..n: the steps; n + 1: the final expectations
    action: str                   # what was done, in words ("complete Task_X as social_worker")
    passed: bool
    message: str                  # "" when it passed; else what was expected and what was found
    at: str | None = None         # the sandbox clock after the step (ISO)
    run: bool = True              # False: not run, an earlier step could not be done


@dataclass
class ScenarioResult:
    name: str
    title: str
    process: str
    passed: bool
    steps: list[StepResult]
    seconds: float = 0.0

    def failures(self) -> list[StepResult]:
        return [step for step in self.steps if not step.passed]

    def summary(self) -> str:
        """One line per failing step: scenario, step and what differed (empty when it passed)."""
        return "\n".join(f"{self.name}, step {s.number} ({s.action}): {s.message}" for s in self.failures())

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "process": self.process, "passed": self.passed,
                "seconds": round(self.seconds, 4), "steps": [asdict(s) for s in self.steps]}


# -- parsing -------------------------------------------------------------------------------------------

def is_scenario_file(name: str) -> bool:
    return name.endswith(SUFFIX)


def parse(text: str | bytes, name: str) -> Scenario:
    """The scenario in ``text`` (the file ``name``); :class:`ScenarioError` naming file, step and key if malformed."""
    try:
        raw = json.loads(text)
    except (TypeError, ValueError, RecursionError) as error:
        raise ScenarioError(f"{name}: not JSON ({str(error)[:200]})") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{name}: a scenario is a JSON object with 'scenario', 'process', 'start' and 'steps'")
    unknown = sorted(set(raw) - {"scenario", "process", "start", "steps", "expect", "description"})
    if unknown:
        raise ScenarioError(f"{name}: unknown key '{unknown[0]}' (a scenario has scenario, process, start, steps, "
                            f"expect)")
    title = raw.get("scenario")
    if not isinstance(title, str) or not title.strip():
        raise ScenarioError(f"{name}: key 'scenario' must be the scenario's name in words")
    process = raw.get("process")
    if not isinstance(process, str) or not process.strip():
        raise ScenarioError(f"{name}: key 'process' must be the process id the scenario runs")
    if is_scenario_file(name) and name.rsplit("/", 1)[-1].split(".", 1)[0] != process:
        raise ScenarioError(f"{name}: the file of a scenario of '{process}' is named '{process}.<name>{SUFFIX}'")
    start = raw.get("start", {})
    if not isinstance(start, dict):
        raise ScenarioError(f"{name}: the start: key 'start' must be an object with 'data', 'at', 'as'")
    bad = sorted(set(start) - {"at", "as", "data", "expect"})
    if bad:
        raise ScenarioError(f"{name}: the start: unknown key '{bad[0]}' (the start has data, at, as, expect)")
    if start.get("at") is not None:
        _instant(start["at"], f"{name}: the start: key 'at'")
    if start.get("as") is not None and not isinstance(start["as"], str):
        raise ScenarioError(f"{name}: the start: key 'as' must be a role key")
    if not isinstance(start.get("data", {}), dict):
        raise ScenarioError(f"{name}: the start: key 'data' must be an object")
    _check_expect(start.get("expect", {}), f"{name}: the start")
    steps = raw.get("steps", [])
    if not isinstance(steps, list):
        raise ScenarioError(f"{name}: key 'steps' must be a list of steps")
    for number, step in enumerate(steps, 1):
        _check_step(step, f"{name}: step {number}")
    _check_expect(raw.get("expect", {}), f"{name}: the final expect")
    return Scenario(name=name, title=title.strip(), process=process.strip(),
                    start={"at": start.get("at"), "as": start.get("as"), "data": start.get("data", {}),
                           "expect": start.get("expect", {})},
                    steps=steps, expect=raw.get("expect", {}))


def _check_step(step: Any, where: str) -> None:
    if not isinstance(step, dict):
        raise ScenarioError(f"{where}: a step is an object such as {{\"complete\": \"Task_X\", \"data\": {{}}}}")
    actions = [key for key in ACTIONS if key in step]
    if len(actions) != 1:
        raise ScenarioError(f"{where}: a step has exactly one of the keys {', '.join(ACTIONS)}"
                            + (f" (this one has {', '.join(actions)})" if actions else ""))
    action = actions[0]
    allowed = {action, "expect", "note"} | ({"as", "data"} if action == "complete" else set()) | (
        {"data"} if action in ("message", "signal") else set())
    bad = sorted(set(step) - allowed)
    if bad:
        raise ScenarioError(f"{where}: unknown key '{bad[0]}' for a '{action}' step "
                            f"(it may have {', '.join(sorted(allowed))})")
    value = step[action]
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"{where}: key '{action}' must be text")
    if action == "clock":
        _clock_value(value, f"{where}: key 'clock'")
    if "data" in step and not isinstance(step["data"], dict):
        raise ScenarioError(f"{where}: key 'data' must be an object")
    if "as" in step and not isinstance(step["as"], str):
        raise ScenarioError(f"{where}: key 'as' must be a role key")
    _check_expect(step.get("expect", {}), where)


def _clock_value(value: str, where: str) -> None:
    if value.strip().lower() == "next timer":
        return
    if _INSTANT.match(value.strip()):
        _instant(value, where)
        return
    try:
        clock_move(value, clock.now())
    except SandboxError as error:
        raise ScenarioError(f"{where}: {error.message}, 'next timer', or an instant") from None


def _instant(value: Any, where: str) -> datetime:
    try:
        return clock.as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        raise ScenarioError(f"{where}: '{value}' is not an ISO instant such as 2027-01-04T09:00:00+00:00") from None


def _check_expect(expect: Any, where: str) -> None:
    if not isinstance(expect, dict):
        raise ScenarioError(f"{where}: key 'expect' must be an object")
    for key, value in expect.items():
        at = f"{where}: key 'expect.{key}'"
        if key not in EXPECT_KEYS:
            raise ScenarioError(f"{where}: unknown key 'expect.{key}' (expect may hold {', '.join(EXPECT_KEYS)})")
        if key in ("tasks", "tasks_include", "notifications", "path_includes"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ScenarioError(f"{at} must be a list of element ids")
        elif key == "timers":
            if isinstance(value, dict):
                for element, due in value.items():
                    _instant(due, f"{where}: key 'expect.timers.{element}'")
            elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ScenarioError(f"{at} must be a list of element ids, or element id -> due instant")
        elif key == "status":
            if value not in STATUSES:
                raise ScenarioError(f"{at} must be one of {', '.join(STATUSES)}")
        elif key == "outcome":
            if value is not None and not isinstance(value, str):
                raise ScenarioError(f"{at} must be an outcome (text) or null")
        elif key == "data" and not isinstance(value, dict):
            raise ScenarioError(f"{at} must be an object of the values the case data holds")


def problems(bundle) -> list:
    """What is wrong with the scenario files of a deployment (``bundle``: its parsed files), as deploy problems:
    a malformed file (naming the step and the key), or one of a process the deployment does not define."""
    from service.engine.bundle import Problem

    found = []
    for name in sorted(n for n in bundle.files if is_scenario_file(n.lower())):
        try:
            scenario = parse(bundle.files[name], name)
        except ScenarioError as error:
            found.append(Problem(name, None, error.message.removeprefix(f"{name}: ")))
            continue
        if scenario.process not in bundle.processes:
            defined = ", ".join(sorted(bundle.processes)) or "none"
            found.append(Problem(name, None, f"the scenario runs the process '{scenario.process}', which this "
                                             f"deployment does not define (it defines: {defined})"))
    return found


# -- running -------------------------------------------------------------------------------------------

ProcessLookup = Callable[[str], ProcessDefinition | None] | Mapping[str, ProcessDefinition]


def default_start(now: datetime | None = None) -> datetime:
    """The next Monday 09:00 London after ``now`` (default the service clock)."""
    return clock.as_utc(calendar.next_weekday("Monday", "09:00", start=now or clock.now()))


def run(process_lookup: ProcessLookup, scenario: Scenario, *, limits: Limits | None = None) -> ScenarioResult:
    """Replay ``scenario`` on a fresh sandbox case: a result per step; never raises for a failing expectation."""
    began = time.perf_counter()
    process = (process_lookup.get(scenario.process) if isinstance(process_lookup, Mapping)
               else process_lookup(scenario.process))
    results: list[StepResult] = []
    if process is None:
        results.append(StepResult(0, "start", False, f"the process '{scenario.process}' is not in this version"))
        return _result(scenario, results, began)
    start = scenario.start
    at = _instant(start["at"], "start") if start.get("at") else default_start()
    words = "start" + (f" as {start['as']}" if start.get("as") else "")
    try:
        box = Sandbox.start(process, start.get("data") or {}, at, role=start.get("as"), limits=limits)
    except SandboxError as error:
        results.append(StepResult(0, words, False, f"could not start: {error.message}", at.isoformat()))
        _not_run(results, scenario, 1)
        return _result(scenario, results, began)
    box.restorable = False  # a failing step ends the run: no state is kept to go on from
    results.append(_checked(0, words, box, start.get("expect") or {}))
    for number, step in enumerate(scenario.steps, 1):
        words = _words(step)
        try:
            _do(box, step)
        except SandboxError as error:
            results.append(StepResult(number, words, False, f"could not be done: {error.message}",
                                      box.now.isoformat()))
            _not_run(results, scenario, number + 1)
            return _result(scenario, results, began)
        results.append(_checked(number, words, box, step.get("expect") or {}))
    if scenario.expect:
        box.last_notified = []  # the final expectations are of the case, not of a step
        results.append(_checked(len(scenario.steps) + 1, "at the end", box, scenario.expect))
    return _result(scenario, results, began)


def run_all(process_lookup: ProcessLookup, scenarios: list[Scenario], *,
            limits: Limits | None = None) -> list[ScenarioResult]:
    return [run(process_lookup, scenario, limits=limits) for scenario in scenarios]


def _do(box: Sandbox, step: dict) -> None:
    if "complete" in step:
        box.complete(step["complete"], step.get("data") or {}, step.get("as"))
    elif "message" in step:
        box.message(step["message"], step.get("data"))
    elif "signal" in step:
        box.signal(step["signal"], step.get("data"))
    else:
        value = step["clock"].strip()
        if value.lower() == "next timer":
            box.move_clock(next_timer=True)
        elif _INSTANT.match(value):
            box.move_clock(to=_instant(value, "clock"))
        else:
            box.move_clock(by=value)


def _words(step: dict) -> str:
    if "complete" in step:
        return f"complete {step['complete']}" + (f" as {step['as']}" if step.get("as") else "")
    if "clock" in step:
        value = step["clock"].strip()
        return "clock to the next timer" if value.lower() == "next timer" else (
            f"clock to {value}" if _INSTANT.match(value) else f"clock {value}")
    kind = "message" if "message" in step else "signal"
    return f"{kind} {step[kind]}"


def _not_run(results: list[StepResult], scenario: Scenario, first: int) -> None:
    said = "not run: an earlier step could not be done"
    for number, step in enumerate(scenario.steps[first - 1:], first):
        results.append(StepResult(number, _words(step), False, said, None, run=False))
    if scenario.expect:
        results.append(StepResult(len(scenario.steps) + 1, "at the end", False, said, None, run=False))


def _result(scenario: Scenario, results: list[StepResult], began: float) -> ScenarioResult:
    return ScenarioResult(name=scenario.name, title=scenario.title, process=scenario.process,
                          passed=all(r.passed for r in results), steps=results,
                          seconds=time.perf_counter() - began)


def _checked(number: int, words: str, box: Sandbox, expect: dict) -> StepResult:
    problems = differences(box, expect)
    return StepResult(number, words, not problems, "; ".join(problems), box.now.isoformat())


def _listed(items) -> str:
    items = sorted(items)
    return ", ".join(items) if items else "none"


def _set_difference(what: str, expected: set, found: set) -> str | None:
    if expected == found:
        return None
    extra, missing = found - expected, expected - found
    said = [f"{_listed(missing)} missing"] if missing else []
    said += [f"{_listed(extra)} not expected"] if extra else []
    return f"expected {what} {_listed(expected)}, found {_listed(found)} ({'; '.join(said)})"


def differences(box: Sandbox, expect: dict) -> list[str]:
    """What differs between ``expect`` and the sandbox now, in plain words (empty when it matches)."""
    view = box.view()
    problems: list[str] = []
    open_tasks = {t["element"] for t in view.tasks}
    if "tasks" in expect:
        problems.append(_set_difference("the open tasks", set(expect["tasks"]), open_tasks))
    if "tasks_include" in expect:
        missing = sorted(set(expect["tasks_include"]) - open_tasks)
        if missing:
            problems.append(f"expected {_listed(missing)} open, found open {_listed(open_tasks)}")
    if "timers" in expect:
        pending: dict[str, list[datetime]] = {}
        for timer in view.timers:
            pending.setdefault(timer["element"], []).append(datetime.fromisoformat(timer["due_at"]))
        wanted = expect["timers"]
        problems.append(_set_difference("the timers waiting", set(wanted), set(pending)))
        if isinstance(wanted, dict):
            for element, due in wanted.items():
                instant = _instant(due, element)
                if element in pending and instant not in pending[element]:
                    found = ", ".join(d.isoformat() for d in pending[element])
                    problems.append(f"expected the timer {element} due at {instant.isoformat()}, found due at {found}")
    if "notifications" in expect:
        problems.append(_set_difference("notifications from", set(expect["notifications"]), set(box.last_notified)))
    if "status" in expect and expect["status"] != view.status:
        problems.append(f"expected the case {expect['status']}, found it {view.status}"
                        + (f" ({view.error})" if view.error else ""))
    if "outcome" in expect and expect["outcome"] != view.outcome:
        problems.append(f"expected the outcome {expect['outcome']!r}, found {view.outcome!r}")
    for key, value in (expect.get("data") or {}).items():
        if key not in view.data:
            problems.append(f"expected the data {key} = {json.dumps(value)}, found no {key}")
        elif not _same(view.data[key], value):
            problems.append(f"expected the data {key} = {json.dumps(value)}, found {json.dumps(view.data[key], default=str)}")
    if "path_includes" in expect:
        missing = [e for e in expect["path_includes"] if e not in view.path]
        if missing:
            problems.append(f"expected the case to have run through {_listed(missing)}, it has not")
    if view.status == "error" and "status" not in expect:
        problems.append(f"the case stopped on an error: {view.error}")
    return [p for p in problems if p]


def _same(found: Any, expected: Any) -> bool:
    return found == expected or json.dumps(found, default=str, sort_keys=True) == json.dumps(expected, sort_keys=True)


# -- recording -----------------------------------------------------------------------------------------

def from_sandbox(sandbox: Sandbox, name: str) -> str:
    """A rehearsal as a scenario file (JSON text): its start, every step it took with what each led to, and
    where it ended. ``name``: the scenario's name in words."""
    view = sandbox.view()
    expect: dict[str, Any] = {"status": view.status}
    if view.status == "completed":
        expect["outcome"] = view.outcome
    else:
        expect["tasks"] = sorted({t["element"] for t in view.tasks})
    started = sandbox.started
    scenario = {"scenario": name, "process": sandbox.process.key,
                "start": {"at": started.get("at"), **({"as": started["as"]} if started.get("as") else {}),
                          "data": started.get("data") or {},
                          **({"expect": started["expect"]} if started.get("expect") else {})},
                "steps": sandbox.steps, "expect": expect}
    return json.dumps(scenario, indent=2, ensure_ascii=False, default=str) + "\n"


def file_name(process_key: str, title: str) -> str:
    """``<process_key>.<slug>.scenario.json`` for a scenario called ``title``."""
    slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:60] or "scenario"
    return f"{process_key}.{slug}{SUFFIX}"
