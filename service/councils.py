"""Councils and their settings: what the operator creates and counts, and each council's admin keeps.

The operator runs the service for every council: creates a council with its first admin, and sees the
service's health and counts per council, never a child's data (the counts are computed across councils
inside ``tenancy.all_councils`` and leave the database as numbers only).
"""
from __future__ import annotations

import re
from datetime import date, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import auth, policy, tenancy
from service.engine import clock
from service.engine.calendar import COUNTRIES
from service.errors import Conflict, InvalidData
from service.models import Case, Council, Membership, Notification, OpenTask, PendingTimer, ProcessVersion

_KEY = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
SETTINGS = ("name", "country", "closure_days", "office_opens", "office_closes", "email_sender", "retention_days",
            "retention_by_pathway", "brand_colour", "requires_approval")


def create_council(session: Session, key: str, name: str, *, admin: str | None = None,
                   admin_email: str | None = None, settings: dict[str, Any] | None = None
                   ) -> tuple[Council, str | None]:
    """A new council with its settings, and its first admin (returned with their API token)."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidData("the council key is not usable", {"key": "Use 2 to 40 lower-case letters, digits and "
                                                                   "'-', starting with a letter (e.g. 'halton')"})
    if tenancy.council_by_key(session, key) is not None:
        raise Conflict(f"there is already a council '{key}'")
    council = Council(key=key, name="", country="england", closure_days=[], office_opens="09:00",
                      office_closes="17:00", requires_approval=True)
    update_settings(council, {**(settings or {}), "name": name})
    session.add(council)
    session.flush()
    token = None
    if admin:
        _, token = auth.save_user(session, admin, [policy.ADMIN], council=council, email=admin_email)
    return council, token


def update_settings(council: Council, changes: dict[str, Any]) -> Council:
    """Change a council's settings; 422 naming each setting that is wrong, and nothing changed."""
    errors = {key: "This is not a council setting" for key in changes if key not in SETTINGS}
    cleaned: dict[str, Any] = {}
    for key, value in changes.items():
        if key in SETTINGS:
            try:
                cleaned[key] = _CHECKS[key](value)
            except (TypeError, ValueError) as error:
                errors[key] = str(error)
    if errors:
        raise InvalidData("some council settings need correcting", errors)
    if time.fromisoformat(cleaned.get("office_opens", council.office_opens)) >= \
            time.fromisoformat(cleaned.get("office_closes", council.office_closes)):
        raise InvalidData("office hours end before they begin", {"office_closes": "Close after opening"})
    for key, value in cleaned.items():
        setattr(council, key, value)
    auth.forget_callers()  # this process's cached councils of API callers (others: within seconds)
    return council


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 120:
        raise ValueError("Enter the council's name (at most 120 characters)")
    return value.strip()


def _country(value: Any) -> str:
    if value not in COUNTRIES:
        raise ValueError(f"Choose one of {', '.join(COUNTRIES)}")
    return value


def _days(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 366:
        raise ValueError("Give the closure days as a list of dates such as '2026-12-24'")
    try:
        return sorted({date.fromisoformat(v).isoformat() for v in value})
    except (TypeError, ValueError):
        raise ValueError("Each closure day is a date such as '2026-12-24'") from None


def _clock_time(value: Any) -> str:
    try:
        return time.fromisoformat(value).strftime("%H:%M")
    except (TypeError, ValueError):
        raise ValueError("Give a time of day such as '09:00'") from None


def _email(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 254 or value.count("@") != 1 or any(c in value for c in " \r\n<>"):
        raise ValueError("Give an email address such as 'children@council.gov.uk'")
    return value


def _retention(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 36500:
        raise ValueError("Give a number of days between 1 and 36,500")
    return value


def _retention_by_pathway(value: Any) -> dict[str, int] | None:
    """Days after closure per pathway key, overriding ``retention_days`` (``service.retention``)."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 500 or not all(isinstance(k, str) and 0 < len(k) <= 120
                                                                  for k in value) or None in value.values():
        raise ValueError("Give pathway keys and their number of days, such as {\"halton_step_up\": 2190}")
    return {key: _retention(days) for key, days in value.items()}


def _colour(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _COLOUR.match(value):
        raise ValueError("Give a colour such as '#1d70b8'")
    return value.lower()


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Give true or false")
    return value


_CHECKS = {"name": _name, "country": _country, "closure_days": _days, "office_opens": _clock_time,
           "office_closes": _clock_time, "email_sender": _email, "retention_days": _retention,
           "retention_by_pathway": _retention_by_pathway,
           "brand_colour": _colour, "requires_approval": _flag}


def settings_json(council: Council) -> dict[str, Any]:
    return {"key": council.key, **{key: getattr(council, key) for key in SETTINGS}}


def list_councils(session: Session) -> list[Council]:
    return list(session.scalars(select(Council).order_by(Council.name)))


def counts(session: Session) -> list[dict[str, Any]]:
    """Per council: pathways, cases by status, open and overdue tasks, pending timers, staff, unsent email.

    Numbers only: the operator runs the service and reads no case.
    """
    with tenancy.all_councils(session):
        def per_council(query) -> dict[int, int]:
            return dict(session.execute(query).all())

        def by_status() -> dict[int, dict[str, int]]:
            out: dict[int, dict[str, int]] = {}
            for council, status, count in session.execute(
                    select(Case.council_id, Case.status, func.count()).group_by(Case.council_id, Case.status)):
                out.setdefault(council, {})[status] = count
            return out

        statuses = by_status()
        pathways = per_council(select(ProcessVersion.council_id, func.count(func.distinct(ProcessVersion.key)))
                               .group_by(ProcessVersion.council_id))
        open_tasks = per_council(select(OpenTask.council_id, func.count()).where(OpenTask.closed_at.is_(None))
                                 .group_by(OpenTask.council_id))
        overdue = per_council(select(OpenTask.council_id, func.count()).where(
            OpenTask.closed_at.is_(None), OpenTask.due_at < clock.now()).group_by(OpenTask.council_id))
        timers = per_council(select(PendingTimer.council_id, func.count()).group_by(PendingTimer.council_id))
        unsent = per_council(select(Notification.council_id, func.count()).where(
            Notification.email_sent_at.is_(None), Notification.email_next_attempt_at.is_not(None))
            .group_by(Notification.council_id))
        staff = per_council(select(Membership.council_id, func.count(func.distinct(Membership.user_id)))
                            .group_by(Membership.council_id))
        councils = list_councils(session)
    return [{"key": c.key, "name": c.name, "pathways": pathways.get(c.id, 0), "cases": statuses.get(c.id, {}),
             "open_tasks": open_tasks.get(c.id, 0), "overdue_tasks": overdue.get(c.id, 0),
             "pending_timers": timers.get(c.id, 0), "unsent_emails": unsent.get(c.id, 0),
             "staff": staff.get(c.id, 0)} for c in councils]

