"""How long a deploy's checks take: in the checker process the service forks for each deploy (killed past
DEPLOY_CHECK_SECONDS), against the same checks run in this process, for each reference council's files.

The app's record of files that passed is emptied before each check, so every run checks (an analyst's save of
changed files). The first check of the run starts the fork server (once per service process) and is left out.

    .venv/bin/python bench/deploy_checks.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not os.environ.get("DATA_ENCRYPTION_KEYS"):  # a throwaway key: nothing is stored
    from cryptography.fernet import Fernet
    os.environ["DATA_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()

from figures import load_average, p95  # noqa: E402

from service import create_app, deploy_checks, deployments  # noqa: E402


def council_files() -> dict[str, dict[str, bytes]]:
    """Each reference council's pathway files (bpmn/, dmn/, forms/ and the scenarios), by council key."""
    files = deployments.read_folders(ROOT, [ROOT / "bpmn", ROOT / "dmn", ROOT / "forms", ROOT / "bpmn/scenarios"])
    councils: dict[str, dict[str, bytes]] = {}
    for name, content in files.items():
        councils.setdefault(name.split("_", 1)[0], {})[name] = content
    return councils


def timed(check, files, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        deploy_checks._passed().clear()
        started = time.perf_counter()
        check(files)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tempfile.mkdtemp()}/bench.db", "TIMERS_ENABLED": False})
    print(f"{os.cpu_count()} CPUs; load average {load_average()}; {args.repeat} checks of each")
    print(f"{'council':<16} {'files':>5} {'checker process ms (median / p95)':>36} {'in this process ms':>22}")
    with app.app_context():
        for number, (key, files) in enumerate(sorted(council_files().items())):
            first = time.perf_counter()
            deploy_checks._passed().clear()
            deploy_checks.check_in_time(files)  # the first of the run starts the fork server
            if number == 0:
                print(f"(the first check, starting the fork server: {(time.perf_counter() - first) * 1000:.0f} ms)")
            elsewhere = timed(deploy_checks.check_in_time, files, args.repeat)
            here = timed(deploy_checks.checked_bundle, files, args.repeat)
            print(f"{key:<16} {len(files):>5} {statistics.median(elsewhere):>24.0f} / {p95(elsewhere):<9.0f} "
                  f"{statistics.median(here):>12.0f} / {p95(here):<.0f}")


if __name__ == "__main__":
    main()
