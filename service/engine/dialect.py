"""What a diagram says about its elements, in either Camunda dialect, read in one place.

Camunda Modeler writes the same things two ways. Camunda 7 puts them in ``camunda:`` attributes and
extension elements (``camunda:candidateGroups="social_worker"``, ``${...}`` expressions); Camunda 8 in
``zeebe:`` extension elements (``<zeebe:assignmentDefinition candidateGroups="social_worker"/>``, FEEL
expressions that start with ``=``). The parser, the deploy checks and the conventions ask this module
("the candidate groups of this task", "the form of this task", "the properties of this element") and never
look at either namespace themselves. Expressions are handed on as written: :mod:`.expressions` reads
``${...}`` and ``=`` FEEL alike.

What Camunda 8 can say that the service cannot run (job workers, external forms, dynamic roles) is listed by
:func:`refusals`, each with a reason a modeller understands.
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
MODELER_NS = "http://camunda.org/schema/modeler/1.0"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS, "zeebe": ZEEBE_NS}
C, Z = f"{{{CAMUNDA_NS}}}", f"{{{ZEEBE_NS}}}"

#: Camunda 7 task attributes kept, under these names, in a task spec's ``extensions``.
CAMUNDA_ATTRIBUTES = ("assignee", "candidateUsers", "candidateGroups", "dueDate", "followUpDate",
                      "priority", "formKey", "formRef", "formRefBinding", "formRefVersion")

#: Camunda 8 extension elements the service reads (anything else ``zeebe:`` is refused, see :func:`refusals`).
ZEEBE_READ = {"properties", "property", "userTask", "assignmentDefinition", "formDefinition", "taskSchedule",
              "priorityDefinition", "calledDecision", "calledElement", "ioMapping", "input", "output",
              "subscription", "loopCharacteristics", "script", "versionTag", "executionListeners",
              "userTaskForm"}

#: Camunda 8 extension elements that ask for something the service does not have, and why.
ZEEBE_REFUSED = {
    "taskDefinition": "a job worker would run this step (zeebe:taskDefinition) and the service has no job "
                      "workers; draw the step as a user task, a script task (FEEL) or a business rule task",
    "taskHeaders": "task headers are for job workers, which the service does not have",
    "executionListener": "execution listeners call job workers, which the service does not have; draw the step "
                         "as a task",
    "taskListener": "task listeners call job workers, which the service does not have",
    "linkedResource": "linked resources are for job workers, which the service does not have",
}


def _extension(element, name: str):
    """The element's own ``zeebe:<name>`` extension element, or None."""
    return element.find(f"bpmn:extensionElements/zeebe:{name}", NS)


def is_camunda8(root) -> bool:
    """Whether a diagram was drawn for Camunda 8 (Camunda Modeler's "Camunda Cloud" platform, or zeebe: used)."""
    if root.get(f"{{{MODELER_NS}}}executionPlatform") == "Camunda Cloud":
        return True
    return any(isinstance(e.tag, str) and etree.QName(e).namespace == ZEEBE_NS for e in root.iter())


def properties(element) -> dict[str, str]:
    """The element's own extension properties (``camunda:property`` or ``zeebe:property``): outcome, urgent..."""
    found: dict[str, str] = {}
    extensions = element.find("bpmn:extensionElements", NS)
    if extensions is None:
        return found
    for path in ("camunda:properties/camunda:property", "zeebe:properties/zeebe:property"):
        for prop in extensions.iterfind(path, NS):
            found[prop.get("name") or ""] = prop.get("value") or ""
    return found


def candidate_groups(element) -> str | None:
    """The task's candidate groups as written: a comma list, or (Camunda 8) a FEEL list ``=["a", "b"]``."""
    value = element.get(C + "candidateGroups")
    if value is None and (assignment := _extension(element, "assignmentDefinition")) is not None:
        value = assignment.get("candidateGroups")
    return value


def candidate_group_names(element) -> list[str]:
    """The candidate groups as names (a FEEL list of text is read as written); [] if there are none.

    Raises ValueError when they depend on the case (a FEEL expression over data): a task's roles are known
    at deploy, so that the service can say who sees it."""
    value = (candidate_groups(element) or "").strip()
    if not value.startswith("="):
        return [group.strip() for group in value.split(",") if group.strip()]
    from .decisions import feel
    try:
        expression = feel.Expression(value[1:])
        groups = feel.to_python(expression.evaluate({})) if expression.is_constant else None
    except (feel.FeelSyntaxError, feel.FeelEvaluationError) as error:
        raise ValueError(f"candidate groups: {error}") from None
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValueError(f"candidate groups '{value}' must be fixed role names (a list of text such as "
                         f"=[\"social_worker\"], or social_worker, team_manager): the service gives a task to "
                         f"roles it knows at deploy")
    return [g.strip() for g in groups if g.strip()]


