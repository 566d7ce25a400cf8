"""A trained model — Splink settings with m/u/prior, frozen term frequencies, provenance — and its files.

``model.json`` is Splink's own format (loadable by Splink), ``model_meta.json`` cilink's provenance and
training notes, ``model_tf.parquet`` the term-frequency tables (names: identifiable, restricted zone) and,
beside them, the compiled scoring SQL (``cilink.link.engine.compiled``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cilink import atomic
from cilink.errors import CilinkError
from cilink.link.comparisons import Comparison
from cilink.link.engine import compiled

MODEL_FILE = "model.json"
MODEL_META_FILE = "model_meta.json"
MODEL_TF_FILE = "model_tf.parquet"


class LinkEngineError(CilinkError):
    """The linkage engine failed (exit 1); the message says which step."""


@dataclass
class Model:
    """A trained model: Splink settings with m/u/prior, frozen term-frequency tables, and provenance."""

    settings: dict[str, Any]
    tf_tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: Splink's scoring SQL for incremental runs, compiled once (``compile_scoring``)
    scoring_sql: dict[str, Any] | None = None

    def conflict_weight(self, comparison: Comparison) -> float | None:
        """The highest weight among ``comparison``'s levels that mark an outright disagreement
        (``Level.conflict``): a pair whose weight for it is at most this disagrees outright. None when the
        model has no such comparison or level."""
        for comp in self.settings["comparisons"]:
            if comp["output_column_name"] != comparison.name:
                continue
            levels = comp["comparison_levels"]
            weights = [math.log2(lv["m_probability"] / lv["u_probability"])
                       for spec_level, lv in zip(comparison.levels, levels, strict=False)
                       if spec_level.conflict and lv.get("m_probability") and lv.get("u_probability")]
            return max(weights) if weights else None
        return None

    @property
    def prior_weight(self) -> float:
        """log2 prior odds that two random records match."""
        p = float(self.settings["probability_two_random_records_match"])
        return math.log2(p / (1 - p))


@dataclass(frozen=True)
class LevelWeight:
    """One row of the model table: a comparison level with its m, u and match weight (log2 m/u)."""

    comparison: str
    level: str
    m: float | None
    u: float | None
    weight: float | None
    tf: bool


def tf_columns(settings: dict[str, Any]) -> list[str]:
    """The columns whose term frequencies adjust some level of the Splink ``settings``."""
    cols: list[str] = []
    for comp in settings["comparisons"]:
        for lv in comp["comparison_levels"]:
            c = lv.get("tf_adjustment_column")
            if c and c not in cols:
                cols.append(c)
    return cols


def parameters(model: Model) -> list[list[tuple[Any, Any]]]:
    """The trained (m, u) of every level, comparison by comparison."""
    return [[(lv.get("m_probability"), lv.get("u_probability")) for lv in comp["comparison_levels"]]
            for comp in model.settings["comparisons"]]


def save_model(model: Model, directory: Path) -> None:
    """Write model.json (Splink's own format, loadable by Splink), model_meta.json and the TF tables."""
    atomic.write_text(directory / MODEL_FILE, json.dumps(model.settings, indent=2, sort_keys=True) + "\n")
    atomic.write_text(directory / MODEL_META_FILE, json.dumps(model.meta, indent=2, sort_keys=True) + "\n")
    tf = pl.concat(
        [t.rename({col: "value", f"tf_{col}": "tf"}).with_columns(pl.lit(col).alias("column"))
         .select("column", "value", "tf") for col, t in sorted(model.tf_tables.items())],
        how="vertical_relaxed",
    ) if model.tf_tables else pl.DataFrame(schema={"column": pl.String, "value": pl.String, "tf": pl.Float64})
    atomic.write_parquet(directory / MODEL_TF_FILE, tf)


def load_model(directory: Path) -> Model | None:
    """The saved model in ``directory``, or None if there is none.

    Example: ``load_model(ws.link_dir).meta["trained_at"]``
    """
    path = directory / MODEL_FILE
    if not path.is_file():
        return None
    settings = json.loads(path.read_text(encoding="utf-8"))
    meta_path = directory / MODEL_META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    tf_tables: dict[str, pl.DataFrame] = {}
    tf_path = directory / MODEL_TF_FILE
    if tf_path.is_file():
        tf = pl.read_parquet(tf_path)
        for col in tf_columns(settings):
            part = tf.filter(pl.col("column") == col)
            tf_tables[col] = part.select(pl.col("value").alias(col), pl.col("tf").alias(f"tf_{col}"))
    return Model(settings=settings, tf_tables=tf_tables, meta=meta, scoring_sql=compiled.load(directory))


def model_weights(model: Model) -> list[LevelWeight]:
    """The model as a table: every comparison level with m, u and match weight (null levels carry none)."""
    rows = [LevelWeight("(prior)", "two random records match",
                        float(model.settings["probability_two_random_records_match"]), None,
                        round(model.prior_weight, 2), False)]
    for comp in model.settings["comparisons"]:
        for lv in comp["comparison_levels"]:
            label = lv.get("label_for_charts") or lv["sql_condition"]
            if lv.get("is_null_level"):
                rows.append(LevelWeight(comp["output_column_name"], label, None, None, None, False))
                continue
            m, u = lv.get("m_probability"), lv.get("u_probability")
            w = round(math.log2(m / u), 2) if m and u else None
            rows.append(LevelWeight(comp["output_column_name"], label, m, u, w, bool(lv.get("tf_adjustment_column"))))
    return rows
