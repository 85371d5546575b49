"""Timers fired in batches by worker threads (PostgreSQL), reminders fired without rebuilding their case,
LISTEN/NOTIFY waking a sleeping service, and a shutdown during a long sweep.

Real PostgreSQL (the ``postgres_url`` server), real OS processes (multiprocessing, spawn), real APScheduler.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, text, update

from conftest import FIXTURES, everything, in_council, make_app, save_user
from service import cases, deployments, scheduler
from service.engine import clock, runtime
from service.models import AuditEvent, Case, Notification, PendingTimer, db
from service.step_writes import StepWrites

T0 = datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc)
TINY_DUE = T0 + timedelta(hours=2)  # timers_tiny waits PT1H
DAILY_DUE = T0 + timedelta(days=1, minutes=1)  # timers_daily reminds every day (R/P1D, notify=task)
# timers_once reminds once, a day on (P1D, notify=task); timers_twice on two days running (R2/P1D)


def _app(url, **config):
    app = make_app(url, **config)
    with app.app_context():
        in_council(db.session)
        deployments.deploy(db.session, {p.name: p.read_bytes() for p in sorted((FIXTURES / "timers").iterdir())},
                           "test")
        save_user(db.session, "worker", ["social_worker"], email="worker@council.example")
        save_user(db.session, "admin", ["admin"])
        db.session.commit()
    return app


@pytest.fixture
def pg_app(postgres_url):
    app = _app(postgres_url, TIMER_WORKERS=3, TIMER_BATCH=7)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def any_app(database_url):
    app = _app(database_url, TIMER_WORKERS=3, TIMER_BATCH=50)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def start_cases(app, process: str, count: int, prefix: str) -> list[int]:
    with app.app_context():
        in_council(db.session)
        with clock.clock_at(T0):
            ids = [cases.start_case(db.session, process, f"{prefix}-{n}", {}, cases.SERVICE).id for n in range(count)]
        db.session.commit()
        return ids


def firings(app) -> dict[int, int]:
    with app.app_context(), everything():
        return dict(db.session.execute(select(AuditEvent.case_id, func.count())
                                       .where(AuditEvent.event == "timer_fired").group_by(AuditEvent.case_id)).all())


def count(app, model, *where) -> int:
    with app.app_context(), everything():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


# -- exactly once, across processes, in batches ------------------------------------------------------

def _sweep_in_process(url: str, instant: str, barrier, results) -> None:
    from service import cases as case_service, create_app, reminders as reminder_service, scheduler as timers

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False, "TIMER_WORKERS": 3, "TIMER_BATCH": 7})
    seen, lock = [], threading.Lock()
    real_fire, real_remind = case_service.fire_timers, reminder_service.fire

    def noting(session, case):
        fired = real_fire(session, case)
        with lock:
            seen.append(case.id)
        return fired

    def noting_reminders(session, loaded, pending, now):
        fired, done = real_remind(session, loaded, pending, now)
        with lock:
            seen.extend(done)
        return fired, done

    case_service.fire_timers, reminder_service.fire = noting, noting_reminders
    barrier.wait(120)
    fired = timers.fire_due(app, datetime.fromisoformat(instant))
    results.put((os.getpid(), fired, seen))


def test_two_sweepers_with_batches_and_workers_fire_each_timer_exactly_once(pg_app, postgres_url):
    tiny = start_cases(pg_app, "timers_tiny", 150, "TINY")
    daily = start_cases(pg_app, "timers_daily", 150, "DAILY")  # reminders: fired without the engine
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=_sweep_in_process, args=(postgres_url, DAILY_DUE.isoformat(), barrier, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    counts = [r[1] for r in reports]
    assert sum(counts) == 300, counts
    assert all(n > 0 for n in counts), f"one process did all the work: {counts}"
    first, second = (set(r[2]) for r in reports)
    assert not first & second  # disjoint batches: no case was fired by both
    assert len(reports[0][2]) + len(reports[1][2]) == 300  # nor twice by one
    assert firings(pg_app) == {case_id: 1 for case_id in tiny + daily}
    assert count(pg_app, Notification, Notification.kind == "reminder") == 150  # one per reminder, to the worker
    assert count(pg_app, PendingTimer, PendingTimer.due_at <= DAILY_DUE) == 0
    # each reminder waits for its next day; fired again at the same instant, nothing fires
    assert count(pg_app, PendingTimer, PendingTimer.due_at == T0 + timedelta(days=2)) == 150
    assert scheduler.fire_due(pg_app, DAILY_DUE) == 0


# -- reminders without the engine ------------------------------------------------------------------

def test_a_reminder_that_only_notifies_is_fired_without_the_engine_and_the_case_runs_on(pg_app, monkeypatch):
    from conftest import Api

    [case_id] = start_cases(pg_app, "timers_daily", 1, "QUICK")
    with pg_app.app_context(), everything():
        started = db.session.get(Case, case_id).lock_version
    engine_fired = []
    real = cases.fire_timers
    monkeypatch.setattr(cases, "fire_timers", lambda s, c: engine_fired.append(c.id) or real(s, c))
    assert scheduler.fire_due(pg_app, DAILY_DUE) == 1
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(hours=1)) == 0  # exactly once
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(days=1)) == 1  # the next day's
    assert engine_fired == []  # the case was never rebuilt
    with pg_app.app_context(), everything():
        [timer] = db.session.scalars(select(PendingTimer).where(PendingTimer.case_id == case_id)).all()
        assert timer.due_at == T0 + timedelta(days=3)
        case = db.session.get(Case, case_id)
        assert case.next_timer_at == timer.due_at and case.lock_version == started + 2  # a version per firing
        notes = db.session.scalars(select(Notification).order_by(Notification.id)).all()
        assert [(n.kind, n.task, n.subject) for n in notes] == [
            ("reminder", "Task_Plan", f"Reminder: Write the plan (case QUICK-0)")] * 2
        assert "Timer: Event_Daily" in notes[0].body
        task_id = case.tasks[0].id
        db.session.commit()
    # The engine reads the state the reminders left: it does not fire them again, and the case runs on.
    with pg_app.app_context():
        save_user(db.session, "worker2", ["social_worker"], token="token-worker2")
        db.session.commit()
    api = Api(pg_app, {"worker": "token-worker2"})
    with clock.clock_at(DAILY_DUE + timedelta(days=1, hours=2)):
        done = api.post(f"/tasks/{task_id}/complete", json={"data": {}})
    assert done.status_code == 200, done.json
    assert done.json["status"] == "completed" and done.json["outcome"] == "planned"
    assert firings(pg_app) == {case_id: 2}
    assert count(pg_app, PendingTimer) == 0


def test_a_reminder_keeps_its_cycle_on_its_row_and_the_engine_catches_up_from_it(pg_app, monkeypatch):
    """The quick firing rewrites no state: the cycle goes on the timer row, the next firing reads only the row,
    and the engine, when it next fires the case, fires each occurrence once (the state catches up from the row)."""
    from service import reminders
    from service.engine import runtime

    [case_id] = start_cases(pg_app, "timers_daily", 1, "CYCLE")
    with pg_app.app_context(), everything():
        state = db.session.get(Case, case_id).state
    assert scheduler.fire_due(pg_app, DAILY_DUE) == 1  # day 1: reads the state (the row has no cycle yet)
    with pg_app.app_context(), everything():
        case = db.session.get(Case, case_id)
        [timer] = case.timers
        assert case.state == state  # not rewritten
        assert timer.cycle["fired"] == 1 and datetime.fromisoformat(timer.cycle["next"]) == timer.due_at
        assert runtime.reminder_cycle(reminders.state_of(case), timer.id, timer.name) == timer.cycle
    reading = []
    real_cycle = runtime.reminder_cycle
    monkeypatch.setattr(runtime, "reminder_cycle", lambda *a: reading.append(a) or real_cycle(*a))
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(days=1)) == 1  # day 2: the row alone
    assert reading == []
    # Day 3 by the engine's step (the quick path off): it loads the state caught up to day 2, fires day 3 once.
    pg_app.config["TIMER_QUICK_REMINDERS"] = False
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(days=2)) == 1
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(days=2, hours=1)) == 0
    with pg_app.app_context(), everything():
        case = db.session.get(Case, case_id)
        [timer] = case.timers
        assert case.state != state and timer.due_at == T0 + timedelta(days=4)
        assert real_cycle(case.state, timer.id, timer.name)["fired"] == 3  # the row's cycle is behind now
    # Day 4 quick again: the row's cycle is not the one its due time came from, so the state is read, once.
    pg_app.config["TIMER_QUICK_REMINDERS"] = True
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(days=3)) == 1
    assert len(reading) == 1
    assert firings(pg_app) == {case_id: 4}
    assert count(pg_app, Notification, Notification.kind == "reminder") == 4
    with pg_app.app_context(), everything():
        case = db.session.get(Case, case_id)
        [timer] = case.timers
        assert timer.cycle["fired"] == 4 and timer.due_at == T0 + timedelta(days=5)
        assert real_cycle(reminders.state_of(case), timer.id, timer.name) == timer.cycle


def test_a_reminder_updates_its_case_in_place_and_keeps_its_place_in_the_lists(pg_app, monkeypatch):
    """A reminder writes no indexed column of its case: not ``updated_at`` (the case keeps its place in the
    "recently updated" lists), nor an indexed next timer. So PostgreSQL updates the row on its page (a HOT
    update: no new entry in each of the case table's indexes), read from the firing transaction's own counters.
    The case's version still moves (a completion that read the case before is refused), and the firing is audited."""
    from service import reminders

    ids = start_cases(pg_app, "timers_daily", 3, "HOT")
    with pg_app.app_context(), everything():
        before = {case.id: (case.updated_at, case.lock_version)
                  for case in db.session.scalars(select(Case).where(Case.id.in_(ids)))}
    counted = []
    real = reminders.fire

    def counting(session, loaded, pending, now):
        fired = real(session, loaded, pending, now)
        counted.append(session.execute(text(  # this transaction's own, not yet committed, row counts
            "SELECT pg_stat_get_xact_tuples_updated('cases'::regclass), "
            "pg_stat_get_xact_tuples_hot_updated('cases'::regclass)")).one())
        return fired

    monkeypatch.setattr(reminders, "fire", counting)
    assert scheduler.fire_due(pg_app, DAILY_DUE) == 3
    assert sum(updated for updated, _ in counted) == 3
    assert [hot for _, hot in counted] == [updated for updated, _ in counted]  # every one of them HOT
    with pg_app.app_context(), everything():
        indexed = set(db.session.scalars(text(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND (a.attnum = ANY(i.indkey) OR pg_get_expr(i.indexprs, i.indrelid) LIKE '%' || a.attname || '%') "
            "WHERE i.indrelid = 'cases'::regclass")))
        assert not indexed & set(reminders.CASE_COLUMNS[1:] + [reminders.MARKS, "lock_version"]), indexed
        for case in db.session.scalars(select(Case).where(Case.id.in_(ids))):
            updated_at, version = before[case.id]
            assert (case.updated_at, case.lock_version) == (updated_at, version + 1)
    assert firings(pg_app) == {case_id: 1 for case_id in ids}


def _engine_step(app, case_id: int, instant: datetime) -> int:
    """The engine's own step on the case (as a sweep on SQLite takes it): timers fired, committed."""
    with app.app_context(), clock.clock_at(instant):
        in_council(db.session)
        fired = cases.fire_timers(db.session, db.session.get(Case, case_id))
        db.session.commit()
        return fired


def _fire_reading_no_state(app, instant: datetime) -> int:
    """A sweep at ``instant`` (timers fired) that neither reads nor writes any case's encrypted state."""
    import re

    from sqlalchemy import event

    touched = []

    def note(conn, cursor, statement, *args):
        if re.search(r"cases\.state\b|\bstate = ", statement):
            touched.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", note)
        try:
            fired = scheduler.fire_due(app, instant)
        finally:
            event.remove(db.engine, "before_cursor_execute", note)
    assert touched == []
    return fired


def test_a_one_off_reminder_is_fired_ahead_of_the_engine_which_runs_it_on_without_a_second_notice(pg_app, monkeypatch):
    """A one-off reminder (P1D, notify) is fired without the engine: notified and audited once, its row gone and
    the firing noted on the case (its state neither read nor rewritten), so the engine's next step on the case,
    which loads the state with the note applied, runs the reminder's path to its end without a firing, notice or
    audit event of its own; the task is still open and completes, and the state it writes holds the firing."""
    from conftest import Api

    ids = start_cases(pg_app, "timers_once", 3, "ONCE")
    with pg_app.app_context(), everything():
        before = {c.id: (c.updated_at, c.lock_version, c.state) for c in db.session.scalars(select(Case).where(Case.id.in_(ids)))}
    engine_fired = []
    real = cases.fire_timers
    monkeypatch.setattr(cases, "fire_timers", lambda s, c: engine_fired.append(c.id) or real(s, c))
    assert _fire_reading_no_state(pg_app, DAILY_DUE) == 3
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(days=5)) == 0  # exactly once: nothing more to fire
    assert engine_fired == []  # no case was rebuilt
    assert firings(pg_app) == {case_id: 1 for case_id in ids}
    assert count(pg_app, PendingTimer, PendingTimer.case_id.in_(ids)) == 0
    with pg_app.app_context(), everything():
        notes = db.session.scalars(select(Notification).order_by(Notification.id)).all()
        assert sorted((n.kind, n.task, n.subject) for n in notes) == [
            ("reminder", "Task_Plan", f"Reminder: Write the plan (case ONCE-{n})") for n in range(3)]
        for case in db.session.scalars(select(Case).where(Case.id.in_(ids))):
            updated_at, version, state = before[case.id]
            assert (case.updated_at, case.lock_version, case.next_timer_at) == (updated_at, version + 1, None)
            # The state is not rewritten: the firing is noted on the case, for the engine's next load.
            assert case.state == state and [t.name for t in case.tasks] == ["Task_Plan"]
            assert [mark["element"] for mark in case.fired_ahead.values()] == ["Event_Once"], case.fired_ahead
    # The engine's next step on a case runs the fired reminder on: no firing, notice or audit event of its own.
    monkeypatch.setattr(cases, "fire_timers", real)
    assert _engine_step(pg_app, ids[0], DAILY_DUE + timedelta(days=1)) == 0
    assert firings(pg_app) == {case_id: 1 for case_id in ids}
    assert count(pg_app, Notification) == 3
    # A task completed after its reminder fired ahead: the case ends as it would have.
    with pg_app.app_context():
        save_user(db.session, "worker2", ["social_worker"], token="token-worker2")
        db.session.commit()
    with pg_app.app_context(), everything():
        task_id = db.session.get(Case, ids[1]).tasks[0].id
    with clock.clock_at(DAILY_DUE + timedelta(hours=2)):
        done = Api(pg_app, {"worker": "token-worker2"}).post(f"/tasks/{task_id}/complete", json={"data": {}})
    assert done.status_code == 200, done.json
    assert (done.json["status"], done.json["outcome"]) == ("completed", "planned")
    assert firings(pg_app) == {case_id: 1 for case_id in ids} and count(pg_app, Notification) == 3
    with pg_app.app_context(), everything():
        assert db.session.get(Case, ids[1]).fired_ahead is None  # the state the completion wrote holds the firing
        assert [m["element"] for m in db.session.get(Case, ids[2]).fired_ahead.values()] == ["Event_Once"]  # not stepped


