"""Timers that fire by themselves, and the email outbox, inside the service.

An APScheduler job wakes at the next due row of the pending-timer table (and
on a short safety interval), fires what is due and sends what the outbox
holds. Several service processes can share one database: each due case is
claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``, so a timer fires once; a
process killed while firing never commits, so its timers fire again elsewhere.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from service import cases, outbox
from service.engine import clock
from service.models import Case, PendingTimer, db

log = logging.getLogger(__name__)
BATCH = 50
TIMERS_CHANGED = "timers_changed"


def fire_due(app: Flask, instant: datetime | None = None) -> int:
    """Fire every timer due at ``instant`` (default now), earliest first; return how many fired.

    Timers created while firing are due relative to ``instant`` and fire too if already due.
    """
    with app.app_context():
        if instant is None:
            return _fire_all(db.session)
        with clock.clock_at(instant):
            return _fire_all(db.session)


def _fire_all(session: Session) -> int:
    fired, skipped = 0, set()
    while True:
        batch = _claim_due_cases(session, skipped)
        if not batch:
            session.rollback()
            return fired
        for case in batch:
            try:
                count = cases.fire_timers(session, case)
                session.commit()
            except Exception:  # one broken case must not stop every other case's timers
                session.rollback()
                log.exception("firing timers of case %s failed", case.id)
                skipped.add(case.id)
                continue
            fired += count
            if count == 0:
                skipped.add(case.id)


def _claim_due_cases(session: Session, skipped: set[int]) -> list[Case]:
    due_cases = (select(PendingTimer.case_id).where(PendingTimer.due_at <= clock.now()))
    query = (select(Case).where(Case.id.in_(due_cases), Case.status == "active")
             .order_by(Case.next_timer_at, Case.id).limit(BATCH))
    if skipped:
        query = query.where(Case.id.not_in(skipped))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Case)
    return list(session.scalars(query))


def next_due(app: Flask) -> datetime | None:
    with app.app_context():
        return db.session.scalar(select(PendingTimer.due_at).join(Case).where(Case.status == "active")
                                 .order_by(PendingTimer.due_at).limit(1))


class TimerService:
    """The background scheduler of one service process."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self._lock = threading.Lock()

    def start(self) -> None:
        interval = self.app.config["TIMER_SAFETY_INTERVAL_SECONDS"]
        self.scheduler.add_job(self.sweep, "interval", seconds=interval, id="safety", max_instances=1,
                               coalesce=True, next_run_time=datetime.now(clock.LONDON))
        self.scheduler.start()
        event.listen(Session, "after_commit", self._after_commit)

    def shutdown(self) -> None:
        event.remove(Session, "after_commit", self._after_commit)
        self.scheduler.shutdown(wait=True)

    def sweep(self) -> None:
        """Fire what is due, send the outbox, and set the alarm for the next due timer."""
        with self._lock:
            try:
                fire_due(self.app)
                outbox.send_due(self.app)
            except Exception:
                log.exception("timer sweep failed")
            self.wake_at(next_due(self.app))

    def wake_at(self, due: datetime | None) -> None:
        if due is None:
            return
        run_at = max(due, clock.now()) + timedelta(milliseconds=50)
        self.scheduler.add_job(self.sweep, "date", run_date=run_at, id="next-due", replace_existing=True)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(TIMERS_CHANGED, False):
            # Re-read the table outside the committing thread's transaction.
            self.scheduler.add_job(self._reschedule, id="reread", replace_existing=True)

    def _reschedule(self) -> None:
        self.wake_at(next_due(self.app))


def init_app(app: Flask) -> None:
    """Keep a (not yet started) timer service on the app; ``start`` runs it."""
    app.extensions["timers"] = TimerService(app)


def start(app: Flask) -> TimerService:
    service = app.extensions["timers"]
    if app.config["TIMERS_ENABLED"]:
        service.start()
    return service
