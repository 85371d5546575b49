"""Finding and firing due timers among many pending ones, and the service's memory while it does.

Builds --pending cases (default 100,000) of a pathway with a daily reminder on an open user task
(tests/fixtures/timers/timers_daily.bpmn: a non-interrupting R/P1D boundary timer with notify=task, so
each firing writes the case, its timer row, an audit event and a notification; --reminder once: a one-off
reminder a day on, timers_once.bpmn, whose firing is noted on the case for the engine's next load). One case is
started through the service layer; the rest are bulk-inserted copies of its case, timer, task and role rows
(fresh task ids, due times spread), so --due of them (default 10,000) are due and the rest fall due over
the next 30 days. Then a fresh service process fires what is due -- the sweep the background scheduler
runs -- and reports fires per second and its peak RSS (its own: /proc/self/status VmHWM). With --tracemalloc it also
reports the tracemalloc peak while firing (on SQLite from a second run on a copy of the database, so the
timing is not slowed by tracing).

    .venv/bin/python bench/timers.py [--pending 100000] [--due 10000] [--database-url URL] [--tracemalloc]

The default database is SQLite in a temporary folder. --database-url takes an empty, throwaway
PostgreSQL database (postgresql+psycopg://...): the schema is created there.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from figures import peak_rss_mib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: --reminder: the daily reminder (R/P1D), or a one-off reminder a day on (P1D: the kind most reference pathways
#: have, fired ahead of the engine: service.reminders), each notify=task on the open task.
PROCESSES = {"daily": "timers_daily", "once": "timers_once"}
STARTED = datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc)
FIRE_AT = STARTED + timedelta(days=1, minutes=1)  # the template's reminder is due 24 hours after it started
CHUNK = 5000


def build(url: str, pending: int, due: int, first_due: datetime | None = None, window: float = 0.0,
          record: Path | None = None, cycles_on_rows: bool = False, process: str = "timers_daily") -> None:
    """Bulk-load the cases. With ``first_due`` the due ones fall due at real instants spread evenly over
    ``window`` seconds from it (their due times written to ``record``), and the rest 30 days later."""
    from flask_migrate import upgrade
    from sqlalchemy import insert, select, update

    from service import cases, councils, create_app, deployments, tenancy
    from service.auth import save_user
    from service.engine import clock
    from service.models import Case, OpenTask, PendingTimer, TaskRole, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context():
        upgrade()
        council, _ = councils.create_council(db.session, "bench", "Bench Council")
        tenancy.act_for(db.session, council)
        diagram = ROOT / "tests" / "fixtures" / "timers" / f"{process}.bpmn"
        deployments.deploy(db.session, {diagram.name: diagram.read_bytes()}, "bench")
        save_user(db.session, "bench-worker", ["social_worker"], council=council, email="worker@council.example")
        with clock.clock_at(STARTED):
            template = cases.start_case(db.session, process, "BENCH-0", {}, cases.SERVICE)
        db.session.commit()
        [timer] = db.session.scalars(select(PendingTimer).where(PendingTimer.case_id == template.id)).all()
        [task] = db.session.scalars(select(OpenTask).where(OpenTask.case_id == template.id)).all()
        roles = task.roles
        template_due = timer.due_at.isoformat()
        rng = random.Random(1)
        due_ids = set(rng.sample(range(1, pending), due - 1))  # the template itself is due too
        first_id = template.id + 1
        spread = sorted(due_ids)
        slot = {n: i for i, n in enumerate(spread, start=1)}
        due_times: dict[int, str] = {}
        template_state = template.state  # before the template's own due time is moved
        template_cycle = None
        if cycles_on_rows:  # each row holds its reminder's cycle, as after a first firing without the engine
            from service.engine import runtime
            template_cycle = runtime.reminder_cycle(template_state, timer.id, timer.name)
        if first_due is not None:  # the template falls due first, then the others one by one
            db.session.execute(update(PendingTimer).where(PendingTimer.case_id == template.id)
                               .values(due_at=first_due))
            db.session.execute(update(Case).where(Case.id == template.id)
                               .values(state=template_state.replace(template_due,
                                                                    (first_due - timedelta(days=2)).isoformat()))
                               .execution_options(synchronize_session=False))
            db.session.commit()
            due_times[template.id] = first_due.isoformat()
        started = time.perf_counter()
        for chunk_start in range(1, pending, CHUNK):
            case_rows, timer_rows, task_rows, role_rows = [], [], [], []
            for n in range(chunk_start, min(chunk_start + CHUNK, pending)):
                if first_due is not None:
                    if n in due_ids:  # spread evenly over the window
                        due_at = first_due + timedelta(seconds=window * slot[n] / max(1, due - 1))
                    else:
                        due_at = first_due + timedelta(days=30, minutes=1 + n % (30 * 1440))
                elif n in due_ids:  # due within the day before the sweep
                    due_at = FIRE_AT - timedelta(minutes=1 + n % 1440)
                else:  # falls due over the next 30 days
                    due_at = FIRE_AT + timedelta(minutes=1 + n % (30 * 1440))
                timer_id, task_id = str(uuid.uuid4()), str(uuid.uuid4())
                # Live: the stored cycle value is two days behind the row, so that the rows alone are moved to
                # the real due times (one UPDATE) and the firing at the row's time is the cycle's one firing.
                state_due = due_at - timedelta(days=2) if first_due is not None else due_at
                state = (template_state.replace(timer.id, timer_id).replace(task.id, task_id)
                         .replace(template_due, state_due.isoformat()))
                case_id = first_id + n - 1
                if first_due is not None and n in due_ids:
                    due_times[case_id] = due_at.isoformat()
                case_rows.append({"id": case_id, "process_version_id": template.process_version_id,
                                  "reference": f"BENCH-{n}", "status": "active", "data": template.data,
                                  "state": state, "state_format": template.state_format,
                                  "started_by": template.started_by, "created_at": STARTED, "updated_at": STARTED,
                                  "next_timer_at": due_at, "waiting_for": template.waiting_for, "lock_version": 1,
                                  "council_id": council.id})
                timer_rows.append({"id": timer_id, "case_id": case_id, "name": timer.name, "title": timer.title,
                                   "due_at": due_at, "attached_task_id": task_id, "properties": timer.properties,
                                   "council_id": council.id,
                                   **({"cycle": {**template_cycle, "start": state_due.isoformat(),
                                                 "next": state_due.isoformat()}} if template_cycle else {})})
                task_rows.append({"id": task_id, "case_id": case_id, "name": task.name, "title": task.title,
                                  "lane": task.lane, "due_at": task.due_at, "created_at": STARTED, "council_id": council.id})
                role_rows.extend({"task_id": task_id, "role": role, "council_id": council.id} for role in roles)
            db.session.execute(insert(Case), case_rows)
            db.session.execute(insert(PendingTimer), timer_rows)
            db.session.execute(insert(OpenTask), task_rows)
            db.session.execute(insert(TaskRole), role_rows)
            db.session.commit()
        print(f"built {pending:,} cases with a pending timer ({due:,} due) in {time.perf_counter() - started:.1f} s")
        if record is not None:
            record.write_text(json.dumps(due_times))
        if db.engine.dialect.name == "postgresql":
            from sqlalchemy import text
            db.session.execute(text("ANALYZE"))
            db.session.commit()
            db.session.execute(text(f"SELECT setval('cases_id_seq', {first_id + pending})"))
            db.session.commit()


def fire(url: str, use_tracemalloc: bool) -> dict:
    """In a fresh process: find and fire what is due at FIRE_AT, as the scheduler's sweep does."""
    from sqlalchemy import func, select

    from service import create_app, scheduler, tenancy
    from service.engine import clock
    from service.models import AuditEvent, PendingTimer, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context(), tenancy.all_councils(db.session):
        pending = db.session.scalar(select(func.count()).select_from(PendingTimer))
        with clock.clock_at(FIRE_AT):
            started = time.perf_counter()
            first_batch = scheduler._due_cases(db.session, set())
            find_ms = (time.perf_counter() - started) * 1000
            due = db.session.scalar(select(func.count()).select_from(PendingTimer)
                                    .where(PendingTimer.due_at <= clock.now()))
        started = time.perf_counter()
        next_due = scheduler.next_due(app)
        next_due_ms = (time.perf_counter() - started) * 1000
        db.session.rollback()
    rss_before = peak_rss_mib()
    if use_tracemalloc:
        import tracemalloc
        tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    fired = scheduler.fire_due(app, FIRE_AT)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    from service import audit  # what the sweep does next: chain the events just written

    started, cpu_started = time.perf_counter(), time.process_time()
    with app.app_context():
        sealed = audit.seal_all(db.session)
    seal_seconds, seal_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    traced_peak = None
    if use_tracemalloc:
        import tracemalloc
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    with app.app_context(), tenancy.all_councils(db.session):
        audited = db.session.scalar(select(func.count()).select_from(AuditEvent)
                                    .where(AuditEvent.event == "timer_fired"))
        left_due = db.session.scalar(select(func.count()).select_from(PendingTimer)
                                     .where(PendingTimer.due_at <= FIRE_AT))
    return {"pending": pending, "due": due, "fired": fired, "audited": audited, "left_due": left_due,
            "seconds": seconds, "cpu_seconds": cpu_seconds, "sealed": sealed, "seal_seconds": seal_seconds,
            "seal_cpu_seconds": seal_cpu_seconds, "find_first_batch_ms": find_ms, "first_batch": len(first_batch),
            "next_due_ms": next_due_ms, "next_due": next_due.isoformat() if next_due else None,
            "rss_before_mib": rss_before,
            "peak_rss_mib": peak_rss_mib(),
            "tracemalloc_peak_mib": traced_peak / 2**20 if traced_peak is not None else None}


