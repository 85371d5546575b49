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

MODES = {"rule": 30, "every": 10**8}  # the safety interval: a 60 s horizon, or every timer within it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pairs", type=int, default=150)
    args = parser.parse_args()
    app, _, prepared, counter = tc.setup(args.database_url, args.pairs)
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
