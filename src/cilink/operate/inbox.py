"""`cilink run`: ingest every new inbox file, link incrementally, export — safe to run from cron."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cilink import atomic
from cilink.config import FileFormat
from cilink.errors import CilinkError, InputRejected
from cilink.generations import current_generation
from cilink.ledger import Ledger
from cilink.link.outputs import crosswalk_files
from cilink.locking import writer_lock
from cilink.logs import RunLog
from cilink.workspace import Workspace

PROCESSED = "processed"
REJECTED = "rejected"


@dataclass
class FileOutcome:
    """What happened to one inbox file."""

    partner: str
    file: str
    outcome: str  # ingested | already_ingested | rejected | error
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


def inbox_items(ws: Workspace, partner_id: str, fmt: FileFormat) -> list[Path]:
    """New exports waiting in ``inbox/<partner>/``, oldest first (hidden and in-progress files skipped)."""
    inbox = ws.inbox_dir(partner_id)
    if not inbox.is_dir():
        return []
    items = []
    for p in inbox.iterdir():
        if p.name.startswith(".") or p.name in (PROCESSED, REJECTED) or p.name.endswith((".part", ".tmp")):
            continue
        if p.is_file() or (p.is_dir() and fmt == FileFormat.HMIS_CSV):
            items.append(p)
    return sorted(items, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _generation_time(ws: Workspace) -> dt.datetime | None:
    gen = current_generation(ws)
    if gen is None or not crosswalk_files(gen):
        return None
    return dt.datetime.fromtimestamp(int(gen.stat().st_mtime), dt.UTC)


def link_is_stale(ws: Workspace, ledger: Ledger) -> bool:
    """True when active batches exist that the published link generation has not seen (e.g. after a crash)."""
    batches = ledger.active_batches()
    if not batches:
        return False
    linked_at = _generation_time(ws)
    if linked_at is None:
        return True
    # created_at has second precision: "same second" counts as newer, at worst one extra incremental link
    return max(dt.datetime.fromisoformat(b.created_at) for b in batches) >= linked_at


def release_is_stale(ws: Workspace, ledger: Ledger) -> bool:
    """True when the current link generation is newer than the last release."""
    linked_at = _generation_time(ws)
    if linked_at is None:
        return False
    last = ledger.last_release()
    return last is None or dt.datetime.fromisoformat(last["created_at"]) < linked_at


def _move(item: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    target = folder / item.name
    n = 1
    while target.exists():
        target = folder / f"{item.stem}.{n}{item.suffix}"
        n += 1
    shutil.move(str(item), target)
    return target


def run_inbox(ws: Workspace, *, link: bool = True, export: bool | None = None) -> RunResult:
    """Process every partner's inbox, then link and export; one partner's bad file never stops the others.

    Processed files move to ``inbox/<partner>/processed/``, rejected ones to ``rejected/`` with a
    ``.reason.txt``. A crash at any point is safe to rerun: ingest is idempotent by file hash.
    Example: ``run_inbox(Workspace.open("ws")).exit_code``
    """
    from cilink.ingest.batches import ingest_file

    cfg = ws.config
    log = RunLog(ws.logs_dir, "run")
    result = RunResult(run_id=log.run_id)
    with writer_lock(ws.lock_path, "run"), Ledger(ws.ledger_path) as ledger:
        ledger.start_run(result.run_id, "run")
        log.event("start", partners=len(cfg.partners))
        new_batches = 0
        for partner in cfg.partners:
            for item in inbox_items(ws, partner.id, partner.format):
                try:
                    res = ingest_file(ws, partner.id, item)
                except InputRejected as e:
                    moved = _move(item, ws.inbox_dir(partner.id) / REJECTED)
                    atomic.write_text(moved.with_name(moved.name + ".reason.txt"), f"{e}\n")
                    result.files.append(FileOutcome(partner.id, item.name, "rejected", reason=e.reason or e.message))
                    result.exit_code = max(result.exit_code, e.exit_code)
                    continue
                except CilinkError as e:  # configuration problems: leave the file where it is
                    result.files.append(FileOutcome(partner.id, item.name, "error", reason=e.message))
                    result.exit_code = max(result.exit_code, e.exit_code)
                    continue
                _move(item, ws.inbox_dir(partner.id) / PROCESSED)
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
        })
        ledger.audit("run", "run", "ok" if result.exit_code == 0 else f"exit {result.exit_code}",
                     details={"run_id": result.run_id, "files": len(result.files), "release_id": result.release_id})
        log.event("finish", exit_code=result.exit_code)
    return result