def shift(url: str, due_times: dict[str, str], lead: float, only_due_cases: bool = False) -> dict[str, str]:
    """Move every pending timer row (with ``only_due_cases``, those of the cases in ``due_times``) so that the
    first due one falls due ``lead`` seconds from now (one UPDATE): the processes start on a quiet database, then
    the timers fall due over the window. (The stored cycle values are already behind: see ``build``.)"""
    from sqlalchemy import create_engine, text

    first = min(datetime.fromisoformat(d) for d in due_times.values())
    delta = (datetime.now(timezone.utc) + timedelta(seconds=lead)) - first
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE pending_timers SET due_at = due_at + make_interval(secs => :s)"
                                + (" WHERE case_id = ANY(:ids)" if only_due_cases else "")),
                           {"s": delta.total_seconds(), "ids": [int(case_id) for case_id in due_times]})
        connection.execute(text("SELECT pg_notify('step_pathways_timers', '')"))  # as the service's commits do
    engine.dispose()
    return {k: (datetime.fromisoformat(v) + delta).isoformat() for k, v in due_times.items()}


def serve(url: str, workers: int, batch: int, whole: bool = False) -> None:
    """A timer service process (as ``flask --app service.timer_worker timers run``; with ``whole``, as
    ``flask --app service timers run``: the pages and API loaded too): wake at each due timer, fire, until SIGTERM."""
    import signal
    import threading

    from service import create_app, scheduler, settle_process

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False, "TIMER_WORKERS": workers,
                      "TIMER_BATCH": batch}, **({} if whole else {"timers_only": True}))
    settle_process()  # as service.timer_worker and service.wsgi do
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service = scheduler.TimerService(app)
    service.start()
    print("ready", flush=True)
    stop.wait()
    service.shutdown()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mib": peak_rss_mib()}), flush=True)


