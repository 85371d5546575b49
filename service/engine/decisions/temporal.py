"""FEEL dates, times and durations: literals, their string forms, properties and arithmetic."""
from __future__ import annotations

import calendar
import datetime as dt
import re
from decimal import Decimal, ROUND_DOWN
from functools import lru_cache
from zoneinfo import ZoneInfo

from .values import CTX, Range, YMDuration

_DATE_RE = re.compile(r"(-?(?:[1-9]\d{4,8}|\d{4}))-(\d\d)-(\d\d)")
_TIME_RE = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d(?::\d\d)?|@[A-Za-z0-9_+\-/]+)?")
_DURATION_RE = re.compile(
    r"(-)?P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d*)?)S)?)?")


# --------------------------------------------------------------------------- years beyond 1..9999

CYCLE_YEARS, CYCLE_DAYS = 400, 146097   # the Gregorian calendar repeats exactly every 400 years


class FarDate(dt.date):
    """A date Python's date cannot hold (year < 1 or > 9999): a base date ``shift`` years (whole 400-year
    cycles) away. Only this module's functions do arithmetic on it."""
    shift = 0
    nano = 0

    @property
    def true_year(self) -> int:
        return self.year + self.shift


class FarDateTime(dt.datetime):
    """A date and time beyond Python's years, or with nanoseconds (``nano``: digits after the microseconds)."""
    shift = 0
    nano = 0

    @property
    def true_year(self) -> int:
        return self.year + self.shift


def split(v):
    """(plain Python value, shift in years, extra nanoseconds) of a date or date and time."""
    shift, nano = getattr(v, "shift", 0), getattr(v, "nano", 0)
    if isinstance(v, dt.datetime):
        return dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, v.tzinfo,
                           fold=v.fold), shift, nano
    return dt.date(v.year, v.month, v.day), shift, nano


def join(base, shift: int = 0, nano: int = 0):
    """The value whose true year is base.year + shift: plain when Python can hold it, else Far."""
    year = base.year + shift
    if 1 <= year <= 9999 and not nano:
        return base.replace(year=year) if shift else base
    cycles = (year - 2000) // CYCLE_YEARS * CYCLE_YEARS if not 1 <= year <= 9999 else 0
    moved = base.replace(year=year - cycles)
    if isinstance(moved, dt.datetime):
        out = FarDateTime(moved.year, moved.month, moved.day, moved.hour, moved.minute, moved.second,
                          moved.microsecond, moved.tzinfo, fold=moved.fold)
    else:
        out = FarDate(moved.year, moved.month, moved.day)
    out.shift, out.nano = cycles, nano
    return out


def rebase(v):
    """(plain value near the year 2000, shift) for arithmetic that might leave Python's years."""
    base, shift, _ = split(v)
    if shift or base.year < 100 or base.year > 9899:
        cycles = (base.year + shift - 2000) // CYCLE_YEARS * CYCLE_YEARS
        return base.replace(year=base.year + shift - cycles), cycles
    return base, 0


def true_year(v) -> int:
    return v.year + getattr(v, "shift", 0)


def order_key(v) -> tuple:
    """A date's or date and time's place on the time line (UTC when it has a zone), any year."""
    base, shift, nano = split(v)
    if isinstance(base, dt.datetime):
        if base.tzinfo is not None:
            base = base.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return (base.year + shift, base.month, base.day, base.hour, base.minute, base.second,
                base.microsecond, nano)
    return (base.year + shift, base.month, base.day)


class NanoTime(dt.time):
    """A time written with more than microsecond precision: ``nano`` holds the three digits after them."""
    nano = 0


def with_nano(t: dt.time, nano: int) -> dt.time:
    if not nano:
        return t
    out = NanoTime(t.hour, t.minute, t.second, t.microsecond, t.tzinfo, fold=t.fold)
    out.nano = nano
    return out


MAX_YEAR = 999_999_999


def make_date(year: int, month: int, day: int):
    if abs(year) > MAX_YEAR:
        raise ValueError("year out of range")
    moved = 2000 + (year - 2000) % CYCLE_YEARS if not 1 <= year <= 9999 else year
    return join(dt.date(moved, month, day), year - moved)


