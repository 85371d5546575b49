"""Pathway versions and their approval: draft -> (submitted) -> published -> suspended / retired.

An upload (:class:`~service.models.Deployment`) makes a new version of each pathway whose files changed
(:class:`~service.models.ProcessVersion`). Where the council requires approval (its ``requires_approval``
setting, on unless the council's admin turns it off) the upload is a **draft**: nothing changes for new
cases until a second person, a ``pathway_approver`` who is not the author, **publishes** it (four eyes,
``policy.require_publisher``), having seen what changed (:func:`changes`). An analyst may **submit** a draft
to ask for that; an approver may **reject** it (or its author withdraw it), with a reason.

New cases start from a pathway's **current** version: the newest that was ever published. While it is
**suspended** no new case starts (running ones go on; it can be resumed); once **retired** no new case starts
ever again from it (running ones finish). A pathway whose diagram a published upload no longer holds (its
file removed, or no longer executable) is retired by that upload.

Every change of status is a :class:`~service.models.PathwayEvent`: who, when, from what to what, and why.
These are the functions the pages and the API call; the rules of who may do what are ``service.policy``'s.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import deployments, policy
from service.engine import clock
from service.errors import Conflict, InvalidData, NotFound
from service.models import Council, Deployment, PathwayEvent, ProcessVersion
from service.policy import Actor

DEPLOYMENT_STATUSES = ("draft", "submitted", "published", "rejected")
VERSION_STATUSES = ("draft", "submitted", "published", "suspended", "retired", "rejected")
PENDING = ("draft", "submitted")
MAX_REASON = 2000


# -- deploying -----------------------------------------------------------------------------------

def requires_approval(session: Session, actor: Actor) -> bool:
    council = session.get(Council, actor.council_id) if actor.council_id is not None else None
    return True if council is None else bool(council.requires_approval)


def deploy(session: Session, actor: Actor, uploads: Mapping[str, bytes], *, remove: Iterable[str] = (),
           full_set: bool = False, name: str | None = None, source: str = "api",
           record_unchanged: bool = False) -> deployments.DeployResult:
    """Deploy as ``actor``: a draft, or published at once where the council lets its analysts publish."""
    policy.require_deployer(actor)
    publish = policy.publishes_directly(actor, requires_approval(session, actor))
    return deployments.deploy(session, uploads, actor.name, actor.user_id, publish=publish, remove=remove, full_set=full_set,
                              name=name, source=source, record_unchanged=record_unchanged)


def copy(session: Session, actor: Actor, from_council: str, key: str) -> deployments.DeployResult:
    """Copy another council's pathway into the acting council: a draft, or published where analysts publish."""
    policy.require_deployer(actor)
    publish = policy.publishes_directly(actor, requires_approval(session, actor))
    return deployments.copy_pathway(session, from_council, key, actor.name, actor.user_id, publish=publish)


def record_deploy(session: Session, deployment: Deployment, new_versions: list[ProcessVersion], actor: str,
                  removed: list[str], replaced: dict[str, str], defined: set[str]) -> None:
    """Audit a new deployment (called by ``deployments.deploy``); a published one retires what it dropped."""
    notes = [f"new versions: {', '.join(f'{v.key} v{v.version}' for v in new_versions) or 'none'}"]
    if removed:
        notes.append(f"files removed: {', '.join(removed)}")
    if replaced:
        notes.append("files renamed: " + ", ".join(f"{old} -> {new}" for old, new in sorted(replaced.items())))
    _event(session, actor, "deployed", deployment=deployment, to_status=deployment.status, reason="; ".join(notes))
    if deployment.status == "published":
        for version in new_versions:
            _event(session, actor, "published", version=version, to_status="published",
                   reason="published on upload (the council lets its analysts publish directly)")
        _retire_dropped(session, deployment, defined, actor)


# -- reading -------------------------------------------------------------------------------------

