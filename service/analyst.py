"""The analyst workspace: a council's pathways, their versions, files and diffs, and their cases.

For the council's analysts (and its admin: ``policy.may_analyse``), within the acting council only
(``service.tenancy``: another council's version, file or case is simply not there, so 404). An analyst sees
how each version came about (who deployed it, when, what changed since the version before), its files,
and how its cases fare (how many per status, the cases stopped on an error with their error); never a
child's name or the answers given (``policy.may_see_people``): a case is its reference, status and error.
Retrying a case is theirs too (``policy.may_retry_in_workspace``); cancelling stays the admin's
(``policy.may_cancel``), through ``cases.cancel_case``. Both are audited by ``service.cases``.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import access_log, deploy_checks, deployments, paging, pathway_versions, policy
from service import cases as case_service
from service.engine import dialect
from service.engine.decisions import DecisionDefinitionError, load_decisions
from service.engine.bundle import DeploymentInvalid, Problem, ProcessDefinition
from service.engine.xml import XmlRejected, parse_xml
from service.errors import Forbidden, InvalidData, NotFound
from service.models import Case, Deployment, DeploymentFile, ProcessVersion
from service.pathway_diff import PathwayDiff, diff_versions, version_files
from service.policy import Actor

STATUSES = ("error", "active", "completed", "cancelled")  # errors first, everywhere in the workspace
CASES_PER_PAGE = 50
#: What each kind of pathway file is served as: always as an attachment (never shown by the browser itself,
#: so a diagram's XML cannot run as a page of the service).
MEDIA_TYPES = {".bpmn": "application/xml", ".dmn": "application/xml", ".form": "application/json",
               ".json": "application/json"}  # .scenario.json: a scenario test (service.scenarios)


@dataclass
class VersionRow:
    version: ProcessVersion
    deployed_by: str | None
    counts: dict[str, int]
    change: str  # the diff's summary against the version before, in words
    previous: ProcessVersion | None

    @property
    def cases(self) -> int:
        return sum(self.counts.values())


@dataclass
class PathwayRow:
    key: str
    name: str
    versions: list[VersionRow] = field(default_factory=list)  # newest first

    @property
    def latest(self) -> VersionRow:
        return self.versions[0]

    @property
    def errors(self) -> int:
        return sum(v.counts.get("error", 0) for v in self.versions)


def pathways(session: Session, actor: Actor) -> list[PathwayRow]:
    """Every pathway of the council with its versions, newest first, each with its cases per status and what
    changed against the version before."""
    policy.require_analyst(actor)
    versions = list(session.scalars(select(ProcessVersion).order_by(ProcessVersion.key, ProcessVersion.version)))
    counts = _counts(session)
    authors = dict(session.execute(select(Deployment.id, Deployment.created_by)).all())
    rows: dict[str, PathwayRow] = {}
    previous: dict[str, ProcessVersion] = {}
    for version in versions:
        row = rows.setdefault(version.key, PathwayRow(version.key, version.name))
        row.name = version.name
        before = previous.get(version.key)
        change = "First version" if before is None else _summary(session, before, version)
        row.versions.insert(0, VersionRow(version, authors.get(version.deployment_id), counts.get(version.id, {}),
                                          change, before))
        previous[version.key] = version
    return sorted(rows.values(), key=lambda r: (r.name.lower(), r.key))


def _summary(session: Session, before: ProcessVersion, after: ProcessVersion) -> str:
    try:
        return diff_versions(session, before, after).summary()
    except Exception:  # noqa: BLE001 - a version that cannot be read still lists; its page says why
        return "Could not be compared"


def _counts(session: Session, version_id: int | None = None) -> dict[int, dict[str, int]]:
    """The council's cases (or a version's) by version and status. ``count(*)``, not of the id: PostgreSQL then
    reads ``ix_cases_council_version_status`` alone, not each case's row (at a million cases 135 ms against 590)."""
    query = select(Case.process_version_id, Case.status, func.count()).where(Case.status.in_(STATUSES))
    if version_id is not None:
        query = query.where(Case.process_version_id == version_id)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for version_id_, status, count in session.execute(query.group_by(Case.process_version_id, Case.status)):
        counts[version_id_][status] = count
    return counts


