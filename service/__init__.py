"""Step Pathways: step up, step down, step across and step in pathways run as BPMN.

``create_app`` is the application factory (``flask --app service ...``).
"""
from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from service import encryption, logs, pool_checks, step_writes, transactions
from service.config import engine_options, from_environment
from service.engine.limits import Limits
from service.json_answers import JSONAnswers
from service.models import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(config: Mapping[str, Any] | None = None, *, timers_only: bool = False) -> Flask:
    """Build the service: settings from the environment, overridden by ``config``.

    ``timers_only``: for a process that only runs the timers (``service.timer_worker``): without the pages, the
    API and the database migrations, whose modules are then never imported (17 MiB less memory).
    """
    app = Flask(__name__, instance_relative_config=True)
    app.json = JSONAnswers(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(from_environment(app.instance_path))
    app.config.update(config or {})
    # A failed statement's error never quotes its values (a child's name, a disclosure): always on.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**engine_options(app.config),
                                               **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
                                               "hide_parameters": True}
    encryption.init_app(app)  # before anything can read or write case data; refuses to start without a key

    app.extensions["engine_limits"] = Limits.from_config(app.config)
    app.extensions[step_writes.CASE_IDS] = step_writes.CaseIds()
    if app.config.get("PROXY_HOPS"):
        # The client's address (sign-in limits and locks) is the proxy's unless its X-Forwarded-For is read.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    db.init_app(app)
    transactions.init_app(app)  # after db.init_app: its teardown runs before the session is closed
    pool_checks.init_app(app)
    from service import cli, limits, scheduler, tenancy  # noqa: F401 (tenancy: its query events)
    from service import audit  # noqa: F401 (its flush events chain the audit log; after tenancy's)

    if not timers_only:
        from flask_migrate import Migrate

        from service import api, tracker_page, web

        Migrate(app, db, directory=str(MIGRATIONS))
    logs.init_app(app)  # after the imports above: their loggers exist now

    limits.init_app(app)  # first: its bounded <int:...> must be in place before any route is added
    cli.init_app(app)
    scheduler.init_app(app)
    if not timers_only:
        api.init_app(app)
        web.init_app(app)
        tracker_page.init_app(app)
    return app


def settle_process() -> None:
    """In a long-running service process, once its app is built: everything built so far (modules, the app, its
    mappers: some 185,000 objects) is left out of the garbage collector's full collections (``gc.freeze``).

    A full collection walked all of it, 140 to 280 ms on the 2-core build machine, in which the process answered
    nothing, at a request no one could foresee (``bench/gc_pause.py``, ``docs/performance.md``). What is built
    later (cases, parsed pathways) is collected as before; what is built at start-up lives as long as the
    process."""
    gc.freeze()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """SQLite: write-ahead log (readers never block the writer), foreign keys, and wait on locks."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # With the write-ahead log, NORMAL survives any crash of the service; only an OS crash or power
        # cut can lose the last commits (never corrupt the file).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")  # then 503 (service.errors.database_busy), under gunicorn's 60 s
        cursor.close()
