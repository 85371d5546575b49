"""A signal on its way to every case that waits for it, however many: the rest of a broadcast, a batch at a time.

Reaching a case is an engine step (5 to 10 ms), so a signal that 10,000 cases wait for took the sender's request
past the worker's timeout, and its transaction, rolled back, reached none. The sender's request reaches the first
:data:`service.cases.SIGNAL_BATCH` cases (its answer lists them) and keeps the rest as a
:class:`~service.models.SignalBroadcast` (``service.cases.broadcast_signal``); the timer service of any process
reaches them here, a batch at a time (``service.scheduler``: a broadcast on its way is due, as a timer is). A
broadcast's row is claimed ``FOR UPDATE SKIP LOCKED`` (two processes never deliver the same batch), each case is
locked as it is read, and each batch is committed with how far the broadcast has got: a process stopped midway
leaves the rest to the next sweep, and no case catches the signal twice (one that caught it waits for it no more,
and the broadcast has moved past it).

Each case catches the signal in a savepoint of its own: one that cannot take it (its step refused, its rows
refused by the database) is logged and noted in its history, and the others go on. A batch the database fails is
tried again after :data:`RETRY`. Only the cases there were when the signal was sent catch it (``up_to_case_id``);
of those, a case that came to wait for it while it was on its way catches it too, as it would have had the
sender's request reached it later.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service import cases, policy, tenancy
from service.engine import clock
from service.errors import Forbidden, NotFound
from service.models import Council, SignalBroadcast, db
from service.policy import Actor

log = logging.getLogger(__name__)
#: How long a broadcast whose batch the database failed waits before it is tried again.
RETRY = timedelta(seconds=30)
#: The cases read (and locked) at a time, and how long a sweep goes on reaching them before it commits and lets
#: the timers due meanwhile fire (a case is 5 to 10 ms: about 100 to 200 cases a second).
CHUNK = 10
SWEEP_SECONDS = 0.25


def deliver_due(app: Flask, stop: threading.Event | None = None) -> int:
    """Reach the next batch of cases of each broadcast that is due (one batch each, each committed:
    :func:`_deliver_batch`); return how many cases caught a signal. A broadcast still on its way stays due: the
    caller comes back for it."""
    reached, tried = 0, set()
    with app.app_context():
        session = db.session
        try:
            while not (stop is not None and stop.is_set()):
                claimed = _claim(session, tried)
                if claimed is None:
                    return reached
                tried.add(claimed.id)
                try:
                    reached += _deliver_batch(session, claimed)
                    session.commit()
                except Exception as failure:  # the database failed: the batch stays, tried again later
                    session.rollback()
                    log.error("a batch of signal broadcast %s failed (%s); it is tried again in %s s", claimed.id,
                              type(failure).__name__, int(RETRY.total_seconds()))
                    _postpone(session, claimed.id)
                finally:
                    tenancy.leave(session)
                    session.expunge_all()
            return reached
        finally:
            db.session.remove()


def send(session: Session, name: str, data: Any, actor: Actor, *, reference: str | None = None) -> dict[str, Any]:
    """A signal from outside for every case of the acting council that waits for it, and every pathway it starts
    (``POST /signals``), for the council's admin (``policy.may_broadcast``); 403 for anyone else. What
    :func:`service.cases.broadcast_signal` answers: the cases reached, those started, and the broadcast that
    reaches the rest."""
    if not policy.may_broadcast(actor):
        raise Forbidden("sending a signal to every case of the council is for its admin")
    return cases.broadcast_signal(session, name, data, actor, reference=reference)


def sent(session: Session, broadcast_id: int, actor: Actor) -> SignalBroadcast:
    """A signal sent to many cases of the acting council, for its admin (``policy.may_broadcast``): how far it has
    got; 403 for anyone else, 404 if the council sent no such signal."""
    broadcast = session.get(SignalBroadcast, broadcast_id)
    if broadcast is None:
        raise NotFound(f"no signal {broadcast_id} was sent to many cases of this council")
    if not policy.may_broadcast(actor):
        raise Forbidden("the signals sent to every case of the council are for its admin")
    return broadcast


def next_due(session: Session) -> datetime | None:
    """When the next batch of a broadcast on its way (of any council) is due; None when none is on its way."""
    with tenancy.all_councils(session):
        return session.scalar(select(func.min(SignalBroadcast.due_at)).where(SignalBroadcast.finished_at.is_(None)))


def _claim(session: Session, tried: set[int]) -> SignalBroadcast | None:
    """The broadcast on its way whose batch is due first, that no other process holds (and this round has not
    tried), locked, with its council's scope set."""
    query = (select(SignalBroadcast).where(SignalBroadcast.finished_at.is_(None), SignalBroadcast.due_at <= clock.now())
             .order_by(SignalBroadcast.due_at, SignalBroadcast.id).limit(1))
    if tried:
        query = query.where(SignalBroadcast.id.not_in(tried))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    with tenancy.all_councils(session):
        claimed = session.scalars(query).first()
        council = session.get(Council, claimed.council_id) if claimed is not None else None
    if claimed is None:
        session.rollback()
        return None
    tenancy.act_for(session, council)
    return claimed


def _deliver_batch(session: Session, broadcast: SignalBroadcast) -> int:
    """Reach the broadcast's next cases, :data:`CHUNK` at a time for up to :data:`SWEEP_SECONDS` (timers due
    meanwhile fire before the next batch), each case in a savepoint of its own; return how many caught it."""
    sender = Actor(broadcast.sent_by, (), broadcast.sent_by_id, broadcast.council_id)
    reached, began = 0, time.monotonic()
    while True:
        chunk = cases.signal_candidates(session, broadcast.name, after=broadcast.after_case_id,
                                        up_to=broadcast.up_to_case_id, thrower_id=broadcast.thrower_case_id,
                                        size=CHUNK)
        for case in chunk:
            reached += _catch(session, broadcast, case, sender)
        if chunk:
            broadcast.after_case_id = chunk[-1].id
        if len(chunk) < CHUNK:
            broadcast.finished_at, broadcast.payload = clock.now(), {}  # done: its data is no longer needed
            break
        if time.monotonic() - began >= SWEEP_SECONDS:
            break
    broadcast.reached += reached
    return reached


def _catch(session: Session, broadcast: SignalBroadcast, case, sender: Actor) -> bool:
    """The case catches the signal in a savepoint of its own; one that cannot is noted in its history."""
    case_id, savepoint = case.id, session.begin_nested()
    try:
        caught = cases.catch_signal(session, case, broadcast.name, broadcast.payload, sender)
        savepoint.commit()
        return caught
    except Exception as failure:  # noqa: BLE001 (one case must not stop the signal reaching the others)
        savepoint.rollback()
        log.error("signal broadcast %s could not reach case %s (%s)", broadcast.id, case_id, type(failure).__name__)
        cases.record_undelivered(session, case_id, broadcast.name, _reason(failure), sender)
        return False


def _postpone(session: Session, broadcast_id: int) -> None:
    try:
        with tenancy.all_councils(session):
            session.execute(update(SignalBroadcast).where(SignalBroadcast.id == broadcast_id)
                            .values(due_at=clock.now() + RETRY).execution_options(synchronize_session=False))
        session.commit()
    except Exception as failure:  # the database itself is down: the broadcast stays due, and so is tried again
        session.rollback()
        log.error("could not postpone signal broadcast %s (%s)", broadcast_id, type(failure).__name__)


def _reason(failure: Exception) -> str:
    """What the case's history says: the service's own message for a refusal, else the kind of failure."""
    return getattr(failure, "message", None) or type(failure).__name__