def test_a_case_whose_reminder_fired_ahead_moves_to_a_version_without_it_and_is_not_reminded_again(pg_app):
    """A one-off reminder fired ahead of the engine no longer waits: the case moves to a version that lacks the
    reminder's element with no mapping, its reminder runs on with the move (as the engine's next step would run
    it) and sends no second notice, and the state the move writes holds the firing."""
    from service import case_migration
    from service.models import ProcessVersion
    from service.policy import Actor

    [case_id] = start_cases(pg_app, "timers_once", 1, "MOVE")
    assert _fire_reading_no_state(pg_app, DAILY_DUE) == 1
    renamed = (FIXTURES / "timers" / "timers_once.bpmn").read_bytes().replace(b"Event_Once", b"Event_DayLate")
    with pg_app.app_context():
        council = in_council(db.session)
        deployments.deploy(db.session, {"timers_once.bpmn": renamed}, "test")
        v1, v2 = db.session.scalars(select(ProcessVersion.id).where(ProcessVersion.key == "timers_once")
                                    .order_by(ProcessVersion.version)).all()
        analyst = Actor("analyst", ("analyst",), council_id=council.id)
        with clock.clock_at(DAILY_DUE + timedelta(hours=1)):
            [checked] = case_migration.precheck(db.session, analyst, v1, v2)["cases"]
            [moved] = case_migration.migrate(db.session, analyst, v1, v2, dry_run=False)["cases"]
        db.session.commit()
    assert checked["status"] == "would_move" and "Event_Once" not in checked["waiting"], checked
    assert moved["status"] == "moved", moved
    assert firings(pg_app) == {case_id: 1} and count(pg_app, Notification) == 1
    with pg_app.app_context(), everything():
        case = db.session.get(Case, case_id)
        assert (case.process_version_id, case.fired_ahead, [t.name for t in case.tasks]) == (v2, None, ["Task_Plan"])
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(days=5)) == 0
    assert firings(pg_app) == {case_id: 1} and count(pg_app, Notification) == 1


