"""Reading Camunda Modeler diagrams (Camunda 7 or Camunda 8) so that they run as drawn.

:class:`PathwayParser` is SpiffWorkflow's ``CamundaParser`` with the pieces it
drops put back: the assignee, candidate groups, due date, linked form, the
decision with its result variable and mapping, timers in modeller style,
message payloads, event sub-processes, and the extension properties on every
element. What an element says in either dialect is read by :mod:`.dialect`;
Camunda 8's input/output mappings and FEEL script tasks run as :mod:`.camunda8` says.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.util import first, full_tag, one
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent, EventBasedGateway, IntermediateCatchEvent, StartEvent, EventSubprocess, CallActivity,
)
from SpiffWorkflow.bpmn.parser.event_parsers import (
    CONDITIONAL_EVENT_XPATH, ERROR_EVENT_XPATH, ESCALATION_EVENT_XPATH, MESSAGE_EVENT_XPATH, SIGNAL_EVENT_XPATH,
    TIMER_EVENT_XPATH, EventBasedGatewayParser, ReceiveTaskParser, SendTaskParser,
)
from SpiffWorkflow.bpmn.parser.ProcessParser import AdHocParser
from SpiffWorkflow.bpmn.specs.defaults import ReceiveTask, SendTask, TransactionSubprocess
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.parser.event_parsers import (
    CamundaBoundaryEventParser,
    CamundaEndEventParser,
    CamundaIntermediateCatchEventParser,
    CamundaIntermediateThrowEventParser,
    CamundaStartEventParser,
)
from SpiffWorkflow.camunda.parser.task_spec import (
    CAMUNDA_MODEL_NS,
    BusinessRuleTaskParser,
    CallActivityParser,
    CamundaTaskParser,
    ScriptTaskParser,
    SubWorkflowParser,
    UserTaskParser,
)
from SpiffWorkflow.bpmn.parser.task_parsers import SubprocessParser
from SpiffWorkflow.bpmn.specs.control import BpmnStartTask
from SpiffWorkflow.camunda.specs.user_task import UserTask

from . import camunda8, dialect, expressions, spiff, timers
from .specs import DecisionTask, OutcomeEndEvent, ParallelItemsMultiInstance, SequentialItemsMultiInstance

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"

#: Camunda attributes of an element kept in ``task_spec.extensions``.
CAMUNDA_ATTRIBUTES = dialect.CAMUNDA_ATTRIBUTES


def role_key(name: str) -> str:
    """A lane name as a role key: "Social worker" -> "social_worker"."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def task_roles(task_spec) -> list[str]:
    """The roles that may work on a user task: its candidate groups, else its lane."""
    groups = (task_spec.extensions or {}).get("candidateGroups")
    if groups:
        return [role_key(group) for group in groups.split(",") if group.strip()]
    return [role_key(task_spec.lane)] if task_spec.lane else []


class _CamundaExtensions:
    """Keeps the extension properties and task attributes SpiffWorkflow drops (either dialect, through
    :mod:`.dialect`), with Camunda 8's input/output mappings; reads multi-instance."""

    def _add_multiinstance_task(self, loop_characteristics) -> None:
        sequential = loop_characteristics.get("isSequential") == "true"
        collection, element_variable = dialect.multi_instance(loop_characteristics)
        collection = collection or _text(loop_characteristics, "bpmn:loopDataInputRef")
        item = first(loop_characteristics.xpath("./bpmn:inputDataItem", namespaces={"bpmn": BPMN_NS}))
        element_variable = element_variable or (item.get("name") or item.get("id") if item is not None else None)
        cardinality = _text(loop_characteristics, "bpmn:loopCardinality")
        if collection is None and cardinality is None:
            self.raise_validation_exception("a multi-instance activity needs camunda:collection or a loop cardinality")
        spec_class = SequentialItemsMultiInstance if sequential else ParallelItemsMultiInstance
        output_collection, output_element = dialect.multi_instance_output(loop_characteristics)
        spiff.wrap_in_multi_instance(self, lambda name: spec_class(
            self.spec, name, task_spec="", collection=collection, element_variable=element_variable,
            cardinality=cardinality, condition=_text(loop_characteristics, "bpmn:completionCondition"),
            output_collection=output_collection, output_element=output_element))

    def parse_extensions(self, node=None) -> dict[str, Any]:
        if node is None and getattr(self, "task", None) is not None:  # the element's own task spec, just made
            inputs, outputs = dialect.io_mapping(self.node)
            only_outputs = not dialect.propagates_all_child_variables(self.node)
            if inputs or outputs or only_outputs:
                spiff.add_data_mapping(self.task, camunda8.IoMapping(self.bpmn_id, inputs, outputs, only_outputs))
        return dialect.extensions(node if node is not None else self.node)


