"""The safeguarding guards the service applies to every case of every pathway (docs/safeguarding.md).

A pathway's diagram says who does what; these rules hold whatever it says:

* an urgent step (the first steps after ``immediate_risk``, or a step marked ``urgent``) is due one hour
  after it opens, on the clock, not in working days; outside the council's office hours it also goes to
  the emergency duty team; if nobody has picked it up when the hour is up, the team's manager (out of
  hours the emergency duty manager) is told, in the service and by email. The escalation is a timer
  the service adds to the case, so it fires exactly once, across processes, like any other;
* consent ``not_sought`` needs its reason and the manager who agreed;
* a voluntary service (a process or an end event marked ``voluntary``) never starts without consent
  ``given``;
* raising immediate risk says what has happened.

This module decides; :mod:`service.cases` calls it around each engine step.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import notifications, tenancy
from service.engine import clock, conventions
from service.engine.bundle import ProcessDefinition
from service.engine.clock import LONDON
from service.errors import InvalidData
from service.models import Case, Council, OpenTask, PendingTimer, TaskRole

URGENT_WITHIN = timedelta(hours=1)
EMERGENCY_DUTY_TEAM = "emergency_duty_team"
EMERGENCY_DUTY_MANAGER = "emergency_duty_manager"
TEAM_MANAGER = "team_manager"
#: The name of the timer the service adds to an urgent step; the engine's timers never carry it.
ESCALATION_TIMER = "safeguarding:urgent_escalation"
WHAT_HAPPENED_LENGTH = 5000


class ConsentNeeded(InvalidData):
    """A step would enrol the family in a voluntary service without their consent."""


# -- answers -----------------------------------------------------------------------------------------

def waived(answers: Mapping[str, Any], errors: dict[str, str]) -> dict[str, str]:
    """The form's errors, less those that would hold up a child protection referral.

    With significant harm answered yes, a consent override's missing reason or manager never delays the
    referral (rule 1 wins over rule 3): the front door records them when it acts.
    """
    if not significant_harm_answered(answers):
        return errors
    return {key: message for key, message in errors.items() if key not in conventions.CONSENT_OVERRIDE_FIELDS}


def check_answers(answers: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    """Consent ``not_sought`` needs the reason (one of three) and the manager who agreed (rule 3),
    unless the same answers refer significant harm, which nothing may delay."""
    if answers.get("consent") != "not_sought" or significant_harm_answered(answers):
        return
    merged = {**known, **answers}
    errors = {}
    if merged.get("consent_override_reason") not in conventions.CONSENT_OVERRIDE_REASONS:
        errors["consent_override_reason"] = ("Select why consent was not sought: it would increase the risk, "
                                             "prejudice an enquiry, or cause undue delay")
    if not str(merged.get("consent_override_agreed_by") or "").strip():
        errors["consent_override_agreed_by"] = "Enter the manager who agreed not to seek consent"
    if errors:
        raise InvalidData("consent not sought needs its reason and the manager who agreed", errors)


def significant_harm_answered(answers: Mapping[str, Any]) -> bool:
    """Whether these answers say a child is at risk of significant harm."""
    return any(conventions.is_significant_harm(key) and value == "yes" for key, value in answers.items())


def what_happened(data: Mapping[str, Any]) -> str:
    """What has happened, which raising immediate risk must say (refused with 422 if it does not)."""
    text = data.get("what_happened") if isinstance(data, Mapping) else None
    if not isinstance(text, str) or not text.strip():
        raise InvalidData("immediate risk needs what has happened",
                          {"what_happened": "Enter what has happened"})
    if len(text) > WHAT_HAPPENED_LENGTH:
        raise InvalidData("immediate risk needs what has happened",
                          {"what_happened": f"What has happened must be {WHAT_HAPPENED_LENGTH:,} characters or less"})
    return text.strip()


# -- voluntary services ------------------------------------------------------------------------------

def check_start(process: ProcessDefinition, data: Mapping[str, Any]) -> None:
    """A pathway that enrols the family in a voluntary service starts only with consent given."""
    if process.safeguarding.voluntary:
        _need_consent(process.name, data)


def check_step(process: ProcessDefinition, path: list[str], data: Mapping[str, Any]) -> None:
    """A step may not reach an end that enrols the family in a voluntary service without consent given."""
    reached = [element for element in path if element in process.safeguarding.voluntary_ends]
    if reached:
        _need_consent(f"{process.name} ({reached[0]})", data)


def _need_consent(what: str, data: Mapping[str, Any]) -> None:
    consent = data.get("consent")
    if consent != "given":
        said = "not recorded" if consent is None else f"'{consent}'"
        raise ConsentNeeded(f"{what} enrols the family in a voluntary service, which needs their consent "
                            f"(consent is {said}); consent not sought is for sharing with statutory services only",
                            {"consent": "A voluntary service needs the family's consent: select given, or "
                                        "choose another route"})


# -- urgent steps ------------------------------------------------------------------------------------

def is_urgent(process: ProcessDefinition, element: str) -> bool:
    return element in process.safeguarding.urgent_tasks


def open_urgent(session: Session, case: Case, row: OpenTask, now: datetime) -> None:
    """An urgent step is due within the hour; out of hours the emergency duty team has it too.

    The service adds the escalation timer that fires when the hour is up.
    """
    row.due_at = now + URGENT_WITHIN
    if not _in_office_hours(session, case, now) and EMERGENCY_DUTY_TEAM not in {r.role for r in row.role_rows}:
        row.role_rows.append(TaskRole(role=EMERGENCY_DUTY_TEAM))
    session.add(PendingTimer(id=str(uuid.uuid4()), case_id=case.id, name=ESCALATION_TIMER,
                             title=f"Escalate if nobody has picked up: {row.title}"[:255],
                             due_at=row.due_at, attached_task_id=row.id, properties={}))
    from service import scheduler  # it imports this module (through service.cases)

    # Due in an hour, beyond the safety sweeps, yet told to every process at once: a child at risk never waits
    # on a sweep that runs late.
    scheduler.timers_changed(session, now)


def is_service_timer(timer: PendingTimer) -> bool:
    return timer.name == ESCALATION_TIMER


def close_urgent(session: Session, case: Case, task_id: str) -> None:
    """A closed urgent step needs no escalation."""
    for timer in session.scalars(select(PendingTimer).where(PendingTimer.case_id == case.id,
                                                            PendingTimer.name == ESCALATION_TIMER,
                                                            PendingTimer.attached_task_id == task_id)):
        session.delete(timer)


def fire_escalations(session: Session, case: Case) -> tuple[int, list[OpenTask]]:
    """Fire the case's due escalation timers: tell the manager of each urgent step nobody picked up.

    Returns how many timers fired and the steps escalated (a step picked up meanwhile is not).
    """
    now = clock.now()
    escalated = []
    due = session.scalars(select(PendingTimer).where(PendingTimer.case_id == case.id,
                                                     PendingTimer.name == ESCALATION_TIMER,
                                                     PendingTimer.due_at <= now)).all()
    for timer in due:
        task = session.get(OpenTask, timer.attached_task_id or "")
        session.delete(timer)
        if task is None or task.closed_at is not None or task.assignee_id is not None:
            continue
        in_hours = _in_office_hours(session, case, now)
        managers = notifications.people_with_roles(session, case.council_id, manager_roles(task.roles, in_hours))
        if not managers:  # nobody holds the manager's role: the council's admins must know
            managers = notifications.people_with_roles(session, case.council_id, ["admin"])
        subject, body = escalation_wording(case, task, in_hours)
        notifications.tell(session, case, managers, kind="escalation", task=task.name, subject=subject, body=body)
        escalated.append(task)
    return len(due), escalated


def manager_roles(task_roles: list[str], in_office_hours: bool) -> list[str]:
    """Whom an unpicked urgent step escalates to: the team's manager, or out of hours the emergency duty manager."""
    if not in_office_hours:
        return [EMERGENCY_DUTY_MANAGER]
    return sorted({f"{role}_manager" for role in task_roles if role != EMERGENCY_DUTY_TEAM} | {TEAM_MANAGER})


def escalation_wording(case: Case, task: OpenTask, in_hours: bool) -> tuple[str, str]:
    """The subject and body of an unpicked urgent step's escalation. Reads only ``case.reference``,
    ``case.process.name``, ``task.title`` and ``task.due_at`` (no database): a sandbox case words it the same."""
    return (f"Urgent: nobody has picked up '{task.title}' (case {case.reference})",
            _escalation_body(case, task, in_hours))


def _escalation_body(case: Case, task: OpenTask, in_hours: bool) -> str:
    due = task.due_at.astimezone(LONDON) if task.due_at else None
    return "\n".join([
        f"Case: {case.reference} ({case.process.name})",
        f"Urgent step: {task.title}",
        f"It was due by {due:%H:%M on %A %d %B %Y}." if due else "It is urgent.",
        "Nobody has picked it up. A child may be at risk of significant harm: make sure someone acts now.",
        "" if in_hours else "Outside office hours: the emergency duty team has it.",
    ]).strip()


def _in_office_hours(session: Session, case: Case, instant: datetime) -> bool:
    council = session.get(Council, case.council_id)
    return council is not None and tenancy.working_calendar(council).is_office_hours(instant)
