"""FEEL values and types: the Python value of each FEEL type, equality, ordering and `instance of`.

=====================  ===========================================
FEEL type              Python value
=====================  ===========================================
number                 ``decimal.Decimal`` (34 digits, half-even)
string                 ``str``
boolean                ``bool``
null                   ``None``
date                   ``datetime.date``
date and time          ``datetime.datetime`` (tzinfo: none, offset or zone id)
time                   ``datetime.time`` (tzinfo: none, offset or zone id)
days and time duration ``datetime.timedelta``
years and months dur.  :class:`YMDuration`
list                   ``list``
context                ``dict``
range                  :class:`Range`
function               :class:`Function`
=====================  ===========================================
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from decimal import Decimal
from typing import Callable

CTX = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN, Emax=6144, Emin=-6143,
                      traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])


class FeelEvaluationError(Exception):
    """An evaluation that must stop (a limit reached, an error the standard makes fatal)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on one FEEL evaluation, so a hostile or careless expression cannot exhaust the service.

    The defaults leave room for any real decision; the service may pass its own from configuration.
    """
    max_iterations: int = 1_000_000      # items visited by for / some / every / filters and calls, summed
    max_list_items: int = 100_000        # length of any list built
    max_string_length: int = 1_000_000   # characters in any string built
    max_number_digits: int = 1_000       # digits before the point of any number computed
    time_budget_seconds: float = 2.0     # CPU time per evaluation (limits.Deadline)


DEFAULT_LIMITS = Limits()


class YMDuration:
    """A FEEL years-and-months duration, held as a signed number of months."""

    __slots__ = ("total_months",)

    def __init__(self, total_months: int):
        self.total_months = int(total_months)

    @property
    def years(self) -> int:
        return int(self.total_months / 12)

    @property
    def months(self) -> int:
        return self.total_months - self.years * 12

    def isoformat(self) -> str:
        m = abs(self.total_months)
        sign = "-" if self.total_months < 0 else ""
        y, mo = divmod(m, 12)
        if y and mo:
            return f"{sign}P{y}Y{mo}M"
        if y:
            return f"{sign}P{y}Y"
        return f"{sign}P{mo}M"

    def __eq__(self, other):
        return isinstance(other, YMDuration) and other.total_months == self.total_months

    def __lt__(self, other):
        return self.total_months < other.total_months

    def __hash__(self):
        return hash(("ymd", self.total_months))

    def __repr__(self):
        return f"YMDuration({self.isoformat()})"


class Range:
    """A FEEL range such as ``[1..5)``; an endpoint of None is unbounded (``< 5`` is ``(null..5)``)."""

    __slots__ = ("lo", "lo_closed", "hi", "hi_closed")

    def __init__(self, lo, lo_closed, hi, hi_closed):
        self.lo, self.lo_closed, self.hi, self.hi_closed = lo, lo_closed, hi, hi_closed

    def contains(self, v):
        if v is None:
            return None
        if self.lo is not None:
            c = compare(v, self.lo)
            if c is None:
                return None
            if c < 0 or (c == 0 and not self.lo_closed):
                return False
        if self.hi is not None:
            c = compare(v, self.hi)
            if c is None:
                return None
            if c > 0 or (c == 0 and not self.hi_closed):
                return False
        return True

    def __eq__(self, other):
        return (isinstance(other, Range) and self.lo_closed == other.lo_closed and self.hi_closed == other.hi_closed
                and equals(self.lo, other.lo) is True and equals(self.hi, other.hi) is True)

    __hash__ = None

    def __repr__(self):
        return f"{'[' if self.lo_closed else '('}{self.lo!r}..{self.hi!r}{']' if self.hi_closed else ')'}"


class Function:
    """A FEEL function value: a built-in, a function literal, a business knowledge model or a decision service.

    ``call(args, named)`` receives positional FEEL values or a dict of named ones; ``params`` are the
    parameter names (None for a variadic built-in) and ``param_types`` their declared types (or None).
    """

    __slots__ = ("name", "params", "param_types", "impl", "result_type")

    def __init__(self, name: str, params: list[str] | None, impl: Callable, param_types=None, result_type=None):
        self.name, self.params, self.impl = name, params, impl
        self.param_types = param_types or [None] * len(params or [])
        self.result_type = result_type

    def call(self, args: list | None = None, named: dict | None = None):
        return self.impl(args, named)

    def __call__(self, *args, **named):
        """Call from Python: ``BUILTINS["today"]()``, ``fn(1, 2)`` or ``fn(**{"start position": 2})``."""
        return self.impl(None, named) if named else self.impl(list(args), None)

    def __repr__(self):
        return f"function {self.name}({', '.join(self.params or ['...'])})"


# --------------------------------------------------------------------------- type names

def type_name(v) -> str:
    """The FEEL type name of a value, as `instance of` and error messages spell it."""
    if v is None:
        return "Null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, Decimal):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dt.datetime):
        return "date and time"
    if isinstance(v, dt.date):
        return "date"
    if isinstance(v, dt.time):
        return "time"
    if isinstance(v, dt.timedelta):
        return "days and time duration"
    if isinstance(v, YMDuration):
        return "years and months duration"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "context"
    if isinstance(v, Range):
        return "range"
    if isinstance(v, Function):
        return "function"
    return "Any"


def feel_type(v) -> str:
    """The short (XSD-like) type word of a value, used in the engine's messages."""
    return {"Null": "null", "date and time": "dateTime", "days and time duration": "dayTimeDuration",
            "years and months duration": "yearMonthDuration"}.get(type_name(v), type_name(v))


