"""Reminders and escalations: an in-app list per user, and an outbox that email is sent from.

A timer whose extension property ``notify`` is ``task`` tells the assignee (or
else the roles) of the task it is attached to; any other value names a role,
everyone with which is told (an escalation).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import and_, event, func, or_, select, tuple_
from sqlalchemy.orm import ORMExecuteState, Session

from service import policy
from service.engine import clock
from service.engine.clock import LONDON
from service.engine.parser import role_key
from service.engine.specs import JournalEntry
from service.errors import NotFound
from service.models import Case, Membership, Notification, OpenTask, User


def for_timer(session: Session, case: Case, entry: JournalEntry) -> list[Notification]:
    """The notifications a fired timer asks for (none if it has no ``notify`` property)."""
    properties = entry.detail.get("properties") or {}
    target = (properties.get("notify") or "").strip()
    if not target:
        return []
    task = session.get(OpenTask, entry.detail.get("attached_to") or "")
    if target == "task":
        kind, users = "reminder", _task_people(session, task)
    else:
        kind, users = "escalation", _people_with_role(session, case, role_key(target))
    subject = properties.get("subject") or _subject(kind, case, task, entry)
    return tell(session, case, users, kind=kind, subject=subject, body=_body(case, task, entry),
                task=task.name if task else entry.element)


def timer_wording(properties: dict, *, reference: str, pathway: str, element: str, task_title: str | None = None,
                  task_due_at: datetime | None = None) -> tuple[str, str, str] | None:
    """(kind, subject, body) of what a fired timer with these extension ``properties`` tells people, or None
    if it tells nobody: the wording :func:`for_timer` and :mod:`service.reminders` send, from plain values
    (no database), so that a sandbox case (``service.sandbox``) says exactly what a real case would."""
    target = str((properties or {}).get("notify") or "").strip()
    if not target:
        return None
    kind = "reminder" if target == "task" else "escalation"
    case = _Named(reference=reference, process=_Named(name=pathway))
    task = _Named(title=task_title, due_at=task_due_at) if task_title is not None else None
    entry = _Named(element=element)
    subject = ((properties or {}).get("subject") or _subject(kind, case, task, entry))[:255]
    return kind, subject, _body(case, task, entry)


class _Named:
    def __init__(self, **values) -> None:
        self.__dict__.update(values)


def for_error(session: Session, case: Case) -> list[Notification]:
    """Tell the council's admins that a case stopped on an error where no worker would see it."""
    error = case.error or {}
    subject = f"Case {case.reference} stopped: it needs an admin"
    body = "\n".join([f"Case: {case.reference} ({case.process.name})",
                      f"Where: {error.get('element') or 'the timers of the case'}",
                      f"What: {error.get('message') or 'an error'}",
                      "Retry the case once the cause is fixed, or cancel it with the reason."])
    return tell(session, case, _members(session, case.council_id, ["admin"]), kind="error", subject=subject,
                body=body, task=error.get("element"))


def tell(session: Session, case: Case, users: list[User] | list[Recipient], *, kind: str, subject: str, body: str,
         task: str | None = None) -> list[Notification]:
    """Tell each of ``users`` in the service, and by email where they have an address (the outbox sends it)."""
    now = clock.now()
    created = [Notification(user_id=user.id, case_id=case.id, task=task, kind=kind, subject=subject[:255],
                            body=body, created_at=now, email_next_attempt_at=now if user.email else None)
               for user in users]
    session.add_all(created)
    return created


@dataclass(frozen=True)
class Recipient:
    """Whom a notification is for: all :func:`tell` needs of a user."""
    id: int
    email: str | None


#: How long who holds a role (and who an assignee is) is remembered by a process: firing 10,000 reminders
#: for one role asks the database once. A change of roles or users in this process forgets at once.
PEOPLE_CACHE_SECONDS = 10.0


class _PeopleCache:
    """Who holds a role, remembered per app (``app.extensions["people"]``), for every thread of the process."""

    def __init__(self) -> None:
        self.entries: dict[tuple, tuple[float, list[Recipient]]] = {}
        self.lock = threading.Lock()


