"""Linkage accuracy against a labelled file (partner, source_person_id, true_id): pairwise and per cluster.

Pairwise: every pair of records put in one person is a predicted link; every pair sharing a ``true_id`` is
a true link. Precision = correct predicted / predicted, recall = correct predicted / true. Cluster level:
*over-merged* persons hold records of more than one true person; *split* true persons are spread over
more than one person_id; *exact* true persons are one cilink person, no more and no less.

``evaluate_workspace`` adds what a data manager needs to decide where to look next: the F1 a perfect
reviewer would reach by deciding every queued pair (``perfect_review_f1``), and per partner pair the share
of true pairs that a blocking rule makes candidates, that were scored at or above the review floor and that
ended in one person (``by_partner_pair``) — a pair no blocking rule pairs can never reach a reviewer.
Only records present in both the crosswalk and the truth file are compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cilink.encoding.scheme import ENC_PREFIX
from cilink.errors import InputRejected, WorkspaceError
from cilink.link import engine
from cilink.link.clusters import cluster_records
from cilink.link.comparisons import link_spec
from cilink.link.decisions import CANNOT_LINK, LINK, MUST_LINK, REVIEW
from cilink.link.outputs import read_crosswalk, read_pairs, read_records
from cilink.link.records import record_id, with_record_keys
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
    exact_persons_share: float = 0.0
    perfect_review_f1: float | None = None
    by_partner_pair: list[dict[str, Any]] | None = None

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
    exact = counts.filter((pl.len().over("true_id") == 1) & (pl.len().over("person_id") == 1)).height
    return Evaluation(
        records=both.height,
        missing_from_truth=cw.join(tr, on=keys, how="anti").height,
        missing_from_crosswalk=tr.join(cw, on=keys, how="anti").height,
        true_pairs=int(true), predicted_pairs=int(predicted), correct_pairs=int(correct),
        precision=round(precision, 6), recall=round(recall, 6), f1=round(f1, 6),
        persons=both["person_id"].n_unique(), true_persons=both["true_id"].n_unique(),
        over_merged=over, split=split,
        exact_persons_share=round(exact / max(both["true_id"].n_unique(), 1), 6),
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
    """Evaluate the workspace's current crosswalk against a labelled file (with the review and blocking
    figures of the module docstring)."""
    crosswalk = read_crosswalk(ws.link_dir)
    if crosswalk is None:
        raise WorkspaceError("the workspace has not been linked yet", hint="run `cilink link` first")
    truth = read_truth(truth_path)
    result = evaluate(crosswalk, truth)
    pairs, records = read_pairs(ws.link_dir), read_records(ws.link_dir)
    if pairs is None or records is None:
        return result
    true_of = truth.select(record_id(pl.col("partner"), pl.col("source_person_id")).alias("record_id"), "true_id")
    model = engine.load_model(ws.link_dir)
    households = bool(model.meta.get("households_present", True)) if model is not None else True
    result.perfect_review_f1 = _perfect_review_f1(pairs, records, true_of, truth, households)
    result.by_partner_pair = _by_partner_pair(ws, pairs, records, crosswalk, true_of)
    return result


def _perfect_review_f1(pairs: pl.DataFrame, records: pl.DataFrame, true_of: pl.DataFrame,
                       truth: pl.DataFrame, households: bool) -> float:
    """Pairwise F1 after a reviewer who is always right decided every queued pair (the guards still apply:
    the SSN guard only where the model found households, as in ``persons._cluster``)."""
    keyed = pairs.join(true_of.rename({"record_id": "record_id_l", "true_id": "_tl"}), on="record_id_l", how="left") \
        .join(true_of.rename({"record_id": "record_id_r", "true_id": "_tr"}), on="record_id_r", how="left")
    queued = keyed.filter(pl.col("decision") == REVIEW)
    same = pl.col("_tl").is_not_null() & (pl.col("_tl") == pl.col("_tr"))
    must = pl.concat([keyed.filter(pl.col("decision") == MUST_LINK), queued.filter(same)])
    cannot = pl.concat([keyed.filter(pl.col("decision") == CANNOT_LINK), queued.filter(~same)])
    ssn = records.select("record_id", "ssn") if households and "ssn" in records.columns else None
    clustering = cluster_records(records["record_id"], keyed.filter(pl.col("decision") == LINK),
                                 must_link=must.select("record_id_l", "record_id_r"),
                                 cannot_link=cannot.select("record_id_l", "record_id_r"), ssn=ssn)
    reviewed = with_record_keys(clustering.clusters.rename({"cluster": "person_id"}))
    return evaluate(reviewed, truth).f1


def _by_partner_pair(ws: Workspace, pairs: pl.DataFrame, records: pl.DataFrame, crosswalk: pl.DataFrame,
                     true_of: pl.DataFrame) -> list[dict[str, Any]] | None:
    """Per partner pair: true pairs, and the shares made candidates by a blocking rule, scored (at or above
    the review floor) and linked. None for projects with encoded partners (their rules are per LSH band)."""
    if any(c.startswith(ENC_PREFIX) and records[c].is_not_null().any() for c in records.columns):
        return None
    rules = link_spec(ws.config.link).blocking_rules
    cols = sorted({c for r in rules for c in r.columns if c in records.columns})
    recs = records.select("record_id", "partner", *cols).join(true_of, on="record_id", how="inner")
    person = crosswalk.select(record_id(pl.col("partner"), pl.col("source_person_id")).alias("record_id"),
                              "person_id")
    recs = recs.join(person, on="record_id", how="left")
    true_pairs = recs.join(recs, on="true_id", suffix="_r").filter(pl.col("record_id") < pl.col("record_id_r"))
    if not true_pairs.height:
        return []
    blocked = pl.any_horizontal(*[pl.all_horizontal(*[(pl.col(c) == pl.col(f"{c}_r")).fill_null(False)
                                                       for c in r.columns])
                                  for r in rules if all(c in cols for c in r.columns)])
    scored = pairs.select(pl.col("record_id_l").alias("record_id"), "record_id_r", pl.lit(True).alias("_scored"))
    table = (true_pairs.join(scored, on=["record_id", "record_id_r"], how="left")
             .with_columns(pl.min_horizontal("partner", "partner_r").alias("partner_a"),
                           pl.max_horizontal("partner", "partner_r").alias("partner_b"),
                           blocked.alias("_blocked"), pl.col("_scored").fill_null(False),
                           (pl.col("person_id") == pl.col("person_id_r")).fill_null(False).alias("_linked"))
             .group_by("partner_a", "partner_b").agg(
                 pl.len().alias("true_pairs"), pl.col("_blocked").mean().round(4).alias("blocked_share"),
                 pl.col("_scored").mean().round(4).alias("scored_share"),
                 pl.col("_linked").mean().round(4).alias("linked_share"))
             .sort("partner_a", "partner_b"))
    return table.to_dicts()
