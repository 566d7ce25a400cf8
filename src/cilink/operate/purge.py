"""`cilink purge`: remove a partner's data (agreement ended) or data older than a date (retention), then relink.

A purge is a transaction that survives a crash (docs/operations.md):

1. **intent** — one ledger transaction records the purge (scope, batch ids), marks its batches ``purged``,
   drops the review decisions and workbench marks on the partner's records and writes a ``purge_started``
   audit entry. From here on no reader sees the batches, and every writer's lock (``cilink.locking``) first
   completes a pending purge.
2. **removal** — staged rows, quarantine files, kept raw exports (each step idempotent, so a rerun is safe).
3. **relink** — a full relink publishes a generation without the purged records; every older generation
   is deleted.
4. **done** — one transaction marks the purge done and writes the ``purge`` audit entry.

`cilink purge` then writes a release (``[export] on_run``) that no longer counts them; if it is killed
before that, the last release is no longer current and the next `cilink run` exports.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cilink.errors import CilinkError, UsageError
from cilink.faults import crash_point
from cilink.generations import new_link_generation, prune_generations
from cilink.ledger import Batch, Ledger, now_utc
from cilink.locking import writer_lock
from cilink.logs import RunLog
from cilink.workspace import Workspace


@dataclass
class PurgeResult:
    """What a purge removed (counts only)."""

    scope: str
    purge_id: str = ""
    batches: int = 0
    staged_rows: int = 0
    files_removed: int = 0
    review_decisions: int = 0
    relinked: bool = False
    release_id: str | None = None
    resumed: bool = False
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


def _remove_batch_files(ws: Workspace, batches: list[Batch]) -> int:
    """Remove batches' staged rows, quarantine files and the raw exports kept in the inbox."""
    removed = 0
    for b in batches:
        crash_point("write")  # a crash between two batches' removals: the next writer removes the rest
        removed += _remove(ws.root / b.staged_path)
        if b.quarantine_path:  # <batch_id>.parquet and the .csv sent back to the partner
            qdir = (ws.root / b.quarantine_path).parent
            removed += sum(_remove(p) for p in qdir.glob(f"{b.batch_id}.*"))
    for partner_id in sorted({b.partner for b in batches}):
        removed += sum(_remove(f) for f in kept_exports(ws, partner_id, {b.sha256 for b in batches
                                                                         if b.partner == partner_id}))
    return removed


def kept_exports(ws: Workspace, partner_id: str, fingerprints: set[str]) -> list[Path]:
    """The partner's processed exports whose ingest fingerprint is among ``fingerprints``.

    Each kept file is hashed once, the way ingest hashed it (an HMIS export by its CSV contents).
    """
    from cilink.ingest.batches import export_fingerprint
    from cilink.operate.inbox import PROCESSED, kept_dir

    settings = next((p for p in ws.config.partners if p.id == partner_id), None)
    # kept in the restricted zone; workspaces run by earlier cilink versions kept them in inbox/<partner>/processed/
    kept = [d for d in (kept_dir(ws, partner_id, PROCESSED), ws.inbox_dir(partner_id) / PROCESSED) if d.is_dir()]
    if settings is None or not kept:
        return []
    found = []
    for f in sorted(f for d in kept for f in d.iterdir()):
        try:
            fingerprint = export_fingerprint(f, settings)
        except CilinkError:  # not an export we can read: not one of these batches
            continue
        if fingerprint in fingerprints:
            found.append(f)
    return found


def _partner_dirs(ws: Workspace, partner: str) -> list[Path]:
    """Everywhere a partner's data can be once its agreement has ended."""
    from cilink.operate.inbox import kept_dir

    inbox = ws.inbox_dir(partner)
    return [inbox / "processed", inbox / "rejected", kept_dir(ws, partner, "processed").parent,
            ws.staged_dir(partner), ws.quarantine_dir / partner]


def _relink(ws: Workspace, ledger: Ledger) -> None:
    """Relink from scratch so no crosswalk entry, pair or model input still depends on purged data."""
    if ledger.active_batches():
        from cilink.link.linkage import link_workspace

        link_workspace(ws, full=True)
    else:
        with new_link_generation(ws) as gen:
            for f in gen.link_dir.iterdir():
                f.unlink()
    prune_generations(ws, keep=1)  # older generations still hold the purged records


