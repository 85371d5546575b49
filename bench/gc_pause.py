"""A service process's full garbage collection: how long it stops the process, before and after
``service.settle_process`` (``gc.freeze``) leaves what start-up built out of it.

The process is built as a serving one is (``service.wsgi``: ``create_app``), on a throwaway SQLite database
with ``bench/task_completion.py``'s set-up (a council, Carmarthenshire's pathways and the test fixtures, parsed,
and ``--cases`` started cases); then a few requests warm it. Each figure is the median of ``--repeat`` forced
full collections (``gc.collect()``).

    .venv/bin/python bench/gc_pause.py [--cases 20] [--repeat 7]
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import load_average  # noqa: E402
from task_completion import setup  # noqa: E402 (sets a throwaway key if none is given)


def full_collections(repeat: int) -> float:
    """The median wall time of ``repeat`` full collections, in ms."""
    pauses = []
    for _ in range(repeat):
        start = time.perf_counter()
        gc.collect()
        pauses.append(time.perf_counter() - start)
    return statistics.median(pauses) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    app, _, _, _ = setup(f"sqlite:///{tempfile.mkdtemp(prefix='bench-gc-')}/bench.db", args.cases)
    client, headers = app.test_client(), {"Authorization": "Bearer bench-token"}
    for path in ("/api/v1/tasks", "/api/v1/cases"):
        assert client.get(path, headers=headers).status_code == 200
    from service import settle_process

    print(f"load average {load_average()}; {len(gc.get_objects()):,} objects tracked by the collector")
    print(f"  a full collection, as built: median {full_collections(args.repeat):.1f} ms")
    settle_process()
    print(f"  after settle_process ({gc.get_freeze_count():,} objects frozen): median "
          f"{full_collections(args.repeat):.1f} ms")


if __name__ == "__main__":
    main()