class PathwayMessageEventDefinition(MessageEventDefinition):
    """A message whose payload is the case data (or ``camunda:expression``) and merges into it on arrival.

    ``correlation_key``: Camunda 8's ``zeebe:subscription correlationKey`` (an ``=`` FEEL expression over the
    case data): a case waiting for the message takes only a message whose key equals its own; a case throwing
    it sends it with the key's value (:func:`runtime.correlation_value`).
    """

    correlation_key: str | None = None

    def __init__(self, name, correlation_properties=None, expression=None, result_var=None, correlation_key=None,
                 **kwargs):
        super().__init__(name, correlation_properties, **kwargs)
        self.expression = expression
        self.result_var = result_var
        self.correlation_key = correlation_key

    def throw(self, my_task) -> None:
        if self.expression:
            payload = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        else:
            payload = {key: value for key, value in my_task.data.items() if not key.startswith("_")}
        # A thrown message leaves the case (BPMN message flows join different participants): the service routes
        # it to the other open cases of the same reference. Caught in-case, the thrower's own event
        # sub-process waiting for the same name would swallow it and no other case would hear of it.
        correlations = {}
        if self.correlation_key:
            try:
                correlations["key"] = correlation_value(self.correlation_key, my_task.data)
            except expressions.ExpressionError as error:
                raise WorkflowTaskException(f"correlation key: {error}", task=my_task) from None
        my_task.workflow.top_workflow.bpmn_events.append(BpmnEvent(self, payload=payload, correlations=correlations))

    def update_internal_data(self, my_task, event) -> None:
        my_task.internal_data[self.name] = event.payload

    def update_task_data(self, my_task) -> None:
        payload = my_task.internal_data.get(self.name)
        if self.result_var:
            my_task.data[self.result_var] = payload
        elif isinstance(payload, dict):
            my_task.data.update(payload)


def correlation_value(expression: str, data: dict[str, Any]) -> str | None:
    """A correlation key's value for the case ``data``: text, as Camunda 8 compares keys (a number 12 is "12");
    None when the data does not give it one (raises ``ExpressionError`` when it cannot be evaluated)."""
    value = expressions.evaluate(expression, data)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (float, Decimal)) and value == int(value):
        value = int(value)
    return str(value)


class PathwaySignalEventDefinition(SignalEventDefinition):
    """A signal, broadcast: caught in this case as SpiffWorkflow does, and noted for the service to send to
    the other cases (BPMN signals reach every catcher, not only the thrower's)."""

    def throw(self, my_task) -> None:
        payload = {key: value for key, value in my_task.data.items() if not key.startswith("_")}
        engine = my_task.workflow.top_workflow.script_engine
        if hasattr(engine, "signals"):
            engine.signals.append((self.name, payload))
        super().throw(my_task)


class PathwayConditionalEventDefinition(ConditionalEventDefinition):
    """A condition on the case's data as it is now, checked after every step.

    SpiffWorkflow 3.2 evaluates the condition on the waiting event's own copy of the data, which nothing
    changes while it waits: a condition not already true when the event was reached never became true.
    Here the names the condition reads come from their newest write in any branch (else from the step that
    ran last: another branch, a message, a retry), and are carried on when the event fires.
    """

    def has_fired(self, my_task) -> bool:
        latest = my_task.workflow.last_task
        names = _names_read(self.expression)
        data = dict(my_task.data)
        if latest is not None:
            data.update({name: latest.data[name] for name in names if name in latest.data})
        newest = spiff.newest_writes(my_task.workflow)
        data.update({name: newest[name] for name in names if name in newest})
        fired = bool(expressions.evaluate(self.expression, data))
        if fired:
            my_task.data.update({name: data[name] for name in names if name in data})
        return fired


def _names_read(expression: str) -> set[str]:
    return expressions.names_read(expression)


