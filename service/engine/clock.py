"""The one clock the service reads time from.

Every part of the service (engine timers, due dates, the timer sweep, audit
timestamps) asks :func:`now`. Tests and ``flask timers fire --now`` move time
by installing another clock, for the whole process or for one block of code.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that stands still until moved; for tests and rehearsals."""

    def __init__(self, instant: datetime) -> None:
        self.instant = as_utc(instant)

    def now(self) -> datetime:
        return self.instant

    def move_to(self, instant: datetime) -> None:
        self.instant = as_utc(instant)

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.instant = self.instant + timedelta(**delta)


_process_clock: Clock = SystemClock()
_block_clock: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("clock", default=None)


def now() -> datetime:
    """The current instant (aware, UTC) from the clock in force."""
    return (_block_clock.get() or _process_clock).now()


def set_clock(clock: Clock) -> Clock:
    """Install ``clock`` for the whole process; return the previous one."""
    global _process_clock
    previous, _process_clock = _process_clock, clock
    return previous


@contextlib.contextmanager
def clock_at(instant: datetime) -> Iterator[FixedClock]:
    """Within the block, time stands at ``instant`` (for this thread/context only)."""
    clock = FixedClock(instant)
    token = _block_clock.set(clock)
    try:
        yield clock
    finally:
        _block_clock.reset(token)


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; a naive value is read as Europe/London wall time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=LONDON)
    return value.astimezone(timezone.utc)
