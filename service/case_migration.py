"""Moving running cases from one version of a pathway to another (issue 17, item 7).

An analyst (or a pathway approver, or the admin) of the council picks a version A of a pathway and a version B
of the same pathway. :func:`precheck` says, for each active case of A, whether it can move: every element it
waits on (open tasks, waiting timers and messages, event sub-processes that may still start) exists in B by id,
or is one the analyst maps to an element of B (``{old id: new id}``). :func:`migrate` moves the cases that can
(or, as a dry run, says what it would do and changes nothing): each case's engine state is moved onto B's spec
(``runtime.migrate``, SpiffWorkflow's own diff and migration), its version becomes B, its task and timer rows
follow, and a ``case_migrated`` audit event records from and to which version, the mapping and who. Each case
moves in its own savepoint: one that fails is left as it was and the others are still moved. A case that cannot
move stays on A, untouched.

The cases are taken :data:`MIGRATION_PAGE` at a time, in order of id: a version of a regional service's pathway
may have tens of thousands running, and each is loaded, run on and moved in the request. Each answer carries
the cursor of the next page (``next``), None after the last.

Who may do this is ``service.policy.require_migrator``'s rule.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from service import cases as case_service
from service import paging, pathway_versions, policy, reminders
from service.deployments import process_definition
from service.engine import runtime
from service.errors import InvalidData, NotFound
from service.limits import MAX_INT
from service.models import Case, OpenTask, PendingTimer, ProcessVersion, TaskRole
from service.policy import Actor

#: The statuses of the versions cases may move between: never a draft, a submitted or a rejected one.
MOVABLE_STATUSES = ("published", "suspended", "retired")

#: The cases one check or move takes: about half a second of the engine's work at 5 ms a case, and a page an
#: analyst can read. The cursor of the next page is in the answer.
MIGRATION_PAGE = 100


def versions(session: Session, actor: Actor, from_id: int, to_id: Any) -> tuple[ProcessVersion, ProcessVersion]:
    """The two versions, checked: the actor may migrate, both exist in the acting council, are of one pathway,
    differ, and were published (published, suspended or retired)."""
    source = pathway_versions._version_by_id(session, from_id)  # another council's: 404, as if it did not exist
    policy.require_migrator(actor)
    if isinstance(to_id, bool) or not isinstance(to_id, int):
        raise InvalidData("to is the id of the version to move the cases to", {"to": "Give a version id"})
    target = pathway_versions._version_by_id(session, to_id)
    if source.id == target.id:
        raise InvalidData(f"the cases are already on version {source.version} of '{source.key}'",
                          {"to": "Give another version of the pathway"})
    if source.key != target.key:
        raise InvalidData(f"version {target.id} is of pathway '{target.key}', not '{source.key}': cases move only "
                          f"between versions of one pathway", {"to": "Give a version of the same pathway"})
    for version, field in ((source, "from"), (target, "to")):
        if version.status not in MOVABLE_STATUSES:
            raise InvalidData(f"version {version.version} of '{version.key}' is {version.status}: cases move only "
                              f"between published, suspended or retired versions",
                              {field: "Give a version that was published"})
    return source, target


def _mapping(mapping: Any, target_ids: set[str], target: ProcessVersion) -> dict[str, str]:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v
                                                for k, v in mapping.items()):
        raise InvalidData("mapping maps element ids to element ids", {"mapping": 'Give {"old id": "new id", ...}'})
    missing = sorted(v for v in set(mapping.values()) if v not in target_ids)
    if missing:
        raise InvalidData(f"version {target.version} of '{target.key}' has no element {', '.join(map(repr, missing))}",
                          {"mapping": f"No such element in the target version: {', '.join(missing)}"})
    return dict(mapping)


def _cases(session: Session, source: ProcessVersion, case_ids: Iterable[Any] | None, after: str | None
           ) -> list[Case]:
    """The next page of the version's active cases (after the cursor ``after``), or the cases ``case_ids``
    names (at most a page of them), each with its state."""
    query = (select(Case).where(Case.process_version_id == source.id, Case.status == "active")
             .options(undefer(Case.state)).order_by(Case.id))
    if case_ids is None:
        last = paging.decode(after, 1)
        if last is not None:
            if type(last[0]) is not int or not 0 <= last[0] <= MAX_INT:  # a case id, as the pages' ids are
                raise paging.not_ours()
            query = query.where(Case.id > last[0])
        return list(session.scalars(query.limit(MIGRATION_PAGE)))
    if after:
        raise InvalidData("give either the cases or the page after a cursor", {"after": "Leave it out with cases"})
    ids = list(case_ids)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InvalidData("cases is a list of case ids", {"cases": "Give case ids"})
    if len(ids) > MIGRATION_PAGE:
        raise InvalidData(f"at most {MIGRATION_PAGE} cases at a time",
                          {"cases": f"Give at most {MIGRATION_PAGE} case ids, or none for the version's cases a "
                                    "page at a time"})
    found = list(session.scalars(query.where(Case.id.in_(ids))))
    unknown = sorted(set(ids) - {c.id for c in found})
    if unknown:
        raise NotFound(f"case {', '.join(map(str, unknown))} is not an active case of version {source.version} "
                       f"of '{source.key}'")
    return found


def _plan(session: Session, case: Case, source_process, target_process, target_ids: set[str],
          mapping: dict[str, str]):
    """(row for the answer, the moved workflow and its snapshot, or None when the case cannot move)."""
    row: dict[str, Any] = {"case_id": case.id, "reference": case.reference, "waiting": [], "missing": [],
                           "reason": None}
    try:
        workflow, journal = runtime.load(source_process, reminders.state_of(case), case.state_format,
                                         limits=case_service.engine_limits())
        ran_on = _run_on_fired_reminders(case, workflow, journal)
        row["waiting"] = runtime.waiting_elements(workflow)
        row["missing"] = [e for e in row["waiting"] if mapping.get(e, e) not in target_ids]
        if row["missing"]:
            row.update(status="cannot_move", reason="the target version has no element "
                       + ", ".join(map(repr, row["missing"])) + ": map each to an element of the target version")
            return row, None
        snap = runtime.migrate(workflow, target_process, mapping)
        if ran_on is not None:  # what ran on is recorded with the move, as the step it is
            snap = replace(snap, journal=ran_on.journal, thrown=ran_on.thrown, signals=ran_on.signals,
                           path=ran_on.path)
    except runtime.EngineError as error:
        row.update(status="cannot_move", reason=error.message)
        return row, None
    except Exception as error:  # noqa: BLE001 - a case whose state cannot be read fails alone; the batch goes on
        row.update(status="failed", reason=f"the case could not be read: {type(error).__name__}")
        return row, None
    row["status"] = "would_move"
    return row, (workflow, snap)


def _run_on_fired_reminders(case: Case, workflow, journal) -> runtime.Snapshot | None:
    """The engine's next step on a case whose reminders the timer sweep fired ahead of it (``fired_ahead``): their
    timers are marked fired in the state just loaded but still wait for a step to run them on, so the case would
    seem to wait on them, and their elements would have to exist in the target version. The step runs them on with
    no notice of their own (the sweep sent it), as any step would, and fires whatever else is due."""
    if not case.fired_ahead:
        return None
    return runtime.fire_timers(workflow, journal)


def precheck(session: Session, actor: Actor, from_id: int, to_id: Any, mapping: Any = None,
             case_ids: Iterable[Any] | None = None, after: str | None = None) -> dict[str, Any]:
    """Which active cases of version ``from_id`` can move to ``to_id`` (with the analyst's ``mapping``), a page at a
    time."""
    return migrate(session, actor, from_id, to_id, mapping, dry_run=True, case_ids=case_ids, after=after)


def migrate(session: Session, actor: Actor, from_id: int, to_id: Any, mapping: Any = None, *,
            dry_run: bool = True, case_ids: Iterable[Any] | None = None, after: str | None = None
            ) -> dict[str, Any]:
    """Move the active cases of version ``from_id`` that can move to version ``to_id``; a dry run writes nothing.

    A page of :data:`MIGRATION_PAGE` cases after the cursor ``after`` (the answer's ``next`` is the next page's),
    or only the cases ``case_ids`` names. Each case in its own savepoint: the caller commits what moved."""
    source, target = versions(session, actor, from_id, to_id)
    source_process, target_process = process_definition(session, source), process_definition(session, target)
    target_ids = runtime.element_ids(target_process)
    mapping = _mapping(mapping, target_ids, target)
    results = []
    page = _cases(session, source, case_ids, after)
    for case in page:
        row, moved = _plan(session, case, source_process, target_process, target_ids, mapping)
        if moved is not None and not dry_run:
            savepoint = session.begin_nested()
            try:
                _move(session, case, source, target, mapping, moved, actor)
                session.flush()
                savepoint.commit()
                row["status"] = "moved"
            except Exception as error:  # noqa: BLE001 - one case's failure leaves it as it was, the others go on
                savepoint.rollback()
                session.expire(case)
                row.update(status="failed", reason=str(getattr(error, "message", error)) or type(error).__name__)
        results.append(row)
    more = case_ids is None and len(page) == MIGRATION_PAGE
    return {"from": _version_json(source), "to": _version_json(target), "mapping": mapping, "dry_run": dry_run,
            "cases": results, "next": paging.encode([page[-1].id]) if more else None}


def _version_json(version: ProcessVersion) -> dict[str, Any]:
    return {"id": version.id, "key": version.key, "version": version.version, "status": version.status}


def _move(session: Session, case: Case, source: ProcessVersion, target: ProcessVersion, mapping: dict[str, str],
          moved, actor: Actor) -> None:
    workflow, snap = moved
    case.process_version_id = target.id
    case.process = target
    case_service._apply(session, case, workflow, snap, actor)
    _rename_rows(session, case, snap)
    case_service._audit(session, case, actor, "case_migrated", None, {
        "from_version": source.version, "from_version_id": source.id, "to_version": target.version,
        "to_version_id": target.id, "mapping": mapping, "actor": actor.name})


def _rename_rows(session: Session, case: Case, snap: runtime.Snapshot) -> None:
    """A task or timer keeps its id when its element is mapped to another: its row takes the new element's
    name, title, lane and roles (``cases._sync_tasks`` keeps a row whose id it knows as it is)."""
    tasks = {t.id: t for t in snap.tasks}
    for row in session.scalars(select(OpenTask).where(OpenTask.case_id == case.id, OpenTask.closed_at.is_(None))):
        task = tasks.get(row.id)
        if task is None:
            continue
        if (row.name, row.title, row.lane) != (task.name, task.title, task.lane):
            row.name, row.title, row.lane = task.name, task.title, task.lane
        if sorted(row.roles) != sorted(task.roles):
            row.role_rows = [TaskRole(role=r) for r in task.roles]
    timers = {t.id: t for t in snap.timers}
    for row in session.scalars(select(PendingTimer).where(PendingTimer.case_id == case.id)):
        timer = timers.get(row.id)
        if timer is not None and (row.name, row.title) != (timer.name, timer.title):
            row.name, row.title, row.properties = timer.name, timer.title, timer.properties
