"""Timers that fire by themselves, and the email outbox, inside the service.

An APScheduler job wakes at the next due row of the pending-timer table (and
on a short safety interval), fires what is due and sends what the outbox
holds. Several service processes can share one database: due cases are
claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``, so a timer fires once; a
process killed while firing never commits, so its timers fire again elsewhere.
On PostgreSQL a pool of worker threads claims batches of cases and commits each
batch once, every case in a savepoint of its own; a commit that adds a timer due before every
process's next safety sweep (or brings one forward to then) sends ``NOTIFY``, which wakes every process's timer
service. ``flask --app service.timer_worker timers run``
runs the timer service alone, as a separate worker process.
"""
from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, current_app, has_app_context
from sqlalchemy import event, exists, select, text
from sqlalchemy.orm import Session, selectinload, undefer
from sqlalchemy.orm.exc import StaleDataError

from service import audit, broadcasts, cases, outbox, reminders, tenancy
from service.engine import clock
from service.models import Case, Council, PendingTimer, db

log = logging.getLogger(__name__)
BATCH = 50
#: On a session's ``info``: the earliest instant a timer its transaction added or brought forward needs a timer
#: service awake (see :func:`timers_changed`).
TIMERS_CHANGED = "timers_changed"
_sweeping = threading.local()  # set while this thread is sweeping: its own commits need no re-read


def fire_due(app: Flask, instant: datetime | None = None) -> int:
    """Fire every timer due at ``instant`` (default now), earliest first; return how many fired.

    Timers created while firing are due relative to ``instant`` and fire too if already due.
    """
    return _fire_due(app, instant)[0]


def _fire_due(app: Flask, instant: datetime | None = None) -> tuple[int, set[int]]:
    stop = getattr(_sweeping, "stop", None)  # set by a TimerService's sweep: stop between batches
    with app.app_context():
        batched = db.engine.dialect.name == "postgresql"
        if not batched:  # SQLite: one writer at a time, so one case per transaction in this thread
            if instant is None:
                return _fire_all(db.session)
            with clock.clock_at(instant):
                return _fire_all(db.session)
    return _fire_batches(app, instant, stop)


# -- PostgreSQL: batches of cases claimed with SKIP LOCKED, fired by a pool of worker threads ---------

def _fire_batches(app: Flask, instant: datetime | None, stop: threading.Event | None) -> tuple[int, set[int]]:
    """Fire what is due with ``TIMER_WORKERS`` threads, each with its own session (connection).

    Each worker claims a batch of up to ``TIMER_BATCH`` due cases in one statement (``FOR UPDATE OF cases SKIP
    LOCKED``: workers of this and every other process claim disjoint batches), fires each case inside a
    savepoint of the batch's transaction (a case that fails rolls back to its savepoint alone, and its failure
    is counted there), and commits the batch once. A worker stops when it can claim nothing more, or when the
    service is stopping (after committing the batch in hand).
    """
    workers = max(1, int(app.config.get("TIMER_WORKERS", 4)))
    passed: set[int] = set()
    guard = threading.Lock()

    def work() -> int:
        _sweeping.active = True
        try:
            with app.app_context():
                try:
                    if instant is None:
                        return _work(db.session, app, passed, guard, stop)
                    with clock.clock_at(instant):
                        return _work(db.session, app, passed, guard, stop)
                finally:
                    db.session.remove()
        finally:
            _sweeping.active = False

    if workers == 1:
        return contextvars.copy_context().run(work), passed
    with ThreadPoolExecutor(workers, thread_name_prefix="timer-worker") as pool:
        futures = [pool.submit(contextvars.copy_context().run, work) for _ in range(workers)]
        return sum(f.result() for f in futures), passed


