"""FEEL operators (DMN 1.5 10.3.2): arithmetic, comparison, three-valued logic, paths and unary tests."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from .builtins import check_size
from .temporal import (duration_div, duration_mul, parse_date, parse_datetime, parse_duration, parse_time,
                       temporal_add, temporal_property, temporal_sub)
from .values import CTX, FeelEvaluationError, Function, Range, YMDuration, compare, equals, to_feel


def _limits():
    from .interp import state  # the evaluation's limits live with the interpreter's state
    return state().limits


def _iso_align(a, b):
    """An ISO string from case data meets a date, time or duration as that value (an extension for case data)."""
    if isinstance(a, str) and not isinstance(b, str):
        parse = _PARSERS.get(type(b))
        if parse is not None:
            return parse(a), b
    elif isinstance(b, str) and not isinstance(a, str):
        parse = _PARSERS.get(type(a))
        if parse is not None:
            return a, parse(b)
    return a, b


_PARSERS = {dt.date: parse_date, dt.datetime: parse_datetime, dt.time: parse_time,
            dt.timedelta: parse_duration, YMDuration: parse_duration}


def _check_number(v):
    if isinstance(v, Decimal) and v.is_finite() and v.adjusted() > _limits().max_number_digits:
        raise FeelEvaluationError(f"the expression builds a number of more than "
                                  f"{_limits().max_number_digits} digits")
    return v


def add(a, b):
    if a is None or b is None:
        return None
    if isinstance(a, Decimal) and isinstance(b, Decimal) and not isinstance(a, bool):
        return _check_number(CTX.add(a, b))
    if isinstance(a, str) and isinstance(b, str):
        out = a + b
        check_size(out, _limits())
        return out
    return temporal_add(a, b)


def sub(a, b):
    if a is None or b is None:
        return None
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return _check_number(CTX.subtract(a, b))
    return temporal_sub(a, b)


def mul(a, b):
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return _check_number(CTX.multiply(a, b))
    if isinstance(b, (dt.timedelta, YMDuration)) and isinstance(a, Decimal):
        a, b = b, a
    if isinstance(a, (dt.timedelta, YMDuration)) and isinstance(b, Decimal):
        return duration_mul(a, b)
    return None


def div(a, b):
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return None if b == 0 else _check_number(CTX.divide(a, b))
    if isinstance(a, (dt.timedelta, YMDuration)) and b is not None:
        return duration_div(a, b)
    return None


def power(a, b):
    if not isinstance(a, Decimal) or not isinstance(b, Decimal):
        return None
    if abs(b) > 999999999 or (a.adjusted() + 1) * abs(b) > 10 * _limits().max_number_digits:
        raise FeelEvaluationError(f"the expression builds a number of more than "
                                  f"{_limits().max_number_digits} digits")
    return _check_number(CTX.power(a, b))


def neg(a):
    if isinstance(a, Decimal):
        return -a
    if isinstance(a, dt.timedelta):
        return -a
    if isinstance(a, YMDuration):
        return YMDuration(-a.total_months)
    return None


ARITHMETIC = {"+": add, "-": sub, "*": mul, "/": div, "**": power}


def cmp_op(op: str, a, b):
    if op in ("=", "!="):
        a, b = _iso_align(a, b)
        e = equals(a, b)
        return e if op == "=" or e is None else not e
    c = compare(*_iso_align(a, b))
    if c is None:
        return None
    return {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[op]


def and3(a, b):
    """FEEL's three-valued ``and``."""
    if a is False or b is False:
        return False
    return True if a is True and b is True else None


def or3(a, b):
    """FEEL's three-valued ``or``."""
    if a is True or b is True:
        return True
    return False if a is False and b is False else None


def get_member(v, name: str):
    """``v.name``: a context entry, the same path over a list, or a property of a temporal value or range."""
    if isinstance(v, dict):
        x = v.get(name)
        return to_feel(x) if isinstance(x, (int, float, list, dict)) and not isinstance(x, bool) else x
    if isinstance(v, list):
        return [get_member(x, name) for x in v]
    return temporal_property(v, name)


def ut_range(op: str, v):
    """A DMN 1.5 unary comparison (``< 5``) as the range value it stands for."""
    if v is None and op not in ("=", "!="):
        return None
    return {"<": lambda: Range(None, False, v, False), "<=": lambda: Range(None, False, v, True),
            ">": lambda: Range(v, False, None, False), ">=": lambda: Range(v, True, None, False),
            "=": lambda: Range(v, True, v, True)}.get(op, lambda: None)()


def test_one(value, op: str | None, target, uses_input: bool = False):
    """Whether ``value`` satisfies one positive unary test (a comparison, or an expression's value)."""
    if op is not None:
        if op == "!=":
            return cmp_op("!=", value, target)
        return cmp_op(op, value, target)
    if uses_input and isinstance(target, bool):
        return target
    if isinstance(target, Range):
        return target.contains(_iso_align(value, target.lo if target.lo is not None else target.hi)[0])
    if isinstance(target, list):
        if isinstance(value, list):
            e = equals(value, target)
            if e:
                return True
        return _list_test(value, target)
    if isinstance(target, Function):
        return target.call([value]) is True
    return cmp_op("=", value, target)


def _list_test(value, target: list):
    found = None
    for t in target:
        r = t.contains(value) if isinstance(t, Range) else cmp_op("=", value, t)
        if r is True:
            return True
        if r is False:
            found = False
    return found if target else False
