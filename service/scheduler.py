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
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import event, exists, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from service import audit, cases, outbox, tenancy
from service.engine import clock
from service.models import Case, Council, PendingTimer, db

log = logging.getLogger(__name__)
BATCH = 50
TIMERS_CHANGED = "timers_changed"
_sweeping = threading.local()  # set while this thread is sweeping: its own commits need no re-read


def fire_due(app: Flask, instant: datetime | None = None) -> int:
    """Fire every timer due at ``instant`` (default now), earliest first; return how many fired.

    Timers created while firing are due relative to ``instant`` and fire too if already due.
    """
    return _fire_due(app, instant)[0]


def _fire_due(app: Flask, instant: datetime | None = None) -> tuple[int, set[int]]:
    with app.app_context():
        if instant is None:
            return _fire_all(db.session)
        with clock.clock_at(instant):
            return _fire_all(db.session)


def _fire_all(session: Session) -> tuple[int, set[int]]:
    """Fire case by case, each in a transaction of its own; return (timers fired, cases passed over).

    Due cases are found across councils; each is fired in its own council's scope and calendar. A case
    is passed over for the rest of this sweep when its firing failed (it keeps its timers and is tried
    again next sweep), when another process holds it (that process fires it), or when nothing in it
    turned out to be due.
    """
    fired, passed = 0, set()
    councils: dict[int, Council] = {}
    while True:
        with tenancy.all_councils(session):
            candidates = _due_cases(session, passed)
            councils.update((c.id, c) for c in session.scalars(
                select(Council).where(Council.id.in_({council for _, council in candidates} - set(councils)))))
        session.rollback()  # no snapshot or lock is held between batches
        if not candidates:
            return fired, passed
        for case_id, council_id in candidates:
            tenancy.act_for(session, councils[council_id])
            case = _claim(session, case_id)
            if case is None:  # fired meanwhile, or being fired by another process right now
                session.rollback()
                passed.add(case_id)
                continue
            try:
                count = cases.fire_timers(session, case)
                session.commit()
            except StaleDataError:  # another worker moved the case on meanwhile: its timers are not broken
                session.rollback()
                passed.add(case_id)
                continue
            except Exception as failure:  # one broken case must not stop every other case's timers
                session.rollback()
                log.error("firing the timers of case %s failed (%s); they stay due", case_id, type(failure).__name__)
                _count_failure(session, case_id, failure)
                passed.add(case_id)
                continue
            finally:
                tenancy.leave(session)
            fired += count
            if count == 0:
                passed.add(case_id)


def _count_failure(session: Session, case_id: int, failure: Exception) -> None:
    """Count the failure on the case in a transaction of its own (the third quarantines it)."""
    try:
        cases.record_timer_failure(session, case_id, type(failure).__name__)
        session.commit()
    except Exception:  # the database itself may be what failed: the next sweep tries again
        session.rollback()
        log.error("could not count the timer failure of case %s", case_id)


def _active(case_id_column):
    return exists().where(Case.id == case_id_column, Case.status == "active")


def _due_cases(session: Session, passed: set[int]) -> list[tuple[int, int]]:
    """The next (case, council) pairs with a due timer, earliest due first (read without locks: only a hint).

    Read from the pending-timer table along its due_at index, so the cost is the batch, not the table:
    100,000 pending timers cost no more than 100.
    """
    query = (select(PendingTimer.case_id, PendingTimer.council_id)
             .where(PendingTimer.due_at <= clock.now(), _active(PendingTimer.case_id))
             .order_by(PendingTimer.due_at).limit(BATCH))
    if passed:
        query = query.where(PendingTimer.case_id.not_in(passed))
    return list(dict.fromkeys((row[0], row[1]) for row in session.execute(query)))  # a case with two due timers once


def _claim(session: Session, case_id: int) -> Case | None:
    """The case, locked for this transaction if it still has a due timer and no other process holds it.

    On PostgreSQL this is ``SELECT ... FOR UPDATE SKIP LOCKED`` on the one case row, so two processes never
    fire the same case and a process that dies mid-firing (its transaction rolled back) leaves the timers
    due for the next sweep. SQLite has one writer at a time, and the case's version column stops a lost
    update there.
    """
    still_due = exists().where(PendingTimer.case_id == Case.id, PendingTimer.due_at <= clock.now())
    query = (select(Case).where(Case.id == case_id, Case.status == "active", still_due)
             .execution_options(populate_existing=True))  # read the state inside the lock, never a stale copy
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Case)
    return session.scalars(query).first()