def test_a_reminder_of_a_case_in_an_older_state_format_is_left_to_the_engine(pg_app, monkeypatch):
    """The engine's load marks a noted firing only in a state of the current format; so the sweep notes none on
    a case whose state is older (it would fire again at the engine's next step): the engine fires it, once."""
    [older, current] = start_cases(pg_app, "timers_once", 2, "OLDER")
    with pg_app.app_context(), everything():
        db.session.execute(update(Case).where(Case.id == older).values(state_format="pathways-2"))
        db.session.commit()
        updated = {c.id: c.updated_at for c in db.session.scalars(select(Case).where(Case.id.in_([older, current])))}
    engine_fired = []
    real = cases.fire_timers
    monkeypatch.setattr(cases, "fire_timers", lambda s, c: engine_fired.append(c.id) or real(s, c))
    assert scheduler.fire_due(pg_app, DAILY_DUE) == 2
    assert engine_fired == [older]
    with pg_app.app_context(), everything():  # a reminder is no change to the case, whichever way it was sent
        assert {c.id: c.updated_at for c in db.session.scalars(select(Case).where(Case.id.in_(updated)))} == updated
    monkeypatch.setattr(cases, "fire_timers", real)
    assert _engine_step(pg_app, older, DAILY_DUE + timedelta(days=1)) == 0
    assert firings(pg_app) == {older: 1, current: 1}


