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

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import access_log, deploy_checks, deployments, pathway_versions, policy
from service import cases as case_service
from service.engine.bundle import DeploymentInvalid, Problem, ProcessDefinition
from service.errors import Forbidden, NotFound
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
    query = select(Case.process_version_id, Case.status, func.count(Case.id)).where(Case.status.in_(STATUSES))
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
    counts per status. A case here is its reference, status, outcome and error: nothing of the child."""
    version = get_version(session, version_id, actor)
    query = select(Case).where(Case.process_version_id == version.id, Case.status.in_(STATUSES))
    if status:
        query = query.where(Case.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Case.status != "error", Case.updated_at.desc(), Case.id.desc())
                           .limit(CASES_PER_PAGE).offset((max(page, 1) - 1) * CASES_PER_PAGE))
    return version, list(rows), total, _counts(session, version.id).get(version.id, {})


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

def _draft_files(session: Session, version: ProcessVersion, diagram: bytes) -> tuple[str, dict[str, bytes]]:
    """The council's files as a deployment would see them with ``diagram`` in place of the version's own."""
    process = deployments.process_definition(session, version)
    latest = session.scalars(select(Deployment).order_by(Deployment.id.desc()).limit(1)).first()
    files = {f.name: f.content for f in latest.files} if latest else {}
    files.update(version_files(session, version))
    files[process.filename] = diagram
    return process.filename, files


def _editable(session: Session, version_id: int, actor: Actor) -> ProcessVersion:
    version = get_version(session, version_id, actor)
    if not policy.may_deploy(actor):
        raise Forbidden("drawing and deploying pathways needs the role analyst")
    return version


def draft_diagram(session: Session, version_id: int, actor: Actor) -> ProcessVersion:
    """The version opened in the editor (its diagram is read through :func:`diagram`)."""
    return _editable(session, version_id, actor)


def check_draft(session: Session, version_id: int, diagram: bytes, actor: Actor) -> list[Problem]:
    """The deploy checks the server runs on an upload, run on the version with ``diagram`` drawn in the browser:
    each problem names its file and element (an empty list: it would deploy). Nothing is written."""
    version = _editable(session, version_id, actor)
    _, files = _draft_files(session, version, diagram)
    try:
        deploy_checks.check_limits(files)
        deploy_checks.check_in_time(files)
    except DeploymentInvalid as invalid:
        return list(invalid.problems)
    return []


def save_draft(session: Session, version_id: int, diagram: bytes, actor: Actor) -> deployments.DeployResult:
    """Save the diagram drawn in the browser as an upload of its file (checked like any upload; raises
    :class:`DeploymentInvalid` with the problems): a draft for a second person to publish, as an upload from
    Camunda Modeler is, or live at once where the council lets its analysts publish."""
    version = _editable(session, version_id, actor)
    filename, _ = _draft_files(session, version, diagram)
    return pathway_versions.deploy(session, actor, {filename: diagram}, source="browser")