def get_version(session: Session, version_id: int, actor: Actor) -> ProcessVersion:
    """A version of the council's pathways (404 for any other: another council's is not there; then 403 for
    someone who is not the council's analyst)."""
    version = session.get(ProcessVersion, version_id)
    if version is None:
        raise NotFound(f"there is no pathway version {version_id}")
    policy.require_analyst(actor)
    return version


def versions_of(session: Session, key: str) -> list[ProcessVersion]:
    return list(session.scalars(select(ProcessVersion).where(ProcessVersion.key == key)
                                .order_by(ProcessVersion.version.desc())))


def previous_version(session: Session, version: ProcessVersion) -> ProcessVersion | None:
    return session.scalars(select(ProcessVersion).where(ProcessVersion.key == version.key,
                                                        ProcessVersion.version < version.version)
                           .order_by(ProcessVersion.version.desc()).limit(1)).first()


@dataclass
class VersionView:
    version: ProcessVersion
    process: ProcessDefinition
    deployed_by: str | None
    files: list[tuple[str, str, int]]  # name, kind (diagram, decisions, form), size in bytes
    decisions: list[str]  # names of the .dmn files
    forms: list[Any]  # (where: its file, or the task whose formData it is; FormDefinition)
    counts: dict[str, int]
    previous: ProcessVersion | None
    others: list[ProcessVersion]


def version_view(session: Session, version_id: int, actor: Actor) -> VersionView:
    version = get_version(session, version_id, actor)
    process = deployments.process_definition(session, version)
    bundle = deployments.bundle_of(session, version)
    files = version_files(session, version)
    kinds = {".bpmn": "Diagram", ".dmn": "Decision tables", ".form": "Form", ".json": "Scenario test"}
    listed = [(name, kinds.get(_suffix(name), "File"), len(files[name])) for name in sorted(files)]
    forms = [(name, bundle.forms_by_id[form_id]) for name, form_id in sorted(bundle.form_files.items())
             if name in files and form_id in bundle.forms_by_id]
    shown = {form.id for _, form in forms}
    embedded = ([("the start event", process.start_form)] if process.start_form is not None else []) + \
        sorted(process.task_forms.items(), key=lambda item: item[0])
    forms += [(f"{task}, in the diagram", form) for task, form in embedded
              if form is not None and form.id not in shown]
    deployed_by = session.scalar(select(Deployment.created_by).where(Deployment.id == version.deployment_id))
    return VersionView(version, process, deployed_by, listed, [n for n in sorted(files) if _suffix(n) == ".dmn"],
                       forms, _counts(session, version.id).get(version.id, {}), previous_version(session, version),
                       [v for v in versions_of(session, version.key) if v.id != version.id])


def _suffix(name: str) -> str:
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def version_file(session: Session, version_id: int, name: str, actor: Actor) -> tuple[bytes, str]:
    """One of the version's own files and its media type (404 for a file that is not the version's)."""
    version = get_version(session, version_id, actor)
    process = deployments.process_definition(session, version)
    if name not in process.files:
        raise NotFound(f"version {version.version} of {version.key} has no file '{name}'")
    row = session.scalars(select(DeploymentFile).where(DeploymentFile.deployment_id == version.deployment_id,
                                                       DeploymentFile.name == name)).first()
    if row is None:
        raise NotFound(f"version {version.version} of {version.key} has no file '{name}'")
    return row.content, MEDIA_TYPES.get(_suffix(name), "application/octet-stream")


def diagram(session: Session, version_id: int, actor: Actor) -> bytes:
    """The version's own diagram (the file of its process), for the viewers."""
    version = get_version(session, version_id, actor)
    return deployments.process_definition(session, version).diagram


def diff(session: Session, from_id: int, to_id: int, actor: Actor) -> PathwayDiff:
    """What changed from one version to another of the council's pathways."""
    return diff_versions(session, get_version(session, from_id, actor), get_version(session, to_id, actor))


def cases_of(session: Session, version_id: int, actor: Actor, *, status: str | None = None,
             page: int = 1) -> tuple[ProcessVersion, list[Case], int, dict[str, int]]:
    """A version's cases, errors first then most recently changed, a page at a time, with the total and the
    counts per status (the total is theirs: the version's cases are counted once). A case here is its reference,
    status, outcome and error: nothing of the child."""
    version = get_version(session, version_id, actor)
    counts = _counts(session, version.id).get(version.id, {})
    query = select(Case).where(Case.process_version_id == version.id, Case.status.in_(STATUSES))
    if status:
        query = query.where(Case.status == status)
    rows = session.scalars(query.order_by(*paging.case_order(by_index=False))  # one version's: found, then sorted
                           .limit(CASES_PER_PAGE).offset((max(page, 1) - 1) * CASES_PER_PAGE))
    return version, list(rows), counts.get(status, 0) if status else sum(counts.values()), counts