def test_a_batch_of_reminders_looks_up_the_workers_it_tells_in_one_statement(pg_app):
    """Reminders on tasks assigned to three workers: each worker is told, and the batch asks the database for
    the three once, not once per worker (then each is remembered for a while)."""
    from sqlalchemy import event

    from service.models import OpenTask, User

    ids = start_cases(pg_app, "timers_once", 3, "ASSIGNED")
    with pg_app.app_context():
        in_council(db.session)
        workers = [save_user(db.session, f"keyworker{n}", ["social_worker"], email=f"kw{n}@council.example")[0]
                   for n in range(3)]
        db.session.flush()
        for case_id, user in zip(ids, workers):
            db.session.execute(update(OpenTask).where(OpenTask.case_id == case_id).values(assignee_id=user.id))
        told = {case_id: user.id for case_id, user in zip(ids, workers)}
        db.session.commit()
    pg_app.config["TIMER_WORKERS"] = 1  # one batch
    looked_up = []
    with pg_app.app_context():
        users = User.__table__.name

        def note(conn, cursor, statement, *args):
            if f"FROM {users}" in statement or f"JOIN {users}" in statement:
                looked_up.append(statement)

        event.listen(db.engine, "before_cursor_execute", note)
        try:
            assert scheduler.fire_due(pg_app, DAILY_DUE) == 3
        finally:
            event.remove(db.engine, "before_cursor_execute", note)
    assert len(looked_up) == 1, looked_up
    with pg_app.app_context(), everything():
        notes = db.session.scalars(select(Notification).where(Notification.case_id.in_(ids))).all()
        assert {n.case_id: n.user_id for n in notes} == told and len(notes) == 3