def list_deployments(session: Session, actor: Actor, status: str | None = None, *, first: int = 0,
                     most: int | None = None) -> list[Deployment]:
    """The council's deployments, newest first (``status``: only those, e.g. "submitted" for an approver), from
    the ``first`` on, at most ``most`` of them."""
    policy.require_analyst(actor)
    if most == 0:
        return []
    query = select(Deployment).order_by(Deployment.id.desc()).offset(first).limit(most)
    if status:
        query = query.where(Deployment.status == status)
    return list(session.scalars(query))


def get_deployment(session: Session, actor: Actor, deployment_id: int) -> Deployment:
    deployment = _deployment(session, deployment_id)  # another council's: 404, whoever asks
    policy.require_analyst(actor)
    return deployment


def list_versions(session: Session, actor: Actor, key: str | None = None) -> list[dict[str, Any]]:
    """Every version (of pathway ``key``, or of all), newest first per pathway: :func:`version_info` each."""
    policy.require_analyst(actor)
    query = select(ProcessVersion).order_by(ProcessVersion.key, ProcessVersion.version.desc())
    if key is not None:
        query = query.where(ProcessVersion.key == key)
    versions = list(session.scalars(query))
    if key is not None and not versions:
        raise NotFound(f"there is no pathway '{key}'")
    current = {k: v.id for k in {v.key for v in versions} if (v := deployments.current_version(session, k))}
    return [version_info(v, current.get(v.key) == v.id) for v in versions]


def get_version(session: Session, actor: Actor, key: str, number: int) -> ProcessVersion:
    policy.require_analyst(actor)
    return _version(session, key, number)


def get_version_by_id(session: Session, actor: Actor, version_id: int) -> ProcessVersion:
    version = _version_by_id(session, version_id)
    policy.require_analyst(actor)
    return version


def previous_version(session: Session, version: ProcessVersion) -> ProcessVersion | None:
    """The version of the same pathway just before ``version`` (rejected ones left out), if any."""
    return session.scalars(select(ProcessVersion).where(ProcessVersion.key == version.key,
                                                        ProcessVersion.version < version.version,
                                                        ProcessVersion.status != "rejected")
                           .order_by(ProcessVersion.version.desc()).limit(1)).first()


def version_info_of(session: Session, version: ProcessVersion) -> dict[str, Any]:
    current = deployments.current_version(session, version.key)
    return version_info(version, current is not None and current.id == version.id)


def version_info(version: ProcessVersion, current: bool) -> dict[str, Any]:
    """What a page shows of a version: its status, whether it is the one new cases start from, who and when."""
    deployment = version.deployment
    return {"id": version.id, "key": version.key, "version": version.version, "name": version.name,
            "status": version.status, "current": current,
            "starts_new_cases": current and version.status == "published",
            "superseded": version.status == "published" and not current,
            "deployment_id": version.deployment_id, "deployment_status": deployment.status,
            "deployed_by": deployment.created_by, "deployed_at": version.created_at,
            "published_by": version.published_by, "published_at": version.published_at}


def deployment_info(session: Session, deployment: Deployment) -> dict[str, Any]:
    versions = list(session.scalars(select(ProcessVersion).where(ProcessVersion.deployment_id == deployment.id)
                                    .order_by(ProcessVersion.key)))
    return {"id": deployment.id, "status": deployment.status, "name": deployment.name, "source": deployment.source,
            "created_by": deployment.created_by, "created_at": deployment.created_at,
            "submitted_by": deployment.submitted_by, "submitted_at": deployment.submitted_at,
            "decided_by": deployment.decided_by, "decided_at": deployment.decided_at,
            "files": [f.name for f in deployment.files],
            "versions": [{"key": v.key, "version": v.version, "name": v.name, "status": v.status} for v in versions]}


def submission_note(session: Session, deployment: Deployment) -> str | None:
    """The note its author sent with the deployment for the approver (the reason of its "submitted" event)."""
    return session.scalars(select(PathwayEvent.reason).where(
        PathwayEvent.deployment_id == deployment.id, PathwayEvent.event == "submitted",
        PathwayEvent.process_version_id.is_(None)).order_by(PathwayEvent.id.desc()).limit(1)).first()


