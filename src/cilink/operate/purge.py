"""`cilink purge`: remove a partner's data (agreement ended) or data older than a date (retention), then relink."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cilink.errors import UsageError
from cilink.generations import new_link_generation, prune_generations
from cilink.ledger import Batch, Ledger
from cilink.locking import writer_lock
from cilink.logs import RunLog
from cilink.workspace import Workspace


@dataclass
class PurgeResult:
    """What a purge removed (counts only)."""

    scope: str
    batches: int = 0
    staged_rows: int = 0
    files_removed: int = 0
    review_decisions: int = 0
    relinked: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _remove(path: Path) -> int:
    if path.is_dir():
        n = sum(1 for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
        return n
    if path.exists():
        path.unlink()
        return 1
    return 0


def _purge_batches(ws: Workspace, ledger: Ledger, batches: list[Batch], result: PurgeResult) -> None:
    """Remove batches' staged rows, quarantine files and the raw exports kept in the inbox."""
    for b in batches:
        result.staged_rows += b.accepted
        result.files_removed += _remove(ws.root / b.staged_path)
        if b.quarantine_path:  # <batch_id>.parquet and the .csv sent back to the partner
            qdir = (ws.root / b.quarantine_path).parent
            result.files_removed += sum(_remove(p) for p in qdir.glob(f"{b.batch_id}.*"))
    for partner_id in sorted({b.partner for b in batches}):
        result.files_removed += _remove_kept_exports(ws, partner_id, {b.sha256 for b in batches
                                                                        if b.partner == partner_id})
    ledger.set_batch_status([b.batch_id for b in batches], "purged")
    result.batches = len(batches)


def _remove_kept_exports(ws: Workspace, partner_id: str, fingerprints: set[str]) -> int:
    """Delete the partner's processed exports whose ingest fingerprint is among ``fingerprints``.

    Each kept file is hashed once, the way ingest hashed it (an HMIS export by its CSV contents).
    """
    from cilink.errors import CilinkError
    from cilink.ingest.batches import export_fingerprint
    from cilink.operate.inbox import PROCESSED, kept_dir

    settings = next((p for p in ws.config.partners if p.id == partner_id), None)
    # kept in the restricted zone; workspaces run by earlier cilink versions kept them in inbox/<partner>/processed/
    kept = [d for d in (kept_dir(ws, partner_id, PROCESSED), ws.inbox_dir(partner_id) / PROCESSED) if d.is_dir()]
    if settings is None or not kept:
        return 0
    removed = 0
    for f in [f for d in kept for f in d.iterdir()]:
        try:
            fingerprint = export_fingerprint(f, settings)
        except CilinkError:  # not an export we can read: not one of these batches
            continue
        if fingerprint in fingerprints:
            removed += _remove(f)
    return removed


def _relink(ws: Workspace, ledger: Ledger, result: PurgeResult) -> None:
    """Relink from scratch so no crosswalk entry, pair or model input still depends on purged data."""
    if ledger.active_batches():
        from cilink.link.linkage import link_workspace

        link_workspace(ws, full=True)
    else:
        with new_link_generation(ws) as gen:
            for f in gen.link_dir.iterdir():
                f.unlink()
    prune_generations(ws, keep=1)  # older generations still hold the purged records
    result.relinked = True


def purge(ws: Workspace, *, partner: str | None = None, before: dt.date | None = None) -> PurgeResult:
    """Purge one partner's data (``partner``) or every batch ingested before ``before``; then relink.

    Releases already written stay as they are (they are de-identified); releases made afterwards no
    longer contain the purged data. The purge is recorded in the audit log.
    """
    if (partner is None) == (before is None):
        raise UsageError("purge needs exactly one of --partner or --before")
    scope = f"partner={partner}" if partner else f"before={before}"
    result = PurgeResult(scope=scope)
    log = RunLog(ws.logs_dir, "purge")
    with writer_lock(ws.lock_path, "purge"), Ledger(ws.ledger_path) as ledger:
        if partner is not None:
            known = {p.id for p in ws.config.partners} | {b.partner for b in ledger.batches()}
            if partner not in known:
                raise UsageError(f"unknown partner '{partner}'", hint=f"known partners: {', '.join(sorted(known))}")
            batches = [b for b in ledger.batches(partner) if b.status != "purged"]
        else:
            cutoff = before.isoformat()  # type: ignore[union-attr]
            batches = [b for b in ledger.batches() if b.status != "purged" and b.created_at[:10] < cutoff]
        _purge_batches(ws, ledger, batches, result)
        if partner is not None:
            # the agreement has ended: every raw export we kept from this partner goes too
            from cilink.operate.inbox import kept_dir

            inbox = ws.inbox_dir(partner)
            result.files_removed += _remove(inbox / "processed") + _remove(inbox / "rejected")
            result.files_removed += _remove(kept_dir(ws, partner, "processed").parent)
            result.files_removed += _remove(ws.staged_dir(partner)) + _remove(ws.quarantine_dir / partner)
            cur = ledger.conn.execute(
                "DELETE FROM review_decisions WHERE record_id_l LIKE ? OR record_id_r LIKE ?",
                (f"{partner}:%", f"{partner}:%"),
            )
            result.review_decisions = cur.rowcount
            ledger.conn.execute("DELETE FROM review_marks WHERE record_id_l LIKE ? OR record_id_r LIKE ?",
                                (f"{partner}:%", f"{partner}:%"))
            if partner in {p.id for p in ws.config.partners}:
                result.notes.append(
                    f"partner '{partner}' is still in cilink.toml: remove its [[partners]] block so new "
                    "exports are not ingested again"
                )
        _relink(ws, ledger, result)
        ledger.audit("purge", "purge", "ok", inputs={"scope": scope}, details=result.to_dict())
        log.event("purge", batches=result.batches, staged_rows=result.staged_rows, files=result.files_removed)
    return result
