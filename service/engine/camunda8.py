"""What Camunda 8 diagrams ask of the engine beyond what Camunda 7 ones do: input/output mappings on any
element, call activities that hand back only what they map, and script tasks that are one FEEL expression.

The diagram is read by :mod:`.dialect`; these are the run-time pieces, attached by the parser.
"""
from __future__ import annotations

import copy
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.defaults import ScriptTask

from . import expressions, feel_expressions
from .dialect import Mapping

_BEFORE = "_io_before"  # the task's data as it was before its inputs (while it runs; dropped at completion)
_ADDED = "_io_added"  # the names the inputs added, and the values they hid


class IoMapping:
    """``zeebe:ioMapping`` (and ``propagateAllChildVariables="false"``) as Camunda 8 runs them.

    Inputs are evaluated in order when the element starts, each seeing the ones before it, and are the
    element's own: they are gone when it ends (a value they hid comes back). Outputs are evaluated when it
    ends, on everything it had; when an element has outputs (or is a call activity that does not hand back
    all of the child's data), only they reach the case: the rest of what it gathered stays with it.
    """

    bpmn_id = "_io_mapping"  # SpiffWorkflow pops an input association's name at completion: nothing of ours

    def __init__(self, element_id: str, inputs: list[Mapping], outputs: list[Mapping], only_outputs: bool) -> None:
        self.element_id, self.inputs, self.outputs = element_id, inputs, outputs
        self.only_outputs = only_outputs or bool(outputs)

    def _value(self, my_task, mapping: Mapping, data: dict[str, Any], what: str) -> Any:
        source = mapping.source.strip()
        try:
            if feel_expressions.is_feel(source):
                return expressions.evaluate(source, data)
            return mapping.source  # without "=", Camunda 8 reads the source as a static value (text)
        except expressions.ExpressionError as error:
            raise WorkflowTaskException(f"{what} mapping '{mapping.target}': {error}", task=my_task) from None

    def get(self, my_task) -> None:
        """When the element starts: its inputs."""
        if _ADDED in my_task.internal_data:
            return
        if self.only_outputs:
            my_task.internal_data[_BEFORE] = copy.deepcopy(my_task.data)
        added, hidden = [], {}
        for mapping in self.inputs:
            value = self._value(my_task, mapping, my_task.data, "input")
            if mapping.target in my_task.data:
                hidden.setdefault(mapping.target, my_task.data[mapping.target])
            else:
                added.append(mapping.target)
            my_task.data[mapping.target] = value
        my_task.internal_data[_ADDED] = {"added": added, "hidden": hidden}

    def set(self, my_task) -> None:
        """When the element ends: its outputs, and its inputs gone."""
        outputs = {}
        for mapping in self.outputs:
            outputs[mapping.target] = self._value(my_task, mapping, {**my_task.data, **outputs}, "output")
        before = my_task.internal_data.pop(_BEFORE, None)
        inputs = my_task.internal_data.pop(_ADDED, {"added": [], "hidden": {}})
        if self.only_outputs and before is not None:
            my_task.data = {**before, **outputs}
            return
        for name in inputs["added"]:
            my_task.data.pop(name, None)
        my_task.data.update(inputs["hidden"])
        my_task.data.update(outputs)


class FeelScriptTask(ScriptTask):
    """A Camunda 8 script task: one FEEL expression whose value becomes ``resultVariable``."""

    def __init__(self, wf_spec, bpmn_id, expression: str, result_variable: str, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, script=expression, **kwargs)
        self.result_variable = result_variable

    def _execute(self, my_task) -> bool:
        try:
            my_task.data[self.result_variable] = expressions.evaluate(self.script, my_task.data)
        except expressions.ExpressionError as error:
            raise WorkflowTaskException(f"script: {error}", task=my_task) from None
        return True
