"""What a release is built from: staged records of the active batches joined to the crosswalk's person_id.

Reads only what ingest and link left in the restricted zone (docs/internals.md): ``staged_records`` per
domain and ``link/current/crosswalk.parquet``. Nothing read here leaves this process except through the
release builders and the privacy gate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from cilink.errors import WorkspaceError
from cilink.ledger import Batch, Ledger
from cilink.schemas import domain_fields
from cilink.staging import staged_records
from cilink.workspace import Workspace

#: Identity fields a release uses (generalized) for persons' quasi-identifiers.
QI_SOURCE_FIELDS = ["dob", "sex", "zip5", "race_ethnicity"]

#: Domain fields carried into the release builders (identifiers such as enrollment_id stay behind).
EVENT_FIELDS: dict[str, list[str]] = {
    "school": ["school_year", "school_id", "grade_level", "entry_date", "exit_date", "days_enrolled",
               "days_present", "days_absent", "graduated"],
    "workforce": ["program", "entry_date", "exit_date", "employed_q2", "employed_q4", "earnings_q2",
                  "credential_attained"],
    "housing": ["project_type", "relationship_to_hoh", "entry_date", "move_in_date", "exit_date", "destination",
                "destination_category"],
}


@dataclass
class SourceData:
    """Staged events per domain keyed by ``person_idx`` (restricted), the keys, and provenance for the manifest.

    ``person_idx`` numbers persons in ``person_key`` order (``person_keys[person_idx]`` is the key), so
    sorting by it sorts by key: releases are never ordered by person_id or ingestion order, which could hint
    at when or where a person entered the data.
    """

    events: dict[str, pl.DataFrame]
    person_keys: pl.Series
    batches: list[tuple[Batch, str]] = field(default_factory=list)  # (batch, domain)
    crosswalk_sha256: str = ""
    model_path: Path | None = None
    pairs_path: Path | None = None
    crosswalk: pl.DataFrame | None = None

    @property
    def n_persons(self) -> int:
        return len(self.person_keys)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_sources(ws: Workspace, keyer: Callable[[pl.Series], pl.Series]) -> SourceData:
    """Staged rows of every domain with ``person_idx``; WorkspaceError if link has not run or is stale.

    ``keyer`` turns person ids into person keys (cilink.export.person_keys). Staged rows are joined to the
    crosswalk's row numbers partner by partner (one integer per row, joins keep row order so output is
    deterministic), and the person index is then gathered by row number: no multi-million-row string join
    on person ids.
    """
    crosswalk_path = ws.link_dir / "crosswalk.parquet"
    if not crosswalk_path.is_file():
        raise WorkspaceError("there is no crosswalk yet: nothing has been linked",
                             hint="run `cilink link` (or `cilink run`) before `cilink export`")
    crosswalk = (pl.read_parquet(crosswalk_path, columns=["partner", "source_person_id", "record_id", "person_id"])
                 .with_columns(pl.col("source_person_id").cast(pl.String), pl.col("person_id").cast(pl.String))
                 .with_row_index("_cw"))
    cfg = ws.config
    frames: dict[str, pl.DataFrame] = {}
    for domain in sorted({str(p.domain) for p in cfg.partners}):
        known = set(domain_fields(domain))
        wanted = ["source_person_id", *QI_SOURCE_FIELDS, *[f for f in EVENT_FIELDS[domain] if f in known]]
        parts = []
        for partner in sorted(p.id for p in cfg.partners if str(p.domain) == domain):
            cw = crosswalk.lazy().filter(pl.col("partner") == partner).select("source_person_id", "_cw")
            parts.append(staged_records(ws, partner).select(wanted)
                         .with_columns(pl.col("source_person_id").cast(pl.String), pl.lit(partner).alias("partner"))
                         .join(cw, on="source_person_id", how="left", maintain_order="left")
                         .drop("source_person_id"))
        frame = pl.concat(parts, how="diagonal_relaxed").collect()
        missing = frame.get_column("_cw").null_count()
        if missing:
            raise WorkspaceError(
                f"the crosswalk is out of date: {missing} staged {domain} row(s) have no person_id",
                hint="run `cilink link` to link the newest batches, then export again")
        frames[domain] = frame
    cw_rows = [df.get_column("_cw") for df in frames.values()]
    used = pl.concat(cw_rows).unique() if cw_rows else pl.Series([], dtype=pl.UInt32)
    person_ids = crosswalk.get_column("person_id").gather(used).unique().sort()
    index = (pl.DataFrame({"person_id": person_ids, "person_key": keyer(person_ids)}).sort("person_key")
             .with_row_index("person_idx").with_columns(pl.col("person_idx").cast(pl.Int32)))
    idx_by_row = crosswalk.select("person_id").join(index.select("person_id", "person_idx"), on="person_id",
                                                   how="left", maintain_order="left").get_column("person_idx")
    events = {d: df.with_columns(idx_by_row.gather(df.get_column("_cw")).alias("person_idx")).drop("_cw")
              for d, df in frames.items()}
    with Ledger(ws.ledger_path) as ledger:
        batches = ledger.active_batches()
    by_partner = {p.id: str(p.domain) for p in cfg.partners}
    model = ws.link_dir / "model.json"
    pairs = ws.link_dir / "pairs.parquet"
    return SourceData(
        events=events,
        person_keys=index.get_column("person_key"),
        batches=[(b, by_partner[b.partner]) for b in batches if b.partner in by_partner],
        crosswalk_sha256=file_sha256(crosswalk_path),
        model_path=model if model.is_file() else None,
        pairs_path=pairs if pairs.is_file() else None,
        crosswalk=crosswalk.drop("_cw"),
    )


def event_intervals(domain: str) -> tuple[pl.Expr, pl.Expr]:
    """Exact start and end of each staged event (restricted), used for panels, spells and first/last seen.

    School rows may carry only a school year: they span 1 September to 30 June of it. A null end means
    the event is still open at the as-of date.
    """
    if domain == "school":
        y = pl.col("school_year").str.slice(0, 4).cast(pl.Int32, strict=False)
        start = pl.coalesce(pl.col("entry_date"), pl.date(y, 9, 1))
        end = pl.coalesce(pl.col("exit_date"), pl.date(y + 1, 6, 30))
        return start, end
    return pl.col("entry_date"), pl.col("exit_date")


def as_of_date(events: dict[str, pl.DataFrame]) -> dt.date:
    """The latest event date in the data: the release's as-of date (deterministic, unlike the wall clock)."""
    latest: list[dt.date] = []
    for domain, df in events.items():
        start, end = event_intervals(domain)
        cols = [start.max().alias("s"), end.max().alias("e")]
        if "move_in_date" in df.columns:
            cols.append(pl.col("move_in_date").max().alias("m"))
        row = df.select(cols).row(0)
        latest.extend(v for v in row if v is not None)
    if not latest:
        raise WorkspaceError("the staged records have no event dates to place a release in time",
                             hint="check the partners' date columns in cilink.toml and ingest again")
    return max(latest)
