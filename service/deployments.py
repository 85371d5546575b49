"""Deploying pathways: versioned by content, checked once within limits, parsed once and cached.

Deployments are a council's own (every query here runs in the acting council's scope, ``service.tenancy``):
the same process key may be two different diagrams in two councils. A deployment is a snapshot of every
pathway file of its council: the files uploaded, laid over the council's latest deployment's; each file's
content is stored once per council (``PathwayFile``) however many deployments hold it. A process whose own
files (diagram, called diagrams, decisions, forms) hash the same as its latest version gets no new
version, so deploying unchanged files is a no-op, and a running case keeps the version it started on.
Limits and the time budget of the checks: ``service.deploy_checks``.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from lxml import etree
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from service import deploy_checks, tenancy
from service.engine import clock
from service.engine.bundle import Bundle, DeploymentInvalid, Problem, ProcessDefinition, build_bundle
from service.engine.xml import XmlRejected, parse_xml
from service.errors import Conflict, NotFound
from service.lru import Lru
from service.models import Deployment, DeploymentFile, PathwayFile, ProcessVersion, attached, loaded_columns

MAX_FILES = 200
MAX_TOTAL_BYTES = 20 * 1024 * 1024
PATHWAY_FOLDERS = ("bpmn", "dmn", "forms", "bpmn/scenarios")
CACHE = "step_pathways.parsed_pathways"


@dataclass
class DeployResult:
    deployment: Deployment
    processes: list[ProcessVersion]
    created: bool
    warnings: list[Problem] = field(default_factory=list)  # what may not be meant, said but not refused
    removed: list[str] = field(default_factory=list)  # files of the previous snapshot taken away
    replaced: dict[str, str] = field(default_factory=dict)  # old file -> the uploaded file that now defines its ids


class BundleCache:
    """Parsed pathways, held in ``app.extensions`` (one per app, never shared between apps or tests).

    A process definition is kept by what determines it: its council, key and the content hash of its own
    files, so twenty live versions of one pathway are twenty small entries, and versions that share
    content share one (a deployment snapshot holds every file of the council: keying by deployment made
    each version parse and hold every pathway). Whole bundles (for decision tables and copies) are few.
    """

    def __init__(self, processes: int = 512, bundles: int = 4) -> None:
        self._processes: Lru[tuple, ProcessDefinition] = Lru(processes)
        self._bundles: Lru[int, Bundle] = Lru(bundles)

    def process(self, session: Session, version: ProcessVersion) -> ProcessDefinition:
        found = self._processes.get((version.council_id, version.key, version.content_hash))
        if found is not None:
            return found
        return self.bundle(session, version.deployment_id, version.council_id).processes[version.key]

    def bundle(self, session: Session, deployment_id: int, council_id: int | None = None) -> Bundle:
        found = self._bundles.get(deployment_id)
        if found is not None:
            return found
        files = session.scalars(select(DeploymentFile).where(DeploymentFile.deployment_id == deployment_id)).all()
        bundle = build_bundle({f.name: f.content for f in files})
        self.put(deployment_id, bundle, council_id if council_id is not None else files[0].council_id)
        return bundle

    def put(self, deployment_id: int, bundle: Bundle, council_id: int) -> None:
        self._bundles.put(deployment_id, bundle)
        for key, process in bundle.processes.items():
            self._processes.put((council_id, key, process.content_hash), process)

    def clear(self) -> None:
        self._processes.clear()
        self._bundles.clear()


def cache() -> BundleCache:
    """The app's cache of parsed pathways (created on first use)."""
    return current_app.extensions.setdefault(CACHE, BundleCache())


def clear_cache() -> None:
    cache().clear()


