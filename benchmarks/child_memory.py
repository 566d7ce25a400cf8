"""What a benchmark child reports of its own memory. Standard library only: the scripts that use it
(``febrl4.py``, ``incremental.py``) also run without the ``bench`` extra."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> int:
    """This process's peak resident set size in MiB, for a benchmark child to report itself (VmHWM: unlike
    ru_maxrss it is not inherited across fork+exec from the parent that started it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
