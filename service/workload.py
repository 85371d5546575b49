"""Managers' work: the team's workload, giving tasks to people (one or many), allocation answers, and the
lists behind the manager view's counts.

Who is a manager, and whose tasks they see and give, is ``service.policy`` (``Actor.is_manager``,
``may_open_task``, ``may_assign``): a holder of ``team_manager`` or any ``*_manager`` role, or the council's
admin, over the pathways their roles belong to.

**Allocation.** A form field with the property ``allocate_role`` (form-js ``"properties": {"allocate_role":
"social_worker"}``) is an allocation ("Worker allocated"): the pages show it as a list of the council's users
holding that role, and the server accepts only one of them (:func:`with_people`, used by
``cases.task_form``). Once the case's data names that user, every task of that role that opens in the case
afterwards, and that the diagram does not already assign (``camunda:assignee``), is theirs
(:func:`allocate_new_tasks`, called as the case's task rows are written): the allocated worker finds the
case in their inbox. A diagram may say the same with ``camunda:assignee="${allocated_worker}"``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import cases as case_service
from service import policy
from service.deployments import process_definition
from service.engine import clock
from service.errors import Conflict, Forbidden, InvalidData
from service.forms import FormDefinition, Group, Option
from service.listed_tasks import ListedTask
from service.models import Case, Membership, OpenTask, ProcessVersion, TaskRole, User
from service.auth import display_names
from service.policy import Actor

MAX_BULK = 200
CHOOSE_SOMEONE = "Choose who to give the task to"


# -- the workload ----------------------------------------------------------------------------------

@dataclass
class Pile:
    """The open tasks of one worker (or, unassigned, of one role): overdue first, then by due date.

    ``count`` and ``overdue`` count every open task of the pile; ``tasks`` are its most urgent (the workload
    shows at most :data:`SHOWN` tasks in all, most urgent first: a manager gives work from the top)."""

    key: str  # the user's name, or the role
    label: str
    tasks: list[ListedTask] = field(default_factory=list)
    count: int = 0
    overdue: int = 0


@dataclass
class Workload:
    by_worker: list[Pile]
    by_role: list[Pile]  # tasks nobody has taken yet, by the role that may take them
    total: int
    overdue: int


#: The most urgent tasks the workload lists (its counts count them all).
SHOWN = 500


def _urgency(task: ListedTask) -> tuple:
    now = clock.now()
    return (not (task.due_at is not None and task.due_at < now), task.due_at is None, task.due_at or now,
            task.created_at)


def require_manager(actor: Actor) -> None:
    if not actor.is_manager:
        raise Forbidden("the workload is for managers: a role 'team_manager' or ending in '_manager'")


def workload(session: Session, actor: Actor) -> Workload:
    """The open tasks of every case of the manager's pathways, by worker and, unassigned, by role: counted in
    two grouped statements (never a query per task or per worker), the most urgent listed from one more."""
    require_manager(actor)
    now = clock.now()
    seen, values = case_service.team_task_filter(session, actor)
    workers = {user_id: Pile(name, display or name, [], count, overdue)
               for user_id, name, display, count, overdue in _worker_counts(session, seen, values, now)}
    by_role = {key: Pile(key, key.replace("_", " "), [], count, overdue)
               for key, count, overdue in _role_counts(session, seen, values, now)}
    for task in sorted(case_service.team_tasks(session, actor, limit=SHOWN), key=_urgency):
        if task.assignee_id is not None and task.assignee_id in workers:
            workers[task.assignee_id].tasks.append(task)
        elif task.assignee_id is None:
            key = min(task.roles) if task.roles else NO_ROLE
            if key in by_role:
                by_role[key].tasks.append(task)
    piles = [*workers.values(), *by_role.values()]
    return Workload(by_worker=sorted(workers.values(), key=lambda p: (-p.overdue, -p.count, p.label.lower())),
                    by_role=sorted(by_role.values(), key=lambda p: (-p.overdue, -p.count, p.label)),
                    total=sum(p.count for p in piles), overdue=sum(p.overdue for p in piles))


#: The pile of tasks nobody has taken that no role may take.
NO_ROLE = "no role"

# The workload's counts are two plain grouped statements: as one, grouped by worker and by each task's first role
# (a subquery per task), with the workers' names read after by id, it took 4.5 s at 1,000,000 open tasks.


def _worker_counts(session: Session, seen: list, values: dict[str, Any], now
                   ) -> list[tuple[int, str, str | None, int, int]]:
    """(user id, name, display name, open tasks, overdue) of each worker holding open tasks that meet ``seen``
    (the manager's: ``cases.team_task_filter``)."""
    late = func.coalesce(func.sum(sql_case((OpenTask.due_at < now, 1), else_=0)), 0)
    return [tuple(row) for row in session.execute(
        select(OpenTask.assignee_id, User.name, User.display_name, func.count(), late)
        .join(User, User.id == OpenTask.assignee_id).where(*seen)
        .group_by(OpenTask.assignee_id, User.name, User.display_name), values)]


def _role_counts(session: Session, seen: list, values: dict[str, Any], now) -> list[tuple[str, int, int]]:
    """(role, open tasks, overdue) of the open tasks that meet ``seen`` and nobody has taken, each under the first
    of its roles (:data:`NO_ROLE` for a task no role may take)."""
    first_role = (select(OpenTask.due_at, func.min(TaskRole.role).label("role"))
                  .outerjoin(TaskRole, TaskRole.task_id == OpenTask.id)
                  .where(*seen, OpenTask.assignee_id.is_(None)).group_by(OpenTask.id, OpenTask.due_at).subquery())
    late = func.coalesce(func.sum(sql_case((first_role.c.due_at < now, 1), else_=0)), 0)
    return [(role or NO_ROLE, count, overdue) for role, count, overdue in session.execute(
        select(first_role.c.role, func.count(), late).group_by(first_role.c.role), values)]


def display_name(session: Session, name: str) -> str:
    return display_names(session, {name}).get(name, name)


def people_for(session: Session, council_id: int, roles: set[str]) -> list[User]:
    """The council's users holding one of ``roles``, by name."""
    if not roles:
        return []
    members = select(Membership.user_id).where(Membership.council_id == council_id, Membership.role.in_(roles))
    return list(session.scalars(select(User).where(User.id.in_(members)).order_by(User.name)))


def person_label(user: User) -> str:
    return f"{user.display_name} ({user.name})" if user.display_name else user.name


# -- giving tasks ----------------------------------------------------------------------------------

def reassign(session: Session, task_id: str, assignee: Any, actor: Actor) -> OpenTask:
    """A manager gives a task to someone holding its role; 422 when nobody is chosen or they lack the role."""
    case_service._task_to_assign(session, task_id, actor)  # 404 (another council's too) or 403 before anything
    if not policy.may_give_tasks(actor):
        raise Forbidden("only a manager can give a task to someone else")
    if not isinstance(assignee, str) or not assignee.strip():
        raise InvalidData(CHOOSE_SOMEONE.lower(), {"assignee": CHOOSE_SOMEONE})
    return case_service.claim_task(session, task_id, actor, assignee.strip())


def reassign_many(session: Session, task_ids: Any, assignee: Any, actor: Actor) -> list[OpenTask]:
    """Give several tasks to one person: all of them, or (when any cannot be given) none, saying which."""
    if not isinstance(task_ids, list) or not task_ids or not all(isinstance(t, str) for t in task_ids):
        raise InvalidData("choose the tasks to give", {"tasks": "Choose at least one task"})
    if len(task_ids) > MAX_BULK:
        raise InvalidData("too many tasks at once", {"tasks": f"Choose at most {MAX_BULK} tasks at a time"})
    done = []
    for task_id in dict.fromkeys(task_ids):
        try:
            done.append(reassign(session, task_id, assignee, actor))
        except InvalidData as invalid:
            task = session.get(OpenTask, task_id)
            title = f"'{task.title}' (case {task.case.reference})" if task is not None else task_id
            message = next(iter(invalid.errors.values()), invalid.message)
            raise InvalidData(f"no task was given: {title}: {message}",
                              {"assignee" if "assignee" in invalid.errors else "tasks": f"{title}: {message}"}) from None
    return done


# -- allocation answers ----------------------------------------------------------------------------

def with_people(session: Session, form: FormDefinition | None, council_id: int) -> FormDefinition | None:
    """``form`` with each allocation field (``allocate_role``) a list of the council's users holding the role,
    so that the pages offer them and the server's validation accepts only them."""
    if form is None or not any(f.allocate_role for f in form.fields):
        return form

    def convert(components):
        out = []
        for c in components:
            if isinstance(c, Group):
                out.append(dataclasses.replace(c, components=convert(c.components)))
            elif getattr(c, "allocate_role", None):
                users = people_for(session, council_id, {c.allocate_role})
                out.append(dataclasses.replace(c, type="select", options=[Option(u.name, person_label(u))
                                                                           for u in users]))
            else:
                out.append(c)
        return out

    return dataclasses.replace(form, components=convert(form.components))


def _allocations(session: Session, case: Case) -> dict[str, str]:
    """role -> user name, from the case's answers to allocation fields (the latest answer is the case's)."""
    process = process_definition(session, case.process)
    data = case.data or {}
    found: dict[str, str] = {}
    for form in (process.start_form, *process.task_forms.values()):
        if form is None:
            continue
        for f in form.fields:
            if f.allocate_role and isinstance(data.get(f.key), str) and data[f.key]:
                found[f.allocate_role] = data[f.key]
    return found


def allocate_new_tasks(session: Session, case: Case, tasks: list[OpenTask]) -> None:
    """Give each newly opened, unassigned task to the user the case allocated for one of its roles (if they
    still hold that role in the council); audited as the service's assignment."""
    waiting = [t for t in tasks if t.assignee_id is None]
    if not waiting:
        return
    allocated = _allocations(session, case)
    if not allocated:
        return
    for task in waiting:
        roles = [r.role for r in task.role_rows]
        for role in roles:
            name = allocated.get(role)
            user_id = _holder(session, name, role, case.council_id) if name else None
            if user_id is not None:
                task.assignee_id = user_id
                case_service._audit(session, case, case_service.SERVICE, "task_assigned", task.name,
                                    {"assignee": name, "allocated": True})
                break


def _holder(session: Session, name: str, role: str, council_id: int) -> int | None:
    """The id of the user named ``name`` if they hold ``role`` in the council now."""
    return session.scalar(select(User.id).join(Membership, User.id == Membership.user_id)
                          .where(User.name == name, Membership.role == role, Membership.council_id == council_id))


def on_new_tasks(session: Session, case: Case, tasks: list[OpenTask]) -> None:
    """What a case's newly opened tasks get from the service: their allocated worker, their ticked checklist."""
    from service import case_records

    if not tasks:
        return
    allocate_new_tasks(session, case, tasks)
    case_records.prefill_new_tasks(session, case, tasks)


# -- the lists behind the manager view's counts ----------------------------------------------------

def cases_behind(session: Session, actor: Actor, *, process: str | None, status: str | None, outcome: str | None,
                 page: int = 1, per_page: int = 50) -> tuple[list[Case], int]:
    """The cases a count of the manager view counts (pathway, status, outcome), newest first, paged."""
    require_manager(actor)
    query = select(Case).join(Case.process)
    if not actor.is_admin:
        visible = [v.id for v in session.scalars(select(ProcessVersion))
                   if policy.may_see_pathway(process_definition(session, v).roles, actor)]
        query = query.where(Case.process_version_id.in_(visible))
    if process:
        query = query.where(ProcessVersion.key == process)
    if status:
        query = query.where(Case.status == status)
    if outcome:
        query = query.where(Case.outcome == outcome)
    query = query.where(Case.status != case_service.ERASED)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Case.updated_at.desc(), Case.id.desc())
                           .limit(per_page).offset((max(page, 1) - 1) * per_page))
    return list(rows), total


def errored_cases(session: Session, actor: Actor) -> list[Case]:
    """Cases of the manager's pathways stopped on an error, with their error, oldest problem first."""
    cases, _ = cases_behind(session, actor, process=None, status="error", outcome=None, per_page=200)
    return sorted(cases, key=lambda c: c.updated_at)


def retry(session: Session, case_id: int, actor: Actor) -> Case:
    """Run a case stopped on an error again as it is (a manager's retry after the cause was fixed)."""
    case = case_service.get_case(session, case_id, actor)  # 404 before anything, 403 if not to be seen
    require_manager(actor)
    if case.status != "error":
        raise Conflict(f"case {case.reference} is {case.status}, not stopped on an error")
    return case_service.retry(session, case_id, {}, actor)
