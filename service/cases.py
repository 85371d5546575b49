"""The service layer for cases: what the REST API, the web pages and the timer sweep all call.

Each public function takes the request's database session and the acting
user, does one thing to one case inside one transaction, and leaves the case
either fully moved on or exactly as it was (an engine error is recorded on the
case at its last good state, never half-applied).
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import (Integer, Select, bindparam, exists, false, func, inspect, literal, or_, select,
                        type_coerce, union, union_all, update)
from sqlalchemy.orm import Session, defer, joinedload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from service import (access_log, encryption, families, listed_tasks, notifications, paging, policy, reminders,
                     safeguarding, tenancy, wording)
from service.deployments import get_process, latest_process_versions, process_definition, require_startable
from service.engine import clock, conventions, runtime
from service.engine.bundle import ProcessDefinition
from service.engine.limits import Limits
from service.errors import Conflict, Forbidden, InvalidData, NotFound, ServiceError
from service.forms import validate_submission
from service.listed_tasks import ListedTask
from service.models import (AuditEvent, Case, CaseWait, Membership, OpenTask, PendingTimer, ProcessVersion,
                            ReferenceSuffix, SignalBroadcast, TaskRole, User, as_read, attach_read, loaded_columns,
                            reference_key)
from service.policy import Actor
from service.step_writes import StepWrites, insert_case, write_audit

SYSTEM = "system"
ERASED = "erased"  # a case whose retention ended: only its minimal record is left (service.retention)
TIMER = "timer"
MAX_REFERENCE = 120
TIMER_FAILURES_TO_QUARANTINE = 3
#: A message or a retry carries a few answers, not a document.
MAX_PAYLOAD_KEYS = 50
MAX_PAYLOAD_BYTES = 16 * 1024
_DATA_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


SERVICE = Actor(SYSTEM, ("admin",))


# -- reading ---------------------------------------------------------------------------------

def get_case(session: Session, case_id: int, actor: Actor, purpose: str | None = None) -> Case:
    """The case, if ``actor`` may see it; a ``purpose`` (someone opens it to read) goes in the access log."""
    case = session.get(Case, case_id)  # another council's case is not there (service.tenancy)
    if case is None or case.status == ERASED:
        raise NotFound(f"there is no case {case_id}")
    if not may_see_case(session, case, actor):
        raise Forbidden(f"this case is in '{case.process.name}', and none of your roles works on it")
    if purpose:
        access_log.record(session, actor, case.id, purpose)
    return case


def may_see_case(session: Session, case: Case, actor: Actor) -> bool:
    return policy.may_see_case(process_definition(session, case.process).roles, case.started_by_id, actor)


def may_work_on(task: OpenTask, actor: Actor) -> bool:
    return policy.may_work_on(task.roles, task.assignee_id, actor)


def may_open_task(session: Session, task: OpenTask, actor: Actor) -> bool:
    return policy.may_open_task(task.roles, task.assignee_id, process_definition(session, task.case.process).roles,
                                actor)


def may_open_listed(task: ListedTask, actor: Actor) -> bool:
    """:func:`may_open_task` of a listed task (its pathway's roles are the list's, read once per pathway)."""
    return policy.may_open_task(task.roles, task.assignee_id, task.facts.roles, actor)


def _listed_tasks(session: Session, branches: tuple[str, ...], shape: tuple[str, ...], values: dict[str, Any],
                  limit: int) -> list[ListedTask]:
    """The first ``limit`` tasks of the list, as plain rows (:class:`ListedTask`), in one statement: never a
    query per task, and no ORM object built for one."""
    postgres = session.get_bind().dialect.name == "postgresql"
    query = _list_statement(postgres, branches, shape)
    return listed_tasks.rows_to_tasks(session, tenancy.execute_built(session, query, values | {"limit": limit}))


@functools.lru_cache(maxsize=64)
def _list_statement(postgres: bool, branches: tuple[str, ...], shape: tuple[str, ...]) -> Select:
    """The statement of a list of open tasks of ``shape`` (which filters it has, :func:`_task_filter`), its
    values bound parameters: built once per shape, since building it cost the service more than running it.

    The first ``:limit`` tasks of each branch ("all"; or the actor's own, "mine", and those nobody has taken
    of a role they hold, "pool": each an index-ordered, filtered query), merged in the lists' order, with
    what a list shows of each (its case's reference, pathway, assignee, and the task's roles) in the same
    statement. A statement, like the bound shape, is immutable: the cache is bounded and holds no values. The
    acting council's criteria are in it too (:func:`service.tenancy.council_criteria`), so that each run is
    the cached statement as it is (:func:`service.tenancy.execute_built`), not a new one to key and compile."""
    conditions = _task_conditions(shape)
    only = {"all": [], "mine": [OpenTask.assignee_id == bindparam("user_id")],
            "pool": [OpenTask.assignee_id.is_(None), _has_role(bindparam("roles", expanding=True))],
            "ids": [OpenTask.id.in_(bindparam("ids", expanding=True))],
            "worker_piles": [OpenTask.id.in_(_most_urgent_of_workers(conditions))]}
    limit = bindparam("limit", type_=Integer)
    parts = [_task_keys().where(*conditions, *only[b]).order_by(*paging.task_order()).limit(limit) for b in branches]
    if len(parts) == 1:
        task = parts[0].subquery()
    else:
        task = union_all(*[select(p.subquery()) for p in parts]).subquery()
    return (select(*task.c, Case.reference, ProcessVersion.key, ProcessVersion.name, User.name, User.display_name,
                   Case.process_version_id, ProcessVersion.content_hash, listed_tasks.roles_column(postgres, task.c.id))
            .join(Case, Case.id == task.c.case_id)
            .join(ProcessVersion, ProcessVersion.id == Case.process_version_id)
            .outerjoin(User, User.id == task.c.assignee_id)
            .order_by(*paging.task_order(task.c)).limit(limit).options(tenancy.council_criteria()))


def _most_urgent_of_workers(conditions: list) -> Select:
    """The ids of the ``:pile_tasks`` most urgent open tasks meeting ``conditions`` of each worker in
    ``:workers`` (a page of the workload): each worker's read from the index on their open tasks."""
    ranked = (select(OpenTask.id, func.row_number().over(partition_by=OpenTask.assignee_id,
                                                           order_by=paging.task_order()).label("rank"))
              .where(*conditions, OpenTask.assignee_id.in_(bindparam("workers", expanding=True)))
              .correlate(None).subquery())
    return select(ranked.c.id).where(ranked.c.rank <= bindparam("pile_tasks", type_=Integer))


def _task_keys():
    """The open tasks' columns a list shows, in :class:`service.listed_tasks.ListedTask`'s order."""
    return select(OpenTask.id, OpenTask.case_id, OpenTask.council_id, OpenTask.name, OpenTask.title, OpenTask.lane,
                  OpenTask.assignee_id, OpenTask.due_at, OpenTask.created_at)


def open_tasks(session: Session, actor: Actor, *, case_id: int | None = None, role: str | None = None,
               overdue: bool = False, due_before: datetime | None = None, after: str | None = None,
               limit: int = paging.TASK_PAGE) -> list[ListedTask]:
    """The open tasks ``actor`` may work on (all of them for an admin), most urgent first, a page at a time
    (``after``: the cursor of the last task of the page before, :func:`service.paging.task_cursor`).

    ``overdue`` for a manager lists the team's overdue tasks: those of every case the manager may see.
    """
    if overdue and actor.is_manager and not actor.is_admin:
        return team_tasks(session, actor, overdue=True, due_before=due_before, case_id=case_id, role=role,
                          after=after, limit=limit)
    shape, values = _task_filter(actor, overdue=overdue, due_before=due_before, case_id=case_id, role=role,
                                 after=after)
    limit = max(1, min(limit, paging.MAX_PAGE))
    if actor.is_admin:
        return _listed_tasks(session, ("all",), shape, values, limit)
    # Two index-served branches: the tasks given to the actor (by id), and those nobody has taken of a role
    # they hold (the roles resolved once, with the actor, for the whole request).
    branches = (("mine",) if actor.user_id is not None else ()) + (("pool",) if actor.roles else ())
    values |= {"user_id": actor.user_id, "roles": sorted(actor.roles)}
    return _listed_tasks(session, branches, shape, values, limit) if branches else []


def _task_filter(actor: Actor, *, overdue: bool, due_before: datetime | None, case_id: int | None,
                 role: str | None, after: str | None = None, unassigned: bool = False
                 ) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Which filters a list of open tasks has (its shape, for :func:`_task_conditions`) and their values."""
    shape: list[str] = ["unassigned"] if unassigned else []
    values: dict[str, Any] = {}
    for name, key, value in (("council", "council", actor.council_id), ("case", "case_id", case_id),
                             ("role", "role", [role] if role else None),
                             ("overdue", "now", clock.now() if overdue else None), ("due_before", "due_before", due_before)):
        if value is not None:
            shape.append(name)
            values[key] = value
    return _after(tuple(shape), values, after)


def _after(shape: tuple[str, ...], values: dict[str, Any], after: str | None
           ) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The list of ``shape`` from the task after the cursor ``after`` (:func:`service.paging.task_cursor`)."""
    later = paging.tasks_after(after)
    if later is None:
        return shape, values
    return shape + ("after_undated" if later["after_due"] is None else "after",), values | later


