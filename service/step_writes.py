"""A step's own rows written with Core statements: a new case (:func:`insert_case`, with its reference's suffixes),
the case's new state and columns, the tasks it closes and opens (with their roles), the timers it adds, moves and
removes, and the step's audit events.

A completion's unit-of-work flush spent about a third of the request's CPU working out these few statements,
and a start's flush of its new case more than a quarter (issue 16). The step knows exactly what it changes: it
says so to a :class:`StepWrites`, whose :meth:`~StepWrites.write` sends, on SQLite, one statement per table and
kind (an ``executemany`` for several rows) and, on PostgreSQL, all of them and the case's ``UPDATE`` as one
statement of data-modifying CTEs (one round trip; SQLAlchemy's and psycopg's work of one statement, not seven),
the new tasks, roles and timers and the audit events in it as one JSON document a table (:func:`rows_document`),
inserted in their order, and a start's new case with them (its id drawn ahead: :class:`CaseIds`).
The rows are checked as a flush checks ORM rows (:func:`service.limits.check_values`, the case's council, which
must be the acting one: :func:`service.tenancy.check_council`). The objects are then left
as a flush would leave them: new rows persistent in the session, changed ones holding what was written, so the
rest of the request (the answer, later checks) reads them without asking the database again. Anything else a
step writes (a safeguarding escalation, notifications, a case column set outside the step) goes by the ORM's
flush as before.

The case's row is updated only at the ``lock_version`` it was read at, as the ORM's version counter does: a
case moved on meanwhile by another request or timer raises :class:`~sqlalchemy.orm.exc.StaleDataError`, which
every caller already answers (409, or the timer sweep passing over the case). A rollback of the transaction or
savepoint that wrote a step takes its rows back out of the session (expired, or expunged if new), as the ORM
does for what it flushed.
"""
from __future__ import annotations

import functools
import json
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from flask import current_app, has_app_context
from sqlalchemy import JSON, LargeBinary, Select, String, Table, any_, bindparam, column, delete, event, func, insert, \
    literal, select, text, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.orm import Session, make_transient_to_detached, scoped_session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from service import tenancy
from service.limits import check_values
from service.models import AuditEvent, Case, OpenTask, PendingTimer, ReferenceSuffix, TaskRole, reference_suffixes, \
    write_suffixes

#: ``session.info`` key: the objects the transaction's steps wrote, (a weak reference to the object, new?, the
#: session transaction or savepoint it was written in) each, until it commits. Weak, as the session's own
#: identity map is: a long transaction (a case migration, a timer batch) keeps no object alive by this.
WRITTEN = "step_rows_written"
_CASES: Table = Case.__table__
_TABLES: dict[type, Table] = {OpenTask: OpenTask.__table__, PendingTimer: PendingTimer.__table__}