def _work(session: Session, app: Flask, passed: set[int], guard: threading.Lock,
          stop: threading.Event | None) -> int:
    size = max(1, int(app.config.get("TIMER_BATCH", BATCH)))
    councils: dict[int, Council] = {}
    versions: dict = {}  # pathway versions read by this worker (reminders.load), kept across its batches
    fired = 0
    while not (stop is not None and stop.is_set()):
        with guard:
            skip = set(passed)
        with tenancy.all_councils(session):
            claimed = _claim_batch(session, skip, size)
            if not claimed:
                session.rollback()
                return fired
            wanted = {council for _, council in claimed} - set(councils)
            if wanted:
                councils.update((c.id, c) for c in session.scalars(select(Council).where(Council.id.in_(wanted))))
            ids = [case_id for case_id, _ in claimed]
            # Read after the lock is taken: a case another worker fired meanwhile has no due row any more.
            now = clock.now()
            pending: dict[int, list] = {}
            for row in session.execute(select(PendingTimer.__table__).where(PendingTimer.case_id.in_(ids))):
                pending.setdefault(row.case_id, []).append(row)
            due = {case_id for case_id, rows in pending.items() if any(row.due_at <= now for row in rows)}
            reminded, quick = (reminders.fire(session, reminders.load(session, due, pending, now, versions), pending, now)
                               if due and app.config.get("TIMER_QUICK_REMINDERS", True) else (0, set()))
            # Only the cases the engine fires are loaded whole (their data decrypted, as ORM rows).
            rest = due - quick
            loaded = {case.id: case for case in session.scalars(
                select(Case).where(Case.id.in_(rest)).options(undefer(Case.state), selectinload(Case.timers))
                .execution_options(populate_existing=True))} if rest else {}
        count, left = _fire_batch(session, claimed, councils, loaded, quick)
        count += reminded
        try:
            session.commit()
        except Exception as failure:  # the database failed: every case of the batch stays due
            session.rollback()
            log.error("committing a batch of %s timer cases failed (%s); they stay due", len(claimed),
                      type(failure).__name__)
            left = set(ids)
            count = 0
        session.expunge_all()
        fired += count
        with guard:
            passed.update(left)
    return fired


def _claim_batch(session: Session, skip: set[int], size: int) -> list[tuple[int, int]]:
    """Lock up to ``size`` active cases with a due timer, earliest due first, skipping those locked elsewhere.

    One statement along the pending-timer table's ``due_at`` index; PostgreSQL applies the LIMIT after the
    locks (rows another transaction holds are skipped, not counted), so concurrent claimers get disjoint
    batches and none waits for another.
    """
    query = (select(Case.id, Case.council_id).join(PendingTimer, PendingTimer.case_id == Case.id)
             .where(PendingTimer.due_at <= clock.now(), Case.status == "active")
             .order_by(PendingTimer.due_at).limit(size)
             .with_for_update(skip_locked=True, of=Case))
    if skip:
        query = query.where(Case.id.not_in(skip))
    return list(dict.fromkeys((row[0], row[1]) for row in session.execute(query)))


def _fire_batch(session: Session, claimed: list[tuple[int, int]], councils: dict[int, Council],
                loaded: dict[int, Case], quick: set[int]) -> tuple[int, set[int]]:
    """Fire each claimed case in a savepoint of its own; return (timers fired, cases passed over this sweep)."""
    fired, left = 0, set()
    for case_id, council_id in claimed:
        if case_id in quick:
            continue
        case = loaded.get(case_id)
        if case is None:  # fired meanwhile by another worker: nothing is due in it now
            left.add(case_id)
            continue
        tenancy.act_for(session, councils[council_id])
        savepoint = session.begin_nested()
        try:
            count = cases.fire_timers(session, case)
            savepoint.commit()
        except StaleDataError:
            savepoint.rollback()
            left.add(case_id)
            continue
        except Exception as failure:  # one broken case must not stop, nor roll back, the others of the batch
            savepoint.rollback()
            log.error("firing the timers of case %s failed (%s); they stay due", case_id, type(failure).__name__)
            counting = session.begin_nested()
            try:
                cases.record_timer_failure(session, case_id, type(failure).__name__)
                counting.commit()
            except Exception:
                counting.rollback()
                log.error("could not count the timer failure of case %s", case_id)
            left.add(case_id)
            continue
        finally:
            tenancy.leave(session)
        fired += count
        if count == 0:
            left.add(case_id)
    return fired, left


# -- SQLite (and one case at a time) -----------------------------------------------------------------

def _fire_all(session: Session) -> tuple[int, set[int]]:
    """Fire case by case, each in a transaction of its own; return (timers fired, cases passed over).

    Due cases are found across councils; each is fired in its own council's scope and calendar. A case
    is passed over for the rest of this sweep when its firing failed (it keeps its timers and is tried
    again next sweep), when another process holds it (that process fires it), or when nothing in it
    turned out to be due.
    """
    fired, passed = 0, set()
    councils: dict[int, Council] = {}
    stop = getattr(_sweeping, "stop", None)
    while not (stop is not None and stop.is_set()):
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
            if stop is not None and stop.is_set():
                break
    return fired, passed


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
    """When the earliest pending timer of an active case is due (leaving out ``passed_over`` cases), or the next
    batch of a signal on its way to many cases (``service.broadcasts``), whichever comes first."""
    with app.app_context(), tenancy.all_councils(db.session):
        query = select(PendingTimer.due_at).where(_active(PendingTimer.case_id)).order_by(PendingTimer.due_at).limit(1)
        if passed_over:
            query = query.where(PendingTimer.case_id.not_in(passed_over))
        due = [db.session.scalar(query), broadcasts.next_due(db.session)]
        return min((d for d in due if d is not None), default=None)