def _task_conditions(shape: tuple[str, ...]) -> list:
    """The conditions of a list of open tasks of ``shape``, their values bound parameters, in the order of the
    open-task indexes' columns."""
    conditions = [OpenTask.closed_at.is_(None)]
    if "council" in shape:
        conditions.append(OpenTask.council_id == bindparam("council"))  # the index's first column
    if "assignee" in shape:  # a worker's open tasks, in order: the index on them
        conditions.extend((OpenTask.assignee_id.is_not(None), OpenTask.assignee_id == bindparam("assignee_id")))
    if "unassigned" in shape:  # nobody's yet, in order: the index on them
        conditions.append(OpenTask.assignee_id.is_(None))
    if "case" in shape:
        conditions.append(OpenTask.case_id == bindparam("case_id"))
    if "role" in shape:
        conditions.append(_has_role(bindparam("role", expanding=True)))
    if "overdue" in shape:
        conditions.append(OpenTask.due_at < bindparam("now"))
    if "due_before" in shape:
        conditions.append(OpenTask.due_at < bindparam("due_before"))
    if "team" in shape:  # the cases of the actor's pathways ("visible": their versions), or started by them
        seen = Case.process_version_id.in_(bindparam("visible", expanding=True)) if "visible" in shape else false()
        if "started_by" in shape:
            seen = or_(seen, Case.started_by_id == bindparam("user_id"))
        conditions.append(exists().where(Case.id == OpenTask.case_id, seen))
    if "after" in shape or "after_undated" in shape:
        conditions.append(paging.tasks_after_condition("after_undated" in shape))
    return conditions


def _has_role(roles) -> Any:
    return exists().where(TaskRole.task_id == OpenTask.id, TaskRole.role.in_(roles))


def _versions_seen(session: Session, actor: Actor) -> tuple[list[int], bool]:
    """The process versions whose cases ``actor`` may see (the pathways their roles belong to), and whether
    they are every version of the council."""
    versions = list(session.scalars(select(ProcessVersion)))
    visible = [v.id for v in versions if policy.may_see_pathway(process_definition(session, v).roles, actor)]
    return visible, len(visible) == len(versions)


def _team_filter(session: Session, actor: Actor, *, overdue: bool = False, due_before: datetime | None = None,
                 case_id: int | None = None, role: str | None = None, after: str | None = None,
                 unassigned: bool = False) -> tuple[tuple[str, ...], dict[str, Any]]:
    """:func:`_task_filter` of the open tasks of every case ``actor`` may see (their pathways' versions, or
    started by them), decided in SQL, never case by case."""
    shape, values = _task_filter(actor, overdue=overdue, due_before=due_before, case_id=case_id, role=role,
                                 after=after, unassigned=unassigned)
    if actor.is_admin:
        return shape, values
    visible, every = _versions_seen(session, actor)
    if visible and every:  # every case of the council is the team's: nothing to decide task by task
        return shape, values
    team = ("team",) + (("visible",) if visible else ()) + (("started_by",) if actor.user_id is not None else ())
    return shape + team, values | {"visible": visible, "user_id": actor.user_id}


class TaskFilter(NamedTuple):
    """Which open tasks a list reads: its filters (``shape``, :func:`_task_filter`) and their values."""

    shape: tuple[str, ...]
    values: dict[str, Any]

    @property
    def conditions(self) -> list:
        """The filters as conditions on ``OpenTask``, their values bound parameters (``values``)."""
        return _task_conditions(self.shape)

    def of_worker(self, user_id: int) -> TaskFilter:
        """These tasks, those held by the user ``user_id`` only (read from the index on their open tasks)."""
        return TaskFilter(self.shape + ("assignee",), self.values | {"assignee_id": user_id})


def team_task_filter(session: Session, actor: Actor, **filters: Any) -> TaskFilter:
    """The open tasks of every case ``actor`` may see (a manager's team), with ``filters`` (:func:`_team_filter`'s:
    a case, a role, overdue, due before, nobody's yet)."""
    return TaskFilter(*_team_filter(session, actor, **filters))


def team_piles(session: Session, team: TaskFilter, workers: list[int], ids: list[str], per_worker: int
               ) -> list[ListedTask]:
    """The ``per_worker`` most urgent tasks of each of ``workers`` (user ids) and the tasks ``ids``, of the
    ``team``'s open tasks, as lists show them, most urgent first: one statement (the workload's piles)."""
    branches = (("worker_piles",) if workers else ()) + (("ids",) if ids else ())
    if not branches:
        return []
    values = team.values | {"workers": workers, "pile_tasks": per_worker, "ids": ids}
    return _listed_tasks(session, branches, team.shape, values, len(workers) * per_worker + len(ids))


def team_page(session: Session, team: TaskFilter, *, after: str | None = None, limit: int = paging.TASK_PAGE
              ) -> list[ListedTask]:
    """A page of the open tasks of ``team`` (:func:`team_task_filter`), most urgent first, from the task after
    the cursor ``after``: one statement, the team's condition as it was decided."""
    shape, values = _after(team.shape, team.values, after)
    return _listed_tasks(session, ("all",), shape, values, max(1, min(limit, paging.MAX_PAGE)))


def team_tasks(session: Session, actor: Actor, *, overdue: bool = False, due_before: datetime | None = None,
               case_id: int | None = None, role: str | None = None, after: str | None = None,
               limit: int = paging.TASK_PAGE) -> list[ListedTask]:
    """Open tasks, whoever they are for, of every case ``actor`` may see (a manager's view), most urgent
    first, a page at a time, in one statement."""
    shape, values = _team_filter(session, actor, overdue=overdue, due_before=due_before, case_id=case_id, role=role,
                                 after=after)
    return _listed_tasks(session, ("all",), shape, values, max(1, min(limit, paging.MAX_PAGE)))


def assignable_users(session: Session, task: OpenTask) -> list[User]:
    """The users who hold one of the task's roles in its council (whom a manager may give it to), by name."""
    members = select(Membership.user_id).where(Membership.council_id == task.council_id,
                                               Membership.role.in_(task.roles))
    return list(session.scalars(select(User).where(User.id.in_(members)).order_by(User.name)))


def case_counts(session: Session, actor: Actor) -> list[tuple[str, str, str, str | None, int]]:
    """How many cases there are per pathway, status and outcome: (key, name, status, outcome, count).

    Only pathways whose roles (in their latest version) include one of ``actor``'s roles, or all for an admin.
    Counted over the visible versions only, from the index on (council, version, status, outcome) alone.
    """
    versions = {v.id: v for v in session.scalars(select(ProcessVersion))}
    visible: dict[str, str | None] = {}
    for key in {v.key for v in versions.values()}:
        process = process_definition(session, get_process(session, key))
        visible[key] = process.name if policy.may_see_pathway(process.roles, actor) else None
    wanted = [i for i, v in versions.items() if visible[v.key] is not None]
    if not wanted:
        return []
    query = (select(Case.process_version_id, Case.status, Case.outcome, func.count())
             .where(Case.process_version_id.in_(wanted))
             .group_by(Case.process_version_id, Case.status, Case.outcome))
    if actor.council_id is not None:
        query = query.where(Case.council_id == actor.council_id)
    totals: dict[tuple[str, str, str | None], int] = {}
    for version_id, status, outcome, count in session.execute(query):
        key = versions[version_id].key
        totals[(key, status, outcome)] = totals.get((key, status, outcome), 0) + count
    return [(key, visible[key], status, outcome, count) for (key, status, outcome), count
            in sorted(totals.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or ""))]


def list_cases(session: Session, actor: Actor, *, status: str | None = None, process: str | None = None,
               page: int = 1, per_page: int = 50, q: str | None = None, reference: str | None = None,
               mine: bool = False, overdue: bool = False, family_id: int | None = None,
               child_id: int | None = None, after: str | None = None) -> tuple[list[Case], int]:
    """The council's cases ``actor`` may see (their team's: the pathways their roles belong to, and those they
    started), errors first then newest, a page at a time, with how many there are (counted up to
    :data:`service.paging.COUNT_CAP` and one more: a total above the cap means "more than that").

    A page is the one after the cursor ``after`` (:func:`service.paging.case_cursor` of the last case shown),
    or else page number ``page``. One statement for the page (the whole list read from the index in the lists'
    order; the few cases a search, a family or "my cases" match found first, then sorted) and one bounded count.

    ``q`` finds a child's name (parts of, any case), date of birth, NHS or council number, or a reference
    (part of); ``reference`` a reference (part of); ``mine`` the cases where ``actor`` holds or held a task,
    or which they started; ``overdue`` the cases with an open task past its due date.
    """
    query = select(Case)
    if actor.council_id is not None:
        query = query.where(Case.council_id == actor.council_id)
    if not actor.is_admin:
        visible, every = _versions_seen(session, actor)
        if not (visible and every):  # else every case of the council is theirs: the count reads an index alone
            seen = Case.process_version_id.in_(visible) if visible else false()
            if actor.user_id is not None:
                seen = or_(seen, Case.started_by_id == actor.user_id)
            query = query.where(seen)
    if status:
        query = query.where(Case.status == status)
    if process:
        query = query.where(Case.process_version_id.in_(select(ProcessVersion.id).where(ProcessVersion.key == process)))
    # A search or "my cases" matches few of many cases: those are found first, each part by its own index
    # (a materialised CTE, so that the planner never walks the whole list order hoping to meet them), then
    # ordered and paged.
    if reference:
        query = query.where(Case.id.in_(_matched(_reference_holding(reference), "by_reference")))
    if q and q.strip():
        query = query.where(Case.id.in_(_matched(_case_search(session, actor, q.strip()), "by_search")))
    if mine:
        me = actor.user_id if actor.user_id is not None else -1
        held = union(select(Case.id).where(Case.started_by_id == me),
                     select(OpenTask.case_id).where(OpenTask.assignee_id == me),
                     select(OpenTask.case_id).where(OpenTask.closed_by_id == me))
        query = query.where(Case.id.in_(_matched(held, "mine")))
    if overdue:
        late = select(OpenTask.case_id).where(OpenTask.closed_at.is_(None), OpenTask.due_at < clock.now())
        query = query.where(Case.id.in_(late))
    if family_id is not None:
        query = query.where(Case.family_id == family_id)
    if child_id is not None:
        query = query.where(Case.child_id == child_id)
    total = paging.capped_count(session, query.with_only_columns(Case.id))
    later = paging.cases_after(after)
    if later is not None:
        query = query.where(later)
    else:
        query = query.offset((max(page, 1) - 1) * per_page)
    # A list shows no case's data, nor what it waits for: neither read nor decoded (the data decrypted was a fifth
    # of a page's time, the three JSON columns a tenth).
    unshown = [defer(column) for column in (Case.data, Case.waiting_for, Case.waiting_signals, Case.fired_ahead)]
    few = bool(reference or (q and q.strip()) or mine or family_id is not None or child_id is not None)
    rows = session.scalars(query.options(joinedload(Case.child), *unshown)
                           .order_by(*paging.case_order(by_index=not few)).limit(per_page))
    return list(rows.unique()), total