@dataclass
class StepWrites:
    """What one step of ``case`` changes in its rows, written by :meth:`write`."""

    case: Case
    #: Existing task and timer rows and their changed columns.
    changed: dict[Any, dict[str, Any]] = field(default_factory=dict)
    #: New task rows (with their ``role_rows``) and timer rows, not yet in the session.
    added: list[Any] = field(default_factory=list)
    #: Timer rows to delete.
    removed: list[PendingTimer] = field(default_factory=list)
    #: The case's columns still to write (PostgreSQL: with the rest, by :meth:`write`), at ``case_version``.
    case_values: dict[str, Any] | None = None
    case_version: int = 0
    #: A new case's columns, its id among them, still to insert (PostgreSQL: :func:`insert_case`).
    new_case: dict[str, Any] | None = None

    def change(self, row: OpenTask | PendingTimer, **values: Any) -> None:
        """Set columns of an existing task or timer row (written by :meth:`write`, not by a flush)."""
        self.changed.setdefault(row, {}).update(values)

    def update_case(self, session: Session, values: dict[str, Any]) -> None:
        """The case's columns after the step, written at the version it was read at (else
        :class:`StaleDataError`); the case holds them from now, for the rest of the step to read.

        On SQLite the ``UPDATE`` is sent now; on PostgreSQL with the step's other rows, in :meth:`write`."""
        case = self.case
        tenancy.check_council(session, case.council_id, "case")
        loaded = case.__dict__
        # Only what the step changed, as the ORM would: a timer step's data is not encrypted again.
        values = {k: v for k, v in values.items() if k not in loaded or loaded[k] != v}
        check_values(_CASES, [values])
        version = case.lock_version
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            self.case_values, self.case_version = values, version
        else:
            result = connection.execute(_case_statement(tuple(sorted(values))), _case_parameters(case, version, values))
            _require_one(result.rowcount)
        for key, value in values.items():
            set_committed_value(case, key, value)
        set_committed_value(case, "lock_version", version + 1)
        _note(session, [(case, False)])

    def write(self, session: Session, audit: list[dict[str, Any]] | None = None) -> None:
        """Send the step's statements in the session's transaction (on PostgreSQL one statement, the case's
        ``UPDATE`` in it), and bring the objects in step with them.

        ``audit``: the step's audit rows so far (``service.cases``), written with it, in order, and taken out of
        the list."""
        council = self.case.council_id
        tenancy.check_council(session, council, "case")
        groups = _grouped(self.changed)
        for table, _, rows in groups:
            check_values(table, [values for _, values in rows])
        inserts = self._new_rows(council)
        events = _audit_values(session, audit or [])
        if audit:
            audit.clear()
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            self._write_at_once(connection, groups, inserts, events)
        else:
            for table, keys, rows in groups:
                connection.execute(_update_statement(table, keys), [
                    {"b_id": row.id, **{f"v_{k}": v for k, v in values.items()}} for row, values in rows])
            if self.removed:
                connection.execute(_delete_statement(), {"ids": [row.id for row in self.removed]})
            for table, values in inserts:
                connection.execute(_insert_statement(table), values)
            if events:
                connection.execute(_AUDIT_INSERT, events)
        self._settle(session)

    def _new_rows(self, council: int) -> list[tuple[Table, list[dict[str, Any]]]]:
        """The new rows' columns by table (tasks before their roles), checked."""
        tasks = [row for row in self.added if isinstance(row, OpenTask)]
        timers = [row for row in self.added if isinstance(row, PendingTimer)]
        for task in tasks:
            for role in task.role_rows:
                role.task_id = task.id
        inserts = []
        for table, rows in ((OpenTask.__table__, tasks), (TaskRole.__table__, [r for t in tasks for r in t.role_rows]),
                            (PendingTimer.__table__, timers)):
            if rows:
                values = [_row_values(table, row, council) for row in rows]
                check_values(table, values)
                inserts.append((table, values))
        return inserts

    def _write_at_once(self, connection, groups: list, inserts: list, events: list[dict[str, Any]]) -> None:
        """PostgreSQL: every row of the step in one statement of data-modifying CTEs (one round trip, and one
        statement's work for SQLAlchemy and psycopg instead of seven). Its answer counts the case's row updated:
        none means the case moved on meanwhile (the other rows it wrote go with the transaction's rollback)."""
        case_keys = tuple(sorted(self.case_values)) if self.case_values is not None else None
        new_case = tuple(self.new_case) if self.new_case is not None else None
        documents = [(table, tuple(values[0]), values) for table, values in inserts]
        if events:
            documents.append((AuditEvent.__table__, AUDIT_COLUMNS, events))
        shape = (case_keys, tuple((table.name, keys, len(rows)) for table, keys, rows in groups), bool(self.removed),
                 tuple((table.name, columns) for table, columns, _ in documents), new_case)
        if shape == (None, (), False, (), None):
            return
        parameters: dict[str, Any] = {}
        if self.new_case is not None:
            parameters.update({f"n_{k}": v for k, v in self.new_case.items()})
            parameters["n_suffixes"] = reference_suffixes(self.new_case["reference"] or "")
        if self.case_values is not None:
            parameters.update(_case_parameters(self.case, self.case_version, self.case_values))
        for g, (_, _, rows) in enumerate(groups):
            for i, (row, values) in enumerate(rows):
                parameters[f"u{g}_{i}_b_id"] = row.id
                parameters.update({f"u{g}_{i}_v_{k}": v for k, v in values.items()})
        if self.removed:
            parameters["ids"] = [row.id for row in self.removed]
        for n, (table, columns, rows) in enumerate(documents):
            parameters[f"i{n}"] = rows_document(table, columns, rows, connection.dialect)
        updated = connection.execute(_at_once_statement(shape, connection.dialect), parameters).scalar_one()
        if self.case_values is not None:
            _require_one(updated)
        self.case_values = self.new_case = None

    def _settle(self, session: Session) -> None:
        """The objects as a flush would leave them; noted for a rollback to take back."""
        written = []
        for row, values in self.changed.items():
            for key, value in values.items():
                set_committed_value(row, key, value)
            written.append((row, False))
        for row in self.removed:
            if row in session:
                session.expunge(row)
        for row in self.added:
            for role in getattr(row, "role_rows", ()):
                make_transient_to_detached(role)
            make_transient_to_detached(row)
            session.add(row)  # persistent, clean: nothing left for the flush (its roles come with it)
            written.append((row, True))
        _note(session, written)


