"""The service's CPU per API GET with its JSON answers written by Flask's ``json`` and by orjson
(``service.json_answers``), turn about in one process: the machine's load moves both alike.

The set-up is ``bench/task_completion.py``'s (one council, Carmarthenshire's pathways and the test fixtures, the
bench user with five roles, ``--cases`` cases of each diagram for each side). CPU is ``time.process_time``.

    .venv/bin/python bench/json_answers.py [--cases 20] [--repeat 800] [PATH ...]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import load_average  # noqa: E402
from task_completion import setup  # noqa: E402 (sets a throwaway key if none is given)

PATHS = ["/api/v1/tasks", "/api/v1/cases", "/api/v1/tasks?overdue=true"]
FLASK, OURS = "Flask's json", "orjson"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=800)
    parser.add_argument("paths", nargs="*", default=PATHS)
    args = parser.parse_args()
    from flask.json.provider import DefaultJSONProvider

    from service.json_answers import JSONAnswers

    app, _, _, _ = setup(f"sqlite:///{tempfile.mkdtemp(prefix='bench-json-')}/bench.db", args.cases)
    client, headers = app.test_client(), {"Authorization": "Bearer bench-token"}
    providers = {FLASK: DefaultJSONProvider(app), OURS: JSONAnswers(app)}
    print(f"load average {load_average()}; {args.repeat} requests a path with each")
    for path in args.paths:
        cpu: dict[str, list[float]] = {name: [] for name in providers}
        for _ in range(30):
            client.get(path, headers=headers)
        for _ in range(args.repeat):
            for name, provider in providers.items():
                app.json = provider
                start = time.process_time()
                answer = client.get(path, headers=headers)
                cpu[name].append(time.process_time() - start)
                assert answer.status_code == 200, answer.get_data(as_text=True)[:200]
        medians = {name: statistics.median(samples) * 1000 for name, samples in cpu.items()}
        print(f"{path} ({len(answer.get_data()):,} bytes): "
              + ", ".join(f"{name} CPU median {ms:.2f} ms" for name, ms in medians.items())
              + f"; {OURS} / {FLASK}: {medians[OURS] / medians[FLASK]:.2f}")


if __name__ == "__main__":
    main()
