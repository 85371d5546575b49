"""Task specs that do what a Camunda Modeler diagram says and SpiffWorkflow drops.

They report what happened while the engine ran (decisions taken, timers fired,
messages thrown out of the case) to the run's :class:`Journal`, which the
service layer turns into audit entries and notifications.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.defaults import EndEvent, ParallelMultiInstanceTask, SequentialMultiInstanceTask
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask

from . import expressions, spiff
from .expressions import ExpressionError, SandboxedEnvironment
from .limits import Limits


def json_safe(value: Any) -> Any:
    """Plain JSON values (dates as ISO text), as case data is kept."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


@dataclass
class JournalEntry:
    event: str  # decision_taken | timer_fired | message_thrown
    task_id: str
    element: str
    detail: dict[str, Any] = field(default_factory=dict)


class Journal(PythonScriptEngine):
    """The sandboxed script engine for one run of a case, noting what the engine did.

    It carries the :class:`Limits` each step of the case runs under, and reports a failed expression
    or script with its reason (SpiffWorkflow's own message says only "Error evaluating expression").
    """

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(environment=SandboxedEnvironment())
        self.entries: list[JournalEntry] = []
        self.limits = limits or Limits()
        self.path: list[str] = []  # the BPMN elements run, in order
        self.signals: list[tuple[str, Any]] = []  # signals thrown, to broadcast beyond the case

    def ran(self, my_task) -> None:
        """Note that a task ran (SpiffWorkflow's own helper tasks, which have no BPMN id, are left out)."""
        if my_task.task_spec.bpmn_id:
            self.path.append(my_task.task_spec.bpmn_id)

    def evaluate(self, task, expression, external_context=None):
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except ExpressionError as error:
            raise WorkflowTaskException(str(error), task=task) from error

    def execute(self, task, script, external_context=None):
        try:
            return self.environment.execute(script, task.data, external_context or {})
        except ExpressionError as error:
            raise WorkflowTaskException(str(error), task=task) from error

    def note(self, event: str, my_task, element: str | None = None, **detail: Any) -> None:
        element = element or my_task.task_spec.bpmn_id or my_task.task_spec.name
        self.entries.append(JournalEntry(event, str(my_task.id), element, detail))


def evaluated_at(my_task, what: str, evaluation: Callable[[], Any]) -> Any:
    """The value of one of a task's expressions outside the script engine (a timer, an assignee, a due date);
    a failure names the task's element, as the script engine does."""
    try:
        return evaluation()
    except ExpressionError as error:
        raise WorkflowTaskException(f"{what}: {error}", task=my_task) from error


def journal_of(my_task) -> Journal | None:
    engine = my_task.workflow.top_workflow.script_engine
    return engine if isinstance(engine, Journal) else None


class DecisionTask(BusinessRuleTask):
    """A business rule task evaluated by the service's DMN engine, with Camunda's result mapping."""

    def __init__(self, wf_spec, bpmn_id, decision_ref: str, decisions, result_variable: str | None = None,
                 map_result: str | None = None, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, dmnEngine=None, **kwargs)
        self.decision_ref = decision_ref
        self.decisions = decisions
        self.result_variable = result_variable
        self.map_result = map_result or "resultList"

    def _run_hook(self, my_task) -> bool:
        try:
            result = self.decisions.evaluate(self.decision_ref, my_task.data)
        except Exception as error:
            raise WorkflowTaskException(str(error), task=my_task) from error
        self._store(my_task, json_safe(result.outputs))  # case data is JSON: dates and durations as ISO text
        journal = journal_of(my_task)
        if journal is not None:
            journal.note("decision_taken", my_task, **result.to_json())
        return True

    def _store(self, my_task, outputs: Any) -> None:
        rows = outputs if isinstance(outputs, list) else [outputs]
        if self.result_variable is None:
            # No result variable: the outputs land in the case data under their names.
            if isinstance(outputs, dict):
                my_task.data.update(outputs)
            elif isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
                for name in outputs[0]:
                    my_task.data[name] = [row.get(name) for row in outputs]
            else:
                my_task.data[self.decision_ref] = outputs
            return
        if self.map_result == "dmn":  # Camunda 8: the decision's result as DMN shapes it (a single output unwrapped)
            my_task.data[self.result_variable] = outputs
        elif self.map_result == "singleEntry":
            value = rows[0] if rows else None
            if isinstance(value, dict):
                value = next(iter(value.values()), None) if len(value) == 1 else value
            my_task.data[self.result_variable] = value
        elif self.map_result == "singleResult":
            my_task.data[self.result_variable] = rows[0] if rows else None
        elif self.map_result == "collectEntries":
            my_task.data[self.result_variable] = [
                next(iter(row.values()), None) if isinstance(row, dict) else row for row in rows]
        else:
            my_task.data[self.result_variable] = rows


def note_timer_fired(my_task) -> None:
    """Tell the run's journal a timer fired, with the task it is attached to and its properties."""
    journal = journal_of(my_task)
    if journal is not None:
        timer = spiff.gateway_timer_spec(my_task) or my_task.task_spec  # behind an event-based gateway: its timer
        journal.note("timer_fired", my_task, element=timer.bpmn_id, attached_to=spiff.attached_task_id(my_task),
                     properties=dict(timer.extensions or {}))


