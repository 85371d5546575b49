"""What changed between two versions of a pathway: elements added, removed and changed, by element id.

An analyst reads this before publishing or when a case behaves differently on a new version. Both versions'
own files (the diagram, called diagrams, decision tables and forms: ``ProcessDefinition.files``) are read
with lxml (through ``service.engine.xml``: no DTD, no entities) or as form-js JSON, and compared element by
element:

* BPMN: every element of the process model with an ``id`` (tasks, events, gateways, flows, lanes ...);
  its attributes (``name``, ``camunda:candidateGroups``, ``camunda:formRef`` ...) and what it holds that
  has no id of its own (a flow's condition, a timer's duration, ``camunda:property`` values, documentation)
  are its attributes here. The diagram's layout (``bpmndi``) is not compared: moving a shape changes nothing
  a case does.
* DMN: decisions, inputs, outputs and rules; a rule's attributes are its cells, named by their column
  ("when Needs score", "then level").
* Forms: each component by its id; its key, label, type, validation and conditions as attributes.

The result is plain data (:class:`PathwayDiff`); pages and the API render it. Comparisons are cached by
the two versions' file contents, so a list of versions each compared with the one before is cheap.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.deploy_checks import content_hash
from service.engine.xml import XmlRejected, parse_xml
from service.lru import Lru
from service.models import DeploymentFile, ProcessVersion

#: Namespaces of the diagram's layout: not compared.
_LAYOUT = {"http://www.omg.org/spec/BPMN/20100524/DI", "http://www.omg.org/spec/DD/20100524/DC",
           "http://www.omg.org/spec/DD/20100524/DI", "https://www.omg.org/spec/DMN/20191111/DMNDI/",
           "http://www.omg.org/spec/DMN/20180521/DMNDI/", "http://www.omg.org/spec/DMN/20180521/DC/",
           "http://www.omg.org/spec/DMN/20180521/DI/", "https://www.omg.org/spec/DMN/20191111/DI/"}
_PREFIXES = {"http://camunda.org/schema/1.0/bpmn": "camunda", "http://camunda.org/schema/1.0/dmn": "camunda",
             "http://camunda.org/schema/modeler/1.0": "modeler", "http://www.w3.org/2001/XMLSchema-instance": "xsi",
             "http://camunda.org/schema/zeebe/1.0": "zeebe"}
#: Elements that hold others: listed in the table of changes, never coloured on the diagram.
CONTAINERS = {"process", "collaboration", "participant", "laneSet", "lane", "definitions"}
#: DMN parts that have ids but are read as part of their rule or column.
_DMN_PARTS = {"inputEntry", "outputEntry", "inputExpression", "annotationEntry"}


@dataclass(frozen=True)
class Element:
    """An element of a version: where it is, its id, its kind (the XML or form-js type) and its name."""

    source: str  # bpmn | dmn | form | scenario
    file: str
    id: str
    kind: str
    name: str | None
    attributes: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})" if self.name and self.name != self.id else self.id


#: Attributes that are sets of element ids (a lane's elements, a node's flows): shown as ids added and taken away.
SET_ATTRIBUTES = ("flowNodeRef", "incoming", "outgoing")


@dataclass(frozen=True)
class AttributeChange:
    name: str
    before: str | None  # None: not there before
    after: str | None  # None: not there any more

    @property
    def is_set(self) -> bool:
        return self.name.rsplit("/", 1)[-1] in SET_ATTRIBUTES

    @property
    def added(self) -> list[str]:
        return sorted(set((self.after or "").split()) - set((self.before or "").split()))

    @property
    def removed(self) -> list[str]:
        return sorted(set((self.before or "").split()) - set((self.after or "").split()))


@dataclass(frozen=True)
class ElementChange:
    before: Element
    after: Element
    attributes: list[AttributeChange]

    @property
    def id(self) -> str:
        return self.after.id


@dataclass
class PathwayDiff:
    """From version ``a`` to version ``b``: what ``b`` has that ``a`` had not, what it dropped, what differs."""

    a: ProcessVersion | None  # None: nothing before (every element of ``b`` is added)
    b: ProcessVersion
    added: list[Element]
    removed: list[Element]
    changed: list[ElementChange]
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a file that could not be read (never expected)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.files_added or self.files_removed)

    def summary(self) -> str:
        """In words, for a list of versions: "2 added, 1 removed, 3 changed" (or "no change to any element")."""
        parts = [f"{len(items)} {word}" for items, word in ((self.added, "added"), (self.removed, "removed"),
                                                              (self.changed, "changed")) if items]
        if self.files_added:
            parts.append(f"file{'s' if len(self.files_added) > 1 else ''} {', '.join(self.files_added)} added")
        if self.files_removed:
            parts.append(f"file{'s' if len(self.files_removed) > 1 else ''} {', '.join(self.files_removed)} removed")
        return ", ".join(parts) if parts else "no change to any element"

    def to_dict(self) -> dict[str, Any]:
        """As JSON for the API: ``{"from", "to", "key", "files": {"added", "removed", "changed"}, "added": [element],
        "removed": [element], "changed": [element + {"attributes": {name: [before, after]}}]}``, an element being
        ``{"id", "type", "name", "file"}``."""
        def element(e: Element) -> dict[str, Any]:
            return {"id": e.id, "type": e.kind, "name": e.name, "file": e.file}

        return {"from": self.a.version if self.a is not None else None, "to": self.b.version, "key": self.b.key,
                "files": {"added": self.files_added, "removed": self.files_removed, "changed": self.files_changed},
                "added": [element(e) for e in self.added], "removed": [element(e) for e in self.removed],
                "changed": [{**element(c.after), "attributes": {a.name: [a.before, a.after] for a in c.attributes}}
                            for c in self.changed]}

    def ids(self, source: str = "bpmn") -> dict[str, list[str]]:
        """Element ids by change, for colouring the diagrams: added and changed are in ``b``, removed in ``a``.
        Containers (pools, lanes, the process) are left out: a lane "changes" whenever an element in it comes or
        goes, and colouring all of it would hide the element that did."""
        def shown(e: Element) -> bool:
            return e.source == source and e.kind not in CONTAINERS

        return {"added": [e.id for e in self.added if shown(e)],
                "removed": [e.id for e in self.removed if shown(e)],
                "changed": [c.id for c in self.changed if shown(c.after)]}


def version_files(session: Session, version: ProcessVersion) -> dict[str, bytes]:
    """The version's own files (its diagram, called diagrams, decision tables, forms) by name."""
    from service import deployments  # deployments imports the engine; imported when first needed

    names = deployments.process_definition(session, version).files
    rows = session.scalars(select(DeploymentFile).where(DeploymentFile.deployment_id == version.deployment_id,
                                                        DeploymentFile.name.in_(names)))
    return {row.name: row.content for row in rows}