def startable_pathways(session: Session, actor: Actor) -> list[tuple[ProcessVersion, ProcessDefinition]]:
    """The latest version of each pathway ``actor`` may start by hand (not those a message or signal starts)."""
    found = []
    for version in latest_process_versions(session):
        process = process_definition(session, version)
        if policy.may_start(process.roles, process.starter_roles, actor) and not runtime.catching_start_events(process):
            found.append((version, process))
    return found


def visible_pathways(session: Session, actor: Actor) -> list[ProcessVersion]:
    """The latest version of each pathway whose cases ``actor`` may see (to filter a list of cases by)."""
    return [v for v in latest_process_versions(session)
            if policy.may_see_pathway(process_definition(session, v).roles, actor)]


def _reference_holding(text: str):
    """The ids of the cases whose reference holds ``text`` (any case): those with a suffix starting with it,
    a range of ``ix_reference_suffixes_council_suffix`` (byte 0xFF is never in UTF-8, so ``key + 0xFF`` bounds
    every suffix starting with ``key``). Equality and ranges of bytes are leakproof: the index serves it under
    row-level security, where ``lower(reference) LIKE`` could only read every case."""
    key = reference_key(text)
    return select(ReferenceSuffix.case_id).where(ReferenceSuffix.suffix >= key, ReferenceSuffix.suffix < key + b"\xff")


def _matched(ids, name: str):
    """``ids`` (a select of case ids) as a materialised CTE: found first, by their own indexes."""
    return select(ids.cte(name).prefix_with("MATERIALIZED").c[0])


def _case_search(session: Session, actor: Actor, text: str):
    """The ids of the cases whose reference holds ``text``, or whose child it names (the blind index:
    ``service.families``). A case of a family with no one child is found by the names of the family's
    children. Each part is served by its own index (the reference's suffixes: :func:`_reference_holding`)."""
    people = families.search_people(session, actor, text) if policy.may_see_people(actor) else {}
    children, of_family = set(people), set(people.values())
    parts = [_reference_holding(text)]
    if children:
        parts.append(select(Case.id).where(Case.child_id.in_(children)))
    if of_family:
        parts.append(select(Case.id).where(Case.child_id.is_(None), Case.family_id.in_(of_family)))
    return union(*parts) if len(parts) > 1 else parts[0]


def history(session: Session, case: Case) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id)
                                .order_by(AuditEvent.at, AuditEvent.id)))


def task_form(session: Session, task: OpenTask):
    """The task's form, its allocation fields listing the council's users who may be allocated (service.workload)."""
    from service import workload

    return workload.with_people(session, process_definition(session, task.case.process).form_of(task.name),
                                task.council_id)


def process_of(session: Session, case: Case) -> ProcessDefinition:
    return process_definition(session, case.process)


def _not_yours(task: OpenTask) -> str:
    if task.roles:
        return f"the task '{task.title}' is for the {wording.roles_in_words(task.roles)}"
    return f"the task '{task.title}' is assigned to someone else"


def get_task(session: Session, task_id: str, actor: Actor, purpose: str | None = None, *,
             to_work: bool = True) -> OpenTask:
    """The open task, if ``actor`` may work on it (or, ``to_work=False``, open it: a manager of its team may
    too); a ``purpose`` (someone opens it) goes in the access log."""
    task = session.get(OpenTask, task_id)
    if task is None:
        raise NotFound(f"there is no task {task_id}")
    allowed = may_work_on(task, actor) or (not to_work and may_open_task(session, task, actor))
    if not allowed:  # before saying anything about the task, even that it is closed
        raise Forbidden(_not_yours(task))
    if task.closed_at is not None:
        raise Conflict(f"the task '{task.title}' is no longer open (closed {task.closed_at:%d %B %Y %H:%M})")
    if purpose:
        access_log.record(session, actor, task.case_id, purpose, task.id)
    return task


# -- acting ----------------------------------------------------------------------------------

def start_case(session: Session, process_key: str, reference: str, data: Any, actor: Actor, *,
               validate: bool = True, started_from: Case | None = None, child: Any = None,
               child_id: int | None = None, family_id: int | None = None, source: str = "json") -> Case:
    """Start a case of the latest version of ``process_key``; 422 if ``data`` does not fit its start form.

    The case is about a child (``child_id``, or a new ``child``: their details) of a family (``family_id``, or a
    new one): ``service.families``. A hand-over (``started_from``) keeps its case's family and child.
    """
    reference = (reference or "").strip() if isinstance(reference, str) else ""
    if not reference or len(reference) > MAX_REFERENCE:
        raise InvalidData("the case needs a reference", {"reference": f"Enter a case reference of at most "
                                                                      f"{MAX_REFERENCE} characters"})
    version = get_process(session, process_key)
    require_startable(version)  # a suspended or retired pathway starts no case (service.pathway_versions)
    process = process_definition(session, version)
    if not policy.may_start(process.roles, process.starter_roles, actor):
        raise Forbidden(f"starting '{version.name}' needs the role "
                        f"{wording.roles_in_words({*process.roles, *process.starter_roles})}")
    if validate:
        data = _validated(process.start_form, data, source)
    safeguarding.check_start(process, data)
    subject = families.subject_for_start(session, actor, child=child, child_id=child_id, family_id=family_id,
                                         started_from=started_from)
    # The engine runs before the first write, so that no lock is held while it does (on SQLite a write
    # lock stops every other writer).
    try:
        workflow, snap, error = *runtime.start(process, data, limits=engine_limits()), None
    except runtime.EngineError as failure:
        workflow, snap, error = runtime.new_workflow(process, data, limits=engine_limits()), None, failure
    case = Case(process=version, reference=reference, status="active", state="", state_format=runtime.STATE_FORMAT,
                started_by_id=actor.user_id, data={},
                started_from_case_id=started_from.id if started_from else None)
    if error is None:  # the first step's columns go in the case's INSERT: no UPDATE of a row just inserted
        now = clock.now()
        for key, value in _step_values(case, workflow, snap, None, now).items():
            setattr(case, key, value)
        case.created_at = now
    family, person = subject.record(session, actor)
    case.family_id, case.child_id = (family.id if family else None), (person.id if person else None)
    writes = StepWrites(case)
    insert_case(session, case, writes)  # on PostgreSQL the INSERT goes with the first step's rows
    started = _audit_row(case, actor, "case_started", None, {"data": runtime.json_safe(data), "process": version.key,
                                                              "version": version.version,
                                                              **({"from_case": started_from.id} if started_from else {}),
                                                              **({"family": case.family_id} if family else {}),
                                                              **({"child": case.child_id} if person else {})})
    if error is not None:
        writes.write(session)  # the case alone: it has no step
        session.add(AuditEvent(**started))
        case.state = runtime.dump(workflow)
        case.data = runtime.json_safe(data)
        _record_error(session, case, actor, error)
        return case
    set_committed_value(case, "timers", [])  # a new case: nothing to read back before its first step
    _apply(session, case, workflow, snap, actor, open_tasks=[], events=[started], case_written=True, writes=writes)
    if started_from is None:  # a hand-over carries answers the case it came from has already acted on
        _refer_significant_harm(session, case, data, actor, where=process.name)
    return case


def complete_task(session: Session, task_id: str, data: Any, actor: Actor, *, source: str = "json") -> Case:
    """Complete an open task with the data of its form; 422 names each field that is wrong."""
    task, open_now = _task_to_complete(session, task_id, actor)
    case = task.case
    process = process_of(session, case)
    cleaned = _validated(task_form(session, task), data, source, known=case.data)
    workflow, journal = runtime.load(process, reminders.state_of(case), case.state_format, limits=engine_limits())
    try:
        snap = runtime.complete_task(workflow, journal, task.id, cleaned)
    except runtime.TaskNotOpen:
        raise Conflict(f"the task '{task.title}' is no longer open") from None
    except runtime.EngineError as error:
        _record_error(session, case, actor, error, task=task.name, data=cleaned)
        return case
    as_admin = actor.is_admin and not may_work_on_without_admin(task, actor)
    completed = _audit_row(case, actor, "task_completed", task.name,
                           {"title": task.title, "data": runtime.json_safe(cleaned),
                            **({"as_admin": True} if as_admin else {})})
    _apply(session, case, workflow, snap, actor, answers=cleaned, open_tasks=open_now, events=[completed],
           closed_by={task.id: actor.user_id})
    _refer_significant_harm(session, case, cleaned, actor, where=task.title)
    return case


