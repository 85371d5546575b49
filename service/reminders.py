"""Reminders that only notify, fired without rebuilding their case.

A reminder on an open task (``R/P1D``, ``P2D`` or a date, with ``notify``, on a non-interrupting boundary whose
path is one plain end event: :func:`service.engine.runtime.notify_only_timers`) does not move its case: firing it
writes what the engine's step would leave, and no more: the audit log its ``timer_fired`` event, the people of
the task their notification, the case its next timer and version (not its ``updated_at``), and

- for a repeating reminder, its timer row the next occurrence and its due time, with its cycle (start, period,
  occurrences fired and left, next due: ``PendingTimer.cycle``). The case's encrypted state is neither read nor
  rewritten, except the first time a timer is fired so (its row has no cycle yet, or one the engine has moved on
  from since): then the state is read, not written. The state catches up when the engine next loads the case
  (:func:`state_of`, from the case's timer rows): the engine sees each occurrence fired here as fired, and fires
  none of them again.
- for a one-off reminder (and a repeating one's last firing), its timer row deleted and the firing noted on the
  case (``Case.fired_ahead``: element, when, the cycle its last firing left). The state is neither read nor
  rewritten: the engine's next load of the case marks each noted reminder fired in the state it loads
  (:func:`state_of`, :func:`service.engine.runtime.catch_up`), so its next step runs the reminder's path to its
  end with no firing, notification or audit event of its own, and its next write of the state empties the note.

Either way a handful of statements for a whole batch of cases, and no engine step.

The timer sweep calls this for the cases of a claimed batch (each locked with ``FOR UPDATE``, so exactly
once holds as for any firing; the case's version moves, so a completion that read the case before does not
write its older state or timers back) whose every due timer is such a reminder. A case this cannot fire (an
older state format, anything unexpected) is left to the engine's step.
"""
from __future__ import annotations

import logging
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service import notifications, safeguarding
from service.deployments import process_definition
from service.engine import runtime
from service.engine.parser import role_key
from service.models import AuditEvent, Case, Notification, OpenTask, PendingTimer, ProcessVersion, TaskRole
from service.step_writes import document_insert, document_rows, rows_document

log = logging.getLogger(__name__)
TIMER = "timer"
VERSIONS_KEPT = 1000  # pathway versions a worker remembers (name, which timers only remind) across batches
#: What a reminder writes to its case (and its version): none of them indexed (tests/test_timer_batches.py).
CASE_COLUMNS = ["id", "timer_failures", "next_timer_at"]
#: What a one-off reminder (or a cycle's last firing) adds to its case: the note the engine's next load applies.
MARKS = "fired_ahead"


def state_of(case: Case) -> str:
    """The case's state as the engine must load it: with what the sweep fired since the state was last written
    (the reminder cycles on the case's timer rows, ``case.timers``, and the one-off reminders noted on the case,
    ``case.fired_ahead``), so none fires twice."""
    cycles = {row.id: (row.name, row.cycle) for row in case.timers if row.cycle}
    fired = {timer_id: (mark["element"], datetime.fromisoformat(mark["at"]), mark.get("cycle"))
             for timer_id, mark in (case.fired_ahead or {}).items()}
    return runtime.catch_up(case.state, cycles, fired) if cycles or fired else case.state


def _fresh(row) -> dict[str, Any] | None:
    """The row's cycle if it is the one the row's due time comes from (else the engine moved the timer since)."""
    cycle = row.cycle
    if not cycle:
        return None
    try:
        return cycle if datetime.fromisoformat(cycle["next"]) == row.due_at else None
    except (KeyError, TypeError, ValueError):
        return None


def _needs_state(rows: list[Any], repeats: dict[str, bool], now: datetime) -> bool:
    """Whether firing the case's due ``rows`` here reads its state: only for a repeating reminder (``repeats``:
    element -> whether its reminder is a cycle) whose row holds no current cycle (the state holds it then). A
    one-off reminder, and a cycle's last firing, are noted on the case without the state."""
    return any(row.due_at <= now and repeats.get(row.name) and _fresh(row) is None for row in rows)