def test_a_repeating_reminders_last_firing_ends_its_timer_ahead_of_the_engine(pg_app, monkeypatch):
    """R2/P1D: the first firing keeps its cycle on the row; the last is noted on the case (no cycles left; the
    state neither read nor written), the row goes, and the engine's next step ends the timer without firing it a
    third time."""
    [case_id] = start_cases(pg_app, "timers_twice", 1, "TWICE")
    engine_fired = []
    real = cases.fire_timers
    monkeypatch.setattr(cases, "fire_timers", lambda s, c: engine_fired.append(c.id) or real(s, c))
    assert scheduler.fire_due(pg_app, DAILY_DUE) == 1
    with pg_app.app_context(), everything():
        [timer] = db.session.get(Case, case_id).timers
        assert timer.cycle["cycles"] == 1 and timer.due_at == T0 + timedelta(days=2)
    assert _fire_reading_no_state(pg_app, DAILY_DUE + timedelta(days=1)) == 1  # the last, from the row's cycle
    assert scheduler.fire_due(pg_app, DAILY_DUE + timedelta(days=9)) == 0
    assert engine_fired == []
    assert count(pg_app, PendingTimer, PendingTimer.case_id == case_id) == 0
    monkeypatch.setattr(cases, "fire_timers", real)
    assert _engine_step(pg_app, case_id, DAILY_DUE + timedelta(days=9)) == 0
    assert firings(pg_app) == {case_id: 2}
    assert count(pg_app, Notification, Notification.kind == "reminder") == 2
    assert count(pg_app, PendingTimer, PendingTimer.case_id == case_id) == 0  # the engine set no new timer