def _case_parameters(case: Case, version: int, values: dict[str, Any]) -> dict[str, Any]:
    return {"b_id": case.id, "b_version": version, "b_council": case.council_id, "v_lock_version": version + 1,
            **{f"v_{k}": v for k, v in values.items()}}


def _require_one(updated: int) -> None:
    if updated != 1:
        raise StaleDataError(f"UPDATE statement on table 'cases' expected to update 1 row(s); {updated} were matched.")


def insert_case(session: Session, case: Case, writes: StepWrites | None = None) -> None:
    """Write a new case (its reference suffixes with it) in the acting council; the case is then persistent in the
    session, as after a flush.

    With ``writes`` (its first step's) on PostgreSQL, the case takes an id drawn ahead (:class:`CaseIds`) and its
    ``INSERT`` goes in the step's one statement (:meth:`StepWrites.write`, which must follow before anything else
    writes a row of the case). Else one ``INSERT`` that returns its id; on PostgreSQL the suffixes in it."""
    council = case.council_id or tenancy.acting_council_id(session)
    if council is None:
        raise tenancy.Unscoped("a Case was written outside any council's scope")
    tenancy.check_council(session, council, "Case")
    if case.process is not None:
        case.process_version_id = case.process.id
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    ids = current_app.extensions.get(CASE_IDS) if postgresql and writes is not None and has_app_context() else None
    if ids is not None:
        case.id = ids.take(connection)
    values = _row_values(_CASES, case, council)
    check_values(_CASES, [values])
    if ids is not None:
        writes.new_case = values
    elif postgresql:
        suffixes = reference_suffixes(case.reference or "")
        case.id = connection.execute(_case_insert_with_suffixes(tuple(values)),
                                     {**values, "suffixes": suffixes}).scalar_one()
    else:
        case.id = connection.execute(_case_insert(), values).scalar_one()
        write_suffixes(connection, case, replace=False)
    make_transient_to_detached(case)
    session.add(case)
    _note(session, [(case, True)])


#: ``app.extensions`` key of the app's :class:`CaseIds`.
CASE_IDS = "case_ids"