def diff_versions(session: Session, a: ProcessVersion | None, b: ProcessVersion) -> PathwayDiff:
    """What changed from version ``a`` (None: nothing before) to version ``b`` of a pathway (or between two
    pathways' versions)."""
    before, after = (version_files(session, a) if a is not None else {}), version_files(session, b)
    key = (content_hash(before), content_hash(after))
    cached = _compared().get(key)
    if cached is None:
        cached = _compare(before, after)
        _compared().put(key, cached)
    added, removed, changed, files_added, files_removed, files_changed, problems = cached
    return PathwayDiff(a, b, list(added), list(removed), list(changed), list(files_added), list(files_removed),
                       list(files_changed), list(problems))


def _compared() -> Lru[tuple[str, str], tuple]:
    """The app's comparisons by the content of both sides (bounded): a version's page compares the same two
    versions on every view."""
    return current_app.extensions.setdefault("step_pathways.compared_versions", Lru(256))


def _compare(before: dict[str, bytes], after: dict[str, bytes]) -> tuple:
    problems: list[str] = []
    old, new = elements(before, problems), elements(after, problems)
    added = [e for k, e in new.items() if k not in old]
    removed = [e for k, e in old.items() if k not in new]
    changed = []
    for k, e in new.items():
        if k in old and old[k].attributes != e.attributes or k in old and old[k].kind != e.kind:
            changed.append(ElementChange(old[k], e, _attribute_changes(old[k], e)))
    return (tuple(added), tuple(removed), tuple(changed), tuple(sorted(set(after) - set(before))),
            tuple(sorted(set(before) - set(after))),
            tuple(sorted(n for n in set(before) & set(after) if before[n] != after[n])), tuple(problems))


