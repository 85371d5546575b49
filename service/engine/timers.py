"""BPMN timer event definitions that read the service clock and London time.

SpiffWorkflow's own timers read the system clock, apply a fixed UTC offset to
naive times and store a cycle's period in seconds (so ``R/P3M`` drifts off the
calendar). These keep the same task-data layout (``internal_data['event_value']``)
but compute every instant in Europe/London wall time from the one clock.

A timer expression may be written as the modeller writes it: an ISO literal
(``P7D``, ``R/P3M``, ``2027-01-04T09:00``), optionally in ``${...}``, or an
expression over the case data (``${working_days(10)}``, ``review_date``).
"""
from __future__ import annotations

import functools
import re
from datetime import date, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.util.task import TaskState

from . import calendar, clock, expressions, spiff
from .specs import evaluated_at, note_timer_fired
from .clock import LONDON

_ISO_LITERAL = re.compile(r"^(R\d*/\S+|P(\d|T)\S*|\d{4}-\d{2}-\d{2}\S*)$", re.I)


def is_iso_literal(text: str) -> bool:
    return bool(_ISO_LITERAL.match(text))


def parse_duration(text: str) -> relativedelta:
    """An ISO 8601 duration (``P3M``, ``P2DT4H``, ``P1W``) as a calendar-aware delta."""
    try:
        parts = TimerEventDefinition.parse_iso_duration(text.strip().upper())
    except Exception:
        raise expressions.ExpressionError(f"'{text}' is not an ISO 8601 duration such as P7D or P3M") from None
    if not parts:
        raise expressions.ExpressionError(f"'{text}' is not an ISO 8601 duration such as P7D or P3M")
    return relativedelta(**{key: value for key, value in parts.items()})


def parse_instant(value: Any) -> datetime:
    """An aware UTC instant from an ISO string, date or datetime (naive means London time)."""
    if isinstance(value, datetime):
        return clock.as_utc(value)
    if isinstance(value, date):
        return calendar.to_london(value).astimezone(clock.now().tzinfo)
    if isinstance(value, str):
        text = value.strip()
        try:
            if "T" in text or " " in text:
                return clock.as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
            return clock.as_utc(calendar.to_london(date.fromisoformat(text)))
        except ValueError:
            pass
    raise expressions.ExpressionError(f"'{value}' is not a date or date-time")


def add_wall_clock(start: datetime, delta: relativedelta | timedelta) -> datetime:
    """``start + delta`` in London wall time, so P1D after 09:00 is 09:00 across a clock change."""
    local = start.astimezone(LONDON).replace(tzinfo=None)
    return clock.as_utc((local + delta).replace(tzinfo=LONDON))


def timer_value(expression: str, data: dict[str, Any]) -> Any:
    """The value of a timer expression: its ISO literal text, or what the expression gives."""
    text = expressions.unwrap(expression)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if is_iso_literal(text):
        return text
    return expressions.evaluate(text, data)


def check_timer_expression(expression: str) -> None:
    """Refuse, at deploy, a timer expression that can never run."""
    text = expressions.unwrap(expression or "")
    if not text:
        raise expressions.ExpressionError("the timer has no expression")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if is_iso_literal(text):
        if text.upper().startswith("R"):
            parse_cycle(text, clock.now())
        elif text.upper().startswith("P"):
            parse_duration(text)
        else:
            parse_instant(text)
    else:
        expressions.compile_expression(text)


def parse_cycle(text: str, now: datetime) -> tuple[int, datetime, relativedelta]:
    """``R[n]/[start/]duration`` as (cycles, first firing, period); -1 cycles repeats for ever."""
    parts = text.strip().upper().split("/")
    if len(parts) not in (2, 3) or not parts[0].startswith("R"):
        raise expressions.ExpressionError(f"'{text}' is not an ISO 8601 cycle such as R/P3M or R4/P1W")
    try:
        cycles = int(parts[0][1:]) if parts[0][1:] else -1
    except ValueError:
        raise expressions.ExpressionError(f"'{text}' has a bad repeat count") from None
    if len(parts) == 3:
        period = parse_duration(parts[2])
        if add_wall_clock(now, period) <= now:
            raise expressions.ExpressionError(f"'{text}' repeats with no time between firings")
        return cycles, parse_instant(parts[1]), period
    period = parse_duration(parts[1])
    if add_wall_clock(now, period) <= now:
        raise expressions.ExpressionError(f"'{text}' repeats with no time between firings")
    return cycles, add_wall_clock(now, period), period


def due_from(value: Any, base: datetime) -> datetime:
    """The due instant of a duration- or date-valued timer expression result."""
    if isinstance(value, timedelta):
        return add_wall_clock(base, value)
    if isinstance(value, str) and value.strip().upper().startswith("P"):
        return add_wall_clock(base, parse_duration(value))
    return parse_instant(value)


