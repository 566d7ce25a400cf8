"""The quarantine of a batch: rejected rows kept in the restricted zone, plus a CSV for the partner.

``.cilink/quarantine/<partner>/<batch_id>.parquet`` holds one row per (source row, reason) with the row
number, the column as the partner names it, the raw value and the reason code; ``<batch_id>.csv``
beside it is the same table for the data manager to send back to the partner. Any CSV cilink writes is
formula-safe: a cell starting with = + - @ tab or CR gets a leading single quote, so a spreadsheet
shows it as text instead of running it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from cilink import atomic
from cilink.workspace import Workspace

FORMULA_START = r"^[=+\-@\t\r]"
#: the partner-facing CSV: what they need to find and fix the row in their own system
PARTNER_COLUMNS = {"_cilink_row": "row", "source_person_id": "source_person_id", "column": "column",
                   "value": "value", "reason": "reason", "detail": "detail"}


def neutralize_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix text cells that a spreadsheet would treat as a formula with a single quote (OWASP CSV injection)."""
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, t in frame.schema.items() if t == pl.String
    )


def write_safe_csv(frame: pl.DataFrame, target: Path) -> None:
    """Atomically write a formula-safe CSV (UTF-8 with BOM, so Excel shows accents correctly)."""
    safe = neutralize_formulas(frame.with_columns(pl.col(c).cast(pl.String) for c in frame.columns))
    with atomic.atomic_path(target) as tmp:
        safe.write_csv(tmp, include_bom=True)


def quarantine_paths(ws: Workspace, partner_id: str, batch_id: str) -> tuple[Path, Path]:
    """(parquet, csv) paths of a batch's quarantine, inside the restricted zone."""
    base = ws.quarantine_dir / partner_id
    return base / f"{batch_id}.parquet", base / f"{batch_id}.csv"


def write_quarantine(ws: Workspace, partner_id: str, batch_id: str, table: pl.DataFrame) -> tuple[Path, Path]:
    """Write the quarantine table (Parquet) and the partner CSV; both atomic. Returns their paths."""
    parquet, csv = quarantine_paths(ws, partner_id, batch_id)
    parquet.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic.write_parquet(parquet, table)
    write_safe_csv(table.select([pl.col(k).alias(v) for k, v in PARTNER_COLUMNS.items()]), csv)
    return parquet, csv