def _case(session: Session, case_id: int, actor: Actor) -> Case:
    """A case of the council (404 for any other, as for a case that is not there), then the workspace's rule."""
    case = session.get(Case, case_id)
    if case is None or case.status not in STATUSES:
        raise NotFound(f"there is no case {case_id}")
    policy.require_analyst(actor)
    return case


def get_case(session: Session, case_id: int, actor: Actor) -> Case:
    """A case of the council as the workspace shows it (its version, status, error), the read logged."""
    case = _case(session, case_id, actor)
    access_log.record(session, actor, case.id, "analyst_case")
    return case


def retry(session: Session, case_id: int, actor: Actor) -> Case:
    """Run a case stopped on an error again, as it is (after the pathway's fault is fixed); audited."""
    case = _case(session, case_id, actor)
    if not policy.may_retry_in_workspace(actor):
        raise Forbidden("retrying a case from the analyst workspace is for the council's analysts")
    return case_service.retry_case(session, case, {}, actor)


def cancel(session: Session, case_id: int, reason: Any, actor: Actor) -> Case:
    """Cancel a case with its reason (``cases.cancel_case``: the admin's, audited)."""
    _case(session, case_id, actor)  # 404 for another council's, 403 outside the workspace
    if not policy.may_cancel(actor):
        raise Forbidden("only the council's admin can cancel a case")
    return case_service.cancel_case(session, case_id, reason, actor)


def may_cancel(actor: Actor) -> bool:
    return policy.may_cancel(actor)


# -- drawing in the browser: open a version as a draft, check it, save it -----------------------------

#: The files of a version the browser edits beside its diagram: decision tables (dmn-js) and forms (form-js).
EDITED_SUFFIXES = (".dmn", ".form")


def draft_files(session: Session, version_id: int, actor: Actor) -> list[str]:
    """The version's decision tables and forms, by name, that the editor opens beside its diagram."""
    version = _editable(session, version_id, actor)
    return sorted(name for name in version_files(session, version) if _suffix(name) in EDITED_SUFFIXES)


def _council_files(session: Session) -> dict[str, bytes]:
    """The council's current set of files: its latest deployment's."""
    latest = session.scalars(select(Deployment).order_by(Deployment.id.desc()).limit(1)).first()
    return {f.name: f.content for f in latest.files} if latest else {}


#: A file the editor adds: lower-case letters, digits and '_' (``pathway_templates.new_file_name``).
NEW_FILE_NAME = re.compile(r"^[a-z0-9_]{1,150}\.(form|dmn)$")


def _edited(session: Session, version: ProcessVersion, diagram: bytes,
            edited: dict[str, bytes] | None) -> tuple[str, dict[str, bytes], list[str]]:
    """The diagram under the version's file name, the decision tables and forms edited beside it, and the names
    of those among them that are new. A file edited is one of the version's own .dmn and .form files, or a new
    .dmn or .form file added in the editor: a name the council already has (another pathway's file) is refused,
    as saving would replace it, and so is any other name."""
    process = deployments.process_definition(session, version)
    own = version_files(session, version)
    uploads, new = {process.filename: diagram}, []
    council = None
    for name, content in (edited or {}).items():
        if _suffix(name) not in EDITED_SUFFIXES or (name not in own and not NEW_FILE_NAME.match(name)):
            raise InvalidData(f"'{name}' is not a decision table or form of version {version.version}",
                              {"files": f"'{name}' is not one of this version's decision tables or forms, nor a "
                                        "new .dmn or .form file"})
        if name not in own:
            council = _council_files(session) if council is None else council
            if name in council:
                raise InvalidData(f"there is already a file {name}",
                                  {"files": f"There is already a file {name} (of another pathway): saving would "
                                            "replace it. Add the form or decision table again with another id"})
            new.append(name)
        uploads[name] = content
    return process.filename, uploads, new


