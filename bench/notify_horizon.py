"""The NOTIFY horizon, A/B in one process: completions and starts through the REST API with the rule (the
commit tells the other processes only of a timer due within twice the safety interval) and without it (every
new timer told, as before), alternating request by request (ABBA), on the diagrams of bench/task_completion.py.

Without the rule is the same code with ``TIMER_SAFETY_INTERVAL_SECONDS`` at 10^8 s: every timer falls within
the horizon. Prints CPU (``time.process_time``) and wall medians, statements per request, and the median of the
pairs' ratios (with / without).

    DATA_ENCRYPTION_KEYS=... .venv/bin/python bench/notify_horizon.py --database-url postgresql+psycopg://... [--pairs 150]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import task_completion as tc  # noqa: E402 (it puts the repository on the path)
from sqlalchemy import text  # noqa: E402

from service import councils, create_app, deployments, tenancy  # noqa: E402
from service.auth import save_user  # noqa: E402
from service.cases import Actor  # noqa: E402
from service.models import db  # noqa: E402

MODES = {"rule": 30, "every": 10**8}  # the safety interval: a 60 s horizon, or every timer within it


def setup(url: str, pairs: int):
    """A fresh schema, the pathways, a user and ``pairs`` x 2 cases of each diagram at the task to complete."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    with app.app_context():
        from flask_migrate import upgrade
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
        council, _ = councils.create_council(db.session, "bench", "Bench Council")
        tenancy.act_for(db.session, council)
        files = {n: b for n, b in deployments.read_folders(tc.ROOT).items() if n.startswith("carmarthenshire")}
        files.update(deployments.read_folders(tc.ROOT, [tc.ROOT / "tests/fixtures/pathways"]))
        deployments.deploy(db.session, files, "bench")
        save_user(db.session, "bench", tc.ROLES, council=council, token="bench-token")
        db.session.commit()
        actor = Actor("bench", tuple(tc.ROLES), council_id=council.id)
        prepared = {key: tc.prepare(db.session, key, data, task, pairs, actor) for key, data, task, _ in tc.DIAGRAMS}
        db.session.remove()
        return app, prepared, tc.Statements(db.engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pairs", type=int, default=150)
    args = parser.parse_args()
    app, prepared, counter = setup(args.database_url, args.pairs)
    client, headers = app.test_client(), {"Authorization": "Bearer bench-token"}
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.pairs} pairs of each")
    for key, data, task_name, answers in tc.DIAGRAMS:
        tasks = iter([task for _, task in prepared[key].bare] + prepared[key].api)
        out = {(what, mode): ([], [], []) for what in ("complete", "start") for mode in MODES}
        for what in ("complete", "start"):
            for i in range(args.pairs):
                for mode in (("rule", "every") if i % 2 else ("every", "rule")):
                    app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = MODES[mode]
                    counter.on, counter.count = True, 0
                    wall, cpu = time.perf_counter(), time.process_time()
                    if what == "complete":
                        response = client.post(f"/api/v1/tasks/{next(tasks)}/complete", json={"data": answers},
                                               headers=headers)
                    else:
                        response = client.post("/api/v1/cases", json={"process": key, "reference": f"AB-{mode}-{i}",
                                                                      "data": data}, headers=headers)
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    counter.on = False
                    assert response.status_code in (200, 201), response.json
                    for sample, value in zip(out[what, mode], (wall, cpu, counter.count)):
                        sample.append(value)
        for what in ("complete", "start"):
            (r_wall, r_cpu, r_sql), (e_wall, e_cpu, e_sql) = out[what, "rule"], out[what, "every"]
            print(f"{key} {what}: every timer told: CPU {statistics.median(e_cpu) * 1000:.2f} ms, wall "
                  f"{statistics.median(e_wall) * 1000:.2f} ms, {statistics.median(e_sql):.0f} statements; by the "
                  f"horizon: CPU {statistics.median(r_cpu) * 1000:.2f} ms, wall {statistics.median(r_wall) * 1000:.2f} "
                  f"ms, {statistics.median(r_sql):.0f} statements; pairs' ratio CPU "
                  f"{statistics.median(a / b for a, b in zip(r_cpu, e_cpu)):.3f}, wall "
                  f"{statistics.median(a / b for a, b in zip(r_wall, e_wall)):.3f}")


if __name__ == "__main__":  # deploy checks start processes that import this module again
    main()
