"""The audit log: append-only, and tamper-evident through a hash chain per council.

Events are written unchained, so that writing one never waits for another case's transaction; they are
**sealed** after they are committed, in a short transaction of their own (:func:`seal`: the timer sweep
seals every council's new events, and ``flask audit verify`` seals before it checks): each takes the next
``seq`` of its council, the hash of its detail, the previous event's hash, and a hash of all of these and
its own fields. The council's chain head (``audit_chains``) is locked while a seal runs, so two sealers
queue one behind the other and never fork the chain; a transaction that hangs holds no chain lock.
``flask audit verify`` recomputes the chain and names the first event that does not fit.

Nothing updates or deletes an audit or access event, except erasure (``service.retention``), which
empties the details of an erased case's events and keeps their hashes.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import ORMExecuteState, Session

from service import tenancy
from service.engine import clock
from service.models import AccessEvent, AuditChain, AuditEvent, Council

ERASING = "erasing"
SEALING = "sealing"
ERASED = "case_erased"
APPEND_ONLY = (AuditEvent, AccessEvent)
SEAL_BATCH = 1000  # events sealed per transaction by seal_all


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
def _guard_events(session: Session, flush_context, instances) -> None:
    _refuse_changes(session)
    for row in session.new:
        if isinstance(row, AuditEvent) and row.council_id is None:
            row.council_id = tenancy.acting_council_id(session)


def seal(session: Session, council_id: int, limit: int | None = None) -> int:
    """Chain the council's committed events not yet chained (the first ``limit`` of them), in the order they
    were written; how many.

    Run in a transaction of its own and commit at once: the chain head stays locked until then. Core
    statements: the unchained events' fields are read as plain rows, and their links written with one
    executemany ``UPDATE`` (no ORM row per event).
    """
    seq, last = _lock_head(session, council_id)
    events = AuditEvent.__table__
    rows = session.execute(select(events.c.id, events.c.case_id, events.c.at, events.c.actor, events.c.event,
                                  events.c.task, events.c.detail)
                           .where(events.c.council_id == council_id, events.c.seq.is_(None))
                           .order_by(events.c.id).limit(limit)).all()
    links = []
    for row in rows:
        seq += 1
        link = SimpleNamespace(council_id=council_id, seq=seq, case_id=row.case_id, at=row.at, actor=row.actor,
                               event=row.event, task=row.task, detail_hash=detail_hash(row.detail or {}),
                               prev_hash=last)
        last = event_hash(link)
        links.append({"b_id": row.id, "seq": seq, "detail_hash": link.detail_hash, "prev_hash": link.prev_hash,
                      "hash": last})
    if links:
        session.execute(update(events).where(events.c.id == bindparam("b_id"))
                        .values(seq=bindparam("seq"), detail_hash=bindparam("detail_hash"),
                                prev_hash=bindparam("prev_hash"), hash=bindparam("hash")), links)
    chains = AuditChain.__table__
    session.execute(update(chains).where(chains.c.council_id == council_id).values(seq=seq, last_hash=last))
    return len(rows)


def seal_all(session: Session) -> int:
    """Seal every council's new events, council by council, :data:`SEAL_BATCH` at a time, each batch in its own
    short transaction (the memory it takes is one batch's, however many events wait)."""
    with tenancy.all_councils(session):
        councils = list(session.scalars(select(Council).where(Council.id.in_(
            select(AuditEvent.council_id).where(AuditEvent.seq.is_(None)).distinct()))))
    session.rollback()
    sealed = 0
    for council in councils:
        while True:
            tenancy.act_for(session, council)
            try:
                count = seal(session, council.id, SEAL_BATCH)
                session.commit()
            finally:
                tenancy.leave(session)
            sealed += count
            if count < SEAL_BATCH:
                break
    return sealed


def _lock_head(session: Session, council_id: int) -> tuple[int, str]:
    """Lock the council's chain head for this transaction (creating it for its first event); its seq and hash."""
    chains = AuditChain.__table__
    touch = update(chains).where(chains.c.council_id == council_id).values(seq=chains.c.seq)  # takes the row lock
    if session.execute(touch).rowcount == 0:  # the council's first event
        insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(chains)
        session.execute(insert.values(council_id=council_id, seq=0, last_hash="").on_conflict_do_nothing())
        session.execute(touch)
    seq, last = session.execute(select(chains.c.seq, chains.c.last_hash)
                                .where(chains.c.council_id == council_id)).one()
    return seq, last


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
    if session.info.get(ERASING) or session.info.get(SEALING):
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
        if row.seq is None:  # written after the last seal: the next seal chains it
            break
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
