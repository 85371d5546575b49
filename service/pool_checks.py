"""A pooled PostgreSQL connection is checked before use only when it has sat idle.

SQLAlchemy's ``pool_pre_ping`` sends a ``SELECT 1`` each time a connection leaves the pool, so that one the server
has dropped meanwhile (a restart, a fail-over, a firewall closing idle connections) is replaced before the request
uses it. That is a round trip per request, and 0.3 ms of a completion's 9.5 ms of CPU in the service on
PostgreSQL (issue 16, ``docs/performance.md``). A connection handed back a moment ago was working a moment ago,
so this checks only one that has been idle for more than :data:`IDLE_BEFORE_CHECK` seconds, as HikariCP skips
its check for a connection used within its ``aliveBypassWindowMs`` (500 ms). A server's restart takes longer
than that, so any connection used before it is checked after it; a connection that fails its check is replaced,
and so are all the pool's older ones (as ``pool_pre_ping`` does). Under load a connection is handed back and
taken again within the half second, and is not checked; when the service is quiet, each is.
"""
from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError

from service.models import db

#: A connection back in the pool for longer than this (seconds) is checked before it is used again.
IDLE_BEFORE_CHECK = 0.5
#: On a pooled connection's ``info``: when it was last handed back (``time.monotonic``).
_IDLE_SINCE = "step_pathways_idle_since"


def init_app(app: Flask) -> None:
    """Check the app's PostgreSQL connections that have sat idle when they leave the pool (after ``db.init_app``;
    SQLite's connections are to a file: nothing to check)."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        return
    event.listen(engine, "checkin", _handed_back)
    event.listen(engine, "checkout", lambda dbapi_connection, record, proxy: _check(engine, dbapi_connection, record))


def _handed_back(dbapi_connection, record) -> None:
    if record is not None:
        record.info[_IDLE_SINCE] = time.monotonic()


def _check(engine: Engine, dbapi_connection, record) -> None:
    """Ping a connection idle for long enough; one the server has dropped is replaced, with the pool's older ones.

    A connection just made has never been handed back (its ``info`` is new with it): it needs no check."""
    since = record.info.get(_IDLE_SINCE)
    if since is None or time.monotonic() - since <= IDLE_BEFORE_CHECK:
        return
    dialect = engine.dialect
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        if dialect.is_disconnect(error, dbapi_connection, None):
            raise InvalidatePoolError(f"a pooled connection was dropped while idle: {error}") from error
        raise