def history(session: Session, actor: Actor, *, key: str | None = None,
            deployment_id: int | None = None) -> list[PathwayEvent]:
    """The status changes (of pathway ``key``, or of one deployment), oldest first."""
    policy.require_analyst(actor)
    query = select(PathwayEvent).order_by(PathwayEvent.at, PathwayEvent.id)
    if key is not None:
        query = query.where(PathwayEvent.key == key)
    if deployment_id is not None:
        query = query.where(PathwayEvent.deployment_id == deployment_id)
    return list(session.scalars(query))


def changes(session: Session, actor: Actor, deployment_id: int) -> list[dict[str, Any]]:
    """What publishing a deployment would change, per new version: the diff against the pathway's current
    version (``service.pathway_diff``), for the approver to see before publishing."""
    from service import scenario_runs

    deployment = _deployment(session, deployment_id)
    policy.require_analyst(actor)
    return [{"key": item["version"].key, "version": item["version"].version,
             "compared_with": item["before"].version if item["before"] else None,
             "diff": item["diff"].to_dict(), "scenarios": [scenario_runs.run_json(r) for r in item["scenarios"]]}
            for item in _compared(session, deployment)]


def _compared(session: Session, deployment: Deployment) -> list[dict[str, Any]]:
    """Each new version of ``deployment`` with the pathway's current version (``before``, None if there is none),
    the diff between them and the newest run of each of its scenarios (the approver sees them side by side)."""
    from service import scenario_runs
    from service.pathway_diff import diff_versions

    found = []
    for version in session.scalars(select(ProcessVersion).where(ProcessVersion.deployment_id == deployment.id)
                                   .order_by(ProcessVersion.key)):
        before = deployments.current_version(session, version.key)
        before = before if before is not None and before.id != version.id else None
        found.append({"version": version, "before": before, "diff": diff_versions(session, before, version),
                      "scenarios": scenario_runs.latest(session, version)})
    return found


def waiting(session: Session, actor: Actor) -> dict[str, list[Deployment]]:
    """The council's deployments waiting for a pathway approver ("submitted") and its drafts not yet submitted
    ("draft"), newest first: the approvals list."""
    policy.require_analyst(actor)
    return {status: list_deployments(session, actor, status) for status in ("submitted", "draft")}


def review(session: Session, actor: Actor, deployment_id: int) -> dict[str, Any]:
    """What an approver reads before publishing a deployment: its versions, each with its diff against the
    pathway's current version and its scenario results, the deploy checks' warnings about its diagrams, its
    history, and what the acting person may do with it (``service.policy``: four eyes)."""
    from service import deploy_messages
    from service.pathway_diff import version_files

    deployment = get_deployment(session, actor, deployment_id)
    compared = _compared(session, deployment)
    files: dict[str, bytes] = {}
    for item in compared:
        files.update(version_files(session, item["version"]))
    pending = deployment.status in PENDING
    may_publish = pending and policy.may_publish(actor, deployment.created_by_id, requires_approval(session, actor))
    return {"deployment": deployment, "versions": compared,
            "warnings": deploy_messages.warnings(session, deployment.council_id, files, files),
            "history": _history_of(history(session, actor, deployment_id=deployment.id)),
            "pending": pending, "may_publish": may_publish,
            "own": pending and not may_publish and deployment.created_by_id is not None
            and deployment.created_by_id == actor.user_id,
            "may_reject": pending and policy.may_reject(actor, deployment.created_by_id)}


def _history_of(events: list[PathwayEvent]) -> list[PathwayEvent]:
    """A deployment's history once: a version's event that repeats the deployment's own (submitted, published,
    rejected with it) left out; a version's own (another pathway retired by this publish) kept."""
    own = {e.event for e in events if e.process_version_id is None}
    return [e for e in events if e.process_version_id is None or e.event not in own]


