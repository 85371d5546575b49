"""CPU per timer fired, the service's and PostgreSQL's, and statements per fire: one sweep over due reminders.

Builds --pending cases of bench/timers.py's daily reminder (--due of them due) in an empty database of a
throwaway PostgreSQL server running on this machine (bench/throwaway_postgres.py), then runs one sweep in this
process (``scheduler.fire_due``, --workers threads) and prints: fires per second (wall), this process's CPU per
fire (time.process_time), the PostgreSQL server's CPU per fire (every process of the server listening on the
URL's port, from /proc: the postmaster's reaped children and its live ones), and, when the database has the
``pg_stat_statements`` extension (the server started with ``shared_preload_libraries=pg_stat_statements``),
statements executed per fire (an executemany row counts as one) and their execution time; and how many of the
sweep's updates of ``cases`` rows were HOT (``pg_stat_user_tables.n_tup_hot_upd``: written on the row's page, with
no new entry in the table's indexes).

    .venv/bin/python bench/timer_cpu.py --database-url URL [--root TREE] [--pending 3000] [--due 2000]
        [--workers 4] [--cycles-on-rows] [--profile FILE]

--root runs another tree's service and bench (a ``git archive`` of an older commit: "before"); --cycles-on-rows
gives each row its reminder's cycle (as after a first firing without the engine; only trees that have it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # [1] parent, [11:15] utime stime cutime cstime


def server_cpu(port: int) -> float:
    """CPU seconds of the PostgreSQL server on ``port``: postmaster, its reaped children, its live children."""
    master = None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in command and f"-p {port} " in command + " ":
            master = pid
    if master is None:
        raise SystemExit(f"no PostgreSQL server of this machine listens on port {port}")
    total = sum(int(x) for x in _stat(master)[11:15])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = _stat(pid)
        except OSError:
            continue
        if fields[1] == master:
            total += sum(int(x) for x in fields[11:15])
    return total / TICKS


def sweep(app, engine, port: int, instant, statements: bool, profile_to: str | None, label: str) -> None:
    """One sweep at ``instant``, and its figures on one line."""
    from sqlalchemy import text

    from service import scheduler
    from service.models import db

    if statements:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_stat_statements_reset()"))
    updates_before = case_updates(engine)
    load = os.getloadavg()[0]
    server_before, started, cpu_started = server_cpu(port), time.perf_counter(), time.process_time()
    profile = None
    if profile_to:
        import cProfile
        profile = cProfile.Profile()
        profile.enable()
    fired = scheduler.fire_due(app, instant)
    if profile is not None:
        profile.disable()
        profile.dump_stats(profile_to)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    server = server_cpu(port) - server_before
    with app.app_context():
        db.engine.dispose()  # the sweep's connections end: their backends report their row counts
    time.sleep(2)
    updated, hot = (after - before for after, before in zip(case_updates(engine), updates_before))
    line = (f"{label}fired {fired:,} in {wall:.1f} s = {fired / wall:.0f} fires/s (load average {load:.1f}); CPU per "
            f"fire: service {1000 * cpu / fired:.2f} ms, PostgreSQL {1000 * server / fired:.2f} ms; cases rows "
            f"updated {updated:,}, of which HOT {hot:,}")
    if statements:
        with engine.begin() as connection:
            calls, ms = connection.execute(text(
                "SELECT sum(calls), sum(total_exec_time) FROM pg_stat_statements "
                "WHERE query NOT ILIKE '%pg_stat_statements%'")).one()
        line += f"; statements per fire {calls / fired:.2f} ({float(ms) / fired:.2f} ms executing)"
    print(line, flush=True)


def case_updates(engine) -> tuple[int, int]:
    """Rows of ``cases`` updated so far, and of them updated in place (HOT: no new index entries)."""
    from sqlalchemy import text

    with engine.connect() as connection:
        return tuple(connection.execute(text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                                             "WHERE relname = 'cases'")).one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--pending", type=int, default=3000)
    parser.add_argument("--due", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--cycles-on-rows", action="store_true")
    parser.add_argument("--profile", help="write a cProfile of the sweep here (1 worker is what it sees)")
    parser.add_argument("--days", type=int, default=1, help="sweep again a day later, this many days in all")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    sys.path[:0] = [str(root), str(root / "bench")]
    import timers as bench  # the tree's own bench/timers.py
    from sqlalchemy import create_engine, text

    extra = {"cycles_on_rows": True} if args.cycles_on_rows else {}
    bench.build(args.database_url, args.pending, args.due, **extra)
    engine = create_engine(args.database_url)
    with engine.begin() as connection:
        statements = connection.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
                                             )).scalar()
    from service import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": args.database_url, "TIMERS_ENABLED": False,
                      "TIMER_WORKERS": args.workers})
    port = urlsplit(args.database_url.replace("+psycopg", "")).port or 5432
    for day in range(args.days):  # day 2 on: the same reminders' next firings, on the pages day 1 left
        sweep(app, engine, port, bench.FIRE_AT + timedelta(days=day), statements, args.profile if day == 0 else None,
              f"day {day + 1}: " if args.days > 1 else "")
    engine.dispose()


if __name__ == "__main__":
    main()