def next_due(app: Flask, passed_over: set[int] | frozenset[int] = frozenset()) -> datetime | None:
    """When the earliest pending timer of an active case is due (leaving out ``passed_over`` cases)."""
    with app.app_context(), tenancy.all_councils(db.session):
        query = select(PendingTimer.due_at).where(_active(PendingTimer.case_id)).order_by(PendingTimer.due_at).limit(1)
        if passed_over:
            query = query.where(PendingTimer.case_id.not_in(passed_over))
        return db.session.scalar(query)


class TimerService:
    """The background scheduler of one service process.

    Three jobs: a sweep at start-up and then on a safety interval (it catches up after downtime, and picks
    up timers another process set or left behind), an alarm at the next due row of the pending-timer table
    (``next-due``), and a re-read of that table after every commit that changed a timer (``reread``).
    Alarms are set on the service clock: "due in 2 hours" on the service clock rings 2 real hours later.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"misfire_grace_time": None,
                                                                          "coalesce": True})
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._running = 0  # sweeps in progress in this process

    def start(self) -> None:
        interval = self.app.config["TIMER_SAFETY_INTERVAL_SECONDS"]
        self.scheduler.add_job(self.sweep, "interval", seconds=interval, id="safety", max_instances=1,
                               next_run_time=datetime.now(timezone.utc))  # at once: catch up after downtime
        self.scheduler.start()
        event.listen(Session, "after_commit", self._after_commit)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop: no new sweep starts, the one running finishes (what it fired is committed), then return.

        APScheduler's own ``shutdown(wait=True)`` holds its job store's lock while it waits, and a sweep that
        ends by setting the next alarm needs that lock: waiting here instead cannot deadlock.
        """
        self._stopping.set()
        event.remove(Session, "after_commit", self._after_commit)
        self.scheduler.shutdown(wait=False)
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout)

    def sweep(self) -> None:
        """Fire what is due, send the outbox, and set the alarm for the next due timer.

        No lock is held across the sweep: each case is claimed in the database on its own (two sweeps at
        once, in one process or several, fire each timer once), so a slow case delays nothing else.
        """
        if self._stopping.is_set():
            return
        with self._idle:
            self._running += 1
        passed_over: set[int] = set()
        _sweeping.active = True
        try:
            passed_over = _fire_due(self.app)[1]
            outbox.send_due(self.app)
            with self.app.app_context():
                audit.seal_all(db.session)  # chain what was written since the last sweep
        except Exception as failure:
            log.error("timer sweep failed (%s)", type(failure).__name__)
        finally:
            _sweeping.active = False
            with self._idle:
                self._running -= 1
                self._idle.notify_all()
        # A case passed over (failing, or held by another process) waits for the safety interval,
        # rather than waking this process again at once.
        self.wake_at(next_due(self.app, passed_over))

    def wake_at(self, due: datetime | None) -> None:
        """Set the alarm for ``due`` (service clock), replacing the one set before."""
        if due is None or self._stopping.is_set():
            return
        delay = max(due - clock.now(), timedelta(0)) + timedelta(milliseconds=50)
        try:
            self.scheduler.add_job(self.sweep, "date", run_date=datetime.now(timezone.utc) + delay, id="next-due",
                                   replace_existing=True, max_instances=2)
        except SchedulerNotRunningError:  # shutting down meanwhile
            pass

    def _after_commit(self, session: Session) -> None:
        changed = session.info.pop(TIMERS_CHANGED, False)
        if changed and not getattr(_sweeping, "active", False):  # a sweep sets the alarm when it ends
            # Re-read the table outside the committing thread's transaction.
            try:
                self.scheduler.add_job(self._reschedule, id="reread", replace_existing=True)
            except SchedulerNotRunningError:  # shutting down: the next process start sweeps anyway
                pass

    def _reschedule(self) -> None:
        if not self._stopping.is_set():
            self.wake_at(next_due(self.app))


def init_app(app: Flask) -> None:
    """Keep a (not yet started) timer service on the app; ``start`` runs it."""
    app.extensions["timers"] = TimerService(app)


def start(app: Flask) -> TimerService:
    service = app.extensions["timers"]
    if app.config["TIMERS_ENABLED"]:
        service.start()
    return service
