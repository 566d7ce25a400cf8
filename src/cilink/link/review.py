"""Clerical review: borderline pairs out to a side-by-side CSV, reviewers' decisions back into the ledger.

``export_queue`` writes the review queue of the current link generation, one row per pair with both
records' fields side by side (``first_name_l`` | ``first_name_r`` …) and an empty ``decision`` column.
Reviewers fill it with ``match`` or ``non_match`` (also accepted: same/different, yes/no, m/n, 1/0) and
``import_decisions`` records them in the ledger (table ``review_decisions``). Later link runs obey them as
must-link / cannot-link constraints. SSNs appear masked (last four digits) with a column saying whether the
full numbers agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cilink.errors import InputRejected, WorkspaceError
from cilink.generations import current_generation
from cilink.ledger import Ledger, current_user, now_utc
from cilink.link import review_ledger
from cilink.link.outputs import read_records
from cilink.link.restricted_csv import unescape, write_restricted_csv
from cilink.locking import writer_lock
from cilink.logs import RunLog
from cilink.workspace import Workspace

SIDE_BY_SIDE = (
    "partner", "source_person_id", "first_name", "middle_name", "last_name", "name_suffix", "dob", "sex",
    "ssn", "street", "unit", "city", "zip5", "phone", "email",
)
DECISION_WORDS = {
    "match": "match", "same": "match", "yes": "match", "y": "match", "m": "match", "1": "match",
    "non_match": "non_match", "non-match": "non_match", "nonmatch": "non_match", "no match": "non_match",
    "different": "non_match", "distinct": "non_match", "no": "non_match", "n": "non_match", "0": "non_match",
}


@dataclass
class ReviewExport:
    """Where the queue went and how many pairs it holds."""

    path: str
    pairs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReviewImport:
    """How many decisions a reviewed file contributed."""

    path: str
    match: int
    non_match: int
    undecided: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _generation(ws: Workspace) -> Path:
    gen = current_generation(ws)
    if gen is None or not (gen / "review_queue.parquet").is_file():
        raise WorkspaceError("the workspace has not been linked yet", hint="run `cilink link` first")
    return gen


def side_by_side(queue: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """One row per queued pair: pair number, empty decision, weight, reason, then each field as _l | _r."""
    fields = [f for f in SIDE_BY_SIDE if f in records.columns]
    recs = records.select("record_id", *fields).with_columns(
        pl.col("dob").cast(pl.String),
        pl.when(pl.col("ssn").is_not_null()).then(pl.lit("***-**-") + pl.col("ssn").str.slice(5, 4))
        .otherwise(pl.lit(None)).alias("ssn"),
        pl.col("ssn").alias("_full_ssn"),
    )
    left = recs.rename({c: f"{c}_l" for c in recs.columns})
    right = recs.rename({c: f"{c}_r" for c in recs.columns})
    joined = (
        queue.with_row_index("pair", offset=1)
        .join(left, on="record_id_l", how="left")
        .join(right, on="record_id_r", how="left")
        .with_columns(
            pl.when(pl.col("_full_ssn_l").is_null() | pl.col("_full_ssn_r").is_null()).then(pl.lit(""))
            .when(pl.col("_full_ssn_l") == pl.col("_full_ssn_r")).then(pl.lit("yes"))
            .otherwise(pl.lit("no")).alias("ssn_same"),
            pl.coalesce("guard", pl.lit("review band")).alias("reason"),
            pl.lit("").alias("decision"),
        )
    )
    cols = ["pair", "decision", pl.col("match_weight").round(2), pl.col("match_probability").round(4), "reason",
            "record_id_l", "record_id_r"]
    for f in fields:
        cols += [f"{f}_l", f"{f}_r"]
        if f == "ssn":
            cols.append("ssn_same")
    return joined.select(cols).sort("pair")


def export_queue(ws: Workspace, path: Path) -> ReviewExport:
    """Write the review queue side by side to ``path`` (formula-safe CSV, owner-only)."""
    gen = _generation(ws)
    queue = pl.read_parquet(gen / "review_queue.parquet")
    records = read_records(gen)
    if records is None:
        raise WorkspaceError("the workspace has no linked records", hint="run `cilink link` first")
    target = write_restricted_csv(ws, path, side_by_side(queue, records))
    with Ledger(ws.ledger_path) as ledger:
        ledger.audit("review export", "review_export", "ok", details={"pairs": queue.height})
    RunLog(ws.logs_dir, "review export").event("review_export", pairs=queue.height)
    return ReviewExport(path=str(target), pairs=queue.height)


def read_decisions(path: Path, known_records: set[str]) -> tuple[pl.DataFrame, int]:
    """Parse a reviewed file → (record_id_l, record_id_r, decision) rows with a decision, and how many rows
    were left undecided. Every bad row is reported at once, by row number and column (never its value)."""
    if not path.is_file():
        raise InputRejected(f"no review file at {path}", hint="give the CSV written by `cilink review export`",
                            file=str(path), reason="missing_file")
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.PolarsError as e:
        raise InputRejected(f"cannot read {path} as CSV ({type(e).__name__})", file=str(path),
                            hint="save the reviewed file as CSV (UTF-8)", reason="unreadable") from e
    missing = [c for c in ("record_id_l", "record_id_r", "decision") if c not in frame.columns]
    if missing:
        raise InputRejected(f"{path} lacks column(s) {missing}", file=str(path), column=missing[0],
                            hint="keep the columns of the exported file; fill only 'decision'",
                            reason="missing_column")
    frame = frame.with_row_index("_row", offset=2).select(
        "_row",
        unescape(pl.col("record_id_l").str.strip_chars()).alias("record_id_l"),
        unescape(pl.col("record_id_r").str.strip_chars()).alias("record_id_r"),
        pl.col("decision").str.strip_chars().str.to_lowercase().fill_null("").alias("_word"),
    )
    decided = frame.filter(pl.col("_word") != "").with_columns(
        pl.col("_word").replace_strict(DECISION_WORDS, default=None).alias("decision"))
    problems = []
    bad_words = decided.filter(pl.col("decision").is_null())["_row"].to_list()
    if bad_words:
        problems.append(f"rows {_rows(bad_words)}: column 'decision' must be match or non_match")
    unknown = decided.filter(~pl.col("record_id_l").is_in(sorted(known_records))
                             | ~pl.col("record_id_r").is_in(sorted(known_records)))["_row"].to_list()
    if unknown:
        problems.append(f"rows {_rows(unknown)}: columns 'record_id_l'/'record_id_r' name no current record")
    if problems:
        raise InputRejected(f"{path}: " + "; ".join(problems), file=str(path), reason="invalid_value",
                            hint="fix those rows (or clear their decision) and import again; nothing was recorded")
    undecided = frame.height - decided.height
    return decided.select("record_id_l", "record_id_r", "decision"), undecided


def _rows(rows: list[int], limit: int = 20) -> str:
    shown = ", ".join(map(str, rows[:limit]))
    return shown + (f" … ({len(rows)} in all)" if len(rows) > limit else "")


def import_decisions(ws: Workspace, path: Path) -> ReviewImport:
    """Record the decisions of a reviewed file in the ledger (all or nothing); the next link obeys them."""
    with writer_lock(ws.lock_path, "review import"), Ledger(ws.ledger_path) as ledger:
        gen = _generation(ws)
        records = read_records(gen)
        known = set(records["record_id"].to_list()) if records is not None else set()
        decisions, undecided = read_decisions(path, known)
        at, who = now_utc(), current_user()
        review_ledger.record_imported(ledger, decisions.iter_rows(), who, at)
        counts = decisions["decision"].value_counts()
        n = dict(zip(counts["decision"].to_list(), counts["count"].to_list(), strict=True))
        result = ReviewImport(path=str(path), match=n.get("match", 0), non_match=n.get("non_match", 0),
                              undecided=undecided)
        ledger.audit("review import", "review_decisions", "ok",
                     details={"match": result.match, "non_match": result.non_match, "undecided": undecided})
    RunLog(ws.logs_dir, "review import").event("review_import", match=result.match, non_match=result.non_match)
    return result
