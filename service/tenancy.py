"""Councils, each alone in one service: the scope every query of council data runs in.

The scope lives on the database session (one per request, one per timer-fired case). Three walls keep a
council's pathways, cases, tasks, timers, notifications and audit to itself, and none depends on a view
remembering to filter:

1. **The ORM.** Every SELECT, UPDATE and DELETE of a :class:`~service.models.CouncilOwned` model gets
   ``council_id = <acting council>`` added (``with_loader_criteria``, SQLAlchemy's documented way to add
   global criteria), including ``session.get`` and relationship loads; a new row takes the acting council,
   and a row of another council cannot be written. A query of council data with no scope at all raises
   :class:`Unscoped`: a bug fails loudly instead of reading every council. The criteria are always the same
   and the council is their bound parameter (:data:`SCOPE`). A statement built once and run many times carries
   the criteria from when it is built and runs on the session's connection (:func:`council_criteria`,
   :func:`execute_built`: the task lists, the completion's read, a start's pathway version); it is refused
   outside one council's scope.
2. **PostgreSQL row-level security.** Each transaction sets ``app.council_id`` (and ``app.user_id``)
   with ``set_config(..., true)`` (an API request in the statement that reads its verified token:
   ``service.auth.caller_for_token``); the policies of the migration ``tenancy`` return no row of another
   council, and no row at all to a query issued without the scope.
3. **404, never 403, across councils.** Because of 1 and 2, another council's case, task or pathway is
   simply not there.

The service itself (the timer sweep, the email outbox, the operator's counts) works across councils only
inside :func:`all_councils`, and acts on each case inside that case's council.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, time

from sqlalchemy import Boolean, String, bindparam, case, event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from service.engine import calendar
from service.models import Council, CouncilOwned

COUNCIL = "council_id"
ALL_COUNCILS = "all_councils"
USER = "user_id"


class Unscoped(RuntimeError):
    """Council data was read or written outside any council's scope (a bug in the service, never input)."""


def act_for(session: Session, council: Council, user_id: int | None = None) -> None:
    """From now on ``session`` reads and writes ``council``'s data only, on ``council``'s calendar."""
    session.info[COUNCIL] = council.id
    session.info.pop(ALL_COUNCILS, None)
    if user_id is not None:
        session.info[USER] = user_id
    calendar.set_calendar(working_calendar(council))
    _set_database_scope(session)


def identify(session: Session, user_id: int) -> None:
    """Say who is acting (before a council is chosen): row-level security shows a user their memberships."""
    session.info[USER] = user_id
    _set_database_scope(session)


def acting_council_id(session: Session) -> int | None:
    return session.info.get(COUNCIL)


@contextmanager
def all_councils(session: Session) -> Iterator[None]:
    """Work across councils (the service's own sweeps and the operator's counts); the scope before is restored."""
    with _scope(session, {ALL_COUNCILS: True}):
        yield


@contextmanager
def in_council(session: Session, council: Council) -> Iterator[None]:
    """Read another council's published pathway (to copy it); the scope before is restored."""
    with _scope(session, {COUNCIL: council.id}):
        yield


@contextmanager
def _scope(session: Session, scope: dict) -> Iterator[None]:
    before = {key: session.info.get(key) for key in (COUNCIL, ALL_COUNCILS)}
    for key in (COUNCIL, ALL_COUNCILS):
        session.info.pop(key, None)
    session.info.update(scope)
    _set_database_scope(session)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                session.info.pop(key, None)
            else:
                session.info[key] = value
        _set_database_scope(session)


def leave(session: Session) -> None:
    """Forget the scope (the session goes back to the pool of sessions)."""
    for key in (COUNCIL, ALL_COUNCILS, USER):
        session.info.pop(key, None)


def council_by_key(session: Session, key: str) -> Council | None:
    return session.scalars(select(Council).where(Council.key == key)).first()