def load(session: Session, case_ids: set[int], pending: dict[int, list[Any]], now: datetime,
         versions: dict[int, SimpleNamespace]) -> dict[int, SimpleNamespace]:
    """What :func:`fire` reads of each of ``case_ids``: its id, council, reference, pathway version, state format
    and reminders already noted as fired ahead (the case's data is not read, nor decrypted, nor made an ORM row),
    and its state only when a due repeating reminder's row holds no current cycle. ``versions``: the worker's
    pathway versions already read (id -> name and process)."""
    if not case_ids:
        return {}
    table = Case.__table__
    rows = session.execute(select(table.c.id, table.c.council_id, table.c.reference, table.c.process_version_id,
                                  table.c.state_format, table.c.fired_ahead).where(table.c.id.in_(case_ids))).all()
    missing = {row.process_version_id for row in rows} - set(versions)
    if missing:
        if len(versions) > VERSIONS_KEPT:
            versions.clear()
        for version in session.scalars(select(ProcessVersion).where(ProcessVersion.id.in_(missing))):
            versions[version.id] = SimpleNamespace(name=version.name, process=process_definition(session, version))
    need_state = {row.id for row in rows
                  if _needs_state(pending.get(row.id, []), _repeats(versions[row.process_version_id]), now)}
    states = dict(session.execute(select(table.c.id, table.c.state).where(table.c.id.in_(need_state))).all()
                  ) if need_state else {}
    return {row.id: SimpleNamespace(id=row.id, council_id=row.council_id, reference=row.reference,
                                    state_format=row.state_format, fired_ahead=row.fired_ahead or {},
                                    state=states.get(row.id), version=versions[row.process_version_id])
            for row in rows}


def _repeats(version: SimpleNamespace) -> dict[str, bool]:
    """The version's reminders that only notify, each with whether it repeats; none when that cannot be told
    (the engine's step then fires the case's timers, and says what is wrong)."""
    try:
        return runtime.notify_only_timers(version.process)
    except Exception:  # noqa: BLE001 - fire() leaves the case to the engine's step, which reports it
        return {}


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
            only = runtime.notify_only_timers(case.version.process)
            if not all(row.name in only for row in due):
                continue
            plan = _plan(case, due, only, now)
            if plan is not None:
                plans.append((case, due, *plan, rows))
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


def _plan(case: Any, due: list[Any], repeats: dict[str, bool], now: datetime) -> tuple[dict, dict] | None:
    """How the case's ``due`` reminders fire (``repeats``: element -> whether its reminder is a cycle): (row id ->
    the cycle of a repeating one, moved on; row id -> (element, last cycle or None) of each one-off or last
    firing, to be noted on the case); None when this cannot fire them (the engine's step then does)."""
    if case.state_format != runtime.STATE_FORMAT:  # an older state: catch_up would not mark it, the engine must
        return None
    moved: dict[str, dict] = {}
    ahead: dict[str, tuple[str, dict | None]] = {}
    for row in due:
        if not repeats[row.name]:
            ahead[row.id] = (row.name, None)
            continue
        cycle = _fresh(row)
        if cycle is None:
            cycle = runtime.reminder_cycle(case.state, row.id, row.name) if case.state is not None else None
        if cycle is None:
            return None
        cycle = runtime.advance_reminder(cycle, now)
        if cycle is None:
            return None
        if cycle["cycles"] == 0:
            ahead[row.id] = (row.name, cycle)
        else:
            moved[row.id] = cycle
    return moved, ahead


