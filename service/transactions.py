"""How a request's transaction ends on PostgreSQL: one that only read is committed, not rolled back.

psycopg forgets every statement it has prepared on a connection at each ``ROLLBACK`` (it cannot tell whether the
transaction dropped what they refer to), and Flask-SQLAlchemy ends each request by closing its session, which
rolls back whatever is still open. So every request that only reads (the lists, the pages, the case views) had
its statements parsed and planned again from scratch, however often the same connection had sent them. A
transaction that wrote nothing ends the same way when committed, and its connection keeps them prepared.
"""
from __future__ import annotations

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from service.models import db

#: On a connection's ``info``: the transaction in hand sent something other than a SELECT.
WROTE = "step_pathways_wrote"


def init_app(app: Flask) -> None:
    """End each request's read-only transaction by a commit (after ``db.init_app``: Flask runs the teardown
    functions last-registered first, so this one runs before Flask-SQLAlchemy closes the session)."""
    app.teardown_appcontext(_end_read_only)


def _end_read_only(error: BaseException | None = None) -> None:
    session = db.session()  # the request's own session (the scoped registry's)
    if error is not None or not session.in_transaction() or session.new or session.dirty or session.deleted:
        return  # a failed request, or changes not yet flushed: Flask-SQLAlchemy's rollback ends it
    if session.get_bind().dialect.name != "postgresql":
        return
    if not session.connection().info.get(WROTE):
        session.commit()


@event.listens_for(Engine, "before_cursor_execute")
def _note_writes(conn, cursor, statement, parameters, context, executemany) -> None:
    # Anything but a SELECT (an UPDATE, a CTE that may write, a SET) counts as a write: such a transaction is
    # rolled back as before unless the request commits it.
    if not statement.lstrip()[:6].upper() == "SELECT":
        conn.info[WROTE] = True


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _transaction_ended(conn) -> None:
    if not conn.invalidated:  # a connection the server dropped holds no transaction, and its ``info`` cannot be read
        conn.info.pop(WROTE, None)
