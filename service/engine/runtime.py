"""Running a case: start it, complete its tasks, fire its timers, deliver messages.

Everything here works on one SpiffWorkflow workflow in memory and knows
nothing of HTTP or the database. Each action returns a :class:`Snapshot` of
what the case looks like afterwards (open tasks, pending timers, data) and the
:class:`~service.engine.specs.Journal` of what the engine did along the way.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from . import clock, expressions, limits, spiff, timers
from .bundle import ProcessDefinition
from .limits import Limits
from .parser import PathwayMessageEventDefinition, PathwaySignalEventDefinition, task_roles
from .parser import correlation_value as parser_correlation_value
from .specs import ItemsMultiInstance, Journal, JournalEntry, evaluated_at, item_label, json_safe

T = TypeVar("T")


class EngineError(Exception):
    """The engine could not go on: names the element and says why, in words."""

    def __init__(self, element: str | None, message: str) -> None:
        self.element, self.message = element, message
        super().__init__(f"{element}: {message}" if element else message)


class TaskNotOpen(Exception):
    """The task is not (or no longer) waiting for a person."""


class NothingWaits(Exception):
    """No step of the case waits for this message."""


@dataclass
class OpenTask:
    id: str
    name: str
    title: str
    roles: list[str]
    assignee: str | None
    due_at: datetime | None
    lane: str | None
    documentation: str | None


@dataclass
class PendingTimer:
    id: str
    name: str
    title: str
    due_at: datetime
    attached_to: str | None
    properties: dict[str, str]


@dataclass
class ThrownMessage:
    name: str
    payload: Any
    #: The value of the message's correlation key in the throwing case (Camunda 8 ``zeebe:subscription``), if it
    #: has one: only cases waiting with the same key take it.
    key: str | None = None


@dataclass
class ThrownSignal:
    """A signal thrown in a case: BPMN broadcasts it, so it reaches this case's catchers and every other case's."""
    name: str
    payload: Any


@dataclass
class Snapshot:
    completed: bool
    data: dict[str, Any]
    tasks: list[OpenTask]
    timers: list[PendingTimer]
    messages: list[str]
    journal: list[JournalEntry] = field(default_factory=list)
    thrown: list[ThrownMessage] = field(default_factory=list)
    #: Signals the case threw during this step, for the service to broadcast to the other cases.
    signals: list[ThrownSignal] = field(default_factory=list)
    #: Signal names the case waits for now.
    waiting_signals: list[str] = field(default_factory=list)
    #: The BPMN elements that ran during this step, in order (the path taken).
    path: list[str] = field(default_factory=list)


#: The format of the state :func:`dump` writes. It is stored inside the state and beside it (the case's
#: ``state_format``); :func:`load` reads this one and migrates those in :data:`OLDER_FORMATS`.
STATE_FORMAT = "pathways-3"
#: Formats older services wrote, each with how to bring a loaded case up to :data:`STATE_FORMAT`.
#: ``spiff-1.5``: SpiffWorkflow 3.2's own layout, no format inside, every task the case ever ran kept.
#: ``pathways-2``: no record of each key's newest write (:func:`spiff.newest_writes`): nothing to change, the
#: case keeps its steps' data until its next writes are recorded. (A service that writes ``pathways-2`` would
#: not keep the record up to date, so it refuses ``pathways-3``.)
OLDER_FORMATS = {f"spiff-{spiff.SERIALIZER_VERSION}": spiff.compact, "pathways-2": lambda workflow: None}


def dump(workflow: BpmnWorkflow) -> str:
    """The case's state as JSON text, without the spec, its format named inside."""
    return json.dumps({"format": STATE_FORMAT, **spiff.state_to_dict(workflow)}, separators=(",", ":"))


def notify_only_timers(process: ProcessDefinition) -> dict[str, bool]:
    """The elements of ``process`` whose timers only remind, each with whether it repeats (the timer sweep may fire
    them ahead of the engine: a cycle with :func:`advance_reminder`; its last firing and a one-off timer are marked
    fired when the engine next loads the case, :func:`catch_up`), cached."""
    return _derived(process, "notify_only_timers",
                    lambda: spiff.notify_only_timers(process.spec, process.subprocess_specs))


