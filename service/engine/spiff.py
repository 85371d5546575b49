"""Every use of SpiffWorkflow 3.2.0 internals, in one place.

The rest of the engine calls SpiffWorkflow's public API (``BpmnWorkflow``,
``Task.run``, ``do_engine_steps``...) and, for anything that reaches into its
private attributes or its task tree, the functions here. tests/test_spiff_adapter.py
pins the behaviour they rely on, so that a new SpiffWorkflow fails there first.
"""
from __future__ import annotations

import json
import threading
from copy import deepcopy
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import AdHocSubprocessSpec
from SpiffWorkflow.bpmn.specs.control import BpmnStartTask, _EndJoin
from SpiffWorkflow.bpmn.specs.defaults import EventBasedGateway
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import EventSubprocess
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

#: The SpiffWorkflow release this module was written against (pinned in pyproject.toml).
SPIFF_VERSION = "3.2.0"


# -- storing a case -------------------------------------------------------------------------

class _StateOnlyConverter(BpmnWorkflowConverter):
    """Stores the case's state without its spec: specs are parsed once per deployment and cached.

    Calls the grandparent's ``to_dict`` (the workflow's own fields) to leave the spec out, and rebuilds a
    workflow as ``BpmnWorkflowConverter.from_dict`` does, from the cached specs instead of stored ones.
    """

    def to_dict(self, workflow):
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        return dct

    def from_dict(self, dct):
        spec, subprocess_specs = dct.pop("specs")
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        return workflow


class _TaskConverter(TaskConverter):
    """SpiffWorkflow 3.2 stores a task's data as a delta but forgets to convert it (dates, datetimes):
    restoring converts it, so dumping must too."""

    def to_dict(self, task):
        dct = super().to_dict(task)
        dct["data"] = self.registry.convert(dct["data"])
        if dct["delta"]:
            dct["delta"]["updates"] = self.registry.convert(dct["delta"]["updates"])
        return dct


def _serializer() -> BpmnWorkflowSerializer:
    config = dict(CAMUNDA_CONFIG)
    config[BpmnWorkflow] = _StateOnlyConverter
    config[Task] = _TaskConverter
    registry = BpmnWorkflowSerializer.configure(config)
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]),
                      "date")
    return BpmnWorkflowSerializer(registry)


SERIALIZER = _serializer()
#: SpiffWorkflow's own serialization format, which a stored case's tasks follow.
SERIALIZER_VERSION: str = SERIALIZER.VERSION


