"""Fault injection for crash tests: ``CILINK_CRASH_AT=write:3`` kills the process at its 3rd durable write;
``CILINK_FAIL_AT=write:3`` makes that write fail as on a full disk (OSError ENOSPC).

Points are the moments a crash could tear state: ``write`` (just before an atomic rename publishes a file,
directory or link generation, and before each batch a purge removes) and ``commit`` (just before a ledger
transaction commits). Unset in production.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

_seen: Counter[str] = Counter()


def _due(variable: str, kind: str) -> bool:
    spec = os.environ.get(variable)
    if not spec:
        return False
    want, _, nth = spec.partition(":")
    return want == kind and _seen[kind] == int(nth or 1)


def crash_point(kind: str) -> None:
    """SIGKILL this process, or fail like a full disk, if ``CILINK_CRASH_AT`` / ``CILINK_FAIL_AT`` names this
    kind of point and its count is reached."""
    if not (os.environ.get("CILINK_CRASH_AT") or os.environ.get("CILINK_FAIL_AT")):
        return
    _seen[kind] += 1
    if _due("CILINK_CRASH_AT", kind):
        os.kill(os.getpid(), signal.SIGKILL)
    if _due("CILINK_FAIL_AT", kind):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