def _derived(process: ProcessDefinition, name: str, work_out: Callable[[], T]) -> T:
    """``process``'s fact ``name``, worked out once and kept on it (:attr:`ProcessDefinition.derived`)."""
    if name not in process.derived:
        process.derived[name] = work_out()
    return process.derived[name]


def correlation_keys(process: ProcessDefinition) -> dict[str, str]:
    """Message name -> the correlation key expression its catching events in ``process`` (and the processes it
    holds or calls) wait with (Camunda 8 ``zeebe:subscription correlationKey``), cached."""
    return _derived(process, "correlation_keys", lambda: _correlation_keys(process))


def _correlation_keys(process: ProcessDefinition) -> dict[str, str]:
    keys = {}
    for spec in [process.spec, *process.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            definition = getattr(task_spec, "event_definition", None)
            for each in getattr(definition, "event_definitions", None) or [definition]:
                if isinstance(each, PathwayMessageEventDefinition) and each.correlation_key:
                    keys[each.name] = each.correlation_key
    return keys


def correlation_text(value: Any) -> str:
    """A correlation key given from outside, as keys are compared: text (a number 12 is "12")."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def correlation_value(process: ProcessDefinition, name: str, data: dict[str, Any]) -> str | None:
    """The key a case of ``process`` with ``data`` waits for the message ``name`` with; None when the message
    has no key there, or the case's data gives it none."""
    expression = correlation_keys(process).get(name)
    if expression is None:
        return None
    try:
        return parser_correlation_value(expression, data)
    except expressions.ExpressionError:
        return None


def reminder_cycle(state: str, timer_id: str, element: str) -> dict[str, Any] | None:
    """A copy of the cycle of a waiting reminder (:func:`notify_only_timers`) as the stored state holds it (start,
    period, fired, cycles, next); None when the state is not one this reads (an older format, not waiting)."""
    dct = json.loads(state)
    if dct.get("format") != STATE_FORMAT:
        return None
    value = spiff.stored_cycle_value(dct, timer_id, element)
    return dict(value) if value is not None else None


def advance_reminder(cycle: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The cycle once its occurrence due at ``now`` has fired (a copy), as the engine's step leaves it (``cycles``
    0 after its last firing, which ends the timer: :func:`catch_up`); None when nothing is due."""
    value = dict(cycle)
    return value if timers.advance_cycle(value, now) else None


def catch_up(state: str, cycles: dict[str, tuple[str, dict[str, Any]]],
             fired: dict[str, tuple[str, datetime, dict[str, Any] | None]] | None = None) -> str:
    """``state`` with what the timer sweep fired ahead of it, so that the engine fires none of it again:

    - ``cycles``: the reminders' cycles (timer id -> (element, cycle), from the pending-timer rows); each occurrence
      is seen as fired, once. A cycle no further on than the state's own (the engine fired it since), or of
      another start or period, changes nothing.
    - ``fired``: the one-off reminders, and the last firings of cycles (timer id -> (element, when it fired, the
      cycle as its last firing left it or None)), from the case's ``fired_ahead``: each is marked fired, so the
      engine's next step runs it on to its end and notes no firing of its own (the sweep notified and audited
      it). One the state does not hold as a waiting timer due by then (the engine ran it on since) changes
      nothing, nor does any of a state in an older format (the sweep leaves such cases to the engine's step).
    """
    if not cycles and not fired:
        return state
    dct = json.loads(state)
    changed = False
    for timer_id, (element, cycle) in cycles.items():
        value = spiff.stored_cycle_value(dct, timer_id, element)
        if (value is None or value.get("start") != cycle.get("start") or value.get("period") != cycle.get("period")
                or not value.get("fired", 0) < cycle.get("fired", 0)):
            continue
        value.update(fired=cycle["fired"], cycles=cycle["cycles"], next=cycle["next"])
        changed = True
    if fired and dct.get("format") == STATE_FORMAT:
        for timer_id, (element, at, last_cycle) in fired.items():
            changed = spiff.fire_stored_timer(dct, timer_id, element, at, last_cycle) or changed
    return json.dumps(dct, separators=(",", ":")) if changed else state


def load(process: ProcessDefinition, state: str, state_format: str | None = None,
         limits: Limits | None = None) -> tuple[BpmnWorkflow, Journal]:
    """Rebuild a case from its state, with the sandboxed engine attached (it is never serialized).

    The format is the one named inside the state, else ``state_format`` (the case's stored column), else the
    oldest this engine knows. An older format is migrated; one this engine does not know is refused. Every
    step then taken on the case runs under ``limits`` (the defaults when None).
    """
    dct = json.loads(state)
    found = dct.pop("format", None) or state_format or next(iter(OLDER_FORMATS))
    if found != STATE_FORMAT and found not in OLDER_FORMATS:
        raise EngineError(None, f"the case's state is in format '{found}', which this version of the service "
                                f"cannot read (it reads {', '.join([STATE_FORMAT, *OLDER_FORMATS])})")
    workflow = spiff.state_from_dict(dct, process.spec, process.subprocess_specs)
    if found != STATE_FORMAT:
        OLDER_FORMATS[found](workflow)
    journal = Journal(limits)
    workflow.script_engine = journal
    return workflow, journal


def waiting_elements(workflow: BpmnWorkflow) -> list[str]:
    """The ids of the elements a running case waits on (open tasks, timers, messages, event sub-processes)."""
    return spiff.waiting_elements(workflow)


def element_ids(process: ProcessDefinition) -> set[str]:
    """Every element id of a process, its sub-processes and event sub-processes included."""
    return spiff.element_ids(process.spec, process.subprocess_specs)


def migrate(workflow: BpmnWorkflow, process: ProcessDefinition, mapping: dict[str, str]) -> Snapshot:
    """Move a running case onto ``process`` (another version of its pathway), each element in ``mapping``
    becoming the one it names; what the case looks like then. Nothing runs: the case waits where it waited.

    Raises :class:`EngineError` when the case cannot be moved (its state would not load on ``process``).
    """
    try:
        spiff.migrate(workflow, process.spec, process.subprocess_specs, mapping)
        # What is stored must load on the new version: a task whose element the new version lacks would not.
        spiff.state_from_dict(json.loads(json.dumps(spiff.state_to_dict(workflow))), process.spec,
                              process.subprocess_specs)
    except (ValueError, KeyError, SpiffWorkflowException) as error:
        raise EngineError(None, f"the case cannot move to this version: {error}") from error
    return snapshot(workflow)


def new_workflow(process: ProcessDefinition, data: dict[str, Any], limits: Limits | None = None) -> BpmnWorkflow:
    """A case of ``process`` that has not taken its first step, holding its start data."""
    workflow = BpmnWorkflow(process.spec, process.subprocess_specs, script_engine=Journal(limits))
    workflow.get_tasks(state=TaskState.READY)[0].data.update(data)
    return workflow


def start(process: ProcessDefinition, data: dict[str, Any],
          limits: Limits | None = None) -> tuple[BpmnWorkflow, Snapshot]:
    """Start a case of ``process`` with the start form's ``data`` and run it to its first wait, within ``limits``."""
    workflow = new_workflow(process, data, limits)
    return workflow, _advance(workflow, workflow.script_engine)


def complete_task(workflow: BpmnWorkflow, journal: Journal, task_id: str, data: dict[str, Any]) -> Snapshot:
    task = _open_task(workflow, task_id)
    before = spiff.before_run(task)  # the task's copy brought up to what other branches have answered since
    task.data.update(data)

    def run():
        task.run()
        journal.ran(task)
        spiff.after_run(task, before)  # the answers that changed a value are the case's newest

    return _advance(workflow, journal, run)


def fire_timers(workflow: BpmnWorkflow, journal: Journal) -> Snapshot:
    """Fire every timer that is due by the service clock, and run on."""
    return _advance(workflow, journal, workflow.refresh_timers)


def deliver_message(workflow: BpmnWorkflow, journal: Journal, name: str, payload: dict[str, Any]) -> Snapshot:
    if name not in waiting_messages(workflow):
        raise NothingWaits(name)
    event = BpmnEvent(PathwayMessageEventDefinition(name), payload=payload)
    return _advance(workflow, journal, lambda: workflow.send_event(event))


def deliver_signal(workflow: BpmnWorkflow, journal: Journal, name: str, payload: dict[str, Any]) -> Snapshot:
    """Let the case catch the signal ``name`` (thrown by another case, or sent from outside).

    The service broadcasts a signal: to every active case that waits for it (:func:`waiting_signals`, or
    ``Snapshot.waiting_signals``), and starts a case of every process whose start event catches it
    (:func:`catching_start_events`, :func:`start_by_event`).
    """
    if name not in waiting_signals(workflow):
        raise NothingWaits(name)
    event = BpmnEvent(PathwaySignalEventDefinition(name), payload=payload)
    return _advance(workflow, journal, lambda: workflow.send_event(event))


def open_ad_hoc(workflow: BpmnWorkflow) -> list[tuple[str, list[str]]]:
    """(element id, open activities) of each ad-hoc sub-process running: the worker may finish it."""
    return spiff.open_ad_hoc_subprocesses(workflow)


def ad_hoc_activities(process: ProcessDefinition) -> dict[str, tuple[str, str]]:
    """Each person's activity inside an ad-hoc sub-process of ``process`` -> (the sub-process's id, name)."""
    return _derived(process, "ad_hoc_activities",
                    lambda: spiff.ad_hoc_activities(process.spec, process.subprocess_specs))


def finish_ad_hoc(workflow: BpmnWorkflow, journal: Journal, element: str) -> Snapshot:
    """The worker has done the activities of the ad-hoc sub-process ``element`` they chose to: the rest are
    not done, and the case goes on after it. Raises :class:`NothingWaits` when it is not running."""
    if element not in {name for name, _ in open_ad_hoc(workflow)}:
        raise NothingWaits(element)
    return _advance(workflow, journal, lambda: spiff.finish_ad_hoc_subprocess(workflow, element))


@dataclass(frozen=True)
class StartTrigger:
    """A start event of a process that waits for a message or a signal."""
    kind: str  # message | signal
    name: str
    element: str


def catching_start_events(process: ProcessDefinition) -> list[StartTrigger]:
    """The message and signal start events of ``process`` (not of its event sub-processes).

    A message or signal that no case waits for starts a case of each deployed process listed here for it.
    """
    triggers = []
    for event in spiff.start_events(process.spec):
        definition = event.event_definition
        if isinstance(definition, PathwayMessageEventDefinition):
            triggers.append(StartTrigger("message", definition.name, event.bpmn_id))
        elif isinstance(definition, PathwaySignalEventDefinition):
            triggers.append(StartTrigger("signal", definition.name, event.bpmn_id))
    return triggers


def start_by_event(process: ProcessDefinition, kind: str, name: str, payload: dict[str, Any],
                   limits: Limits | None = None) -> tuple[BpmnWorkflow, Snapshot]:
    """Start a case of ``process`` through its start event catching the message or signal ``name``."""
    if not any(t.kind == kind and t.name == name for t in catching_start_events(process)):
        raise NothingWaits(name)
    workflow, first = start(process, {}, limits)
    deliver = deliver_message if kind == "message" else deliver_signal
    snap = deliver(workflow, workflow.script_engine, name, payload)
    snap.path, snap.journal = first.path + snap.path, first.journal + snap.journal
    return workflow, snap


def retry(workflow: BpmnWorkflow, journal: Journal, data: dict[str, Any]) -> Snapshot:
    """Run a case on after an error, with corrected data put where the engine will read it."""
    def apply():
        for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING):
            task.data.update(data)
        if workflow.last_task is not None:
            spiff.record_writes(workflow.last_task, data)  # a correction is the case's newest value
        workflow.refresh_timers()
    return _advance(workflow, journal, apply)


def _open_task(workflow: BpmnWorkflow, task_id: str):
    try:
        task = workflow.get_task_from_id(UUID(task_id))
    except (ValueError, KeyError, TypeError):
        task = None
    if task is None or task.state != TaskState.READY or not task.task_spec.manual:
        raise TaskNotOpen(task_id)
    return task


def _advance(workflow: BpmnWorkflow, journal: Journal, action=None) -> Snapshot:
    """Do ``action`` and run the case until it waits: one engine step, within the journal's limits."""
    with limits.step(journal.limits) as budget:
        try:
            if action is not None:
                action()
            before: dict = {}  # task id -> its data just before it ran (spiff.before_run)

            def will_run(task) -> None:
                before[task.id] = spiff.before_run(task)

            def ran(task) -> None:
                _ran(journal, budget, task, before.pop(task.id, None))

            while True:
                workflow.do_engine_steps(will_complete_task=will_run, did_complete_task=ran)
                if spiff.end_idle_event_subprocesses(workflow):
                    continue
                if not any(not t.task_spec.manual for t in workflow.get_tasks(state=TaskState.READY)):
                    break
            thrown, signals = _thrown_out(workflow, journal)
            spiff.refresh_open(workflow)
            spiff.compact(workflow)
            snap = snapshot(workflow)
        except SpiffWorkflowException as error:
            raise _engine_error(error) from error
        except (expressions.ExpressionError, limits.LimitExceeded) as error:
            raise EngineError(None, str(error)) from error
        except (RecursionError, MemoryError) as error:  # exhaustion outside the guards is still the case's error
            reason = f"the step ran out of resources ({type(error).__name__})"
            raise EngineError(_last_element(workflow), reason) from error
    snap.journal, snap.thrown, snap.signals, snap.path = list(journal.entries), thrown, signals, list(journal.path)
    journal.entries.clear()
    journal.path.clear()
    return snap


def _ran(journal: Journal, budget: limits.Budget, task, before: dict[str, Any] | None) -> None:
    spiff.after_run(task, before)
    journal.ran(task)
    _within(budget, task)


def _within(budget: limits.Budget, task) -> None:
    """Between tasks: time the engine spends outside expressions counts too, and stops the step at an element."""
    if task.task_spec.bpmn_id is None:  # the engine's own Start/End tasks: name the next element instead
        return
    try:
        budget.tick()
    except limits.LimitExceeded as error:
        raise EngineError(task.task_spec.bpmn_id, str(error)) from None


def _last_element(workflow: BpmnWorkflow) -> str | None:
    return workflow.last_task.task_spec.bpmn_id if workflow.last_task is not None else None


def _thrown_out(workflow: BpmnWorkflow, journal: Journal) -> tuple[list[ThrownMessage], list[ThrownSignal]]:
    """What the step threw that leaves the case: messages and signals; an error nothing caught stops it.

    Terminate, escalation and the other events SpiffWorkflow also hands back when nothing in the case catches
    them end there (an escalation nobody catches is not an error in BPMN).
    """
    messages = []
    signals = [ThrownSignal(name, json_safe(payload)) for name, payload in journal.signals]
    journal.signals.clear()
    for event in workflow.get_events():
        definition = event.event_definition
        if isinstance(definition, PathwayMessageEventDefinition):
            messages.append(ThrownMessage(definition.name, json_safe(event.payload),
                                          (event.correlations or {}).get("key")))
        elif isinstance(definition, ErrorEventDefinition):
            raise _uncaught_error(workflow, definition)
    return messages, signals


def _uncaught_error(workflow: BpmnWorkflow, definition) -> EngineError:
    element = spiff.element_throwing(workflow, definition)
    code = definition.code or definition.name
    return EngineError(element, f"the error '{code}' was thrown and nothing in the pathway catches it; "
                                f"the case stopped here")


def _engine_error(error: SpiffWorkflowException) -> EngineError:
    task = getattr(error, "task", None)
    element = task.task_spec.bpmn_id if task is not None else None
    # The message itself: str() of a SpiffWorkflow error appends its notes after ". ", and they follow below.
    message = str(getattr(error, "error", None) or (error.args[0] if error.args else error)).split("\n")[0]
    notes = [n for n in getattr(error, "notes", []) if "Business Rule Task" not in n]
    if notes:
        message += " (" + "; ".join(notes) + ")"
    return EngineError(element, message)


def waiting_messages(workflow: BpmnWorkflow) -> set[str]:
    """Names of the messages some step of the case waits for, event sub-processes included."""
    return _waiting_for(workflow, PathwayMessageEventDefinition, "MessageEventDefinition")


def waiting_signals(workflow: BpmnWorkflow) -> set[str]:
    """Names of the signals some step of the case waits for, event sub-processes included."""
    return _waiting_for(workflow, PathwaySignalEventDefinition, "SignalEventDefinition")


def _waiting_for(workflow: BpmnWorkflow, kind: type, event_type: str) -> set[str]:
    names = {e.name for e in workflow.waiting_events() if e.event_type.endswith(event_type)}
    names |= {d.name for _, d in spiff.waiting_gateway_events(workflow) if isinstance(d, kind)}
    if not workflow.is_completed():
        names |= {start_event.event_definition.name for start_event in spiff.event_subprocess_start_events(workflow)
                  if isinstance(start_event.event_definition, kind)}
    return names


def snapshot(workflow: BpmnWorkflow) -> Snapshot:
    tasks = [_open_task_view(t) for t in workflow.get_tasks(state=TaskState.READY, manual=True)]
    pending = []
    for task in workflow.get_tasks(state=TaskState.WAITING):
        due = timers.due_at(task)
        if due is not None:
            spec = spiff.gateway_timer_spec(task) or task.task_spec  # behind an event-based gateway: its timer
            pending.append(PendingTimer(
                id=str(task.id), name=spec.bpmn_id, title=spec.bpmn_name or spec.bpmn_id,
                due_at=due, attached_to=spiff.attached_task_id(task), properties=dict(spec.extensions or {})))
    return Snapshot(completed=workflow.is_completed(), data=case_data(workflow), tasks=tasks,
                    timers=sorted(pending, key=lambda t: t.due_at), messages=sorted(waiting_messages(workflow)),
                    waiting_signals=sorted(waiting_signals(workflow)))


def _open_task_view(task) -> OpenTask:
    spec, ext = task.task_spec, task.task_spec.extensions or {}
    if "due_at" not in task.internal_data:
        task.internal_data["due_at"] = evaluated_at(task, "due date", lambda: _due_date(ext.get("dueDate"), task.data))
    assignee = ext.get("assignee")
    if expressions.is_expression(assignee):
        assignee = evaluated_at(task, "assignee", lambda: expressions.evaluate(assignee, task.data))
    due = task.internal_data["due_at"]
    return OpenTask(
        id=str(task.id), name=spec.bpmn_id, title=_title(task),
        roles=task_roles(spec), assignee=assignee or None,
        due_at=datetime.fromisoformat(due) if due else None, lane=spec.lane, documentation=spec.documentation,
    )


def _title(task) -> str:
    """The task's name; an instance of a multi-instance task adds its item ("See the child: Amy")."""
    title = task.task_spec.bpmn_name or task.task_spec.bpmn_id
    owner = task.parent.task_spec if task.parent is not None else None
    if isinstance(owner, ItemsMultiInstance) and owner.element_variable in task.data:
        return f"{title}: {item_label(task.data[owner.element_variable])}"
    return title


def _due_date(expression: str | None, data: dict[str, Any]) -> str | None:
    if not expression:
        return None
    value = timers.timer_value(expression, data)
    due = timers.due_from(value, clock.now())  # a duration counts from when the task opened
    return due.isoformat()


def case_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """What the case knows now: each key's newest write in any branch, over the latest step's data and what
    open steps have gathered.

    Each step of a parallel branch holds its own copy of the data: a step that opened before the other branch
    answered a key again still holds the older answer. The engine keeps each key's newest write
    (:func:`spiff.newest_writes`); a case started before it did has none, and shows its steps' data as before.
    """
    data: dict[str, Any] = {}
    if workflow.last_task is not None:
        data.update(workflow.last_task.data)
    for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING):
        data.update(task.data)
    if workflow.is_completed():
        ends = [t for t in workflow.get_tasks(state=TaskState.COMPLETED) if t.task_spec.name == "End"]
        if ends:
            data.update(ends[-1].data)
    data.update(spiff.newest_writes(workflow))
    return json_safe({k: v for k, v in data.items() if not k.startswith("_")})