class CaseIds:
    """New cases' ids drawn ahead from PostgreSQL's sequence, :attr:`AT_ONCE` at a time (one statement per that
    many starts), so that a start's case goes in its first step's statement. One per app (``app.extensions``):
    each service process draws its own. An id drawn and not used is never used, as after a rolled-back insert:
    ids have gaps and, across processes, do not follow the order cases started in (nothing orders by them
    alone: the lists order by when a case was last updated)."""

    AT_ONCE = 32

    def __init__(self) -> None:
        self._ids: deque[int] = deque()
        self._lock = threading.Lock()  # a timer process's workers start cases (messages) at once

    def take(self, connection) -> int:
        with self._lock:
            if not self._ids:
                self._ids.extend(connection.execute(_DRAW_CASE_IDS, {"count": self.AT_ONCE}).scalars())
            return self._ids.popleft()


_DRAW_CASE_IDS = text("SELECT nextval(pg_get_serial_sequence('cases', 'id')) FROM generate_series(1, :count)")


#: The columns of an audit row a step writes (``service.cases``'s rows, and the acting council).
AUDIT_COLUMNS = ("case_id", "at", "actor", "event", "task", "detail", "council_id")
#: The audit rows' statement apart from a step's (SQLite's, and rows recorded after the step's), built once.
_AUDIT_INSERT = insert(AuditEvent.__table__)


def write_audit(session: Session, rows: list[dict[str, Any]]) -> None:
    """One ``INSERT`` of audit rows (``service.cases``'s, without a council), in the acting council, in order."""
    events = _audit_values(session, rows)
    if events:
        session.connection().execute(_AUDIT_INSERT, events)