class _ServiceClockTimer:
    """Shared behaviour: fix the due instant once, fire when the service clock passes it."""

    def _due(self, my_task) -> datetime:
        value = spiff.timer_value(my_task)
        if value is None:
            now = clock.now()
            value = evaluated_at(my_task, "timer", lambda: due_from(timer_value(self.expression, my_task.data), now))
            value = value.isoformat()
            spiff.set_timer_value(my_task, value)
        return datetime.fromisoformat(value)

    def has_fired(self, my_task) -> bool:
        if not spiff.timer_fired(my_task) and self._due(my_task) <= clock.now():
            spiff.mark_timer_fired(my_task)
            note_timer_fired(my_task)
        return spiff.timer_fired(my_task)


class TimeDateTimer(_ServiceClockTimer, TimeDateEventDefinition):
    """``timeDate``: a fixed instant (literal or from the case data)."""


class DurationTimer(_ServiceClockTimer, DurationTimerEventDefinition):
    """``timeDuration``: a period from when the timer starts waiting, or an instant such as working_days(10)."""


class CycleTimer(CycleTimerEventDefinition):
    """``timeCycle``: repeats on the calendar (R/P3M fires on the same day each quarter)."""

    def _state(self, my_task) -> dict[str, Any]:
        state = spiff.timer_value(my_task)
        if state is None:
            value = evaluated_at(my_task, "timer", lambda: timer_value(self.expression, my_task.data))
            if not isinstance(value, str):
                raise WorkflowTaskException(f"a timer cycle needs text such as R/P3M, got {value!r}", task=my_task)
            cycles, first, period = evaluated_at(my_task, "timer", lambda: parse_cycle(value, clock.now()))
            state = {"cycles": cycles, "next": first.isoformat(), "start": first.isoformat(),
                     "period": value.strip().upper().split("/")[-1], "fired": 0}
            spiff.set_timer_value(my_task, state)
        return state

    def cycle_complete(self, my_task) -> bool:
        state = self._state(my_task)
        if state["cycles"] == 0:
            spiff.set_timer_value(my_task, None)
            spiff.mark_timer_fired(my_task)
            return False
        if not advance_cycle(state, clock.now()):
            return False
        spiff.set_timer_value(my_task, state)
        note_timer_fired(my_task)
        return True


def advance_cycle(state: dict[str, Any], now: datetime) -> bool:
    """Fire a cycle's occurrence due at ``now``: move ``state`` (a cycle timer's stored value) on; whether it fired.

    Fire once for this occurrence, then move on to the first occurrence still to come: a case whose daily
    reminder was missed over three days of downtime gets one reminder, not a burst of three. Every occurrence
    is counted from the start, so R/P3M stays on the same day of the month.
    """
    if state["cycles"] == 0 or datetime.fromisoformat(state["next"]) > now:
        return False
    period = _period(state["period"])
    start = datetime.fromisoformat(state["start"])
    while True:
        state["fired"] += 1
        state["cycles"] -= 1 if state["cycles"] > 0 else 0
        state["next"] = add_wall_clock(start, _times(period, state["fired"])).isoformat()
        if state["cycles"] == 0 or datetime.fromisoformat(state["next"]) > now:
            break
    return True


@functools.lru_cache(maxsize=256)
def _period(text: str) -> relativedelta:
    """A cycle's period, parsed once per process (the sweep advances thousands of cycles of a few periods)."""
    return parse_duration(text)


def _times(period: relativedelta, count: int) -> relativedelta | timedelta:
    if not period.years and not period.months:  # the same instant, without relativedelta's slower arithmetic
        return timedelta(days=period.days * count, hours=period.hours * count, minutes=period.minutes * count,
                         seconds=period.seconds * count)
    return relativedelta(years=period.years * count, months=period.months * count, days=period.days * count,
                         hours=period.hours * count, minutes=period.minutes * count, seconds=period.seconds * count)


def due_at(my_task) -> datetime | None:
    """When a waiting timer task next fires (aware UTC), or None if it is not a timer."""
    # An event-based gateway keeps the due time of the timer it waits for as a timer event does.
    is_timer = (isinstance(getattr(my_task.task_spec, "event_definition", None), TimerEventDefinition)
                or spiff.gateway_timer_spec(my_task) is not None)
    if not is_timer or my_task.state != TaskState.WAITING or spiff.timer_fired(my_task):
        return None  # a timer the sweep fired ahead of the engine (runtime.catch_up) runs on at the next step
    value = spiff.timer_value(my_task)
    if value is None:
        return None
    if isinstance(value, dict):
        return datetime.fromisoformat(value["next"]) if value.get("cycles") != 0 else None
    return datetime.fromisoformat(value)