def _write(session: Session, plans: list, now: datetime) -> int:
    task_ids = {row.attached_task_id for _, due, *_ in plans for row in due if row.attached_task_id}
    tasks = {t.id: t for t in session.execute(
        select(OpenTask.id, OpenTask.name, OpenTask.title, OpenTask.assignee_id, OpenTask.due_at, OpenTask.council_id)
        .where(OpenTask.id.in_(task_ids)))} if task_ids else {}
    roles: dict[str, list[str]] = {}
    if task_ids:
        for task_id, role in session.execute(select(TaskRole.task_id, TaskRole.role).where(TaskRole.task_id.in_(task_ids))):
            roles.setdefault(task_id, []).append(role)
    notifications.remember_assignees(session, {(t.council_id, t.assignee_id) for t in tasks.values() if t.assignee_id})
    case_rows, marked_rows, timer_rows, gone, audit_rows, notes = [], [], [], [], [], []
    for case, due, moved, ahead, rows in plans:
        dues = {row_id: datetime.fromisoformat(cycle["next"]) for row_id, cycle in moved.items()}
        engine_timers = [dues.get(row.id, row.due_at) for row in rows
                         if not safeguarding.is_service_timer(row) and row.id not in ahead]
        values = {"b_id": case.id, "timer_failures": 0, "next_timer_at": min(engine_timers) if engine_timers else None}
        if ahead:
            marks = {row_id: {"element": element, "at": now.isoformat(), "cycle": cycle}
                     for row_id, (element, cycle) in ahead.items()}
            marked_rows.append({**values, MARKS: {**case.fired_ahead, **marks}})
        else:
            case_rows.append(values)
        timer_rows.extend({"b_id": row_id, "due_at": dues[row_id], "cycle": cycle} for row_id, cycle in moved.items())
        gone.extend(ahead)
        for row in due:
            detail = {"attached_to": row.attached_task_id, "properties": dict(row.properties or {})}
            audit_rows.append({"case_id": case.id, "at": now, "actor": TIMER, "event": "timer_fired",
                               "task": row.name, "detail": runtime.json_safe(detail), "council_id": case.council_id})
            notes.extend(_notifications(session, case, row, tasks.get(row.attached_task_id or ""), roles, now))
    # One statement each for the whole batch, its text the same for every batch (PostgreSQL prepares it): the
    # rows go as one array per column. The version moves (a step that read the case before this is refused). Not
    # ``updated_at``: a reminder changes nothing a person sees of the case but its notification and audit event,
    # so the case keeps its place in the "recently updated" lists; and with no indexed column written, PostgreSQL
    # updates the row in place (HOT: no new entry in each of its indexes).
    version = "lock_version = cases.lock_version + 1"
    if case_rows:
        _bulk(session, Case.__table__, CASE_COLUMNS, case_rows, update_also=version)
    if marked_rows:
        _bulk(session, Case.__table__, CASE_COLUMNS + [MARKS], marked_rows, update_also=version)
    if timer_rows:
        _bulk(session, PendingTimer.__table__, ["id", "due_at", "cycle"], timer_rows)
    if gone:
        session.execute(text("DELETE FROM pending_timers WHERE id = ANY(CAST(:ids AS TEXT[]))"), {"ids": gone})
    _bulk(session, AuditEvent.__table__, list(audit_rows[0]), audit_rows, insert=True)
    if notes:
        _bulk(session, Notification.__table__, list(notes[0]), notes, insert=True)
    return len(audit_rows)


def _bulk(session: Session, table, columns: list[str], rows: list[dict], *, insert: bool = False,
          update_also: str | None = None) -> None:
    """Insert ``rows`` into ``table`` (in their order), or update its rows by ``id`` (keyed ``b_id`` in ``rows``),
    in one statement (PostgreSQL): the rows as one JSON document (:func:`service.step_writes.rows_document`), each
    value the text its column's type would bind (encrypted where the column is), cast back in SQL. An executemany
    would send one statement per row. (One text array per column, as before, had psycopg scan and escape each value
    in Python: about a tenth of the service's CPU per reminder fired, against a little more of PostgreSQL's to read
    the document: docs/performance.md.)"""
    dialect = session.get_bind().dialect
    keys = ["b_id" if name == "id" and not insert else name for name in columns]
    batch = rows_document(table, columns, rows, dialect, keys)
    if insert:
        sql = document_insert(table, columns, dialect, "batch")
    else:
        values, source = document_rows(table, columns, dialect, "batch")
        sets = [f"{name} = {value}" for name, value in zip(columns, values) if name != "id"]
        sql = (f"UPDATE {table.name} SET {', '.join(sets + ([update_also] if update_also else []))} FROM {source} "
               f"WHERE {table.name}.id = {values[columns.index('id')]}")
    session.execute(text(sql), {"batch": batch})


def _notifications(session: Session, case: Any, row, task, roles: dict[str, list[str]], now: datetime) -> list[dict]:
    """The rows :func:`service.notifications.for_timer` would add for this firing, in its wording
    (:func:`service.notifications.timer_wording`)."""
    properties = row.properties or {}
    wording = notifications.timer_wording(properties, reference=case.reference, pathway=case.version.name,
                                          element=row.name, task_title=task.title if task is not None else None,
                                          task_due_at=task.due_at if task is not None else None)
    if wording is None:
        return []
    kind, subject, body = wording
    if kind == "reminder":
        users = (notifications.people_for_task(session, task.council_id, task.assignee_id, roles.get(task.id, []))
                 if task is not None else [])
    else:
        target = str(properties.get("notify") or "").strip()
        users = notifications.people_with_roles(session, case.council_id, [role_key(target)])
    return [{"user_id": user.id, "case_id": case.id, "task": task.name if task is not None else row.name,
             "kind": kind, "subject": subject, "body": body, "created_at": now, "email_attempts": 0,
             "email_next_attempt_at": now if user.email else None, "council_id": case.council_id}
            for user in users]