def working_calendar(council: Council) -> calendar.WorkingCalendar:
    """The council's working days (its country's bank holidays and its closure days) and office hours."""
    return calendar.WorkingCalendar(
        closures=[date.fromisoformat(d) for d in council.closure_days or []], country=council.country,
        opens=time.fromisoformat(council.office_opens), closes=time.fromisoformat(council.office_closes))


# -- the walls -----------------------------------------------------------------------------------

def _set_database_scope(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    _hold_scope(session.connection(), _scope_values(session.info))


def _hold_scope(connection, values: dict[str, str]) -> None:
    """Set the transaction's scope to ``values``, unless it holds them already."""
    if connection.info.get(SCOPE_SET) != values:
        connection.execute(_SET_SCOPE, values)
        connection.info[SCOPE_SET] = values


_SET_SCOPE = text("SELECT set_config('app.council_id', :council, true), set_config('app.all_councils', :all, true), "
                  "set_config('app.user_id', :user, true)")

#: On a connection's ``info``: the scope (:func:`_scope_values`) that its transaction in hand has set, as the
#: database answered it; forgotten when a transaction begins or ends and when a savepoint is rolled back (which
#: undoes a ``set_config`` made inside it), so that it never outlives what it describes.
SCOPE_SET = "step_pathways_scope"


def _scope_values(info: dict) -> dict[str, str]:
    return {"council": str(info.get(COUNCIL) or ""), "all": "on" if info.get(ALL_COUNCILS) else "off",
            "user": str(info.get(USER) or "")}


def scope_columns(verified) -> list:
    """Columns that set the transaction's scope to the council ``:scope_council`` and the user ``:scope_user``
    when the SQL condition ``verified`` holds for the row read, else to no council and no user: a statement that
    reads a caller's credentials sets the scope they act in, one statement instead of two (PostgreSQL).

    The row answers the scope as set; pass it to :func:`scope_was_set`.
    """
    def chosen(name: str):
        return case((verified, bindparam(name, type_=String)), else_="")

    return [func.set_config("app.council_id", chosen("scope_council"), True).label("scope_council"),
            func.set_config("app.all_councils", "off", True).label("scope_all"),
            func.set_config("app.user_id", chosen("scope_user"), True).label("scope_user")]


def scope_was_set(session: Session, row) -> None:
    """Note the scope a :func:`scope_columns` statement set (its row): :func:`act_for` sends nothing when it
    wants the same."""
    session.connection().info[SCOPE_SET] = {"council": row.scope_council, "all": row.scope_all,
                                            "user": row.scope_user}


@event.listens_for(Session, "after_begin")
def _scope_transaction(session: Session, transaction, connection) -> None:
    """Every transaction on PostgreSQL starts in the session's scope (``set_config`` is transaction-local)."""
    if connection.dialect.name != "postgresql":
        return
    if not transaction.nested:
        connection.info.pop(SCOPE_SET, None)  # a new transaction holds no scope yet
    if any(k in session.info for k in (COUNCIL, ALL_COUNCILS, USER)):
        _hold_scope(connection, _scope_values(session.info))


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
@event.listens_for(Engine, "rollback_savepoint")
def _scope_ended(connection, *args) -> None:
    if connection.invalidated:  # the server dropped it: its scope went with it, and its ``info`` cannot be read
        return
    connection.info.pop(SCOPE_SET, None)


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.session.info.get(ALL_COUNCILS):
        return
    council = state.session.info.get(COUNCIL)
    if council is None:
        if any(issubclass(mapper.class_, CouncilOwned) for mapper in state.all_mappers):
            raise Unscoped("council data was queried outside any council's scope")
        return
    # The council goes in as a bound parameter of criteria that are always the same: criteria holding it as a
    # value (a lambda's closure) cost SQLAlchemy more to analyse and key each time.
    state.statement = state.statement.options(_WALL)
    state.parameters = _with_scope(state.parameters, council)


#: The bound parameter of :func:`council_criteria`: the acting council, given by :func:`execute_built`.
SCOPE = "wall_council"


class CouncilMatch(ColumnElement[bool]):
    """Wall 1's condition, ``<table>.council_id = :wall_council``; on SQLite with the hint ``likelihood(..., 0.5)``.

    SQLite keeps no statistics unless told to, so its planner took an equality on ``council_id`` to be as
    selective as one on ``case_id`` or ``task_id``, and often found a case's tasks, timers or audit events, a
    task's roles or a case by its reference through the council's index: every row of the council read for one
    case's (the completion's read of a council holding 200,000 timers took 41 ms, not 0.03). The hint says the
    condition holds for many rows, so the planner looks rows up by the other column, and an index that begins
    with the council (a list's, ``service.cases``) still serves the statement. A stronger hint did worse:
    with ``likely()`` (0.94) SQLite 3.40 scanned the whole table for a case's pathway version and a deployment
    by its content (``EXPLAIN QUERY PLAN``). The condition is the same. PostgreSQL keeps statistics: its SQL is
    unchanged."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: not to be compared with 1 where booleans are integers
    _traverse_internals = [("condition", InternalTraversal.dp_clauseelement)]

    def __init__(self, condition: ColumnElement[bool]) -> None:
        self.condition = condition


@compiles(CouncilMatch)
def _council_match(element: CouncilMatch, compiler, **kw) -> str:
    return compiler.process(element.condition, **kw)


@compiles(CouncilMatch, "sqlite")
def _council_match_sqlite(element: CouncilMatch, compiler, **kw) -> str:
    return f"likelihood({compiler.process(element.condition, **kw)}, 0.5)"


# The name spelled out: a lambda's global names are tracked as values by SQLAlchemy's lambda caching.
_WALL = with_loader_criteria(CouncilOwned, lambda cls: CouncilMatch(cls.council_id == bindparam("wall_council")),
                             include_aliases=True)


def _with_scope(parameters, council: int):
    """A statement's parameters with the acting council's (:data:`SCOPE`), for each row of an executemany."""
    if isinstance(parameters, (list, tuple)):
        return [{**row, SCOPE: council} for row in parameters]
    return {**(parameters or {}), SCOPE: council}


def council_criteria():
    """Wall 1 for a statement built once and run many times (a list's, ``service.cases``): the criteria
    :func:`_scope_statement` adds to each ORM statement, with the council a bound parameter (:data:`SCOPE`)."""
    return _WALL


def execute_built(session: Session, statement, values: dict):
    """Run ``statement`` (built with :func:`council_criteria`) in the acting council, on the session's connection.

    Through ``session.execute`` each run would get the criteria again (:func:`_scope_statement`): a new statement
    to key and look up, and ORM rows, half a list's service time. Council data outside a council's scope (none,
    or all councils') is refused, as wall 1 refuses a query with no scope at all."""
    council = session.info.get(COUNCIL)
    if council is None:
        raise Unscoped("council data was queried outside a council's scope")
    return session.connection().execute(statement, values | {SCOPE: council})


def check_council(session: Session, council_id: int, what: str) -> None:
    """Refuse to write a row of ``council_id`` (a ``what``) in another council's scope: for rows written with
    Core statements, as a flush checks its ORM rows."""
    council = session.info.get(COUNCIL)
    if council is not None and council_id != council:
        raise Unscoped(f"a {what} of another council was written")


@event.listens_for(Session, "before_flush")
def _scope_new_rows(session: Session, flush_context, instances) -> None:
    council = session.info.get(COUNCIL)
    for row in list(session.new) + list(session.dirty):
        if not isinstance(row, CouncilOwned):
            continue
        if row.council_id is None:
            if council is None:
                raise Unscoped(f"a {type(row).__name__} was written outside any council's scope")
            row.council_id = council
        else:
            check_council(session, row.council_id, type(row).__name__)