def state_to_dict(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The case's tasks, data and sub-processes as plain JSON values, without its spec."""
    return SERIALIZER.to_dict(workflow)


def state_from_dict(dct: dict[str, Any], spec, subprocess_specs: dict[str, Any]) -> BpmnWorkflow:
    """Rebuild a case from :func:`state_to_dict`'s output and the (cached) specs of its process."""
    return SERIALIZER.from_dict({**dct, "specs": (spec, subprocess_specs)})


def state_json(workflow: BpmnWorkflow) -> str:
    return json.dumps(state_to_dict(workflow), separators=(",", ":"))


# -- parsing --------------------------------------------------------------------------------

def find_bpmn_dependencies(parser: BpmnParser, process) -> None:
    """Record the processes a diagram calls, skipping BpmnDmnParser's search for DMN files.

    The decisions are resolved from the service's registry instead, so this calls BpmnParser's version,
    two levels up from CamundaParser.
    """
    BpmnParser._find_dependencies(parser, process)


def wrap_in_multi_instance(task_parser, make_spec) -> None:
    """Replace the task a parser just made with ``make_spec(name)``, running it once per instance.

    As SpiffWorkflow's own parsers do: the original spec becomes ``<name> [child]``, the instances' spec.
    """
    original = task_parser.spec.task_specs.pop(task_parser.task.name)
    task_parser.task = make_spec(original.name)
    task_parser._copy_task_attrs(original)


def add_data_mapping(task_spec, mapping) -> None:
    """Have ``mapping.get(task)`` run when the task starts and ``mapping.set(task)`` when it completes.

    Through SpiffWorkflow's data association hooks (``BpmnTaskSpec._update_hook`` calls each input
    association's ``get``; ``_on_complete_hook`` each output association's ``set``, then pops each input
    association's ``bpmn_id`` from the data).
    """
    task_spec.data_input_associations.append(mapping)
    task_spec.data_output_associations.append(mapping)


def instance_key(child: Task) -> Any:
    """The index (or key) in the collection of the item a multi-instance child runs for."""
    return child.internal_data.get("key_or_index")


def note_instance_merged(my_task: Task, child: Task) -> None:
    """Record that a multi-instance child's results are in (SpiffWorkflow counts these to finish)."""
    my_task.internal_data["merged"].append(str(child.id))


def use_start_task(spec, start_class: type) -> None:
    """Give a parsed process spec a ``Start`` task of ``start_class`` (same state, other behaviour).

    The parser builds ``BpmnStartTask`` itself; there is no hook to choose its class.
    """
    if type(spec.start) is BpmnStartTask:
        spec.start.__class__ = start_class


def add_triggered_subprocess(start_spec, my_task: Task, spec_name: str):
    """Start an event sub-process from the ``Start`` task without making it an output of the shared spec."""
    spec = start_spec._wf_spec.task_specs.get(spec_name)
    if start_spec not in spec.inputs:  # once per spec: an input (TaskSpec.test needs one), not an output of Start
        spec._connect_notify(start_spec)
        spec.connect(start_spec._wf_spec.end)
    child = my_task._add_child(spec, TaskState.FUTURE)
    child.triggered = True
    child.task_spec._update(child)
    return child.id


def start_events(spec) -> list:
    """The start event specs of a process (SpiffWorkflow connects each to the process's ``Start`` task)."""
    return [task_spec for task_spec in spec.start.outputs if hasattr(task_spec, "event_definition")]


def event_subprocess_start_events(workflow: BpmnWorkflow) -> list:
    """The start event specs of the event sub-processes that a message, signal... triggers in this process."""
    events = []
    for spec_name in workflow.spec.start.trigger_specs:
        sub_spec = workflow.subprocess_specs.get(spec_name)
        events += getattr(sub_spec, "bpmn_start_events", []) if sub_spec else []
    return events


_VALIDATOR: BpmnValidator | None = None
#: lxml's XMLSchema is neither built nor used safely by two threads at once: the timer workers of a process,
#: parsing on a cold cache together, failed to build it (XMLSchemaParseError, then every parse of that process),
#: and its ``error_log`` is the last validation's, whichever thread ran it.
_VALIDATING = threading.Lock()


def xsd_errors(root) -> list[tuple[int, str]]:
    """(line, message) of the first ten ways a BPMN document breaks the BPMN 2.0 schema."""
    global _VALIDATOR
    with _VALIDATING:
        _VALIDATOR = _VALIDATOR or BpmnValidator()
        if _VALIDATOR.validator.validate(root):
            return []
        return [(error.line, error.message) for error in list(_VALIDATOR.validator.error_log)[:10]]


# -- running --------------------------------------------------------------------------------

class AdHocProcessSpec(AdHocSubprocessSpec):
    """The inside of an ad-hoc sub-process, checking its completion condition after each activity.

    SpiffWorkflow 3.2 merges the sub-process's data into each open activity after every step and then
    removes a ``data_objects`` key that its own data never has (a ``KeyError``: every ad-hoc sub-process
    failed as it started); a failing condition is reported on the ad-hoc sub-process, by its id.
    """

    def path_complete(self, workflow, task):
        workflow.data.setdefault("data_objects", {})
        try:
            super().path_complete(workflow, task)
        except ValueError as error:  # the sandbox's ExpressionError: the condition could not be evaluated
            owner = workflow.top_workflow.get_task_from_id(workflow.parent_task_id)
            raise WorkflowTaskException(f"completion condition: {error}", task=owner or task) from None
        finally:
            workflow.data.pop("data_objects", None)


def open_ad_hoc_subprocesses(workflow: BpmnWorkflow) -> list[tuple[str, list[str]]]:
    """(element id, the ids of its activities still open) of each ad-hoc sub-process the case is inside."""
    from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import AdHocSubprocess

    found = []
    for task in workflow.get_tasks(state=TaskState.STARTED | TaskState.WAITING | TaskState.READY):
        if isinstance(task.task_spec, AdHocSubprocess) and task.id in workflow.subprocesses:
            inner = workflow.subprocesses[task.id]
            found.append((task.task_spec.bpmn_id, [t.task_spec.bpmn_id for t in inner.get_tasks(state=TaskState.READY)
                                                   if t.task_spec.manual]))
    return found


def ad_hoc_activities(spec, subprocess_specs: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each user / manual task inside an ad-hoc sub-process -> (the sub-process's id, its name)."""
    from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import AdHocSubprocess

    found = {}
    for process in [spec, *subprocess_specs.values()]:
        for task_spec in process.task_specs.values():
            inner = subprocess_specs.get(task_spec.spec) if isinstance(task_spec, AdHocSubprocess) else None
            for activity in inner.task_specs.values() if inner is not None else ():
                if activity.manual:
                    found[activity.bpmn_id] = (task_spec.bpmn_id, task_spec.bpmn_name or task_spec.bpmn_id)
    return found


def finish_ad_hoc_subprocess(workflow: BpmnWorkflow, element: str) -> bool:
    """End the running ad-hoc sub-process ``element`` as its completion condition would: the activities the
    worker did not choose are cancelled and the sub-process completes. False when none is running."""
    from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import AdHocSubprocess

    for task in workflow.get_tasks(state=TaskState.STARTED | TaskState.WAITING | TaskState.READY):
        if not (isinstance(task.task_spec, AdHocSubprocess) and task.task_spec.bpmn_id == element):
            continue
        inner = workflow.subprocesses.get(task.id)
        if inner is None:
            return False
        for active in inner.get_tasks(state=TaskState.NOT_FINISHED_MASK):
            if active.task_spec.name not in (inner.spec.end.name, "End") and not isinstance(active.task_spec, _EndJoin):
                workflow.event_manager.remove_task(active)
                active.cancel()
        for end in inner.get_tasks(state=TaskState.NOT_FINISHED_MASK):
            if isinstance(end.task_spec, _EndJoin):
                end.task_spec._update(end)
        return True
    return False


def cancel_rest_of_process(my_task: Task) -> None:
    """Cancel every unfinished task of ``my_task``'s process but it and what follows it.

    For an interrupting event sub-process: the tasks of its own process level only (SpiffWorkflow's
    ``get_tasks`` would also reach into every sub-process, this one's included).
    """
    top, process = my_task.workflow.top_workflow, my_task.workflow
    own = {task.id for task in my_task}
    for task in list(process.tasks.values()):
        if (task.id in own or task.id not in process.tasks or task.has_state(TaskState.FINISHED_MASK)
                or task.task_spec.name in ("Start", "Root", "End") or task.parent is None):
            continue
        _drop_subprocess(top, task.id)
        top.event_manager.remove_task(task)
        task.cancel()


def end_idle_event_subprocesses(workflow: BpmnWorkflow) -> bool:
    """Cancel event sub-processes still waiting for their start event once the rest of their process is done.

    SpiffWorkflow 3.2 sets up a timer-start event sub-process when the case starts and the process then waits
    for it; in BPMN an event sub-process that has not started holds the process open no longer. Returns
    whether anything changed (the process end may now run).
    """
    changed = False
    for process in [workflow, *workflow.subprocesses.values()]:
        handlers = [t for t in process.tasks.values() if isinstance(t.task_spec, EventSubprocess)
                    and not t.has_state(TaskState.FINISHED_MASK)]
        if not handlers:
            continue
        waiting = {d.id for t in handlers for d in t}
        running = [t for t in process.tasks.values() if t.id not in waiting and t.has_state(TaskState.DEFINITE_MASK)
                   and not isinstance(t.task_spec, _EndJoin) and t.task_spec.name not in ("Start", "Root", "End")]
        if running:
            continue
        idle = [t for t in handlers if not _has_started(workflow, t)]
        for task in handlers:
            if task in idle:
                continue
            # Started, and still running (a repeating timer's reminder open): it finishes what it started, but its
            # start event catches nothing more once the rest of its process is done.
            for start in _waiting_start_events(workflow, task):
                workflow.event_manager.remove_task(start)
                start._set_state(TaskState.CANCELLED)
                changed = True
        for task in idle:
            _drop_subprocess(workflow, task.id)
            task.cancel()
        if not idle:
            continue
        ends = [t for t in process.tasks.values() if isinstance(t.task_spec, _EndJoin) and t.state == TaskState.WAITING]
        for task in ends:
            task.task_spec._update(task)
        changed = True
    return changed


def _has_started(workflow: BpmnWorkflow, my_task: Task) -> bool:
    """Whether an event sub-process has work running: a step past its start event not yet finished."""
    subprocess = workflow.subprocesses.get(my_task.id)
    if subprocess is None:
        return False
    starts = set(start_events(subprocess.spec))
    return any(t.has_state(TaskState.READY | TaskState.STARTED | TaskState.WAITING) and t.task_spec not in starts
               and not isinstance(t.task_spec, _EndJoin) and t.task_spec.name not in ("Start", "End")
               for t in subprocess.tasks.values())


def _waiting_start_events(workflow: BpmnWorkflow, my_task: Task) -> list[Task]:
    subprocess = workflow.subprocesses.get(my_task.id)
    if subprocess is None:
        return []
    starts = set(start_events(subprocess.spec))
    return [t for t in subprocess.tasks.values() if t.task_spec in starts and t.state == TaskState.WAITING]


def event_subprocess_task(my_task: Task) -> Task | None:
    """The event sub-process task in the enclosing process that runs ``my_task``'s process, if it is one."""
    parent_id = getattr(my_task.workflow, "parent_task_id", None)
    if parent_id is None:
        return None
    owner = my_task.workflow.top_workflow.get_task_from_id(parent_id)
    return owner if isinstance(owner.task_spec, EventSubprocess) else None


def element_throwing(workflow: BpmnWorkflow, definition) -> str | None:
    """The id of the element whose event definition is ``definition`` (the spec object), in any process."""
    for spec in [workflow.spec, *workflow.subprocess_specs.values()]:
        for task_spec in spec.task_specs.values():
            if getattr(task_spec, "event_definition", None) is definition:
                return task_spec.bpmn_id
    return None


def gateway_events(task_spec) -> list[tuple[Any, Any]]:
    """(catch event spec, event definition) of each event an event-based gateway waits for.

    SpiffWorkflow 3.2 moves each following catch event's definition into the gateway's
    ``MultipleEventDefinition`` (in the order of its outputs) and leaves the event a none event.
    """
    if not isinstance(task_spec, EventBasedGateway):
        return []
    return list(zip(task_spec.outputs, task_spec.event_definition.event_definitions))


def waiting_gateway_events(workflow: BpmnWorkflow) -> list[tuple[Any, Any]]:
    """The events the case's waiting event-based gateways wait for."""
    return [pair for task in workflow.get_tasks(state=TaskState.WAITING) for pair in gateway_events(task.task_spec)]


def gateway_timer_spec(my_task: Task):
    """The timer catch event behind a waiting event-based gateway (None for other tasks)."""
    return next((spec for spec, definition in gateway_events(my_task.task_spec)
                 if isinstance(definition, TimerEventDefinition)), None)


def timer_value(my_task: Task) -> Any:
    """What a timer task keeps of its due time (SpiffWorkflow's ``event_value``), or None."""
    return my_task.internal_data.get("event_value")


def set_timer_value(my_task: Task, value: Any) -> None:
    my_task.internal_data["event_value"] = value


def timer_fired(my_task: Task) -> bool:
    return bool(my_task.internal_data.get("event_fired", False))


def mark_timer_fired(my_task: Task, fired: bool = True) -> None:
    """Mark a timer task fired: SpiffWorkflow's catching event then runs it."""
    my_task.internal_data["event_fired"] = fired


def attached_task_id(my_task: Task) -> str | None:
    """The id of the task a boundary event is attached to (None for other events).

    SpiffWorkflow puts a boundary event and its activity under one ``<activity>.BoundaryEventSplit`` task.
    """
    parent = my_task.parent
    if parent is None or not parent.task_spec.name.endswith(".BoundaryEventSplit"):
        return None
    attached = parent.task_spec.name.removesuffix(".BoundaryEventSplit")
    return next((str(c.id) for c in parent.children if c.task_spec.name == attached), None)


# -- reminders that only notify ----------------------------------------------------------------

def notify_only_timers(spec, subprocess_specs: dict[str, Any]) -> dict[str, bool]:
    """The element ids of the reminders whose firing changes nothing but the timer itself, each with whether it
    repeats (a cycle).

    A non-interrupting boundary timer (a cycle such as ``R/P1D``, a duration such as ``P2D``, or a date) with a
    ``notify`` property, whose one outgoing flow reaches a plain end event (no event definition, no property
    such as ``outcome``, no script or data output): firing it notifies, and the case's open tasks, data and
    waits stay as they were. After a cycle's step SpiffWorkflow's branch for the firing is pruned
    (:func:`_prune_fired_cycles`), so all a firing leaves in the state is the timer's own value (its next
    occurrence and the count fired); a one-off timer's firing ends its branch.
    """
    from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
    from SpiffWorkflow.bpmn.specs.mixins.events.end_event import EndEvent
    from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent

    found = {}
    for process in [spec, *subprocess_specs.values()]:
        for task_spec in process.task_specs.values():
            if (not isinstance(task_spec, BoundaryEvent) or task_spec.cancel_activity
                    or not isinstance(task_spec.event_definition, TimerEventDefinition)
                    or not str((task_spec.extensions or {}).get("notify") or "").strip()):
                continue
            # SpiffWorkflow links a boundary event back to its activity's join besides the drawn flow.
            drawn = [o for o in task_spec.outputs if not o.name.endswith(".BoundaryEventJoin")]
            if len(drawn) != 1:
                continue
            end = drawn[0]
            plain = (isinstance(end, EndEvent) and type(end.event_definition) is NoneEventDefinition
                     and not (end.extensions or {}) and not getattr(end, "prescript", None)
                     and not getattr(end, "postscript", None) and not getattr(end, "data_output_associations", None)
                     and not getattr(end, "io_specification", None) and len(end.outputs) <= 1)
            if plain:
                found[task_spec.bpmn_id] = isinstance(task_spec.event_definition, CycleTimerEventDefinition)
    return found


def stored_cycle_value(dct: dict[str, Any], task_id: str, element: str) -> dict[str, Any] | None:
    """The stored value of a waiting cycle timer (in :func:`state_to_dict`'s layout), to be changed in place;
    None when the state holds no such waiting timer."""
    value = (stored_timer(dct, task_id, element) or {}).get("event_value")
    return value if isinstance(value, dict) else None


def stored_timer(dct: dict[str, Any], task_id: str, element: str) -> dict[str, Any] | None:
    """What a waiting timer task keeps of its timer (its ``internal_data``: ``event_value``, ``event_fired``) in
    :func:`state_to_dict`'s layout, to be changed in place; None when the state holds no such waiting timer."""
    for tasks in [dct.get("tasks", {}), *(sub.get("tasks", {}) for sub in dct.get("subprocesses", {}).values())]:
        task = tasks.get(task_id)
        if task is None:
            continue
        internal = task.get("internal_data")
        if task.get("task_spec") != element or task.get("state") != TaskState.WAITING or not isinstance(internal, dict):
            return None
        return internal
    return None


def fire_stored_timer(dct: dict[str, Any], task_id: str, element: str, due_by: datetime,
                      last_cycle: dict[str, Any] | None = None) -> bool:
    """Mark the waiting timer ``task_id`` fired in the stored state ``dct`` (in place), so that the engine's next
    refresh runs it on as fired, with no firing of its own: a one-off timer due by ``due_by`` is marked fired
    (as :func:`mark_timer_fired` marks it); a cycle takes ``last_cycle``, its value after its last firing (no
    cycles left), which ends it. False, and nothing changed, when the state holds no such waiting timer."""
    internal = stored_timer(dct, task_id, element)
    if internal is None or internal.get("event_fired"):
        return False
    value = internal.get("event_value")
    if last_cycle is None:
        if not isinstance(value, str) or datetime.fromisoformat(value) > due_by:
            return False
        internal["event_fired"] = True
        return True
    if (not isinstance(value, dict) or last_cycle.get("cycles") != 0 or value.get("start") != last_cycle.get("start")
            or value.get("period") != last_cycle.get("period")):
        return False
    internal["event_value"] = dict(last_cycle)
    return True


# -- the newest write of each key, across parallel branches -------------------------------------

#: Where a case keeps, for each key of its data, the value the newest write in any branch gave it: in the
#: top workflow's ``data`` (workflow-wide, and serialized with the state by SpiffWorkflow). SpiffWorkflow gives
#: each task its own copy of the data, so a branch's open task holds whatever it inherited when it opened, and
#: a parallel join merges its branches' copies in the order they arrived: an answer given again in one branch
#: lost to the other branch's older copy. Only the latest value per key is kept (never a history), and keys
#: starting with ``_`` (the engine's own) are not.
NEWEST = "_newest"


def newest_writes(workflow: BpmnWorkflow) -> dict[str, Any]:
    """Key -> the value of its newest write in the case (empty for a case started before it was kept)."""
    return workflow.top_workflow.data.get(NEWEST) or {}


def record_writes(my_task: Task, values: dict[str, Any], gone: Iterable[str] = ()) -> None:
    """``values`` were written (``gone`` deleted) by ``my_task`` now: they are the case's newest.

    Nothing is recorded for a task inside a multi-instance activity's instance: what an instance answers is
    the activity's to keep (under its ``*_answers``), not the case's.
    """
    values = {k: v for k, v in values.items() if not k.startswith("_")}
    gone = [k for k in gone if not k.startswith("_")]
    if not (values or gone) or _inside_instance(my_task):
        return
    newest = my_task.workflow.top_workflow.data.setdefault(NEWEST, {})
    for key in gone:
        newest.pop(key, None)
    for key, value in values.items():
        newest.pop(key, None)  # re-inserted: the order of the dict is the order of the writes
        newest[key] = deepcopy(value)


def refresh(my_task: Task) -> None:
    """Bring ``my_task``'s copy of each key it holds up to that key's newest write."""
    newest = newest_writes(my_task.workflow)
    if not newest:
        return
    data = my_task.data
    for key, value in newest.items():
        if key in data and data[key] != value:
            data[key] = deepcopy(value)


def refresh_open(workflow: BpmnWorkflow) -> None:
    """Bring every open step's copy (tasks, timers, messages waiting) up to the newest writes, after a step:
    what it shows and evaluates while it waits (its assignee, its form) is the case's newest."""
    if newest_writes(workflow):
        for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING):
            refresh(task)


def before_run(my_task: Task) -> dict[str, Any] | None:
    """Before ``my_task`` runs: its data brought up to the newest writes, and what it was then (to see what
    the task writes); None for a join, whose run merges its branches' data rather than writing.

    A join merges the data of each branch's last step (the parents of its finished copies, oldest arrival
    first, then its own parent's), letting the branch that arrived last win whatever it holds, and the step
    after it inherits the result as the join completes: those branches' data are brought up to date first.
    """
    refresh(my_task)
    if isinstance(my_task.task_spec, Join):
        for task in [my_task, *my_task.workflow.tasks.values()]:
            if task.task_spec is my_task.task_spec and task.parent is not None and (
                    task is my_task or task.has_state(TaskState.FINISHED_MASK)):
                refresh(task.parent)
        return None
    return {k: deepcopy(v) for k, v in my_task.data.items() if not k.startswith("_")}


def after_run(my_task: Task, before: dict[str, Any] | None) -> None:
    """After ``my_task`` ran: record what it changed (nothing for a join)."""
    if before is None:
        return
    data = my_task.data
    changed = {k: v for k, v in data.items() if not k.startswith("_") and (k not in before or before[k] != v)}
    record_writes(my_task, changed, [k for k in before if k not in data])


def _inside_instance(my_task: Task) -> bool:
    """Whether the task runs inside one instance of a multi-instance activity (or a sub-process it started)."""
    from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask

    task: Task | None = my_task
    while task is not None:
        step, parent = task, task.parent
        while parent is not None:  # an instance is its activity's child of the instances' spec (what follows
            if isinstance(parent.task_spec, MultiInstanceTask) and step.task_spec.name == parent.task_spec.task_spec:
                return True  # the activity is its child too, of another spec)
            step, parent = parent, parent.parent
        workflow = task.workflow
        owner = getattr(workflow, "parent_task_id", None)
        task = workflow.top_workflow.get_task_from_id(owner) if owner is not None and workflow is not workflow.top_workflow else None
    return False


# -- keeping a case's task tree bounded -------------------------------------------------------

def compact(workflow: BpmnWorkflow) -> int:
    """Drop what finished branches leave in the task tree; return how many tasks went.

    SpiffWorkflow keeps every task a case ever ran, as one tree: each turn of a
    loop hangs the next iteration below the last, each repeating timer adds a
    branch. State and step time grow with the case's age, and past a depth of
    about 1,000 its recursive ancestor walks fail. The audit log keeps the
    history, so after each step this keeps only what a later step can read:
    unfinished tasks and the path to them, the split a waiting boundary join
    looks up, the join tokens a gateway has not yet consumed, the last task run.
    """
    if workflow.is_completed():  # nothing runs any more: keep what the final data is read from
        return 0
    removed = _prune_fired_cycles(workflow)
    for key in [None, *workflow.subprocesses]:
        process = workflow if key is None else workflow.subprocesses.get(key)
        if process is not None and not process.is_completed():  # an earlier pass may have dropped it
            removed += _compact_process(workflow, process)
    return removed + _drop_orphan_subprocesses(workflow)


def _compact_process(top: BpmnWorkflow, process) -> int:
    tasks = list(process.tasks.values())
    tokens = _unconsumed_join_tokens(tasks) | _fold_ended_branches(tasks)
    keep = {process.task_tree.id} | _splits_joins_will_read(tasks)
    if process.last_task is not None:
        keep.add(process.last_task.id)
    live = _live_tasks(process.task_tree, tokens | keep)
    removed = 0
    for task in tasks:
        if task.id not in process.tasks or not _finished(task):
            continue
        for child in task.children:
            if child.id not in live:
                removed += _remove_branch(top, process, task, child)
        if task.id not in keep and _may_splice(task, tokens):
            _splice(top, process, task)
            removed += 1
    return removed


def _finished(task: Task) -> bool:
    return task.has_state(TaskState.FINISHED_MASK)


def _splits_joins_will_read(tasks: list[Task]) -> set:
    """The split each unfinished boundary or start-event join finds as its nearest ancestor of that spec."""
    splits = set()
    for task in tasks:
        name = getattr(task.task_spec, "split_task", None) if isinstance(task.task_spec, Join) else None
        if name and not _finished(task):
            ancestor = task.parent
            while ancestor is not None and ancestor.task_spec.name != name:
                ancestor = ancestor.parent
            if ancestor is not None:
                splits.add(ancestor.id)
    return splits


def _unconsumed_join_tokens(tasks: list[Task]) -> set:
    """Finished arrivals at a converging gateway that the gateway has not fired on yet.

    A parallel or inclusive gateway counts a token per incoming flow from the
    finished (often cancelled) copies of itself and their parents; once a copy
    has completed, the arrivals before it are spent.
    """
    fired: dict[str, float] = {}
    for task in tasks:
        if _counts_tokens(task) and task.state == TaskState.COMPLETED:
            fired[task.task_spec.name] = max(fired.get(task.task_spec.name, 0.0), task.last_state_change)
    return {task.id for task in tasks if _counts_tokens(task) and _finished(task)
            and task.state != TaskState.COMPLETED and task.last_state_change > fired.get(task.task_spec.name, -1.0)}


def _fold_ended_branches(tasks: list[Task]) -> set:
    """Keep one of the branches that reached an end event, holding the data of them all.

    The process end (an ``_EndJoin``) waits for every branch; each branch that arrives cancels the copy
    waiting before it, and when the last one fires it merges, oldest first, the data of every cancelled
    copy's end event. Folding that data into the newest end event keeps the final data the same while
    the older branches go.
    """
    ended = sorted((t for t in tasks if isinstance(t.task_spec, _EndJoin) and t.state == TaskState.CANCELLED
                    and t.parent is not None), key=lambda t: t.last_state_change)
    if not ended:
        return set()
    if len(ended) > 1:
        folded: dict[str, Any] = {}
        for task in ended:
            DeepMerge.merge(folded, task.parent.data)
        ended[-1].parent.data = folded
    return {ended[-1].id}


def _counts_tokens(task: Task) -> bool:
    return isinstance(task.task_spec, UnstructuredJoin) and not isinstance(task.task_spec, _EndJoin)


def _live_tasks(root: Task, keep: set) -> set:
    """Ids of the tasks that are unfinished or kept, and of every ancestor of one."""
    live, order, stack = set(), [], [root]
    while stack:  # iterative: a tree that is already deep must not overflow the stack here too
        task = stack.pop()
        order.append(task)
        stack.extend(task.children)
    for task in reversed(order):
        if task.id in keep or not _finished(task) or any(c in live for c in task._children):
            live.add(task.id)
    return live


def _may_splice(task: Task, tokens: set) -> bool:
    """A finished task with one child may leave the tree, unless a join reads it as that child's parent."""
    if task.parent is None or len(task._children) != 1:
        return False
    child = task.children[0]
    return not (isinstance(child.task_spec, Join) and (not _finished(child) or child.id in tokens))


def _splice(top: BpmnWorkflow, process, task: Task) -> None:
    """Put ``task``'s only child in its place under its parent."""
    parent, child = task.parent, task.children[0]
    parent._children[parent._children.index(task.id)] = child.id
    child._parent = parent.id
    task._children = []
    _forget(top, process, [task])


def _remove_branch(top: BpmnWorkflow, process, parent: Task, child: Task) -> int:
    branch = list(_iterate(child))
    parent._children.remove(child.id)
    _forget(top, process, branch)
    return len(branch)


def _iterate(task: Task) -> Iterable[Task]:
    stack = [task]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)


def _forget(top: BpmnWorkflow, process, tasks: list[Task]) -> None:
    for task in tasks:
        process.tasks.pop(task.id, None)
        top.event_manager.remove_task(task)
        _drop_subprocess(top, task.id)


def _drop_subprocess(top: BpmnWorkflow, task_id) -> int:
    """Forget the sub-process a removed task ran, with those its own tasks ran."""
    subprocess = top.subprocesses.pop(task_id, None)
    if subprocess is None:
        return 0
    for task in subprocess.tasks.values():
        top.event_manager.remove_task(task)
        _drop_subprocess(top, task.id)
    return len(subprocess.tasks)


def _drop_orphan_subprocesses(top: BpmnWorkflow) -> int:
    """Sub-processes whose task has left the tree (SpiffWorkflow never deletes them itself)."""
    owners = set(top.tasks).union(*(sp.tasks for sp in top.subprocesses.values()))
    return sum(_drop_subprocess(top, key) for key in [k for k in top.subprocesses if k not in owners])


def _prune_fired_cycles(workflow: BpmnWorkflow) -> int:
    """Drop what each firing of a repeating timer leaves behind, below the timer that keeps waiting.

    SpiffWorkflow adds a branch per firing under the waiting timer and never removes it: the finished
    reminder path, and another copy of the link back to the attached task.
    """
    removed = 0
    for task in list(workflow.get_tasks(state=TaskState.WAITING)):
        if not isinstance(getattr(task.task_spec, "event_definition", None), CycleTimerEventDefinition):
            continue
        links = [c for c in task.children if c.task_spec.name.endswith(".BoundaryEventJoin")]
        for child in list(task.children):
            if child in links:
                prunable = child is not links[0] and all(not t.has_state(TaskState.STARTED | TaskState.COMPLETED)
                                                         for t in child)
            else:
                prunable = all(t.has_state(TaskState.FINISHED_MASK) or _is_process_end(t) for t in child)
            if prunable:
                removed += _remove_branch(workflow, task.workflow, task, child)
    return removed


def _is_process_end(task: Task) -> bool:
    # A finished reminder branch still holds the process's end join and end, waiting for the main path.
    return task.task_spec.name == "End" or task.task_spec.name.endswith(".EndJoin")


def tree_depth(workflow: BpmnWorkflow) -> int:
    """The deepest task's depth, over the case and its sub-processes (for tests and benchmarks)."""
    deepest = 0
    for process in [workflow, *workflow.subprocesses.values()]:
        stack = [(process.task_tree, 0)]
        while stack:
            task, depth = stack.pop()
            deepest = max(deepest, depth)
            stack.extend((c, depth + 1) for c in task.children)
    return deepest


# -- moving a case to another version of its pathway ------------------------------------------

def waiting_elements(workflow: BpmnWorkflow) -> list[str]:
    """The BPMN ids of what a running case waits on: its open tasks, its waiting timers, messages and
    gateways, and the start events of the event sub-processes that may still start."""
    found: list[str] = []
    for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING):
        bpmn_id = getattr(task.task_spec, "bpmn_id", None)
        if bpmn_id and bpmn_id not in found:
            found.append(bpmn_id)
    if not workflow.is_completed():
        for start_event in event_subprocess_start_events(workflow):
            if start_event.bpmn_id and start_event.bpmn_id not in found:
                found.append(start_event.bpmn_id)
    return found


