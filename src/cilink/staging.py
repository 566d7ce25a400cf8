"""Staged records: where ingest leaves standardized rows and where link and export read them."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from cilink.ledger import Ledger
from cilink.schemas import IdentityRecord, polars_schema
from cilink.workspace import Workspace


def staged_batch_path(ws: Workspace, partner_id: str, batch_id: str) -> Path:
    """Where one batch's standardized records live (restricted zone)."""
    return ws.staged_dir(partner_id) / f"{batch_id}.parquet"


def staged_records(ws: Workspace, partner_id: str | None = None, *, domain: str | None = None) -> pl.LazyFrame:
    """Staged rows of the active batches (snapshot-superseded and purged batches excluded).

    ``partner_id`` limits to one partner; ``domain`` to partners of that domain (and gives that domain's
    columns). Without either, the frame has the identity columns plus every domain's event columns.
    """
    cfg = ws.config
    partners = {p.id: p for p in cfg.partners}
    with Ledger(ws.ledger_path) as ledger:
        batches = ledger.active_batches(partner_id)
    frames = []
    for b in batches:
        p = partners.get(b.partner)
        if p is None or (domain is not None and str(p.domain) != domain):
            continue
        frames.append(pl.scan_parquet(ws.root / b.staged_path))
    if domain is None and partner_id is not None and partner_id in partners:
        domain = str(partners[partner_id].domain)  # an empty result still has the partner's columns
    if domain is not None:
        schema = polars_schema(domain)
    else:
        schema = pl.Schema(
            {
                **{n: t for n, t in polars_schema("school").items() if n in IdentityRecord.model_fields},
                **{k: v for k, v in polars_schema("school").items() if k.startswith("_cilink_")},
            }
        )
    if not frames:
        return pl.LazyFrame(schema=schema)
    return pl.concat(frames, how="diagonal_relaxed")
