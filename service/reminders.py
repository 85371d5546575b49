"""Reminders that only notify, fired without rebuilding their case.

A repeating reminder on an open task (``R/P1D`` with ``notify``, on a non-interrupting boundary whose path
is one plain end event: :func:`service.engine.runtime.notify_only_timers`) does not move its case: firing it
writes what the engine's step would leave, and no more. The stored state gets the timer's next occurrence
(:func:`service.engine.runtime.fire_reminder`, no SpiffWorkflow workflow built), the pending-timer row its
new due time, the case its next timer and version, the audit log its ``timer_fired`` event and the people of
the task their notification: a handful of statements for a whole batch of cases.

The timer sweep calls this for the cases of a claimed batch (each locked with ``FOR UPDATE``, so exactly
once holds as for any firing) whose every due timer is such a reminder. A case this cannot fire (an older
state format, the last firing of a finite cycle, anything unexpected) is left to the engine's step.
"""
from __future__ import annotations

import logging
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from service import notifications, safeguarding
from service.deployments import process_definition
from service.engine import runtime
from service.engine.parser import role_key
from service.models import AuditEvent, Case, Notification, OpenTask, PendingTimer, ProcessVersion, TaskRole

log = logging.getLogger(__name__)
TIMER = "timer"


def load(session: Session, case_ids: set[int]) -> dict[int, SimpleNamespace]:
    """What :func:`fire` reads of each of ``case_ids``, in one Core statement: its id, council, reference,
    state and pathway version (the case's data is not read, nor decrypted, nor made an ORM row)."""
    if not case_ids:
        return {}
    table = Case.__table__
    rows = session.execute(select(table.c.id, table.c.council_id, table.c.reference, table.c.state,
                                  table.c.process_version_id).where(table.c.id.in_(case_ids))).all()
    versions = {v.id: v for v in session.scalars(select(ProcessVersion).where(
        ProcessVersion.id.in_({row.process_version_id for row in rows})))}
    return {row.id: SimpleNamespace(id=row.id, council_id=row.council_id, reference=row.reference, state=row.state,
                                    process=versions[row.process_version_id]) for row in rows}


def fire(session: Session, cases: dict[int, Any], pending: dict[int, list[Any]], now: datetime) -> tuple[int, set[int]]:
    """Fire the due reminders of those of ``cases`` (locked, with their ``pending`` timer rows) that only
    remind; return (timers fired, ids of the cases fired). The rest are the caller's to fire.

    Runs in a savepoint: if a write fails, nothing of it is kept and every case is left to the caller.
    """
    plans = []
    for case_id, case in cases.items():
        rows = pending.get(case_id, [])
        due = [row for row in rows if row.due_at <= now]
        if not due or any(safeguarding.is_service_timer(row) for row in due):
            continue
        try:
            only = runtime.notify_only_timers(process_definition(session, case.process))
            if not all(row.name in only for row in due):
                continue
            state, moved = case.state, {}
            for row in due:
                fired = runtime.fire_reminder(state, row.id, row.name, now)
                if fired is None:
                    break
                state, moved[row.id] = fired
            else:
                plans.append((case, due, state, moved, rows))
        except Exception as failure:  # the engine's step decides, and counts the failure if it fails too
            log.warning("reminders of case %s left to the engine (%s)", case_id, type(failure).__name__)
    if not plans:
        return 0, set()
    savepoint = session.begin_nested()
    try:
        count = _write(session, plans, now)
        savepoint.commit()
    except Exception as failure:
        savepoint.rollback()
        log.warning("a batch of %s reminders was left to the engine (%s)", len(plans), type(failure).__name__)
        return 0, set()
    return count, {case.id for case, *_ in plans}


def _write(session: Session, plans: list, now: datetime) -> int:
    task_ids = {row.attached_task_id for _, due, *_ in plans for row in due if row.attached_task_id}
    tasks = {t.id: t for t in session.execute(
        select(OpenTask.id, OpenTask.name, OpenTask.title, OpenTask.assignee_id, OpenTask.due_at, OpenTask.council_id)
        .where(OpenTask.id.in_(task_ids)))} if task_ids else {}
    roles: dict[str, list[str]] = {}
    if task_ids:
        for task_id, role in session.execute(select(TaskRole.task_id, TaskRole.role).where(TaskRole.task_id.in_(task_ids))):
            roles.setdefault(task_id, []).append(role)
    case_rows, timer_rows, audit_rows, notes = [], [], [], []
    for case, due, state, moved, rows in plans:
        engine_timers = [moved.get(row.id, row.due_at) for row in rows if not safeguarding.is_service_timer(row)]
        case_rows.append({"b_id": case.id, "state": state, "updated_at": now, "timer_failures": 0,
                          "next_timer_at": min(engine_timers) if engine_timers else None})
        for row in due:
            timer_rows.append({"b_id": row.id, "due_at": moved[row.id]})
            detail = {"attached_to": row.attached_task_id, "properties": dict(row.properties or {})}
            audit_rows.append({"case_id": case.id, "at": now, "actor": TIMER, "event": "timer_fired",
                               "task": row.name, "detail": runtime.json_safe(detail), "council_id": case.council_id})
            notes.extend(_notifications(session, case, row, tasks.get(row.attached_task_id or ""), roles, now))
    cases_table, timers_table = Case.__table__, PendingTimer.__table__
    session.execute(update(cases_table).where(cases_table.c.id == bindparam("b_id"))
                    .values(state=bindparam("state"), updated_at=bindparam("updated_at"),
                            timer_failures=bindparam("timer_failures"), next_timer_at=bindparam("next_timer_at"),
                            lock_version=cases_table.c.lock_version + 1), case_rows)
    session.execute(update(timers_table).where(timers_table.c.id == bindparam("b_id"))
                    .values(due_at=bindparam("due_at")), timer_rows)
    session.execute(insert(AuditEvent.__table__), audit_rows)
    if notes:
        session.execute(insert(Notification.__table__), notes)
    return len(audit_rows)


def _notifications(session: Session, case: Case, row, task, roles: dict[str, list[str]], now: datetime) -> list[dict]:
    """The rows :func:`service.notifications.for_timer` would add for this firing."""
    properties = row.properties or {}
    target = str(properties.get("notify") or "").strip()
    if not target:
        return []
    if target == "task":
        kind = "reminder"
        users = (notifications.people_for_task(session, task.council_id, task.assignee_id, roles.get(task.id, []))
                 if task is not None else [])
    else:
        kind, users = "escalation", notifications.people_with_roles(session, case.council_id, [role_key(target)])
    entry = SimpleNamespace(element=row.name)
    view = SimpleNamespace(title=task.title, due_at=task.due_at) if task is not None else None
    subject = (properties.get("subject") or notifications._subject(kind, case, view, entry))[:255]
    body = notifications._body(case, view, entry)
    return [{"user_id": user.id, "case_id": case.id, "task": task.name if task is not None else row.name,
             "kind": kind, "subject": subject, "body": body, "created_at": now, "email_attempts": 0,
             "email_next_attempt_at": now if user.email else None, "council_id": case.council_id}
            for user in users]