# -- a poisoned case in a batch ----------------------------------------------------------------------

def test_a_poisoned_case_in_a_batch_neither_stops_nor_rolls_back_the_others(any_app, monkeypatch):
    ids = start_cases(any_app, "timers_tiny", 9, "BATCH")
    reminded = start_cases(any_app, "timers_daily", 3, "REMIND")
    poisoned = {ids[4], reminded[1]}
    with any_app.app_context(), everything():  # a reminder whose stored state is broken: the engine's step fails too
        db.session.get(Case, reminded[1]).state = "{not json"
        db.session.commit()
    real = cases.fire_timers

    def fire_or_die(session, case):
        fired = real(session, case)  # the engine has run and the rows are written, not committed
        if case.id == ids[4]:
            raise RuntimeError("poisoned")
        return fired

    monkeypatch.setattr(cases, "fire_timers", fire_or_die)
    for sweep in range(1, 4):
        fired = scheduler.fire_due(any_app, DAILY_DUE)
        assert fired == (10 if sweep == 1 else 0), sweep
        assert firings(any_app) == {case_id: 1 for case_id in ids + reminded if case_id not in poisoned}
        with any_app.app_context(), everything():
            for case_id in poisoned:
                case = db.session.get(Case, case_id)
                assert (case.timer_failures, case.status) == ((sweep, "active") if sweep < 3 else (3, "error"))
                assert db.session.scalar(select(func.count()).select_from(PendingTimer)
                                         .where(PendingTimer.case_id == case_id)) == 1  # its timer kept
    assert count(any_app, Notification, Notification.kind == "error") == 2  # the admins are told of each


def test_one_sweep_fires_at_a_time_in_a_process(any_app, monkeypatch):
    """An alarm that rings while a sweep is firing returns at once (the sweep reads the next due timer when it
    ends): a process holds its TIMER_WORKERS threads, sessions and batches at most, however often it is woken."""
    entered, release, calls = threading.Event(), threading.Event(), []

    def slow(app, instant=None):
        calls.append(threading.get_ident())
        entered.set()
        release.wait(10)
        return 0, set()

    monkeypatch.setattr(scheduler, "_fire_due", slow)
    service = scheduler.TimerService(any_app)  # not started: only its sweep is used
    first = threading.Thread(target=service.sweep)
    first.start()
    assert entered.wait(30)
    service.sweep()  # rings while the first fires
    assert len(calls) == 1
    release.set()
    first.join(30)
    service.sweep()
    assert len(calls) == 2


