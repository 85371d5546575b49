"""The service's CPU per request for API GETs (lists, pages of cases), through Flask's test client.

The set-up is ``bench/task_completion.py``'s (one council, Carmarthenshire's pathways and the test fixtures, the
bench user with five roles, ``--cases`` cases of each diagram for each side). Each path is requested ``--repeat``
times after warm-ups, in this process; CPU is ``time.process_time``. Compare two trees by running this script
from each (``git archive`` the other), alternately.

    .venv/bin/python bench/request_cpu.py [--cases 20] [--repeat 1000] [PATH ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import load_average, p95  # noqa: E402
from task_completion import setup  # noqa: E402 (sets a throwaway key if none is given)

PATHS = ["/api/v1/cases?per_page=50", "/api/v1/tasks?limit=100"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1000)
    parser.add_argument("paths", nargs="*", default=PATHS)
    args = parser.parse_args()
    app, _, _, _ = setup(f"sqlite:///{tempfile.mkdtemp(prefix='bench-requests-')}/bench.db", args.cases)
    client, headers = app.test_client(), {"Authorization": "Bearer bench-token"}
    print(f"{os.cpu_count()} CPUs; load average {load_average()}; {args.repeat} requests a path")
    for path in args.paths:
        for _ in range(50):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, (path, answer.status_code, answer.get_data(as_text=True)[:200])
        spent = []
        for _ in range(args.repeat):
            started = time.process_time()
            client.get(path, headers=headers)
            spent.append((time.process_time() - started) * 1000)
        print(f"{path}: CPU median {statistics.median(spent):.2f} ms, p95 {p95(spent):.2f} ms")


if __name__ == "__main__":
    main()