def _attribute_changes(a: Element, b: Element) -> list[AttributeChange]:
    changes = [AttributeChange("kind", a.kind, b.kind)] if a.kind != b.kind else []
    for name in sorted(set(a.attributes) | set(b.attributes)):
        if a.attributes.get(name) != b.attributes.get(name):
            changes.append(AttributeChange(name, a.attributes.get(name), b.attributes.get(name)))
    return changes


# -- reading the elements of each kind of file ---------------------------------------------------------

def elements(files: dict[str, bytes], problems: list[str] | None = None) -> dict[tuple[str, str], Element]:
    """Every element of ``files`` with its attributes, by (source, id)."""
    found: dict[tuple[str, str], Element] = {}
    for name in sorted(files):
        lower = name.lower()
        try:
            if lower.endswith(".scenario.json"):
                items = [_scenario_element(name, json.loads(files[name]))]
            elif lower.endswith(".bpmn"):
                items = _bpmn_elements(name, parse_xml(files[name], name))
            elif lower.endswith(".dmn"):
                items = _dmn_elements(name, parse_xml(files[name], name))
            elif lower.endswith(".form"):
                items = _form_elements(name, json.loads(files[name]))
            else:
                continue
        except (XmlRejected, ValueError) as error:
            if problems is not None:
                problems.append(f"{name}: {error}")
            continue
        for item in items:
            found.setdefault((item.source, item.id), item)
    return found


def _qname(tag: str) -> str:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    prefix = _PREFIXES.get(namespace)
    return f"{prefix}:{local}" if prefix else local


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _namespace(tag: Any) -> str:
    return etree.QName(tag).namespace or "" if isinstance(tag, str) else ""


def _text(node) -> str:
    return " ".join((node.text or "").split())


def _bpmn_elements(filename: str, root) -> list[Element]:
    found = []
    for node in root.iter():
        if not _is_bpmn_element(node) or node is root:
            continue  # the definitions element: its id says nothing a case does
        attributes = {_qname(k): v for k, v in node.attrib.items() if k != "id"}
        _held(node, "", attributes, stop=_is_bpmn_element)
        found.append(Element("bpmn", filename, node.get("id"), _local(node.tag), node.get("name"), attributes))
    return found


_BPMN_MODEL = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def _is_bpmn_element(node) -> bool:
    """An element of the process model with an id of its own (``camunda:formField`` ids are field keys)."""
    return isinstance(node.tag, str) and _namespace(node.tag) == _BPMN_MODEL and bool(node.get("id"))


def _held(node, path: str, attributes: dict[str, str], stop) -> None:
    """What ``node`` holds that has no id of its own, as attributes named by their path."""
    counts: dict[str, int] = {}
    for child in node:
        if not isinstance(child.tag, str) or _namespace(child.tag) in _LAYOUT or stop(child):
            continue
        name = _qname(child.tag)
        if child.get("name") is not None and name.endswith(("property", "inputParameter", "outputParameter",
                                                            "field", "in", "out", "formField", "value")):
            name = f"{name}[{child.get('name') or child.get('id')}]"
        elif name in ("incoming", "outgoing", "flowNodeRef"):  # sets of ids: their order means nothing
            here = f"{path}/{name}" if path else name
            attributes[here] = " ".join(sorted(filter(None, [*attributes.get(here, "").split(), _text(child)])))
            continue
        else:
            counts[name] = counts.get(name, 0) + 1
            if counts[name] > 1:
                name = f"{name}[{counts[name]}]"
        here = f"{path}/{name}" if path else name
        text = _text(child)
        if text:
            attributes[here] = text
        for key, value in child.attrib.items():
            if key != "name" or not here.endswith("]"):
                attributes[f"{here}@{_qname(key)}"] = value
        _held(child, here, attributes, stop)