@lru_cache(maxsize=256)
def zone(name: str):
    """A zone id (Europe/Paris) as tzinfo, or None if unknown."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return None


def _tz(text: str | None):
    """The tzinfo of a time zone suffix ("Z", "+01:00", "@Europe/Paris"), False if malformed."""
    if not text:
        return None
    if text == "Z":
        return dt.timezone.utc
    if text.startswith("@"):
        return zone(text[1:]) or False
    sign = -1 if text[0] == "-" else 1
    parts = [int(p) for p in text[1:].split(":")]
    if parts[0] > 14 or parts[1] > 59:
        return False
    off = dt.timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2] if len(parts) > 2 else 0)
    return dt.timezone(sign * off)


def parse_date(s: str):
    m = _DATE_RE.fullmatch(s) if isinstance(s, str) else None
    if not m:
        return None
    try:
        return make_date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _micro(frac: str | None) -> int:
    return int((frac or "0")[:6].ljust(6, "0"))


def _nano(frac: str | None) -> int:
    return int((frac or "0")[6:9].ljust(3, "0"))


def parse_time(s: str):
    m = _TIME_RE.fullmatch(s) if isinstance(s, str) else None
    if not m:
        return None
    h, mi, sec = int(m[1]), int(m[2]), int(m[3])
    tz = _tz(m[5])
    if tz is False or h > 23 or mi > 59 or sec > 59:
        if h == 24 and mi == 0 and sec == 0 and not m[4] and tz is not False:
            return dt.time(0, 0, 0, tzinfo=tz)
        return None
    return with_nano(dt.time(h, mi, sec, _micro(m[4]), tzinfo=tz), _nano(m[4]))


def parse_datetime(s: str):
    if not isinstance(s, str):
        return None
    if "T" not in s:
        d = parse_date(s)
        if d is None:
            return None
        base, shift, _ = split(d)
        return join(dt.datetime(base.year, base.month, base.day), shift)
    ds, ts = s.split("T", 1)
    d, t = parse_date(ds), parse_time(ts)
    if d is None or t is None:
        return None
    base, shift, _ = split(d)
    value = dt.datetime.combine(base, t)
    if ts.startswith("24:"):
        value += dt.timedelta(days=1)
    return join(value, shift, getattr(t, "nano", 0))


def parse_duration(s: str):
    m = _DURATION_RE.fullmatch(s) if isinstance(s, str) else None
    if not m:
        return None
    sign = -1 if m[1] else 1
    ym = m[2] is not None or m[3] is not None
    dtp = any(m[i] is not None for i in (4, 5, 6, 7))
    if ym and dtp:
        return None
    if ym:
        return YMDuration(sign * (int(m[2] or 0) * 12 + int(m[3] or 0)))
    secs = Decimal(m[7] or 0)
    try:
        td = dt.timedelta(days=int(m[4] or 0), hours=int(m[5] or 0), minutes=int(m[6] or 0),
                          seconds=int(secs), microseconds=int((secs % 1) * 1000000))
    except OverflowError:
        return None
    return td if sign > 0 else -td


def parse_temporal(s: str):
    """An @"..." literal: a date, time, date and time or duration, by its shape."""
    if s.startswith(("P", "-P")):
        return parse_duration(s)
    if "T" in s.split("@")[0]:
        return parse_datetime(s)
    if _DATE_RE.fullmatch(s):
        return parse_date(s)
    return parse_time(s)


# --------------------------------------------------------------------------- string forms

def _fraction(micro: int) -> str:
    return ("." + f"{micro:06d}".rstrip("0")) if micro else ""


def _zone_text(tz, offset: dt.timedelta | None) -> str:
    if tz is None:
        return ""
    if isinstance(tz, ZoneInfo):
        return "@" + tz.key
    if offset is None:
        return ""
    if offset == dt.timedelta(0):
        return "Z"
    sign = "-" if offset < dt.timedelta(0) else "+"
    total = abs(int(offset.total_seconds()))
    h, rem = divmod(total, 3600)
    mi, sec = divmod(rem, 60)
    return f"{sign}{h:02d}:{mi:02d}" + (f":{sec:02d}" if sec else "")


def format_date(d: dt.date) -> str:
    y = true_year(d)
    return f"{'-' if y < 0 else ''}{abs(y):04d}-{d.month:02d}-{d.day:02d}"


def format_time(t: dt.time, offset: dt.timedelta | None = None, nano: int = 0) -> str:
    if offset is None and t.tzinfo is not None and not isinstance(t.tzinfo, ZoneInfo):
        offset = t.utcoffset()
    nano = nano or getattr(t, "nano", 0)
    frac = ("." + f"{t.microsecond:06d}{nano:03d}".rstrip("0")) if t.microsecond or nano else ""
    return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}{frac}{_zone_text(t.tzinfo, offset)}"


def format_datetime(v: dt.datetime) -> str:
    return f"{format_date(v)}T{format_time(v.timetz(), v.utcoffset(), getattr(v, 'nano', 0))}"


def format_duration(v) -> str:
    if isinstance(v, YMDuration):
        return v.isoformat()
    micro_total = (v.days * 86400 + v.seconds) * 1000000 + v.microseconds
    sign = "-" if micro_total < 0 else ""
    secs_total, micro = divmod(abs(micro_total), 1000000)
    days, rem = divmod(secs_total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    out = f"{sign}P" + (f"{days}D" if days else "")
    tpart = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or micro:
        tpart += f"{seconds}{_fraction(micro)}S"
    if tpart:
        out += "T" + tpart
    return out if out not in ("P", "-P") else "PT0S"


# --------------------------------------------------------------------------- properties

def _offset(v):
    off = v.utcoffset() if v.tzinfo is not None else None
    return off


def temporal_property(v, name: str):
    """``.year``, ``.time offset`` and the other properties of a temporal value or range; None if none."""
    if isinstance(v, (dt.date, dt.datetime)) and name in ("year", "month", "day"):
        return Decimal(true_year(v) if name == "year" else getattr(v, name))
    if isinstance(v, dt.date) and name == "weekday":
        return Decimal(v.isoweekday())
    if isinstance(v, (dt.datetime, dt.time)):
        if name in ("hour", "minute", "second"):
            return Decimal(getattr(v, name))
        if name == "time offset":
            if isinstance(v, dt.time) and isinstance(v.tzinfo, ZoneInfo):
                return None
            return _offset(v)
        if name == "timezone":
            return v.tzinfo.key if isinstance(v.tzinfo, ZoneInfo) else None
    if isinstance(v, YMDuration) and name in ("years", "months"):
        return Decimal(getattr(v, name))
    if isinstance(v, dt.timedelta) and name in ("days", "hours", "minutes", "seconds"):
        total = Decimal(v.days * 86400 + v.seconds) + Decimal(v.microseconds) / 1000000
        sign, total = (-1 if total < 0 else 1), abs(total)
        parts = {"days": total // 86400, "hours": total % 86400 // 3600,
                 "minutes": total % 3600 // 60, "seconds": total % 60 // 1}
        return sign * parts[name]
    if isinstance(v, Range):
        return {"start": v.lo, "end": v.hi, "start included": v.lo_closed, "end included": v.hi_closed}.get(name)
    return None


# --------------------------------------------------------------------------- arithmetic

def add_months(d, months: int):
    """d moved by whole months, the day clamped to the end of the target month."""
    y, m = divmod(d.month - 1 + months, 12)
    year = d.year + y
    if not 1 <= year <= 9999:
        return None
    return d.replace(year=year, month=m + 1, day=min(d.day, calendar.monthrange(year, m + 1)[1]))


def _midnight(d: dt.date) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day)


def _time_plus(t: dt.time, td: dt.timedelta) -> dt.time:
    moved = dt.datetime.combine(dt.date(2000, 1, 1), t.replace(tzinfo=None)) + td
    return moved.time().replace(tzinfo=t.tzinfo)


def temporal_add(a, b):
    """a + b for temporal operands (either order), None when the standard gives none."""
    if isinstance(a, (dt.timedelta, YMDuration)) and not isinstance(b, (dt.timedelta, YMDuration)):
        a, b = b, a
    try:
        if isinstance(a, YMDuration) and isinstance(b, YMDuration):
            return YMDuration(a.total_months + b.total_months)
        if isinstance(a, dt.timedelta) and isinstance(b, dt.timedelta):
            return a + b
        if isinstance(a, dt.date) and isinstance(b, (YMDuration, dt.timedelta)):
            base, shift = rebase(a)
            if isinstance(b, YMDuration):
                moved = add_months(base, b.total_months)
            elif isinstance(base, dt.datetime):
                moved = _add_aware(base, b)
            else:
                moved = (_midnight(base) + b).date()
            return None if moved is None else join(moved, shift)
        if isinstance(a, dt.time) and isinstance(b, dt.timedelta):
            return _time_plus(a, b)
    except (OverflowError, ValueError):
        return None
    return None


def _add_aware(a: dt.datetime, b: dt.timedelta) -> dt.datetime:
    """Adding a duration moves the instant, so a zone's daylight saving change is honoured."""
    if isinstance(a.tzinfo, ZoneInfo):
        utc = a.astimezone(dt.timezone.utc) + b
        return utc.astimezone(a.tzinfo)
    return a + b


