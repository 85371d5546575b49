"""The audit log: append-only, and tamper-evident through a hash chain per council.

Every new :class:`~service.models.AuditEvent`, whoever adds it, is chained as it is flushed: it takes
the next ``seq`` of its council, the hash of its detail, the previous event's hash, and a hash of all
of these and its own fields. The council's chain head (``audit_chains``) is moved on by an UPDATE
before it is read, which locks the row until the commit (PostgreSQL: a row lock; SQLite: the database's
one writer), so two processes appending to one council's chain queue one behind the other and never
fork it. ``flask audit verify`` recomputes the chain and names the first event that does not fit.

Nothing updates or deletes an audit or access event, except erasure (``service.retention``), which
empties the details of an erased case's events and keeps their hashes.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import ORMExecuteState, Session

from service import tenancy
from service.engine import clock
from service.models import AccessEvent, AuditChain, AuditEvent, Council

ERASING = "erasing"
ERASED = "case_erased"
APPEND_ONLY = (AuditEvent, AccessEvent)


class AppendOnly(RuntimeError):
    """Something tried to change or delete an audit or access event (a bug: nothing in the service may)."""


# -- the chain -------------------------------------------------------------------------------------

def canonical(value: Any) -> str:
    """One JSON text per value (sorted keys, no spaces), so that a hash can be recomputed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def detail_hash(detail: dict[str, Any]) -> str:
    return sha256(canonical(json.loads(canonical(detail))))  # as stored: JSON keys are strings


def event_hash(row: AuditEvent) -> str:
    """The hash of the event's fields, its detail's hash and the previous event's hash."""
    return sha256(canonical({"council": row.council_id, "seq": row.seq, "case": row.case_id,
                             "at": clock.as_utc(row.at).isoformat(), "actor": row.actor, "event": row.event,
                             "task": row.task, "detail": row.detail_hash, "prev": row.prev_hash}))


@event.listens_for(Session, "before_flush")
def _chain_new_events(session: Session, flush_context, instances) -> None:
    _refuse_changes(session)
    by_council: dict[int, list[AuditEvent]] = defaultdict(list)
    for row in session.new:  # in the order they were added
        if isinstance(row, AuditEvent) and row.hash is None:
            row.council_id = row.council_id or tenancy.acting_council_id(session)
            by_council[row.council_id].append(row)
    for council_id, rows in by_council.items():
        _append(session, council_id, rows)


def _append(session: Session, council_id: int, rows: list[AuditEvent]) -> None:
    seq, last = _claim_head(session, council_id, len(rows))
    for row in rows:
        seq += 1
        row.at = row.at or clock.now()
        row.detail = row.detail if row.detail is not None else {}
        row.seq, row.prev_hash, row.detail_hash = seq, last, detail_hash(row.detail)
        row.hash = last = event_hash(row)
    session.execute(update(AuditChain.__table__).where(AuditChain.__table__.c.council_id == council_id)
                    .values(last_hash=last))


def _claim_head(session: Session, council_id: int, count: int) -> tuple[int, str]:
    """Move the council's chain head on by ``count`` (locking it until the commit); its seq and hash before."""
    chains = AuditChain.__table__
    claim = update(chains).where(chains.c.council_id == council_id).values(seq=chains.c.seq + count)
    if session.execute(claim).rowcount == 0:  # the council's first event
        insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(chains)
        session.execute(insert.values(council_id=council_id, seq=0, last_hash="").on_conflict_do_nothing())
        session.execute(claim)
    seq, last = session.execute(select(chains.c.seq, chains.c.last_hash)
                                .where(chains.c.council_id == council_id)).one()
    return seq - count, last


# -- append-only -----------------------------------------------------------------------------------

@contextmanager
def erasing(session: Session) -> Iterator[None]:
    """Within: erasure may empty audit details and delete access events (nothing else ever may)."""
    session.info[ERASING] = True
    try:
        yield
    finally:
        session.info.pop(ERASING, None)


def _refuse_changes(session: Session) -> None:
    if session.info.get(ERASING):
        return
    for row in session.deleted:
        if isinstance(row, APPEND_ONLY):
            raise AppendOnly(f"a {type(row).__name__} cannot be deleted")
    for row in session.dirty:
        if isinstance(row, APPEND_ONLY) and session.is_modified(row):
            raise AppendOnly(f"a {type(row).__name__} cannot be changed")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and not state.session.info.get(ERASING) and any(
            mapper.class_ in APPEND_ONLY for mapper in state.all_mappers):
        raise AppendOnly("audit and access events cannot be changed or deleted")


# -- verifying -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    council: str
    events: int
    broken_at: int | None = None  # the id of the first event that does not fit
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.reason is None


def verify(session: Session, council: Council) -> Verdict:
    """Recompute ``council``'s chain from its first event; the first event that does not fit, and why."""
    erased = set(session.scalars(select(AuditEvent.case_id).where(AuditEvent.council_id == council.id,
                                                                  AuditEvent.event == ERASED)))
    query = (select(AuditEvent).where(AuditEvent.council_id == council.id)
             .order_by(AuditEvent.seq.is_(None), AuditEvent.seq).execution_options(yield_per=500))
    seq, last, count = 0, "", 0
    for row in session.scalars(query):
        reason = _misfit(row, seq, last, row.case_id in erased)
        if reason:
            return Verdict(council.key, count, row.id, reason)
        seq, last, count = row.seq, row.hash, count + 1
    head = session.get(AuditChain, council.id)
    head_at = (head.seq, head.last_hash) if head else (0, "")
    if head_at != (seq, last):
        return Verdict(council.key, count, None, f"events after number {seq} are missing (the chain head is "
                                                 f"at number {head_at[0]})")
    return Verdict(council.key, count)


def _misfit(row: AuditEvent, seq: int, last: str, erased: bool) -> str | None:
    if row.seq is None:
        return "it is not in the chain (no number)"
    if row.seq != seq + 1:
        return f"it is number {row.seq}, but number {seq + 1} is missing"
    if row.prev_hash != last:
        return "it does not follow the event before it (its previous hash differs)"
    if not (erased and row.detail == {}) and detail_hash(row.detail) != row.detail_hash:
        return "its detail was changed"
    if event_hash(row) != row.hash:
        return "its fields were changed"
    return None
