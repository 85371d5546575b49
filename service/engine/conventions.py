"""The safeguarding conventions every pathway follows, read from its diagram and forms (docs/safeguarding.md).

Pathways speak the same words so that the service can check them: a significant-harm question is a
required yes / no / unsure radio; consent is ``given``, ``refused`` or ``not_sought`` with an override
reason and the manager who agreed; every pathway with a person's step catches ``immediate_risk`` in an
event sub-process whose first steps are urgent; a pathway the child is open to statutory services
through (``statutory``) catches it without interrupting; every end of a pathway names its outcome.

:func:`problems` lists what a bundle breaks, each naming the file and element with the fix; the
service refuses such a deploy. :func:`facts` reads what the service's run-time guards need.
This module reads XML and forms only: it knows nothing of the database or of HTTP.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from service import forms

from . import dialect
from .bundle import Bundle, Problem
from .xml import parse_xml

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
NS = {"bpmn": BPMN, "camunda": CAMUNDA, "zeebe": ZEEBE}

IMMEDIATE_RISK = "immediate_risk"
SIGNIFICANT_HARM_VALUES = ("yes", "no", "unsure")
CONSENT_VALUES = ("given", "refused", "not_sought")
CONSENT_OVERRIDE_REASONS = ("increase_risk", "prejudice_enquiry", "undue_delay")
CONSENT_OVERRIDE_FIELDS = ("consent_override_reason", "consent_override_agreed_by")
#: Elements a first step is looked for through: the first person's steps after immediate risk are urgent.
_PERSON_STEPS = ("userTask", "manualTask", "task")


@dataclass(frozen=True)
class ProcessFacts:
    """What the run-time guards need to know of one process."""
    properties: dict[str, str] = field(default_factory=dict)
    urgent_tasks: frozenset[str] = frozenset()  # element ids of steps due within the hour
    voluntary_ends: frozenset[str] = frozenset()  # end events that enrol the family in a voluntary service
    catches_immediate_risk: bool = False
    outcomes: dict[str, str] = field(default_factory=dict)  # outcome code -> the end event's name, as drawn

    @property
    def statutory(self) -> bool:
        return self.properties.get("statutory") == "true"

    @property
    def voluntary(self) -> bool:
        return self.properties.get("voluntary") == "true"


def is_significant_harm(key: str) -> bool:
    return key == "significant_harm" or key.endswith("_significant_harm")


def properties(element) -> dict[str, str]:
    """The element's own extension properties (Camunda 7 ``camunda:property`` or Camunda 8 ``zeebe:property``)."""
    return dialect.properties(element)


def facts(diagram: bytes | etree._Element, process_key: str) -> ProcessFacts:
    """What the guards need of process ``process_key`` of a diagram."""
    root = parse_xml(diagram, "diagram") if isinstance(diagram, bytes) else diagram
    process = root.find(f"bpmn:process[@id='{process_key}']", NS)
    if process is None:
        return ProcessFacts()
    starts = list(_immediate_risk_starts(root, process))
    urgent = {task for start in starts for task in _first_steps(start)}
    urgent |= {e.get("id") for e in _descendants(process, _PERSON_STEPS) if properties(e).get("urgent") == "true"}
    voluntary_ends = {e.get("id") for e in _descendants(process, ("endEvent",))
                      if properties(e).get("voluntary") == "true"}
    outcomes: dict[str, str] = {}
    for end in _descendants(process, ("endEvent",)):
        code, name = properties(end).get("outcome"), " ".join((end.get("name") or "").split())
        if code and name:
            outcomes.setdefault(code, name)
    return ProcessFacts(properties=properties(process), urgent_tasks=frozenset(urgent),
                        voluntary_ends=frozenset(voluntary_ends), catches_immediate_risk=bool(starts),
                        outcomes=outcomes)