def _complete(ws: Workspace, ledger: Ledger, intent: dict[str, Any], result: PurgeResult) -> None:
    """Steps 2-4 of a recorded purge; safe to repeat after a crash at any point."""
    ids = set(intent["batch_ids"])
    batches = [b for b in ledger.batches() if b.batch_id in ids]
    result.purge_id, result.batches = intent["purge_id"], len(batches)
    result.staged_rows = sum(b.accepted for b in batches)
    result.files_removed += _remove_batch_files(ws, batches)
    if intent["partner"] is not None:
        result.files_removed += sum(_remove(d) for d in _partner_dirs(ws, intent["partner"]))
    _relink(ws, ledger)
    result.relinked = True
    summary = {k: v for k, v in result.to_dict().items() if k not in ("notes", "release_id", "purge_id")}
    ledger.finish_purge(intent["purge_id"], summary)


def resume_pending_purges(ws: Workspace) -> list[PurgeResult]:
    """Complete every purge a crash interrupted (called by each writer as it takes the workspace lock)."""
    results = []
    with Ledger(ws.ledger_path) as ledger:
        pending = ledger.purges(state="pending")
        for intent in pending:
            result = PurgeResult(scope=intent["scope"], resumed=True)
            RunLog(ws.logs_dir, "purge").event("resume", purge_id=intent["purge_id"])
            try:
                _complete(ws, ledger, intent, result)
            except CilinkError as e:  # say why this command is relinking at all
                e.message = f"completing the interrupted purge {intent['purge_id']} first: {e.message}"
                raise
            results.append(result)
    return results


def purge(ws: Workspace, *, partner: str | None = None, before: dt.date | None = None,
          export: bool | None = None) -> PurgeResult:
    """Purge one partner's data (``partner``) or every batch ingested before ``before``; relink; export.

    Releases already written stay as they are (they are de-identified); the release this writes
    (``export``, default ``[export] on_run``) and every later one no longer count the purged data.
    Raises PrivacyGateRefused (exit 5) if that release is refused — the purge itself is complete by then.
    """
    if (partner is None) == (before is None):
        raise UsageError("purge needs exactly one of --partner or --before")
    check_scope(ws, partner)
    scope = f"partner={partner}" if partner else f"before={before}"
    result = PurgeResult(scope=scope)
    log = RunLog(ws.logs_dir, "purge")
    with writer_lock(ws.lock_path, "purge"), Ledger(ws.ledger_path) as ledger:
        if partner is not None:
            batches = [b for b in ledger.batches(partner) if b.status != "purged"]
        else:
            cutoff = before.isoformat()  # type: ignore[union-attr]
            batches = [b for b in ledger.batches() if b.status != "purged" and b.created_at[:10] < cutoff]
        if partner is not None:
            result.review_decisions = ledger.conn.execute(
                "SELECT COUNT(*) FROM review_decisions WHERE record_id_l LIKE ? OR record_id_r LIKE ?",
                (f"{partner}:%", f"{partner}:%")).fetchone()[0]
        if not batches:  # nothing was ingested in scope: nothing to relink or release again
            if partner is not None:
                result.files_removed = sum(_remove(d) for d in _partner_dirs(ws, partner))
            ledger.audit("purge", "purge", "ok", inputs={"scope": scope}, details=result.to_dict())
            result.notes.append("no ingested batch was in scope: nothing was relinked")
            return result
        purge_id = f"purge-{now_utc().replace(':', '')}-{log.run_id[-6:]}"
        ledger.begin_purge(purge_id, scope, partner, [b.batch_id for b in batches])
        intent = next(p for p in ledger.purges() if p["purge_id"] == purge_id)
        _complete(ws, ledger, intent, result)
        log.event("purge", batches=result.batches, staged_rows=result.staged_rows, files=result.files_removed)
        if partner is not None and partner in {p.id for p in ws.config.partners}:
            result.notes.append(
                f"partner '{partner}' is still in cilink.toml: remove its [[partners]] block so new "
                "exports are not ingested again"
            )
        if (ws.config.export.on_run if export is None else export) and ledger.active_batches():
            from cilink.export.release import export_release

            result.release_id = export_release(ws).release_id
            log.event("exported", release_id=result.release_id)
    return result