#: The PostgreSQL channel a commit that changed a timer notifies, and every timer service listens on.
CHANNEL = "step_pathways_timers"
_running_services: set[TimerService] = set()
_services_lock = threading.Lock()


def timers_changed(session: Session, wake_by: datetime) -> None:
    """Mark the session's transaction: a timer it adds, or brings forward, needs a timer service awake at
    ``wake_by`` (its due time; an escalation passes now, so that every process hears of it at once)."""
    earlier = session.info.get(TIMERS_CHANGED)
    session.info[TIMERS_CHANGED] = wake_by if earlier is None or wake_by < earlier else earlier


def notify_horizon(app: Flask) -> timedelta:
    """How far ahead a new timer must be due for every process to find it without being told: by then each
    has swept on its safety interval and set its alarm from what it read (twice the interval: a sweep that
    starts late or fires a while first still reads in time). Every process of a deployment is assumed to have
    the same ``TIMER_SAFETY_INTERVAL_SECONDS``."""
    return 2 * timedelta(seconds=app.config["TIMER_SAFETY_INTERVAL_SECONDS"])


@event.listens_for(Session, "before_commit")
def _notify_timer_change(session: Session) -> None:
    """A commit that added a timer due within :func:`notify_horizon` tells every process's timer service
    (PostgreSQL ``NOTIFY``, sent at commit); one due later is read by each process's safety sweep first.

    A sweep's own commits do not: the timers it sets are later than now, and its process sets its alarm when
    the sweep ends. Outside an app (no configured interval) every change is told.
    """
    wake_by = session.info.get(TIMERS_CHANGED)
    if wake_by is None or getattr(_sweeping, "active", False):
        return
    if session.get_bind().dialect.name != "postgresql":
        return
    if has_app_context() and wake_by >= clock.now() + notify_horizon(current_app):
        return
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


@event.listens_for(Session, "after_commit")
def _timers_committed(session: Session) -> None:
    changed = session.info.pop(TIMERS_CHANGED, None)
    if changed is None or getattr(_sweeping, "active", False):  # a sweep sets the alarm when it ends
        return
    # This process's own services re-read for every change, near or far (no statement in the request): the
    # process that added a timer wakes at its due time even when every other process's sweep runs late.
    with _services_lock:
        services = list(_running_services)
    for service in services:
        service.reread()


@event.listens_for(Session, "after_rollback")
def _timers_rolled_back(session: Session) -> None:
    session.info.pop(TIMERS_CHANGED, None)


