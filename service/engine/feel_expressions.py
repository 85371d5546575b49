"""Diagram expressions in FEEL, as Camunda 8 writes them: ``=score > 10``, ``=date(review_date) + duration("P7D")``.

An expression that starts with ``=`` is FEEL, read and evaluated by the service's own FEEL engine (the one
decision tables use, :mod:`.decisions.feel`), on the case data, with the service's calendar functions
(``working_days``, ``end_of_working_day``, ``next_weekday``, ``days_between``, ``add_days``, ``add_months``)
beside FEEL's built-ins. Values come back as case data is kept (JSON: numbers, text, dates and durations as ISO
text). :mod:`.expressions` sends every ``=`` expression here, whatever reads it (a condition, a timer, an
assignee, a due date, a mapping).
"""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any

from . import calendar
from .decisions import feel
from .decisions.interp import Scope, walk
from .decisions.values import Function
from .expressions import FUNCTIONS, ExpressionError


def is_feel(source: str | None) -> bool:
    return bool(source) and source.lstrip().startswith("=")


def _service_function(name: str) -> Function:
    python = FUNCTIONS[name]

    def call(args, named):
        values = [feel.to_python(a) for a in args or []]
        try:
            return feel.to_feel(python(*values, **{k: feel.to_python(v) for k, v in (named or {}).items()}))
        except ExpressionError:
            raise
        except (TypeError, ValueError) as error:
            raise ExpressionError(f"{name}: {error}") from None
    return Function(name, None, call)


#: The service's functions FEEL expressions may call besides FEEL's own (FEEL has today() and now()).
SERVICE_FUNCTIONS = {name: _service_function(name) for name in (
    "working_days", "end_of_working_day", "next_weekday", "days_between", "add_days", "add_months")}


def _cycle(args, named):
    """Camunda 8's ``cycle(interval)`` and ``cycle(repetitions, interval)``: an ISO 8601 cycle for a timer."""
    values = list(args or []) or [named.get(k) for k in ("repetitions", "interval") if k in (named or {})]
    if len(values) == 1:
        repetitions, interval = None, values[0]
    elif len(values) == 2:
        repetitions, interval = values
    else:
        raise ExpressionError("cycle takes an interval, or a number of repetitions and an interval")
    text = feel.to_json_value(interval)
    if not isinstance(text, str) or not text.startswith("P"):
        raise ExpressionError(f"cycle needs a duration such as duration(\"P3M\"), got {text!r}")
    count = "" if repetitions is None else str(feel.to_python(repetitions))
    return f"R{count}/{text}"


SERVICE_FUNCTIONS["cycle"] = Function("cycle", None, _cycle)
_FUNCTIONS_SCOPE = Scope(dict(SERVICE_FUNCTIONS))
assert calendar  # the functions above read the service's calendar (bank holidays) through expressions.FUNCTIONS


def _text(source: str) -> str:
    return source.lstrip()[1:].strip()


@lru_cache(maxsize=4096)
def compile_feel(source: str) -> feel.Expression:
    """Vet an ``=`` expression once; raise :class:`ExpressionError` saying what is wrong."""
    text = _text(source)
    if not text:
        raise ExpressionError("the expression is empty (nothing after '=')")
    try:
        return feel.Expression(text, SERVICE_FUNCTIONS)
    except feel.FeelSyntaxError as error:
        raise ExpressionError(f"'{source.strip()}' is not a valid FEEL expression: {error.message}") from None


def names_read(source: str) -> set[str]:
    """The names of case data the expression reads."""
    return {node[1] for node in walk(compile_feel(source).ast)
            if node[0] == "name" and node[1] not in SERVICE_FUNCTIONS and node[1] not in feel.BUILTINS}


def evaluate(source: str, data: dict[str, Any]) -> Any:
    """The expression's value on the case data, as case data keeps it; an error names what is missing."""
    expression = compile_feel(source)
    try:
        value = expression.evaluate(Scope(dict(data), parent=_FUNCTIONS_SCOPE))
    except ExpressionError:
        raise
    except feel.FeelEvaluationError as error:
        raise ExpressionError(f"expression '{source.strip()}' failed: {error}") from None
    if value is None:
        missing = sorted(name for name in names_read(source) if name not in data)
        if missing:
            raise ExpressionError(f"'{missing[0]}' is not in the case data (expression '{source.strip()}')")
    return _plain(value)


def _plain(value: Any) -> Any:
    """A FEEL value as case data keeps it: date-times in ISO 8601 with their UTC offset (FEEL's own text
    would name the zone, ``...@Europe/London``, which nothing else reads), durations as ISO text."""
    if isinstance(value, datetime):
        return datetime.isoformat(value)
    if isinstance(value, date):
        return date.isoformat(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return feel.to_json_value(value)
