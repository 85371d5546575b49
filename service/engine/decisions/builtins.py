"""FEEL built-in functions (DMN 1.5 10.3.4): the registry, conversion, boolean, string, number and context functions.

Each function is registered with its parameter names as the standard spells them, so it can be called with
named parameters. A bad argument gives null, never an error (10.3.2.11): a Python TypeError, ValueError or
arithmetic error inside a built-in means the arguments were not of the kinds the standard defines.
"""
from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from typing import Callable

import re2

from .temporal import (format_temporal, join, make_date,
                       months_between, parse_date, parse_datetime, parse_duration, parse_time, split, with_nano)
from .values import CTX, FeelEvaluationError, Function, Range, YMDuration, equals

BUILTINS: dict[str, Function] = {}
IMPURE = {"today", "now"}
_BAD_ARGUMENT = (TypeError, ValueError, ArithmeticError, AttributeError, IndexError, KeyError, OverflowError,
                 re2.error)


class Signature:
    """One overload: parameter names, the optional ones, and whether the last one collects the rest."""

    def __init__(self, spec: str):
        names = [p.strip() for p in spec.split(",") if p.strip()]
        self.variadic = bool(names) and names[-1].endswith("...")
        self.names = [n.rstrip("?.") for n in names]
        self.required = sum(1 for n in names if not n.endswith("?"))
        if self.variadic:
            self.required -= 1

    def fits(self, count: int) -> bool:
        return count >= self.required and (self.variadic or count <= len(self.names))

    def bind_named(self, named: dict):
        if not set(named) <= set(self.names):
            return None
        args = [named.get(n) for n in self.names]
        # a required parameter not named is null (and the function says what null gives)
        while len(args) > self.required and self.names[len(args) - 1] not in named:
            args.pop()
        return args


def builtin(name: str, *specs: str, list_args: bool = False, named_types: dict | None = None):
    """Register fn as FEEL function ``name``; ``list_args``: f(a, b, c) means f([a, b, c]); ``named_types``:
    the Python type a parameter must have when it is passed by that name (overloads told apart by name)."""
    sigs = [Signature(s) for s in specs] or [Signature("")]

    def deco(fn: Callable):
        def impl(args, named):
            if named is not None:
                if any(k in named and not isinstance(named[k], t) for k, t in (named_types or {}).items()):
                    return None
                bound = next((b for b in (s.bind_named(named) for s in sigs) if b is not None), None)
                if bound is None:
                    return None
                args = bound
            elif list_args and not (len(args) == 1 and isinstance(args[0], list)):
                args = [list(args)] if args else []
            if not any(s.fits(len(args)) for s in sigs):
                return None
            result = _apply(fn, args)
            if result is None and any(_singleton(a) for a in args):
                # "from singleton list" (DMN 1.5 10.3.2.9.4): [x] where the parameter wants x
                result = _apply(fn, [a[0] if _singleton(a) else a for a in args])
            return result
        BUILTINS[name] = Function(name, sigs[0].names, impl)
        return fn
    return deco


def _apply(fn: Callable, args: list):
    try:
        return fn(*args)
    except _BAD_ARGUMENT:
        return None


def _singleton(v) -> bool:
    return isinstance(v, list) and len(v) == 1


def is_number(v) -> bool:
    return isinstance(v, Decimal)


def as_int(v) -> int:
    if not is_number(v) or v != v.to_integral_value():
        raise ValueError("not an integer")
    return int(v)


# --------------------------------------------------------------------------- string form

