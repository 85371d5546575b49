"""A step's own rows written with Core statements: a new case (:func:`insert_case`), the case's new state and
columns, the tasks it closes and opens (with their roles), the timers it adds, moves and removes.

A completion's unit-of-work flush spent about a third of the request's CPU working out these few statements,
and a start's flush of its new case more than a quarter (issue 16). The step knows exactly what it changes: it
says so to a :class:`StepWrites`, whose :meth:`~StepWrites.write` sends one statement per table and kind (an
``executemany`` for several rows), checked as a flush checks ORM rows (:func:`service.limits.check_values`, the
case's council, which must be the acting one: :func:`service.tenancy.check_council`). The objects are then left
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
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, delete, event, insert, update
from sqlalchemy.orm import Session, make_transient_to_detached, scoped_session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from service import tenancy
from service.limits import check_values
from service.models import Case, OpenTask, PendingTimer, TaskRole, write_suffixes

#: ``session.info`` key: the objects the transaction's steps wrote, (a weak reference to the object, new?, the
#: session transaction or savepoint it was written in) each, until it commits. Weak, as the session's own
#: identity map is: a long transaction (a case migration, a timer batch) keeps no object alive by this.
WRITTEN = "step_rows_written"
_CASES: Table = Case.__table__
_TABLES: dict[type, Table] = {OpenTask: OpenTask.__table__, PendingTimer: PendingTimer.__table__}


@dataclass
class StepWrites:
    """What one step of ``case`` changes in its rows, written at once by :meth:`write`."""

    case: Case
    #: Existing task and timer rows and their changed columns.
    changed: dict[Any, dict[str, Any]] = field(default_factory=dict)
    #: New task rows (with their ``role_rows``) and timer rows, not yet in the session.
    added: list[Any] = field(default_factory=list)
    #: Timer rows to delete.
    removed: list[PendingTimer] = field(default_factory=list)

    def change(self, row: OpenTask | PendingTimer, **values: Any) -> None:
        """Set columns of an existing task or timer row (written by :meth:`write`, not by a flush)."""
        self.changed.setdefault(row, {}).update(values)

    def update_case(self, session: Session, values: dict[str, Any]) -> None:
        """Write the case's columns after the step now, at the version it was read at (else
        :class:`StaleDataError`): the rest of the step reads them from the case."""
        case = self.case
        tenancy.check_council(session, case.council_id, "case")
        loaded = case.__dict__
        # Only what the step changed, as the ORM would: a timer step's data is not encrypted again.
        values = {k: v for k, v in values.items() if k not in loaded or loaded[k] != v}
        check_values(_CASES, [values])
        keys = tuple(sorted(values))
        version = case.lock_version
        result = session.connection().execute(
            _case_statement(keys), {"b_id": case.id, "b_version": version, "b_council": case.council_id,
                                    "v_lock_version": version + 1, **{f"v_{k}": v for k, v in values.items()}})
        if result.rowcount != 1:
            raise StaleDataError(f"UPDATE statement on table 'cases' expected to update 1 row(s); "
                                 f"{result.rowcount} were matched.")
        for key, value in values.items():
            set_committed_value(case, key, value)
        set_committed_value(case, "lock_version", version + 1)
        _note(session, [(case, False)])

    def write(self, session: Session) -> None:
        """Send the step's statements for its task, role and timer rows in the session's transaction, and
        bring the objects in step with them."""
        council = self.case.council_id
        tenancy.check_council(session, council, "case")
        connection = session.connection()
        for table, keys, rows in _grouped(self.changed):
            check_values(table, [values for _, values in rows])
            connection.execute(_update_statement(table, keys),
                               [{"b_id": row.id, **{f"v_{k}": v for k, v in values.items()}} for row, values in rows])
        if self.removed:
            connection.execute(_delete_statement(), {"ids": [row.id for row in self.removed]})
        self._insert(connection, council)
        self._settle(session)

    def _insert(self, connection, council: int) -> None:
        tasks = [row for row in self.added if isinstance(row, OpenTask)]
        timers = [row for row in self.added if isinstance(row, PendingTimer)]
        roles = [role for task in tasks for role in task.role_rows]
        for role in roles:
            role.task_id = next(t.id for t in tasks if role in t.role_rows)
        for table, rows in ((OpenTask.__table__, tasks), (TaskRole.__table__, roles),
                            (PendingTimer.__table__, timers)):
            if rows:
                values = [_row_values(table, row, council) for row in rows]
                check_values(table, values)
                connection.execute(_insert_statement(table), values)

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


def insert_case(session: Session, case: Case) -> None:
    """Write a new case (its reference suffixes with it) with one ``INSERT`` that returns its id, in the acting
    council; the case is then persistent in the session, as after a flush."""
    council = case.council_id or tenancy.acting_council_id(session)
    if council is None:
        raise tenancy.Unscoped("a Case was written outside any council's scope")
    tenancy.check_council(session, council, "Case")
    if case.process is not None:
        case.process_version_id = case.process.id
    values = _row_values(_CASES, case, council)
    check_values(_CASES, [values])
    connection = session.connection()
    case.id = connection.execute(_case_insert(), values).scalar_one()
    write_suffixes(connection, case, replace=False)
    make_transient_to_detached(case)
    session.add(case)
    _note(session, [(case, True)])


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
