"""Workspace health at a glance: partners, batches, quarantine, last run, review queue, last release."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cilink.ledger import Ledger
from cilink.workspace import Workspace


@dataclass
class PartnerStatus:
    partner: str
    domain: str
    active_batches: int
    rows_accepted: int
    rows_quarantined: int
    last_ingest: str | None


@dataclass
class WorkspaceStatus:
    """What `cilink status` reports."""

    project: str
    root: str
    partners: list[PartnerStatus] = field(default_factory=list)
    #: the last command that recorded a run (ingest, link, run …)
    last_run: dict[str, Any] | None = None
    #: the last `cilink run` (cron), with each inbox file's outcome
    last_inbox_run: dict[str, Any] | None = None
    #: the last release, and whether it was built from the current link generation and config
    last_release: dict[str, Any] | None = None
    #: purges a crash interrupted (the next writer completes them)
    pending_purges: list[str] = field(default_factory=list)
    review_queue: int | None = None
    persons: int | None = None
    #: inbox entries `cilink run` does not take now: waiting (not yet stable) or skipped (with the reason)
    inbox_pending: list[dict[str, str | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def workspace_status(ws: Workspace) -> WorkspaceStatus:
    """Collect the workspace's status from the config, the ledger and the link outputs."""
    cfg = ws.config
    result = WorkspaceStatus(project=cfg.project.name, root=str(ws.root))
    with Ledger(ws.ledger_path) as ledger:
        for p in cfg.partners:
            batches = ledger.active_batches(p.id)
            result.partners.append(
                PartnerStatus(
                    partner=p.id,
                    domain=str(p.domain),
                    active_batches=len(batches),
                    rows_accepted=sum(b.accepted for b in batches),
                    rows_quarantined=sum(b.quarantined for b in batches),
                    last_ingest=max((b.created_at for b in batches), default=None),
                )
            )
        result.last_run = ledger.last_run()
        result.last_inbox_run = _inbox_run(ledger.last_run("run"))
        release = ledger.last_release()
        result.last_release = (
            {"release_id": release["release_id"], "created_at": release["created_at"],
             "audience": release["audience"], "tier": _tier(release["summary"]),
             "current": release_is_current(ws, ledger)} if release else None
        )
        result.pending_purges = [p["purge_id"] for p in ledger.purges(state="pending")]
    from cilink.operate.inbox import scan_inbox

    result.inbox_pending = [{"partner": e.partner, "entry": e.path.name, "state": e.state, "reason": e.reason}
                            for e in scan_inbox(ws) if e.state != "ready"]
    if ws.link_dir.is_dir():  # polars only once something has been linked
        import polars as pl

        from cilink.link.outputs import QUEUE_FILE, read_crosswalk

        queue = ws.link_dir / QUEUE_FILE
        if queue.exists():
            result.review_queue = pl.scan_parquet(queue).select(pl.len()).collect().item()
        people = read_crosswalk(ws.link_dir, ["person_id"])
        if people is not None:
            result.persons = people["person_id"].n_unique()
    return result


def release_inputs(ws: Workspace) -> dict[str, str | None]:
    """What a release is built from, recorded with it in the ledger so `status` and `run` can tell whether it
    is current: the link generation and the config file's sha256."""
    from cilink.config import config_hash
    from cilink.generations import current_generation

    gen = current_generation(ws)
    return {"link_generation": gen.name if gen is not None else None, "config_sha256": config_hash(ws.config_path)}


def link_is_current(ws: Workspace, ledger: Ledger) -> bool:
    """Whether the published link generation was built from exactly the active batches."""
    from cilink.generations import current_generation
    from cilink.link.outputs import read_state

    gen = current_generation(ws)
    if gen is None:
        return not ledger.active_batches()
    linked = {b for ids in read_state(gen).get("batches", {}).values() for b in ids}
    return linked == {b.batch_id for b in ledger.active_batches()}


def release_is_current(ws: Workspace, ledger: Ledger) -> bool | None:
    """Whether the last default-audience release was built from the current link generation and config
    (None: no release yet). Releases recorded before this was kept compare times instead."""
    row = ledger.conn.execute("SELECT created_at, summary FROM releases WHERE audience IS NULL OR "
                              "audience = 'default' ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
    if row is None:
        return None
    summary = json.loads(row["summary"] or "{}")
    now = release_inputs(ws)
    if "link_generation" in summary:
        return summary["link_generation"] == now["link_generation"] and summary["config_sha256"] == now[
            "config_sha256"]
    from cilink.generations import current_generation

    gen = current_generation(ws)
    return gen is None or row["created_at"] >= _mtime(gen)


def _mtime(path: Path) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(int(path.stat().st_mtime), dt.UTC).isoformat()


def _inbox_run(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last `cilink run`: when, its exit code, and each file's outcome (runs before outcomes were kept: none)."""
    if run is None:
        return None
    summary = run["summary"]
    outcomes = summary.get("outcomes", [])
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o["outcome"]] = counts.get(o["outcome"], 0) + 1
    return {"run_id": run["run_id"], "started_at": run["started_at"], "finished_at": run["finished_at"],
            "exit_code": run["exit_code"], "linked": summary.get("linked"), "release_id": summary.get("release_id"),
            "outcome_counts": counts, "files": outcomes}


def _tier(summary: str | None) -> str:
    """The tier recorded with a release (releases made before tiers carried full detail: research)."""
    try:
        return str(json.loads(summary or "{}").get("tier", "research"))
    except ValueError:
        return "research"