def feel_string(v, nested: bool = False) -> str | None:
    """string(v): the FEEL text of a value (strings are quoted only inside lists and contexts)."""
    if v is None:
        return "null" if nested else None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return format_number(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' if nested else v
    if (text := format_temporal(v)) is not None:
        return text
    if isinstance(v, list):
        return "[" + ", ".join(feel_string(x, True) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {feel_string(x, True)}" for k, x in v.items()) + "}"
    if isinstance(v, Range):
        lo = "" if v.lo is None else feel_string(v.lo, True)
        hi = "" if v.hi is None else feel_string(v.hi, True)
        return f"{'[' if v.lo_closed else '('}{lo}..{hi}{']' if v.hi_closed else ')'}"
    return repr(v)


def format_number(d: Decimal) -> str:
    if d == 0:
        return "0"
    text = format(d.normalize(CTX), "f")
    return text


# --------------------------------------------------------------------------- conversion

@builtin("date", "from", "year, month, day")
def _date(*a):
    if len(a) == 1:
        v = a[0]
        if isinstance(v, str):
            return parse_date(v)
        if isinstance(v, dt.datetime):
            return join(split(v)[0].date(), split(v)[1])
        return v if isinstance(v, dt.date) else None
    y, m, d = (as_int(x) for x in a)
    return make_date(y, m, d)


@builtin("date and time", "from", "date, time")
def _date_and_time(*a):
    if len(a) == 1:
        v = a[0]
        if isinstance(v, str):
            return parse_datetime(v)
        if isinstance(v, dt.datetime):
            return v
        if isinstance(v, dt.date):
            base, shift, _ = split(v)
            return join(dt.datetime(base.year, base.month, base.day), shift)
        return None
    d, t = a
    if not isinstance(d, dt.date) or not isinstance(t, dt.time):
        return None
    base, shift, _ = split(d)
    day = base.date() if isinstance(base, dt.datetime) else base
    return join(dt.datetime.combine(day, t), shift, getattr(t, "nano", 0))


@builtin("time", "from", "hour, minute, second, offset?")
def _time(*a):
    if len(a) == 1:
        v = a[0]
        if isinstance(v, str):
            return parse_time(v)
        if isinstance(v, dt.datetime):
            return with_nano(v.timetz(), getattr(v, "nano", 0))
        if isinstance(v, dt.time):
            return v
        return dt.time(0, 0, 0, tzinfo=dt.timezone.utc) if isinstance(v, dt.date) else None
    h, m, s = as_int(a[0]), as_int(a[1]), a[2]
    if not is_number(s) or not (0 <= h <= 23 and 0 <= m <= 59 and 0 <= s < 60):
        return None
    tz = None
    if len(a) > 3 and a[3] is not None:
        if not isinstance(a[3], dt.timedelta):
            return None
        tz = dt.timezone(a[3])
    return dt.time(h, m, int(s), int((s % 1) * 1000000), tzinfo=tz)


@builtin("duration", "from")
def _duration(s):
    return parse_duration(s) if isinstance(s, str) else None


@builtin("years and months duration", "from, to")
def _ym_duration(a, b):
    if not isinstance(a, dt.date) or not isinstance(b, dt.date):
        return None
    return YMDuration(months_between(a, b))


@builtin("number", "from, grouping separator?, decimal separator?")
def _number(s, grouping=None, dec=None):
    if not isinstance(s, str) or grouping not in (None, " ", ",", ".") or dec not in (None, ".", ","):
        return None
    if grouping is not None and grouping == dec:
        return None
    if grouping:
        s = s.replace(grouping, "")
    if dec:
        s = s.replace(dec, ".")
    if not re2.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", s.strip()):
        return None
    return Decimal(s.strip())


@builtin("string", "from")
def _string(v):
    return feel_string(v)


# --------------------------------------------------------------------------- boolean

@builtin("not", "negand")
def _not(b):
    return (not b) if isinstance(b, bool) else None


@builtin("is defined", "value")
def _is_defined(v):
    return v is not None


@builtin("is", "value1, value2")
def _is(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and a.tzinfo == b.tzinfo and a.utcoffset() == b.utcoffset()
    return equals(a, b) is True


# --------------------------------------------------------------------------- strings

def _s(*values) -> None:
    if not all(isinstance(v, str) for v in values):
        raise TypeError("not a string")


@builtin("substring", "string, start position, length?")
def _substring(s, start, length=None):
    _s(s)
    start, n = int(start), len(s)  # a fractional position counts from its whole part
    if start == 0 or -start > n:
        return None
    i = start - 1 if start > 0 else n + start
    if length is None:
        return s[i:]
    length = int(length.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    return None if length < 0 else s[i:i + length]


@builtin("string length", "string")
def _string_length(s):
    _s(s)
    return Decimal(len(s))


@builtin("upper case", "string")
def _upper(s):
    _s(s)
    return s.upper()


@builtin("lower case", "string")
def _lower(s):
    _s(s)
    return s.lower()


@builtin("substring before", "string, match")
def _before(s, m):
    _s(s, m)
    i = s.find(m)
    return "" if i < 0 else s[:i]


@builtin("substring after", "string, match")
def _after(s, m):
    _s(s, m)
    i = s.find(m)
    return "" if i < 0 else s[i + len(m):]


@builtin("contains", "string, match")
def _contains(s, m):
    _s(s, m)
    return m in s


@builtin("starts with", "string, match")
def _starts(s, m):
    _s(s, m)
    return s.startswith(m)


@builtin("ends with", "string, match")
def _ends(s, m):
    _s(s, m)
    return s.endswith(m)


def regex(pattern: str, flags: str | None = None):
    """An XPath/XSD regular expression compiled for RE2, which runs in linear time whatever the pattern."""
    _s(pattern)
    flags = flags or ""
    if not isinstance(flags, str) or set(flags) - set("smixq"):
        raise ValueError("bad flags")
    if "q" in flags:
        pattern = re2.escape(pattern)
    elif "x" in flags:
        pattern = _strip_whitespace(pattern)
    inline = "".join(f for f in "ism" if f in flags)
    options = re2.Options()
    options.max_mem = 8 << 20
    return re2.compile(f"(?{inline}){pattern}" if inline else pattern, options)


def _strip_whitespace(pattern: str) -> str:
    """The x flag: whitespace is removed, except inside character classes."""
    out, in_class = [], False
    for c in pattern:
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        if in_class or c not in " \t\n\r":
            out.append(c)
    return "".join(out)


@builtin("matches", "input, pattern, flags?")
def _matches(s, pattern, flags=None):
    _s(s)
    return regex(pattern, flags).search(s) is not None


def _replacement(rep: str, groups: int) -> str:
    """An XPath replacement ($1, \\$, \\\\) as the RE2 module's template (\\g<1>)."""
    out, i = [], 0
    while i < len(rep):
        c = rep[i]
        if c == "\\":
            if i + 1 >= len(rep) or rep[i + 1] not in "\\$":
                raise ValueError("bad replacement")
            out.append("\\\\" if rep[i + 1] == "\\" else "$")
            i += 2
        elif c == "$":
            j = i + 1
            while j < len(rep) and rep[j].isdigit() and int(rep[i + 1:j + 1]) <= groups:
                j += 1
            if j == i + 1:
                raise ValueError("bad replacement")
            out.append(f"\\g<{rep[i + 1:j]}>")
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


@builtin("replace", "input, pattern, replacement, flags?")
def _replace(s, pattern, rep, flags=None):
    _s(s, rep)
    rx = regex(pattern, flags)
    if rx.fullmatch("") is not None:
        raise ValueError("the pattern matches the empty string")
    return rx.sub(_replacement(rep, rx.groups), s)


@builtin("split", "string, delimiter")
def _split(s, delimiter):
    _s(s, delimiter)
    rx = regex(delimiter)
    if rx.fullmatch("") is not None:
        raise ValueError("the delimiter matches the empty string")
    return rx.split(s)


@builtin("string join", "list, delimiter?")
def _string_join(lst, sep=None):
    if isinstance(lst, str):
        lst = [lst]  # a single value is the list of it (DMN 1.5 10.3.2.9.4)
    if not isinstance(lst, list) or (sep is not None and not isinstance(sep, str)):
        return None
    if not all(x is None or isinstance(x, str) for x in lst):
        return None
    return (sep or "").join(x for x in lst if x is not None)


# --------------------------------------------------------------------------- numbers

def _quantize(n, scale, rounding) -> Decimal:
    if not is_number(n):
        raise TypeError("not a number")
    scale = as_int(scale)
    if not -6111 <= scale <= 6176:
        raise ValueError("scale out of range")
    return n.quantize(Decimal(1).scaleb(-scale), rounding=rounding, context=decimal.Context(prec=100000))


@builtin("decimal", "n, scale")
def _decimal(n, scale):
    return _quantize(n, scale, decimal.ROUND_HALF_EVEN)


@builtin("floor", "n, scale?")
def _floor(n, scale=Decimal(0)):
    return _quantize(n, scale, decimal.ROUND_FLOOR)


@builtin("ceiling", "n, scale?")
def _ceiling(n, scale=Decimal(0)):
    return _quantize(n, scale, decimal.ROUND_CEILING)


@builtin("round up", "n, scale")
def _round_up(n, scale):
    return _quantize(n, scale, decimal.ROUND_UP)


@builtin("round down", "n, scale")
def _round_down(n, scale):
    return _quantize(n, scale, decimal.ROUND_DOWN)


@builtin("round half up", "n, scale")
def _round_half_up(n, scale):
    return _quantize(n, scale, decimal.ROUND_HALF_UP)


@builtin("round half down", "n, scale")
def _round_half_down(n, scale):
    return _quantize(n, scale, decimal.ROUND_HALF_DOWN)


@builtin("abs", "n")
def _abs(n):
    if isinstance(n, YMDuration):
        return YMDuration(abs(n.total_months))
    if isinstance(n, dt.timedelta):
        return abs(n)
    return abs(n) if is_number(n) else None


@builtin("modulo", "dividend, divisor")
def _modulo(a, b):
    if not is_number(a) or not is_number(b) or b == 0:
        return None
    return CTX.subtract(a, CTX.multiply(b, CTX.divide(a, b).to_integral_value(rounding=decimal.ROUND_FLOOR)))


@builtin("sqrt", "number")
def _sqrt(n):
    return CTX.sqrt(n) if is_number(n) and n >= 0 else None


@builtin("log", "number")
def _log(n):
    return CTX.ln(n) if is_number(n) and n > 0 else None


@builtin("exp", "number")
def _exp(n):
    return CTX.exp(n) if is_number(n) else None


@builtin("odd", "number")
def _odd(n):
    return as_int(n) % 2 == 1


@builtin("even", "number")
def _even(n):
    return as_int(n) % 2 == 0


# --------------------------------------------------------------------------- contexts

@builtin("get value", "m, key")
def _get_value(m, key):
    if not isinstance(m, dict):
        return None
    if isinstance(key, list):
        for k in key:
            if not isinstance(m, dict) or not isinstance(k, str):
                return None
            m = m.get(k)
        return m
    return m.get(key) if isinstance(key, str) else None


@builtin("get entries", "m")
def _get_entries(m):
    return [{"key": k, "value": v} for k, v in m.items()] if isinstance(m, dict) else None


@builtin("context", "entries")
def _context(entries):
    if isinstance(entries, dict):
        entries = [entries]
    out = {}
    for e in entries:
        if not isinstance(e, dict) or not {"key", "value"} <= set(e) or not isinstance(e["key"], str):
            return None
        if e["key"] in out:
            return None
        out[e["key"]] = e["value"]
    return out


@builtin("context put", "context, key, value", "context, keys, value", named_types={"key": str, "keys": list})
def _context_put(ctx, key, value):
    if not isinstance(ctx, dict):
        return None
    if isinstance(key, list):
        if not key or not all(isinstance(k, str) for k in key):
            return None
        if len(key) == 1:
            return _context_put(ctx, key[0], value)
        inner = ctx.get(key[0])
        if key[0] in ctx and not isinstance(inner, dict):
            return None  # a path through something that is not a context
        nested = _context_put(inner if inner is not None else {}, key[1:], value)
        return None if nested is None else {**ctx, key[0]: nested}
    if not isinstance(key, str):
        return None
    out = dict(ctx)
    out[key] = value
    return out


@builtin("context merge", "contexts", list_args=True)
def _context_merge(contexts):
    out = {}
    for c in contexts:
        if not isinstance(c, dict):
            return None
        out.update(c)
    return out


def check_size(v, limits) -> None:
    """Raise when a built list or string passes the evaluation's limits."""
    if isinstance(v, list) and len(v) > limits.max_list_items:
        raise FeelEvaluationError(f"the expression builds a list of more than {limits.max_list_items} items")
    if isinstance(v, str) and len(v) > limits.max_string_length:
        raise FeelEvaluationError(
            f"the expression builds a string of more than {limits.max_string_length} characters")