def deploy(session: Session, uploads: Mapping[str, bytes], actor: str | None, actor_id: int | None = None, *, publish: bool = True,
           remove: Iterable[str] = (), full_set: bool = False, name: str | None = None,
           source: str | None = None, record_unchanged: bool = False) -> DeployResult:
    """Check the uploaded files and record a new deployment if anything changed (with ``record_unchanged``, as
    Camunda 7 without duplicate filtering, a new deployment record even when nothing changed: its pathways keep
    their versions, as a version is made only when a pathway's files change).

    The new snapshot is the council's latest (not rejected) deployment's files, less the files named in
    ``remove`` (or every file not uploaded, with ``full_set``), with the uploads laid over them. A process id,
    a decision id or a form id belongs to its pathway whatever file carries it: an uploaded file that defines
    an id another (not uploaded) file defined replaces that file, so a file can be renamed.

    With ``publish`` the new versions are live at once (the command line, or a council that lets its analysts
    publish); else they are drafts until a second person publishes them (``service.pathway_versions``).
    Raises :class:`DeploymentInvalid` (nothing is written) when any file would not run as drawn, is over a
    limit, or the checks take longer than their budget (``service.deploy_checks``); the problems are worded
    for the analyst (``service.deploy_messages``).
    """
    from service import deploy_messages, pathway_versions, scenario_runs

    remove = list(remove)
    _check_upload(uploads, allow_empty=bool(remove))
    deploy_checks.check_limits(uploads)
    latest = session.scalars(select(Deployment).where(Deployment.status != "rejected")
                             .order_by(Deployment.id.desc()).limit(1)).first()
    base = {f.name: f.content for f in latest.files} if latest else {}
    files, removed, replaced = _new_file_set(base, uploads, remove, full_set)
    digest = deploy_checks.content_hash(files)
    unchanged = latest is not None and latest.content_hash == digest
    if unchanged and not record_unchanged:  # nothing changed: nothing is checked or parsed again
        return DeployResult(latest, _versions_up_to(session, latest), created=False)
    try:
        checked = deploy_checks.check_in_time(files)
    except DeploymentInvalid as error:
        raise DeploymentInvalid(deploy_messages.explain(error.problems, files)) from None
    fresh = [key for key, (_, process_hash) in sorted(checked.processes.items())
             if _is_new_version(latest_process_version(session, key), process_hash)]
    # The new versions' scenario tests, before anything is written: publishing at once needs them to pass.
    bundle, scenario_results = scenario_runs.before_deploy(files, checked.bundle, fresh, publish=publish)
    stored = _stored_files(session, files)
    status = "published" if publish else "draft"
    if unchanged:  # the same files again: the record is what the latest is (no version to publish or approve)
        status = latest.status
    deployment = Deployment(content_hash=digest, created_by=actor, created_by_id=actor_id, status=status, name=(name or None) and name[:255],
                            source=source and source[:80],
                            files=[DeploymentFile(name=n, file=stored[n]) for n in sorted(files)])
    if publish and not unchanged:
        deployment.decided_by, deployment.decided_at = actor, clock.now()
    session.add(deployment)
    session.flush()
    versions, new_versions = [], []
    for key, (process_name, process_hash) in sorted(checked.processes.items()):
        latest_version = latest_process_version(session, key)
        if key not in fresh:
            versions.append(latest_version)
            continue
        newest = newest_version_number(session, key)
        version = ProcessVersion(key=key, version=newest + 1, name=process_name, content_hash=process_hash,
                                 deployment=deployment, status=status)
        if publish:
            version.published_at, version.published_by = clock.now(), actor
        session.add(version)
        versions.append(version)
        new_versions.append(version)
    session.flush()
    if bundle is not None:
        cache().put(deployment.id, bundle, deployment.council_id)
    scenario_runs.after_deploy(session, new_versions, scenario_results, actor, publish=publish)
    pathway_versions.record_deploy(session, deployment, new_versions, actor or "cli", removed, replaced,
                                   defined=set(checked.processes))
    warnings = [*deploy_messages.file_notes(removed, replaced),
                *deploy_messages.warnings(session, deployment.council_id, files, uploads)]
    return DeployResult(deployment, versions, created=True, warnings=warnings, removed=removed, replaced=replaced)


def _is_new_version(latest: ProcessVersion | None, process_hash: str) -> bool:
    """Whether a process whose files hash to ``process_hash`` needs a new version after ``latest``."""
    return latest is None or latest.content_hash != process_hash or latest.status in ("retired", "rejected")


def _new_file_set(base: Mapping[str, bytes], uploads: Mapping[str, bytes], remove: list[str],
                  full_set: bool) -> tuple[dict[str, bytes], list[str], dict[str, str]]:
    """The files of the new snapshot; the files taken away; {old file: new file} for the ones renamed."""
    missing = [n for n in remove if n not in base and n not in uploads]
    if missing:
        raise DeploymentInvalid([Problem(n, None, "there is no such file to remove (the files deployed now are: "
                                                  f"{', '.join(sorted(base)) or 'none'})") for n in missing])
    kept = {n: c for n, c in base.items() if n not in remove and (not full_set or n in uploads)}
    claimed = {ident: name for name, content in uploads.items() for ident in pathway_ids(name, content)}
    replaced = {}
    for name, content in list(kept.items()):
        if name in uploads:
            continue
        owners = {claimed[i] for i in pathway_ids(name, content) if i in claimed}
        if owners:
            replaced[name] = min(owners)
            del kept[name]
    removed = sorted(n for n in base if n not in kept and n not in uploads and n not in replaced)
    return {**kept, **uploads}, removed, replaced


