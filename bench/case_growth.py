"""How a case's stored state and step time grow with its age: a plan reviewed every three months, 1,000 times.

Each review goes through the engine as the service drives it (load the stored state, act, save): the
late-review reminder fires, the review is completed, three months pass and the next review opens.
Prints the state's size and the time a completion takes at reviews 1, 10, 100 and 1000.

    .venv/bin/python bench/case_growth.py [--reviews 1000] [--no-compact]

``--no-compact`` runs without pruning the task tree (as before issue 15), to show what it prevents.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.engine import clock, runtime, spiff  # noqa: E402
from service.engine.bundle import build_bundle  # noqa: E402

DIAGRAM = ROOT / "tests" / "fixtures" / "constructs" / "review_loop.bpmn"
MARKS = (1, 10, 100, 1000)


def step(process, state: str, action, *args):
    started = time.perf_counter()
    workflow, journal = runtime.load(process, state)
    snap = action(workflow, journal, *args)
    state = runtime.dump(workflow)
    return state, snap, workflow, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1000)
    parser.add_argument("--no-compact", action="store_true")
    args = parser.parse_args()
    if args.no_compact:
        spiff.compact = lambda workflow: 0
    process = build_bundle({DIAGRAM.name: DIAGRAM.read_bytes()}).processes["review_loop"]
    fixed = clock.FixedClock(datetime(2027, 1, 4, 9, 0, tzinfo=timezone.utc))
    clock.set_clock(fixed)
    workflow, snap = runtime.start(process, {})
    state, recent = runtime.dump(workflow), []
    print(f"{'review':>7} {'state bytes':>12} {'tasks':>6} {'depth':>6} {'ms/completion':>14}")
    for review in range(1, args.reviews + 1):
        try:
            fixed.move_to(fixed.now() + timedelta(days=15))
            state, snap, workflow, _ = step(process, state, runtime.fire_timers)
            task = next(t.id for t in snap.tasks if t.name == "Task_ReviewPlan")
            state, snap, workflow, ms = step(process, state, runtime.complete_task, task, {"close": False})
            fixed.move_to(fixed.now() + timedelta(days=100))
            state, snap, workflow, _ = step(process, state, runtime.fire_timers)
        except (RecursionError, runtime.EngineError, StopIteration) as error:
            print(f"{review:>7} failed: {type(error).__name__}: {str(error)[:80]}")
            return
        recent = (recent + [ms])[-5:]
        if review in MARKS or review == args.reviews:
            tasks = len(workflow.tasks) + sum(len(sp.tasks) for sp in workflow.subprocesses.values())
            print(f"{review:>7} {len(state):>12} {tasks:>6} {spiff.tree_depth(workflow):>6} "
                  f"{statistics.median(recent):>14.2f}")


if __name__ == "__main__":
    main()