def _people() -> _PeopleCache:
    if not has_app_context():
        return _PeopleCache()  # outside an app nothing is remembered
    return current_app.extensions.setdefault("people", _PeopleCache())


def _cached(session: Session, key: tuple, find) -> list[Recipient]:
    cache, now = _people(), time.monotonic()
    with cache.lock:
        hit = cache.entries.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    found = [Recipient(user.id, user.email) for user in find()]
    _remember(cache, {key: found}, now)
    return found


def _remember(cache: _PeopleCache, found: dict[tuple, list[Recipient]], now: float) -> None:
    with cache.lock:
        if len(cache.entries) > 10_000:
            cache.entries.clear()
        for key, people in found.items():
            cache.entries[key] = (now + PEOPLE_CACHE_SECONDS, people)


def forget_people() -> None:
    cache = _people()
    with cache.lock:
        cache.entries.clear()


@event.listens_for(Session, "before_flush")
def _people_changed(session: Session, flush_context, instances) -> None:
    if any(isinstance(row, (User, Membership)) for row in (*session.new, *session.dirty, *session.deleted)):
        forget_people()


@event.listens_for(Session, "do_orm_execute")
def _people_changed_in_bulk(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete or state.is_insert) and any(
            mapper.class_ in (User, Membership) for mapper in state.all_mappers):
        forget_people()


def people_with_roles(session: Session, council_id: int, roles: list[str]) -> list[Recipient]:
    """The people who hold one of ``roles`` in the council (remembered for :data:`PEOPLE_CACHE_SECONDS`)."""
    return _cached(session, (council_id, "roles", tuple(sorted(set(roles)))),
                   lambda: _members(session, council_id, roles))


def people_for_task(session: Session, council_id: int, assignee_id: int | None,
                    roles: list[str]) -> list[Recipient]:
    """Whom a reminder of a task tells: its assignee if they work for the council, else everyone with its roles."""
    if assignee_id is not None:  # by id, and only ever someone who still works for this council
        def member():
            members = select(Membership.user_id).where(Membership.council_id == council_id)
            return session.scalars(select(User).where(User.id == assignee_id, User.id.in_(members))).all()[:1]
        found = _cached(session, (council_id, "assignee", assignee_id), member)
        if found:
            return found
    return people_with_roles(session, council_id, roles)


def remember_assignees(session: Session, assignees: set[tuple[int, int]]) -> None:
    """Look up, in one statement, the (council id, assignee id) pairs :func:`people_for_task` does not remember:
    a batch of reminders on tasks of many workers asks the database once, not once per worker."""
    cache, now = _people(), time.monotonic()
    with cache.lock:
        wanted = {pair for pair in assignees
                  if (hit := cache.entries.get((pair[0], "assignee", pair[1]))) is None or hit[0] <= now}
    if not wanted:
        return
    found: dict[tuple, list[Recipient]] = {(council_id, "assignee", user_id): [] for council_id, user_id in wanted}
    rows = session.execute(select(Membership.council_id, User.id, User.email).distinct()
                           .join(User, User.id == Membership.user_id)
                           .where(tuple_(Membership.council_id, Membership.user_id).in_(sorted(wanted))))
    for council_id, user_id, email in rows:
        found[(council_id, "assignee", user_id)] = [Recipient(user_id, email)]
    _remember(cache, found, now)


def _task_people(session: Session, task: OpenTask | None) -> list[Recipient]:
    if task is None:
        return []
    return people_for_task(session, task.council_id, task.assignee_id, task.roles)


def _people_with_role(session: Session, case: Case, role: str) -> list[Recipient]:
    return people_with_roles(session, case.council_id, [role])


def _members(session: Session, council_id: int, roles: list[str]) -> list[User]:
    """The people who hold one of ``roles`` in the council (the same role elsewhere is someone else's)."""
    members = select(Membership.user_id).where(Membership.council_id == council_id, Membership.role.in_(roles))
    return list(session.scalars(select(User).where(User.id.in_(members)).order_by(User.id)))