def _task_to_complete(session: Session, task_id: str, actor: Actor) -> tuple[OpenTask, list[OpenTask] | None]:
    """The open task ``actor`` may work on, with its case, the case's state and timers and every open task of
    the case (what completing it brings in step), in one statement; else what :func:`get_task` says."""
    rows = _open_tasks_as_read(session, task_id)
    task = next((t for t in rows if t.id == task_id), None)
    if task is None or not may_work_on(task, actor):
        return get_task(session, task_id, actor), None  # its answer: 404, 403 or 409
    return task, sorted(rows, key=lambda t: t.created_at)


#: What the completion's read holds of each row, in the statement's order: the model, its deferred columns read.
_READ: tuple[tuple[type, tuple[str, ...]], ...] = (
    (OpenTask, ()), (TaskRole, ()), (Case, ("state",)), (ProcessVersion, ()), (PendingTimer, ()))


def _open_tasks_as_read(session: Session, task_id: str) -> list[OpenTask]:
    """The open tasks of the task's case, each with its roles and the case (its state, pathway version and
    timers), in one statement: plain rows in the acting council (refused outside one council's scope), made rows
    as the ORM makes those it reads (:func:`service.models.as_read`; the ORM's joined loading of them was most of
    the read's CPU). A row the session holds already is refreshed from what was read, as ``populate_existing``
    refreshes it."""
    statement, shapes = _open_tasks_read()
    found: dict[type, dict[Any, dict[str, Any]]] = {model: {} for model, _ in _READ}
    for row in tenancy.execute_built(session, statement, {"task_id": task_id}):
        start = 0
        for model, keys, identity, sealed in shapes:
            values = row[start:start + len(keys)]
            start += len(keys)
            key = tuple(values[i] for i in identity)
            if None not in key and key not in found[model]:  # None: no role or no timer (an outer join)
                read = dict(zip(keys, values))
                for name, kind in sealed:  # decrypted once per row read, not once per joined row it is in
                    read[name] = kind.process_result_value(read[name], None)
                found[model][key] = read
    held = {(model, key): row for model, rows in found.items() for key in rows
            if (row := session.identity_map.get(identity_key(model, key))) is not None}
    return _built(session, found, held)


def _built(session: Session, found: dict[type, dict[Any, dict[str, Any]]], held: dict[tuple[type, Any], Any]
           ) -> list[OpenTask]:
    """The rows :func:`_open_tasks_as_read` read, related as the ORM relates them, in ``session``: a row it holds
    already (in ``held``) is refreshed from what was read, its unwritten changes to them given up."""
    new = []

    def made(model: type, key: Any, values: dict[str, Any]) -> Any:
        row = held.get((model, key))
        if row is None:
            row = as_read(model, values)
            new.append(row)
        else:
            for name, value in values.items():
                set_committed_value(row, name, value)
        return row

    versions = {key[0]: made(ProcessVersion, key, values) for key, values in found[ProcessVersion].items()}
    cases = {}
    for key, values in found[Case].items():
        case = cases[key[0]] = made(Case, key, values)
        set_committed_value(case, "process", versions.get(values["process_version_id"]))
    timers = [made(PendingTimer, key, values) for key, values in found[PendingTimer].items()]
    for case in cases.values():
        set_committed_value(case, "timers", sorted((t for t in timers if t.case_id == case.id), key=lambda t: t.due_at))
    roles = [made(TaskRole, key, values) for key, values in found[TaskRole].items()]
    tasks = []
    for key, values in found[OpenTask].items():
        task = made(OpenTask, key, values)
        set_committed_value(task, "role_rows", [r for r in roles if r.task_id == task.id])
        set_committed_value(task, "case", cases.get(task.case_id))
        tasks.append(task)
    attach_read(session, new)
    return tasks


@functools.cache
def _open_tasks_read() -> tuple[Select, list[tuple[type, list[str], list[int], list[tuple[str, Any]]]]]:
    """:func:`_open_tasks_as_read`'s statement, built once with the council wall's criteria in it, and the
    shape of its rows: each model's attribute names, in order, the positions of its primary key, and its
    encrypted attributes with their types. Those are read as stored and decrypted by the caller once per row of
    their table: a case's state is in every joined row (its open tasks, their roles and its timers)."""
    shapes, columns = [], []
    for model, undeferred in _READ:
        keys = loaded_columns(model, *undeferred)
        attributes = [getattr(model, key) for key in keys]
        sealed = [(key, a.type) for key, a in zip(keys, attributes) if isinstance(a.type, encryption.ENCRYPTED)]
        shapes.append((model, keys, [keys.index(c.key) for c in inspect(model).primary_key], sealed))
        columns.extend(type_coerce(a, a.type.impl) if isinstance(a.type, encryption.ENCRYPTED) else a
                       for a in attributes)
    of_case = select(OpenTask.case_id).where(OpenTask.id == bindparam("task_id")).scalar_subquery()
    statement = (select(*columns).select_from(OpenTask)
                 .outerjoin(TaskRole, TaskRole.task_id == OpenTask.id)
                 .join(Case, Case.id == OpenTask.case_id)
                 .outerjoin(ProcessVersion, ProcessVersion.id == Case.process_version_id)
                 .outerjoin(PendingTimer, PendingTimer.case_id == Case.id)
                 .where(OpenTask.case_id == of_case, OpenTask.closed_at.is_(None))
                 .options(tenancy.council_criteria()))
    return statement, shapes


def check_task_answers(session: Session, task_id: str, data: Any, actor: Actor, *, source: str = "json"
                       ) -> dict[str, Any]:
    """The answers ``complete_task`` would record, checked as it checks them, without completing the task (the
    pages' "Check your answers" step); 422 names each field that is wrong."""
    task = get_task(session, task_id, actor, to_work=True)
    return _validated(task_form(session, task), data, source, known=task.case.data)


def may_work_on_without_admin(task: OpenTask, actor: Actor) -> bool:
    return may_work_on(task, actor.without_admin())


def save_draft(session: Session, task_id: str, data: dict[str, Any], actor: Actor) -> OpenTask:
    """Keep a half-filled form on the task, unvalidated, until it is completed."""
    task = get_task(session, task_id, actor)
    task.draft = {k: v for k, v in data.items() if isinstance(k, str) and _DATA_KEY.match(k)}
    return task


def claim_task(session: Session, task_id: str, actor: Actor, assignee: str | None = None) -> OpenTask:
    """Take a task (or, for a manager or admin, give it to ``assignee``)."""
    task = _task_to_assign(session, task_id, actor)
    target = assignee or actor.name
    if target != actor.name and not policy.may_give_tasks(actor):
        raise Forbidden("only a manager can give a task to someone else")
    # The name is how people say who; the task holds the id of the user of that name now (issue 11).
    user = session.get(User, actor.user_id) if not assignee and actor.user_id is not None else \
        session.scalars(select(User).where(User.name == target)).first()
    if task.assignee_id is not None and (user is None or task.assignee_id != user.id) \
            and not policy.may_give_tasks(actor):
        raise Conflict(f"'{task.title}' is already with {task.assignee}")
    roles = set(session.scalars(select(Membership.role).where(Membership.user_id == user.id,
                                                              Membership.council_id == task.council_id))
                ) if user is not None else set()
    if not roles:  # someone who does not work for this council is, here, nobody
        raise NotFound(f"there is no user '{target}'")
    if not (roles & set(task.roles)) and policy.ADMIN not in roles:
        raise InvalidData("that user cannot do this task", {"assignee": f"{target} does not have the role "
                                                                        f"{' or '.join(task.roles)}"})
    _assign(session, task, user)
    _audit(session, task.case, actor, "task_assigned", task.name, {"assignee": user.name, "assignee_id": user.id})
    return task


def _task_to_assign(session: Session, task_id: str, actor: Actor) -> OpenTask:
    """A task the actor may take (a holder of its role, even when someone took it first: that is a 409) or
    give (a manager of its pathway)."""
    task = session.get(OpenTask, task_id)
    if task is None:
        raise NotFound(f"there is no task {task_id}")
    pathway_roles = process_definition(session, task.case.process).roles
    if not policy.may_assign(task.roles, pathway_roles, actor):
        raise Forbidden(_not_yours(task))
    if task.closed_at is not None:
        raise Conflict(f"the task '{task.title}' is no longer open (closed {task.closed_at:%d %B %Y %H:%M})")
    return task


def _assign(session: Session, task: OpenTask, target: User) -> None:
    """Give the task to ``target`` if nobody changed its assignee since it was read (compare and set)."""
    seen = task.assignee_id
    changed = session.execute(update(OpenTask).where(OpenTask.id == task.id, OpenTask.closed_at.is_(None),
                                                     OpenTask.assignee_id.is_not_distinct_from(seen))
                              .values(assignee_id=target.id).execution_options(synchronize_session=False))
    if changed.rowcount != 1:
        session.rollback()
        now = session.get(OpenTask, task.id, populate_existing=True)
        holder = now.assignee if now is not None else None
        raise Conflict(f"someone else took '{task.title}' at the same moment"
                       + (f": it is now with {holder}" if holder else "") + "; reload it and try again")
    set_committed_value(task, "assignee_id", target.id)  # what the UPDATE wrote: no second write at flush
    set_committed_value(task, "assignee_user", target)


def send_message(session: Session, case_id: int, name: str, data: Any, actor: Actor) -> Case:
    case = get_case(session, case_id, actor)
    if name == conventions.IMMEDIATE_RISK:
        data = {**(data if isinstance(data, dict) else {}), "what_happened": safeguarding.what_happened(data)}
    payload, kept = message_payload(case, data)
    if case.status not in ("active", "error") or name not in (case.waiting_for or []):
        raise Conflict(f"nothing in case {case.id} waits for the message '{name}'",
                       waiting=sorted(case.waiting_for or []))
    _deliver(session, case, name, payload, actor)
    if kept:
        _audit(session, case, actor, "message_answers_kept", None, {"name": name, "not_changed": sorted(kept),
                                                                    "sent": kept})
    return case


