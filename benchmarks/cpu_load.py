"""CPU accounting for the benchmarks: how busy the machine was while a run trained.

The machines the benchmarks run on are often shared, so each figure is printed with how many
cores' worth other processes used meanwhile: busy CPU seconds of the whole machine minus this
process's own (and its finished children's, the data loader workers).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), or None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(value) for value in fields]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the data loader workers)."""
    usages = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)
