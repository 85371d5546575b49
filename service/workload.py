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
from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from service import cases as case_service
from service import paging, policy
from service.deployments import process_definition
from service.engine import clock
from service.errors import Conflict, Forbidden, InvalidData, NotFound
from service.forms import FormDefinition, Group, Option
from service.listed_tasks import ListedTask
from service.models import Case, Membership, OpenTask, ProcessVersion, TaskRole, User
from service.auth import display_names
from service.policy import Actor

MAX_BULK = 200
CHOOSE_SOMEONE = "Choose who to give the task to"


# -- the workload ----------------------------------------------------------------------------------

#: Workers on a page of the workload (by user name), and the most urgent tasks each of their piles lists.
WORKERS_PAGE = 20
PILE_TASKS = 10

#: The pile of tasks nobody has taken that no role may take.
NO_ROLE = "no role"

#: How many tasks nobody has taken the roles' piles count, the most urgent first: each task's first role is an
#: index probe, and 10,000 of them took 68 to 79 ms at 1,000,000 open tasks on PostgreSQL, 1,000 of them 8.5 ms
#: (a team's queue is far shorter; a whole council's is "1,000 or more").
WAITING_COUNTED = 1_000


@dataclass
class Pile:
    """The open tasks of one worker (or, unassigned, of one role): ``count`` and ``overdue`` count them;
    ``tasks`` are the most urgent (:data:`PILE_TASKS` in the workload, a page in :func:`worker_tasks`: a manager
    gives work from the top)."""

    key: str  # the user's name, or the role
    label: str
    tasks: list[ListedTask] = field(default_factory=list)
    count: int = 0
    overdue: int = 0


@dataclass
class Workload:
    """A page of a manager's workload. ``total`` and ``overdue`` count the team's open tasks up to
    ``paging.COUNT_CAP`` and one (more means "more than that"); the roles' piles count the most urgent
    :data:`WAITING_COUNTED` tasks nobody has taken (``by_role_capped``: they counted that many, and as many or
    more are waiting)."""

    by_worker: list[Pile]  # a page of the workers holding open tasks, by name
    by_role: list[Pile]  # tasks nobody has taken yet, by the first role that may take them
    total: int
    overdue: int
    by_role_capped: bool = False
    next_workers: str | None = None  # the cursor of the next page of workers (``paging.worker_cursor``)


def require_manager(actor: Actor) -> None:
    if not actor.is_manager:
        raise Forbidden("the workload is for managers: a role 'team_manager' or ending in '_manager'")


def workload(session: Session, actor: Actor, *, after: str | None = None) -> Workload:
    """A page of the open tasks of every case of the manager's pathways: the workers holding them, by name
    (``after``: the cursor of the page before), and the tasks nobody has taken, by role. Four statements read
    from the open tasks' indexes, each costing its page or a capped count, never the council's open tasks."""
    require_manager(actor)
    now = clock.now()
    team = case_service.team_task_filter(session, actor)
    workers, next_workers = _workers_page(session, team, now, paging.workers_after(after))
    roles, waiting, urgent = _role_piles(session, team, now)
    for task in case_service.team_piles(session, team, list(workers), list(urgent), PILE_TASKS):
        pile = workers.get(task.assignee_id) if task.assignee_id is not None else roles.get(urgent.get(task.id))
        if pile is not None:
            pile.tasks.append(task)
    total, overdue = _totals(session, team, now)
    return Workload(by_worker=list(workers.values()), total=total, overdue=overdue,
                    by_role=sorted(roles.values(), key=lambda p: (-p.overdue, -p.count, p.label)),
                    by_role_capped=waiting >= WAITING_COUNTED, next_workers=next_workers)


def worker_tasks(session: Session, actor: Actor, name: str, *, after: str | None = None
                 ) -> tuple[Pile, str | None]:
    """The whole pile of the worker ``name``: their open tasks of the manager's team (counted), most urgent
    first, :data:`paging.TASK_PAGE` at a time (``after``: the cursor of the page before); and the next page's
    cursor. 404 when none of the team's open tasks is theirs (whoever they are, in any council), then 403 for
    anyone but a manager, as a case is looked up before its rules."""
    team = case_service.team_task_filter(session, actor)
    found = session.execute(_workers(team, clock.now()).where(User.name == name), team.values).first()
    if found is None:
        raise NotFound(f"none of your team's open tasks is with '{name}'")
    require_manager(actor)
    user_id, name, display, count, overdue = found
    tasks = case_service.team_page(session, team.of_worker(user_id), after=after, limit=paging.TASK_PAGE)
    more = paging.task_cursor(tasks[-1]) if len(tasks) == paging.TASK_PAGE else None
    return Pile(name, display or name, tasks, count, overdue), more


def waiting_tasks(session: Session, actor: Actor, role: str, *, after: str | None = None
                  ) -> tuple[Pile, str | None]:
    """The open tasks of the manager's team that nobody has taken and ``role`` may take (counted up to
    :data:`WAITING_COUNTED`, as the roles' piles are), most urgent first, :data:`paging.TASK_PAGE` at a time
    (``after``: the cursor of the page before); and the next page's cursor. For a manager allocating a queue."""
    require_manager(actor)
    team = case_service.team_task_filter(session, actor, role=role, unassigned=True)
    count, overdue = _totals(session, team, clock.now(), cap=WAITING_COUNTED)
    tasks = case_service.team_page(session, team, after=after, limit=paging.TASK_PAGE)
    more = paging.task_cursor(tasks[-1]) if len(tasks) == paging.TASK_PAGE else None
    return Pile(role, role.replace("_", " "), tasks, count, overdue), more