def assignee(element) -> str | None:
    value = element.get(C + "assignee")
    if value is None and (assignment := _extension(element, "assignmentDefinition")) is not None:
        value = assignment.get("assignee")
    return value


def _schedule(element, name: str) -> str | None:
    value = element.get(C + name)
    if value is None and (schedule := _extension(element, "taskSchedule")) is not None:
        value = schedule.get(name)
    return value


def due_date(element) -> str | None:
    """When the task is due: an ISO date or duration, or an expression (``${...}`` or ``=`` FEEL)."""
    return _schedule(element, "dueDate")


def follow_up_date(element) -> str | None:
    return _schedule(element, "followUpDate")


def form_ref(element) -> str | None:
    """The id of the linked Camunda form (``camunda:formRef``, ``zeebe:formDefinition formId``)."""
    value = element.get(C + "formRef")
    if value is None and (definition := _extension(element, "formDefinition")) is not None:
        value = definition.get("formId")
    return value


def form_key(element) -> str | None:
    """A form named by key: ``camunda:formKey``, or Camunda 8's ``formKey`` / ``externalReference``."""
    value = element.get(C + "formKey")
    if value is None and (definition := _extension(element, "formDefinition")) is not None:
        value = definition.get("formKey") or definition.get("externalReference")
    return value


@dataclass(frozen=True)
class CalledDecision:
    decision_id: str
    result_variable: str | None
    map_result: str | None  # Camunda 7's mapDecisionResult; "dmn" for Camunda 8 (the result as DMN shapes it)


def called_decision(element) -> CalledDecision:
    """The decision a business rule task evaluates, and where its result goes."""
    called = _extension(element, "calledDecision")
    if called is not None and element.get(C + "decisionRef") is None:
        return CalledDecision(called.get("decisionId") or "", called.get("resultVariable"), "dmn")
    return CalledDecision(element.get(C + "decisionRef") or "", element.get(C + "resultVariable"),
                          element.get(C + "mapDecisionResult"))


def called_process(element) -> str | None:
    """The process a call activity calls (``calledElement``, or ``zeebe:calledElement processId``)."""
    value = element.get("calledElement")
    if value is None and (called := _extension(element, "calledElement")) is not None:
        value = called.get("processId")
    return value


def propagates_all_child_variables(element) -> bool:
    """Whether a call activity hands all the called process's data back (Camunda 8 says so unless told not)."""
    called = _extension(element, "calledElement")
    return called is None or called.get("propagateAllChildVariables", "true") != "false"


@dataclass(frozen=True)
class Mapping:
    source: str  # a FEEL expression (``=...``), or else a static value
    target: str


def io_mapping(element) -> tuple[list[Mapping], list[Mapping]]:
    """The element's input and output mappings (``zeebe:ioMapping``)."""
    mapping = _extension(element, "ioMapping")
    if mapping is None:
        return [], []
    def read(tag: str) -> list[Mapping]:
        return [Mapping(m.get("source") or "", m.get("target") or "") for m in mapping.iterfind(f"zeebe:{tag}", NS)]
    return read("input"), read("output")


def multi_instance(loop) -> tuple[str | None, str | None]:
    """A multi-instance marker's collection and element variable (``camunda:collection`` /
    ``zeebe:loopCharacteristics inputCollection``)."""
    collection, variable = loop.get(C + "collection"), loop.get(C + "elementVariable")
    zeebe = loop.find("bpmn:extensionElements/zeebe:loopCharacteristics", NS)
    if zeebe is not None:
        collection = collection or zeebe.get("inputCollection")
        variable = variable or zeebe.get("inputElement")
    return collection, variable


def multi_instance_output(loop) -> tuple[str | None, str | None]:
    """A Camunda 8 multi-instance's output collection and output element (``zeebe:loopCharacteristics``)."""
    zeebe = loop.find("bpmn:extensionElements/zeebe:loopCharacteristics", NS)
    if zeebe is None:
        return None, None
    return (zeebe.get("outputCollection") or "").strip() or None, (zeebe.get("outputElement") or "").strip() or None


def script(element) -> tuple[str, str] | None:
    """A Camunda 8 script task's FEEL expression and result variable (``zeebe:script``), or None."""
    found = _extension(element, "script")
    return None if found is None else (found.get("expression") or "", found.get("resultVariable") or "")


def correlation_key(message) -> str | None:
    """A Camunda 8 message's correlation key (``zeebe:subscription``)."""
    subscription = _extension(message, "subscription")
    return None if subscription is None else subscription.get("correlationKey")