def actions(session: Session, actor: Actor, version: ProcessVersion) -> dict[str, bool]:
    """What the acting person may do with ``version`` from its page (the rules are ``service.policy``'s; the
    functions below enforce them again): submit its draft, publish it, suspend, resume or retire it."""
    deployment = version.deployment
    approval = requires_approval(session, actor)
    current = deployments.current_version(session, version.key)
    is_current = current is not None and current.id == version.id
    direct = policy.publishes_directly(actor, approval)
    draft = deployment.status == "draft" and version.status == "draft"
    return {"submit": draft and policy.may_deploy(actor) and not direct,
            "publish": draft and direct and policy.may_publish(actor, deployment.created_by_id, approval),
            "review": deployment.status in PENDING and version.status in PENDING,
            "suspend": is_current and version.status == "published" and policy.may_suspend(actor),
            "resume": is_current and version.status == "suspended" and policy.may_release(actor),
            "retire": is_current and version.status in ("published", "suspended") and policy.may_release(actor)}


# -- changing status -----------------------------------------------------------------------------

def submit(session: Session, actor: Actor, deployment_id: int, reason: str | None = None) -> Deployment:
    """Ask for a draft to be published (the analyst's "ready for review")."""
    deployment = _deployment(session, deployment_id, lock=True)
    policy.require_deployer(actor)
    _expect(deployment.status, ("draft",), f"deployment {deployment.id}")
    deployment.submitted_by, deployment.submitted_at = actor.name, clock.now()
    _move(session, actor, deployment, "submitted", "submitted", reason)
    return deployment


def publish(session: Session, actor: Actor, deployment_id: int, reason: str | None = None) -> Deployment:
    """Publish a draft (or submitted) deployment: its versions become current and start new cases.
    Four eyes: a pathway approver who is not the author (``policy.require_publisher``)."""
    deployment = _deployment(session, deployment_id, lock=True)
    policy.require_publisher(actor, deployment.created_by_id, requires_approval(session, actor))
    _expect(deployment.status, PENDING, f"deployment {deployment.id}")
    from service import (
        scenario_runs,  # every scenario of the versions must pass first (refused: nothing moves)
    )

    scenario_runs.check_publish(session, _versions_of(session, deployment), actor.name)
    deployment.decided_by, deployment.decided_at = actor.name, clock.now()
    _move(session, actor, deployment, "published", "published", reason)
    for version in _versions_of(session, deployment):
        version.published_by, version.published_at = actor.name, clock.now()
    _retire_dropped(session, deployment, deployments.executable_keys({f.name: f.content for f in deployment.files}),
                    actor.name)
    return deployment


approve = publish


def reject(session: Session, actor: Actor, deployment_id: int, reason: str) -> Deployment:
    """Turn down a draft (a pathway approver), or withdraw it (its author): its versions never start a case."""
    deployment = _deployment(session, deployment_id, lock=True)
    policy.require_rejecter(actor, deployment.created_by_id)
    _expect(deployment.status, PENDING, f"deployment {deployment.id}")
    deployment.decided_by, deployment.decided_at = actor.name, clock.now()
    _move(session, actor, deployment, "rejected", "rejected", _required(reason, "rejecting"))
    return deployment


def suspend(session: Session, actor: Actor, version_id: int, reason: str | None) -> ProcessVersion:
    """No new case starts from the pathway until it is resumed; running cases go on."""
    version = _version_by_id(session, version_id)
    policy.require_suspender(actor)
    _current(session, version, ("published",), "suspended")
    return _move_version(session, actor, version, "suspended", _required(reason, "suspending"))


def resume(session: Session, actor: Actor, version_id: int, reason: str | None = None) -> ProcessVersion:
    """New cases start again from a suspended version."""
    version = _version_by_id(session, version_id)
    policy.require_releaser(actor)
    _current(session, version, ("suspended",), "resumed")
    return _move_version(session, actor, version, "published", reason, event="resumed")


def retire(session: Session, actor: Actor, version_id: int, reason: str | None) -> ProcessVersion:
    """No new case ever starts from this version again; cases running on it finish."""
    version = _version_by_id(session, version_id)
    policy.require_releaser(actor)
    _current(session, version, ("published", "suspended"), "retired")
    return _move_version(session, actor, version, "retired", _required(reason, "retiring"))


# -- helpers -------------------------------------------------------------------------------------

