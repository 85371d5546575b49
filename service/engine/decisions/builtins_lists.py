"""FEEL built-in functions on lists, ranges and dates (DMN 1.5 10.3.4.4, 10.3.4.6 to 10.3.4.12)."""
from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections import Counter
from decimal import Decimal

from service.engine import clock

from .builtins import as_int, builtin, is_number
from .temporal import join
from .values import CTX, Function, Range, compare, equals

# --------------------------------------------------------------------------- lists


def _list(v) -> list:
    if not isinstance(v, list):
        raise TypeError("not a list")
    return v


def _index(lst, i) -> int:
    """A 1-based (or negative, from the end) FEEL position as a Python index."""
    n = as_int(i)
    if n == 0 or abs(n) > len(lst):
        raise IndexError("no such position")
    return n - 1 if n > 0 else len(lst) + n


@builtin("list contains", "list, element")
def _list_contains(lst, v):
    return any(equals(x, v) is True for x in _list(lst))


@builtin("count", "list")
def _count(lst):
    return Decimal(len(_list(lst)))


def _extreme(lst, sign):
    if not lst:
        return None
    best = lst[0]
    for x in lst[1:]:
        c = compare(x, best)
        if c is None:
            return None
        if c == sign:
            best = x
    return best if len(lst) > 1 or compare(best, best) is not None else None


@builtin("min", "list", list_args=True)
def _min(lst):
    return _extreme(lst, -1)


@builtin("max", "list", list_args=True)
def _max(lst):
    return _extreme(lst, 1)


def _numbers(lst) -> list:
    if not all(is_number(x) for x in lst):
        raise TypeError("not numbers")
    return lst


@builtin("sum", "list", list_args=True)
def _sum(lst):
    total = Decimal(0)
    for x in _numbers(lst):
        total = CTX.add(total, x)
    return total if lst else None


@builtin("mean", "list", list_args=True)
def _mean(lst):
    return CTX.divide(_sum(lst), len(lst)) if _numbers(lst) else None


@builtin("product", "list", list_args=True)
def _product(lst):
    total = Decimal(1)
    for x in _numbers(lst):
        total = CTX.multiply(total, x)
    return total if lst else None


@builtin("median", "list", list_args=True)
def _median(lst):
    s = sorted(_numbers(lst))
    if not s:
        return None
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else CTX.divide(CTX.add(s[mid - 1], s[mid]), 2)


@builtin("stddev", "list", list_args=True)
def _stddev(lst):
    xs = _numbers(lst)
    if len(xs) < 2:
        return None
    mean = CTX.divide(sum(xs, Decimal(0)), len(xs))
    var = CTX.divide(sum((CTX.power(x - mean, 2) for x in xs), Decimal(0)), len(xs) - 1)
    return CTX.sqrt(var)


@builtin("mode", "list", list_args=True)
def _mode(lst):
    counts = Counter(_numbers(lst))
    if not counts:
        return []
    top = max(counts.values())
    return sorted(x for x, c in counts.items() if c == top)


@builtin("all", "list", list_args=True)
def _all(lst):
    if any(x is False for x in lst):
        return False
    return True if all(x is True for x in lst) else None


@builtin("any", "list", list_args=True)
def _any(lst):
    if any(x is True for x in lst):
        return True
    return False if all(x is False for x in lst) else None


@builtin("sublist", "list, start position, length?")
def _sublist(lst, start, length=None):
    i = _index(_list(lst), start)
    if length is None:
        return lst[i:]
    n = as_int(length)
    if n < 0 or i + n > len(lst):
        return None
    return lst[i:i + n]


@builtin("append", "list, item...")
def _append(lst, *items):
    return _list(lst) + list(items)


@builtin("concatenate", "list...", list_args=False)
def _concatenate(*lists):
    out = []
    for x in lists:
        out += _list(x)
    return out


@builtin("insert before", "list, position, newItem")
def _insert_before(lst, pos, item):
    i = _index(_list(lst), pos)
    return lst[:i] + [item] + lst[i:]


@builtin("remove", "list, position")
def _remove(lst, pos):
    i = _index(_list(lst), pos)
    return lst[:i] + lst[i + 1:]


@builtin("reverse", "list")
def _reverse(lst):
    return list(reversed(_list(lst)))


@builtin("index of", "list, match")
def _index_of(lst, v):
    return [Decimal(i) for i, x in enumerate(_list(lst), 1) if equals(x, v) is True]


def _distinct(items) -> list:
    out = []
    for x in items:
        if not any(equals(x, y) is True for y in out):
            out.append(x)
    return out


@builtin("union", "list...")
def _union(*lists):
    return _distinct(x for lst in lists for x in _list(lst))


@builtin("distinct values", "list")
def _distinct_values(lst):
    return _distinct(_list(lst))


@builtin("flatten", "list")
def _flatten(lst):
    out = []

    def walk(xs):
        for x in xs:
            if isinstance(x, list):
                walk(x)
            else:
                out.append(x)
    walk(_list(lst))
    return out


@builtin("list replace", "list, position, newItem", "list, match, newItem")
def _list_replace(lst, where, item):
    if lst is None:
        return None
    lst = lst if isinstance(lst, list) else [lst]
    if isinstance(where, Function):
        if where.params is not None and len(where.params) != 2:
            return None
        matches = [where.call([x, item]) for x in lst]
        if any(m is not None and not isinstance(m, bool) for m in matches):
            return None  # the match function must give booleans
        return [item if m is True else x for x, m in zip(lst, matches)]
    i = _index(lst, Decimal(int(where)) if isinstance(where, Decimal) else where)  # a fraction truncates
    return lst[:i] + [item] + lst[i + 1:]