def _workers(team: case_service.TaskFilter, now) -> Select:
    """The workers holding open tasks of the ``team``: (user id, name, display name, open tasks, overdue), each
    counted from the index on their own open tasks."""
    held = [*team.conditions, OpenTask.assignee_id.is_not(None), OpenTask.assignee_id == User.id]
    count = select(func.count()).select_from(OpenTask).where(*held).scalar_subquery()
    late = select(func.count()).select_from(OpenTask).where(*held, OpenTask.due_at < now).scalar_subquery()
    return select(User.id, User.name, User.display_name, count, late).where(exists().where(*held))


def _workers_page(session: Session, team: case_service.TaskFilter, now, after: str | None
                  ) -> tuple[dict[int, Pile], str | None]:
    """The piles (without tasks) of the next :data:`WORKERS_PAGE` workers by name after ``after`` who hold
    open tasks of the ``team`` (:func:`_workers`), by user id; and the cursor of the page after, if any."""
    query = _workers(team, now)
    if after is not None:
        query = query.where(User.name > after)
    rows = session.execute(query.order_by(User.name).limit(WORKERS_PAGE + 1), team.values).all()
    piles = {user_id: Pile(name, display or name, [], count, overdue)
             for user_id, name, display, count, overdue in rows[:WORKERS_PAGE]}
    more = paging.worker_cursor(rows[WORKERS_PAGE - 1][1]) if len(rows) > WORKERS_PAGE else None
    return piles, more


def _role_piles(session: Session, team: case_service.TaskFilter, now
                ) -> tuple[dict[str, Pile], int, dict[str, str]]:
    """The piles (by role: each task under the first of its roles, :data:`NO_ROLE` for none) of the most
    urgent :data:`WAITING_COUNTED` open tasks of the ``team`` nobody has taken, counted in one statement; how
    many tasks that read (all of them: as many or more wait); and, by task id, the pile of the
    :data:`PILE_TASKS` most urgent of each pile. (A task's first role is the database's, in its collation's
    order, so that a task is never looked for in a pile by Python's order of strings.)"""
    first_role = select(func.min(TaskRole.role)).where(TaskRole.task_id == OpenTask.id).scalar_subquery()
    waiting = (select(OpenTask.id, OpenTask.due_at, OpenTask.created_at, first_role.label("role"))
               .where(*team.conditions, OpenTask.assignee_id.is_(None))
               .order_by(*paging.task_order()).limit(WAITING_COUNTED).subquery())
    by_role = {"partition_by": waiting.c.role}
    ranked = select(waiting.c.id, waiting.c.role, func.count().over(**by_role).label("count"),
                    func.sum(sql_case((waiting.c.due_at < now, 1), else_=0)).over(**by_role).label("overdue"),
                    func.row_number().over(order_by=paging.task_order(waiting.c), **by_role).label("rank")
                    ).subquery()
    piles: dict[str, Pile] = {}
    urgent: dict[str, str] = {}
    for task_id, role, count, overdue in session.execute(
            select(ranked.c.id, ranked.c.role, ranked.c.count, ranked.c.overdue)
            .where(ranked.c.rank <= PILE_TASKS), team.values):
        key = role or NO_ROLE
        piles.setdefault(key, Pile(key, key.replace("_", " "), [], count, overdue or 0))
        urgent[task_id] = key
    return piles, sum(p.count for p in piles.values()), urgent


def _totals(session: Session, team: case_service.TaskFilter, now, cap: int | None = None) -> tuple[int, int]:
    """How many open tasks the ``team`` filter holds, and how many of them are overdue, each counted up to
    ``cap`` (by default ``COUNT_CAP`` and one: the case lists' count)."""
    cap = paging.COUNT_CAP + 1 if cap is None else cap

    def capped(*conditions):
        found = select(OpenTask.id).where(*team.conditions, *conditions).limit(cap)
        return select(func.count()).select_from(found.subquery()).scalar_subquery()

    total, overdue = session.execute(select(capped(), capped(OpenTask.due_at < now)), team.values).one()
    return total, overdue


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
    """The cases a count of the manager view counts (pathway, status, outcome) in the lists' order (stopped on an
    error first, then most recently changed), paged, with how many there are counted up to
    :data:`service.paging.COUNT_CAP` and one (more means "more than that"). The page is read in the order of the
    lists' index (``ix_cases_list_order``): a million cases were counted and sorted for fifty, 1.1 s."""
    require_manager(actor)
    query = select(Case)
    if not actor.is_admin:
        visible = [v.id for v in session.scalars(select(ProcessVersion))
                   if policy.may_see_pathway(process_definition(session, v).roles, actor)]
        query = query.where(Case.process_version_id.in_(visible))
    if process:
        query = query.where(Case.process_version_id.in_(select(ProcessVersion.id).where(ProcessVersion.key == process)))
    if status:
        query = query.where(Case.status == status)
    if outcome:
        query = query.where(Case.outcome == outcome)
    query = query.where(Case.status != case_service.ERASED)
    total = paging.capped_count(session, query.with_only_columns(Case.id))
    rows = session.scalars(query.order_by(*paging.case_order()).limit(per_page).offset((max(page, 1) - 1) * per_page))
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
