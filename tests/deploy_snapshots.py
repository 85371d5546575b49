"""Deploying the same files onto the same fresh database, once per run: a shared fixture, like the migrated
template database.

Most scenario tests begin by deploying the reference pathways through the API (checks in a process of their
own, parsing, storing: seconds each on a loaded machine, hundreds of times a run). The first such deploy in a
worker runs for real and its outcome (every row of every table, and the answer) is kept; a later deploy of
the same files by the same user onto a database in the same state (the same councils, users and row counts,
the same frozen time) gets those rows written back and the same answer. Rows are copied as stored (cipher
text, hashes, chain links untouched), with the owner's connection on PostgreSQL (row-level security), and the
app's caches are emptied as a restart would.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, Table, create_engine, func, insert, select, text
from sqlalchemy.types import TypeDecorator

from service import deployments, tenancy
from service.engine import clock
from service.models import Deployment, db

#: Tables as stored: an encrypted column's cipher text, not its decrypted value, so nothing is re-encrypted.
_STORED = MetaData()


@dataclass
class _Kept:
    rows: dict[str, list[dict[str, Any]]]
    answer: Any
    parsed: tuple[int, Any, int]  # the deployment's id, its parsed bundle and its council's id


_kept: dict[tuple, _Kept] = {}


def _stored(table: Table) -> Table:
    if table.name not in _STORED.tables:
        Table(table.name, _STORED, *[Column(c.name, c.type.impl_instance if isinstance(c.type, TypeDecorator)
                                            else c.type, primary_key=c.primary_key) for c in table.columns])
    return _STORED.tables[table.name]


def _owner_engine(app, owner_role: str):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        return None
    return create_engine(url.replace(f"://{owner_role}@", "://postgres@"))


def _frozen_now() -> str | None:
    current = clock._block_clock.get() or clock._process_clock  # the clock in force, as clock.now reads it
    return current.now().isoformat() if isinstance(current, clock.FixedClock) else None


def _state(connection) -> tuple:
    """What a deploy's outcome depends on, besides the files: councils, users, their roles, row counts."""
    counts = tuple((t.name, connection.execute(select(func.count()).select_from(t)).scalar())
                   for t in db.metadata.sorted_tables)
    councils = db.metadata.tables["councils"]
    councils = tuple(connection.execute(select(*[c for c in _stored(councils).columns if c.name != "created_at"])
                                        .order_by(text("id"))).all())
    users = tuple(connection.execute(text("SELECT id, name, display_name, email, is_operator, session_version, "
                                          "password_hash IS NOT NULL FROM users ORDER BY id")).all())
    roles = tuple(connection.execute(text("SELECT * FROM memberships ORDER BY 1, 2")).all())
    return counts, repr(councils), users, roles


def _settings(app) -> tuple:
    """The app's settings (a deploy's checks read some), but for the database's address (a file per test)."""
    return tuple(sorted((k, repr(v)) for k, v in app.config.items() if k.isupper() and k != "SQLALCHEMY_DATABASE_URI"))


def _key(app, connection, paths: list[Path], as_: str) -> tuple:
    files = hashlib.sha256()
    for path in paths:
        if path.is_file():
            files.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return (connection.engine.dialect.name, files.hexdigest(), as_, _frozen_now(), _settings(app),
            _state(connection))


def _take(connection) -> dict[str, list[dict[str, Any]]]:
    return {t.name: [dict(r._mapping) for r in connection.execute(select(_stored(t)))]
            for t in db.metadata.sorted_tables}


def _put(connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    tables = db.metadata.sorted_tables
    if connection.dialect.name == "postgresql":
        connection.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in tables) + " CASCADE"))
    else:
        for table in reversed(tables):
            connection.execute(table.delete())
    for table in tables:
        if rows[table.name]:
            connection.execute(insert(_stored(table)), rows[table.name])
    if connection.dialect.name == "postgresql":
        for table in tables:
            for column in table.primary_key.columns:
                if column.autoincrement is True or (column.autoincrement == "auto" and column.type.python_type is int
                                                    and len(table.primary_key.columns) == 1):
                    connection.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                        f"COALESCE(MAX({column.name}), 1), MAX({column.name}) IS NOT NULL) FROM {table.name}"))


def _parsed() -> tuple[int, Any, int]:
    with tenancy.all_councils(db.session):
        deployment = db.session.scalars(select(Deployment).order_by(Deployment.id.desc()).limit(1)).one()
        found = deployment.id, deployments.cache().bundle(db.session, deployment.id), deployment.council_id
    db.session.remove()
    return found


def deploy_once(app, paths: list[Path], as_: str, owner_role: str, deploy):
    """``deploy()``'s answer, run for real the first time these files meet this database state, and
    replayed from what it wrote after that."""
    owner = _owner_engine(app, owner_role)
    with app.app_context():
        engine = owner or db.engine
        with engine.connect() as connection:
            key = _key(app, connection, paths, as_)
        if key in _kept:
            with engine.begin() as connection:
                _put(connection, _kept[key].rows)
            for cache in ("api_callers", "people", "step_pathways.checked_files"):
                app.extensions.pop(cache, None)
            db.session.remove()
            # Parsed specs are shared, read only, as within one app. The app's parsed cache is kept: what it holds
            # is of the deployments before this one (a set-up deploys council after council), which are as kept.
            deployments.cache().put(*_kept[key].parsed)
            answer = _kept[key].answer
        else:
            answer = deploy()
            if answer.status_code == 201:
                with engine.connect() as connection:
                    _kept[key] = _Kept(_take(connection), answer, _parsed())
        if owner is not None:
            owner.dispose()
        return answer
