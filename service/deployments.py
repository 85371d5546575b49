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

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import deploy_checks, tenancy
from service.engine.bundle import Bundle, DeploymentInvalid, ProcessDefinition, Problem, build_bundle
from service.errors import NotFound
from service.models import Deployment, DeploymentFile, PathwayFile, ProcessVersion

MAX_FILES = 200
MAX_TOTAL_BYTES = 20 * 1024 * 1024
PATHWAY_FOLDERS = ("bpmn", "dmn", "forms")
CACHE = "step_pathways.parsed_pathways"


@dataclass
class DeployResult:
    deployment: Deployment
    processes: list[ProcessVersion]
    created: bool


class BundleCache:
    """Parsed pathways, held in ``app.extensions`` (one per app, never shared between apps or tests).

    A process definition is kept by what determines it: its council, key and the content hash of its own
    files, so twenty live versions of one pathway are twenty small entries, and versions that share
    content share one (a deployment snapshot holds every file of the council: keying by deployment made
    each version parse and hold every pathway). Whole bundles (for decision tables and copies) are few.
    """

    def __init__(self, processes: int = 512, bundles: int = 4) -> None:
        self._processes: OrderedDict[tuple, ProcessDefinition] = OrderedDict()
        self._bundles: OrderedDict[int, Bundle] = OrderedDict()
        self._lock = threading.Lock()
        self.sizes = {"processes": processes, "bundles": bundles}

    def process(self, session: Session, version: ProcessVersion) -> ProcessDefinition:
        key = (version.council_id, version.key, version.content_hash)
        with self._lock:
            if key in self._processes:
                self._processes.move_to_end(key)
                return self._processes[key]
        return self.bundle(session, version.deployment_id, version.council_id).processes[version.key]

    def bundle(self, session: Session, deployment_id: int, council_id: int | None = None) -> Bundle:
        with self._lock:
            if deployment_id in self._bundles:
                self._bundles.move_to_end(deployment_id)
                return self._bundles[deployment_id]
        files = session.scalars(select(DeploymentFile).where(DeploymentFile.deployment_id == deployment_id)).all()
        bundle = build_bundle({f.name: f.content for f in files})
        self.put(deployment_id, bundle, council_id if council_id is not None else files[0].council_id)
        return bundle

    def put(self, deployment_id: int, bundle: Bundle, council_id: int) -> None:
        with self._lock:
            _remember(self._bundles, deployment_id, bundle, self.sizes["bundles"])
            for key, process in bundle.processes.items():
                _remember(self._processes, (council_id, key, process.content_hash), process, self.sizes["processes"])

    def clear(self) -> None:
        with self._lock:
            self._processes.clear()
            self._bundles.clear()


def _remember(entries: OrderedDict, key: Any, value: Any, size: int) -> None:
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > size:
        entries.popitem(last=False)


def cache() -> BundleCache:
    """The app's cache of parsed pathways (created on first use)."""
    return current_app.extensions.setdefault(CACHE, BundleCache())


def clear_cache() -> None:
    cache().clear()


def deploy(session: Session, uploads: Mapping[str, bytes], actor: str | None,
           actor_id: int | None = None) -> DeployResult:
    """Check the uploaded files and record a new deployment if anything changed.

    Raises :class:`DeploymentInvalid` (nothing is written) when any file would not run as drawn, is over a
    limit, or the checks take longer than their budget (``service.deploy_checks``).
    """
    _check_upload(uploads)
    deploy_checks.check_limits(uploads)
    latest = session.scalars(select(Deployment).order_by(Deployment.id.desc()).limit(1)).first()
    files = {f.name: f.content for f in latest.files} if latest else {}
    files.update(uploads)
    existing = session.scalars(select(Deployment).where(
        Deployment.content_hash == deploy_checks.content_hash(files))).first()
    if existing is not None:  # nothing changed: nothing is checked or parsed again
        return DeployResult(existing, _versions_up_to(session, existing), created=False)
    digest = deploy_checks.content_hash(files)
    checked = deploy_checks.check_in_time(files)
    stored = _stored_files(session, files)
    deployment = Deployment(content_hash=digest, created_by=actor, created_by_id=actor_id,
                            files=[DeploymentFile(name=n, file=stored[n]) for n in sorted(files)])
    session.add(deployment)
    session.flush()
    versions = []
    for key, (name, process_hash) in sorted(checked.processes.items()):
        latest_version = latest_process_version(session, key)
        if latest_version is not None and latest_version.content_hash == process_hash:
            versions.append(latest_version)
            continue
        version = ProcessVersion(key=key, version=(latest_version.version + 1) if latest_version else 1,
                                 name=name, content_hash=process_hash, deployment=deployment)
        session.add(version)
        versions.append(version)
    session.flush()
    if checked.bundle is not None:
        cache().put(deployment.id, checked.bundle, deployment.council_id)
    return DeployResult(deployment, versions, created=True)


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
    """The latest version of every pathway that ``deployment``'s files define (files are never taken away,
    so those are the keys of every version deployed up to it), read without parsing anything."""
    keys = session.scalars(select(ProcessVersion.key).where(ProcessVersion.deployment_id <= deployment.id)
                           .distinct()).all()
    return [v for key in sorted(keys) if (v := latest_process_version(session, key)) is not None]


def _check_upload(uploads: Mapping[str, bytes]) -> None:
    problems = []
    if not uploads:
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
            if file.suffix.lower() in (".bpmn", ".dmn", ".form"):
                files[file.name] = file.read_bytes()
    return files


def latest_process_version(session: Session, key: str) -> ProcessVersion | None:
    return session.scalars(select(ProcessVersion).where(ProcessVersion.key == key)
                           .order_by(ProcessVersion.version.desc()).limit(1)).first()


def latest_process_versions(session: Session) -> list[ProcessVersion]:
    newest = (select(ProcessVersion.key, func.max(ProcessVersion.version).label("version"))
              .group_by(ProcessVersion.key).subquery())
    return list(session.scalars(select(ProcessVersion).join(
        newest, (ProcessVersion.key == newest.c.key) & (ProcessVersion.version == newest.c.version))
        .order_by(ProcessVersion.key)))


def process_definition(session: Session, version: ProcessVersion) -> ProcessDefinition:
    """The parsed process of a version (parsed once, then cached by its content)."""
    return cache().process(session, version)


def bundle_of(session: Session, version: ProcessVersion) -> Bundle:
    return cache().bundle(session, version.deployment_id, version.council_id)


def get_process(session: Session, key: str) -> ProcessVersion:
    version = latest_process_version(session, key)
    if version is None:
        raise NotFound(f"there is no pathway '{key}'")
    return version


def latest_bundle(session: Session) -> Bundle | None:
    latest = session.scalars(select(Deployment).order_by(Deployment.id.desc()).limit(1)).first()
    return cache().bundle(session, latest.id, latest.council_id) if latest else None


def copy_pathway(session: Session, from_council: str, key: str, actor: str | None) -> DeployResult:
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
    return deploy(session, files, actor)
