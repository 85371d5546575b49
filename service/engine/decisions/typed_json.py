"""Typed FEEL values as JSON, unambiguously, for the REST API (issue 14, items 3-4).

The form::

    null, true/false, "text", [..], {"key": ..}      as themselves (a JSON object is a FEEL context)
    12, 0.5                                          a number, when the JSON number holds it exactly
    {"@type": "number", "value": "0.1000000000000000000000000000000001"}   any number, exactly
    {"@type": "date", "value": "2024-05-01"}
    {"@type": "time", "value": "10:30:00+01:00"}
    {"@type": "date and time", "value": "2024-05-01T10:30:00@Europe/London"}
    {"@type": "days and time duration", "value": "P2DT3H"}
    {"@type": "years and months duration", "value": "P1Y2M"}
    {"@type": "range", "value": "[1..10)"}
    {"@type": "function", "value": "name(a, b)"}     output only; a function cannot be sent

A context key "@type" of the caller's own is escaped by sending ``{"@type": "context", "value": {..}}``.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from .builtins import feel_string
from .interp import literal_range
from .temporal import (format_temporal, parse_date, parse_datetime,
                       parse_duration, parse_time)
from .values import Function, Range, type_name

_PARSE = {"date": parse_date, "time": parse_time, "date and time": parse_datetime,
          "days and time duration": parse_duration, "years and months duration": parse_duration,
          "range": literal_range}


class TypedJsonError(ValueError):
    """A typed JSON value that does not read as the type it names."""


def to_json(v) -> Any:
    """A FEEL value as typed JSON (see the module's documentation)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, Decimal):
        return _number(v)
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        out = {k: to_json(x) for k, x in v.items()}
        return {"@type": "context", "value": out} if "@type" in v else out
    return {"@type": type_name(v), "value": _text(v)}


def _number(d: Decimal):
    if d.is_finite() and d == d.to_integral_value() and abs(d) < 2 ** 53:
        return int(d)
    f = float(d)
    if Decimal(repr(f)) == d:
        return f
    return {"@type": "number", "value": feel_string(d)}


def _text(v) -> str:
    if (text := format_temporal(v)) is not None:
        return text
    if isinstance(v, (Range, Function)):
        return feel_string(v) if isinstance(v, Range) else repr(v)[len("function "):]
    return str(v)


def from_json(v) -> Any:
    """Typed JSON as a FEEL value; raises TypedJsonError for a typed value that does not read."""
    if v is None or isinstance(v, (bool, str, Decimal)):
        return v
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, list):
        return [from_json(x) for x in v]
    if isinstance(v, dict):
        if "@type" not in v:
            return {str(k): from_json(x) for k, x in v.items()}
        return _typed(v)
    raise TypedJsonError(f"not a JSON value: {v!r}")


def _typed(v: dict):
    kind, value = v.get("@type"), v.get("value")
    if kind == "context" and isinstance(value, dict):
        return {str(k): from_json(x) for k, x in value.items()}
    if kind == "number" and isinstance(value, (str, int, float)):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise TypedJsonError(f"not a number: {value!r}") from None
    parse = _PARSE.get(kind)
    if parse is None or not isinstance(value, str):
        raise TypedJsonError(f"unknown typed value {v!r}: @type must be one of number, context, "
                             f"{', '.join(_PARSE)} with a string value")
    out = parse(value)
    if out is None or (kind != "range" and type_name(out) != kind):
        raise TypedJsonError(f"{value!r} is not a {kind}")
    return out
