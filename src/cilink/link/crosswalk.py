"""The crosswalk out of the restricted zone: partner, source_person_id → person_id, for partners' own systems.

Identifiable (it pairs each partner's own IDs with cilink's person IDs), so it is written owner-only,
never into ``releases/``, and every export is audited.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cilink import atomic
from cilink.errors import WorkspaceError
from cilink.generations import current_generation
from cilink.ledger import Ledger
from cilink.link.outputs import read_crosswalk as read_link_crosswalk
from cilink.link.restricted_csv import check_target, write_restricted_csv
from cilink.logs import RunLog
from cilink.workspace import Workspace

COLUMNS = ("partner", "source_person_id", "person_id")


@dataclass
class CrosswalkExport:
    """Where the crosswalk went and how many rows and persons it holds."""

    path: str
    rows: int
    persons: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_crosswalk(ws: Workspace) -> pl.DataFrame:
    """The current crosswalk (partner, source_person_id, record_id, person_id)."""
    gen = current_generation(ws)
    crosswalk = read_link_crosswalk(gen) if gen is not None else None
    if crosswalk is None:
        raise WorkspaceError("the workspace has not been linked yet", hint="run `cilink link` first")
    return crosswalk


def export_crosswalk(ws: Workspace, path: Path, partner: str | None = None) -> CrosswalkExport:
    """Write partner, source_person_id, person_id to ``path`` (CSV, or Parquet for a ``.parquet`` name).

    ``partner`` limits the file to one partner's records (what that partner may receive).
    """
    frame = read_crosswalk(ws).select(COLUMNS).sort("partner", "source_person_id")
    if partner is not None:
        frame = frame.filter(pl.col("partner") == partner)
    if path.suffix.lower() == ".parquet":
        target = check_target(ws, path)
        with atomic.atomic_path(target) as tmp:
            frame.write_parquet(tmp)
            os.chmod(tmp, 0o600)
    else:
        target = write_restricted_csv(ws, path, frame)
    result = CrosswalkExport(path=str(target), rows=frame.height, persons=frame["person_id"].n_unique())
    with Ledger(ws.ledger_path) as ledger:
        ledger.audit("crosswalk export", "crosswalk_export", "ok",
                     details={"rows": result.rows, "persons": result.persons, "partner": partner})
    RunLog(ws.logs_dir, "crosswalk export").event("crosswalk_export", rows=result.rows)
    return result
