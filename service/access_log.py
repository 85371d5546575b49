"""The access log: who opened which case or task, when, and through what; read by the council's auditor.

Children's case records need it: a family may ask who has looked at their file, and a council must be
able to answer. Reads are recorded by the service layer (``cases.get_case`` and ``cases.get_task`` with
a ``purpose``), never by a view, so the API and the pages record alike. The log is append-only (see
``service.audit``); only the erasure of a case removes its rows.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import policy
from service.engine import clock
from service.models import AccessEvent
from service.policy import Actor

PAGE_SIZE = 50
#: What a read was for: the API's case, history and task, the pages' case, diagram and task; a family's
#: chronology (one line for each case it shows); a document's download (either way); an analyst opening a
#: case's error in the analyst workspace.
PURPOSES = ("case", "case_history", "case_page", "diagram", "task", "task_page", "family_chronology", "document",
            "analyst_case")


def record(session: Session, actor: Actor, case_id: int, purpose: str, task_id: str | None = None) -> None:
    """Note that ``actor`` opened the case (or one of its tasks); the caller's commit keeps it."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose of a read: {purpose}")
    session.add(AccessEvent(at=clock.now(), user_id=actor.user_id, actor=actor.name, case_id=case_id,
                            task_id=task_id, purpose=purpose))


def entries(session: Session, actor: Actor, *, case_id: int | None = None, user: str | None = None,
            page: int = 1) -> list[AccessEvent]:
    """A page of the council's access log, newest first, for its auditor; filtered by case and user name."""
    policy.require_auditor(actor)
    query = select(AccessEvent)
    if case_id is not None:
        query = query.where(AccessEvent.case_id == case_id)
    if user:
        query = query.where(AccessEvent.actor == user)
    query = query.order_by(AccessEvent.at.desc(), AccessEvent.id.desc())
    return list(session.scalars(query.limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE)))
