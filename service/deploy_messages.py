"""What a deploy says to an analyst: problems in plain words with the fix, and warnings that refuse nothing.

The checks (``service.engine.bundle``, ``service.engine.conventions``) say what is wrong as the engine sees
it; :func:`explain` rewords what a non-developer could not act on: a schema error about ``xs:ID`` becomes
"duplicate id 'Task_Work' (lines 22 and 40)", a flow without a condition names its gateway, a Camunda 7
idiom gets its rewrite (a form key no deployed form answers is refused by the engine's own form check,
``bundle._form_problems``). :func:`warnings` says what may not be meant: a role nobody holds, a candidate group that is not a role key, an assignee who is no
one, an end without an outcome. Warnings come back with the deploy's answer.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.engine.bundle import BPMN_NS, NS, C, Problem
from service.engine.conventions import _ends_the_case as ends_the_case  # the conventions' own reading
from service.engine.parser import role_key
from service.engine.xml import XmlRejected, parse_xml
from service.models import Membership, User

_XSD_ID = re.compile(r"^line (\d+): Element '[^']*', attribute 'id': '([^']*)' is not a valid value of the atomic "
                     r"type 'xs:ID'")
_NAMESPACED = re.compile(r"'\{([^}]*)\}(\w+)'")
_PREFIXES = {BPMN_NS: "bpmn", "http://camunda.org/schema/1.0/bpmn": "camunda",
             "http://www.omg.org/spec/BPMN/20100524/DI": "bpmndi"}
#: Camunda 7 (Java EL) idioms and how to write them here.
_IDIOMS = (
    (re.compile(r"execution\.getVariable\(\s*[\"'](\w+)[\"']\s*\)"), r"\1"),
    (re.compile(r"([A-Za-z_][\w.]*)\.contains\(\s*([^()]+?)\s*\)"), r"\2 in \1"),
    (re.compile(r"([A-Za-z_][\w.]*)\.equals\(\s*([^()]+?)\s*\)"), r"\1 == \2"),
)


# -- rewording problems ----------------------------------------------------------------------------

def explain(problems: list[Problem], files: Mapping[str, bytes]) -> list[Problem]:
    """``problems`` reworded for the analyst (same files and elements, or the element a person would fix)."""
    trees: dict[str, Any] = {}
    out: list[Problem] = []
    for problem in problems:
        for better in _explained(problem, files, trees):
            if better not in out:
                out.append(better)
    return out


def _tree(name: str, files: Mapping[str, bytes], trees: dict[str, Any]):
    if name not in trees:
        try:
            trees[name] = parse_xml(files[name], name) if name in files else None
        except XmlRejected:
            trees[name] = None
    return trees[name]


def _by_id(root, element_id: str | None):
    if root is None or not element_id:
        return None
    return next((e for e in root.iter() if isinstance(e.tag, str) and e.get("id") == element_id), None)


def _explained(problem: Problem, files: Mapping[str, bytes], trees: dict[str, Any]) -> list[Problem]:
    message = problem.message
    found = _XSD_ID.match(message)
    if found:
        return [_duplicate_or_bad_id(problem.file, found[2], int(found[1]), _tree(problem.file, files, trees))]
    if message.startswith("line ") and "{" in message:  # other schema errors: bpmn:userTask, not {http://...}
        message = _NAMESPACED.sub(lambda m: f"'{_PREFIXES.get(m[1], m[1])}:{m[2]}'", message)
        return [Problem(problem.file, problem.element, message)]
    root = _tree(problem.file, files, trees) if problem.file.lower().endswith(".bpmn") else None
    if message.startswith("Non-default exclusive outgoing sequence flow without condition"):
        return [_flow_without_condition(problem, root)]
    if "is not a function" in message or "not a valid expression" in message:
        rewrite = _rewrite(_expressions_of(_by_id(root, problem.element)))
        if rewrite:
            return [Problem(problem.file, problem.element, f"{message} (a Camunda 7 idiom: write it as {rewrite})")]
    return [Problem(problem.file, problem.element, message)]


def _duplicate_or_bad_id(file: str, element_id: str, line: int, root) -> Problem:
    lines = sorted(e.sourceline for e in root.iter() if isinstance(e.tag, str) and e.get("id") == element_id) \
        if root is not None else [line]
    if len(lines) > 1:
        where = " and ".join([", ".join(str(n) for n in lines[:-1]), str(lines[-1])])
        return Problem(file, element_id, f"duplicate id '{element_id}' (lines {where}): every element needs an id "
                                         f"of its own; rename one of them (in Camunda Modeler: select it, "
                                         f"General > ID)")
    return Problem(file, element_id or None, f"the id '{element_id}' (line {line}) is not a valid id: an id starts "
                                             f"with a letter or '_' and has only letters, digits, '-', '_' and '.'")


def _flow_without_condition(problem: Problem, root) -> Problem:
    flow = _by_id(root, problem.element)
    gateway = _by_id(root, flow.get("sourceRef")) if flow is not None else None
    if gateway is None:
        return problem
    kind = etree.QName(gateway).localname.replace("Gateway", " gateway")
    label = f"'{gateway.get('name')}' ({gateway.get('id')})" if gateway.get("name") else f"{gateway.get('id')}"
    target = _by_id(root, flow.get("targetRef"))
    to = f" to '{target.get('name') or target.get('id')}'" if target is not None else ""
    flow_label = f"'{flow.get('name')}' ({flow.get('id')})" if flow.get("name") else flow.get("id")
    return Problem(problem.file, gateway.get("id"),
                   f"the {kind} {label} has an outgoing flow {flow_label}{to} with no condition that is not its "
                   f"default: give that flow a condition (such as ${{decision == \"step_down\"}}) or make it the "
                   f"gateway's default flow")


def _expressions_of(element) -> list[str]:
    if element is None:
        return []
    texts = [e.text for e in element.iter() if isinstance(e.tag, str) and e.text and ("${" in e.text or "." in e.text)]
    texts += [v for v in element.attrib.values() if "${" in v]
    return [t.strip() for t in texts]


def _rewrite(expressions: list[str]) -> str | None:
    for text in expressions:
        rewritten = text
        for pattern, replacement in _IDIOMS:
            rewritten = pattern.sub(replacement, rewritten)
        if rewritten != text:
            return rewritten
    return None


def suggest_rewrite(expression: str) -> str | None:
    """The way to write a Camunda 7 expression here (``${list.contains(x)}`` -> ``${x in list}``), if it uses
    an idiom this service writes otherwise; else None."""
    return _rewrite([expression])


def _diagrams(files: Mapping[str, bytes]):
    for name in sorted(files):
        if name.lower().endswith(".bpmn"):
            try:
                yield name, parse_xml(files[name], name)
            except XmlRejected:
                continue


# -- what may not be meant: warned -----------------------------------------------------------------

def warnings(session: Session, council_id: int, files: Mapping[str, bytes], uploads: Mapping[str, bytes]
             ) -> list[Problem]:
    """Warnings about the uploaded diagrams: roles nobody in the council holds, candidate groups that are not
    role keys, literal assignees who are not the council's, ends of a pathway that name no outcome."""
    held = set(session.scalars(select(Membership.role).where(Membership.council_id == council_id).distinct()))
    members = set(session.scalars(select(User.name).join(Membership, Membership.user_id == User.id)
                                  .where(Membership.council_id == council_id)))
    found: list[Problem] = []
    for name, root in _diagrams(uploads):
        roles: dict[str, tuple[str | None, str]] = {}
        for lane in root.iter(f"{{{BPMN_NS}}}lane"):
            if lane.get("name") and lane.find("bpmn:flowNodeRef", NS) is not None:
                roles.setdefault(role_key(lane.get("name")), (lane.get("id"), f"lane '{lane.get('name')}'"))
        for element in root.iter():
            if not isinstance(element.tag, str):
                continue
            for group in (element.get(C + "candidateGroups") or "").split(","):
                group = group.strip()
                if not group or "${" in group:
                    continue
                key = role_key(group)
                roles.setdefault(key, (element.get("id"), f"candidate group '{group}'"))
                if key != group:
                    found.append(Problem(name, element.get("id"),
                                         f"the candidate group '{group}' is not a role key: the task goes to the role "
                                         f"'{key}'; write '{key}' (lower case, '_' for spaces)"))
            assignee = (element.get(C + "assignee") or "").strip()
            if assignee and "${" not in assignee and "#{" not in assignee and assignee not in members:
                found.append(Problem(name, element.get("id"), f"the assignee '{assignee}' is no one who works for "
                                                              f"this council: the task would wait for nobody"))
        for role, (element_id, where) in sorted(roles.items()):
            if role and role not in held:
                found.append(Problem(name, element_id, f"no one in this council holds the role '{role}' (from the "
                                                       f"{where}): its tasks would wait for nobody until the admin "
                                                       f"gives someone that role"))
        for process in root.iterfind("bpmn:process", NS):
            if process.get("isExecutable", "true") == "false":
                continue
            for end in process.iterfind("bpmn:endEvent", NS):
                if not _outcome(end) and ends_the_case(process, end):
                    label = f"'{end.get('name')}' ({end.get('id')})" if end.get("name") else end.get("id")
                    found.append(Problem(name, end.get("id"), f"the end event {label} names no outcome: a case "
                                                              f"ending here closes without one; add the extension "
                                                              f"property 'outcome'"))
    return found


def _outcome(element) -> str | None:
    for prop in element.iterfind("bpmn:extensionElements/camunda:properties/camunda:property", NS):
        if prop.get("name") == "outcome" and prop.get("value"):
            return prop.get("value")
    return None


def file_notes(removed: list[str], replaced: dict[str, str]) -> list[Problem]:
    """Say which files a deploy took away, and which an uploaded file replaced (a rename)."""
    notes = [Problem(old, None, f"replaced by {new}, which now defines what {old} defined (a process id belongs to "
                                f"its pathway, whatever file carries it)") for old, new in sorted(replaced.items())]
    notes += [Problem(name, None, "removed: the new version no longer has this file") for name in removed]
    return notes