@builtin("sort", "list, precedes?")
def _sort(lst, precedes=None):
    _list(lst)
    if precedes is None:
        if any(compare(lst[0], x) is None for x in lst):
            return None
        return sorted(lst, key=functools.cmp_to_key(compare))
    if not isinstance(precedes, Function):
        return None

    def order(a, b):
        if precedes.call([a, b]) is True:
            return -1
        return 1 if precedes.call([b, a]) is True else 0
    return sorted(lst, key=functools.cmp_to_key(order))


# --------------------------------------------------------------------------- ranges (10.3.4.9)

def _endpoints(x):
    """(start, start included, end, end included) of a range or a point."""
    if isinstance(x, Range):
        return x.lo, x.lo_closed, x.hi, x.hi_closed
    if x is None:
        raise TypeError("null")
    return x, True, x, True


def _cmp(a, b, a_low: bool, b_low: bool) -> int:
    """Compare endpoints where None is the unbounded end (-inf for a start, +inf for an end)."""
    if a is None or b is None:
        ka = 0 if a is not None else (-1 if a_low else 1)
        kb = 0 if b is not None else (-1 if b_low else 1)
        if ka == kb:
            return 0 if a is None and b is None else (ka - kb)
        return (ka > kb) - (ka < kb)
    c = compare(a, b)
    if c is None:
        raise TypeError("not comparable")
    return c


def _range_fn(name: str, params: str, rule):
    @builtin(name, params, "point1, point2", "point, range", "range, point", "range1, range2")
    def fn(a, b):
        return rule(_endpoints(a), _endpoints(b))
    return fn


def _before(a, b):
    c = _cmp(a[2], b[0], False, True)
    return c < 0 or (c == 0 and not (a[3] and b[1]))


def _meets(a, b):
    return a[3] and b[1] and _cmp(a[2], b[0], False, True) == 0


def _overlaps(a, b):
    c1, c2 = _cmp(a[2], b[0], False, True), _cmp(a[0], b[2], True, False)
    return (c1 > 0 or (c1 == 0 and a[3] and b[1])) and (c2 < 0 or (c2 == 0 and a[1] and b[3]))


def _overlaps_before(a, b):
    c1, c2, c3 = _cmp(a[0], b[0], True, True), _cmp(a[2], b[0], False, True), _cmp(a[2], b[2], False, False)
    return ((c1 < 0 or (c1 == 0 and a[1] and not b[1])) and (c2 > 0 or (c2 == 0 and a[3] and b[1]))
            and (c3 < 0 or (c3 == 0 and (not a[3] or b[3]))))


def _finishes(a, b):
    c1, c2 = _cmp(a[2], b[2], False, False), _cmp(a[0], b[0], True, True)
    return a[3] == b[3] and c1 == 0 and (c2 > 0 or (c2 == 0 and (not a[1] or b[1])))


def _includes(a, b):
    c1, c2 = _cmp(a[0], b[0], True, True), _cmp(a[2], b[2], False, False)
    return (c1 < 0 or (c1 == 0 and (a[1] or not b[1]))) and (c2 > 0 or (c2 == 0 and (a[3] or not b[3])))


def _starts(a, b):
    c1, c2 = _cmp(a[0], b[0], True, True), _cmp(a[2], b[2], False, False)
    return a[1] == b[1] and c1 == 0 and (c2 < 0 or (c2 == 0 and (not a[3] or b[3])))


def _coincides(a, b):
    return (a[1] == b[1] and a[3] == b[3] and _cmp(a[0], b[0], True, True) == 0
            and _cmp(a[2], b[2], False, False) == 0)


for _name, _rule in [("before", _before), ("after", lambda a, b: _before(b, a)), ("meets", _meets),
                     ("met by", lambda a, b: _meets(b, a)), ("overlaps", _overlaps),
                     ("overlaps before", _overlaps_before), ("overlaps after", lambda a, b: _overlaps_before(b, a)),
                     ("finishes", _finishes), ("finished by", lambda a, b: _finishes(b, a)),
                     ("includes", _includes), ("during", lambda a, b: _includes(b, a)), ("starts", _starts),
                     ("started by", lambda a, b: _starts(b, a)), ("coincides", _coincides)]:
    _range_fn(_name, "a, b", _rule)


@builtin("range", "from")
def _range(text):
    """range("[1..10)"): a range from its text, whose endpoints must be literals."""
    from .interp import literal_range  # the parser and interpreter build the value
    if not isinstance(text, str):
        return None
    return literal_range(text)


# --------------------------------------------------------------------------- dates (10.3.4.11, 10.3.4.12)

_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def _date(v) -> dt.date:
    if not isinstance(v, dt.date):
        raise TypeError("not a date")
    return v


@builtin("day of year", "date")
def _day_of_year(d):
    return Decimal(_date(d).timetuple().tm_yday)


@builtin("day of week", "date")
def _day_of_week(d):
    return _DAYS[_date(d).weekday()]


@builtin("month of year", "date")
def _month_of_year(d):
    return _MONTHS[_date(d).month - 1]


@builtin("week of year", "date")
def _week_of_year(d):
    return Decimal(_date(d).isocalendar()[1])


@builtin("last day of month", "date")
def _last_day_of_month(d):
    """The date of the month's last day (as Camunda's FEEL gives it)."""
    d = _date(d)
    last = dt.date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])
    return join(last, getattr(d, "shift", 0))


@builtin("today", "")
def _today():
    return clock.now().astimezone(clock.LONDON).date()  # the service's one clock, in London


@builtin("now", "")
def _now():
    return clock.now()