class _EventDefinitions(_CamundaExtensions):
    """Timers, messages, signals and conditions as the modeller writes them."""

    def parse_conditional_event(self, event):
        return PathwayConditionalEventDefinition(super().parse_conditional_event(event).expression)

    def parse_signal_event(self, signal_event):
        return PathwaySignalEventDefinition(super().parse_signal_event(signal_event).name)

    def parse_timer_event(self, event):
        name = self.node.get("name", self.node.get("id"))
        description = self.get_event_description(event)
        for tag, timer_class in (("timeDate", timers.TimeDateTimer), ("timeDuration", timers.DurationTimer),
                                 ("timeCycle", timers.CycleTimer)):
            node = first(self.xpath(f".//bpmn:{tag}"))
            if node is not None:
                return timer_class(name, (node.text or "").strip(), description=description)
        self.raise_validation_exception("the timer has no date, duration or cycle")

    def parse_message_event(self, message_event):
        message_ref = message_event.get("messageRef")
        key = None
        if message_ref:
            message = one(self.doc_xpath(f'.//bpmn:message[@id="{message_ref}"]'))
            name = message.get("name")
            correlations = self.get_message_correlations(message_ref)
            key = dialect.correlation_key(message)
        else:
            name, correlations = message_event.getparent().get("name"), {}
        payload = self.attribute("expression", "camunda", message_event)
        result_var = self.attribute("resultVariable", "camunda", message_event)
        return PathwayMessageEventDefinition(name, correlations, payload, result_var, (key or "").strip() or None)


class StartEventParser(_EventDefinitions, CamundaStartEventParser):
    """Start events, with the error and escalation starts of event sub-processes.

    SpiffWorkflow 3.2 reads no error or escalation definition on a start event: such an event sub-process
    had a none start and ran as soon as the case started.
    """

    def create_task(self):
        definition = self.get_event_definition([MESSAGE_EVENT_XPATH, SIGNAL_EVENT_XPATH, TIMER_EVENT_XPATH,
                                                CONDITIONAL_EVENT_XPATH, ERROR_EVENT_XPATH, ESCALATION_EVENT_XPATH])
        task = self._create_task(definition)
        self.spec.start.connect(task)
        return task


class EndEventParser(_EventDefinitions, CamundaEndEventParser):
    pass


def _text(node, path: str) -> str | None:
    found = first(node.xpath(f"./{path}", namespaces={"bpmn": BPMN_NS}))
    return (found.text or "").strip() or None if found is not None else None


def link_name(node) -> str | None:
    """The name of a link event's ``linkEventDefinition`` (None if the event is not a link)."""
    link = first(node.xpath("./bpmn:linkEventDefinition", namespaces={"bpmn": BPMN_NS}))
    return None if link is None else (link.get("name") or node.get("name") or "")


class IntermediateCatchEventParser(_EventDefinitions, CamundaIntermediateCatchEventParser):
    def create_task(self):
        if link_name(self.node) is not None:  # reached from its throwing link: passes straight through
            return self._create_task(NoneEventDefinition())
        return super().create_task()


class IntermediateThrowEventParser(_EventDefinitions, CamundaIntermediateThrowEventParser):
    """Throw events; a link throw goes on at the catching link event of the same name.

    SpiffWorkflow 3.2 has no link events: the path stopped at the throw and the catch was never reached.
    """

    def parse_node(self):
        spec = super().parse_node()
        name = link_name(self.node)
        if name is not None:
            catches = [n for n in self.node.getparent().xpath("./bpmn:intermediateCatchEvent",
                                                               namespaces={"bpmn": BPMN_NS})
                       if link_name(n) == name]
            if len(catches) != 1:
                self.raise_validation_exception(f"the link '{name}' needs exactly one catching link event "
                                                f"of that name in the same process; there are {len(catches)}")
            self.task.connect(self.process_parser.parse_node(catches[0]))
        return spec


class BoundaryEventParser(_EventDefinitions, CamundaBoundaryEventParser):
    pass


class PathwayUserTaskParser(_CamundaExtensions, UserTaskParser):
    pass


class PathwayReceiveTaskParser(_EventDefinitions, ReceiveTaskParser):
    """A receive task waits for its message as a message catch event does (the same delivery, the same payload).

    SpiffWorkflow's own reads a message of another class than the service delivers, so it never caught one.
    """


class PathwaySendTaskParser(_EventDefinitions, SendTaskParser):
    """A send task throws its message out of the case, as a message throw event does (routed by the service)."""


