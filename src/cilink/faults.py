"""Fault injection for crash tests: ``CILINK_CRASH_AT=write:3`` kills the process at its 3rd durable write.

Points are the moments a crash could tear state: ``write`` (just before an atomic rename publishes a file,
directory or link generation) and ``commit`` (just before a ledger transaction commits). Unset in production.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_seen: Counter[str] = Counter()


def crash_point(kind: str) -> None:
    """SIGKILL this process if ``CILINK_CRASH_AT`` names this kind of point and its count is reached."""
    spec = os.environ.get("CILINK_CRASH_AT")
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != kind:
        return
    _seen[kind] += 1
    if _seen[kind] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
