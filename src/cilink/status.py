"""Workspace health at a glance: partners, batches, quarantine, last run, review queue, last release."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
    last_run: dict[str, Any] | None = None
    last_release: dict[str, Any] | None = None
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
        release = ledger.last_release()
        result.last_release = (
            {"release_id": release["release_id"], "created_at": release["created_at"],
             "audience": release["audience"], "tier": _tier(release["summary"])} if release else None
        )
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


def _tier(summary: str | None) -> str:
    """The tier recorded with a release (releases made before tiers carried full detail: research)."""
    try:
        return str(json.loads(summary or "{}").get("tier", "research"))
    except ValueError:
        return "research"