class PathwayAdHocParser(AdHocParser):
    """An ad-hoc sub-process: every activity in it opens when it starts; it ends when its completion condition
    holds after an activity, or, with no condition, when every activity it opened is done.

    SpiffWorkflow 3.2 evaluates a missing completion condition and fails ("the expression is empty").
    """

    def create_spec(self):
        condition = (first(self.xpath("./bpmn:completionCondition")))
        condition = ((condition.text or "") if condition is not None else "").strip() or "False"  # none: when all end
        return spiff.AdHocProcessSpec(
            completion_condition=condition, cancel_remaining=self.attribute("cancelRemainingInstances") != "false",
            name=self.bpmn_id, description=self.get_name(), filename=self.filename)


class PathwayTaskParser(_CamundaExtensions, CamundaTaskParser):
    pass


class DecisionTaskParser(_CamundaExtensions, BusinessRuleTaskParser):
    def create_task(self):
        called = dialect.called_decision(self.node)
        return DecisionTask(
            self.spec, self.bpmn_id,
            decision_ref=called.decision_id,
            decisions=self.process_parser.parser.decisions,
            result_variable=called.result_variable,
            map_result=called.map_result,
            **self.bpmn_attributes,
        )

    @staticmethod
    def get_decision_ref(node) -> str:
        return dialect.called_decision(node).decision_id


class PathwayCallActivityParser(_CamundaExtensions, CallActivityParser):
    """Call activities naming their process either way (``calledElement``, ``zeebe:calledElement``)."""

    def create_task(self):
        called = dialect.called_process(self.node)
        if not called:
            self.raise_validation_exception("the call activity does not say which process it calls")
        return self.spec_class(self.spec, self.bpmn_id, subworkflow_spec=called, **self.bpmn_attributes)


class PathwayScriptTaskParser(_CamundaExtensions, ScriptTaskParser):
    """Script tasks: Python (``bpmn:script``), or one FEEL expression and its result variable (``zeebe:script``)."""

    def create_task(self):
        feel_script = dialect.script(self.node)
        if feel_script is None:
            return super().create_task()
        expression, result_variable = feel_script
        expression = expression if expression.lstrip().startswith("=") else f"={expression}"
        return camunda8.FeelScriptTask(self.spec, self.bpmn_id, expression=expression,
                                       result_variable=result_variable, **self.bpmn_attributes)


class PathwaySubprocessParser(_CamundaExtensions, SubWorkflowParser):
    """Embedded sub-processes, and event sub-processes (``triggeredByEvent``), which CamundaParser runs as plain ones."""

    def create_task(self):
        subworkflow_spec = SubprocessParser.get_subprocess_spec(self)
        if self.spec_class is TransactionSubprocess:
            return TransactionSubprocess(self.spec, self.bpmn_id, subworkflow_spec=subworkflow_spec,
                                         **self.bpmn_attributes)
        if self.node.get("triggeredByEvent") != "true":
            return self.spec_class(self.spec, self.bpmn_id, subworkflow_spec=subworkflow_spec, **self.bpmn_attributes)
        start = first(self.xpath("./bpmn:startEvent"))
        interrupting = start is None or start.get("isInterrupting", "true") == "true"
        return InterruptingEventSubprocess(self.spec, self.bpmn_id, subworkflow_spec=subworkflow_spec,
                                           interrupting=interrupting, **self.bpmn_attributes)


class InterruptingEventSubprocess(EventSubprocess):
    """An event sub-process that, when its start event is interrupting, ends the rest of its process.

    SpiffWorkflow 3.2 ignores ``isInterrupting``; without this an "immediate risk"
    message would leave every waiting step of the pathway open beside the referral.
    """

    def __init__(self, wf_spec, bpmn_id, subworkflow_spec, interrupting: bool = True, **kwargs):
        super().__init__(wf_spec, bpmn_id, subworkflow_spec, **kwargs)
        self.interrupting = interrupting


class PathwayEventBasedGateway(EventBasedGateway):
    """An event-based gateway that forgets the events it saw once it has chosen its way.

    SpiffWorkflow 3.2 keeps them in the task's internal data (other catching events reset theirs), where
    they hold event definition objects that cannot be saved.
    """

    def _run_hook(self, my_task):
        result = super()._run_hook(my_task)
        self.event_definition.reset(my_task)
        return result