# --------------------------------------------------------------------------- equality and order

def _align(a, b):
    """A date meets a date and time as midnight UTC of that day (DMN 1.5 10.3.2.3.6)."""
    if isinstance(a, dt.datetime) and not isinstance(b, dt.datetime) and isinstance(b, dt.date):
        return a, dt.datetime(b.year, b.month, b.day, tzinfo=dt.timezone.utc if a.tzinfo else None)
    if isinstance(b, dt.datetime) and not isinstance(a, dt.datetime) and isinstance(a, dt.date):
        return dt.datetime(a.year, a.month, a.day, tzinfo=dt.timezone.utc if b.tzinfo else None), b
    return a, b


def _same_kind(a, b) -> bool:
    ta, tb = type_name(a), type_name(b)
    return ta == tb or {ta, tb} == {"date", "date and time"}


def _time_key(t: dt.time):
    """A time as seconds since midnight, UTC when it has an offset (times with a zone id use today's)."""
    secs = (t.hour * 3600 + t.minute * 60 + t.second + Decimal(t.microsecond) / 1000000
            + Decimal(getattr(t, "nano", 0)) / 1000000000)
    if t.tzinfo is None:
        return secs, False
    off = t.utcoffset()
    if off is None:
        off = dt.datetime.combine(dt.date.today(), t).utcoffset() or dt.timedelta(0)
    return secs - Decimal(off.total_seconds()), True


def compare(a, b):
    """-1/0/1 for FEEL-comparable values, None when the types do not compare."""
    ta, tb = type(a), type(b)
    if ta is tb and (ta is Decimal or ta is str):  # the common case first: tables compare numbers and strings
        return (a > b) - (a < b)
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    if not _same_kind(a, b) or isinstance(a, (list, dict, Function, Range)):
        return None
    if isinstance(a, dt.date) and (_is_far(a) or _is_far(b)):
        return _far_compare(a, b)
    a, b = _align(a, b)
    if isinstance(a, dt.time):
        (ka, za), (kb, zb) = _time_key(a), _time_key(b)
        if za != zb:
            return None
        a, b = ka, kb
    elif isinstance(a, dt.datetime) and (a.tzinfo is None) != (b.tzinfo is None):
        return None  # a local date and time has no place on the time line of one with a zone
    try:
        return (a > b) - (a < b)
    except (TypeError, decimal.InvalidOperation):
        return None


def _is_far(v) -> bool:
    """A date or date and time of temporal.FarDate/FarDateTime (beyond Python's years, or nanoseconds)."""
    return isinstance(v, dt.date) and bool(getattr(v, "shift", 0) or getattr(v, "nano", 0))


def _far_compare(a, b):
    from .temporal import order_key  # dates beyond Python's years compare by their place on the time line
    if type_name(a) != type_name(b) or (isinstance(a, dt.datetime) and (a.tzinfo is None) != (b.tzinfo is None)):
        return None
    ka, kb = order_key(a), order_key(b)
    return (ka > kb) - (ka < kb)


def equals(a, b):
    """FEEL ``=``: null equals only null, other types differ as null, lists and contexts element-wise."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else None
    if not _same_kind(a, b):
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return False
        return _all_equal(zip(a, b))
    if isinstance(a, dict):
        if set(a) != set(b):
            return False
        return _all_equal((a[k], b[k]) for k in a)
    if isinstance(a, Range):
        return a == b
    if isinstance(a, Function):
        return a is b
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            return False
        return compare(a, b) == 0
    if isinstance(a, dt.time):
        return compare(a, b) == 0 if (a.tzinfo is None) == (b.tzinfo is None) else False
    if isinstance(a, dt.date) and type_name(a) == type_name(b):
        return compare(a, b) == 0
    a, b = _align(a, b)
    return a == b


def _all_equal(pairs) -> bool | None:
    for x, y in pairs:
        e = equals(x, y)
        if e is not True:
            return e
    return True


def to_feel(v):
    """A JSON-ish Python value (case data) as a FEEL value: ints and floats become Decimal."""
    if v is None or isinstance(v, (bool, str, Decimal)):
        return v
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return None
        return Decimal(repr(v))
    if isinstance(v, (list, tuple)):
        return [to_feel(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_feel(x) for k, x in v.items()}
    return v


def to_python(v):
    """A FEEL value back as plain Python (numbers: int when integral, else float)."""
    if isinstance(v, Decimal):
        if v.is_finite() and v == v.to_integral_value():
            return int(v)
        return float(v)
    if isinstance(v, list):
        return [to_python(x) for x in v]
    if isinstance(v, dict):
        return {k: to_python(to_feel(x)) for k, x in v.items()}
    return v