def _dmn_elements(filename: str, root) -> list[Element]:
    found = []
    for decision in root.iter():
        if _local(decision.tag) != "decision" or not decision.get("id"):
            continue
        attributes = {_qname(k): v for k, v in decision.attrib.items() if k != "id"}
        found.append(Element("dmn", filename, decision.get("id"), "decision", decision.get("name"), attributes))
        for table in decision:
            if _local(table.tag) != "decisionTable":
                continue
            inputs = [c for c in table if _local(c.tag) == "input"]
            outputs = [c for c in table if _local(c.tag) == "output"]
            table_attributes = {_qname(k): v for k, v in table.attrib.items() if k != "id"}
            if table.get("id"):
                found.append(Element("dmn", filename, table.get("id"), "decisionTable", decision.get("name"),
                                     table_attributes))
            in_names = [_column(c, i, "input") for i, c in enumerate(inputs, 1)]
            out_names = [_column(c, i, "output") for i, c in enumerate(outputs, 1)]
            for column, kind in [(c, "input") for c in inputs] + [(c, "output") for c in outputs]:
                if not column.get("id"):
                    continue
                attributes = {_qname(k): v for k, v in column.attrib.items() if k != "id"}
                for part in column:
                    if _local(part.tag) == "inputExpression":
                        attributes["expression"] = " ".join("".join(part.itertext()).split())
                        if part.get("typeRef"):
                            attributes["expression@typeRef"] = part.get("typeRef")
                    elif _local(part.tag) in ("inputValues", "outputValues"):
                        attributes[_local(part.tag)] = " ".join("".join(part.itertext()).split())
                found.append(Element("dmn", filename, column.get("id"), kind,
                                     column.get("label") or column.get("name"), attributes))
            for number, rule in enumerate((c for c in table if _local(c.tag) == "rule"), 1):
                if not rule.get("id"):
                    continue
                attributes = {}
                entries = [c for c in rule if _local(c.tag) == "inputEntry"]
                results = [c for c in rule if _local(c.tag) == "outputEntry"]
                for name, entry in zip(in_names, entries):
                    attributes[f"when {name}"] = " ".join("".join(entry.itertext()).split()) or "-"
                for name, entry in zip(out_names, results):
                    attributes[f"then {name}"] = " ".join("".join(entry.itertext()).split())
                for part in rule:
                    if _local(part.tag) == "description":
                        attributes["description"] = _text(part)
                found.append(Element("dmn", filename, rule.get("id"), "rule",
                                     f"rule {number} of {decision.get('name') or decision.get('id')}", attributes))
    return found


def _column(column, number: int, kind: str) -> str:
    return column.get("label") or column.get("name") or f"{kind} {number}"


def _form_elements(filename: str, schema: Any) -> list[Element]:
    found = []
    if not isinstance(schema, dict):
        raise ValueError("a form is a JSON object")

    def walk(components: Any) -> None:
        for component in components if isinstance(components, list) else []:
            if not isinstance(component, dict):
                continue
            ident = component.get("id") or component.get("key")
            if ident:
                attributes = {}
                _flatten(component, "", attributes)
                for skip in ("id", "components", "layout"):
                    for name in [n for n in attributes if n == skip or n.startswith(f"{skip}.")]:
                        del attributes[name]
                found.append(Element("form", filename, f"{schema.get('id') or filename}/{ident}",
                                     str(component.get("type") or "component"),
                                     component.get("label") or component.get("key") or component.get("text"),
                                     attributes))
            walk(component.get("components"))

    walk(schema.get("components"))
    return found


def _scenario_element(filename: str, scenario: Any) -> Element:
    """A scenario test (``service.scenarios``) as one element: its start, steps and expectations as attributes."""
    if not isinstance(scenario, dict):
        raise ValueError("a scenario is a JSON object")
    attributes: dict[str, str] = {}
    _flatten(scenario, "", attributes)
    return Element("scenario", filename, f"scenario:{filename}", "scenario", str(scenario.get("scenario") or filename),
                   attributes)


def _flatten(value: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if path == "" and key == "components":
                continue
            _flatten(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list) and not all(isinstance(v, (str, int, float, bool)) or v is None for v in value):
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out)
    else:
        out[path] = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