def live(url: str, processes: int, workers: int, batch: int, recorded: dict[str, str], lead: float,
         timeout: float, only_due_cases: bool = False, whole: bool = False) -> dict:
    """Run ``processes`` timer service processes on the real clock until every due timer has fired (counted from
    the ``timer_fired`` audit events written since the processes started). ``only_due_cases``: see ``shift``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    command = [sys.executable, __file__, "--serve", "--database-url", url, "--workers", str(workers),
               "--batch", str(batch), *(["--whole-service"] if whole else [])]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ,
                                                                                  "PYTHONPATH": str(ROOT)})
                for _ in range(processes)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    time.sleep(2)  # their start-up sweeps have found nothing due
    since = datetime.now(timezone.utc)
    due_times = shift(url, recorded, lead, only_due_cases)
    first_due = min(datetime.fromisoformat(d) for d in due_times.values())
    deadline = time.monotonic() + timeout + max(0.0, (first_due - datetime.now(timezone.utc)).total_seconds())
    query = text("SELECT count(*) FROM audit_events WHERE event = 'timer_fired' AND at >= :since")
    fired = 0
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            fired = connection.execute(query, {"since": since}).scalar()
        if fired >= len(due_times):
            break
        time.sleep(0.25)
    stats = []
    for child in children:
        child.terminate()
    for child in children:
        out, _ = child.communicate(timeout=120)
        stats.append(json.loads(out.strip().splitlines()[-1]))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT case_id, at FROM audit_events WHERE event = 'timer_fired' "
                                       "AND at >= :since"), {"since": since}).all()
        pending = connection.execute(text("SELECT count(*) FROM pending_timers")).scalar()
    engine.dispose()
    lateness = sorted((at - datetime.fromisoformat(due_times[str(case_id)])).total_seconds()
                      for case_id, at in rows if str(case_id) in due_times)
    once = len({case_id for case_id, _ in rows}) == len(rows)
    last = max(at for _, at in rows) if rows else first_due
    span = (last - first_due).total_seconds()

    def pct(p: float) -> float:
        return lateness[min(len(lateness) - 1, int(p * len(lateness)))] if lateness else float("nan")

    return {"due": len(due_times), "fired": len(rows), "exactly_once": once, "pending": pending,
            "span_seconds": span, "fires_per_second": len(rows) / span if span > 0 else float("nan"),
            "p50": pct(0.5), "p95": pct(0.95), "max": lateness[-1] if lateness else float("nan"),
            "within_1s": sum(1 for x in lateness if x <= 1.0) / max(1, len(lateness)),
            "cpu_ms_per_fire": 1000 * sum(s["cpu_seconds"] for s in stats) / max(1, len(rows)),
            "peak_rss_mib": [round(s["peak_rss_mib"]) for s in stats]}


def report_live(result: dict, processes: int, workers: int, window: float) -> None:
    print(f"live: {processes} timer process(es) x {workers} worker threads; {result['due']:,} timers falling due "
          f"over {window:g} s among {result['pending']:,} pending")
    print(f"  fired {result['fired']:,} (exactly once: {result['exactly_once']}) in {result['span_seconds']:.1f} s "
          f"from the first due = {result['fires_per_second']:.0f} fires/s")
    print(f"  latency after due: p50 {result['p50'] * 1000:.0f} ms, p95 {result['p95'] * 1000:.0f} ms, "
          f"max {result['max'] * 1000:.0f} ms; {100 * result['within_1s']:.1f}% within 1 s")
    print(f"  timer processes' CPU {result['cpu_ms_per_fire']:.2f} ms per fire (start-up included); "
          f"peak RSS {result['peak_rss_mib']} MiB")


def fire_in_child(url: str, use_tracemalloc: bool) -> dict:
    command = [sys.executable, __file__, "--fire-only", "--database-url", url]
    if use_tracemalloc:
        command.append("--tracemalloc")
    out = subprocess.run(command, check=True, capture_output=True, text=True,
                         env={**os.environ, "TIMERS_ENABLED": "false"}).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(label: str, result: dict) -> None:
    print(f"{label}: fired {result['fired']:,} of {result['due']:,} due among {result['pending']:,} pending "
          f"in {result['seconds']:.1f} s = {result['fired'] / result['seconds']:.0f} fires/s "
          f"(audited {result['audited']:,}, still due {result['left_due']})")
    if "cpu_seconds" in result:
        print(f"  this process's CPU while firing: {result['cpu_seconds'] * 1000 / max(1, result['fired']):.2f} ms per "
              f"fire; then sealing {result['sealed']:,} audit events: {result['seal_seconds']:.1f} s, CPU "
              f"{result['seal_cpu_seconds'] * 1000 / max(1, result['sealed']):.2f} ms per event")
    print(f"  find the first {result['first_batch']} due cases: {result['find_first_batch_ms']:.1f} ms; "
          f"next due (the alarm query): {result['next_due_ms']:.1f} ms")
    line = f"  peak RSS {result['peak_rss_mib']:.0f} MiB (after start-up {result['rss_before_mib']:.0f} MiB)"
    if result["tracemalloc_peak_mib"] is not None:
        line += f"; tracemalloc peak while firing {result['tracemalloc_peak_mib']:.1f} MiB"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--database-url")

    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations")
    parser.add_argument("--processes", type=int, default=0,
                        help="run this many timer service processes on the real clock (PostgreSQL), the due "
                             "timers falling due over --window seconds, and report rate and latency after due")
    parser.add_argument("--window", type=float, default=10.0, help="seconds over which the due timers fall due")
    parser.add_argument("--lead", type=float, default=2.0,
                        help="seconds from when the processes are ready to the first due time")
    parser.add_argument("--workers", type=int, default=4, help="worker threads per timer process (TIMER_WORKERS)")
    parser.add_argument("--batch", type=int, default=50, help="cases claimed per statement (TIMER_BATCH)")
    parser.add_argument("--whole-service", action="store_true",
                        help="the timer processes load the whole service (pages and API), as `flask --app service "
                             "timers run`, not service.timer_worker")
    parser.add_argument("--cycles-on-rows", action="store_true",
                        help="the sweep without --processes: each pending row holds its reminder's cycle, as after its "
                             "first firing without the engine (the state is then not read)")
    parser.add_argument("--reminder", choices=sorted(PROCESSES), default="daily",
                        help="each case's reminder: daily (R/P1D) or once (P1D); both notify the task's people")
    parser.add_argument("--fire-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fire_only:
        print(json.dumps(fire(args.database_url, args.tracemalloc)))
        return
    if args.serve:
        serve(args.database_url, args.workers, args.batch, args.whole_service)
        return
    if not 0 < args.due <= args.pending:
        parser.error("--due must be between 1 and --pending")
    workdir = Path(tempfile.mkdtemp(prefix="bench-timers-"))
    try:
        url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
        if args.processes:
            if not url.startswith("postgresql"):
                parser.error("--processes needs --database-url postgresql+psycopg://...")
            record = workdir / "due.json"
            # The build takes a while: fall due --lead seconds after it ends (the due times are moved then).
            build(url, args.pending, args.due, first_due=datetime.now(timezone.utc) + timedelta(days=1),
                  window=args.window, record=record, process=PROCESSES[args.reminder])
            print(f"database: {url.split(':', 1)[0]}; {os.cpu_count()} CPUs; load average "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            result = live(url, args.processes, args.workers, args.batch, json.loads(record.read_text()), args.lead,
                          timeout=args.window + 300, whole=args.whole_service)
            report_live(result, args.processes, args.workers, args.window)
            return
        build(url, args.pending, args.due, cycles_on_rows=args.cycles_on_rows, process=PROCESSES[args.reminder])
        copy_url = None
        if url.startswith("sqlite") and args.tracemalloc:  # time without tracing; trace a second run on a copy
            shutil.copy(workdir / "bench.db", workdir / "traced.db")
            copy_url = f"sqlite:///{workdir / 'traced.db'}"
        print(f"database: {url.split(':', 1)[0]}; {os.cpu_count()} CPUs; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        report("sweep", fire_in_child(url, args.tracemalloc and copy_url is None))
        if copy_url:
            report("the same sweep on a copy, with tracemalloc on (slower)", fire_in_child(copy_url, True))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