def _ids_in(name: str, content: bytes) -> set[str]:
    """A form's id, or a decision table file's decision ids (empty when the file cannot be read)."""
    try:
        if name.endswith(".form"):
            found = json.loads(content).get("id")
            return {found} if isinstance(found, str) else set()
        root = parse_xml(content, name)
        return {d.get("id") for d in root.iter() if isinstance(d.tag, str) and etree.QName(d).localname == "decision"}
    except (ValueError, AttributeError, XmlRejected):
        return set()


def _unlinked(diagram: bytes, uploads: dict[str, bytes], new: list[str]) -> list[Problem]:
    """The new forms and decision tables the diagram does not use (a form reference or decision reference naming
    their id, or a decision a used decision requires): saved, they would belong to no version."""
    used = _with_required(_referenced(diagram), uploads)
    problems = []
    for name in new:
        ids = _ids_in(name, uploads[name])
        if not ids & used:
            what = ("form: give a user task this form (Forms: Camunda Forms, form reference " if name.endswith(".form")
                    else "decision table: make a business rule task use it (Implementation: DMN, decision reference ")
            also = "" if name.endswith(".form") else " or have a decision the diagram uses require it"
            problems.append(Problem(name, None, f"{name} is new and no step of the diagram uses it yet. Link the "
                                                f"{what}{' or '.join(sorted(ids)) or 'its id'}){also}, or it is "
                                                "not saved"))
    return problems


def _with_required(used: set[str], files: dict[str, bytes]) -> set[str]:
    """``used`` and every decision a used decision requires, however deep, across the decision tables in
    ``files`` (a decision requirements graph: a table that only feeds another is used too)."""
    requires: dict[str, set[str]] = defaultdict(set)
    for name, content in files.items():
        if name.endswith(".dmn"):
            try:
                model = load_decisions(parse_xml(content, name), name, strict=False)
            except (DecisionDefinitionError, XmlRejected, ValueError):
                continue  # the checks say what is wrong with it
            for decision in model.decisions.values():
                requires[decision.id].update(decision.required)
    found, todo = set(used), list(used)
    while todo:
        for needed in requires.get(todo.pop(), ()):
            if needed not in found:
                found.add(needed)
                todo.append(needed)
    return found


def _referenced(diagram: bytes) -> set[str]:
    """Every form and decision id the diagram's steps name, read as the engine reads them (``dialect``: Camunda 7
    or 8, a form by reference or by ``camunda-forms:deployment:<id>`` key); empty when it cannot be read."""
    try:
        root = parse_xml(diagram, "the diagram")
    except XmlRejected:
        return set()
    found: set[str] = set()
    for element in root.iter():
        if isinstance(element.tag, str):
            key = dialect.form_key(element)
            found.update(filter(None, (dialect.form_ref(element), dialect.called_decision(element).decision_id,
                                       key.rsplit(":", 1)[-1] if key else None)))
    return found


def new_file(session: Session, version_id: int, kind: str, file_id: str, actor: Actor) -> tuple[str, bytes]:
    """A new form (``kind`` "form") or decision table ("dmn") with the id ``file_id`` for the editor to add beside
    the version's diagram: its file name (``<process key>_<id>``) and blank content (``pathway_templates``). An id
    or file name the council already has is refused."""
    from service import pathway_templates

    version = _editable(session, version_id, actor)
    file_id = pathway_templates.check_file_id(kind, file_id)
    name = pathway_templates.new_file_name(version.key, kind, file_id)
    council = _council_files(session)
    if name in council:
        raise InvalidData(f"there is already a file {name}",
                          {"id": f"There is already a file {name}: choose another id"})
    suffix = pathway_templates.NEW_FILE_SUFFIXES[kind]
    for other, content in council.items():
        if other.endswith(suffix) and file_id in _ids_in(other, content):
            what = "form" if kind == "form" else "decision"
            raise InvalidData(f"the {what} id '{file_id}' is already used in {other}",
                              {"id": f"The {what} id '{file_id}' is already used in {other}: choose another id"})
    content = pathway_templates.blank_form(file_id) if kind == "form" else pathway_templates.blank_table(file_id)
    return name, content


def _draft_files(session: Session, version: ProcessVersion, diagram: bytes,
                 edited: dict[str, bytes] | None = None) -> tuple[str, dict[str, bytes], list[Problem]]:
    """The council's files as a deployment would see them with ``diagram`` (and the edited decision tables and
    forms) in place of the version's own, and the problems of new files the diagram does not use."""
    filename, uploads, new = _edited(session, version, diagram, edited)
    files = _council_files(session)
    files.update(version_files(session, version))
    files.update(uploads)
    return filename, files, _unlinked(diagram, uploads, new)


