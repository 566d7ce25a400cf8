"""`cilink backup DEST` and `cilink restore BACKUP DIR`: a consistent copy of a workspace, and a workspace from one.

The backup holds the workspace lock while it copies (it waits for a running command to finish first), so
it sees one state: the ledger through SQLite's online backup API, every other file as it is — cilink
publishes files by atomic rename and never edits them in place, so a file under the lock is complete. A
``backup.json`` lists every file with its sha256; restore checks each one before it writes anything.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cilink import __version__, atomic
from cilink.errors import CilinkError, UsageError
from cilink.export.sources import file_sha256
from cilink.ledger import Ledger, now_utc
from cilink.locking import writer_lock
from cilink.permissions import private_umask, share_release, share_releases_dir
from cilink.workspace import RESTRICTED, Workspace, ensure_layout

MANIFEST = "backup.json"
FORMAT = "cilink-backup/1"
LEDGER = f"{RESTRICTED}/ledger.sqlite"
#: not part of a workspace's state: the lock, SQLite's side files (the online backup has their contents)
_SKIP = {f"{RESTRICTED}/lock", f"{RESTRICTED}/lock.holder", f"{LEDGER}-wal", f"{LEDGER}-shm", LEDGER}


class BackupInvalid(CilinkError):
    """A backup is incomplete or altered: restore refuses it and writes nothing (exit 3, like a rejected input)."""

    exit_code = 3


@dataclass
class BackupResult:
    """What a backup or restore copied."""

    path: str
    files: int
    bytes: int
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _workspace_files(root: Path) -> list[Path]:
    """Every file and symlink of the workspace's state, relative to ``root`` (temp files and the lock left out)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.endswith(".tmp")]
        for name in [*filenames, *(d for d in dirnames if (base / d).is_symlink())]:
            rel = (base / name).relative_to(root)
            if name.endswith(".tmp") or rel.as_posix() in _SKIP:
                continue
            out.append(rel)
    return sorted(out)


def backup(ws: Workspace, dest: Path, *, wait: float = 600) -> BackupResult:
    """Copy the workspace to the new directory ``dest`` (mode 0700) under the lock; audited in the workspace.

    Waits up to ``wait`` seconds for a running command to finish (then WorkspaceBusy, exit 4).
    Example: ``backup(Workspace.open("ws"), Path("/backups/ws-2026-06-30"))``
    """
    dest = dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} exists and is not empty", hint="back up into a new directory")
    if dest.is_relative_to(ws.root):
        raise UsageError(f"{dest} is inside the workspace", hint="back up to another disk or directory")
    with writer_lock(ws.lock_path, "backup", wait=wait), \
            atomic.atomic_dir(dest) as tmp:
        files, size = {}, 0
        for rel in _workspace_files(ws.root):
            src, target = ws.root / rel, tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():  # the link generation pointer: `current` → gen-…
                os.symlink(os.readlink(src), target)
                files[rel.as_posix()] = {"symlink": os.readlink(src)}
                continue
            shutil.copy2(src, target)
            files[rel.as_posix()] = {"sha256": file_sha256(target), "bytes": target.stat().st_size}
            size += target.stat().st_size
        (tmp / RESTRICTED).mkdir(exist_ok=True)
        with Ledger(ws.ledger_path) as ledger, sqlite3.connect(tmp / LEDGER) as copy:
            ledger.conn.backup(copy)  # a consistent copy, committed transactions only
        files[LEDGER] = {"sha256": file_sha256(tmp / LEDGER), "bytes": (tmp / LEDGER).stat().st_size}
        created = now_utc()
        manifest = {"format": FORMAT, "cilink_version": __version__, "created_at": created,
                    "workspace": str(ws.root), "root_mode": stat.S_IMODE(ws.root.stat().st_mode), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _copy_dir_times(ws.root, tmp)
        with Ledger(ws.ledger_path) as ledger:
            ledger.audit("backup", "backup", "ok", inputs={"destination": str(dest)},
                         details={"files": len(files), "bytes": size})
    return BackupResult(path=str(dest), files=len(files), bytes=size, created_at=created)


def verify_backup(path: Path) -> dict[str, Any]:
    """The backup's manifest, after checking every file it lists (BackupInvalid, exit 3, if one differs)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BackupInvalid(f"{path} is not a cilink backup (no readable {MANIFEST})",
                            hint="pass the directory `cilink backup` wrote") from e
    if manifest.get("format") != FORMAT:
        raise BackupInvalid(f"{path}: unknown backup format {manifest.get('format')!r}")
    for rel, entry in manifest["files"].items():
        f = path / rel
        if "symlink" in entry:
            ok = f.is_symlink() and os.readlink(f) == entry["symlink"]
        else:
            ok = f.is_file() and not f.is_symlink() and file_sha256(f) == entry["sha256"]
        if not ok:
            raise BackupInvalid(f"{path}: {rel} is missing or altered since the backup",
                                hint="restore from another backup")
    listed = set(manifest["files"]) | {MANIFEST}
    extra = [p.as_posix() for p in _workspace_files(path) if p.as_posix() not in listed and p.as_posix() != LEDGER]
    if extra:
        raise BackupInvalid(f"{path}: {extra[0]} is not part of the backup", hint="restore from another backup")
    return manifest


def restore(backup_dir: Path, target: Path) -> BackupResult:
    """Make a workspace at the new directory ``target`` from a backup, after checking every file's sha256.

    Never writes over an existing workspace: restore next to it, check it, then swap the directories.
    """
    backup_dir, target = backup_dir.resolve(), target.resolve()
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty",
                         hint="restore into a new directory; move the old workspace aside yourself")
    manifest = verify_backup(backup_dir)
    size = 0
    with private_umask(), atomic.atomic_dir(target) as tmp:  # the restricted zone comes back 0700/0600
        for rel, entry in manifest["files"].items():
            src, dst = backup_dir / rel, tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if "symlink" in entry:
                os.symlink(entry["symlink"], dst)
                continue
            shutil.copy2(src, dst)
            size += entry["bytes"]
        ensure_layout(tmp)
        restored = Workspace(tmp)
        group = restored.config.export.group
        share_releases_dir(restored.releases_dir, group)
        for release in restored.releases_dir.iterdir():
            share_release(release, group)
        _copy_dir_times(backup_dir, tmp)
        os.chmod(tmp, manifest.get("root_mode", 0o755))
        with Ledger(tmp / LEDGER) as ledger:
            ledger.audit("restore", "restore", "ok", inputs={"backup": str(backup_dir)},
                         details={"backup_created_at": manifest["created_at"], "files": len(manifest["files"])})
    return BackupResult(path=str(target), files=len(manifest["files"]), bytes=size,
                        created_at=manifest["created_at"])



def _copy_dir_times(src: Path, dst: Path) -> None:
    """Give ``dst``'s directories the modification times of ``src``'s (a link generation's time is part of
    its identity for releases recorded before generations were named in the ledger)."""
    for dirpath, _dirs, _files in os.walk(dst, topdown=False):
        d = Path(dirpath)
        original = src / d.relative_to(dst)
        if original.is_dir() and not d.is_symlink():
            st = original.stat()
            os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