def _subject(kind: str, case: Case, task: OpenTask | None, entry: JournalEntry) -> str:
    what = task.title if task else entry.element
    word = "Reminder" if kind == "reminder" else "Escalation"
    return f"{word}: {what} (case {case.reference})"


def lateness(due_at: datetime | None, now: datetime | None = None) -> str | None:
    """How late a step is, in words ("3 days late"), or None if it is not late."""
    if due_at is None:
        return None
    late = (now or clock.now()) - due_at
    if late <= timedelta(0):
        return None
    if late >= timedelta(days=1):
        days = late.days
        return f"{days} day{'s' if days != 1 else ''} late"
    hours = max(1, int(late.total_seconds() // 3600))
    return f"{hours} hour{'s' if hours != 1 else ''} late"


def _body(case: Case, task: OpenTask | None, entry: JournalEntry) -> str:
    lines = [f"Case: {case.reference} ({case.process.name})"]
    if task is not None:
        lines.append(f"Step: {task.title}")
        if task.due_at is not None:
            lines.append(f"Due: {task.due_at.astimezone(LONDON):%A %d %B %Y, %H:%M}")
            late = lateness(task.due_at)
            if late:
                lines.append(f"This step is {late}.")
    lines.append(f"Timer: {entry.element}")
    return "\n".join(lines)


#: Notifications shown at once (the newest); older ones are read a page at a time with ``after``.
PAGE = 100


def for_user(session: Session, user: User, unread_only: bool = False, *, after: str | None = None,
             limit: int = PAGE) -> list[Notification]:
    """The user's newest notifications, a page at a time (``after``: :func:`cursor` of the last one shown),
    served by the index on (user, created_at, id)."""
    from service import paging

    query = select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    values = paging.decode(after, 2)
    if values is not None:
        created, note_id = paging._time(values[0]), int(values[1])
        query = query.where(or_(Notification.created_at < created,
                                and_(Notification.created_at == created, Notification.id < note_id)))
    return list(session.scalars(query.order_by(Notification.created_at.desc(), Notification.id.desc())
                                .limit(max(1, min(limit, 500)))))


def cursor(note: Notification) -> str:
    from service import paging

    return paging.encode([note.created_at, note.id])


# -- reading and marking (the notifications page and GET/POST /api/v1/notifications) ---------------

def unread_count(session: Session, user_id: int) -> int:
    """How many of the user's notifications (in the acting council) are unread: one COUNT on an indexed column."""
    return session.scalar(select(func.count(Notification.id)).where(Notification.user_id == user_id,
                                                                  Notification.read_at.is_(None))) or 0


def get_own(session: Session, notification_id: int, actor) -> Notification:
    """The actor's own notification; another person's is, for them, not there (404)."""
    note = session.get(Notification, notification_id)
    if note is None or not policy.may_read_notification(note.user_id, actor):
        raise NotFound(f"there is no notification {notification_id}")
    return note


def mark_read(session: Session, notification_id: int, actor) -> Notification:
    note = get_own(session, notification_id, actor)
    if note.read_at is None:
        note.read_at = clock.now()
    return note


def mark_all_read(session: Session, actor) -> int:
    """Mark every unread notification of the actor (in the acting council) as read; how many were."""
    notes = list(session.scalars(select(Notification).where(Notification.user_id == actor.user_id,
                                                            Notification.read_at.is_(None))))
    now = clock.now()
    for note in notes:
        note.read_at = now
    return len(notes)


def open_task_of(session: Session, note: Notification) -> OpenTask | None:
    """The open task a notification is about, if it is still open (a notification names the step)."""
    if note.case_id is None or not note.task:
        return None
    return session.scalars(select(OpenTask).where(OpenTask.case_id == note.case_id, OpenTask.name == note.task,
                                                  OpenTask.closed_at.is_(None))).first()