def check_scope(ws: Workspace, partner: str | None) -> None:
    """A usage error (exit 2) for a partner neither the config nor the ledger knows."""
    if partner is None:
        return
    with Ledger(ws.ledger_path) as ledger:
        known = {p.id for p in ws.config.partners} | {b.partner for b in ledger.batches()}
    if partner not in known:
        raise UsageError(f"unknown partner '{partner}'", hint=f"known partners: {', '.join(sorted(known))}")


@dataclass
class PurgeVerification:
    """What `cilink purge --verify` found: ``remains`` is empty when nothing of any purge is left."""

    purges: int = 0
    generations_checked: int = 0
    releases_checked: int = 0
    remains: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.remains

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def verify_purges(ws: Workspace) -> PurgeVerification:
    """Check every recorded purge: nothing of its batches (or partner) in staged rows, quarantine, kept
    exports, review decisions, any link generation, or any release written after it finished."""
    import json

    from cilink.link.outputs import read_crosswalk, read_state, records_path

    out = PurgeVerification()
    with Ledger(ws.ledger_path) as ledger:
        purges = ledger.purges()
        by_id = {b.batch_id: b for b in ledger.batches()}
        releases = ledger.conn.execute("SELECT release_id, created_at, path FROM releases").fetchall()
        decisions = ledger.conn.execute("SELECT record_id_l, record_id_r FROM review_decisions UNION ALL "
                                        "SELECT record_id_l, record_id_r FROM review_marks").fetchall()
    out.purges = len(purges)
    gens = sorted(p for p in ws.link_root.glob("gen-*") if p.is_dir())
    out.generations_checked = len(gens)
    for p in purges:
        name, partner = p["purge_id"], p["partner"]
        if p["state"] != "done":
            out.remains.append(f"{name}: not complete (any writer, e.g. `cilink run`, completes it)")
        batches = [by_id[b] for b in p["batch_ids"] if b in by_id]
        ids = {b.batch_id for b in batches}
        for b in batches:
            if b.status != "purged":
                out.remains.append(f"{name}: batch {b.batch_id} is {b.status} in the ledger")
            if (ws.root / b.staged_path).exists():
                out.remains.append(f"{name}: staged file of batch {b.batch_id}")
            if b.quarantine_path and any((ws.root / b.quarantine_path).parent.glob(f"{b.batch_id}.*")):
                out.remains.append(f"{name}: quarantine files of batch {b.batch_id}")
        for pid in sorted({b.partner for b in batches}):
            for f in kept_exports(ws, pid, {b.sha256 for b in batches if b.partner == pid}):
                out.remains.append(f"{name}: kept export {f.relative_to(ws.root)}")
        if partner is not None:
            for d in _partner_dirs(ws, partner):
                if d.exists() and any(x.is_file() for x in d.rglob("*")):
                    out.remains.append(f"{name}: files under {d.relative_to(ws.root)}")
            if any(r[0].startswith(f"{partner}:") or r[1].startswith(f"{partner}:") for r in decisions):
                out.remains.append(f"{name}: review decisions or marks on {partner}'s records")
        for gen in gens:
            seen = {b for bs in read_state(gen).get("batches", {}).values() for b in bs}
            if seen & ids:
                out.remains.append(f"{name}: link generation {gen.name} was built from purged batches")
            if partner is not None:
                cw = read_crosswalk(gen, ["partner"])
                if records_path(gen, partner).exists() or (cw is not None and partner in cw["partner"].to_list()):
                    out.remains.append(f"{name}: link generation {gen.name} holds {partner}'s records")
        if p["finished_at"] is None:
            continue
        for rid, created_at, path in releases:
            if created_at < p["finished_at"]:
                continue  # written before the purge: de-identified, kept as it was
            out.releases_checked += 1
            manifest = ws.root / path / "manifest.json"
            if not manifest.is_file():
                continue
            used = {b["batch_id"] for b in json.loads(manifest.read_text()).get("inputs", {}).get("batches", [])}
            if used & ids:
                out.remains.append(f"{name}: release {rid} counts purged batches")
    return out