class OutcomeEndEvent(EndEvent):
    """An end event whose ``outcome`` property becomes the case's ``outcome``."""

    def _run_hook(self, my_task) -> bool:
        outcome = (self.extensions or {}).get("outcome")
        if outcome:
            my_task.data["outcome"] = outcome
        return super()._run_hook(my_task)


class ItemsMultiInstance(MultiInstanceTask):
    """A multi-instance activity over a collection as Camunda 7 writes it, keeping each instance's answers.

    ``camunda:collection`` may be an expression (``${children}``) or a name (``children``); each instance
    sees its item as ``camunda:elementVariable``. What an instance adds or changes is kept per item, in
    collection order, under ``<elementVariable>_answers`` (or ``<task id>_answers``), with the item itself;
    nothing else leaks back into the case. SpiffWorkflow's Camunda multi-instance reads the collection as a
    plain name (``${children}`` failed), rewrites the shared task spec as it runs, and lets the last
    instance's answers overwrite the others'.
    """

    #: Camunda 8's ``outputCollection`` and ``outputElement``: each instance's ``output_element`` (an expression on
    #: its data) at its item's place in the list ``output_collection``, null until the instance is done.
    output_collection: str | None = None
    output_element: str | None = None

    def __init__(self, wf_spec, bpmn_id, collection: str | None = None, element_variable: str | None = None,
                 output_collection: str | None = None, output_element: str | None = None, **kwargs: Any) -> None:
        self.output_collection, self.output_element = output_collection, output_element
        self.items_key = f"_items_{bpmn_id}"
        self.collection = collection
        self.element_variable = element_variable or "item"
        self.answers_key = f"{element_variable or bpmn_id}_answers"
        if collection is not None:
            kwargs["data_input"] = TaskDataReference(self.items_key)
        kwargs["input_item"] = TaskDataReference(self.element_variable)
        super().__init__(wf_spec, bpmn_id, **kwargs)

    def _update_hook(self, my_task):
        result = super()._update_hook(my_task)
        my_task.data.pop(self.element_variable, None)  # an item left from an earlier pass is not this one's
        my_task.data.pop(self.answers_key, None)
        items = self._items(my_task) if self.collection is not None else None
        if items is not None:
            my_task.data[self.items_key] = items
        my_task.data[self.answers_key] = {} if isinstance(items, dict) else []
        if self.output_collection:
            my_task.data[self.output_collection] = ({key: None for key in items} if isinstance(items, dict)
                                                    else [None] * len(items or []))
        self._record(my_task)
        return result

    def _record(self, my_task) -> None:
        """What the activity gathers is the case's newest write of those keys (not seen as a task's own run)."""
        keys = [self.answers_key, *([self.output_collection] if self.output_collection else [])]
        spiff.record_writes(my_task, {key: my_task.data[key] for key in keys if key in my_task.data})

    def _items(self, my_task) -> Any:
        try:
            items = expressions.evaluate(self.collection, my_task.data)
        except expressions.ExpressionError as error:
            raise WorkflowTaskException(f"the collection '{self.collection}' cannot be read: {error}",
                                        task=my_task) from None
        if isinstance(items, dict):
            return items
        if not isinstance(items, (list, tuple)):
            raise WorkflowTaskException(f"the collection '{self.collection}' is {type(items).__name__} "
                                        f"{items!r}, not a list", task=my_task)
        return list(items)

    def merge_child(self, workflow, child) -> None:
        my_task = child.parent
        answers = {key: value for key, value in child.data.items() if not key.startswith("_")
                   and key != self.answers_key and (key not in my_task.data or my_task.data[key] != value)}
        key = spiff.instance_key(child)
        kept = my_task.data.setdefault(self.answers_key, {} if isinstance(key, str) else [])
        if isinstance(kept, dict):
            kept[key] = answers
        else:
            index = key if isinstance(key, int) else len(kept)
            kept.extend([None] * (index + 1 - len(kept)))
            kept[index] = answers
        if self.output_collection and self.output_element:
            self._merge_output(my_task, child, key)
        self._record(my_task)
        spiff.note_instance_merged(my_task, child)

    def _merge_output(self, my_task, child, key) -> None:
        try:
            value = json_safe(expressions.evaluate(self.output_element, child.data))
        except expressions.ExpressionError as error:
            raise WorkflowTaskException(f"output element: {error}", task=child) from None
        outputs = my_task.data.get(self.output_collection)
        if isinstance(outputs, dict):
            outputs[key] = value
            return
        outputs = list(outputs) if isinstance(outputs, list) else []
        index = key if isinstance(key, int) else len(outputs)
        outputs.extend([None] * (index + 1 - len(outputs)))
        outputs[index] = value
        my_task.data[self.output_collection] = outputs

    def _run_hook(self, my_task):
        my_task.data.pop(self.items_key, None)
        return super()._run_hook(my_task)


class ParallelItemsMultiInstance(ParallelMultiInstanceTask, ItemsMultiInstance):
    """Every item's instance open at once."""


class SequentialItemsMultiInstance(SequentialMultiInstanceTask, ItemsMultiInstance):
    """One item's instance after another."""


def item_label(item: Any) -> str:
    """How an item of a multi-instance collection reads in a task title."""
    if isinstance(item, dict):
        for key in ("name", "full_name", "title", "label", "id"):
            if item.get(key) not in (None, ""):
                return str(item[key])
        return ", ".join(str(v) for v in item.values() if isinstance(v, (str, int, float)))
    return str(item)