def element_ids(spec, subprocess_specs: dict[str, Any]) -> set[str]:
    """Every BPMN id of a process and the processes it holds or calls (sub-processes, event sub-processes)."""
    ids = set()
    for process in [spec, *subprocess_specs.values()]:
        ids |= {getattr(ts, "bpmn_id", None) or name for name, ts in process.task_specs.items()}
    return ids


def _mapped_alignment(spec_diff, new_spec, mapping: dict[str, str]) -> None:
    """Align each old task spec the analyst mapped (and the specs SpiffWorkflow derives from it, such as
    ``<id>.BoundaryEventSplit``) to the new element the analyst named, instead of SpecDiff's guess."""
    for old_spec in list(spec_diff.alignment):
        for old_id, new_id in mapping.items():
            if old_spec.name == old_id or old_spec.name.startswith(f"{old_id}."):
                target = new_spec.task_specs.get(new_id + old_spec.name[len(old_id):])
                if target is not None:
                    spec_diff.alignment[old_spec] = target
                    spec_diff.comparisons[old_spec] = ["mapped"]


def _spec_diff(original, new):
    """SpiffWorkflow's ``SpecDiff``, whose comparison of two aligned specs tolerates the service's own spec
    classes (``start``, multi-instance...), which its serializer registry does not convert to dictionaries."""
    from SpiffWorkflow.bpmn.util.diff import SpecDiff

    class _SpecDiff(SpecDiff):
        def _compare_task_specs(self, spec, candidate):
            s1, s2 = self._registry.convert(spec), self._registry.convert(candidate)
            if not (isinstance(s1, dict) and isinstance(s2, dict)):
                return [] if type(spec) is type(candidate) else ["typename"]
            return super()._compare_task_specs(spec, candidate)

    diff = _SpecDiff(SERIALIZER.registry, original, new)
    # SpecDiff walks the flows from Start: an event sub-process (started from Start, not one of its outputs:
    # :func:`add_triggered_subprocess`) and what only it leads to are aligned by id here.
    for name, task_spec in original.task_specs.items():
        if task_spec not in diff.alignment:
            diff.alignment[task_spec] = new.task_specs.get(name)
    return diff