def test_the_timer_worker_fires_timers_without_the_pages_the_api_or_the_migrations(any_app, database_url):
    """``flask --app service.timer_worker timers fire``: the worker's service fires what is due, and never imports
    the pages', the API's or the migrations' modules (the memory a timer process does not need)."""
    import subprocess
    import sys

    ids = start_cases(any_app, "timers_tiny", 2, "WORKER")
    with any_app.app_context():
        url = db.engine.url.render_as_string(hide_password=False)
    script = ("import sys; from service.timer_worker import app; "
              "print(app.test_cli_runner().invoke(args=['timers', 'fire', '--now', sys.argv[1]]).output.strip()); "
              "print(sorted({m.split('.')[0] if not m.startswith('service.') else '.'.join(m.split('.')[:2]) "
              "for m in sys.modules} & {'service.api', 'service.web', 'service.tracker_page', 'flask_migrate', "
              "'alembic', 'flask_smorest', 'flask_wtf'}))")
    done = subprocess.run([sys.executable, "-c", script, TINY_DUE.isoformat()], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "DATABASE_URL": url, "TIMERS_ENABLED": "false"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "[]"], done.stdout
    assert firings(any_app) == {case_id: 1 for case_id in ids}


# -- LISTEN/NOTIFY -----------------------------------------------------------------------------------

def _start_a_case_elsewhere(url: str, delay: str) -> None:
    from conftest import in_council as act
    from service import cases as case_service, create_app
    from service.models import db as database

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context():
        act(database.session)
        case_service.start_case(database.session, "timers_catch", "ELSEWHERE", {"delay": delay}, case_service.SERVICE)
        database.session.commit()


def test_notify_wakes_the_sleeping_service_when_another_process_adds_an_earlier_timer(pg_app, postgres_url):
    pg_app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 3600  # only a wake-up can fire the new timer in time
    start_cases(pg_app, "timers_tiny", 1, "LATER")  # its alarm is an hour away (real clock: T0 is in the past...)
    with pg_app.app_context(), everything():  # ... so move it an hour ahead of now
        db.session.execute(PendingTimer.__table__.update().values(due_at=clock.now() + timedelta(hours=1)))
        db.session.commit()
    service = scheduler.TimerService(pg_app)
    service.start()
    try:
        assert service.listening.wait(10), "the listener did not connect"
        time.sleep(0.5)  # the start-up sweep has run: the alarm is an hour away
        alarm = service.scheduler.get_job("next-due")
        assert alarm is not None and alarm.next_run_time - datetime.now(timezone.utc) > timedelta(minutes=50)
        spawn = multiprocessing.get_context("spawn")
        other = spawn.Process(target=_start_a_case_elsewhere, args=(pg_app.config["SQLALCHEMY_DATABASE_URI"], "PT3S"))
        other.start()
        other.join(120)
        assert other.exitcode == 0
        committed = time.monotonic()  # the other process has committed its case, due 3 s after it started it
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _fired_elsewhere(pg_app):
            time.sleep(0.05)
        took = time.monotonic() - committed
    finally:
        service.shutdown()
    assert _fired_elsewhere(pg_app), "the timer another process added did not wake this one"
    assert took < 8, took  # the safety sweep is an hour away


def _notifies(app, change) -> int:
    """How many ``pg_notify`` statements ``change(session)`` and its commit send."""
    sent = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    with app.app_context():
        in_council(db.session)
        sqlalchemy_event.listen(db.engine, "before_cursor_execute", seen)
        try:
            change(db.session)
            db.session.commit()
        finally:
            sqlalchemy_event.remove(db.engine, "before_cursor_execute", seen)
    return len([s for s in sent if "pg_notify" in s])


def _start(delay: str, reference: str):
    return lambda session: cases.start_case(session, "timers_catch", reference, {"delay": delay}, cases.SERVICE)


def test_a_commit_notifies_only_for_a_timer_due_before_every_process_sweeps(pg_app):
    """Every process sweeps on its safety interval and sets its alarm from what it reads: a timer due later than
    twice that interval from now is found without a NOTIFY (the statement is left out of nearly every start and
    completion), one due sooner, or brought forward to sooner, is told."""
    pg_app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 30  # every process reads within 60 s
    assert _notifies(pg_app, _start("PT2H", "FAR")) == 0
    assert _notifies(pg_app, _start("PT61S", "BEYOND")) == 0
    assert _notifies(pg_app, _start("PT50S", "NEAR")) == 1
    assert _notifies(pg_app, lambda session: [_start(delay, f"BOTH-{delay}")(session) for delay in ("PT2H", "PT5S")]) == 1

    def bring_forward(session):
        case = session.scalar(select(Case).where(Case.reference == "FAR"))
        [row] = case.timers
        timer = runtime.PendingTimer(row.id, row.name, row.title, clock.now() + timedelta(seconds=10),
                                     row.attached_task_id, row.properties)
        writes = StepWrites(case)
        cases._sync_timers(session, case, [timer], None, writes)
        writes.write(session)

    assert _notifies(pg_app, bring_forward) == 1
    pg_app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 3600  # the horizon is the app's: two hours now
    assert _notifies(pg_app, _start("PT1H", "SLOW-SWEEPS")) == 1


