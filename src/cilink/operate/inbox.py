"""`cilink run`: ingest every new inbox file, link incrementally, export — safe to run from cron."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cilink import atomic
from cilink.config import FileFormat, PartnerSettings
from cilink.errors import SIGNALS_RECEIVED, CilinkError, InputRejected, Interrupted
from cilink.generations import current_generation
from cilink.ledger import Ledger
from cilink.link.outputs import crosswalk_files
from cilink.locking import writer_lock
from cilink.logs import RunLog
from cilink.workspace import Workspace

PROCESSED = "processed"
REJECTED = "rejected"
#: a partner's "this export is complete" marker: ``<file>.done`` beside it (taken at once, however new)
DONE = ".done"
#: longest file name cilink writes when it keeps an inbox file (NAME_MAX is 255 bytes, and
#: ``.reason.txt`` is appended to a rejected one)
_MAX_NAME_BYTES = 200


@dataclass
class FileOutcome:
    """What happened to one inbox entry.

    ``outcome``: ingested | already_ingested | rejected | error (config problem, file left in place) |
    waiting (not yet stable, taken by a later run) | skipped (never taken: symlink, FIFO, sub-folder,
    unknown partner folder; ``reason`` says which).
    """

    partner: str
    file: str
    outcome: str
    batch_id: str | None = None
    rows_in: int | None = None
    accepted: int | None = None
    quarantined: int | None = None
    reason: str | None = None


@dataclass
class RunResult:
    """Summary of one `cilink run`; ``exit_code`` is the worst outcome (design §7)."""

    run_id: str
    files: list[FileOutcome] = field(default_factory=list)
    linked: bool = False
    link_summary: dict[str, Any] | None = None
    release_id: str | None = None
    errors: list[str] = field(default_factory=list)
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InboxEntry:
    """One entry of ``inbox/``: ``state`` ready | waiting | skipped; ``reason`` for the latter two."""

    partner: str
    path: Path
    state: str
    reason: str | None = None


def kept_dir(ws: Workspace, partner_id: str, kind: str) -> Path:
    """Where ingested (``processed``) and rejected raw exports are kept: inside the restricted zone."""
    return ws.restricted / "inbox" / partner_id / kind


def mark_complete(ws: Workspace) -> list[Path]:
    """Write the ``.done`` marker beside every export now in a partner's inbox (what a partner's upload
    script does after the last byte): `cilink run` then takes them without waiting. Returns the markers."""
    markers = []
    for p in ws.config.partners:
        folder = ws.inbox_dir(p.id)
        if not folder.is_dir():
            continue
        for export in folder.iterdir():
            if not export.name.startswith(".") and not export.name.endswith(DONE) \
                    and export.name not in (PROCESSED, REJECTED):
                marker = export.with_name(export.name + DONE)
                marker.touch()
                markers.append(marker)
    return markers


def _newest_mtime(path: Path) -> float:
    """Last change of a file, or of anything inside a folder (an HMIS export still being copied)."""
    newest = path.lstat().st_mtime
    if path.is_dir():
        for dirpath, _, filenames in os.walk(path, followlinks=False):
            for name in filenames:
                newest = max(newest, (Path(dirpath) / name).lstat().st_mtime)
    return newest


def _entry(partner: PartnerSettings, item: Path, stable_seconds: float, now: float) -> InboxEntry:
    st = item.lstat()
    if stat.S_ISLNK(st.st_mode):
        return InboxEntry(partner.id, item, "skipped", "symlink")
    if stat.S_ISDIR(st.st_mode):
        if partner.format != FileFormat.HMIS_CSV:
            return InboxEntry(partner.id, item, "skipped", "sub_folder")
    elif not stat.S_ISREG(st.st_mode):
        return InboxEntry(partner.id, item, "skipped", "not_regular_file")
    if item.with_name(item.name + DONE).is_file() or now - _newest_mtime(item) >= stable_seconds:
        return InboxEntry(partner.id, item, "ready")
    return InboxEntry(partner.id, item, "waiting", "not_stable")


def scan_inbox(ws: Workspace, stable_seconds: float | None = None, now: float | None = None) -> list[InboxEntry]:
    """Every entry of ``inbox/`` and what `cilink run` does with it, without touching anything.

    Ready entries of a partner come oldest first. Hidden, ``.part``/``.tmp`` (in-progress by convention)
    and ``.done`` files are ignored; symlinks are never followed.
    """
    cfg = ws.config
    stable = cfg.inbox.stable_seconds if stable_seconds is None else stable_seconds
    now = time.time() if now is None else now
    partners = {p.id: p for p in cfg.partners}
    root = ws.root / "inbox"
    entries: list[InboxEntry] = []
    if not root.is_dir():
        return entries
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            continue
        if folder.name not in partners or folder.is_symlink() or not folder.is_dir():
            reason = "symlink" if folder.is_symlink() else (
                "unknown_partner_folder" if folder.is_dir() else "not_in_partner_folder")
            entries.append(InboxEntry(folder.name if folder.is_dir() else "", folder, "skipped", reason))
            continue
        partner = partners[folder.name]
        items = [p for p in folder.iterdir()
                 if not (p.name.startswith(".") or p.name in (PROCESSED, REJECTED)
                         or p.name.endswith((".part", ".tmp", DONE)))]
        found = [_entry(partner, p, stable, now) for p in items]
        ready = sorted((e for e in found if e.state == "ready"),
                       key=lambda e: (e.path.lstat().st_mtime_ns, e.path.name))
        entries += ready + sorted((e for e in found if e.state != "ready"), key=lambda e: e.path.name)
    return entries


def _generation_time(ws: Workspace) -> dt.datetime | None:
    gen = current_generation(ws)
    if gen is None or not crosswalk_files(gen):
        return None
    return dt.datetime.fromtimestamp(int(gen.stat().st_mtime), dt.UTC)


def link_is_stale(ws: Workspace, ledger: Ledger) -> bool:
    """True when the active batches are not the ones the published link generation was built from (a crash
    between ingest and link, a purge, a snapshot superseded)."""
    from cilink.status import link_is_current

    return bool(ledger.active_batches()) and not link_is_current(ws, ledger)


def release_is_stale(ws: Workspace, ledger: Ledger) -> bool:
    """True when the last release was not built from the current link generation and configuration."""
    from cilink.status import release_is_current

    return _generation_time(ws) is not None and release_is_current(ws, ledger) is False


def _safe_name(name: str) -> str:
    """``name``, shortened (with a digest, keeping the extension) when it is too long to keep beside a reason."""
    if len(name.encode()) <= _MAX_NAME_BYTES:
        return name
    suffix = Path(name).suffix[:16]
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    stem = name.encode()[: _MAX_NAME_BYTES - len(suffix.encode()) - 14].decode(errors="ignore")
    return f"{stem}~{digest}{suffix}"


def _restrict(path: Path) -> None:
    """Raw exports are personal data: owner-only, whatever the umask (files 0600, folders 0700)."""
    if path.is_dir() and not path.is_symlink():
        os.chmod(path, 0o700)
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for d in dirnames:
                os.chmod(Path(dirpath) / d, 0o700, follow_symlinks=False)
            for f in filenames:
                p = Path(dirpath) / f
                if not p.is_symlink():
                    os.chmod(p, 0o600)
    else:
        os.chmod(path, 0o600)


def _move(item: Path, folder: Path) -> Path:
    """Move an inbox entry into ``folder`` (created 0700) under a free, short-enough name, mode 0600."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    name = _safe_name(item.name)
    target = folder / name
    n = 1
    while target.exists():
        target = folder / f"{Path(name).stem}.{n}{Path(name).suffix}"
        n += 1
    shutil.move(str(item), target)
    _restrict(target)
    item.with_name(item.name + DONE).unlink(missing_ok=True)
    return target


