"""Whole approval cases per second over HTTP: gunicorn and a throwaway PostgreSQL, 1 and 4 concurrent clients.

A whole approval case is three requests of the approval diagram (tests/fixtures/pathways/review.bpmn,
``test_review``): a worker starts it (POST /api/v1/cases), completes the assessment with risk (POST
/api/v1/tasks/<id>/complete, which runs the decision to the manager's approval task) and the manager
approves it (the case completes). Each client is a thread with its own keep-alive connection, running
whole cases one after another for ``--seconds``.

The service runs as in production (README, "Production setup"): gunicorn with the repository's
gunicorn.conf.py, ``--workers`` processes (default: its 2 x cores), timers off (this measures requests),
PostgreSQL with ``fsync`` on.
gunicorn is a dependency of the service (pyproject.toml); ``--gunicorn-path`` adds another folder to the path.

    .venv/bin/python bench/http_throughput.py [--workers N] [--clients 1 4] [--seconds 20]
        [--database-url URL]   # an existing empty PostgreSQL database instead of a throwaway one
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from throwaway_postgres import free_port, start_postgres, stop_postgres  # noqa: E402 (bench/ is the script's folder)
if not os.environ.get("DATA_ENCRYPTION_KEYS"):  # a throwaway key for a throwaway database
    from cryptography.fernet import Fernet
    os.environ["DATA_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()


def prepare(url: str) -> None:
    """Migrate, one council, the approval diagram, a worker and a manager with known tokens."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from service import councils, create_app, deployments, tenancy
    from service.auth import save_user
    from service.models import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
        council, _ = councils.create_council(db.session, "bench", "Bench Council")
        tenancy.act_for(db.session, council)
        deployments.deploy(db.session, deployments.read_folders(ROOT, [ROOT / "tests/fixtures/pathways"]), "bench")
        save_user(db.session, "worker", ["social_worker"], council=council, token="bench-worker")
        save_user(db.session, "manager", ["team_manager"], council=council, token="bench-manager")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


class Client(threading.Thread):
    def __init__(self, port: int, until: float, number: int) -> None:
        super().__init__(daemon=True)
        self.port, self.until, self.number = port, until, number
        self.cases, self.latencies, self.failures = 0, [], []

    def call(self, connection, path: str, body: dict, token: str) -> dict:
        started = time.perf_counter()
        connection.request("POST", f"/api/v1{path}", body=json.dumps(body),
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        self.latencies.append(time.perf_counter() - started)
        if response.status not in (200, 201):
            raise RuntimeError(f"{path}: {response.status} {answer}")
        return answer

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        i = 0
        while time.perf_counter() < self.until:
            i += 1
            try:
                case = self.call(connection, "/cases", {"process": "test_review", "reference": f"C{self.number}-{i}",
                                                        "data": {"needs": 3}}, "bench-worker")
                [assess] = case["tasks"]
                case = self.call(connection, f"/tasks/{assess['id']}/complete", {"data": {"risk": True}},
                                 "bench-worker")
                [approve] = case["tasks"]
                case = self.call(connection, f"/tasks/{approve['id']}/complete", {"data": {}}, "bench-manager")
                assert case["status"] == "completed", case
                self.cases += 1
            except Exception as error:  # noqa: BLE001 (counted and shown)
                self.failures.append(str(error)[:200])
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)


def measure(port: int, clients: int, seconds: float) -> None:
    warm = Client(port, time.perf_counter() + 2, 0)  # every worker parses the diagram once
    warm.run()
    until = time.perf_counter() + seconds
    threads = [Client(port, until, n + 1 + clients * 1000) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    done = sum(t.cases for t in threads)
    latencies = sorted(x for t in threads for x in t.latencies)
    failures = [f for t in threads for f in t.failures]
    print(f"{clients} client{'s' if clients > 1 else ''}: {done} whole approval cases in {elapsed:.1f} s = "
          f"{done / elapsed:.1f} cases/s; request latency median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms; {len(failures)} failed"
          + (f" (first: {failures[0]})" if failures else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=1, help="gunicorn --threads per worker")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--database-url")
    parser.add_argument("--gunicorn-path", help="a folder holding the gunicorn package, added to the path")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-http-"))
    pg = Path(tempfile.mkdtemp(prefix="bench-http-pg-"))
    url = args.database_url or start_postgres(pg)
    server = None
    try:
        prepare(url)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "TIMERS_ENABLED": "false",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), args.gunicorn_path, os.environ.get("PYTHONPATH"))
                                             if p)}
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                                   "-w", str(args.workers), "--threads", str(args.threads), "-b", f"127.0.0.1:{port}",
                                   "--log-level", "warning", "service.wsgi:app"], cwd=base, env=env)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        print(f"gunicorn -w {args.workers} --threads {args.threads}; PostgreSQL; {os.cpu_count()} CPUs; "
              f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for clients in args.clients:
            measure(port, clients, args.seconds)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if not args.database_url:
            stop_postgres(pg)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