def problems(bundle: Bundle) -> list[Problem]:
    """Everything the bundle's processes and forms break, each naming its file and element."""
    found: list[Problem] = []
    for file, form in _forms(bundle):
        found += form_problems(file, form)
    roots = {definition.filename: parse_xml(bundle.files[definition.filename], definition.filename)
             for definition in bundle.processes.values()}
    # A called process runs inside its caller's case: the caller catches immediate risk and names the outcome.
    called = {dialect.called_process(e) for root in roots.values() for e in root.iter(f"{{{BPMN}}}callActivity")}
    for key, definition in sorted(bundle.processes.items()):
        root = roots[definition.filename]
        process = root.find(f"bpmn:process[@id='{key}']", NS)
        if process is not None and key not in called:
            found += process_problems(definition.filename, root, process)
    return found


def _forms(bundle: Bundle) -> Iterator[tuple[str, forms.FormDefinition]]:
    """Every form of the bundle once, with the file it is in (a .form file, or the diagram for formData)."""
    files_of = {form_id: name for name, form_id in bundle.form_files.items()}
    seen: set[int] = set()
    for form_id, form in sorted(bundle.forms_by_id.items()):
        seen.add(id(form))
        yield files_of.get(form_id, form_id), form
    for definition in bundle.processes.values():
        for form in [definition.start_form, *definition.task_forms.values()]:
            if form is not None and id(form) not in seen:
                seen.add(id(form))
                yield definition.filename, form


def process_problems(file: str, root, process) -> list[Problem]:
    """A process with a person's step must catch immediate risk, urgently, and name every outcome."""
    key = process.get("id")
    if process.get("isExecutable") == "false" or not list(_descendants(process, _PERSON_STEPS)):
        return []
    found: list[Problem] = []
    starts = list(_immediate_risk_starts(root, process))
    if not starts:
        found.append(Problem(file, key, f"the pathway does not catch the message '{IMMEDIATE_RISK}': add an event "
                                        f"sub-process started by that message whose first step is a user task "
                                        f"for the front door (docs/safeguarding.md, rule 2)"))
    for start in starts:
        if not _first_steps(start):
            found.append(Problem(file, start.get("id"), f"the '{IMMEDIATE_RISK}' event sub-process must lead "
                                                        f"first to a user task for the front door"))
        if properties(process).get("statutory") == "true" and start.get("isInterrupting", "true") != "false":
            found.append(Problem(file, start.get("id"), "the child is open to statutory services while this pathway "
                                                        "runs (statutory = true): immediate risk must not interrupt "
                                                        "it, so that reviews go on; make the start event "
                                                        "non-interrupting"))
    for end in process.iterfind("bpmn:endEvent", NS):
        if _ends_the_case(process, end) and not properties(end).get("outcome"):
            found.append(Problem(file, end.get("id"), "every end of a pathway names its outcome: add the extension "
                                                      "property 'outcome' (rule 4: no child drops out of review)"))
    return found


def form_problems(file: str, form: forms.FormDefinition) -> list[Problem]:
    """Significant harm is a required yes / no / unsure radio; consent follows the convention."""
    found: list[Problem] = []
    fields = {f.key: f for f in form.fields}
    for f in form.fields:
        if is_significant_harm(f.key):
            found += _choice_problems(file, f, SIGNIFICANT_HARM_VALUES, ("radio",),
                                      "a significant-harm question (rule 7)")
    consent = fields.get("consent")
    if consent is not None:
        found += _choice_problems(file, consent, CONSENT_VALUES, ("radio", "select"), "the consent question (rule 3)")
        reason, agreed_by = (fields.get(k) for k in CONSENT_OVERRIDE_FIELDS)
        if reason is None or agreed_by is None:
            found.append(Problem(file, "consent", "a form asking consent also asks, when it is not sought, "
                                                  "'consent_override_reason' and 'consent_override_agreed_by' "
                                                  "(the manager who agreed) (rule 3)"))
        else:
            found += _choice_problems(file, reason, CONSENT_OVERRIDE_REASONS, ("radio", "select"),
                                      "the reason consent was not sought (rule 3)")
            if not agreed_by.required:
                found.append(Problem(file, agreed_by.key, "who agreed not to seek consent must be required when "
                                                          "it shows (rule 3)"))
    return found