def ad_hoc_of(session: Session, task: OpenTask) -> tuple[str, str] | None:
    """(id, name) of the ad-hoc sub-process the task is an activity of, if it is one."""
    return runtime.ad_hoc_activities(process_definition(session, task.case.process)).get(task.name)


def finish_ad_hoc(session: Session, case_id: int, element: str, actor: Actor) -> Case:
    """The worker has done the activities of the ad-hoc sub-process ``element`` that they chose: the others are
    not done (their tasks close) and the case goes on after it. For someone who may work on one of its open
    activities; 409 when it is not running."""
    case = get_case(session, case_id, actor)
    process = process_of(session, case)
    activities = {task for task, (owner, _) in runtime.ad_hoc_activities(process).items() if owner == element}
    if case.status != "active" or not activities:
        raise Conflict(f"case {case.id} is not inside an ad-hoc sub-process '{element}'")
    rows = [t for t in case.tasks if t.name in activities and t.closed_at is None]
    if rows and not any(may_work_on(t, actor) for t in rows):
        raise Forbidden(f"the activities of '{element}' are for the {wording.roles_in_words(rows[0].roles)}")
    workflow, journal = runtime.load(process, reminders.state_of(case), case.state_format, limits=engine_limits())
    try:
        snap = runtime.finish_ad_hoc(workflow, journal, element)
    except runtime.NothingWaits:
        raise Conflict(f"the ad-hoc sub-process '{element}' of case {case.id} is not running") from None
    except runtime.EngineError as error:
        _record_error(session, case, actor, error)
        return case
    _audit(session, case, actor, "ad_hoc_finished", element, {"not_done": sorted(t.name for t in rows)})
    _apply(session, case, workflow, snap, actor)
    return case


def retry(session: Session, case_id: int, data: Any, actor: Actor) -> Case:
    """Run a case that stopped on an error again, with corrected data."""
    return retry_case(session, get_case(session, case_id, actor), data, actor)


def retry_case(session: Session, case: Case, data: Any, actor: Actor) -> Case:
    """:func:`retry` of a case the caller has already checked ``actor`` may retry (``service.analyst``)."""
    if case.status != "error":
        raise Conflict(f"case {case.id} is {case.status}, not stopped on an error")
    process = process_of(session, case)
    payload = _retry_payload(case, process, data)
    workflow, journal = runtime.load(process, reminders.state_of(case), case.state_format, limits=engine_limits())
    try:
        snap = runtime.retry(workflow, journal, payload)
    except runtime.EngineError as error:
        _record_error(session, case, actor, error, data=payload)
        return case
    _audit(session, case, actor, "case_retried", None, {"data": runtime.json_safe(payload)})
    _apply(session, case, workflow, snap, actor)
    return case


def fire_timers(session: Session, case: Case) -> int:
    """Fire what is due in one case (its service-added escalations first); return how many timers fired."""
    escalation_timers, escalated = safeguarding.fire_escalations(session, case)
    for task in escalated:
        _audit(session, case, Actor(TIMER), "urgent_task_escalated", task.name, {"title": task.title})
    process = process_of(session, case)
    workflow, journal = runtime.load(process, reminders.state_of(case), case.state_format, limits=engine_limits())
    try:
        snap = runtime.fire_timers(workflow, journal)
    except runtime.EngineError as error:
        _record_error(session, case, Actor(TIMER), error)
        notifications.for_error(session, case)  # nobody is at the case when a timer stops it: say so
        return 0
    case.timer_failures = 0
    fired = sum(1 for entry in snap.journal if entry.event == "timer_fired")
    reminding = runtime.notify_only_timers(process)
    reminded_only = not escalated and all(e.event == "timer_fired" and e.element in reminding for e in snap.journal)
    _apply(session, case, workflow, snap, Actor(TIMER), touched=not reminded_only)
    return fired + escalation_timers


#: The cases a signal reaches in the sender's request (each one an engine step); the rest wait for the timer service
#: (``service.broadcasts``), which reaches them this many at a time.
SIGNAL_BATCH = 100


def broadcast_signal(session: Session, name: str, data: Any, actor: Actor, *, thrower: Case | None = None,
                     reference: str | None = None) -> dict[str, Any]:
    """A signal reaches every active case of the council that waits for it, and starts a case of every
    pathway whose start event catches it (with the thrower's reference, or ``reference``).

    The first :data:`SIGNAL_BATCH` cases are reached now; when more wait, the rest are kept as a
    :class:`~service.models.SignalBroadcast` for the timer service (``service.broadcasts``). Returns the ids of
    the cases reached and of those started, and the broadcast's id (None when none was needed).
    """
    payload = _sized(_plain_data(data))
    up_to = session.scalar(select(func.max(Case.id))) or 0  # a case started from now on does not catch it
    sent_by = SERVICE if thrower else actor
    thrower_id = thrower.id if thrower else None
    batch = signal_candidates(session, name, after=0, up_to=up_to, thrower_id=thrower_id, size=SIGNAL_BATCH)
    reached = [case for case in batch if catch_signal(session, case, name, payload, sent_by)]
    broadcast = None
    if len(batch) == SIGNAL_BATCH:  # more may wait
        broadcast = SignalBroadcast(name=name, payload=payload, sent_by=sent_by.name, sent_by_id=sent_by.user_id,
                                    thrower_case_id=thrower_id, sent_at=clock.now(), due_at=clock.now(),
                                    up_to_case_id=up_to, after_case_id=batch[-1].id, reached=len(reached))
        session.add(broadcast)
        session.flush()
        from service import scheduler  # it imports this module
        scheduler.timers_changed(session, clock.now())  # every process's timer service: the rest is due now
    started = [_start_by_signal(session, version, name, payload, actor, thrower, reference)
               for version in _started_by(session, "signal", name)]
    if thrower is not None:
        _audit(session, thrower, actor, "signal_sent", None, {"name": name, "to_cases": [c.id for c in reached],
                                                              "started": [c.id for c in started],
                                                              **({"broadcast": broadcast.id} if broadcast else {})})
    return {"reached": [c.id for c in reached], "started": [c.id for c in started],
            "broadcast": broadcast.id if broadcast else None}


def signal_candidates(session: Session, name: str, *, after: int, up_to: int, thrower_id: int | None,
                      size: int) -> list[Case]:
    """The next ``size`` active cases waiting for the signal ``name``, in order of id past ``after`` up to ``up_to``
    (not the case that threw it). On PostgreSQL each is locked: a step on it meanwhile waits, and none is lost."""
    query = (select(Case).where(Case.status == "active", Case.id.in_(_waiting("signal", name)), Case.id > after,
                                Case.id <= up_to, Case.id != (thrower_id or 0))
             .order_by(Case.id).limit(size))
    if session.get_bind().dialect.name == "postgresql":  # the state read inside the lock, never a stale copy
        query = query.with_for_update(of=Case).execution_options(populate_existing=True)
    return list(session.scalars(query))


def catch_signal(session: Session, case: Case, name: str, payload: dict[str, Any], actor: Actor) -> bool:
    """The case catches the signal if it still waits for it (its step runs on); whether it did."""
    if name not in (case.waiting_signals or []):
        return False
    _deliver(session, case, name, payload, actor, signal=True)
    return True


def record_undelivered(session: Session, case_id: int, name: str, reason: str, actor: Actor) -> None:
    """Note on the case that the signal ``name`` could not reach it, and why (its history shows it)."""
    case = session.get(Case, case_id)
    if case is not None:
        _audit(session, case, actor, "signal_undelivered", None, {"name": name, "reason": reason})


def _start_by_signal(session: Session, version: ProcessVersion, name: str, payload: dict[str, Any], actor: Actor,
                     thrower: Case | None, reference: str | None, *, kind: str = "signal") -> Case:
    """A case of ``version`` started by its start event catching the signal (or ``kind`` message) ``name``."""
    reference = thrower.reference if thrower is not None else (reference or "").strip()
    if not reference or len(reference) > MAX_REFERENCE:
        raise InvalidData(f"a {kind} that starts a pathway needs the case reference",
                          {"reference": f"Give the reference of the family's case (at most {MAX_REFERENCE} characters)"})
    process = process_definition(session, version)
    if thrower is None and not policy.may_start(process.roles, process.starter_roles, actor):
        raise Forbidden(f"the {kind} '{name}' starts '{version.name}', which your roles may not start")
    safeguarding.check_start(process, payload)  # a voluntary service needs consent, however it is started
    try:
        workflow, snap, error = *runtime.start_by_event(process, kind, name, payload, limits=engine_limits()), None
    except runtime.EngineError as failure:  # kept, stopped at the start, for an admin to retry
        workflow, snap, error = runtime.new_workflow(process, {}, limits=engine_limits()), None, failure
    case = Case(process=version, reference=reference, status="active", state="", state_format=runtime.STATE_FORMAT,
                started_by_id=actor.user_id, data={}, started_from_case_id=thrower.id if thrower else None,
                family_id=thrower.family_id if thrower else None, child_id=thrower.child_id if thrower else None)
    insert_case(session, case)
    _audit(session, case, actor, "case_started", None, {kind: name, "data": payload, "process": version.key,
                                                         "version": version.version})
    if error is not None:
        case.state, case.data = runtime.dump(workflow), runtime.json_safe(payload)
        _record_error(session, case, actor, error)
        return case
    _apply(session, case, workflow, snap, actor)
    return case


