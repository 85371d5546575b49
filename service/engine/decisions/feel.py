"""A FEEL (DMN 1.3) parser and interpreter.

Expressions and unary tests are parsed with a Lark grammar into a small tuple
AST, then compiled into Python closures.  Nothing is ever handed to Python's
``eval``: the only operations a FEEL expression can perform are the ones this
module implements, so it is sandboxed by construction.

Values inside the interpreter:

=====================  ===========================================
FEEL type              Python value
=====================  ===========================================
number                 ``decimal.Decimal`` (34 digits, half-even)
string                 ``str``
boolean                ``bool``
null                   ``None``
date                   ``datetime.date``
date and time          ``datetime.datetime``
time                   ``datetime.time``
days and time duration ``datetime.timedelta``
years and months dur.  :class:`YMDuration`
list                   ``list``
context                ``dict``
range                  :class:`Range`
=====================  ===========================================

Names containing spaces (``Approval Status``, ``date and time``) cannot be
told apart from keywords by a context-free lexer, so before parsing the
multi-word names the caller declares (decision and input-data names) and the
multi-word built-in function names are replaced by placeholder identifiers.
"""
from __future__ import annotations

import calendar
import datetime as dt
import decimal
import re
from decimal import Decimal
from typing import Any, Callable, Iterable

from lark import Lark, Transformer, v_args
from lark.exceptions import LarkError, VisitError

from service.engine import clock

CTX = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN,
                      traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])


class FeelSyntaxError(Exception):
    """A FEEL text that does not parse (or calls an unknown function)."""

    def __init__(self, text: str, message: str):
        self.text = text
        self.message = message
        super().__init__(f"{message} in FEEL {text!r}")


# --------------------------------------------------------------------------- values

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
    """A FEEL range such as ``[1..5)``; an endpoint of None is unbounded."""

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

    def __repr__(self):
        return f"{'[' if self.lo_closed else '('}{self.lo!r}..{self.hi!r}{']' if self.hi_closed else ')'}"


def feel_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, Decimal):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dt.datetime):
        return "dateTime"
    if isinstance(v, dt.date):
        return "date"
    if isinstance(v, dt.time):
        return "time"
    if isinstance(v, dt.timedelta):
        return "dayTimeDuration"
    if isinstance(v, YMDuration):
        return "yearMonthDuration"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "context"
    if isinstance(v, Range):
        return "range"
    return "other"


def to_feel(v):
    """Convert a JSON-ish Python value from case data into a FEEL value."""
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
    return v  # dicts are converted lazily on access; temporal values as they are


def to_python(v):
    """Convert a FEEL value back to plain Python (numbers: int when integral, else float)."""
    if isinstance(v, Decimal):
        if v == v.to_integral_value():
            return int(v)
        return float(v)
    if isinstance(v, list):
        return [to_python(x) for x in v]
    if isinstance(v, dict):
        return {k: to_python(to_feel(x)) for k, x in v.items()}
    return v


def duration_iso(td: dt.timedelta) -> str:
    total = td.days * 86400 + td.seconds
    micro = td.microseconds
    sign = ""
    if total < 0:
        sign = "-"
        total = -total
        if micro:
            total -= 1
            micro = 1_000_000 - micro
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    out = f"{sign}P"
    if days:
        out += f"{days}D"
    if hours or minutes or seconds or micro or not days:
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if seconds or micro or not (hours or minutes):
            out += f"{seconds}.{micro:06d}".rstrip("0").rstrip(".") + "S" if micro else f"{seconds}S"
    return out


def to_json_value(v):
    """JSON-safe form of a (Python or FEEL) value: temporal values as ISO strings."""
    if isinstance(v, Decimal):
        return to_python(v)
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return duration_iso(v)
    if isinstance(v, YMDuration):
        return v.isoformat()
    if isinstance(v, Range):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_json_value(x) for k, x in v.items()}
    return v