def _deployment(session: Session, deployment_id: int, lock: bool = False) -> Deployment:
    query = select(Deployment).where(Deployment.id == deployment_id)
    found = session.scalars(query.with_for_update() if lock else query).first()
    if found is None:
        raise NotFound(f"there is no deployment {deployment_id}")
    return found


def _version(session: Session, key: str, number: int) -> ProcessVersion:
    found = session.scalars(select(ProcessVersion).where(ProcessVersion.key == key,
                                                         ProcessVersion.version == number)).first()
    if found is None:
        raise NotFound(f"there is no version {number} of pathway '{key}'")
    return found


def _version_by_id(session: Session, version_id: int) -> ProcessVersion:
    found = session.scalars(select(ProcessVersion).where(ProcessVersion.id == version_id)).first()
    if found is None:
        raise NotFound(f"there is no pathway version {version_id}")
    return found


def _current(session: Session, version: ProcessVersion, allowed: tuple[str, ...], what: str) -> ProcessVersion:
    number, current = version.version, deployments.current_version(session, version.key)
    if current is None or current.id != version.id:
        raise Conflict(f"version {number} of '{version.name}' is not the pathway's current version "
                       f"({'version ' + str(current.version) if current else 'none is published'}): only the current "
                       f"version can be {what}")
    _expect(version.status, allowed, f"version {number} of '{version.name}'")
    return version


def _versions_of(session: Session, deployment: Deployment) -> list[ProcessVersion]:
    return list(session.scalars(select(ProcessVersion).where(ProcessVersion.deployment_id == deployment.id)))


def _move(session: Session, actor: Actor, deployment: Deployment, status: str, event: str,
          reason: str | None) -> None:
    _event(session, actor.name, event, deployment=deployment, from_status=deployment.status, to_status=status,
           reason=reason)
    deployment.status = status
    for version in _versions_of(session, deployment):
        if version.status in PENDING:
            _move_version(session, actor, version, status, reason, event=event)


def _move_version(session: Session, actor: Actor | str, version: ProcessVersion, status: str,
                  reason: str | None, event: str | None = None) -> ProcessVersion:
    _event(session, actor if isinstance(actor, str) else actor.name, event or status, version=version,
           from_status=version.status, to_status=status, reason=reason)
    version.status = status
    session.flush()
    return version


def _retire_dropped(session: Session, deployment: Deployment, defined: set[str], actor: str) -> None:
    """Retire the current version of each pathway a just-published deployment no longer defines."""
    keys = set(session.scalars(select(ProcessVersion.key).distinct()))
    for key in sorted(keys - defined):
        current = deployments.current_version(session, key)
        if current is not None and current.status in ("published", "suspended"):
            _move_version(session, actor, current, "retired",
                          f"deployment {deployment.id} no longer holds its diagram (its file was removed or "
                          f"it is no longer executable)")


def _event(session: Session, actor: str, event: str, *, deployment: Deployment | None = None,
           version: ProcessVersion | None = None, from_status: str | None = None, to_status: str | None = None,
           reason: str | None = None) -> PathwayEvent:
    row = PathwayEvent(actor=actor[:80], event=event, from_status=from_status, to_status=to_status,
                       reason=(reason or None) and reason[:MAX_REASON],
                       deployment_id=deployment.id if deployment else (version.deployment_id if version else None),
                       process_version_id=version.id if version else None, key=version.key if version else None)
    session.add(row)
    return row


def _expect(status: str, allowed: Iterable[str], what: str) -> None:
    if status not in allowed:
        raise Conflict(f"{what} is {status}: this can be done only when it is {' or '.join(allowed)}")


def _required(reason: str | None, doing: str) -> str:
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not reason:
        raise InvalidData(f"say why you are {doing} it", {"reason": f"Enter why you are {doing} it"})
    if len(reason) > MAX_REASON:
        raise InvalidData("the reason is too long", {"reason": f"At most {MAX_REASON} characters"})
    return reason


def event_json(event: PathwayEvent) -> dict[str, Any]:
    return {"at": event.at, "actor": event.actor, "event": event.event, "deployment_id": event.deployment_id,
            "key": event.key, "from_status": event.from_status, "to_status": event.to_status,
            "reason": event.reason}
