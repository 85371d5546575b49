"""A bundle: the diagrams, decision tables and forms of one deployment, parsed and checked.

:func:`build_bundle` refuses, with every problem named by file, element id and
reason, anything that could not run as drawn. A bundle that builds is ready to
start cases: each process has its SpiffWorkflow spec, its roles, its forms and
the content hash that decides whether it is a new version.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.camunda.specs.user_task import UserTask

from service import forms
from service.engine import decisions as dmn
from . import dialect, expressions, spiff, timers
from .parser import CAMUNDA_MODEL_NS, PathwayParser, role_key, task_roles
from .xml import XmlRejected, parse_xml

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_MODEL_NS}
C = f"{{{CAMUNDA_MODEL_NS}}}"

#: Names SpiffWorkflow gives its own tasks; an element with one of these ids breaks the process silently.
RESERVED_IDS = {"Start", "End", "Root", "StartEventSplit", "StartEventJoin"}
RESERVED_SUFFIXES = (".BoundaryEventSplit", ".BoundaryEventJoin", ".EndJoin")

#: What Camunda Modeler can draw that this service cannot run, and why.
UNSUPPORTED_ELEMENTS = {
    "serviceTask": "service tasks call Java or external workers; use a user task, a script task or a business rule task",
    "complexGateway": "complex gateways are not supported; use exclusive, inclusive or parallel gateways",
    "complexBehaviorDefinition": "complex multi-instance behaviour is not supported; use a completion condition",
}
UNSUPPORTED_CAMUNDA_ATTRIBUTES = {
    "class": "Java delegates do not run here", "delegateExpression": "Java delegates do not run here",
    "expression": "expression delegates do not run here", "type": "external tasks do not run here",
}
UNSUPPORTED_CAMUNDA_CHILDREN = {
    "executionListener": "execution listeners do not run here; draw the step as a task",
    "taskListener": "task listeners do not run here; draw the step as a task",
    "inputOutput": "input/output mappings are not applied; name the data in the form or decision",
    "connector": "connectors do not run here",
}


@dataclass(frozen=True)
class Problem:
    file: str
    element: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "element": self.element, "message": self.message}


class DeploymentInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.file} {p.element or ''}: {p.message}" for p in problems))


@dataclass
class ProcessDefinition:
    key: str
    name: str
    filename: str
    content_hash: str
    spec: Any
    subprocess_specs: dict[str, Any]
    roles: list[str]
    start_form: forms.FormDefinition | None
    task_forms: dict[str, forms.FormDefinition | None] = field(default_factory=dict)
    documentation: str | None = None
    diagram: bytes = b""
    files: tuple[str, ...] = ()  # every file the process needs: its diagram, called diagrams, decisions, forms
    starter_roles: list[str] = field(default_factory=list)  # camunda:candidateStarterGroups: who else may start it
    #: Facts worked out from the parsed process when first needed (``service.engine.runtime``: its reminders,
    #: correlation keys, ad-hoc activities), kept with it so that they go when it goes.
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def form_of(self, task_name: str) -> forms.FormDefinition | None:
        """The form of the user task with element id ``task_name``."""
        return self.task_forms.get(task_name)

    @cached_property
    def safeguarding(self):
        """What the safeguarding guards need of this process (:class:`conventions.ProcessFacts`)."""
        from .conventions import facts  # the conventions read bundles: imported when first needed
        return facts(self.diagram, self.key)


@dataclass
class Bundle:
    files: dict[str, bytes]
    processes: dict[str, ProcessDefinition] = field(default_factory=dict)
    decisions: Any = None
    forms_by_id: dict[str, forms.FormDefinition] = field(default_factory=dict)
    form_files: dict[str, str] = field(default_factory=dict)
    #: Camunda 8 forms embedded in a diagram (``zeebe:userTaskForm``), by that element's id.
    embedded_forms: dict[str, forms.FormDefinition] = field(default_factory=dict)

    @cached_property
    def content_hash(self) -> str:
        return _hash(self.files, sorted(self.files))

    def form_for(self, task_spec) -> forms.FormDefinition | None:
        """The form a user task or start event asks for: a linked Camunda Form or its formData."""
        ext = task_spec.extensions or {}
        if (ext.get("formKey") or "").startswith(EMBEDDED_FORM):
            return self.embedded_forms.get(ext["formKey"][len(EMBEDDED_FORM):])
        form_id = ext.get("formRef") or _form_id_from_key(ext.get("formKey"), self.form_files)
        if form_id:
            return self.forms_by_id.get(form_id)
        form = getattr(task_spec, "form", None)
        return forms.form_from_camunda(form, task_spec.bpmn_id) if form is not None else None


#: How a Camunda 8 user task names a form embedded in its diagram: ``camunda-forms:bpmn:<userTaskForm id>``.
EMBEDDED_FORM = "camunda-forms:bpmn:"


def _load_embedded_forms(bundle: Bundle, name: str, root) -> list[Problem]:
    """Read the form-js forms a Camunda 8 diagram embeds (``zeebe:userTaskForm``), as a .form file is read."""
    problems = []
    for element in root.iterfind(".//zeebe:userTaskForm", dialect.NS):
        form_id = element.get("id") or ""
        if form_id in bundle.embedded_forms:
            problems.append(Problem(name, form_id, f"another diagram of the deployment embeds a form with the id "
                                                   f"'{form_id}': give each embedded form its own id"))
            continue
        try:
            bundle.embedded_forms[form_id] = forms.form_from_formjs((element.text or "").strip(), form_id)
        except forms.FormDefinitionError as error:
            problems += [Problem(name, form_id, f"the embedded form {message}") for _, message in error.problems]
    return problems


def _form_id_from_key(key: str | None, form_files: dict[str, str]) -> str | None:
    if not key:
        return None
    name = key.rsplit(":", 1)[-1]
    return form_files.get(name, name if not name.endswith(".form") else None)


def _hash(files: Mapping[str, bytes], names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


#: Scenario tests deployed with a pathway (``<process_key>.<name>.scenario.json``, ``service.scenarios``).
SCENARIO_SUFFIX = ".scenario.json"


def build_bundle(files: Mapping[str, bytes]) -> Bundle:
    """Parse and check every file; raise :class:`DeploymentInvalid` listing all problems."""
    bundle, problems = Bundle(files=dict(files)), []
    bundle.decisions = dmn.DecisionRegistry()
    decision_files: dict[str, str] = {}
    trees: dict[str, etree._Element] = {}
    for name in sorted(files):
        kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if name.lower().endswith(SCENARIO_SUFFIX):
            continue  # a scenario test of a process (service.scenarios): the deploy checks read it
        if kind not in ("bpmn", "dmn", "form"):
            problems.append(Problem(name, None, "only .bpmn, .dmn, .form and .scenario.json files can be deployed"))
        elif kind == "form":
            problems += _load_form(bundle, name, files[name])
        else:
            try:
                trees[name] = parse_xml(files[name], name)
            except XmlRejected as error:
                problems.append(Problem(name, None, str(error)))
                continue
            if kind == "dmn":
                problems += _load_decisions(bundle, name, trees.pop(name), decision_files)
    if problems:
        raise DeploymentInvalid(problems)
    for name, root in trees.items():
        problems += _load_embedded_forms(bundle, name, root)
    process_files: dict[str, str] = {}
    for name, root in trees.items():
        file_problems = _check_bpmn(bundle, name, root)
        problems += file_problems
        for process in root.iterfind("bpmn:process", NS) if not file_problems else ():
            key = process.get("id")
            if key in process_files:
                problems.append(Problem(name, key, f"the process id '{key}' is already used in {process_files[key]}"))
            process_files[key] = name
    problems += _check_called_processes(trees, process_files)
    if problems:
        raise DeploymentInvalid(problems)
    for filename in sorted(set(process_files.values())):
        problems += _define_processes(bundle, filename, trees, process_files, decision_files)
    if problems:
        raise DeploymentInvalid(problems)
    return bundle


def _define_processes(bundle: Bundle, filename: str, trees, process_files, decision_files) -> list[Problem]:
    """Parse one diagram (with the diagrams it calls) and define its executable processes.

    Each diagram gets a parser of its own: element ids need only be unique within a file, as in the modeller,
    and SpiffWorkflow's parser treats embedded sub-process ids as process ids across every file it holds.
    """
    parser = PathwayParser(bundle.decisions)
    try:
        for name in [filename, *sorted(_called_files(filename, trees, process_files) - {filename})]:
            parser.add_bpmn_xml(trees[name], filename=name)
    except ValidationException as error:
        return [_from_validation(filename, error)]
    problems = []
    for process in trees[filename].iterfind("bpmn:process", NS):
        key = process.get("id")
        if process.get("isExecutable", "true") != "true":
            continue
        try:
            bundle.processes[key] = _define_process(bundle, parser, key, filename, process, trees, process_files,
                                                    decision_files)
        except DeploymentInvalid as error:
            problems += error.problems
        except forms.FormDefinitionError as error:
            problems += [Problem(filename, element, message) for element, message in error.problems]
        except (ValidationException, KeyError, ValueError) as error:
            problems.append(_from_validation(filename, error) if isinstance(error, ValidationException)
                            else Problem(filename, key, str(error)))
    return problems


def _called_files(filename: str, trees, process_files) -> set[str]:
    """The diagram files that ``filename`` calls, directly or through other calls."""
    found, pending = set(), [filename]
    while pending:
        current = pending.pop()
        for call in trees[current].iterfind(".//bpmn:callActivity", NS):
            called = process_files.get(dialect.called_process(call))
            if called and called not in found:
                found.add(called)
                pending.append(called)
    return found


def _load_form(bundle: Bundle, name: str, content: bytes) -> list[Problem]:
    try:
        form = forms.form_from_formjs(content, name)
    except forms.FormDefinitionError as error:
        return [Problem(name, element, message) for element, message in error.problems]
    if form.id in bundle.forms_by_id:
        return [Problem(name, form.id, f"another form already has the id '{form.id}'")]
    bundle.forms_by_id[form.id] = form
    bundle.form_files[name.rsplit("/", 1)[-1]] = form.id
    return []


def _load_decisions(bundle: Bundle, name: str, root, decision_files: dict[str, str]) -> list[Problem]:
    try:
        model = dmn.load_decisions(root, name)
        bundle.decisions.add(model)
    except dmn.DecisionDefinitionError as error:
        return [Problem(p.file or name, p.element, p.message) for p in error.problems]
    for decision_id in model.decisions:
        decision_files[decision_id] = name
    return [Problem(p.file or name, p.element, p.message) for p in dmn.check_decisions(model)]


def _xsd_problems(name: str, root) -> list[Problem]:
    return [Problem(name, None, f"line {line}: {message}") for line, message in spiff.xsd_errors(root)]


def _check_bpmn(bundle: Bundle, name: str, root) -> list[Problem]:
    if etree.QName(root).namespace != BPMN_NS:
        return [Problem(name, None, "this is not a BPMN 2.0 file (no bpmn:definitions root)")]
    problems = _xsd_problems(name, root)
    if problems:
        return problems
    lanes = {ref.text.strip(): lane.get("name") or "" for lane in root.iterfind(".//bpmn:lane", NS)
             for ref in lane.iterfind("bpmn:flowNodeRef", NS) if ref.text}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        problems += _check_element(bundle, name, element, lanes)
    return problems


def _check_element(bundle: Bundle, name: str, element, lanes: dict[str, str]) -> list[Problem]:
    qname, element_id = etree.QName(element), element.get("id")
    local, problems = qname.localname, []

    def problem(message: str) -> None:
        problems.append(Problem(name, _named_element(element), message))

    if element_id and (element_id in RESERVED_IDS or element_id.endswith(RESERVED_SUFFIXES)):
        problem(f"the id '{element_id}' is one the engine uses for its own steps; rename it (e.g. Event_{element_id})")
    if qname.namespace == CAMUNDA_MODEL_NS and local in UNSUPPORTED_CAMUNDA_CHILDREN:
        problem(UNSUPPORTED_CAMUNDA_CHILDREN[local])
    if qname.namespace != BPMN_NS:
        return problems
    for reason in dialect.refusals(element):
        problem(reason)
    for what, text in dialect.expressions_of(element):
        _check(problem, timers.check_timer_expression if what in ("dueDate", "followUpDate")
               else expressions.compile_expression, text, what)
    if local in UNSUPPORTED_ELEMENTS:
        problem(UNSUPPORTED_ELEMENTS[local])
    for attribute, reason in UNSUPPORTED_CAMUNDA_ATTRIBUTES.items():
        if element.get(C + attribute) is not None and local not in ("messageEventDefinition",):
            problem(f"camunda:{attribute} is set: {reason}")
    if local in ("compensateEventDefinition",) or element.get("isForCompensation") == "true":
        problem("compensation is not supported: undo the work with steps on the error or cancel path instead")
    if local == "conditionExpression":
        _check(problem, expressions.compile_expression, element.text or "", "condition")
    elif local == "condition" and etree.QName(element.getparent()).localname == "conditionalEventDefinition":
        _check(problem, expressions.compile_expression, element.text or "", "condition")
    elif local == "completionCondition" and etree.QName(element.getparent()).localname == "adHocSubProcess":
        _check(problem, expressions.compile_expression, element.text or "", "completion condition")
    elif local == "adHocSubProcess":
        if element.get("ordering") == "Sequential":
            problem("a sequential ad-hoc sub-process is not supported: its activities all open at once "
                    "(ordering Parallel); chain them with sequence flows to run one after another")
        if element.find("bpmn:startEvent", NS) is not None or element.find("bpmn:endEvent", NS) is not None:
            problem("an ad-hoc sub-process has no start or end events: its activities open when it starts")
    elif local == "cancelEventDefinition":
        owner = element.getparent()
        attached = owner.get("attachedToRef")
        target = root_of(element).find(f".//*[@id='{attached}']") if attached else None
        inside = any(etree.QName(a).localname == "transaction" for a in owner.iterancestors())
        if (attached and (target is None or etree.QName(target).localname != "transaction")) or \
                (not attached and not inside):
            problem("cancel events belong to transactions: a cancel end event inside one, a cancel boundary event "
                    "on one")
    elif local == "subProcess" and element.get("triggeredByEvent") == "true":
        starts = element.findall("bpmn:startEvent", NS)
        if not starts or any(not any(etree.QName(c).localname.endswith("EventDefinition") for c in start
                                     if isinstance(c.tag, str)) for start in starts):
            problem("an event sub-process starts only on its event: give its start event a message, timer, "
                    "signal, error, escalation or conditional definition")
    elif local == "messageEventDefinition" and element.get(C + "expression"):
        _check(problem, expressions.compile_expression, element.get(C + "expression"), "message payload")
    elif local in ("timeDate", "timeDuration", "timeCycle"):
        _check(problem, timers.check_timer_expression, element.text or "", "timer")
    elif local == "scriptTask" and dialect.script(element) is None:  # a zeebe:script is FEEL, vetted above
        script_format = (element.get("scriptFormat") or "python").lower()
        if script_format not in ("python", "python3"):
            problem(f"scripts must be Python; this one is {script_format}")
        script = element.find("bpmn:script", NS)
        _check(problem, expressions.compile_script, script.text if script is not None else "", "script")
    elif local in ("userTask", "task", "manualTask"):
        problems += _check_user_task(bundle, name, element, lanes)
    elif local == "multiInstanceLoopCharacteristics":
        for message in _multi_instance_problems(element):
            problem(message)
    elif local == "standardLoopCharacteristics":
        for message in _loop_problems(element):
            problem(message)
    elif local == "eventBasedGateway":
        targets = [element.getparent().find(f"*[@id='{flow.get('targetRef')}']")
                   for flow in element.getparent().iterfind(f"bpmn:sequenceFlow[@sourceRef='{element_id}']", NS)]
        if sum(1 for t in targets if t is not None and t.find("bpmn:timerEventDefinition", NS) is not None) > 1:
            problem("an event-based gateway here can wait for one timer at most (and any messages or signals)")
    elif local == "startEvent":
        if element.find("bpmn:conditionalEventDefinition", NS) is not None:
            problem("conditional start events are not supported: nothing checks the condition before the process "
                    "runs; use a conditional intermediate or boundary event")
        for message in _form_problems(bundle, element):
            problem(message)
    elif local == "businessRuleTask":
        called = dialect.called_decision(element)
        ref = called.decision_id
        if not ref:
            problem("a business rule task needs the decision it evaluates (camunda:decisionRef, or "
                    "zeebe:calledDecision decisionId)")
        elif ref not in bundle.decisions:
            problem(f"the decision '{ref}' is not deployed (no .dmn file has a decision with that id)")
        elif called.map_result not in (None, "dmn", "singleEntry", "singleResult", "collectEntries", "resultList"):
            problem(f"camunda:mapDecisionResult '{called.map_result}' is not one Camunda defines")
    return problems


#: The activities whose multi-instance the engine runs (see parser._CamundaExtensions).
MULTI_INSTANCE_ACTIVITIES = {"userTask", "task", "manualTask", "businessRuleTask", "subProcess"}


def _multi_instance_problems(element) -> list[str]:
    """What stops a multi-instance marker from running: where it is, its collection, cardinality, condition."""
    owner = etree.QName(element.getparent()).localname
    if owner not in MULTI_INSTANCE_ACTIVITIES or element.getparent().get("triggeredByEvent") == "true":
        return [f"multi-instance is not supported on a {owner}; use it on a user task, manual task, business rule "
                f"task or embedded sub-process"]
    problems = []
    collection, variable = dialect.multi_instance(element)
    collection = collection or element.findtext("bpmn:loopDataInputRef", namespaces=NS)
    cardinality = (element.findtext("bpmn:loopCardinality", namespaces=NS) or "").strip()
    if not collection and not cardinality:
        problems.append("a multi-instance activity needs camunda:collection (the list to go through) or a loop "
                        "cardinality (how many times)")
    if collection:
        problems += _expression_problems(collection, "collection")
    if cardinality:
        problems += _count_problems(cardinality, "loop cardinality")
    if variable is not None and not variable.isidentifier():
        problems.append(f"the element variable '{variable}' is not a name (letters, digits and _)")
    condition = element.findtext("bpmn:completionCondition", namespaces=NS)
    if condition is not None:
        problems += _expression_problems(condition, "completion condition")
    return problems


def _loop_problems(element) -> list[str]:
    """What stops a standard loop from running: its maximum and its condition."""
    problems = []
    maximum = element.get("loopMaximum")
    condition = element.findtext("bpmn:loopCondition", namespaces=NS)
    if maximum is None and condition is None:
        problems.append("a loop needs a loop maximum or a loop condition, or it never ends")
    if maximum is not None:
        problems += _count_problems(maximum, "loop maximum", expression=False)
    if condition is not None:
        problems += _expression_problems(condition, "loop condition")
    return problems


def _count_problems(text: str, what: str, expression: bool = True) -> list[str]:
    """A count is a whole number from 0 up, or (where allowed) an expression giving one at run time."""
    literal = expressions.unwrap(text.strip())
    try:
        value = int(literal)
    except ValueError:
        if not expression or literal.replace(".", "", 1).lstrip("-").isdigit():
            return [f"the {what} '{text}' is not a whole number"]
        return _expression_problems(text, what)
    return [f"the {what} is {value}: it cannot be negative"] if value < 0 else []


def _expression_problems(text: str, what: str) -> list[str]:
    try:
        expressions.compile_expression(text)
    except expressions.ExpressionError as error:
        return [f"{what}: {error}"]
    return []


def _check_user_task(bundle: Bundle, name: str, element, lanes: dict[str, str]) -> list[Problem]:
    element_id, problems = element.get("id"), []
    kind = {"userTask": "user task", "task": "task", "manualTask": "manual task"}[etree.QName(element).localname]
    if not (dialect.candidate_groups(element) or lanes.get(element_id)):
        problems.append(Problem(name, element_id, f"the {kind} has no role: put it in a named lane or set "
                                                  f"candidate groups"))
    problems += [Problem(name, element_id, message) for message in _form_problems(bundle, element)]
    assignee = element.get(C + "assignee")
    if assignee and ("${" in assignee or "#{" in assignee):
        try:
            expressions.compile_expression(assignee)
        except expressions.ExpressionError as error:
            problems.append(Problem(name, element_id, f"assignee: {error}"))
    due = element.get(C + "dueDate")  # Camunda 8's is vetted with its other expressions (dialect.expressions_of)
    if due:
        try:
            timers.check_timer_expression(due)
        except expressions.ExpressionError as error:
            problems.append(Problem(name, element_id, f"due date: {error}"))
    return problems


def _form_problems(bundle: Bundle, element) -> list[str]:
    """A linked form (by form id, or by key or reference naming a .form file) that is not deployed."""
    form_ref = dialect.form_ref(element)
    if form_ref and form_ref not in bundle.forms_by_id:
        return [f"the form '{form_ref}' is not deployed (no .form file has that id)"]
    key = dialect.form_key(element)
    if key and not form_ref and key.startswith(EMBEDDED_FORM):
        embedded = key[len(EMBEDDED_FORM):]
        missing = f"the embedded form '{embedded}' is not in the diagram (no zeebe:userTaskForm has that id)"
        return [missing] if embedded not in bundle.embedded_forms else []
    if key and not form_ref and "://" not in key and not key.startswith("camunda-forms:bpmn:"):
        if _form_id_from_key(key, bundle.form_files) not in bundle.forms_by_id:
            target = key.rsplit(":", 1)[-1]
            if key.startswith(("embedded:", "app:")) or target.endswith((".html", ".htm")):
                why = "embedded and external forms are pages of a Java application, which this service does not have"
            else:
                why = f"no deployed .form file is '{target}' or has that id"
            return [f"the form key '{key}' cannot be shown here ({why}): link a Camunda Form deployed with the "
                    f"diagram (camunda:formRef, or 'camunda-forms:deployment:<file>.form'), or give the step "
                    f"generated form fields"]
    return []


def _check(problem, check, text: str, what: str) -> None:
    try:
        check(text)
    except expressions.ExpressionError as error:
        problem(f"{what}: {error}")


#: Parts of an element that have ids of their own but are not what a modeller clicks on to fix it.
_PARTS = ("EventDefinition", "timeDate", "timeDuration", "timeCycle", "condition", "completionCondition",
          "loopCardinality", "loopCondition", "LoopCharacteristics", "script")


def root_of(element):
    return element.getroottree().getroot()


def _named_element(element) -> str | None:
    """The element a problem is reported on: the event, task or flow a definition, timer or condition is part of."""
    while element is not None and (element.get("id") is None or (
            isinstance(element.tag, str) and etree.QName(element).localname.endswith(_PARTS)
            and element.getparent() is not None and element.getparent().get("id") is not None)):
        element = element.getparent()
    return element.get("id") if element is not None else None


def _check_called_processes(trees: dict[str, Any], process_files: dict[str, str]) -> list[Problem]:
    problems = []
    for name, root in trees.items():
        for call in root.iterfind(".//bpmn:callActivity", NS):
            called = dialect.called_process(call)
            if called is not None and called not in process_files:
                problems.append(Problem(name, call.get("id"), f"the called process '{called}' is not deployed"))
    return problems


def _from_validation(name: str, error: ValidationException) -> Problem:
    element = getattr(error, "id", None) or getattr(error, "name", None)
    message = str(error).split(" Source Details:")[0].split("\n")[0]
    return Problem(getattr(error, "file_name", None) or name, element, message)


def _define_process(bundle: Bundle, parser: PathwayParser, key: str, filename: str, process, trees,
                    process_files, decision_files) -> ProcessDefinition:
    spec = parser.get_spec(key)
    subprocess_specs = parser.get_subprocess_specs(key)
    # A person's steps: user tasks, and plain and manual tasks, which wait for a person of their lane too.
    user_tasks = [ts for s in [spec, *subprocess_specs.values()] for ts in s.task_specs.values()
                  if isinstance(ts, UserTask) or (ts.manual and ts.bpmn_id)]
    roles = sorted({role for ts in user_tasks for role in task_roles(ts)})
    none_start = next((ts for ts in spec.task_specs.values() if isinstance(ts, StartEvent)
                       and isinstance(ts.event_definition, NoneEventDefinition)), None)
    start_form = _start_form(bundle, none_start, process) if none_start is not None else None
    documentation = process.findtext("bpmn:documentation", namespaces=NS)
    starters = sorted({role_key(g) for g in (process.get(C + "candidateStarterGroups") or "").split(",") if g.strip()})
    task_forms = {}
    for task_spec in user_tasks:
        try:
            task_forms[task_spec.bpmn_id] = bundle.form_for(task_spec)
        except forms.FormDefinitionError as error:
            raise DeploymentInvalid([Problem(filename, element or task_spec.bpmn_id, message)
                                     for element, message in error.problems]) from None
    needed = _process_files(bundle, key, trees, process_files, decision_files)
    return ProcessDefinition(
        key=key, name=process.get("name") or key, filename=filename, content_hash=_hash(bundle.files, needed),
        spec=spec, subprocess_specs=subprocess_specs, roles=roles, start_form=start_form,
        task_forms=task_forms, documentation=documentation, diagram=bundle.files[filename], files=tuple(needed),
        starter_roles=starters,
    )


def _start_form(bundle: Bundle, start_event, process) -> forms.FormDefinition | None:
    # CamundaParser reads camunda:formData on user tasks only; a start event's is read from the XML.
    form = bundle.form_for(start_event)
    if form is not None:
        return form
    element = process.find(f"bpmn:startEvent[@id='{start_event.bpmn_id}']", NS)
    return forms.form_from_camunda(forms.camunda_form_of(element), start_event.bpmn_id) if element is not None else None


def scenario_files(files: Mapping[str, bytes], key: str) -> list[str]:
    """The scenario tests of process ``key``: the files named ``<key>.<name>.scenario.json``."""
    return sorted(n for n in files if n.lower().endswith(SCENARIO_SUFFIX) and n.rsplit("/", 1)[-1].split(".", 1)[0] == key)


def _process_files(bundle: Bundle, key: str, trees, process_files, decision_files) -> list[str]:
    """Every file the process needs, by name: its diagram, called diagrams, decisions and forms, and its
    scenario tests (versioned with it: a changed scenario makes a new version, as a changed form does)."""
    needed, pending = set(scenario_files(bundle.files, key)), [key]
    seen = set()
    while pending:
        process = pending.pop()
        if process in seen:
            continue
        seen.add(process)
        filename = process_files[process]
        needed.add(filename)
        root = trees[filename]
        pending += [dialect.called_process(c) for c in root.iterfind(".//bpmn:callActivity", NS)
                    if dialect.called_process(c) in process_files]
        for task in root.iterfind(".//bpmn:businessRuleTask", NS):
            ref = dialect.called_decision(task).decision_id
            if ref in decision_files:
                needed.update(_decision_files(bundle, ref, decision_files))
        for element in root.iter():
            if isinstance(element.tag, str) and dialect.form_ref(element) in bundle.forms_by_id:
                form_id = dialect.form_ref(element)
                needed.update(n for n, fid in bundle.form_files.items() if fid == form_id
                              for n in [_full_name(bundle, n)] if n)
    return sorted(needed)


def _decision_files(bundle: Bundle, decision_id: str, decision_files: dict[str, str]) -> set[str]:
    files, pending, seen = set(), [decision_id], set()
    while pending:
        current = pending.pop()
        if current in seen or current not in decision_files:
            continue
        seen.add(current)
        files.add(decision_files[current])
        pending += list(bundle.decisions.get(current).required)
    return files


def _full_name(bundle: Bundle, short: str) -> str | None:
    return next((name for name in bundle.files if name.rsplit("/", 1)[-1] == short), None)


def describe(problems: list[Problem]) -> str:
    return json.dumps([p.to_json() for p in problems], indent=2)