def temporal_sub(a, b):
    """a - b for temporal operands, None when the standard gives none."""
    try:
        if isinstance(a, YMDuration) and isinstance(b, YMDuration):
            return YMDuration(a.total_months - b.total_months)
        if isinstance(a, dt.timedelta) and isinstance(b, dt.timedelta):
            return a - b
        if isinstance(b, YMDuration) and isinstance(a, (dt.date, dt.datetime)):
            return temporal_add(a, YMDuration(-b.total_months))
        if isinstance(b, dt.timedelta) and isinstance(a, (dt.date, dt.datetime, dt.time)):
            return temporal_add(a, -b)
        if isinstance(a, dt.date) and isinstance(b, dt.date):
            if isinstance(a, dt.datetime) != isinstance(b, dt.datetime):
                moment = a if isinstance(a, dt.datetime) else b
                if moment.tzinfo is None:
                    return None  # a date is midnight UTC: it has no distance to a local date and time
            (ba, sa), (bb, sb) = rebase(a), rebase(b)
            diff = _date_diff(ba, bb)
            return None if diff is None else diff + dt.timedelta(days=(sa - sb) // CYCLE_YEARS * CYCLE_DAYS)
        if isinstance(a, dt.time) and isinstance(b, dt.time):
            return _time_diff(a, b)
    except (OverflowError, ValueError):
        return None
    return None


def _as_datetime(v, aware: bool) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return v
    return dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc if aware else None)


