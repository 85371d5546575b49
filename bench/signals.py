"""One signal that many cases wait for: the sender's request, then the timer service reaching the rest.

Builds ``--cases`` cases of ``signal_catch`` (tests/fixtures/constructs) waiting for ``school_closure``, through the
service's functions, then sends the signal as the council's admin (``POST /api/v1/signals`` through Flask's test
client) and prints what the request took (wall time, the cases it reached, the growth of this process's peak
memory). Then it runs the timer service's part (``service.broadcasts.deliver_due``, as each sweep does) until the
broadcast is done, and prints how many cases a second it reached, in how many sweeps. Each case is checked to have
caught the signal exactly once.

    .venv/bin/python bench/signals.py [--cases 2000] [--database-url URL]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import task_completion  # noqa: E402  (its setup: a fresh schema, a council, the bench user; the throwaway key)

from sqlalchemy import func, select  # noqa: E402

from service import broadcasts, deployments, tenancy  # noqa: E402
from service.auth import save_user  # noqa: E402
from service.cases import Actor, commit, complete_task, start_case  # noqa: E402
from service.models import AuditEvent, Council, SignalBroadcast, db  # noqa: E402

ROOT = task_completion.ROOT


def build(app, council_id: int, cases: int) -> None:
    """``cases`` cases waiting for the signal, and the council's admin (token ``admin-token``)."""
    with app.app_context():
        council = db.session.get(Council, council_id)
        tenancy.act_for(db.session, council)
        files = deployments.read_folders(ROOT, [ROOT / "tests" / "fixtures" / "constructs"])
        deployments.deploy(db.session, {name: content for name, content in files.items()
                                        if name.startswith("signal_catch")}, "bench")
        save_user(db.session, "bench-admin", ["admin"], council=council, token="admin-token")
        db.session.commit()
        actor = Actor("bench", tuple(task_completion.ROLES), council_id=council_id)
        for n in range(cases):
            case = start_case(db.session, "signal_catch", f"SIGNAL-{n}", {}, actor)
            complete_task(db.session, case.tasks[0].id, {}, actor)
            if n % 200 == 199:
                commit(db.session)
                db.session.expunge_all()
        commit(db.session)
        db.session.remove()


def caught(app, council_id: int) -> tuple[int, int]:
    """(cases that caught the signal, the most times one did)."""
    with app.app_context():
        tenancy.act_for(db.session, db.session.get(Council, council_id))
        counts = db.session.execute(select(AuditEvent.case_id, func.count()).where(
            AuditEvent.event == "signal_received").group_by(AuditEvent.case_id)).all()
        db.session.remove()
    return len(counts), max((n for _, n in counts), default=0)


def finished(app, council_id: int, broadcast_id: int) -> bool:
    with app.app_context():
        tenancy.act_for(db.session, db.session.get(Council, council_id))
        done = db.session.get(SignalBroadcast, broadcast_id).finished_at is not None
        db.session.remove()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-signals-')) / 'bench.db'}"
    app, council_id, _, _ = task_completion.setup(url, 1)
    began = time.perf_counter()
    build(app, council_id, args.cases)
    print(f"database: {url.split(':', 1)[0]}; {args.cases:,} cases waiting for the signal, built in "
          f"{time.perf_counter() - began:.0f} s")
    client = app.test_client()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    answer = client.post("/api/v1/signals", json={"name": "school_closure"},
                         headers={"Authorization": "Bearer admin-token"})
    took = time.perf_counter() - began
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.json
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    print(f"the request: {took * 1000:,.0f} ms, {len(body['reached']):,} cases reached, broadcast "
          f"{body['broadcast']}; peak memory +{grown:.0f} MiB")
    if body["broadcast"] is not None:
        began, reached, sweeps = time.perf_counter(), 0, 0
        while not finished(app, council_id, body["broadcast"]):
            reached += broadcasts.deliver_due(app)
            sweeps += 1
        took = time.perf_counter() - began
        print(f"the timer service: {reached:,} cases in {took:.1f} s ({reached / took:.0f} a second), {sweeps} "
              f"sweeps; peak memory +{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024:.0f} MiB "
              f"in all")
    cases, most = caught(app, council_id)
    print(f"{cases:,} cases caught it, each at most {most} time(s)")


if __name__ == "__main__":
    main()