def _discard(item: Path) -> None:
    """``[inbox] processed = "delete"``: the raw export goes once its rows are staged."""
    if item.is_dir() and not item.is_symlink():
        shutil.rmtree(item)
    else:
        item.unlink()
    item.with_name(item.name + DONE).unlink(missing_ok=True)


def _reject(ws: Workspace, ledger: Ledger, partner_id: str, item: Path, reason: str, text: str) -> None:
    """Keep a rejected file with its (value-free) reason beside it, and record the rejection in the audit log."""
    moved = _move(item, kept_dir(ws, partner_id, REJECTED))
    reason_file = moved.with_name(moved.name + ".reason.txt")
    atomic.write_text(reason_file, f"{text}\nReason: {reason}\n")
    os.chmod(reason_file, 0o600)
    ledger.audit("run", "reject_file", "rejected", details={"partner": partner_id, "reason": reason,
                                                            "kept_as": str(moved.relative_to(ws.root))})


def run_inbox(ws: Workspace, *, link: bool = True, export: bool | None = None,
              stable_seconds: float | None = None) -> RunResult:
    """Process every partner's inbox, then link and export; one bad file never stops the others.

    Takes regular files (and, for hmis-csv partners, folders) unchanged for ``[inbox] stable_seconds``
    or with a ``.done`` marker; never follows symlinks. Ingested exports move into the restricted zone
    (``.cilink/inbox/<partner>/processed/``, mode 0600) or are deleted (``[inbox] processed = "delete"``);
    rejected ones go to ``.cilink/inbox/<partner>/rejected/`` with a value-free ``.reason.txt`` and an
    audit entry. A crash at any point is safe to rerun: ingest is idempotent by file hash.
    Example: ``run_inbox(Workspace.open("ws")).exit_code``
    """
    from cilink.ingest.batches import ingest_file
    from cilink.ingest.reasons import FileProblem

    cfg = ws.config
    log = RunLog(ws.logs_dir, "run")
    result = RunResult(run_id=log.run_id)
    with writer_lock(ws.lock_path, "run"), Ledger(ws.ledger_path) as ledger:
        ledger.start_run(result.run_id, "run")
        log.event("start", partners=len(cfg.partners))
        new_batches = 0
        for entry in scan_inbox(ws, stable_seconds):
            if entry.state != "ready":
                # waiting: a later run takes it; skipped: never taken, the data manager has to look
                result.files.append(FileOutcome(entry.partner, entry.path.name, entry.state, reason=entry.reason))
                if entry.state == "skipped":
                    result.exit_code = max(result.exit_code, InputRejected.exit_code)
                log.event("inbox_" + entry.state, partner=entry.partner, reason=entry.reason)
                continue
            partner, item = cfg.partner(entry.partner), entry.path
            try:
                res = ingest_file(ws, partner.id, item)
            except InputRejected as e:
                if SIGNALS_RECEIVED:  # a signal a reader's library turned into "unreadable": end the run
                    raise SIGNALS_RECEIVED[0] from e
                _reject(ws, ledger, partner.id, item, str(e.reason or FileProblem.MALFORMED), str(e))
                result.files.append(FileOutcome(partner.id, item.name, "rejected", reason=e.reason or e.message))
                result.exit_code = max(result.exit_code, e.exit_code)
                continue
            except CilinkError as e:  # configuration problems: leave the file where it is
                result.files.append(FileOutcome(partner.id, item.name, "error", reason=e.message))
                result.exit_code = max(result.exit_code, e.exit_code)
                continue
            except (KeyboardInterrupt, SystemExit, Interrupted):  # SIGINT/SIGTERM end the run, not the file
                raise
            except BaseException as e:  # anything unforeseen in one file is that file's rejection
                if SIGNALS_RECEIVED:  # …unless it is a signal that came back wrapped by a library
                    raise SIGNALS_RECEIVED[0] from e
                text = (f"{item.name}: unexpected {type(e).__name__} while ingesting; nothing was written\n"
                        "Fix: rerun `cilink ingest` on this file with --debug and report the traceback")
                log.event("ingest_crashed", partner=partner.id, error=type(e).__name__)
                _reject(ws, ledger, partner.id, item, FileProblem.UNREADABLE.value, text)
                result.files.append(FileOutcome(partner.id, item.name, "rejected", reason=FileProblem.UNREADABLE))
                result.exit_code = max(result.exit_code, InputRejected.exit_code)
                continue
            if cfg.inbox.processed == "delete":
                _discard(item)
            else:
                _move(item, kept_dir(ws, partner.id, PROCESSED))
            new_batches += 0 if res.already_ingested else 1
            result.files.append(FileOutcome(
                partner.id, item.name, "already_ingested" if res.already_ingested else "ingested",
                batch_id=res.batch_id, rows_in=res.rows_in, accepted=res.accepted, quarantined=res.quarantined,
            ))
        log.event("ingested", files=len(result.files), new_batches=new_batches)
        if link and (new_batches or link_is_stale(ws, ledger)):
            try:
                from cilink.link.linkage import link_workspace

                result.link_summary = link_workspace(ws).to_dict()
                result.linked = True
                log.event("linked")
            except CilinkError as e:
                result.errors.append(f"link: {e.message}")
                result.exit_code = max(result.exit_code, e.exit_code)
        do_export = cfg.export.on_run if export is None else export
        if do_export and (result.linked or release_is_stale(ws, ledger)):
            try:
                from cilink.export.release import export_release

                result.release_id = export_release(ws).release_id
                log.event("exported", release_id=result.release_id)
            except CilinkError as e:
                result.errors.append(f"export: {e.message}")
                result.exit_code = max(result.exit_code, e.exit_code)
        ledger.finish_run(result.run_id, result.exit_code, {
            "files": len(result.files), "linked": result.linked, "release_id": result.release_id,
            "rejected": sum(f.outcome == "rejected" for f in result.files),
            "outcomes": [asdict(f) for f in result.files],  # file names and counts only (shown by `status`)
        })
        ledger.audit("run", "run", "ok" if result.exit_code == 0 else f"exit {result.exit_code}",
                     details={"run_id": result.run_id, "files": len(result.files), "release_id": result.release_id})
        log.event("finish", exit_code=result.exit_code)
    return result