def _date_diff(a: dt.date, b: dt.date):
    aware = getattr(a, "tzinfo", None) is not None or getattr(b, "tzinfo", None) is not None
    x, y = _as_datetime(a, aware), _as_datetime(b, aware)
    if (x.tzinfo is None) != (y.tzinfo is None):
        return None
    return x - y


def _time_diff(a: dt.time, b: dt.time):
    if (a.tzinfo is None) != (b.tzinfo is None):
        return None
    day = dt.date(2000, 1, 1)
    x, y = dt.datetime.combine(day, a), dt.datetime.combine(day, b)
    return x - y


def months_between(a: dt.date, b: dt.date) -> int:
    """Whole months from a to b (negative when b is earlier), as years and months duration() counts."""
    months = (b.year - a.year) * 12 + (b.month - a.month)
    ta = (a.day, getattr(a, "hour", 0), getattr(a, "minute", 0), getattr(a, "second", 0))
    tb = (b.day, getattr(b, "hour", 0), getattr(b, "minute", 0), getattr(b, "second", 0))
    if months > 0 and tb < ta:
        months -= 1
    elif months < 0 and tb > ta:
        months += 1
    return months


def td_seconds(td: dt.timedelta) -> Decimal:
    return Decimal(td.days * 86400 + td.seconds) + Decimal(td.microseconds) / 1000000


def seconds_td(secs: Decimal) -> dt.timedelta | None:
    try:
        micro = int((secs * 1000000).to_integral_value())
        return dt.timedelta(microseconds=micro)
    except (OverflowError, ArithmeticError):
        return None


def duration_mul(d, n: Decimal):
    if isinstance(d, YMDuration):
        return YMDuration(int((Decimal(d.total_months) * n).to_integral_value(rounding=ROUND_DOWN)))
    return seconds_td(CTX.multiply(td_seconds(d), n))


def duration_div(d, n):
    """A duration divided by a number (a duration) or by a duration of its kind (a number)."""
    if isinstance(n, Decimal):
        if n == 0:
            return None
        if isinstance(d, YMDuration):
            return YMDuration(int((Decimal(d.total_months) / n).to_integral_value(rounding=ROUND_DOWN)))
        return seconds_td(CTX.divide(td_seconds(d), n))
    if isinstance(d, YMDuration) and isinstance(n, YMDuration):
        return None if n.total_months == 0 else CTX.divide(Decimal(d.total_months), Decimal(n.total_months))
    if isinstance(d, dt.timedelta) and isinstance(n, dt.timedelta):
        s = td_seconds(n)
        return None if s == 0 else CTX.divide(td_seconds(d), s)
    return None


def format_temporal(v) -> str | None:
    """The ISO text of a date, time, date and time or duration; None for any other value."""
    if isinstance(v, dt.datetime):
        return format_datetime(v)
    if isinstance(v, dt.date):
        return format_date(v)
    if isinstance(v, dt.time):
        return format_time(v)
    if isinstance(v, (dt.timedelta, YMDuration)):
        return format_duration(v)
    return None
