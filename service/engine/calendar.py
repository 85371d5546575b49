"""Working days: Monday to Friday less the bank holidays of the council's country and the
council's own closure days, in Europe/London wall time; and the council's office hours.

Bank holidays come from the maintained ``holidays`` package, never from a hand-kept list. The calendar
in force is the acting council's (``set_calendar`` from the service layer, per request or per fired
case; a context variable, so two threads acting for two councils never see each other's).
"""
from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays

from . import clock
from .clock import LONDON

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OFFICE_OPENS = time(9, 0)
OFFICE_CLOSES = time(17, 0)


#: The bank holiday lists of the ``holidays`` package, by the country a council is in.
COUNTRIES = {"england": "ENG", "wales": "WLS", "scotland": "SCT", "northern_ireland": "NIR"}


@lru_cache(maxsize=256)
def _bank_holidays(year: int, country: str = "england") -> frozenset[date]:
    return frozenset(holidays.UnitedKingdom(subdiv=COUNTRIES[country], years=year).keys())


class WorkingCalendar:
    """Which days are working days (and which hours office hours), and arithmetic over them."""

    def __init__(self, closures: Iterable[date] = (), country: str = "england", opens: time = OFFICE_OPENS,
                 closes: time = OFFICE_CLOSES) -> None:
        if country not in COUNTRIES:
            raise ValueError(f"the country must be one of {', '.join(COUNTRIES)}, not {country!r}")
        self.closures = frozenset(closures)
        self.country = country
        self.opens, self.closes = opens, closes

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in _bank_holidays(day.year, self.country) and day not in self.closures

    def is_office_hours(self, instant: datetime) -> bool:
        """Whether ``instant`` falls in office hours on a working day (London wall time)."""
        local = clock.as_utc(instant).astimezone(LONDON)
        return self.is_working_day(local.date()) and self.opens <= local.time() < self.closes

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


_calendar: ContextVar[WorkingCalendar] = ContextVar("working_calendar", default=WorkingCalendar())


def set_calendar(calendar: WorkingCalendar) -> None:
    """Install the acting council's calendar in this context (thread)."""
    _calendar.set(calendar)


def get_calendar() -> WorkingCalendar:
    return _calendar.get()


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
    return _at(get_calendar().add_working_days(origin.date(), count), origin.timetz())


def end_of_working_day(start: date | datetime | str | None = None) -> datetime:
    """Close of business on the same working day (the next one if ``start`` is after hours or not a working day)."""
    origin, calendar = to_london(start), get_calendar()
    day = origin.date()
    if not calendar.is_working_day(day) or origin.time() >= calendar.closes:
        day = calendar.next_working_day(day + timedelta(days=1))
    return _at(day, calendar.closes)


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