def pathway_ids(name: str, content: bytes) -> set[tuple[str, str]]:
    """What a file defines that belongs to a pathway whatever the file is called: ("process", id) of each
    process of a diagram, ("decision", id) of each decision, ("form", id) of a form. Unreadable files: none."""
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    try:
        if kind == "form":
            form_id = json.loads(content).get("id")
            return {("form", form_id)} if isinstance(form_id, str) and form_id else set()
        if kind not in ("bpmn", "dmn"):
            return set()
        root = parse_xml(content, name)
    except (XmlRejected, ValueError, AttributeError):
        return set()
    wanted = "process" if kind == "bpmn" else "decision"
    return {(wanted, e.get("id")) for e in root if isinstance(e.tag, str) and e.get("id")
            and etree.QName(e).localname == wanted}


def _stored_files(session: Session, files: Mapping[str, bytes]) -> dict[str, PathwayFile]:
    """Each file's stored content: the council's row with the same SHA-256, else a new one (stored once)."""
    hashes = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    known = {f.sha256: f for f in session.scalars(select(PathwayFile).where(PathwayFile.sha256.in_(set(hashes.values()))))}
    for name, digest in hashes.items():
        if digest not in known:
            known[digest] = PathwayFile(sha256=digest, content=files[name])
            session.add(known[digest])
    return {name: known[digest] for name, digest in hashes.items()}


def _versions_up_to(session: Session, deployment: Deployment) -> list[ProcessVersion]:
    """The latest version of every pathway that ``deployment``'s files define, read without parsing them."""
    keys = defined_keys({f.name: f.content for f in deployment.files})
    return [v for key in sorted(keys) if (v := latest_process_version(session, key)) is not None]


def executable_keys(files: Mapping[str, bytes]) -> set[str]:
    """The ids of the processes of ``files`` that can run (not ``isExecutable="false"``)."""
    keys = set()
    for name, content in files.items():
        if name.lower().endswith(".bpmn"):
            try:
                root = parse_xml(content, name)
            except XmlRejected:
                continue
            keys |= {p.get("id") for p in root if isinstance(p.tag, str) and etree.QName(p).localname == "process"
                     and p.get("id") and p.get("isExecutable", "true") != "false"}
    return keys


def defined_keys(files: Mapping[str, bytes]) -> set[str]:
    """The process ids the diagrams of ``files`` define (read without parsing them for the engine)."""
    return {ident for name, content in files.items() for kind, ident in pathway_ids(name, content)
            if kind == "process"}


def _check_upload(uploads: Mapping[str, bytes], allow_empty: bool = False) -> None:
    problems = []
    if not uploads and not allow_empty:
        problems.append(Problem("", None, "no files were uploaded"))
    if len(uploads) > MAX_FILES:
        problems.append(Problem("", None, f"{len(uploads)} files were uploaded; the limit is {MAX_FILES}"))
    if sum(len(c) for c in uploads.values()) > MAX_TOTAL_BYTES:
        problems.append(Problem("", None, f"the upload is over {MAX_TOTAL_BYTES // (1024 * 1024)} MB"))
    for name in uploads:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            problems.append(Problem(name, None, "a file name may not contain a path"))
    if problems:
        raise DeploymentInvalid(problems)


def read_folders(root: Path, paths: list[Path] | None = None) -> dict[str, bytes]:
    """The pathway files under ``paths`` (default: bpmn/, dmn/ and forms/ of ``root``)."""
    files: dict[str, bytes] = {}
    for path in paths or [root / folder for folder in PATHWAY_FOLDERS]:
        candidates = [path] if path.is_file() else sorted(p for p in path.glob("*") if p.is_file())
        for file in candidates:
            if file.suffix.lower() in (".bpmn", ".dmn", ".form") or file.name.lower().endswith(".scenario.json"):
                files[file.name] = file.read_bytes()
    return files


#: The statuses of a version that was released: the newest of these is the pathway's current version.
RELEASED = ("published", "suspended", "retired")


