"""Working days: Monday to Friday less England and Wales bank holidays and the
council's own closure days, in Europe/London wall time.

Bank holidays come from the maintained ``holidays`` package (England's list,
which Wales shares), never from a hand-kept list.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays

from . import clock
from .clock import LONDON

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OFFICE_OPENS = time(9, 0)
OFFICE_CLOSES = time(17, 0)


@lru_cache(maxsize=64)
def _bank_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.UnitedKingdom(subdiv="ENG", years=year).keys())


class WorkingCalendar:
    """Which days are working days, and arithmetic over them."""

    def __init__(self, closures: Iterable[date] = ()) -> None:
        self.closures = frozenset(closures)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in _bank_holidays(day.year) and day not in self.closures

    def add_working_days(self, start: date, count: int) -> date:
        """The date ``count`` working days after ``start`` (before it when negative)."""
        step = 1 if count >= 0 else -1
        day, remaining = start, abs(count)
        while remaining:
            day += timedelta(days=step)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def next_working_day(self, day: date) -> date:
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day


_calendar = WorkingCalendar()


def set_calendar(calendar: WorkingCalendar) -> None:
    """Install the council's calendar (closure days) for the whole process."""
    global _calendar
    _calendar = calendar


def get_calendar() -> WorkingCalendar:
    return _calendar


def to_london(value: date | datetime | str | None) -> datetime:
    """A London wall-clock datetime from a case-data value (ISO string, date or datetime).

    ``None`` means now; a date without a time means the start of that office day.
    """
    if value is None:
        return clock.now().astimezone(LONDON)
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value or " " in value.strip() else date.fromisoformat(value)
    if isinstance(value, datetime):
        return clock.as_utc(value).astimezone(LONDON)
    return datetime.combine(value, OFFICE_OPENS, LONDON)


def _at(day: date, wall_time: time) -> datetime:
    # Combining with the zone (not adding a timedelta) keeps the wall time across clock changes.
    return datetime.combine(day, wall_time.replace(tzinfo=None), LONDON)


def working_days(count: int, start: date | datetime | str | None = None) -> datetime:
    """The instant ``count`` working days after ``start`` (default now), same time of day."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"working_days needs a whole number of days, got {count!r}")
    origin = to_london(start)
    return _at(_calendar.add_working_days(origin.date(), count), origin.timetz())


def end_of_working_day(start: date | datetime | str | None = None) -> datetime:
    """Close of business on the same working day (the next one if ``start`` is after hours or not a working day)."""
    origin = to_london(start)
    day = origin.date()
    if not _calendar.is_working_day(day) or origin.time() >= OFFICE_CLOSES:
        day = _calendar.next_working_day(day + timedelta(days=1))
    return _at(day, OFFICE_CLOSES)


def next_weekday(name: str, at: str = "09:30", start: date | datetime | str | None = None) -> datetime:
    """The next ``name`` day (e.g. "Wednesday") at ``at`` London time, strictly after ``start``."""
    try:
        target = WEEKDAYS.index(name.strip().lower())
    except (AttributeError, ValueError):
        raise ValueError(f"next_weekday needs a day name such as 'Wednesday', got {name!r}") from None
    origin = to_london(start)
    wall = time.fromisoformat(at)
    day = origin.date() + timedelta(days=(target - origin.weekday()) % 7)
    candidate = _at(day, wall)
    if candidate <= origin:
        candidate = _at(day + timedelta(days=7), wall)
    return candidate
