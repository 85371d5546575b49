"""What the bench scripts measure alike: a process's memory, a percentile, the machine's load."""
from __future__ import annotations

import os


def rss_mib() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """This process's own peak resident memory (VmHWM). Not ``ru_maxrss``: Linux carries that over an exec, so a
    child started by ``subprocess`` (vfork, then exec) reports its parent's peak if that was higher."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def p95(values: list[float]) -> float:
    """The 95th percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(0.95 * len(ordered))) - 1))]


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())
