"""Retention and erasure: a closed case is kept for its retention period, then erased.

The period, in days after the case closed (completed or cancelled), is the first of: the council's
setting for the case's pathway (``retention_by_pathway``, by process key), the council's
``retention_days``, the service's ``DEFAULT_RETENTION_DAYS``; with none of them the case is kept.

Erasing a case removes what it knew about the family: its data, engine state and error, its tasks
(open and closed, with their drafts), timers, notifications and access log rows, and the details of its
audit events. What stays is a minimal record: the case row (id, pathway version, the dates it started
and closed, status ``erased``, a hash of its reference in place of the reference), its audit events'
who, what and when with every hash (the chain still verifies), and a last audit event saying it was
erased, when, and by which rule.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service import audit, families, paging
from service.cases import ERASED, SYSTEM
from service.engine import clock
from service.models import (AccessEvent, AuditEvent, Case, CaseDocument, CaseNote, Council, Notification, OpenTask,
                            PendingTimer, ProcessVersion, TaskRole)

CLOSED = ("completed", "cancelled")
#: Closed cases read at a time: a first run over years of a council's closed cases holds a batch, not all of them.
BATCH = 500


@dataclass(frozen=True)
class Rule:
    """Why a case is erased: how many days after closure, and where that number comes from."""

    days: int
    source: str  # "pathway halton_step_up", "council", "service default"

    def __str__(self) -> str:
        return f"{self.days} days after closure ({self.source})"


def rules(council: Council, default_days: int | None) -> tuple[dict[str, Rule], Rule | None]:
    """The council's rule per pathway key, and its rule for every other pathway (None: kept)."""
    per_pathway = {key: Rule(int(days), f"pathway {key}") for key, days in (council.retention_by_pathway or {}).items()}
    if council.retention_days is not None:
        return per_pathway, Rule(council.retention_days, "council")
    return per_pathway, Rule(default_days, "service default") if default_days is not None else None


def due(session: Session, council: Council, default_days: int | None,
        now: datetime | None = None) -> Iterator[tuple[Case, Rule]]:
    """The council's closed cases whose retention has ended, each with the rule that ends it: by rule, in order of
    id, read :data:`BATCH` at a time (a caller may erase each before the next is read)."""
    now = now or clock.now()
    per_pathway, otherwise = rules(council, default_days)
    for key, rule in per_pathway.items():
        yield from ((case, rule) for case in _closed_before(session, now, rule, [key]))
    if otherwise is not None:
        yield from ((case, otherwise) for case in _closed_before(session, now, otherwise, list(per_pathway),
                                                                  exclude=True))


def _closed_before(session: Session, now: datetime, rule: Rule, keys: list[str], exclude: bool = False
                   ) -> Iterator[Case]:
    on_pathways = ProcessVersion.key.not_in(keys) if exclude else ProcessVersion.key.in_(keys)
    # A closed case is not changed again: its last update is its closure.
    query = select(Case).join(Case.process).where(Case.status.in_(CLOSED),
                                                  Case.updated_at <= now - timedelta(days=rule.days), on_pathways)
    for batch in paging.in_batches(session, query, Case.id, BATCH):
        yield from batch


def erase(session: Session, case: Case, rule: Rule, council: Council) -> None:
    """Erase ``case`` (see the module's description), leaving its minimal record and a ``case_erased`` event."""
    reference_hash = audit.sha256(f"{council.key}:{case.reference}")
    record = {"rule": str(rule), "reference_hash": reference_hash, "pathway": case.process.key,
              "version": case.process.version, "started": case.created_at.isoformat(),
              "closed": case.updated_at.isoformat(), "status": case.status}
    with audit.erasing(session):
        _remove_what_the_case_knew(session, case.id)
    case.reference, case.status, case.outcome, case.data, case.state, case.error = (
        reference_hash, ERASED, None, {}, "", None)
    case.waiting_for, case.next_timer_at, case.fired_ahead, case.started_by_id = [], None, None, None
    families.forget_unless_needed(session, case)
    session.add(AuditEvent(case_id=case.id, at=clock.now(), actor=SYSTEM, event=audit.ERASED, task=None,
                           detail=record))


def _remove_what_the_case_knew(session: Session, case_id: int) -> None:
    tasks = select(OpenTask.id).where(OpenTask.case_id == case_id).scalar_subquery()
    for statement in (delete(TaskRole).where(TaskRole.task_id.in_(tasks)),
                      delete(OpenTask).where(OpenTask.case_id == case_id),
                      delete(PendingTimer).where(PendingTimer.case_id == case_id),
                      delete(Notification).where(Notification.case_id == case_id),
                      delete(AccessEvent).where(AccessEvent.case_id == case_id),
                      delete(CaseNote).where(CaseNote.case_id == case_id),
                      delete(CaseDocument).where(CaseDocument.case_id == case_id),
                      update(AuditEvent).where(AuditEvent.case_id == case_id).values(detail={})):
        session.execute(statement.execution_options(synchronize_session=False))
