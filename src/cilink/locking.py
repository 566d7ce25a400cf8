"""Single-writer lock on a workspace: a second writer fails at once (exit 4) saying who holds the lock."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from cilink.errors import WorkspaceBusy
from cilink.ledger import now_utc


def _holder_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".holder")


def lock_holder(lock_path: Path) -> dict[str, object] | None:
    """Who holds (or last held) the lock: pid, command, since."""
    try:
        return json.loads(_holder_path(lock_path).read_text())
    except (OSError, ValueError):
        return None


_HELD: dict[Path, int] = {}


@contextlib.contextmanager
def writer_lock(lock_path: Path, command: str, *, wait: float = 0) -> Iterator[None]:
    """Hold the workspace's writer lock for the duration of a command.

    The lock is an OS-level ``flock`` (via filelock), released by the kernel when the process dies, so a
    stale lock from a killed process never blocks the next run; the holder file is only information.
    Re-entrant within one process, so `cilink run` can hold it across ingest, link and export.
    ``wait`` seconds to wait for another writer to finish (`cilink backup`); by default fail at once.
    """
    key = lock_path.resolve()
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    from cilink.permissions import private_umask

    with private_umask():  # everything a writer creates in the restricted zone is 0700/0600
        lock = FileLock(lock_path, timeout=wait, mode=0o600, is_singleton=False)
        try:
            lock.acquire()
        except Timeout:
            holder = lock_holder(lock_path) or {}
            who = (f"pid {holder.get('pid', '?')} running `{holder.get('command', '?')}` "
                   f"since {holder.get('since', '?')}")
            raise WorkspaceBusy(
                f"the workspace is busy: another cilink process holds the lock ({who})",
                hint="wait for it to finish and try again; cron jobs should not overlap",
            ) from None
        try:
            holder = {"pid": os.getpid(), "command": command, "since": now_utc(), "argv": sys.argv[1:2]}
            _holder_path(lock_path).write_text(json.dumps(holder))
            _HELD[key] = 1
            if lock_path.parent.name == ".cilink":
                from cilink.recovery import recover

                recover(lock_path.parent.parent)
                _resume_purges(lock_path.parent.parent)
            yield
        finally:
            _HELD.pop(key, None)
            lock.release()


def _resume_purges(root: Path) -> None:
    """Complete a purge a crash interrupted before this writer does anything else (cilink.operate.purge)."""
    import sqlite3

    ledger = root / ".cilink" / "ledger.sqlite"
    if not ledger.is_file():
        return
    try:  # a cheap look first: most commands find no purge pending
        conn = sqlite3.connect(ledger)
        try:
            pending = conn.execute("SELECT COUNT(*) FROM purges WHERE state = 'pending'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # a ledger from before purges were recorded
        return
    if pending:
        from cilink.operate.purge import resume_pending_purges
        from cilink.workspace import Workspace

        resume_pending_purges(Workspace(root))