def _editable(session: Session, version_id: int, actor: Actor) -> ProcessVersion:
    version = get_version(session, version_id, actor)
    if not policy.may_deploy(actor):
        raise Forbidden("drawing and deploying pathways needs the role analyst")
    return version


def draft_diagram(session: Session, version_id: int, actor: Actor) -> ProcessVersion:
    """The version opened in the editor (its diagram is read through :func:`diagram`)."""
    return _editable(session, version_id, actor)


def check_draft(session: Session, version_id: int, diagram: bytes, actor: Actor,
                edited: dict[str, bytes] | None = None) -> list[Problem]:
    """The deploy checks the server runs on an upload, run on the version with ``diagram`` drawn in the browser
    and ``edited`` (its decision tables and forms, by file name, as edited beside it): each problem names its
    file and element (an empty list: it would deploy). Nothing is written."""
    version = _editable(session, version_id, actor)
    _, files, unlinked = _draft_files(session, version, diagram, edited)
    try:
        deploy_checks.check_limits(files)
        deploy_checks.check_in_time(files)
    except DeploymentInvalid as invalid:
        return list(invalid.problems) + unlinked
    return unlinked


def save_draft(session: Session, version_id: int, diagram: bytes, actor: Actor,
               edited: dict[str, bytes] | None = None) -> deployments.DeployResult:
    """Save the diagram drawn in the browser, with the decision tables and forms edited beside it, as an upload
    of those files (checked like any upload; raises :class:`DeploymentInvalid` with the problems): a draft for a
    second person to publish, as an upload from Camunda Modeler is, or live at once where the council lets its
    analysts publish."""
    version = _editable(session, version_id, actor)
    _, uploads, new = _edited(session, version, diagram, edited)
    unlinked = _unlinked(diagram, uploads, new)
    if unlinked:  # saved, a new file no step uses would belong to no version
        raise DeploymentInvalid(unlinked)
    return pathway_versions.deploy(session, actor, uploads, source="browser")


# -- a new pathway: from the blank template or as a copy of one of the council's ----------------------------

def new_pathway(session: Session, actor: Actor, key: str, name: str,
                copy_of: int | None = None) -> tuple[ProcessVersion, deployments.DeployResult]:
    """Deploy a new pathway ``key`` named ``name``: the blank template (``service.pathway_templates``), or a copy
    of version ``copy_of``'s diagram under the new id and name. Checked like any upload (raises
    :class:`DeploymentInvalid`); a draft where the council publishes with four eyes. Its file is ``<key>.bpmn``:
    a process id or file name the council already has is refused, as the copy would replace it."""
    from service import pathway_templates

    if not policy.may_deploy(actor):
        raise Forbidden("drawing and deploying pathways needs the role analyst")
    key, name = pathway_templates.check_key_and_name(key, name)
    filename = f"{key}.bpmn"
    latest = session.scalars(select(Deployment).order_by(Deployment.id.desc()).limit(1)).first()
    taken = session.scalars(select(ProcessVersion).where(ProcessVersion.key == key).limit(1)).first()
    if taken is not None:
        raise InvalidData(f"the process id '{key}' is already used",
                          {"key": f"The process id '{key}' is already used by {taken.name}: choose another"})
    if latest is not None and any(f.name == filename for f in latest.files):
        raise InvalidData(f"there is already a file {filename}",
                          {"key": f"There is already a file {filename}: choose another process id"})
    if copy_of is None:
        diagram, source, what = pathway_templates.blank(key, name), "browser", "blank template"
    else:
        original = get_version(session, copy_of, actor)
        process = deployments.process_definition(session, original)
        diagram = pathway_templates.copy_diagram(process.diagram, process.filename, original.key, key, name)
        source, what = "copy", f"copy of {original.key} version {original.version}"
    result = pathway_versions.deploy(session, actor, {filename: diagram}, source=source, name=f"{key} ({what})")
    created = next((v for v in result.processes if v.key == key), None)
    if created is None:  # the deploy saved nothing new: cannot happen for a new file, but say so plainly
        raise InvalidData("the new pathway was not saved", {"key": "The new pathway was not saved: try again"})
    return created, result
