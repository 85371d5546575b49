"""Limits on what callers send, so bad input gets a 4xx naming what is wrong, never a 500.

Three walls, outermost first:

1. **URLs.** ``<int:...>`` in any route accepts 1..2^31-1 only (PostgreSQL's ``integer``; SQLite takes
   2^63 but the same bound keeps the two alike): a larger id is simply not found (404).
2. **Requests to the API** (:func:`check_request`, before any view): a JSON body nested deeper than
   ``MAX_JSON_DEPTH`` is refused (400), and a NUL character in any string of the body, the query or the
   path is refused (422 naming the field): PostgreSQL refuses NUL in text and in JSON.
3. **Every row written** (:func:`_check_rows`, before each flush): a string longer than its column, a
   string holding NUL, or an integer outside its column's range raises :class:`InvalidData` naming the
   column, on SQLite as on PostgreSQL, instead of a database error (a 98-character outcome once made a
   case uncompletable on PostgreSQL only).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Flask, current_app, request
from sqlalchemy import BigInteger, Integer, String, event, inspect
from sqlalchemy.orm import Session
from werkzeug.routing import IntegerConverter

from service.errors import InvalidData, ServiceError

#: PostgreSQL's ``integer``: the largest id either database holds in an ``integer`` column.
MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1
NUL = "\x00"

DEFAULTS: dict[str, Any] = {
    "MAX_JSON_DEPTH": 32,  # levels of objects and arrays in an API request body
}


class BadRequest(ServiceError):
    status = 400


class BoundedInt(IntegerConverter):
    """``<int:...>`` that matches 0..2^31-1 only: an out-of-range id is a 404, never a database error."""

    def __init__(self, map, *args, **kwargs) -> None:
        kwargs.setdefault("max", MAX_INT)
        super().__init__(map, *args, **kwargs)


def init_app(app: Flask) -> None:
    """Before any route is added: bounded ids; then the API's request checks."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.url_map.converters["int"] = BoundedInt


def check_request() -> None:
    """Refuse (before the view) a body nested too deep, and NUL in any string of the request."""
    for name, value in [*(request.view_args or {}).items(), *request.args.items(multi=True)]:
        _refuse_nul(name, value)
    for name in request.args:
        _refuse_nul(name, name)
    if request.is_json and request.content_length != 0:
        body = _parse(request.get_data(cache=True))
        for path, value in _strings(body, "body"):
            _refuse_nul(path, value)


def _parse(raw: bytes) -> Any:
    limit = current_app.config["MAX_JSON_DEPTH"]
    try:
        body = json.loads(raw)
    except RecursionError:
        body, deepest = None, limit + 1
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: the view's own parsing answers 400 as before
    else:
        deepest = json_depth(body)
    if deepest > limit:
        raise BadRequest(f"the request body is nested more than {limit} levels deep", limit=limit)
    return body


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (walked without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a parsed JSON value (keys too), with where it is, e.g. ``body.data.name``."""
    pending = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, child in item.items():
                yield f"{where}.{key}", key
                pending.append((f"{where}.{key}", child))
        elif isinstance(item, list):
            pending.extend((f"{where}[{i}]", child) for i, child in enumerate(item))


def _refuse_nul(field: str, value: Any) -> None:
    if isinstance(value, str) and NUL in value:
        raise InvalidData(f"{_readable(field)} contains a NUL character", {_readable(field): "Remove the NUL character"})


def _readable(field: str) -> str:
    return field.replace(NUL, "\\u0000")


# -- every row written ---------------------------------------------------------------------------

@event.listens_for(Session, "before_flush")
def _check_rows(session: Session, flush_context, instances) -> None:
    problems: dict[str, str] = {}
    for row in [*session.new, *session.dirty]:
        for attribute in inspect(row).mapper.column_attrs:
            if attribute.key in row.__dict__:
                problem = _column_problem(attribute.columns[0], row.__dict__[attribute.key])
                if problem:
                    problems[f"{row.__tablename__}.{attribute.key}"] = problem
    if problems:
        raise InvalidData("some values do not fit where they are kept", problems)


def check_values(table, rows: list[dict[str, Any]]) -> None:
    """What :func:`_check_rows` checks of ORM rows, for rows written with a Core ``INSERT`` into ``table``."""
    problems: dict[str, str] = {}
    for row in rows:
        for key, value in row.items():
            problem = _column_problem(table.c[key], value)
            if problem:
                problems[f"{table.name}.{key}"] = problem
    if problems:
        raise InvalidData("some values do not fit where they are kept", problems)


def _column_problem(column, value: Any) -> str | None:
    if isinstance(value, str):
        if NUL in value:
            return "Remove the NUL character"
        length = getattr(column.type, "length", None)
        if isinstance(column.type, String) and length and len(value) > length:
            return f"At most {length} characters (this has {len(value)})"
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int) and isinstance(column.type, Integer):
        largest = MAX_BIGINT if isinstance(column.type, BigInteger) else MAX_INT
        if not -largest - 1 <= value <= largest:
            return f"A whole number between {-largest - 1} and {largest}"
    elif isinstance(value, (dict, list)) and any(NUL in s for _, s in _strings(value, "")):
        return "Remove the NUL character"
    return None
