"""Scale check (slow; run with `pytest -m slow`): the benchmark's generated CSV at 200,000 rows."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from cilink.ingest import ingest_file
from cilink.workspace import init_workspace

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "ingest_1m.py"


@pytest.mark.slow
def test_200k_rows_reconcile_quickly(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("ingest_1m", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    csv_path = tmp_path / "schools.csv"
    bench.build_csv(csv_path, 200_000)
    ws = init_workspace(tmp_path / "ws", config_text=bench.CONFIG)
    t = time.perf_counter()
    r = ingest_file(ws, "schools", csv_path)
    assert time.perf_counter() - t < 20
    assert r.rows_in == 200_000 == r.accepted + r.quarantined
    assert set(r.quarantine_by_reason) == {"exit_before_entry"}