def _choice_problems(file: str, f: forms.Field, values: tuple[str, ...], types: tuple[str, ...],
                     what: str) -> list[Problem]:
    wanted = ", ".join(values)
    if f.type not in types or not f.required or sorted(str(o.value) for o in f.options) != sorted(values):
        kind = " or ".join(types)
        return [Problem(file, f.key, f"{what} must be a required {kind} with exactly the values {wanted}; "
                                     f"it is a{'' if f.required else 'n optional'} {f.type} with "
                                     f"{', '.join(str(o.value) for o in f.options) or 'no options'}")]
    return []


def _immediate_risk_starts(root, process) -> Iterator:
    names = {m.get("id"): m.get("name") for m in root.iterfind("bpmn:message", NS)}
    for sub in _descendants(process, ("subProcess",)):
        if sub.get("triggeredByEvent") != "true":
            continue
        for start in sub.iterfind("bpmn:startEvent", NS):
            definition = start.find("bpmn:messageEventDefinition", NS)
            if definition is not None and names.get(definition.get("messageRef")) == IMMEDIATE_RISK:
                yield start


def _first_steps(start) -> set[str]:
    """The person's steps first reached from ``start`` along sequence flows of its (sub-)process."""
    container = start.getparent()
    flows = {}
    for flow in container.iterfind("bpmn:sequenceFlow", NS):
        flows.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
    by_id = {e.get("id"): e for e in container}
    found, seen, pending = set(), set(), [start.get("id")]
    while pending:
        current = pending.pop()
        for target in flows.get(current, ()):
            if target in seen:
                continue
            seen.add(target)
            element = by_id.get(target)
            if element is not None and etree.QName(element).localname in _PERSON_STEPS:
                found.add(target)
            else:
                pending.append(target)
    return found


def _ends_the_case(process, end) -> bool:
    """Whether ``end`` can end the case: some path back from it reaches the process's start without
    leaving through a non-interrupting boundary event (a reminder's branch ends while its step goes on) or
    a parallel split not joined again (one branch ends while the others go on). An error end event ends
    the case in error, with its code, not with an outcome."""
    if end.find("bpmn:errorEventDefinition", NS) is not None:
        return False
    sources: dict[str, list[str]] = {}
    outgoing: dict[str, int] = {}
    for flow in process.iterfind("bpmn:sequenceFlow", NS):
        sources.setdefault(flow.get("targetRef"), []).append(flow.get("sourceRef"))
        outgoing[flow.get("sourceRef")] = outgoing.get(flow.get("sourceRef"), 0) + 1
    by_id = {e.get("id"): e for e in process}
    seen, pending = set(), [(end.get("id"), False)]
    while pending:
        current, joined = pending.pop()
        element = by_id.get(current)
        if element is None or (current, joined) in seen:
            continue
        seen.add((current, joined))
        kind = etree.QName(element).localname
        if kind == "startEvent":
            return True
        if kind == "boundaryEvent":
            if element.get("cancelActivity", "true") == "false":
                continue
            pending.append((element.get("attachedToRef"), joined))
        if kind in ("parallelGateway", "inclusiveGateway"):
            if outgoing.get(current, 0) > 1 and not joined:
                continue  # a branch of a split that is not joined again on the way to this end
            joined = joined or len(sources.get(current, [])) > 1
        pending += [(source, joined) for source in sources.get(current, [])]
    return False


def _descendants(element, local_names: tuple[str, ...]) -> Iterator:
    for name in local_names:
        yield from element.iter(f"{{{BPMN}}}{name}")