def cancel_case(session: Session, case_id: int, reason: Any, actor: Actor) -> Case:
    """End a case that must not go on (a duplicate, a case stuck on an error), with the reason, audited.

    Its open tasks close and its timers stop; the engine state stays as it was, for the record.
    """
    case = get_case(session, case_id, actor)
    if not policy.may_cancel(actor):
        raise Forbidden("only the council's admin can cancel a case")
    if case.status in ("completed", "cancelled"):
        raise Conflict(f"case {case.reference} is already {case.status}")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not 3 <= len(reason) <= 2000:
        raise InvalidData("a cancellation needs its reason", {"reason": "Say why the case is cancelled "
                                                                        "(3 to 2,000 characters)"})
    now = clock.now()
    case.status, case.waiting_for, case.next_timer_at, case.updated_at = "cancelled", [], None, now
    for task in session.scalars(select(OpenTask).where(OpenTask.case_id == case.id, OpenTask.closed_at.is_(None))):
        task.closed_at, task.closed_by_id = now, actor.user_id
    for timer in session.scalars(select(PendingTimer).where(PendingTimer.case_id == case.id)):
        session.delete(timer)
    _audit(session, case, actor, "case_cancelled", None, {"reason": reason})
    return case


def record_timer_failure(session: Session, case_id: int, reason: str) -> Case | None:
    """Count a failed firing of the case's timers; the third in a row quarantines it (status ``error``) and
    tells the council's admins, so that one poisoned case never holds up the others."""
    case = session.get(Case, case_id, populate_existing=True)
    if case is None or case.status != "active":
        return case
    case.timer_failures = (case.timer_failures or 0) + 1
    if case.timer_failures >= TIMER_FAILURES_TO_QUARANTINE:
        error = runtime.EngineError(None, f"its timers failed {case.timer_failures} times in a row ({reason}); "
                                          "the case is held for an admin to retry or cancel")
        _record_error(session, case, Actor(TIMER), error)
        notifications.for_error(session, case)
    return case


def commit(session: Session) -> None:
    """Commit; a concurrent change to the same case (the other worker won) is a 409."""
    try:
        session.commit()
    except StaleDataError:
        session.rollback()
        raise Conflict("someone else changed this case at the same moment; reload it and try again") from None


# -- inside ------------------------------------------------------------------------------------