class PathwayStartEvent(StartEvent):
    """A start event; in an interrupting event sub-process, firing ends the rest of the enclosing process.

    The interruption waits for the start event's own trigger (the timer, the escalation, the message):
    a timer- or escalation-start event sub-process is set up when the case starts, and must not cancel
    the main path then.
    """

    def _run_hook(self, my_task):
        owner = spiff.event_subprocess_task(my_task)
        if owner is not None and getattr(owner.task_spec, "interrupting", False):
            spiff.cancel_rest_of_process(owner)
        return super()._run_hook(my_task)


class PathwayStartTask(BpmnStartTask):
    """The process's ``Start`` task, starting event sub-processes without rewiring the shared spec.

    SpiffWorkflow 3.2's ``trigger_wf`` connects ``Start`` to the event sub-process it triggers. Specs are
    parsed once per deployment and shared by every case, so after one case caught (say) ``immediate_risk``,
    every case started later ran the event sub-process straight from ``Start``; an interrupting one then
    cancelled the whole pathway and the new case had no open task. Here the triggered sub-process is added
    to the case's task tree only; Start becomes its input and the process end its output (once, as
    SpiffWorkflow does), but it is never made an output of Start.
    """

    def trigger_wf(self, my_task, spec_name):
        return spiff.add_triggered_subprocess(self, my_task, spec_name)


class PathwayParser(CamundaParser):
    """CamundaParser with the service's task specs, timers, messages and decisions."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("userTask"): (PathwayUserTaskParser, UserTask),
        full_tag("startEvent"): (StartEventParser, PathwayStartEvent),
        full_tag("endEvent"): (EndEventParser, OutcomeEndEvent),
        full_tag("intermediateCatchEvent"): (IntermediateCatchEventParser, IntermediateCatchEvent),
        full_tag("intermediateThrowEvent"): (IntermediateThrowEventParser,
                                             CamundaParser.OVERRIDE_PARSER_CLASSES[full_tag("intermediateThrowEvent")][1]),
        full_tag("boundaryEvent"): (BoundaryEventParser, BoundaryEvent),
        full_tag("eventBasedGateway"): (EventBasedGatewayParser, PathwayEventBasedGateway),
        full_tag("businessRuleTask"): (DecisionTaskParser, DecisionTask),
        full_tag("task"): (PathwayTaskParser, CamundaParser.OVERRIDE_PARSER_CLASSES[full_tag("task")][1]),
        full_tag("manualTask"): (PathwayTaskParser, CamundaParser.OVERRIDE_PARSER_CLASSES[full_tag("manualTask")][1]),
        full_tag("subProcess"): (PathwaySubprocessParser, CallActivity),
        full_tag("callActivity"): (PathwayCallActivityParser, CallActivity),
        full_tag("scriptTask"): (PathwayScriptTaskParser, CamundaParser.OVERRIDE_PARSER_CLASSES[full_tag("scriptTask")][1]),
        full_tag("transaction"): (PathwaySubprocessParser, TransactionSubprocess),
        full_tag("receiveTask"): (PathwayReceiveTaskParser, ReceiveTask),
        full_tag("sendTask"): (PathwaySendTaskParser, SendTask),
    }
    AD_HOC_PARSER_CLASS = PathwayAdHocParser

    def __init__(self, decisions) -> None:
        super().__init__()
        self.decisions = decisions

    def get_spec(self, process_id, required=True):
        spec = super().get_spec(process_id, required)
        if spec is not None:
            spiff.use_start_task(spec, PathwayStartTask)  # same state, trigger_wf that leaves the spec alone
        return spec

    def get_engine(self, decision_ref, node):  # decisions are evaluated by the service's DMN engine
        return None

    def _find_dependencies(self, process):
        # BpmnDmnParser would ask its own DMN parser class; ours resolves decisions from the registry.
        spiff.find_bpmn_dependencies(self, process)
        self.process_dependencies.discard(None)
        self.process_dependencies.update(dialect.called_process(call) for call in process.xpath(
            ".//bpmn:callActivity", namespaces=self.namespaces) if dialect.called_process(call))
        for task in process.xpath(".//bpmn:businessRuleTask", namespaces=self.namespaces):
            self.dmn_dependencies.add(DecisionTaskParser.get_decision_ref(task))
