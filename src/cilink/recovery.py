"""Crash recovery, run by the next writer: remove what a killed process left half-done.

Every stage publishes with an atomic rename and records batches in the ledger only after the staged file
is in place, so the only debris a crash can leave is temp files and staged files the ledger never
recorded. Removing them returns the workspace to its state before the interrupted command.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cilink.atomic import sweep_temp

RESTRICTED = ".cilink"


@dataclass
class Recovery:
    temp_removed: int = 0
    orphans_removed: int = 0


def recover(root: Path) -> Recovery:
    """Sweep temp files under the restricted zone and releases, and staged/quarantine files with no ledger row."""
    result = Recovery()
    restricted = root / RESTRICTED
    result.temp_removed = sweep_temp(restricted)
    if (root / "releases").is_dir():
        result.temp_removed += sweep_temp(root / "releases")
    ledger = restricted / "ledger.sqlite"
    staged = restricted / "staged"
    if ledger.exists() and staged.is_dir():
        conn = sqlite3.connect(ledger)
        try:
            # staged_path may be stored relative to the workspace or absolute: compare resolved paths
            known = {(root / row[0]).resolve() for row in conn.execute("SELECT staged_path FROM batches")}
        except sqlite3.OperationalError:
            known = set()
        finally:
            conn.close()
        for f in staged.rglob("*.parquet"):
            if f.resolve() not in known:
                f.unlink()
                result.orphans_removed += 1
    quarantine = restricted / "quarantine"
    if ledger.exists() and quarantine.is_dir():
        # ingest writes a batch's quarantine files (<batch_id>.parquet/.csv) before its ledger row
        conn = sqlite3.connect(ledger)
        try:
            batch_ids = {row[0] for row in conn.execute("SELECT batch_id FROM batches")}
        except sqlite3.OperationalError:
            batch_ids = set()
        finally:
            conn.close()
        for f in [*quarantine.rglob("*.parquet"), *quarantine.rglob("*.csv")]:
            if f.stem not in batch_ids:
                f.unlink()
                result.orphans_removed += 1
    return result