def test_the_safety_sweep_reads_the_next_due_timer_while_the_outbox_is_slow(any_app, monkeypatch):
    """A timer another process adds beyond the NOTIFY horizon is found by this process's next safety sweep,
    even while the sweep before is still sending a slow outbox (it would otherwise skip every safety sweep
    until the mail is sent)."""
    from service import outbox

    any_app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 1
    released, blocked = threading.Event(), threading.Event()

    def slow_mail(app, limit=100):
        blocked.set()
        released.wait(30)
        return 0

    monkeypatch.setattr(outbox, "send_due", slow_mail)
    due = clock.now() + timedelta(seconds=4)
    with any_app.app_context():
        in_council(db.session)
        with clock.clock_at(due - timedelta(hours=2)):
            case_id = cases.start_case(db.session, "timers_catch", "LATER", {"delay": "PT2H"}, cases.SERVICE).id
        db.session.commit()
        # Hidden from the start-up sweep (it sets its alarm two hours on), until another process "adds" it.
        db.session.execute(update(PendingTimer).values(due_at=due + timedelta(hours=2)))
        db.session.commit()
    service = scheduler.TimerService(any_app)
    service.start()
    try:
        assert blocked.wait(10), "the start-up sweep did not keep house"
        with any_app.app_context(), everything():  # as another process's commit would, without telling
            db.session.execute(update(PendingTimer).values(due_at=due))
            db.session.commit()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not firings(any_app):
            time.sleep(0.1)
        assert firings(any_app) == {case_id: 1}, "the timer waited for the slow outbox"
    finally:
        released.set()
        service.shutdown()


def _fired_elsewhere(app) -> bool:
    with app.app_context(), everything():
        return bool(db.session.scalar(select(func.count()).select_from(AuditEvent).join(Case, Case.id == AuditEvent.case_id)
                                      .where(AuditEvent.event == "timer_fired", Case.reference == "ELSEWHERE")))


# -- shutting down during a long sweep ---------------------------------------------------------------

def test_shutdown_during_a_long_sweep_returns_within_a_bound_and_nothing_is_lost(database_url, monkeypatch):
    app = _app(database_url, TIMER_WORKERS=2, TIMER_BATCH=4, TIMER_SAFETY_INTERVAL_SECONDS=3600,
               TIMER_QUICK_REMINDERS=False)
    try:
        ids = start_cases(app, "timers_tiny", 60, "LONG")
        real, began = cases.fire_timers, threading.Event()

        def slow(session, case):
            began.set()
            time.sleep(0.1)  # 60 cases: 3 s of firing at the least, with two workers
            return real(session, case)

        monkeypatch.setattr(cases, "fire_timers", slow)
        previous = clock.set_clock(clock.FixedClock(TINY_DUE))
        try:
            service = scheduler.TimerService(app)
            service.start()
            assert began.wait(30)
            stopped = time.monotonic()
            stopper = threading.Thread(target=service.shutdown)
            stopper.start()
            stopper.join(10)
            took = time.monotonic() - stopped
            assert not stopper.is_alive(), "shutdown hung"
            assert took < 3, took  # the batch in hand (4 cases, 0.4 s), not the whole sweep
            assert not service.scheduler.running
            done = firings(app)
            assert 0 < len(done) < 60 and set(done.values()) == {1}  # what fired is committed, once
            assert scheduler.fire_due(app) == 60 - len(done)  # the rest fire on the next start
        finally:
            clock.set_clock(previous)
        assert firings(app) == {case_id: 1 for case_id in ids}
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
