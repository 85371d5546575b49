"""Raising immediate risk on a case: the urgent referral to the council's front door (docs/safeguarding.md).

The pages' red button and ``POST /api/v1/cases/<id>/messages`` with ``immediate_risk`` both end in
``service.cases.send_message``; this module adds what a person raising it from the pages needs: who may
(``service.policy.may_raise_immediate_risk``: anyone who may see the case), the one required answer ("What
has happened?"), and what came of it (the urgent tasks that opened, for whom and by when).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import cases as case_service
from service import policy
from service.deployments import process_definition
from service.errors import Conflict, Forbidden, InvalidData
from service.models import AuditEvent, Case, OpenTask
from service.policy import Actor

MESSAGE = "immediate_risk"
MAX_LENGTH = 5000


@dataclass
class Raised:
    case: Case
    urgent_tasks: list[OpenTask]


def may_raise(session: Session, case: Case, actor: Actor) -> bool:
    """``actor`` may raise it, and the case can take it (something in it waits for ``immediate_risk``)."""
    return can_take(case) and policy.may_raise_immediate_risk(process_definition(session, case.process).roles,
                                                              case.started_by_id, actor)


def can_take(case: Case) -> bool:
    return case.status in ("active", "error") and MESSAGE in (case.waiting_for or [])


def what_happened(text: object) -> str:
    """The worker's account, required and bounded; a 422 names the field otherwise."""
    value = text.strip() if isinstance(text, str) else ""
    if not value:
        raise InvalidData("say what has happened", {"what_happened": "Enter what has happened"})
    if len(value) > MAX_LENGTH:
        raise InvalidData("that is too long", {"what_happened": f"What has happened must be {MAX_LENGTH:,} "
                                                               "characters or fewer"})
    return value


def check(session: Session, case_id: int, actor: Actor) -> Case:
    """The case, if ``actor`` may raise immediate risk on it now (403 if not theirs, 409 if it cannot take it)."""
    case = case_service.get_case(session, case_id, actor)
    if not policy.may_raise_immediate_risk(process_definition(session, case.process).roles, case.started_by_id, actor):
        raise Forbidden("you cannot raise immediate risk on this case")
    if not can_take(case):
        raise Conflict(f"case {case.reference} is {case.status} and nothing in it takes an immediate risk "
                       "referral: contact the front door directly, or start a new referral")
    return case


def raise_immediate_risk(session: Session, case_id: int, text: object, actor: Actor) -> Raised:
    """Send ``immediate_risk`` with ``{"what_happened": ...}`` to the case; the urgent tasks it opened."""
    case = check(session, case_id, actor)
    account = what_happened(text)
    before = set(session.scalars(select(OpenTask.id).where(OpenTask.case_id == case.id, OpenTask.closed_at.is_(None))))
    case = case_service.send_message(session, case.id, MESSAGE, {"what_happened": account}, actor)
    session.flush()
    opened = [t for t in session.scalars(select(OpenTask).where(OpenTask.case_id == case.id,
                                                                OpenTask.closed_at.is_(None))
                                          .order_by(OpenTask.due_at.is_(None), OpenTask.due_at))
              if t.id not in before]
    return Raised(case, opened)


def last_raised(session: Session, case: Case) -> tuple[AuditEvent | None, list[OpenTask]]:
    """When immediate risk was last raised on the case, and the tasks still open that it opened (the result
    page reads them after the redirect), soonest due first."""
    event = session.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id,
                                                     AuditEvent.event == "message_received")
                            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())).first()
    while event is not None and (event.detail or {}).get("name") != MESSAGE:
        event = session.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id,
                                                         AuditEvent.event == "message_received",
                                                         AuditEvent.id < event.id)
                                .order_by(AuditEvent.id.desc())).first()
    if event is None:
        return None, []
    tasks = session.scalars(select(OpenTask).where(OpenTask.case_id == case.id, OpenTask.closed_at.is_(None),
                                                   OpenTask.created_at >= event.at)
                            .order_by(OpenTask.due_at.is_(None), OpenTask.due_at))
    return event, list(tasks)