def extensions(element) -> dict[str, str]:
    """What the engine keeps of an element in its task spec's ``extensions``, the same for either dialect:
    the extension properties, then the task attributes under their Camunda 7 names (candidate groups as a
    comma list)."""
    found = properties(element)
    for name in CAMUNDA_ATTRIBUTES:
        value = element.get(C + name)
        if value is not None:
            found[name] = value
    if not any(etree.QName(e).namespace == ZEEBE_NS for e in _extension_children(element)):
        return found
    try:
        groups = candidate_group_names(element)
    except ValueError:
        groups = []  # refused at deploy (refusals)
    for name, value in (("candidateGroups", ", ".join(groups) or None), ("assignee", assignee(element)),
                        ("dueDate", due_date(element)), ("followUpDate", follow_up_date(element)),
                        ("formRef", form_ref(element)), ("formKey", form_key(element)), ("priority", _priority(element))):
        if value is not None:
            found.setdefault(name, value)
    return found


def _priority(element) -> str | None:
    definition = _extension(element, "priorityDefinition")
    return None if definition is None else definition.get("priority")


def _extension_children(element) -> list:
    extensions_element = element.find("bpmn:extensionElements", NS)
    return [] if extensions_element is None else [e for e in extensions_element if isinstance(e.tag, str)]


def expressions_of(element) -> list[tuple[str, str]]:
    """(what, expression) for each Camunda 8 expression on the element, to vet at deploy.

    Camunda 7's are vetted where they are read (conditions, timers, due dates)."""
    found = []
    for extension in _extension_children(element):
        qname = etree.QName(extension)
        if qname.namespace != ZEEBE_NS:
            continue
        local = qname.localname
        if local == "assignmentDefinition" and (value := extension.get("assignee", "")).startswith("="):
            found.append(("assignee", value))
        elif local == "taskSchedule":
            found += [(name, extension.get(name)) for name in ("dueDate", "followUpDate")
                      if (extension.get(name) or "").strip()]
        elif local == "ioMapping":
            found += [(f"{'input' if etree.QName(m).localname == 'input' else 'output'} mapping "
                       f"'{m.get('target')}'", m.get("source") or "") for m in extension if isinstance(m.tag, str)]
        elif local == "subscription":
            found.append(("correlation key", extension.get("correlationKey") or ""))
        elif local == "script":
            found.append(("script", extension.get("expression") or ""))
        elif local == "loopCharacteristics":
            found += [(what, extension.get(name)) for what, name in (("input collection", "inputCollection"),
                                                                     ("output element", "outputElement"))
                      if extension.get(name)]
    return found


def refusals(element) -> list[str]:
    """Why the element, as drawn for Camunda 8, cannot run here ([] when it can)."""
    found = []
    local = etree.QName(element).localname
    for extension in _extension_children(element):
        qname = etree.QName(extension)
        if qname.namespace != ZEEBE_NS:
            continue
        name = qname.localname
        if name in ZEEBE_REFUSED:
            reason = ZEEBE_REFUSED[name]
            if name == "taskDefinition" and local in ("intermediateThrowEvent", "endEvent", "sendTask"):
                reason = ("a job worker would send this message (zeebe:taskDefinition) and the service has no job "
                          "workers; remove the task definition: the service sends the message itself")
            found.append(reason)
        elif name == "executionListeners" and len(extension):
            found.append(ZEEBE_REFUSED["executionListener"])
        elif name not in ZEEBE_READ:
            found.append(f"zeebe:{name} is not something the service runs")
        elif name == "assignmentDefinition":
            try:
                candidate_group_names(element)
            except ValueError as error:
                found.append(str(error))
            if extension.get("candidateUsers"):
                found.append("candidate users are not supported: give the task to a role (candidate groups or a "
                             "lane), or to one person (assignee)")
        elif name == "formDefinition":
            if extension.get("externalReference") and "://" in extension.get("externalReference"):
                found.append("the form is on another web site (externalReference); the service shows its own "
                             "forms: deploy a .form file with the diagram and link it by its form id")
        elif name == "loopCharacteristics" and (bool(extension.get("outputCollection"))
                                                != bool(extension.get("outputElement"))):
            found.append("an output collection and an output element go together: the output element (such as "
                         "=seen) is what each instance adds to the output collection")
        elif name == "loopCharacteristics" and extension.get("outputCollection") and not extension.get(
                "outputCollection").isidentifier():
            found.append(f"the output collection '{extension.get('outputCollection')}' is not a name (letters, "
                         f"digits and _)")
        elif name == "calledDecision" and not extension.get("resultVariable"):
            found.append("zeebe:calledDecision needs a result variable (where the decision's result goes)")
        elif name == "script" and not extension.get("resultVariable"):
            found.append("zeebe:script needs a result variable (where the expression's value goes)")
        elif name == "ioMapping":
            for mapping in extension:
                if isinstance(mapping.tag, str) and not (mapping.get("target") or "").isidentifier():
                    found.append(f"the mapping target '{mapping.get('target')}' is not a name (letters, digits and _)")
    if local == "callActivity" and element.get("calledElement") is None and _extension(element, "calledElement") is None:
        found.append("the call activity does not say which process it calls (zeebe:calledElement processId)")
    return found
