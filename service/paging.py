"""Keyset paging for the lists (issue 16): a page is read from where the last one ended, in a stable order
with the row id as the tiebreak, so a page costs its rows whatever page it is, and nothing is skipped or
shown twice when rows are added meanwhile.

A cursor is opaque to its callers: the sort values of the last row shown, as URL-safe base64 of JSON.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, literal_column, or_, select
from sqlalchemy.orm import Session

from service.engine import clock
from service.errors import InvalidData
from service.models import Case, OpenTask

#: The first page of an inbox or a team's tasks; a caller may ask for up to MAX_PAGE.
TASK_PAGE = 100
MAX_PAGE = 500
#: Counting more matches than this costs more than it tells: the lists say "more than 10,000".
COUNT_CAP = 10_000


def capped_count(session: Session, ids: Select) -> int:
    """How many rows ``ids`` (a query of one column) finds, counted up to :data:`COUNT_CAP` and one: more than
    the cap means "more than that". A list's count reads at most that many index entries, never the table."""
    return session.scalar(select(func.count()).select_from(ids.limit(COUNT_CAP + 1).subquery())) or 0


def pages_of(total: int, page: int, shown: int, per_page: int) -> tuple[int, bool]:
    """The pages a numbered list offers for a count from :func:`capped_count`, and whether the count stopped at the
    cap ("more than 10,000"): then a next page while this one is full, as the pages beyond are not counted."""
    if total > COUNT_CAP:
        return (page + 1 if shown == per_page else page), True
    return max(1, -(-total // per_page)), False


def encode(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def not_ours() -> InvalidData:
    """The error for a cursor that is not one of the list's."""
    return InvalidData("that page link is not one of this list's", {"after": "Start again from the first page"})


def decode(cursor: str | None, size: int) -> list[Any] | None:
    """The values of a cursor (``size`` of them), or None for the first page; 422 for a cursor not ours."""
    if not cursor:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != size:
            raise ValueError(cursor)
        return values
    except (ValueError, TypeError):
        raise not_ours() from None


def in_batches(session: Session, query: Select, column, size: int) -> Iterator[list[Any]]:
    """The rows ``query`` selects (one entity), ``size`` at a time in order of ``column`` (their id), each batch read
    when the caller is done with the one before: no cursor stays open, so the caller may commit between batches (a
    job over a whole council or service: retention, the search index after a key's rotation)."""
    after = None
    while True:
        page = query.order_by(column).limit(size)
        batch = list(session.scalars(page if after is None else page.where(column > after)))
        if batch:
            yield batch
        if len(batch) < size:
            return
        after = getattr(batch[-1], column.key)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return clock.as_utc(datetime.fromisoformat(value))
    except (TypeError, ValueError):
        raise not_ours() from None


# -- tasks: most urgent first (due date, undated last), then the newest, then by id ------------------

def task_order(columns=None) -> tuple:
    """The order of :func:`task_cursor`, of the tasks table or of ``columns`` (a subquery's)."""
    c = columns if columns is not None else OpenTask
    return c.due_at.asc().nulls_last(), c.created_at.desc(), c.id.desc()


def task_cursor(task) -> str:
    """The cursor of an open task (an ``OpenTask`` or a listed one: its due date, creation and id)."""
    return encode([task.due_at, task.created_at, task.id])


def tasks_after(cursor: str | None) -> dict[str, Any] | None:
    """The values of :func:`tasks_after_condition` for the tasks after ``cursor`` (None on the first page)."""
    values = decode(cursor, 3)
    if values is None:
        return None
    return {"after_due": _time(values[0]), "after_created": _time(values[1]), "after_id": str(values[2])}


def tasks_after_condition(undated: bool, columns=None):
    """The condition for the tasks after a cursor in :func:`task_order`, its values bound parameters
    (:func:`tasks_after`); ``undated``: the cursor's task has no due date."""
    c = columns if columns is not None else OpenTask
    created, task_id = bindparam("after_created", type_=c.created_at.type), bindparam("after_id", type_=c.id.type)
    later_same_due = or_(c.created_at < created, and_(c.created_at == created, c.id < task_id))
    if undated:
        return and_(c.due_at.is_(None), later_same_due)
    due = bindparam("after_due", type_=c.due_at.type)
    return or_(c.due_at > due, c.due_at.is_(None), and_(c.due_at == due, later_same_due))


# -- the workload's workers: by user name (unique) -----------------------------------------------------

def worker_cursor(name: str) -> str:
    return encode([name])


def workers_after(cursor: str | None) -> str | None:
    """The user name after which the next page of workers begins (None on the first page)."""
    values = decode(cursor, 1)
    if values is None:
        return None
    if not isinstance(values[0], str):
        raise not_ours()
    return values[0]


# -- cases: stopped on an error first, then the most recently changed, then by id ---------------------

def not_in_error():
    """``status <> 'error'`` with the status written in, as the lists' index has it (``ix_cases_list_order``):
    SQLite serves an order by an expression from an index only when the expression is the index's, and a bound
    parameter is not the index's literal (it sorted every case of the council for a page: 0.5 s at 100,000)."""
    return Case.status != literal_column("'error'")


def case_order(*, by_index: bool = True) -> tuple:
    """The lists' order of cases. ``by_index``: as the lists' index has it, for a list read in that order; else
    with the status a bound parameter, which no index serves, for the few cases a search found: sorted once
    found. (SQLite, which keeps no statistics, would walk the council's whole list order looking for them.)"""
    first = not_in_error() if by_index else Case.status != "error"
    return first, Case.updated_at.desc(), Case.id.desc()


def case_cursor(case: Case) -> str:
    return encode([case.status != "error", case.updated_at, case.id])


def cases_after(cursor: str | None):
    values = decode(cursor, 3)
    if values is None:
        return None
    not_error, updated, case_id = bool(values[0]), _time(values[1]), int(values[2])
    same_group = or_(Case.updated_at < updated, and_(Case.updated_at == updated, Case.id < case_id))
    if not not_error:
        return or_(not_in_error(), and_(Case.status == "error", same_group))
    return and_(not_in_error(), same_group)
