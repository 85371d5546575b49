"""How long a scenario test takes: one run of a scenario on a sandbox (no database), and a whole deploy's worth.

Parses the pathways once, then runs each scenario ``--repeat`` times and prints the median and the slowest run
per scenario, and the total for running every scenario once (what a publish of all of them costs). Scenario
files: ``bpmn/scenarios/*.scenario.json`` (the reference pathways') and the test fixture
``tests/fixtures/sandbox``; with none of the former, a built-in scenario of Halton step down stands in.

    .venv/bin/python bench/scenarios.py [--repeat 20] [--scenarios other/bpmn/scenarios]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import scenarios
from service.deployments import read_folders
from service.engine.bundle import build_bundle

HALTON = {
    "scenario": "Universal services (bench)", "process": "halton_step_down",
    "start": {"at": "2027-01-04T09:00:00+00:00", "as": "social_worker",
              "data": {"child_name": "Alex", "final_cin_meeting_date": "2027-01-07"}},
    "steps": [
        {"clock": "next timer"},
        {"complete": "Task_InviteEarlyIntervention", "as": "social_worker",
         "data": {"cin_meeting_time": "10:00", "cin_meeting_venue": "Runcorn", "work_completed": "Plan",
                  "outstanding_actions": "None", "invitation_emailed": True}},
        {"complete": "Task_FinalCinMeeting", "as": "social_worker",
         "data": {"risk_of_significant_harm": "no", "needs_count": 0, "needs_severity": "low",
                  "plan_progress": "progressing", "consent": "given", "step_up_indicators": "None"}},
        {"clock": "+4 weeks"},
        {"complete": "Task_AdviseUniversal", "as": "social_worker", "data": {"universal_services_advised": "Hub"}},
        {"complete": "Task_StepDownForm", "as": "early_intervention",
         "data": {"actions_agreed": "Actions", "step_down_form_outcome": "universal"}},
    ],
    "expect": {"status": "completed", "outcome": "universal"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--scenarios", type=Path, action="append", default=[],
                        help="another folder of scenario files (e.g. another worktree's bpmn/scenarios)")
    args = parser.parse_args()
    files = read_folders(ROOT)
    for folder in args.scenarios:
        files.update({p.name: p.read_bytes() for p in folder.glob("*.scenario.json")})
    fixture = ROOT / "tests" / "fixtures" / "sandbox"
    files.update({p.name: p.read_bytes() for p in fixture.iterdir()})
    began = time.perf_counter()
    bundle = build_bundle(files)
    print(f"parsed {len(bundle.processes)} processes in {time.perf_counter() - began:.2f} s")
    found = [scenarios.parse(files[n], n) for n in sorted(files) if n.endswith(scenarios.SUFFIX)]
    if not any(s.process == "halton_step_down" for s in found):
        found.append(scenarios.parse(json.dumps(HALTON), "halton_step_down.bench.scenario.json"))
    total, failed = 0.0, 0
    print(f"{'scenario':70} {'steps':>5} {'median ms':>10} {'max ms':>8}")
    for scenario in found:
        times, result = [], None
        for _ in range(args.repeat):
            result = scenarios.run(bundle.processes, scenario)
            times.append(result.seconds)
        failed += not result.passed
        total += statistics.median(times)
        print(f"{scenario.name[:70]:70} {len(scenario.steps):5} {statistics.median(times) * 1000:10.1f} "
              f"{max(times) * 1000:8.1f}{'' if result.passed else '  FAILED'}")
    print(f"{len(found)} scenarios, every one run once: {total:.2f} s (median runs); {failed} failed")


if __name__ == "__main__":
    main()