class TimerService:
    """The background scheduler of one service process.

    Three jobs: a sweep at start-up and then on a safety interval (it catches up after downtime, and picks
    up timers another process set or left behind), an alarm at the next due row of the pending-timer table
    (``next-due``), and a re-read of that table after every commit that changed a timer (``reread``): in this
    process directly, and on PostgreSQL from any process, through ``LISTEN``/``NOTIFY`` on :data:`CHANNEL`.
    Alarms are set on the service clock: "due in 2 hours" on the service clock rings 2 real hours later.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"misfire_grace_time": None,
                                                                          "coalesce": True})
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._running = 0  # sweeps in progress in this process
        # One sweep fires at a time in a process (its TIMER_WORKERS threads and connections, no more): an alarm
        # that rings meanwhile is left to it, since it reads the next due timer when it ends. Sending the outbox
        # and sealing the audit log run beside the next sweep's firing, one at a time too.
        self._firing = threading.Lock()
        self._housekeeping = threading.Lock()
        self._housekeeping_wanted = threading.Event()
        self._listener: threading.Thread | None = None
        self.listening = threading.Event()  # set while the PostgreSQL listener is connected

    def start(self) -> None:
        interval = self.app.config["TIMER_SAFETY_INTERVAL_SECONDS"]
        # Two instances: one still sending the outbox (slow mail) must not skip the next safety sweep, whose
        # read of the next due timer finds a timer another process added without NOTIFY (notify_horizon). Only
        # one sweep fires at a time anyway, and only one keeps house: the other returns at once.
        self.scheduler.add_job(self.sweep, "interval", seconds=interval, id="safety", max_instances=2,
                               next_run_time=datetime.now(timezone.utc))  # at once: catch up after downtime
        self.scheduler.start()
        with _services_lock:
            _running_services.add(self)
        with self.app.app_context():
            url = db.engine.url
        if url.get_backend_name() == "postgresql":
            self._listener = threading.Thread(target=self._listen, args=(url,), name="timer-listener", daemon=True)
            self._listener.start()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop: no new sweep or batch starts, the batches in hand finish (committed), then return.

        APScheduler's own ``shutdown(wait=True)`` holds its job store's lock while it waits, and a sweep that
        ends by setting the next alarm needs that lock: the scheduler is stopped without waiting, and this
        waits for the sweeps itself. A running sweep stops after the batch each of its workers holds.
        """
        self._stopping.set()
        with _services_lock:
            _running_services.discard(self)
        try:
            self.scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout)
        if self._listener is not None:
            self._listener.join(min(timeout, 5.0))

    def sweep(self) -> None:
        """Fire what is due, set the alarm for the next due timer, then send the outbox and seal the audit log.

        No lock is held across the sweep: each case is claimed in the database (two sweeps at once, in several
        processes, fire each timer once), so a slow case delays nothing else. In one process one sweep fires at
        a time: another started meanwhile returns at once (the one firing sets the alarm when it ends), so a
        process holds ``TIMER_WORKERS`` worker threads, sessions and batches at most, however often it is woken.
        """
        if self._stopping.is_set() or not self._firing.acquire(blocking=False):
            return
        with self._idle:
            self._running += 1
        try:
            passed_over = self._fire()
        finally:
            self._firing.release()
        try:
            # A case passed over (failing, or held by another process) waits for the safety interval,
            # rather than waking this process again at once.
            if not self._stopping.is_set():
                self.wake_at(next_due(self.app, passed_over))
            self._keep_house()
        except Exception as failure:
            log.error("timer sweep failed (%s)", type(failure).__name__)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _fire(self) -> set[int]:
        """Fire what is due (stopping between batches when the service stops), then deliver a batch of each signal
        on its way; the cases passed over."""
        _sweeping.active = True
        _sweeping.stop = self._stopping
        try:
            try:
                passed_over = _fire_due(self.app)[1]
            except Exception as failure:
                log.error("timer sweep failed (%s)", type(failure).__name__)
                passed_over = set()
            # A batch of each signal on its way to many cases; one still on its way is due at once, so the alarm
            # rings again straight after this sweep, and timers due meanwhile fire between its batches.
            try:
                broadcasts.deliver_due(self.app, self._stopping)
            except Exception as failure:
                log.error("delivering signals on their way failed (%s)", type(failure).__name__)
            return passed_over
        finally:
            _sweeping.active = False
            _sweeping.stop = None

    def _keep_house(self) -> None:
        """Send the outbox and seal what was written since (one thread at a time; one that finds another at it
        asks it to go round once more, so nothing written before waits for the safety sweep)."""
        self._housekeeping_wanted.set()
        while self._housekeeping_wanted.is_set() and not self._stopping.is_set():
            if not self._housekeeping.acquire(blocking=False):
                return  # the thread at it goes round again
            try:
                self._housekeeping_wanted.clear()
                outbox.send_due(self.app)
                with self.app.app_context():
                    audit.seal_all(db.session)  # chain what was written since the last sweep
            finally:
                self._housekeeping.release()

    def wake_at(self, due: datetime | None) -> None:
        """Set the alarm for ``due`` (service clock), replacing the one set before."""
        if due is None or self._stopping.is_set():
            return
        delay = max(due - clock.now(), timedelta(0)) + timedelta(milliseconds=20)
        try:
            self.scheduler.add_job(self.sweep, "date", run_date=datetime.now(timezone.utc) + delay, id="next-due",
                                   replace_existing=True, max_instances=2)
        except SchedulerNotRunningError:  # shutting down meanwhile
            pass

    def reread(self) -> None:
        """Re-read the next due timer (outside the caller's transaction) and move the alarm to it."""
        if self._stopping.is_set():
            return
        try:
            self.scheduler.add_job(self._reschedule, id="reread", replace_existing=True)
        except SchedulerNotRunningError:  # shutting down: the next process start sweeps anyway
            pass

    def _reschedule(self) -> None:
        if not self._stopping.is_set():
            self.wake_at(next_due(self.app))

    def _listen(self, url) -> None:
        """Wait for ``NOTIFY`` from any process's commit that changed a timer, and re-read the next due one.

        Its own connection, outside the pool, in autocommit. If the connection is lost it connects again (and
        re-reads, since a notification may have been missed); the safety sweep covers the gap meanwhile.
        """
        import psycopg

        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self.reread()
                    while not self._stopping.is_set():
                        heard = False
                        for _ in connection.notifies(timeout=0.5, stop_after=1):
                            heard = True
                        if heard:
                            for _ in connection.notifies(timeout=0.01):  # one re-read for a burst of commits
                                pass
                            self.reread()
            except Exception as failure:
                log.warning("timer listener lost its connection (%s); connecting again", type(failure).__name__)
            finally:
                self.listening.clear()
            self._stopping.wait(1.0)


def init_app(app: Flask) -> None:
    """Keep a (not yet started) timer service on the app; ``start`` runs it."""
    app.extensions["timers"] = TimerService(app)


def start(app: Flask) -> TimerService:
    service = app.extensions["timers"]
    if app.config["TIMERS_ENABLED"]:
        service.start()
    return service