def feel_string(v) -> str | None:
    """FEEL ``string()``."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        p = to_python(v)
        return str(p) if isinstance(p, int) else format(v.normalize(), "f")
    if isinstance(v, str):
        return v
    return str(to_json_value(v))


# --------------------------------------------------------------------------- temporal parsing

_DURATION_RE = re.compile(
    r"^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(s: str):
    m = _DURATION_RE.match(s.strip()) if isinstance(s, str) else None
    if not m or s.strip() in ("P", "-P") or s.strip().endswith("T"):
        return None
    neg, y, mo, w, d, h, mi, sec = m.groups()
    if (y or mo) and (w or d or h or mi or sec):
        return None  # FEEL keeps the two kinds apart
    sign = -1 if neg else 1
    if y or mo:
        return YMDuration(sign * (int(y or 0) * 12 + int(mo or 0)))
    td = dt.timedelta(weeks=int(w or 0), days=int(d or 0), hours=int(h or 0), minutes=int(mi or 0),
                      seconds=float(sec or 0))
    return -td if neg else td


def parse_date(s: str):
    try:
        return dt.date.fromisoformat(s.strip())
    except (ValueError, AttributeError):
        return None


def parse_datetime(s: str):
    s = s.strip() if isinstance(s, str) else s
    try:
        if "T" not in s:
            d = dt.date.fromisoformat(s)
            return dt.datetime(d.year, d.month, d.day)
        return dt.datetime.fromisoformat(s.split("@", 1)[0])  # a FEEL "@Zone/Id" suffix is dropped
    except (ValueError, AttributeError, TypeError):
        return None


def parse_time(s: str):
    try:
        return dt.time.fromisoformat(s.strip())
    except (ValueError, AttributeError):
        return None


def coerce_string_to(s: str, like):
    """Read an ISO string as the same temporal kind as ``like`` (None if it isn't one)."""
    if isinstance(like, dt.datetime):
        return parse_datetime(s)
    if isinstance(like, dt.date):
        return parse_date(s)
    if isinstance(like, dt.time):
        return parse_time(s)
    if isinstance(like, (dt.timedelta, YMDuration)):
        d = parse_duration(s)
        return d if type(d) is type(like) else None
    return None


# --------------------------------------------------------------------------- comparison

_TEMPORAL = (dt.date, dt.time, dt.timedelta, YMDuration)


def _align(a, b):
    if isinstance(a, str) and isinstance(b, _TEMPORAL):
        a = coerce_string_to(a, b)
    elif isinstance(b, str) and isinstance(a, _TEMPORAL):
        b = coerce_string_to(b, a)
    return a, b


def compare(a, b):
    """-1/0/1, or None when the values are null or not comparable (FEEL: null)."""
    if a is None or b is None:
        return None
    a, b = _align(a, b)
    ta, tb = feel_type(a), feel_type(b)
    if ta != tb or ta in ("null", "boolean", "list", "context", "range", "other"):
        return None
    try:
        return -1 if a < b else (1 if a > b else 0)
    except TypeError:  # e.g. naive vs aware date-times
        return None


def equals(a, b):
    """FEEL ``=``: null = null is true, null = x is false, different types give null."""
    if a is None or b is None:
        return a is None and b is None
    a, b = _align(a, b)
    ta, tb = feel_type(a), feel_type(b)
    if ta != tb:
        return None
    if ta == "list":
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            r = equals(x, y)
            if r is not True:
                return r
        return True
    if ta == "context":
        if set(a) != set(b):
            return False
        for k in a:
            r = equals(to_feel(a[k]), to_feel(b[k]))
            if r is not True:
                return r
        return True
    try:
        return a == b
    except TypeError:
        return None


def test_value(value, expected):
    """Does an input ``value`` satisfy a unary-test expression whose value is ``expected``?"""
    if isinstance(expected, Range):
        return expected.contains(value)
    r = equals(value, expected)
    if r is True:
        return True
    if isinstance(expected, list):
        seen_null = False
        for item in expected:
            t = test_value(value, item)
            if t is True:
                return True
            if t is None:
                seen_null = True
        return None if seen_null else False
    return r


# --------------------------------------------------------------------------- arithmetic

def _add_months(d, months):
    y, m = divmod(d.month - 1 + months, 12)
    y += d.year
    day = min(d.day, calendar.monthrange(y, m + 1)[1])
    return d.replace(year=y, month=m + 1, day=day)


def _date_as_datetime(d):
    return dt.datetime(d.year, d.month, d.day) if not isinstance(d, dt.datetime) else d


def add(a, b):
    if a is None or b is None:
        return None
    a, b = _align(a, b)
    ta, tb = feel_type(a), feel_type(b)
    try:
        if ta == tb == "number":
            return CTX.add(a, b)
        if ta == tb == "string":
            return a + b
        if ta == tb == "dayTimeDuration":
            return a + b
        if ta == tb == "yearMonthDuration":
            return YMDuration(a.total_months + b.total_months)
        if tb in ("date", "dateTime", "time") and ta in ("dayTimeDuration", "yearMonthDuration"):
            a, b, ta, tb = b, a, tb, ta
        if ta in ("date", "dateTime") and tb == "yearMonthDuration":
            return _add_months(a, b.total_months)
        if ta == "dateTime" and tb == "dayTimeDuration":
            return a + b
        if ta == "date" and tb == "dayTimeDuration":
            r = _date_as_datetime(a) + b
            return r.date() if r.time() == dt.time(0) else r
        if ta == "time" and tb == "dayTimeDuration":
            full = dt.datetime.combine(dt.date(2000, 1, 1), a) + b
            return full.timetz() if a.tzinfo else full.time()
    except (ArithmeticError, OverflowError, ValueError):
        return None
    return None


def neg(a):
    if isinstance(a, Decimal):
        return CTX.minus(a)
    if isinstance(a, dt.timedelta):
        return -a
    if isinstance(a, YMDuration):
        return YMDuration(-a.total_months)
    return None


def sub(a, b):
    if a is None or b is None:
        return None
    a, b = _align(a, b)
    ta, tb = feel_type(a), feel_type(b)
    try:
        if ta == tb == "number":
            return CTX.subtract(a, b)
        if ta == tb == "date":
            return a - b
        if ta in ("date", "dateTime") and tb in ("date", "dateTime"):
            return _date_as_datetime(a) - _date_as_datetime(b)
        if ta == tb == "time":
            return dt.datetime.combine(dt.date(2000, 1, 1), a) - dt.datetime.combine(dt.date(2000, 1, 1), b)
        if tb in ("dayTimeDuration", "yearMonthDuration") and ta != "number":
            return add(a, neg(b))
    except (ArithmeticError, OverflowError, ValueError, TypeError):
        return None
    return None


def mul(a, b):
    if a is None or b is None:
        return None
    ta, tb = feel_type(a), feel_type(b)
    try:
        if ta == tb == "number":
            return CTX.multiply(a, b)
        if ta == "number" and tb in ("dayTimeDuration", "yearMonthDuration"):
            a, b, ta, tb = b, a, tb, ta
        if ta == "dayTimeDuration" and tb == "number":
            return dt.timedelta(seconds=float(CTX.multiply(Decimal(a.total_seconds()), b)))
        if ta == "yearMonthDuration" and tb == "number":
            return YMDuration(int(CTX.multiply(Decimal(a.total_months), b).to_integral_value()))
    except (ArithmeticError, OverflowError, ValueError):
        return None
    return None


def div(a, b):
    if a is None or b is None:
        return None
    ta, tb = feel_type(a), feel_type(b)
    try:
        if ta == tb == "number":
            return CTX.divide(a, b)
        if ta == "dayTimeDuration" and tb == "number":
            return dt.timedelta(seconds=float(CTX.divide(Decimal(a.total_seconds()), b)))
        if ta == "yearMonthDuration" and tb == "number":
            return YMDuration(int(CTX.divide(Decimal(a.total_months), b).to_integral_value()))
        if ta == tb == "dayTimeDuration":
            return CTX.divide(Decimal(a.total_seconds()), Decimal(b.total_seconds()))
        if ta == tb == "yearMonthDuration":
            return CTX.divide(Decimal(a.total_months), Decimal(b.total_months))
    except (ArithmeticError, OverflowError, ValueError, ZeroDivisionError):
        return None
    return None


def power(a, b):
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        try:
            return CTX.power(a, b)
        except ArithmeticError:
            return None
    return None


def get_member(v, name):
    """``v.name``: a context entry, or a property of a temporal value; null otherwise."""
    if isinstance(v, dict):
        return to_feel(v.get(name))
    if isinstance(v, list):  # path on a list maps over it
        return [get_member(to_feel(x), name) for x in v]
    props = {}
    if isinstance(v, dt.date):
        props = {"year": v.year, "month": v.month, "day": v.day, "weekday": v.isoweekday()}
        if isinstance(v, dt.datetime):
            props.update(hour=v.hour, minute=v.minute, second=v.second)
    elif isinstance(v, dt.time):
        props = {"hour": v.hour, "minute": v.minute, "second": v.second}
    elif isinstance(v, dt.timedelta):
        total = int(v.total_seconds())
        sign = -1 if total < 0 else 1
        t = abs(total)
        props = {"days": sign * (t // 86400), "hours": sign * (t % 86400 // 3600),
                 "minutes": sign * (t % 3600 // 60), "seconds": sign * (t % 60)}
    elif isinstance(v, YMDuration):
        props = {"years": v.years, "months": v.months}
    elif isinstance(v, Range):
        props = {"start": v.lo, "end": v.hi, "start included": v.lo_closed, "end included": v.hi_closed}
        return props.get(name)
    r = props.get(name)
    return Decimal(r) if isinstance(r, int) else r


# --------------------------------------------------------------------------- built-in functions

def _num(x):
    return x if isinstance(x, Decimal) else None


def _numeric_list(args):
    items = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
    return items


def _fn_date(*a):
    if len(a) == 1:
        x = a[0]
        if isinstance(x, str):
            return parse_date(x)
        if isinstance(x, dt.datetime):
            return x.date()
        if isinstance(x, dt.date):
            return x
        return None
    if len(a) == 3 and all(isinstance(x, Decimal) for x in a):
        try:
            return dt.date(int(a[0]), int(a[1]), int(a[2]))
        except ValueError:
            return None
    return None


def _fn_date_and_time(*a):
    if len(a) == 1:
        x = a[0]
        if isinstance(x, str):
            return parse_datetime(x)
        if isinstance(x, dt.date):
            return _date_as_datetime(x)
        return None
    if len(a) == 2 and isinstance(a[0], dt.date) and isinstance(a[1], dt.time):
        return dt.datetime.combine(a[0] if not isinstance(a[0], dt.datetime) else a[0].date(), a[1])
    return None


def _fn_time(*a):
    if len(a) == 1:
        x = a[0]
        if isinstance(x, str):
            return parse_time(x)
        if isinstance(x, dt.datetime):
            return x.timetz()
        if isinstance(x, dt.time):
            return x
        return None
    if len(a) in (3, 4) and all(isinstance(x, Decimal) for x in a[:3]):
        try:
            sec = a[2]
            return dt.time(int(a[0]), int(a[1]), int(sec), int((sec - int(sec)) * 1_000_000))
        except ValueError:
            return None
    return None


def _fn_duration(x):
    return parse_duration(x) if isinstance(x, str) else None


def _fn_ym_duration(a, b):
    if not (isinstance(a, dt.date) and isinstance(b, dt.date)):
        return None
    months = (b.year - a.year) * 12 + (b.month - a.month)
    # a whole month only counts once the day (and time) of the month is reached
    a_rest = (a.day, a.hour, a.minute, a.second) if isinstance(a, dt.datetime) else (a.day, 0, 0, 0)
    b_rest = (b.day, b.hour, b.minute, b.second) if isinstance(b, dt.datetime) else (b.day, 0, 0, 0)
    if months > 0 and b_rest < a_rest:
        months -= 1
    elif months < 0 and b_rest > a_rest:
        months += 1
    return YMDuration(months)


def _fn_number(s, grouping=None, dec=None):
    if isinstance(s, Decimal):
        return s
    if not isinstance(s, str):
        return None
    t = s
    if isinstance(grouping, str):
        t = t.replace(grouping, "")
    if isinstance(dec, str):
        t = t.replace(dec, ".")
    try:
        return Decimal(t.strip())
    except decimal.InvalidOperation:
        return None


def _fn_not(b):
    return (not b) if isinstance(b, bool) else None


def _fn_agg(fn):
    def inner(*args):
        items = _numeric_list(args)
        if not items:
            return None
        if not all(isinstance(x, Decimal) for x in items):
            if fn in (min, max) and len({feel_type(x) for x in items}) == 1 and items[0] is not None:
                try:
                    return fn(items)
                except TypeError:
                    return None
            return None
        return fn(items)
    return inner


def _fn_sum(*args):
    items = _numeric_list(args)
    if not items or not all(isinstance(x, Decimal) for x in items):
        return None
    total = Decimal(0)
    for x in items:
        total = CTX.add(total, x)
    return total


def _fn_mean(*args):
    s = _fn_sum(*args)
    return None if s is None else CTX.divide(s, Decimal(len(_numeric_list(args))))


def _fn_count(lst):
    return Decimal(len(lst)) if isinstance(lst, list) else None


def _str2(fn):
    def inner(a, b):
        if isinstance(a, str) and isinstance(b, str):
            return fn(a, b)
        return None
    return inner


def _str1(fn):
    def inner(a):
        return fn(a) if isinstance(a, str) else None
    return inner


def _fn_substring(s, start, length=None):
    if not isinstance(s, str) or not isinstance(start, Decimal):
        return None
    i = int(start)
    i = i - 1 if i > 0 else len(s) + i
    if length is None:
        return s[i:]
    if not isinstance(length, Decimal):
        return None
    return s[i:i + int(length)]


def _fn_flatten(lst):
    if not isinstance(lst, list):
        return None
    out = []
    for x in lst:
        if isinstance(x, list):
            out.extend(_fn_flatten(x))
        else:
            out.append(x)
    return out


def _fn_list_contains(lst, v):
    if not isinstance(lst, list):
        return None
    return any(equals(x, v) is True for x in lst)


def _fn_append(lst, *items):
    return lst + list(items) if isinstance(lst, list) else None


def _fn_concatenate(*lists):
    if not all(isinstance(x, list) for x in lists):
        return None
    return [y for x in lists for y in x]


def _fn_distinct(lst):
    if not isinstance(lst, list):
        return None
    out = []
    for x in lst:
        if not any(equals(x, y) is True for y in out):
            out.append(x)
    return out


def _fn_decimal(n, scale):
    if not (isinstance(n, Decimal) and isinstance(scale, Decimal)):
        return None
    return n.quantize(Decimal(1).scaleb(-int(scale)), rounding=decimal.ROUND_HALF_EVEN, context=CTX)


def _fn_modulo(a, b):
    if not (isinstance(a, Decimal) and isinstance(b, Decimal)) or b == 0:
        return None
    return CTX.subtract(a, CTX.multiply(b, CTX.divide_int(a, b) if (a >= 0) == (b > 0) else
                                        (CTX.divide_int(a, b) - (0 if CTX.remainder(a, b) == 0 else 1))))


def _fn_string_join(lst, sep=None):
    if not isinstance(lst, list) or not all(isinstance(x, str) or x is None for x in lst):
        return None
    return (sep or "").join(x for x in lst if x is not None)


def _fn_today():
    return clock.now().astimezone(clock.LONDON).date()  # the service's one clock, in London


def _fn_now():
    return clock.now()


def _fn_is_defined(x):
    return x is not None


BUILTINS: dict[str, Callable] = {
    "date": _fn_date,
    "date and time": _fn_date_and_time,
    "time": _fn_time,
    "duration": _fn_duration,
    "years and months duration": _fn_ym_duration,
    "string": feel_string,
    "number": _fn_number,
    "not": _fn_not,
    "abs": lambda x: (abs(x) if isinstance(x, Decimal) else
                      (abs(x) if isinstance(x, dt.timedelta) else
                       (YMDuration(abs(x.total_months)) if isinstance(x, YMDuration) else None))),
    "floor": lambda x: x.to_integral_value(rounding=decimal.ROUND_FLOOR) if isinstance(x, Decimal) else None,
    "ceiling": lambda x: x.to_integral_value(rounding=decimal.ROUND_CEILING) if isinstance(x, Decimal) else None,
    "decimal": _fn_decimal,
    "modulo": _fn_modulo,
    "min": _fn_agg(min),
    "max": _fn_agg(max),
    "sum": _fn_sum,
    "mean": _fn_mean,
    "count": _fn_count,
    "contains": _str2(lambda a, b: b in a),
    "starts with": _str2(lambda a, b: a.startswith(b)),
    "ends with": _str2(lambda a, b: a.endswith(b)),
    "upper case": _str1(str.upper),
    "lower case": _str1(str.lower),
    "string length": _str1(lambda s: Decimal(len(s))),
    "substring": _fn_substring,
    "string join": _fn_string_join,
    "matches": _str2(lambda s, p: re.search(p, s) is not None),
    "flatten": _fn_flatten,
    "list contains": _fn_list_contains,
    "append": _fn_append,
    "concatenate": _fn_concatenate,
    "distinct values": _fn_distinct,
    "reverse": lambda lst: list(reversed(lst)) if isinstance(lst, list) else None,
    "index of": lambda lst, v: ([Decimal(i + 1) for i, x in enumerate(lst) if equals(x, v) is True]
                                if isinstance(lst, list) else None),
    "all": lambda *a: _all_any(a, True),
    "any": lambda *a: _all_any(a, False),
    "today": _fn_today,
    "now": _fn_now,
    "is defined": _fn_is_defined,
}
IMPURE = {"today", "now"}


def _all_any(args, is_all):
    items = _numeric_list(args)
    if not all(isinstance(x, bool) or x is None for x in items):
        return None
    if is_all:
        if any(x is False for x in items):
            return False
        return None if any(x is None for x in items) else True
    if any(x is True for x in items):
        return True
    return None if any(x is None for x in items) else False


MULTIWORD_FUNCTIONS = sorted((n for n in BUILTINS if " " in n), key=len, reverse=True)

# --------------------------------------------------------------------------- grammar

GRAMMAR = r"""
start_expr: expr
start_tests: positive_unary_tests

positive_unary_tests: positive_unary_test ("," positive_unary_test)*
?positive_unary_test: CMP endpoint           -> ut_cmp
                    | interval
                    | expr                   -> ut_expr
interval: "[" endpoint ".." endpoint "]"   -> closed_closed
        | "[" endpoint ".." endpoint ")"   -> closed_open
        | "(" endpoint ".." endpoint "]"   -> open_closed
        | "(" endpoint ".." endpoint ")"   -> open_open
?endpoint: additive

?expr: "if" expr "then" expr "else" expr         -> if_expr
     | "for" NAME "in" expr "return" expr        -> for_expr
     | "some" NAME "in" expr "satisfies" expr    -> some_
     | "every" NAME "in" expr "satisfies" expr   -> every_
     | disjunction

?disjunction: conjunction
            | disjunction "or" conjunction      -> or_
?conjunction: comparison
            | conjunction "and" comparison      -> and_
?comparison: additive
           | additive CMP additive                         -> compare
           | additive "between" additive "and" additive    -> between
           | additive "in" interval                        -> in_
           | additive "in" "(" positive_unary_tests ")"    -> in_
           | additive "in" additive                        -> in_
?additive: multiplicative
         | additive "+" multiplicative    -> add
         | additive "-" multiplicative    -> sub
?multiplicative: exponent
               | multiplicative "*" exponent  -> mul
               | multiplicative "/" exponent  -> div
?exponent: negation
         | exponent "**" negation            -> pow
?negation: postfix
         | "-" negation                      -> neg
?postfix: primary
        | postfix "." NAME                   -> path
        | postfix "[" expr "]"               -> filter
        | NAME "(" [expr ("," expr)*] ")"    -> call
        | "not" "(" [expr ("," expr)*] ")"   -> not_call
?primary: NUMBER                             -> number
        | STRING                             -> string
        | "true"                             -> true
        | "false"                            -> false
        | "null"                             -> null
        | "?"                                -> input_ref
        | "@" STRING                         -> at_literal
        | NAME                               -> name
        | "(" expr ")"
        | "[" [expr ("," expr)*] "]"         -> list_
        | "{" [ctx_entry ("," ctx_entry)*] "}" -> context
ctx_entry: (NAME | STRING) ":" expr

CMP: "<=" | ">=" | "!=" | "<" | ">" | "="
NUMBER: /\d+(\.\d+)?|\.\d+/
STRING: /"(?:[^"\\]|\\.)*"/
NAME: /(?!\d)[\w]+/
COMMENT: /\/\/[^\n]*/ | /\/\*(.|\n)*?\*\//
%import common.WS
%ignore WS
%ignore COMMENT
"""

_parser = Lark(GRAMMAR, start=["start_expr", "start_tests"], parser="lalr",
               propagate_positions=False)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'"}


def _unescape(s: str) -> str:
    body = s[1:-1]

    def rep(m):
        e = m.group(1)
        if e.startswith("u"):
            return chr(int(e[1:], 16))
        return _ESCAPES.get(e, e)
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", rep, body)


@v_args(inline=True)
class _ToAst(Transformer):
    def __init__(self, names):
        super().__init__()
        self.names = names  # placeholder -> real name

    def _n(self, tok):
        s = str(tok)
        return self.names.get(s, s)

    def start_expr(self, e):
        return e

    def start_tests(self, t):
        return t

    def positive_unary_tests(self, *tests):
        return ("ut_list", list(tests))

    def ut_cmp(self, op, e):
        return ("ut_cmp", str(op), e)

    def ut_expr(self, e):
        return ("ut_expr", e)

    def closed_closed(self, a, b):
        return ("ut_range", True, a, b, True)

    def closed_open(self, a, b):
        return ("ut_range", True, a, b, False)

    def open_closed(self, a, b):
        return ("ut_range", False, a, b, True)

    def open_open(self, a, b):
        return ("ut_range", False, a, b, False)

    def if_expr(self, c, t, e):
        return ("if", c, t, e)

    def for_expr(self, var, it, body):
        return ("for", self._n(var), it, body)

    def some_(self, var, it, cond):
        return ("quant", "some", self._n(var), it, cond)

    def every_(self, var, it, cond):
        return ("quant", "every", self._n(var), it, cond)

    def or_(self, a, b):
        return ("or", a, b)

    def and_(self, a, b):
        return ("and", a, b)

    def compare(self, a, op, b):
        return ("cmp", str(op), a, b)

    def between(self, v, lo, hi):
        return ("between", v, lo, hi)

    def in_(self, v, rhs):
        if isinstance(rhs, tuple) and rhs[0] == "ut_range":
            rhs = ("ut_list", [rhs])
        elif not (isinstance(rhs, tuple) and rhs[0] == "ut_list"):
            rhs = ("ut_list", [("ut_expr", rhs)])
        return ("in", v, rhs)

    def add(self, a, b):
        return ("bin", "+", a, b)

    def sub(self, a, b):
        return ("bin", "-", a, b)

    def mul(self, a, b):
        return ("bin", "*", a, b)

    def div(self, a, b):
        return ("bin", "/", a, b)

    def pow(self, a, b):
        return ("bin", "**", a, b)

    def neg(self, a):
        if a[0] == "num":
            return ("num", -a[1])
        return ("neg", a)

    def path(self, e, name):
        return ("path", e, self._n(name))

    def filter(self, e, cond):
        return ("filter", e, cond)

    def call(self, name, *args):
        return ("call", self._n(name), [a for a in args if a is not None])

    def not_call(self, *args):
        return ("call", "not", [a for a in args if a is not None])

    def number(self, t):
        return ("num", Decimal(str(t)))

    def string(self, t):
        return ("str", _unescape(str(t)))

    def true(self):
        return ("const", True)

    def false(self):
        return ("const", False)

    def null(self):
        return ("const", None)

    def input_ref(self):
        return ("q",)

    def at_literal(self, s):
        return ("at", _unescape(str(s)))

    def name(self, t):
        return ("name", self._n(t))

    def list_(self, *items):
        return ("list", [i for i in items if i is not None])

    def context(self, *entries):
        return ("ctx", [e for e in entries if e is not None])

    def ctx_entry(self, k, v):
        key = _unescape(str(k)) if str(k).startswith('"') else self._n(k)
        return (key, v)


# --------------------------------------------------------------------------- name placeholders

_SIMPLE_NAME = re.compile(r"^(?!\d)\w+$")


def _protect_names(text: str, names: Iterable[str]) -> tuple[str, dict[str, str]]:
    """Replace multi-word names outside string literals with placeholder identifiers."""
    specials = sorted({n for n in names if n and not _SIMPLE_NAME.match(n)}, key=len, reverse=True)
    mapping: dict[str, str] = {}
    parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
    for i in range(0, len(parts), 2):  # even indexes are outside strings
        seg = parts[i]
        for fn in MULTIWORD_FUNCTIONS:
            if fn.split()[0] in seg:
                ph = "__f_" + fn.replace(" ", "_")
                pattern = r"(?<![\w.])" + r"\s+".join(map(re.escape, fn.split())) + r"(?=\s*\()"
                seg, n = re.subn(pattern, ph, seg)
                if n:
                    mapping[ph] = fn
        for j, name in enumerate(specials):
            if name in seg:
                ph = f"__n{j}_"
                seg, n = re.subn(r"(?<![\w])" + re.escape(name) + r"(?!\w)", ph, seg)
                if n:
                    mapping[ph] = name
        parts[i] = seg
    return "".join(parts), mapping


_CLOSERS_AFTER = re.compile(r"\s*(?:$|[,)}]|(?:and|or|then|else|return|satisfies)\b)")
_OPENERS_BEFORE = re.compile(r"(?:^|[,(]|\bin)\s*$")


def _normalize_brackets(text: str) -> str:
    """Rewrite the ISO-style interval brackets ``]a..b[`` to ``(a..b)``.

    An opening ``]`` can only stand where a test or operand starts (text start, after ``,``,
    ``(`` or ``in``); a closing ``[`` can only stand where one ends (text end, before ``,``,
    ``)`` or a keyword).  A list or filter ``[`` is always followed by an expression or ``]``,
    and a list's ``]`` is always preceded by one, so the rewrite never touches them."""
    if "[" not in text and "]" not in text:
        return text
    out = []
    in_str = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_str:
            if ch == "\\":
                out.append(text[i:i + 2])
                i += 2
                continue
            if ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "]" and _OPENERS_BEFORE.search("".join(out)) and ".." in text[i:]:
            ch = "("
        elif ch == "[" and _CLOSERS_AFTER.match(text, i + 1) and ".." in "".join(out):
            ch = ")"
        out.append(ch)
        i += 1
    return "".join(out)


MAX_DEPTH = 150


def _depth(tree) -> int:
    """Depth of a parse tree, without recursion (deep trees would overflow the evaluator)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        for c in getattr(node, "children", ()):
            if hasattr(c, "children"):
                stack.append((c, d + 1))
    return deepest


def _parse(text: str, start: str, names: Iterable[str]):
    protected, mapping = _protect_names(text, names)
    protected = _normalize_brackets(protected)
    try:
        tree = _parser.parse(protected, start=start)
        if _depth(tree) > MAX_DEPTH:
            raise FeelSyntaxError(text, "expression is nested too deeply")
        return _ToAst(mapping).transform(tree)
    except RecursionError:
        raise FeelSyntaxError(text, "expression is nested too deeply") from None
    except VisitError as e:
        if isinstance(e.orig_exc, RecursionError):
            raise FeelSyntaxError(text, "expression is nested too deeply") from None
        raise FeelSyntaxError(text, f"invalid FEEL: {e.orig_exc}") from None
    except LarkError as e:
        msg = str(e).strip().splitlines()[0]
        raise FeelSyntaxError(text, f"syntax error: {msg}") from None


# --------------------------------------------------------------------------- analysis

def walk(ast):
    if isinstance(ast, tuple):
        yield ast
        for x in ast[1:]:
            yield from walk(x)
    elif isinstance(ast, list):
        for x in ast:
            yield from walk(x)


def uses_input(ast) -> bool:
    return any(n[0] == "q" for n in walk(ast) if n)


def is_constant(ast) -> bool:
    for n in walk(ast):
        if not n:
            continue
        if n[0] in ("name", "q", "for", "quant", "filter"):
            return False
        if n[0] == "call" and n[1] in IMPURE:
            return False
    return True


def _check_calls(ast, text):
    for n in walk(ast):
        if n and n[0] == "call" and n[1] not in BUILTINS:
            raise FeelSyntaxError(text, f"unknown function {n[1]!r}")


# --------------------------------------------------------------------------- compilation

class Scope:
    """Name resolution for one evaluation: local bindings, then ``?``, then the context."""

    __slots__ = ("data", "input", "locals")

    def __init__(self, data: dict, input=None, locals=None):
        self.data = data
        self.input = input
        self.locals = locals

    def lookup(self, name):
        if self.locals and name in self.locals:
            return self.locals[name]
        return to_feel(self.data.get(name))

    def child(self, bindings):
        merged = dict(self.locals or {})
        merged.update(bindings)
        return Scope(self.data, self.input, merged)

    def with_input(self, value):
        return Scope(self.data, value, self.locals)


def _and(a, b):
    if a is False or b is False:
        return False
    if a is True and b is True:
        return True
    return None


def _or(a, b):
    if a is True or b is True:
        return True
    if a is False and b is False:
        return False
    return None


_BIN = {"+": add, "-": sub, "*": mul, "/": div, "**": power}


def cmp_op(op, a, b):
    if op == "=":
        return equals(a, b)
    if op == "!=":
        r = equals(a, b)
        return None if r is None else not r
    c = compare(a, b)
    if c is None:
        return None
    return {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[op]


def compile_ast(ast) -> Callable[[Scope], Any]:
    kind = ast[0]
    if kind == "num":
        v = ast[1]
        return lambda s: v
    if kind in ("str", "const"):
        v = ast[1]
        return lambda s: v
    if kind == "at":
        raw = ast[1]
        v = parse_duration(raw) if raw.lstrip("-").startswith("P") else (
            parse_datetime(raw) if "T" in raw else (parse_date(raw) or parse_time(raw)))
        return lambda s: v
    if kind == "name":
        name = ast[1]
        return lambda s: s.lookup(name)
    if kind == "q":
        return lambda s: s.input
    if kind == "path":
        base, name = compile_ast(ast[1]), ast[2]
        return lambda s: get_member(base(s), name)
    if kind == "neg":
        e = compile_ast(ast[1])
        return lambda s: neg(e(s))
    if kind == "bin":
        fn, a, b = _BIN[ast[1]], compile_ast(ast[2]), compile_ast(ast[3])
        return lambda s: fn(a(s), b(s))
    if kind == "cmp":
        op, a, b = ast[1], compile_ast(ast[2]), compile_ast(ast[3])
        return lambda s: cmp_op(op, a(s), b(s))
    if kind == "and":
        a, b = compile_ast(ast[1]), compile_ast(ast[2])

        def f_and(s):
            x = a(s)
            if x is False:
                return False
            return _and(x if isinstance(x, bool) else None, _as_bool(b(s)))
        return f_and
    if kind == "or":
        a, b = compile_ast(ast[1]), compile_ast(ast[2])

        def f_or(s):
            x = a(s)
            if x is True:
                return True
            return _or(x if isinstance(x, bool) else None, _as_bool(b(s)))
        return f_or
    if kind == "if":
        c, t, e = compile_ast(ast[1]), compile_ast(ast[2]), compile_ast(ast[3])
        return lambda s: t(s) if c(s) is True else e(s)
    if kind == "between":
        v, lo, hi = compile_ast(ast[1]), compile_ast(ast[2]), compile_ast(ast[3])

        def f_between(s):
            x = v(s)
            return _and(cmp_op(">=", x, lo(s)), cmp_op("<=", x, hi(s)))
        return f_between
    if kind == "in":
        v, tests = compile_ast(ast[1]), compile_tests(ast[2])
        return lambda s: tests(v(s), s)
    if kind == "list":
        items = [compile_ast(i) for i in ast[1]]
        return lambda s: [i(s) for i in items]
    if kind == "ctx":
        entries = [(k, compile_ast(v)) for k, v in ast[1]]

        def f_ctx(s):
            out = {}
            for k, fn in entries:  # later entries may refer to earlier ones
                out[k] = fn(s.child(out) if out else s)
            return out
        return f_ctx
    if kind == "call":
        fn = BUILTINS[ast[1]]
        args = [compile_ast(a) for a in ast[2]]

        def f_call(s):
            try:
                return fn(*[a(s) for a in args])
            except (TypeError, ValueError, ArithmeticError, OverflowError):
                return None
        return f_call
    if kind == "filter":
        base, cond_ast = compile_ast(ast[1]), ast[2]
        cond = compile_ast(cond_ast)

        def f_filter(s):
            lst = base(s)
            if lst is None:
                return None
            if not isinstance(lst, list):
                lst = [lst]
            if cond_ast[0] == "num":
                i = int(cond_ast[1])
                if i > 0 and i <= len(lst):
                    return to_feel(lst[i - 1])
                if i < 0 and -i <= len(lst):
                    return to_feel(lst[i])
                return None
            out = []
            for item in lst:
                item = to_feel(item)
                binding = dict(item) if isinstance(item, dict) else {}
                binding["item"] = item
                r = cond(s.child(binding))
                if isinstance(r, Decimal) and cond_ast[0] != "num":
                    idx = int(r)
                    return to_feel(lst[idx - 1]) if 0 < idx <= len(lst) else None
                if r is True:
                    out.append(item)
            return out
        return f_filter
    if kind == "for":
        var, it, body = ast[1], compile_ast(ast[2]), compile_ast(ast[3])

        def f_for(s):
            lst = it(s)
            if not isinstance(lst, list):
                return None
            return [body(s.child({var: to_feel(x)})) for x in lst]
        return f_for
    if kind == "quant":
        q, var, it, cond = ast[1], ast[2], compile_ast(ast[3]), compile_ast(ast[4])

        def f_quant(s):
            lst = it(s)
            if not isinstance(lst, list):
                return None
            results = [cond(s.child({var: to_feel(x)})) for x in lst]
            return _all_any(results, q == "every")
        return f_quant
    raise ValueError(f"unknown FEEL node {kind}")  # pragma: no cover


def _as_bool(v):
    return v if isinstance(v, bool) else None


def compile_tests(ast) -> Callable[[Any, Scope], Any]:
    """Compile a ``ut_list`` (or ``ut_not``/``ut_any``) into ``fn(value, scope) -> True/False/None``."""
    kind = ast[0]
    if kind == "ut_any":
        return lambda v, s: True
    if kind == "ut_not":
        inner = compile_tests(ast[1])

        def f_not(v, s):
            r = inner(v, s)
            return None if r is None else not r
        return f_not
    if kind == "ut_list":
        tests = [_compile_test(t) for t in ast[1]]
        if len(tests) == 1:
            return tests[0]

        def f_any(v, s):
            seen_null = False
            for t in tests:
                r = t(v, s)
                if r is True:
                    return True
                if r is None:
                    seen_null = True
            return None if seen_null else False
        return f_any
    raise ValueError(kind)  # pragma: no cover


def _compile_test(t):
    kind = t[0]
    if kind == "ut_cmp":
        op, e = t[1], compile_ast(t[2])
        return lambda v, s: cmp_op(op, v, e(s))
    if kind == "ut_range":
        lo_closed, lo, hi, hi_closed = t[1], compile_ast(t[2]), compile_ast(t[3]), t[4]
        return lambda v, s: Range(lo(s), lo_closed, hi(s), hi_closed).contains(v)
    if kind == "ut_expr":
        e_ast = t[1]
        e = compile_ast(e_ast)
        if uses_input(e_ast):
            return lambda v, s: e(s.with_input(v)) is True
        return lambda v, s: test_value(v, e(s))
    raise ValueError(kind)  # pragma: no cover


# --------------------------------------------------------------------------- public helpers

class Expression:
    """A compiled FEEL expression."""

    __slots__ = ("text", "ast", "_fn")

    def __init__(self, text: str, names: Iterable[str] = ()):
        self.text = text
        if not text or not text.strip():
            raise FeelSyntaxError(text or "", "empty expression")
        self.ast = _parse(text, "start_expr", names)
        _check_calls(self.ast, text)
        try:
            self._fn = compile_ast(self.ast)
        except RecursionError:
            raise FeelSyntaxError(text, "expression is nested too deeply") from None

    def evaluate(self, context: dict | Scope | None = None, input=None):
        scope = context if isinstance(context, Scope) else Scope(context or {}, to_feel(input))
        return self._fn(scope)

    @property
    def is_constant(self) -> bool:
        return is_constant(self.ast)


_NOT_RE = re.compile(r"^not\s*\(")


def _split_negation(text: str) -> str | None:
    """If ``text`` is ``not( ... )`` as a whole, return the inside."""
    m = _NOT_RE.match(text)
    if not m:
        return None
    depth, in_str, i = 0, False, m.end() - 1
    while i < len(text):
        ch = text[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[m.end():i] if text[i + 1:].strip() == "" else None
        i += 1
    return None


class UnaryTests:
    """A compiled input entry (DMN unary tests)."""

    __slots__ = ("text", "ast", "_fn")

    def __init__(self, text: str | None, names: Iterable[str] = ()):
        self.text = (text or "").strip()
        t = self.text
        if t in ("", "-"):
            self.ast = ("ut_any",)
        else:
            inner = _split_negation(t)
            if inner is not None:
                self.ast = ("ut_not", _parse(inner, "start_tests", names))
            else:
                self.ast = _parse(t, "start_tests", names)
        _check_calls(self.ast, t)
        try:
            self._fn = compile_tests(self.ast)
        except RecursionError:
            raise FeelSyntaxError(t, "expression is nested too deeply") from None

    @property
    def is_any(self) -> bool:
        return self.ast[0] == "ut_any"

    def matches(self, value, context: dict | Scope | None = None):
        """True / False / None (null): only True means the rule's cell matches."""
        scope = context if isinstance(context, Scope) else Scope(context or {})
        return self._fn(to_feel(value), scope)

    def static_intervals(self):
        """The tests as a list of (lo, lo_closed, hi, hi_closed) over constants, or None when
        that is not decidable from the text (names, ``?``, negation, functions of the input)."""
        if self.ast[0] == "ut_any":
            return [(None, True, None, True)]
        if self.ast[0] != "ut_list":
            return None
        out = []
        for t in self.ast[1]:
            if t[0] == "ut_cmp":
                if not is_constant(t[2]):
                    return None
                v = compile_ast(t[2])(Scope({}))
                if v is None or isinstance(v, (list, dict)):
                    return None
                op = t[1]
                if op == "=":
                    out.append((v, True, v, True))
                elif op == "!=":
                    out += [(None, True, v, False), (v, False, None, True)]
                elif op in ("<", "<="):
                    out.append((None, True, v, op == "<="))
                else:
                    out.append((v, op == ">=", None, True))
            elif t[0] == "ut_range":
                if not (is_constant(t[2]) and is_constant(t[3])):
                    return None
                lo, hi = compile_ast(t[2])(Scope({})), compile_ast(t[3])(Scope({}))
                if lo is None or hi is None:
                    return None
                out.append((lo, t[1], hi, t[4]))
            else:
                if uses_input(t[1]) or not is_constant(t[1]):
                    return None
                v = compile_ast(t[1])(Scope({}))
                if isinstance(v, list):
                    if any(isinstance(x, (list, dict, Range)) or x is None for x in v):
                        return None
                    out += [(x, True, x, True) for x in v]
                elif isinstance(v, Range):
                    out.append((v.lo, v.lo_closed, v.hi, v.hi_closed))
                elif v is None or isinstance(v, dict):
                    return None
                else:
                    out.append((v, True, v, True))
        return out


def intervals_overlap(a, b) -> bool:
    """Do two (lo, lo_closed, hi, hi_closed) intervals share a value?  Values of
    different types never overlap; incomparable values are treated as not overlapping."""
    lo_a, lc_a, hi_a, hc_a = a
    lo_b, lc_b, hi_b, hc_b = b
    types = {feel_type(x) for x in (lo_a, hi_a, lo_b, hi_b) if x is not None}
    if len(types) > 1:
        return False
    if types == {"boolean"}:
        return lo_a == lo_b or lo_a is None or lo_b is None
    # max of lows vs min of highs
    lo, lc = lo_a, lc_a
    if lo is None or (lo_b is not None and (compare(lo_b, lo) or 0) > 0):
        lo, lc = lo_b, lc_b
    elif lo_b is not None and compare(lo_b, lo) == 0:
        lc = lc_a and lc_b
    hi, hc = hi_a, hc_a
    if hi is None or (hi_b is not None and (compare(hi_b, hi) or 0) < 0):
        hi, hc = hi_b, hc_b
    elif hi_b is not None and compare(hi_b, hi) == 0:
        hc = hc_a and hc_b
    if lo is None or hi is None:
        return True
    c = compare(lo, hi)
    if c is None:
        return False
    return c < 0 or (c == 0 and lc and hc)