def latest_process_version(session: Session, key: str) -> ProcessVersion | None:
    """The newest version of pathway ``key`` that was not rejected: a draft, or the current version."""
    return session.scalars(select(ProcessVersion).where(ProcessVersion.key == key,
                                                        ProcessVersion.status != "rejected")
                           .order_by(ProcessVersion.version.desc()).limit(1)).first()


def newest_version_number(session: Session, key: str) -> int:
    return session.scalar(select(func.max(ProcessVersion.version)).where(ProcessVersion.key == key)) or 0


def current_version(session: Session, key: str) -> ProcessVersion | None:
    """The pathway's current version: the newest that was ever published (it may now be suspended or retired;
    a draft or a rejected upload never is). Read on every case start, never kept: a suspension applies at once.

    Read as a plain row in the acting council (refused outside one council's scope) and made a row as the ORM
    makes those it reads: the ORM's loading cost more than the statement."""
    row = tenancy.execute_built(session, _current_version_row(), {"key": key}).first()
    return None if row is None else attached(session, ProcessVersion, dict(row._mapping))


@functools.cache
def _current_version_row() -> Select:
    """:func:`current_version`'s statement as a plain row: the columns the ORM loads, the council wall in it."""
    columns = [getattr(ProcessVersion, key) for key in loaded_columns(ProcessVersion)]
    return (select(*columns).where(ProcessVersion.key == bindparam("key"), ProcessVersion.status.in_(RELEASED))
            .order_by(ProcessVersion.version.desc()).limit(1).options(tenancy.council_criteria()))


def latest_process_versions(session: Session) -> list[ProcessVersion]:
    """The current version of every pathway that new cases start from (published: not suspended or retired)."""
    newest = (select(ProcessVersion.key, func.max(ProcessVersion.version).label("version"))
              .where(ProcessVersion.status.in_(RELEASED)).group_by(ProcessVersion.key).subquery())
    return list(session.scalars(select(ProcessVersion).join(
        newest, (ProcessVersion.key == newest.c.key) & (ProcessVersion.version == newest.c.version))
        .where(ProcessVersion.status == "published").order_by(ProcessVersion.key)))


def require_startable(version: ProcessVersion) -> None:
    """409 unless new cases may start from ``version`` (the current version of its pathway, published)."""
    if version.status == "suspended":
        raise Conflict(f"the pathway '{version.name}' is suspended: no new case can start (cases already "
                       f"running go on); ask a pathway approver to resume it")
    if version.status == "retired":
        raise Conflict(f"the pathway '{version.name}' is retired: no new case can start (cases already running "
                       f"finish on it)")
    if version.status != "published":
        raise Conflict(f"version {version.version} of '{version.name}' is not published")


def process_definition(session: Session, version: ProcessVersion) -> ProcessDefinition:
    """The parsed process of a version (parsed once, then cached by its content)."""
    return cache().process(session, version)


def bundle_of(session: Session, version: ProcessVersion) -> Bundle:
    return cache().bundle(session, version.deployment_id, version.council_id)


def get_process(session: Session, key: str) -> ProcessVersion:
    """The pathway's current version (``current_version``); 404 if none was ever published."""
    version = current_version(session, key)
    if version is None:
        raise NotFound(f"there is no pathway '{key}'")
    return version


def latest_bundle(session: Session) -> Bundle | None:
    latest = session.scalars(select(Deployment).where(Deployment.status != "rejected")
                             .order_by(Deployment.id.desc()).limit(1)).first()
    return cache().bundle(session, latest.id, latest.council_id) if latest else None


def copy_pathway(session: Session, from_council: str, key: str, actor: str | None, actor_id: int | None = None, *,
                 publish: bool = True) -> DeployResult:
    """Deploy into the acting council a copy of another council's latest version of pathway ``key``.

    Only the pathway's own files are copied (its diagram, called diagrams, decision tables and forms), and
    they pass the same checks as an upload. Nothing of the other council's cases is read.
    """
    source = tenancy.council_by_key(session, from_council)
    if source is None:
        raise NotFound(f"there is no council '{from_council}'")
    with tenancy.in_council(session, source):
        version = get_process(session, key)
        bundle = bundle_of(session, version)
        files = {name: bundle.files[name] for name in bundle.processes[key].files}
    return deploy(session, files, actor, actor_id, publish=publish, source="copy", name=f"copy of {from_council}'s {key}")
