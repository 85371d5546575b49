"""What changed between two versions of a pathway: elements added, removed and changed, with the attributes.

Elements are matched by id across every file a version needs (its diagram, the diagrams it calls, its
decision tables, its forms), so a renamed file whose elements kept their ids shows only what really changed.
The drawing's layout (BPMN DI: where shapes sit) is left out: moving a box changes nothing that runs. A
changed element lists each changed attribute as ``[before, after]``; what an element holds without an id of
its own (a condition, a documentation text, an extension property, a rule's cells) counts as its attributes,
named by path (``conditionExpression``, ``extensionElements/properties/property[outcome]@value``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lxml import etree
from sqlalchemy.orm import Session

from service import deployments
from service.engine.xml import XmlRejected, parse_xml
from service.models import ProcessVersion

LAYOUT_NAMESPACES = {"http://www.omg.org/spec/BPMN/20100524/DI", "http://www.omg.org/spec/DD/20100524/DC",
                     "http://www.omg.org/spec/DD/20100524/DI", "https://www.omg.org/spec/DMN/20191111/DMNDI/",
                     "http://www.omg.org/spec/DMN/20180521/DMNDI/", "http://www.omg.org/spec/DMN/20180521/DI/",
                     "http://www.omg.org/spec/DMN/20180521/DC/"}
PREFIXES = {"http://camunda.org/schema/1.0/bpmn": "camunda", "http://camunda.org/schema/1.0/dmn": "camunda",
            "http://camunda.org/schema/modeler/1.0": "modeler", "http://www.w3.org/2001/XMLSchema-instance": "xsi"}


def version_files(session: Session, version: ProcessVersion) -> dict[str, bytes]:
    """The files ``version`` needs (its diagram, called diagrams, decision tables and forms), by name."""
    process = deployments.process_definition(session, version)
    bundle = deployments.bundle_of(session, version)
    names = process.files or (process.filename,)
    return {name: bundle.files[name] for name in names if name in bundle.files}


def diff_versions(session: Session, a: ProcessVersion | None, b: ProcessVersion) -> dict[str, Any]:
    """What changed from version ``a`` (None: nothing before) to ``b``.

    ``{"from": 1, "to": 2, "files": {"added": [...], "removed": [...], "changed": [...]},
    "added": [element], "removed": [element], "changed": [element + {"attributes": {name: [before, after]}}]}``
    where an element is ``{"id", "type", "name", "file"}``.
    """
    before = version_files(session, a) if a is not None else {}
    after = version_files(session, b)
    result = diff_files(before, after)
    result.update({"from": a.version if a is not None else None, "to": b.version, "key": b.key})
    return result


def diff_files(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> dict[str, Any]:
    """The element diff of two sets of pathway files (what :func:`diff_versions` computes for two versions)."""
    old, new = _elements(before), _elements(after)
    added = [_summary(new[i]) for i in new if i not in old]
    removed = [_summary(old[i]) for i in old if i not in new]
    changed = []
    for ident in new:
        if ident in old:
            attributes = _changed(old[ident]["attributes"], new[ident]["attributes"])
            if attributes or old[ident]["type"] != new[ident]["type"]:
                changed.append({**_summary(new[ident]), "attributes": attributes,
                                **({"was_type": old[ident]["type"]} if old[ident]["type"] != new[ident]["type"]
                                   else {})})
    files = {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
             "changed": sorted(n for n in set(before) & set(after) if before[n] != after[n])}
    return {"files": files, "added": added, "removed": removed, "changed": changed}


def _summary(element: dict[str, Any]) -> dict[str, Any]:
    return {"id": element["id"], "type": element["type"], "name": element["name"], "file": element["file"]}


def _changed(old: dict[str, str], new: dict[str, str]) -> dict[str, list[str | None]]:
    return {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def _elements(files: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """Every element with an id, by id (a form's components by their id, or key), with its attributes."""
    found: dict[str, dict[str, Any]] = {}
    for name in sorted(files):
        kind = name.rsplit(".", 1)[-1].lower()
        if kind in ("bpmn", "dmn"):
            try:
                root = parse_xml(files[name], name)
            except XmlRejected:
                continue
            _xml_elements(root, name, found)
        elif kind == "form":
            _form_elements(files[name], name, found)
    return found


def _xml_elements(root, file: str, found: dict[str, dict[str, Any]]) -> None:
    for element in root.iter():
        if not isinstance(element.tag, str) or etree.QName(element).namespace in LAYOUT_NAMESPACES:
            continue
        ident = element.get("id")
        if not ident or element is root:
            continue
        attributes = {_name(k): v for k, v in element.attrib.items() if k != "id"}
        _inner(element, "", attributes)
        found.setdefault(ident, {"id": ident, "type": etree.QName(element).localname, "name": element.get("name"),
                                 "file": file, "attributes": attributes})


def _inner(element, path: str, attributes: dict[str, str]) -> None:
    """What ``element`` holds without an id of its own, as path-named attributes."""
    counts: dict[str, int] = {}
    for child in element:
        if not isinstance(child.tag, str) or child.get("id") or \
                etree.QName(child).namespace in LAYOUT_NAMESPACES:
            continue
        local = etree.QName(child).localname
        text = (child.text or "").strip()
        if local in ("incoming", "outgoing", "flowNodeRef"):  # one set each, whatever their order
            attributes[f"{path}{local}"] = ",".join(sorted(filter(None, [*attributes.get(f"{path}{local}", "")
                                                                       .split(","), text])))
            continue
        label = child.get("name") or child.get("key")
        counts[local] = counts.get(local, 0) + 1
        step = f"{local}[{label}]" if label else (local if counts[local] == 1 else f"{local}[{counts[local]}]")
        child_path = f"{path}{step}"
        for k, v in child.attrib.items():
            if k not in ("name", "key"):
                attributes[f"{child_path}@{_name(k)}"] = v
        if text:
            attributes[child_path] = text
        _inner(child, child_path + "/", attributes)


def _name(attribute: str) -> str:
    qname = etree.QName(attribute)
    return f"{PREFIXES.get(qname.namespace, qname.namespace)}:{qname.localname}" if qname.namespace else attribute


def _form_elements(content: bytes, file: str, found: dict[str, dict[str, Any]]) -> None:
    try:
        schema = json.loads(content)
    except ValueError:
        return
    if not isinstance(schema, dict):
        return

    def walk(component: dict[str, Any]) -> None:
        for child in component.get("components") or []:
            if not isinstance(child, dict):
                continue
            ident = child.get("id") or child.get("key")
            if ident:
                attributes = {k: json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
                              for k, v in child.items() if k not in ("id", "components", "layout")}
                found.setdefault(f"{file}#{ident}", {"id": ident, "type": child.get("type") or "component",
                                                      "name": child.get("label") or child.get("key"), "file": file,
                                                      "attributes": attributes})
            walk(child)

    walk(schema)