def _plain_data(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidData("data must be a JSON object", {"data": "Send the data as a JSON object of named values"})
    bad = [k for k in data if not (isinstance(k, str) and _DATA_KEY.match(k))]
    if bad:
        raise InvalidData("some data names are not allowed",
                          {k: "Names start with a letter and use letters, digits and _" for k in map(str, bad)})
    return runtime.json_safe(data)


def _sized(payload: dict[str, Any]) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_KEYS or len(json.dumps(payload)) > MAX_PAYLOAD_BYTES:
        raise InvalidData("the data is too large", {"data": f"Send at most {MAX_PAYLOAD_KEYS} values and "
                                                            f"{MAX_PAYLOAD_BYTES // 1024} KB"})
    return payload


def message_payload(case: Case, data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a message adds to the case, and what it would have changed (kept out, but recorded).

    A message never changes an answer the case already has; nor is it refused for trying, because a message
    such as ``immediate_risk`` must always get through (safeguarding comes first).
    """
    sent = _sized(_plain_data(data))
    known = case.data or {}
    kept = {k: v for k, v in sent.items()
            if k == "outcome" or (known.get(k) is not None and k not in _EACH_MESSAGE_SAYS)}
    return {k: v for k, v in sent.items() if k not in kept}, kept


#: What every message of its kind says afresh: a second report of immediate risk has its own account.
_EACH_MESSAGE_SAYS = frozenset({"what_happened"})


def _retry_payload(case: Case, process: ProcessDefinition, data: Any) -> dict[str, Any]:
    """Corrections for a case stopped on an error: only answers the pathway's forms ask, or the case has."""
    payload = _sized(_plain_data(data))
    declared = set(case.data or {}) | {f.key for form in (process.start_form, *process.task_forms.values())
                                       if form is not None for f in form.fields}
    unknown = sorted(k for k in payload if k not in declared or k == "outcome")
    if unknown:
        raise InvalidData("a retry may correct the pathway's answers only",
                          {k: f"'{k}' is not an answer of this pathway" for k in unknown})
    return payload


def validated_answers(form, data: Any, *, known: dict[str, Any] | None = None, source: str = "json") -> dict[str, Any]:
    """The answers ``form`` accepts from ``data``, checked exactly as completing a task checks them (no database:
    the sandbox's steps are checked by this too); 422 names each field that is wrong."""
    return _validated(form, data, source, known)


def _validated(form, data: Any, source: str = "json", known: dict[str, Any] | None = None) -> dict[str, Any]:
    if form is None:
        return _plain_data(data)
    submitted = data if data is not None else {}
    cleaned, errors = validate_submission(form, submitted, source=source, known=known)
    errors = safeguarding.waived(cleaned, errors)
    if errors:
        raise InvalidData("some answers need correcting", errors)
    # An optional field left out of the submission keeps what the case already knows (a field it does
    # not know yet becomes null, so that conditions can test it); a field that was sent, even empty, replaces it.
    known = known or {}
    answers = {key: value for key, value in cleaned.items()
               if value is not None or key not in known or _was_sent(submitted, key)}
    safeguarding.check_answers(answers, known)
    return answers


def _refer_significant_harm(session: Session, case: Case, answers: dict[str, Any], actor: Actor, *,
                            where: str) -> None:
    """Significant harm answered yes reaches the front door at once, whatever the diagram drew (rule 1).

    Satisfied when the step opened an urgent step in the case, or in a case it handed over to. Otherwise
    the service raises immediate risk on the case; a case that cannot catch it refuses the answer (422),
    so that nothing is recorded as if the referral had been made.
    """
    if not safeguarding.significant_harm_answered(answers) or _urgent_open(session, case):
        return
    if case.status == "active" and conventions.IMMEDIATE_RISK in (case.waiting_for or []):
        _audit(session, case, SERVICE, "significant_harm_referred", None, {"where": where})
        _deliver(session, case, conventions.IMMEDIATE_RISK,
                 {"what_happened": f"Significant harm: answered yes at '{where}'"}, actor)
        return
    raise InvalidData("significant harm needs a referral to the front door, and this pathway does not make one "
                      "from here: raise immediate risk on the case instead",
                      {key: "Raise immediate risk on the case: this answer needs the front door now"
                       for key in answers if conventions.is_significant_harm(key)})


def _urgent_open(session: Session, case: Case) -> bool:
    """Whether the case, or a case it handed over to, has an urgent step open."""
    cases = [case, *session.scalars(select(Case).where(Case.started_from_case_id == case.id,
                                                        Case.status == "active"))]
    for each in cases:
        process = process_of(session, each)
        names = session.scalars(select(OpenTask.name).where(OpenTask.case_id == each.id,
                                                            OpenTask.closed_at.is_(None)))
        if any(safeguarding.is_urgent(process, name) for name in names):
            return True
    return False


def _was_sent(submitted: Any, key: str) -> bool:
    return hasattr(submitted, "keys") and (key in submitted or f"{key}-day" in submitted)


def _deliver(session: Session, case: Case, name: str, payload: dict[str, Any], actor: Actor, *,
             signal: bool = False) -> None:
    process = process_of(session, case)
    workflow, journal = runtime.load(process, reminders.state_of(case), case.state_format, limits=engine_limits())
    try:
        deliver = runtime.deliver_signal if signal else runtime.deliver_message
        snap = deliver(workflow, journal, name, payload)
    except runtime.NothingWaits:
        raise Conflict(f"nothing in case {case.id} waits for the {'signal' if signal else 'message'} '{name}'") from None
    except runtime.EngineError as error:
        _record_error(session, case, actor, error, data=payload)
        return
    _audit(session, case, actor, "signal_received" if signal else "message_received", None,
           {"name": name, "data": payload})
    _apply(session, case, workflow, snap, actor)


def known_data(before: dict[str, Any] | None, engine: dict[str, Any], answers: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Every answer the case has been given: the engine's view of its data, over what the case knew before.

    The engine's snapshot gives each key its newest write in any branch (``runtime.case_data``); a case started
    before the engine kept those shows only what its latest and open steps hold, so a key held by a finished
    branch alone drops out of it until the branches join. The case page, the tracker and the next forms show
    every answer at once: keys the engine no longer shows keep their last value, and the answers of the step
    just completed are kept when the engine's view lacks them (a value the engine changed wins).
    """
    kept = {k: v for k, v in runtime.json_safe(answers or {}).items() if k not in engine}
    return {**(before or {}), **kept, **engine}


def _apply(session: Session, case: Case, workflow, snap: runtime.Snapshot, actor: Actor,
           answers: dict[str, Any] | None = None, open_tasks: list[OpenTask] | None = None,
           events: list[dict[str, Any]] | None = None, case_written: bool = False, touched: bool = True,
           closed_by: dict[str, int | None] | None = None, writes: StepWrites | None = None) -> None:
    """Save the case's new state and bring its task and timer rows, audit and notifications in step.

    The case's columns and its task, role and timer rows are written with Core statements
    (:mod:`service.step_writes`); what else the step adds goes by the ORM's flush.

    ``case_written``: the case already holds the step's columns (:func:`_step_values`, a new case's first step).
    ``writes``: the step's writes begun already (a new case's, whose ``INSERT`` may wait for the step's rows).
    ``closed_by``: who closed a task the step closes (the user who completed it), by task id.
    ``touched``: False when the step changed nothing a person sees (it only sent reminders): the case keeps its
    ``updated_at``, and so its place in the lists, as when the timer sweep sends a reminder without the engine.

    ``events``: audit rows (:func:`_audit_row`) of the step that come before its own (the completed task).
    The step's audit events, those and every one :func:`_audit` records meanwhile, are written in order with
    the step's own rows (:meth:`StepWrites.write`: on PostgreSQL in its one statement), not as ORM rows (SQLAlchemy
    would send one ``INSERT`` per event on SQLite, whose ids it must return in order).

    Refused (nothing written) when the step would enrol the family in a voluntary service without consent.
    """
    process = process_of(session, case)
    safeguarding.check_step(process, snap.path, snap.data)
    batch = session.info[AUDIT_BATCH] = list(events or ())
    try:
        _apply_step(session, case, process, workflow, snap, actor, answers, open_tasks, case_written, touched,
                    closed_by or {}, writes or StepWrites(case))
    finally:
        session.info.pop(AUDIT_BATCH, None)
    write_audit(session, batch)  # what was recorded after the step's own rows were written
    for message in snap.thrown:
        _route_thrown(session, case, message, actor)
    for signal in snap.signals:
        broadcast_signal(session, signal.name, signal.payload, actor, thrower=case)


def _step_values(case: Case, workflow, snap: runtime.Snapshot, answers: dict[str, Any] | None,
                 now: datetime) -> dict[str, Any]:
    """The case's columns after a step."""
    return {"state": runtime.dump(workflow), "state_format": runtime.STATE_FORMAT,
            "data": known_data(case.data, snap.data, answers), "status": "completed" if snap.completed else "active",
            "outcome": snap.data.get("outcome") if snap.completed else None, "error": None, "updated_at": now,
            "waiting_for": snap.messages, "waiting_signals": sorted(snap.waiting_signals),
            "next_timer_at": snap.timers[0].due_at if snap.timers else None,
            "fired_ahead": None}  # the state just dumped holds them: it was loaded with them (reminders.state_of)


def _apply_step(session: Session, case: Case, process: ProcessDefinition, workflow, snap: runtime.Snapshot,
                actor: Actor, answers: dict[str, Any] | None, open_tasks: list[OpenTask] | None,
                case_written: bool, touched: bool, closed_by: dict[str, int | None], writes: StepWrites) -> None:
    now = case.updated_at if case_written else clock.now()
    if not case_written:  # written first: what follows reads the case's new data
        writes.update_case(session, _step_values(case, workflow, snap, answers, now if touched else case.updated_at))
    with session.no_autoflush:  # one flush at the end, not one per query
        tasks = _sync_tasks(session, case, process, snap.tasks, now, open_tasks, writes, closed_by)
        # The caller that read the open tasks read the timers in the same statement.
        timers = _sync_timers(session, case, snap.timers, list(case.timers) if open_tasks is not None else None,
                              writes)
        for entry in snap.journal:
            _audit(session, case, Actor(TIMER) if entry.event == "timer_fired" else actor, entry.event,
                   entry.element, entry.detail)
        if snap.completed:
            _audit(session, case, actor, "case_completed", None, {"outcome": case.outcome})
        writes.write(session, audit=session.info[AUDIT_BATCH])
    # The case's open tasks and timers are what was just written: the answer needs no second read.
    set_committed_value(case, "tasks", sorted(tasks, key=lambda t: t.created_at))
    set_committed_value(case, "timers", sorted(timers, key=lambda t: t.due_at))
    for entry in snap.journal:
        if entry.event == "timer_fired":
            notifications.for_timer(session, case, entry)
    session.flush()


def _sync_tasks(session: Session, case: Case, process: ProcessDefinition, tasks: list[runtime.OpenTask],
                now: datetime, open_now: list[OpenTask] | None, writes: StepWrites,
                closed_by: dict[str, int | None]) -> list[OpenTask]:
    """Close the rows of tasks no longer open, add those newly open (to ``writes``); the case's open task rows
    after the step.

    ``open_now``: the case's open task rows, when the caller has just read them (else they are read here).
    """
    if open_now is None:
        open_now = list(session.scalars(select(OpenTask).where(OpenTask.case_id == case.id,
                                                               OpenTask.closed_at.is_(None))))
    current = {t.id: t for t in open_now}
    wanted = {t.id: t for t in tasks}
    for task_id, row in current.items():
        if task_id not in wanted:
            writes.change(row, closed_at=now, closed_by_id=closed_by.get(task_id))
            if safeguarding.is_urgent(process, row.name):
                safeguarding.close_urgent(session, case, task_id)
    opened = []
    for task_id, task in wanted.items():
        row = current.get(task_id)
        if row is None:
            row = OpenTask(id=task_id, case_id=case.id, name=task.name, title=task.title, lane=task.lane,
                           assignee_id=_user_id(session, case.council_id, task.assignee), due_at=task.due_at,
                           created_at=now,
                           role_rows=[TaskRole(role=r) for r in task.roles])
            writes.added.append(row)
            opened.append(row)
            if safeguarding.is_urgent(process, task.name):
                safeguarding.open_urgent(session, case, row, now)  # within the hour, on the clock
        elif not safeguarding.is_urgent(process, row.name) and row.due_at != task.due_at:
            writes.change(row, due_at=task.due_at)
    from service import workload  # the allocated worker and the ticked checklist of each new task

    workload.on_new_tasks(session, case, opened)
    return [row for task_id, row in current.items() if task_id in wanted] + opened


def _user_id(session: Session, council_id: int, name: str | None) -> int | None:
    """The id of the user a diagram names (``camunda:assignee``) if they work for the council, else None (a
    name of nobody here, or of someone of another council, leaves the task to its roles)."""
    if not name:
        return None
    members = select(Membership.user_id).where(Membership.council_id == council_id)
    return session.scalar(select(User.id).where(User.name == name, User.id.in_(members)))


def _sync_timers(session: Session, case: Case, timers: list[runtime.PendingTimer], rows: list[PendingTimer] | None,
                 writes: StepWrites) -> list[PendingTimer]:
    """Bring the case's timer rows in step with the engine's timers (in ``writes``); the case's timer rows after
    the step (the service's own included). ``rows``: the case's timer rows, when the caller has just read them."""
    if rows is None:
        rows = list(session.scalars(select(PendingTimer).where(PendingTimer.case_id == case.id)))
    rows = [t for t in rows if not (inspect(t).deleted or inspect(t).was_deleted)]
    current = {t.id: t for t in rows
               if not safeguarding.is_service_timer(t)}  # the service's own timers are not the engine's
    wanted = {t.id: t for t in timers}
    # After the commit the scheduler re-reads the next due timer (on PostgreSQL every process does, told by a NOTIFY,
    # if it falls due before their next safety sweep) when one may now fall due before the alarm it set: a timer
    # added or brought forward. One removed or put back needs nothing: an alarm set for it rings, finds nothing due,
    # and reads the next due timer then.
    sooner = [timer.due_at for i, timer in wanted.items() if i not in current or timer.due_at < current[i].due_at]
    if sooner:
        from service import scheduler  # it imports this module

        scheduler.timers_changed(session, min(sooner))
    added = []
    for timer_id, row in current.items():
        if timer_id not in wanted:
            writes.removed.append(row)
    for timer_id, timer in wanted.items():
        row = current.get(timer_id)
        if row is None:
            row = PendingTimer(id=timer_id, case_id=case.id, name=timer.name, title=timer.title, due_at=timer.due_at,
                               attached_task_id=timer.attached_to, properties=timer.properties)
            writes.added.append(row)
            added.append(row)
        elif row.due_at != timer.due_at:
            writes.change(row, due_at=timer.due_at)
    gone = set(session.deleted) | set(writes.removed)
    return [t for t in rows if t not in gone] + added + [t for t in session.new
                                                        if isinstance(t, PendingTimer) and t.case_id == case.id]


def _route_thrown(session: Session, case: Case, message: runtime.ThrownMessage, actor: Actor) -> None:
    """A message thrown out of a case starts the pathway it names, or reaches the cases waiting for it."""
    payload = message.payload if isinstance(message.payload, dict) else {"message": message.payload}
    payload = {k: v for k, v in payload.items() if k not in ("outcome",)}
    if message.name.startswith("start:"):
        key = message.name.removeprefix("start:")
        try:
            started = start_case(session, key, case.reference, payload, SERVICE, validate=False, started_from=case)
        except safeguarding.ConsentNeeded:
            raise  # the step that hands over is refused: a voluntary service needs consent
        except ServiceError as error:
            _audit(session, case, actor, "message_undelivered", None, {"name": message.name, "reason": error.message})
            return
        _audit(session, case, actor, "case_handed_on", None, {"to_case": started.id, "process": key})
        return
    # The family's other open cases, of any pathway: by its case number, and by the family it belongs to
    # (a contact on a child reaches the lead professional of whatever early-help case the family has open).
    # A case that waits with a correlation key (Camunda 8) takes the message only with its own key, from any
    # case of the council.
    same_family = Case.reference == case.reference
    if case.family_id is not None:
        same_family = or_(same_family, Case.family_id == case.family_id)

    def takes(target: Case) -> bool:
        if message.name not in (target.waiting_for or []):
            return False
        process = process_of(session, target)
        if message.name in runtime.correlation_keys(process):
            return message.key is not None and runtime.correlation_value(process, message.name,
                                                                         target.data or {}) == message.key
        return target.reference == case.reference or (case.family_id is not None
                                                       and target.family_id == case.family_id)

    family = session.scalars(select(Case).where(same_family, Case.id != case.id, Case.status == "active")).all()
    delivered = [target for target in family if takes(target)]
    if message.key is not None:
        others = {case.id, *(target.id for target in family)}
        for batch in _waiting_cases(session, _waiting_query(session, message.name, keyed=True)):
            delivered += [target for target in batch if target.id not in others and takes(target)]
    for target in delivered:
        _deliver(session, target, message.name, payload, SERVICE)
    # BPMN message start events: every pathway of the council started by this message (not the thrower's own,
    # which would start itself again and again), for the same family.
    started = [_start_by_signal(session, version, message.name, payload, actor, case, None, kind="message")
               for version in _started_by(session, "message", message.name) if version.key != case.process.key]
    _audit(session, case, actor, "message_sent", None,
           {"name": message.name, "to_cases": [t.id for t in delivered],
            **({"started": [c.id for c in started]} if started else {})})


#: Cases read at a time by a message looking for the cases that wait for it (each one's data decrypted to correlate).
WAITING_BATCH = 500


def _waiting_cases(session: Session, query: Select) -> Iterator[list[Case]]:
    """The cases ``query`` (:func:`_waiting_query`) selects, :data:`WAITING_BATCH` at a time, in order of id."""
    return paging.in_batches(session, query, Case.id, WAITING_BATCH)


def _waiting_query(session: Session, name: str, *, keyed: bool, reference: str | None = None) -> Select:
    """SQL: the council's active cases waiting for the message ``name``; with ``keyed``, only those of versions
    whose diagram waits for it with a correlation key (Camunda 8): a case of another version cannot take a keyed
    message, and is neither read nor decrypted (every case waits for the immediate-risk message, and a council
    holds hundreds of thousands); with ``reference``, only the cases of that reference."""
    query = select(Case).where(Case.status == "active", Case.id.in_(_waiting("message", name)))
    if reference is not None:
        query = query.where(Case.reference == reference)
    if keyed:  # the council's versions any of whose cases waits for it: an index probe each
        # Its first case in the index's order: with EXISTS, or a bare LIMIT, PostgreSQL's statistics (most waits
        # are of one version) chose to read every case's wait for the name (immediate risk: a million, 450 ms)
        # for each version that has none, once the council had several.
        waited = (select(literal(1)).where(CaseWait.kind == "message", CaseWait.name == name,
                                           CaseWait.process_version_id == ProcessVersion.id)
                  .order_by(CaseWait.case_id).limit(1).scalar_subquery().is_not(None))
        query = query.where(Case.process_version_id.in_(
            [version.id for version in session.scalars(select(ProcessVersion).where(waited))
             if name in runtime.correlation_keys(process_definition(session, version))]))
    return query


def _refuse_a_wide_correlation(session: Session, name: str, query: Select, *, by_data: bool) -> None:
    """422 when more cases than a list counts (:data:`service.paging.COUNT_CAP`) could take a correlated message:
    each would be read and decrypted to compare its data or key (0.25 ms a case: a message every case waits for,
    as immediate risk does, read a million cases for four minutes, and any worker may send one)."""
    if paging.capped_count(session, query.with_only_columns(Case.id)) <= paging.COUNT_CAP:
        return
    where = "POST /api/v1/cases/<id>/messages"
    if by_data:
        raise InvalidData(f"more than {paging.COUNT_CAP:,} cases wait for the message '{name}'", {
            "reference": f"More than {paging.COUNT_CAP:,} cases wait for the message '{name}': give the case "
                         f"reference (Camunda 7's business key), or send the message to the case ({where})"})
    raise InvalidData(f"more than {paging.COUNT_CAP:,} cases wait for the message '{name}' with a key", {
        "correlation_key": f"More than {paging.COUNT_CAP:,} cases wait for the message '{name}' with a key: "
                           f"send the message to the case ({where})"})


def _waiting(kind: str, name: str) -> Select:
    """SQL: the ids of the council's cases whose steps wait for the ``message`` or ``signal`` (``kind``) ``name``:
    an index range of :class:`~service.models.CaseWait`, which the database keeps equal to the cases' lists (each
    case found is checked against its own list again)."""
    return select(CaseWait.case_id).where(CaseWait.kind == kind, CaseWait.name == name)


def correlate_message(session: Session, name: str, data: Any, actor: Actor, *, key: Any = None,
                      variables: dict[str, Any] | None = None, all_: bool = False,
                      reference: str | None = None) -> dict[str, list[int]]:
    """A message from outside for the running cases whose correlation matches (``POST /messages``).

    ``key``: Camunda 8's correlation key; a case matches when it waits for ``name`` with a
    ``zeebe:subscription correlationKey`` whose value on its data is ``key`` (compared as text, "12" = 12).
    ``variables``: Camunda 7's correlation keys; a case waiting for ``name`` matches when its data has each of
    them with that value, and, given a ``reference``, is of that reference (as Camunda 7's business key narrows
    a correlation). One match takes it; several are refused unless ``all_`` (409 naming them, as
    Camunda 7's correlate does); none starts the pathways whose message start event catches it (for
    ``reference``), else 409. Returns the ids of the cases reached and of those started.

    Refused (422, :func:`_refuse_a_wide_correlation`) when more cases could take it than a list counts.
    """
    payload_data = _sized(_plain_data(data))
    wanted = None if key is None else runtime.correlation_text(key)
    variables = runtime.json_safe(variables or {})
    reference = (reference or "").strip() or None
    of_reference = reference if variables else None  # Camunda 7's business key narrows a correlation by data
    waiting = _waiting_query(session, name, keyed=wanted is not None, reference=of_reference)
    _refuse_a_wide_correlation(session, name, waiting, by_data=bool(variables))
    matched = []
    for case in (case for batch in _waiting_cases(session, waiting) for case in batch):
        if name not in (case.waiting_for or []):
            continue
        known = case.data or {}
        if wanted is not None:
            process = process_of(session, case)
            if name not in runtime.correlation_keys(process) or runtime.correlation_value(process, name,
                                                                                          known) != wanted:
                continue
        if any(variable not in known or known[variable] != value for variable, value in variables.items()):
            continue
        matched.append(case)
    said = " and ".join(filter(None, [f"correlation key '{wanted}'" if wanted is not None else "",
                                      ", ".join(f"{k} = {json.dumps(v)}" for k, v in variables.items())]))
    if len(matched) > 1 and not all_:
        raise Conflict(f"the message '{name}' with {said} matches {len(matched)} cases "
                       f"({', '.join(str(c.id) for c in matched)}): give a key that picks one, or send it to "
                       f"all of them (\"all\": true)", matched=[c.id for c in matched])
    hidden = [c for c in matched if not may_see_case(session, c, actor)]
    if hidden:
        raise Forbidden(f"the message '{name}' matches a case of a pathway none of your roles works on")
    if matched:
        for case in matched:
            payload, kept = message_payload(case, payload_data)
            _deliver(session, case, name, payload, actor)
            if kept:
                _audit(session, case, actor, "message_answers_kept", None,
                       {"name": name, "not_changed": sorted(kept), "sent": kept})
        return {"reached": [c.id for c in matched], "started": []}
    versions = _started_by(session, "message", name)
    if not versions:
        raise Conflict(f"no case waits for the message '{name}' with {said}, and no pathway starts with it")
    return {"reached": [], "started": [_start_by_signal(session, version, name, payload_data, actor, None,
                                                        reference, kind="message").id for version in versions]}


def _started_by(session: Session, kind: str, name: str) -> list[ProcessVersion]:
    """The latest version of every pathway whose start event catches the message or signal ``name``."""
    return [version for version in latest_process_versions(session)
            if any(t.kind == kind and t.name == name
                   for t in runtime.catching_start_events(process_definition(session, version)))]


def start_by_message(session: Session, name: str, data: Any, actor: Actor, reference: str | None) -> list[Case]:
    """A message sent to the council from outside (``POST /messages``) starts a case of every pathway whose
    message start event catches it, for the family's case ``reference``; 409 when no pathway starts with it."""
    payload = _sized(_plain_data(data))
    versions = _started_by(session, "message", name)
    if not versions:
        raise Conflict(f"no pathway starts with the message '{name}'")
    return [_start_by_signal(session, version, name, payload, actor, None, reference, kind="message")
            for version in versions]


def engine_limits() -> Limits:
    """What one engine step may use, from the service's settings (ENGINE_STEP_SECONDS, ENGINE_STEP_MEMORY_MB)."""
    return current_app.extensions["engine_limits"]


def _record_error(session: Session, case: Case, actor: Actor, error: runtime.EngineError, *,
                  task: str | None = None, data: dict[str, Any] | None = None) -> None:
    """Keep the case at its last good state and say what stopped it."""
    case.status = "error"
    case.error = {"element": error.element, "message": error.message}
    case.updated_at = clock.now()
    _audit(session, case, actor, "error", error.element or task,
           {"message": error.message, **({"data": runtime.json_safe(data)} if data else {})})


#: ``session.info`` key of the audit rows of the step :func:`_apply` is writing (written after its flush).
AUDIT_BATCH = "audit_batch"


def _audit_row(case: Case, actor: Actor, event: str, task: str | None, detail: dict[str, Any]) -> dict[str, Any]:
    return {"case_id": case.id, "at": clock.now(), "actor": actor.name, "event": event, "task": task,
            "detail": runtime.json_safe(detail)}


def _audit(session: Session, case: Case, actor: Actor, event: str, task: str | None, detail: dict[str, Any]) -> None:
    """Record an audit event: with the step :func:`_apply` is writing, else as an ORM row of the next flush."""
    row = _audit_row(case, actor, event, task, detail)
    batch = session.info.get(AUDIT_BATCH)
    if batch is not None:
        batch.append(row)
    else:
        session.add(AuditEvent(**row))


def by_version(session: Session, version: ProcessVersion) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.process_version_id == version.id)))
