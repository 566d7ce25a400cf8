"""Linkage accuracy against a labelled file (partner, source_person_id, true_id): pairwise and per cluster.

Pairwise: every pair of records put in one person is a predicted link; every pair sharing a ``true_id`` is
a true link. Precision = correct predicted / predicted, recall = correct predicted / true. Cluster level:
*over-merged* persons hold records of more than one true person; *split* true persons are spread over
more than one person_id. Only records present in both the crosswalk and the truth file are compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cilink.errors import InputRejected, WorkspaceError
from cilink.link.outputs import read_crosswalk
from cilink.workspace import Workspace

TRUTH_COLUMNS = ("partner", "source_person_id", "true_id")


@dataclass
class Evaluation:
    """Pairwise precision/recall/F1 and cluster-level error counts."""

    records: int
    missing_from_truth: int
    missing_from_crosswalk: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    precision: float
    recall: float
    f1: float
    persons: int
    true_persons: int
    over_merged: int
    split: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pairs(sizes: pl.Expr) -> pl.Expr:
    return (sizes * (sizes - 1) // 2).sum()


def evaluate(crosswalk: pl.DataFrame, truth: pl.DataFrame) -> Evaluation:
    """Compare ``crosswalk`` (partner, source_person_id, person_id) with ``truth`` (… true_id)."""
    keys = ["partner", "source_person_id"]
    cw = crosswalk.select(*keys, "person_id").unique(keys)
    tr = truth.select(*(pl.col(c).cast(pl.String) for c in TRUTH_COLUMNS)).unique(keys)
    both = cw.join(tr, on=keys, how="inner")
    counts = both.group_by("person_id", "true_id").len("n")
    predicted = both.group_by("person_id").len("n").select(_pairs(pl.col("n"))).item() or 0
    true = both.group_by("true_id").len("n").select(_pairs(pl.col("n"))).item() or 0
    correct = counts.select(_pairs(pl.col("n"))).item() or 0
    precision = correct / predicted if predicted else 1.0
    recall = correct / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    over = counts.group_by("person_id").len("k").filter(pl.col("k") > 1).height
    split = counts.group_by("true_id").len("k").filter(pl.col("k") > 1).height
    return Evaluation(
        records=both.height,
        missing_from_truth=cw.join(tr, on=keys, how="anti").height,
        missing_from_crosswalk=tr.join(cw, on=keys, how="anti").height,
        true_pairs=int(true), predicted_pairs=int(predicted), correct_pairs=int(correct),
        precision=round(precision, 6), recall=round(recall, 6), f1=round(f1, 6),
        persons=both["person_id"].n_unique(), true_persons=both["true_id"].n_unique(),
        over_merged=over, split=split,
    )


def read_truth(path: Path) -> pl.DataFrame:
    """Read a labelled file (CSV or Parquet) with columns partner, source_person_id, true_id (all as text)."""
    if not path.is_file():
        raise InputRejected(f"no truth file at {path}", hint="give the path of a labelled CSV or Parquet file",
                            file=str(path), reason="missing_file")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputRejected(f"cannot read the truth file {path} ({type(e).__name__})",
                            hint="give a CSV or Parquet file", file=str(path), reason="unreadable") from e
    missing = [c for c in TRUTH_COLUMNS if c not in frame.columns]
    if missing:
        raise InputRejected(
            f"truth file {path} lacks column(s) {missing}",
            hint="the file needs the columns partner, source_person_id, true_id",
            file=str(path), column=missing[0], reason="missing_column",
        )
    return frame.select(*(pl.col(c).cast(pl.String) for c in TRUTH_COLUMNS))


def evaluate_workspace(ws: Workspace, truth_path: Path) -> Evaluation:
    """Evaluate the workspace's current crosswalk against a labelled file."""
    crosswalk = read_crosswalk(ws.link_dir)
    if crosswalk is None:
        raise WorkspaceError("the workspace has not been linked yet", hint="run `cilink link` first")
    return evaluate(crosswalk, read_truth(truth_path))