def migrate(workflow: BpmnWorkflow, spec, subprocess_specs: dict[str, Any], mapping: dict[str, str]) -> None:
    """Move a running case onto another version's specs, with SpiffWorkflow's ``diff``/``migrate_workflow``.

    Each task keeps its id; a task of a mapped element becomes a task of the element it is mapped to. The
    tasks that wait (open tasks, timers, messages) keep their data and their engine notes (a timer's due
    date, a task's due date): ``migrate_workflow`` resets them to re-predict what follows from the new
    version's flows, and that reset would otherwise restart every timer from now.
    Raises ``ValueError`` naming the sub-process the new version no longer has.
    """
    from SpiffWorkflow.bpmn.util.diff import WorkflowDiff, migrate_workflow

    kept = {task.id: (task.data, task.internal_data)
            for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING)}
    plans = []
    top_diff = _spec_diff(workflow.spec, spec)
    _mapped_alignment(top_diff, spec, mapping)
    plans.append((workflow, WorkflowDiff(workflow, top_diff), spec))
    for sub in workflow.subprocesses.values():
        new_sub = subprocess_specs.get(sub.spec.name)
        if new_sub is None:
            raise ValueError(f"the new version has no sub-process '{sub.spec.name}', which the case is in")
        sub_diff = _spec_diff(sub.spec, new_sub)
        _mapped_alignment(sub_diff, new_sub, mapping)
        plans.append((sub, WorkflowDiff(sub, sub_diff), new_sub))
    workflow.subprocess_specs = subprocess_specs
    for process, diff, new in plans:
        migrate_workflow(diff, process, new)
    for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING):
        if task.id in kept:
            task.data, task.internal_data = kept[task.id]
    for task in workflow.get_tasks():  # an event sub-process running: as add_triggered_subprocess connects it
        start_spec = task.parent.task_spec if task.parent is not None else None
        if getattr(task, "triggered", False) and start_spec is not None and start_spec not in task.task_spec.inputs:
            task.task_spec._connect_notify(start_spec)
            task.task_spec.connect(start_spec._wf_spec.end)
