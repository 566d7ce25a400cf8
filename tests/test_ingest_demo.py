"""The demo generator's three exports ingest cleanly, and each planted bad row gets the expected outcome."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from cilink.demo import generate_demo
from cilink.ingest import ingest_file
from cilink.workspace import Workspace, init_workspace


@pytest.mark.parametrize("hmis_version", ["FY2024", "FY2026"])
def test_demo_exports_reconcile_and_planted_rows_land_where_expected(tmp_path: Path, hmis_version: str) -> None:
    out = tmp_path / "demo"
    files = generate_demo(out, people=600, seed=7, hmis_version=hmis_version)
    config = (out / "cilink.toml").read_text()
    (out / "cilink.toml").unlink()
    ws = init_workspace(out, config_text=config)
    results = {partner: ingest_file(ws, partner, path) for partner, path in files.exports.items()}
    for r in results.values():
        assert r.status == "ingested"
        assert r.rows_in == r.accepted + r.quarantined
    planted = json.loads((out / ".cilink" / "demo-bad-rows.json").read_text())["rows"]
    assert planted, "the demo plants bad rows"
    w = Workspace.open(out)
    for entry in planted:
        r = results[entry["partner"]]
        row = entry["row"]
        if entry["outcome"] == "quarantine":
            q = pl.read_parquet(w.root / r.quarantine_path)  # type: ignore[operator]
            reasons = q.filter(pl.col("_cilink_row") == row)["reason"].to_list()
            assert entry["reason"] in reasons, entry["key"]
        else:
            staged = pl.read_parquet(w.root / r.staged_path).filter(pl.col("_cilink_row") == row)  # type: ignore[operator]
            assert staged.height == 1, entry["key"]
            if entry["outcome"] == "flag":
                assert entry["reason"] in staged["_cilink_flags"][0], entry["key"]
