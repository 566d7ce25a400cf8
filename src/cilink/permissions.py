"""Who may read what, whatever the umask (docs/operations.md#permissions).

The restricted zone (``.cilink/``) is private to the workspace owner: directories 0700, files 0600 —
every writer holds the workspace lock with umask 077 (``private_umask``), and the ledger and logs are
created 0600 explicitly. Releases exist for analysts: each release is opened up for ``[export] group``
(directories 2750, files 0640; without a group, the owner's primary group) before it is published.
"""

from __future__ import annotations

import contextlib
import grp
import os
from collections.abc import Iterator
from pathlib import Path

from cilink.errors import ConfigError

PRIVATE_UMASK = 0o077
RELEASE_DIR_MODE = 0o750
RELEASE_FILE_MODE = 0o640


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Create everything private (0700/0600) for the duration, restoring the caller's umask after."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; make an existing one 0600 (if ours)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if path.stat().st_uid == os.getuid():
            os.chmod(path, 0o600)
    except PermissionError:  # someone else's file: reading it may still work
        pass


def release_gid(group: str | None) -> int | None:
    """The gid of ``[export] group`` (None: leave the owner's primary group); ConfigError if it does not exist."""
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"export.group: no group named '{group}' on this machine",
                          hint="create the analysts' group (groupadd) or set export.group to an existing one") from None


def share_release(root: Path, group: str | None) -> None:
    """Open a staged release for its readers: ``group`` as owner group, directories 2750 (setgid, so files
    added later keep the group) or 0750 without a group, files 0640."""
    gid = release_gid(group)
    dir_mode = RELEASE_DIR_MODE | (0o2000 if gid is not None else 0)
    for path in [root, *root.rglob("*")]:
        if gid is not None:
            os.chown(path, -1, gid)
        os.chmod(path, dir_mode if path.is_dir() else RELEASE_FILE_MODE)


def share_releases_dir(releases: Path, group: str | None) -> None:
    """``releases/`` itself: readable by the group, writable by the owner only (nobody else swaps a release)."""
    gid = release_gid(group)
    if gid is not None:
        os.chown(releases, -1, gid)
    os.chmod(releases, RELEASE_DIR_MODE | (0o2000 if gid is not None else 0))