def _audit_values(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Audit rows in the acting council (refused outside one), checked as a flush checks ORM rows."""
    if not rows:
        return []
    council = tenancy.acting_council_id(session)
    if council is None:
        raise tenancy.Unscoped("an AuditEvent was written outside any council's scope")
    events = [{**row, "council_id": council} for row in rows]
    check_values(AuditEvent.__table__, events)
    return events


def rows_document(table: Table, columns: Sequence[str], rows: list[dict[str, Any]], dialect,
                  keys: Sequence[str] | None = None) -> str:
    """``rows`` as one JSON array for :func:`document_rows` to read: each row an object of ``c0``, ``c1``… (the
    row's ``keys[i]``, by default ``columns[i]``, as the text column ``columns[i]``'s type would bind: encrypted
    where the column is) and ``n``, its place. One parameter for any number of rows: the statement reading it is
    the same for every batch (PostgreSQL prepares it; SQLAlchemy caches it)."""
    writers = _text_writers(table, tuple(columns), dialect)
    names = [f"c{n}" for n in range(len(columns))]
    return orjson.dumps([{"n": place, **{name: None if row[key] is None else write(row[key])
                                         for name, key, write in zip(names, keys or columns, writers)}}
                         for place, row in enumerate(rows)]).decode()


def document_rows(table: Table, columns: Sequence[str], dialect, parameter: str) -> tuple[list[str], str]:
    """SQL reading the :func:`rows_document` bound as ``parameter`` (PostgreSQL): each column's value cast back
    to its type, and the ``FROM`` clause naming the rows ``v`` (``v.n``: each row's place)."""
    names = [f"c{n}" for n in range(len(columns))]
    values = [f"v.{name}::{table.c[column].type.compile(dialect=dialect)}" for name, column in zip(names, columns)]
    return values, (f"json_to_recordset(CAST(:{parameter} AS JSON)) "
                    f"AS v({', '.join(f'{name} TEXT' for name in names)}, n INTEGER)")


def document_insert(table: Table, columns: Sequence[str], dialect, parameter: str) -> str:
    """SQL inserting the rows of the :func:`rows_document` bound as ``parameter`` into ``table`` (PostgreSQL), in
    their order: ids a sequence gives follow it."""
    values, rows = document_rows(table, columns, dialect, parameter)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {rows} ORDER BY v.n"


@functools.lru_cache(maxsize=64)
def _text_writers(table: Table, columns: tuple[str, ...], dialect) -> list[Callable[[Any], str]]:
    return [_text_writer(table.c[name].type, dialect) for name in columns]


def _text_writer(kind, dialect) -> Callable[[Any], str]:
    """How a value of a column of type ``kind`` is sent as text: what its type binds (a JSON value as JSON text),
    a datetime in ISO form."""
    if isinstance(kind, JSON):
        return json.dumps
    process = kind.bind_processor(dialect)

    def write(value: Any) -> str:
        if process is not None:
            value = process(value)
        return value.isoformat() if isinstance(value, datetime) else str(value)

    return write


def _grouped(changed: dict[Any, dict[str, Any]]) -> list[tuple[Table, tuple[str, ...], list]]:
    """The changed rows by table and the columns they set: one statement each."""
    groups: dict[tuple[Table, tuple[str, ...]], list] = {}
    for row, values in changed.items():
        if values:
            groups.setdefault((_TABLES[type(row)], tuple(sorted(values))), []).append((row, values))
    return [(table, keys, rows) for (table, keys), rows in groups.items()]


def _row_values(table: Table, row: Any, council: int) -> dict[str, Any]:
    """A new row's columns, Python-side defaults applied to the object too (the object is the row as written);
    without a primary key the database gives (the case's id)."""
    row.council_id = council
    values = {}
    for column in table.columns:
        value = getattr(row, column.key)
        if value is None and column.primary_key:
            continue
        if value is None and column.default is not None:
            value = column.default.arg(None) if column.default.is_callable else column.default.arg
            setattr(row, column.key, value)
        values[column.key] = value
    return values


@functools.cache
def _insert_statement(table: Table):
    return insert(table)


@functools.cache
def _case_insert():
    return insert(_CASES).returning(_CASES.c.id)


@functools.lru_cache(maxsize=8)
def _case_insert_with_suffixes(columns: tuple[str, ...]) -> Select:
    """PostgreSQL: a new case's ``INSERT`` and its reference suffixes' (``suffixes``: :func:`reference_suffixes`),
    one statement answering the case's id."""
    case, suffixes = _new_case_ctes(columns, prefix="")
    return select(case.c.id).add_cte(suffixes)


def _new_case_ctes(columns: tuple[str, ...], prefix: str = "n_") -> tuple:
    """A new case's ``INSERT`` (its columns bound as ``prefix`` + name) and its suffixes' (``prefix`` +
    ``suffixes``), as CTEs: the suffixes take the case's id and council from its row."""
    case = (insert(_CASES).values({name: bindparam(prefix + name, type_=_CASES.c[name].type) for name in columns})
            .returning(_CASES.c.id, _CASES.c.council_id).cte(f"{prefix}new_case"))
    suffix = (func.unnest(bindparam(prefix + "suffixes", type_=ARRAY(LargeBinary))).table_valued("suffix")
              .render_derived())
    each = select(case.c.id, case.c.council_id, suffix.c.suffix).select_from(case.join(suffix, true()))
    suffixes = (insert(ReferenceSuffix.__table__).from_select(["case_id", "council_id", "suffix"], each)
                .returning(ReferenceSuffix.__table__.c.case_id).cte(f"{prefix}new_suffixes"))
    return case, suffixes


@functools.cache
def _case_statement(keys: tuple[str, ...]):
    return (update(_CASES)
            .where(_CASES.c.id == bindparam("b_id"), _CASES.c.lock_version == bindparam("b_version"),
                   _CASES.c.council_id == bindparam("b_council"))
            .values({key: bindparam(f"v_{key}", type_=_CASES.c[key].type) for key in (*keys, "lock_version")}))


@functools.cache
def _update_statement(table: Table, keys: tuple[str, ...]):
    return (update(table).where(table.c.id == bindparam("b_id"))
            .values({key: bindparam(f"v_{key}", type_=table.c[key].type) for key in keys}))


@functools.cache
def _delete_statement():
    table = PendingTimer.__table__
    return delete(table).where(table.c.id.in_(bindparam("ids", expanding=True)))


#: The tables of a step's other rows, by the name a shape of step gives them (the case's is apart).
_BY_NAME: dict[str, Table] = {table.name: table for table in (OpenTask.__table__, TaskRole.__table__,
                                                              PendingTimer.__table__, AuditEvent.__table__)}


@functools.lru_cache(maxsize=256)
def _at_once_statement(shape: tuple, dialect) -> Select:
    """:meth:`StepWrites._write_at_once`'s statement for one shape of step (which case columns; how many rows
    it changes of each kind, which columns; whether it removes timers; which tables it adds rows to; a new
    case's columns), built once: the changed rows' parameters as the statements sent one by one would name them,
    numbered; the new rows (tasks, their roles, timers) and the audit events as one document a table
    (:func:`rows_document`: one parameter however many rows, and the same statement), inserted in their order,
    so that the events' ids follow it."""
    case_keys, groups, removing, documents, new_case = shape
    ctes = []
    if new_case is not None:
        ctes.extend(_new_case_ctes(new_case))
    for g, (name, keys, count) in enumerate(groups):
        table = _BY_NAME[name]
        for i in range(count):
            ctes.append(_renamed(_update_statement(table, keys), f"u{g}_{i}_").returning(table.c.id)
                        .cte(f"step_changed_{g}_{i}"))
    if removing:  # = ANY(array): an expanding IN would be rendered again for each step
        timers = PendingTimer.__table__
        ctes.append(delete(timers).where(timers.c.id == any_(bindparam("ids", type_=ARRAY(String))))
                    .returning(timers.c.id).cte("step_removed"))
    # A row's columns bound one by one made a start's statement over 50 parameters, which psycopg converts
    # afresh each time (it caches no longer statement), and a statement for each count of rows.
    for n, (name, columns) in enumerate(documents):
        ctes.append(text(f"{document_insert(_BY_NAME[name], columns, dialect, f'i{n}')} RETURNING {name}.{columns[0]}")
                    .columns(column(columns[0])).cte(f"step_added_{n}"))
    if case_keys is None:
        return select(literal(0)).add_cte(*ctes)
    case_row = _case_statement(case_keys).returning(_CASES.c.id).cte("step_case")
    return select(func.count()).select_from(case_row).add_cte(*ctes)


def _renamed(statement, prefix: str):
    """``statement`` with each bound parameter's name prefixed (one UPDATE per changed row in one statement)."""
    return visitors.replacement_traverse(
        statement, {}, lambda element: bindparam(prefix + element.key, type_=element.type)
        if isinstance(element, BindParameter) else None)


def _note(session: Session | scoped_session, rows: list[tuple[Any, bool]]) -> None:
    actual = session() if isinstance(session, scoped_session) else session  # the request's own session
    where = actual.get_nested_transaction() or actual.get_transaction()
    session.info.setdefault(WRITTEN, []).extend((weakref.ref(row), new, where) for row, new in rows)


def _within(transaction, rolled_back) -> bool:
    while transaction is not None:
        if transaction is rolled_back:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _take_back(session: Session, previous_transaction) -> None:
    """Rows a step wrote in the transaction or savepoint just rolled back (or in one inside it): the new ones
    leave the session, the others are read again when next used, as after a flush rolled back."""
    written = session.info.get(WRITTEN)
    if not written:
        return
    kept = []
    for ref, new, where in written:
        row = ref()
        if row is None:
            continue
        if not _within(where, previous_transaction):
            kept.append((ref, new, where))
        elif row in session and new:
            session.expunge(row)
        elif row in session:
            session.expire(row)
    session.info[WRITTEN] = kept


@event.listens_for(Session, "after_commit")
def _written(session: Session) -> None:
    session.info.pop(WRITTEN, None)
