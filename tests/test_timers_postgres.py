"""Several service processes on one PostgreSQL: each due timer fires exactly once, and a process killed
while firing leaves its timer to fire again. Real OS processes (multiprocessing, spawn), real server."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import FIXTURES, ROOT, everything, in_council, make_app
from service import cases, deployments, scheduler
from service.engine import clock
from service.models import AuditEvent, Case, PendingTimer, db

T0 = datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc)
DUE = T0 + timedelta(hours=2)  # timers_tiny waits PT1H


@pytest.fixture
def pg_app(postgres_url):
    app = make_app(postgres_url)
    with app.app_context():
        in_council(db.session)
        files = {p.name: p.read_bytes() for p in sorted((FIXTURES / "timers").iterdir())}
        deployments.deploy(db.session, files, "test")
        db.session.commit()
    yield app
    with app.app_context(), everything():
        db.session.remove()
        db.engine.dispose()


def start_cases(app, count: int, started=T0, spacing=timedelta(0)) -> list[int]:
    """``count`` cases of a one-timer diagram, in one transaction, through the service layer."""
    with app.app_context():
        in_council(db.session)
        ids = []
        for n in range(count):
            with clock.clock_at(started + spacing * n):
                ids.append(cases.start_case(db.session, "timers_tiny", f"MANY-{n}", {}, cases.SERVICE).id)
        db.session.commit()
        return ids


def firings(app) -> dict[int, int]:
    """timer_fired audit events per case."""
    with app.app_context(), everything():
        rows = db.session.execute(select(AuditEvent.case_id, func.count()).where(AuditEvent.event == "timer_fired")
                                  .group_by(AuditEvent.case_id)).all()
        return dict(rows)


# -- what runs in the other processes --------------------------------------------------------------

def _fire_in_process(url: str, instant: str, barrier, results) -> None:
    """One service process: fire what is due at ``instant``; report which cases it fired."""
    from service import cases as case_service, create_app, scheduler as timer_scheduler

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    fired_cases = []
    real = case_service.fire_timers

    def noting(session, case):
        count = real(session, case)
        fired_cases.append(case.id)
        return count

    case_service.fire_timers = noting
    barrier.wait(120)  # both processes begin together
    started = time.perf_counter()
    count = timer_scheduler.fire_due(app, datetime.fromisoformat(instant))
    results.put((os.getpid(), count, fired_cases, time.perf_counter() - started))


def _fire_and_hang(url: str, instant: str, hang_on_case: int, holding) -> None:
    """A service process that fires ``hang_on_case`` and then hangs before committing, holding its lock.

    One worker, batches of one: a batch's cases are locked together until its commit, so a hanging case holds the rest of
    its batch (up to TIMER_BATCH - 1 cases) until the process dies or the database's timeouts end it."""
    from service import cases as case_service, create_app, scheduler as timer_scheduler

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False, "TIMER_BATCH": 1,
                      "TIMER_WORKERS": 1})
    real = case_service.fire_timers

    def hang(session, case):
        count = real(session, case)  # the engine has run and the rows are written, not committed
        if case.id == hang_on_case:
            session.flush()
            holding.set()
            time.sleep(600)  # killed here
        return count

    case_service.fire_timers = hang
    timer_scheduler.fire_due(app, datetime.fromisoformat(instant))


# -- the tests ---------------------------------------------------------------------------------

def test_two_processes_fire_500_due_timers_exactly_once(pg_app, postgres_url):
    ids = start_cases(pg_app, 500)
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=_fire_in_process, args=(postgres_url, DUE.isoformat(), barrier, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    counts = [r[1] for r in reports]
    assert sum(counts) == 500, counts
    assert all(count > 0 for count in counts), f"one process did all the work: {counts}"
    first, second = (set(r[2]) for r in reports)
    assert not first & second  # SKIP LOCKED: no case was even loaded by both processes
    assert first | second == set(ids)
    assert firings(pg_app) == {case_id: 1 for case_id in ids}
    with pg_app.app_context(), everything():
        assert db.session.scalar(select(func.count()).select_from(PendingTimer)) == 0
        assert db.session.scalar(select(func.count()).select_from(Case).where(Case.status == "completed")) == 500
    print(f"\n500 timers, two processes: {counts} fired, in {[round(r[3], 2) for r in reports]} s")


def test_two_cli_processes_fire_due_timers_exactly_once(pg_app, postgres_url):
    """The same with the command line: two ``flask timers fire --now`` processes at once."""
    ids = start_cases(pg_app, 120)
    env = {**os.environ, "DATABASE_URL": postgres_url, "TIMERS_ENABLED": "false", "PYTHONPATH": str(ROOT)}
    command = [str(Path(sys.executable).parent / "flask"), "--app", "service", "timers", "fire",
               "--now", DUE.isoformat()]
    processes = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    counts = [int(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(counts) == 120, counts
    assert firings(pg_app) == {case_id: 1 for case_id in ids}


def test_a_process_killed_while_firing_leaves_its_timer_to_fire_again(pg_app, postgres_url):
    first, *others = start_cases(pg_app, 3, spacing=timedelta(minutes=1))  # the first is due first
    spawn = multiprocessing.get_context("spawn")
    holding = spawn.Event()
    doomed = spawn.Process(target=_fire_and_hang, args=(postgres_url, DUE.isoformat(), first, holding))
    doomed.start()
    try:
        assert holding.wait(120), "the worker never reached the case"
        # Meanwhile another process sweeps: it skips the locked case and fires the others.
        assert scheduler.fire_due(pg_app, DUE) == 2
        assert set(firings(pg_app)) == set(others)
    finally:
        doomed.kill()  # SIGKILL in the middle of firing: no commit, no clean-up
        doomed.join(30)
    assert doomed.exitcode == -9
    fired_again = 0
    deadline = time.monotonic() + 30
    while fired_again == 0 and time.monotonic() < deadline:  # until the server has rolled back the dead session
        fired_again = scheduler.fire_due(pg_app, DUE)
        time.sleep(0.1)
    assert fired_again == 1
    assert firings(pg_app) == {first: 1, others[0]: 1, others[1]: 1}
    assert scheduler.fire_due(pg_app, DUE + timedelta(days=1)) == 0
