"""Scoring with a trained model: every candidate pair (``score_all``), or only the pairs of new and changed
records (``score_new``), as cilink's pairs frame (``pairs_schema``).

``score_new`` blocks the new records in polars (``cilink.link.candidates``) and, on backends that can
(``Backend.replays_compiled_sql``), replays the scoring SQL Splink compiled once for the model
(``cilink.link.engine.compiled``), in parallel slices; otherwise, or if the replay does not fit, Splink's
``predict_between`` scores them. Both give Splink's own pairs (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from splink import Linker
from splink import __version__ as splink_version

from cilink import parallel
from cilink.config import EngineSettings
from cilink.link import candidates
from cilink.link.comparisons import LinkSpec
from cilink.link.engine import compiled
from cilink.link.engine.backend import Backend, DuckDBBackend, backend_for, quiet_splink, to_polars
from cilink.link.engine.model_io import Model
from cilink.link.engine.settings import UNIQUE_ID, splink_settings


def tf_lookup(model: Model, col: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The frozen term-frequency table of ``col``, plus the values of ``frames`` it has never seen, each
    at the smallest frequency seen in training (a value unseen in training is rare, not average)."""
    tf = model.tf_tables[col]
    rarest = tf[f"tf_{col}"].min() if tf.height else None
    seen = [f.select(pl.col(col).cast(tf.schema[col])) for f in frames if col in f.columns]
    if rarest is None or not seen:
        return tf
    unseen = pl.concat(seen).drop_nulls().unique().join(tf, on=col, how="anti")
    return pl.concat([tf, unseen.with_columns(pl.lit(rarest, dtype=pl.Float64).alias(f"tf_{col}"))]).sort(col)


def _linker(model: Model, backend: Backend, db: Any, inputs: Any, spec: LinkSpec,
            frames: list[pl.DataFrame]) -> Linker:
    """A linker for scoring ``frames``: the spec's rules in this backend's SQL, with the model's trained
    parameters and term frequencies (see ``tf_lookup``).

    Rebuilding the SQL from the spec (instead of replaying the saved SQL) is what makes a model trained on
    DuckDB usable on Spark: only the parameters travel.
    """
    linker = Linker(inputs, splink_settings(spec, db, model), log_level=None, validate_settings=False)
    for col in model.tf_tables:
        tf_sdf = backend.register(db, tf_lookup(model, col, frames), f"tf_lookup_{col}")
        linker.table_management.register_term_frequency_lookup(tf_sdf, col)
    return linker


def _predictions(backend: Backend, db: Any, sdf: Any, model: Model, where: pl.Expr | None = None) -> pl.DataFrame:
    """Splink's scored pairs as polars, only the columns ``_pairs`` reads (and rows matching ``where``)."""
    names = [c["output_column_name"] for c in model.settings["comparisons"]]
    columns = [f"{UNIQUE_ID}_l", f"{UNIQUE_ID}_r", "match_weight", "match_probability",
               *(f"mw_{n}" for n in names), *(f"mw_tf_adj_{n}" for n in names)]
    return backend.predictions(db, sdf, columns, where)


def _pairs(pred: pl.DataFrame, model: Model) -> pl.DataFrame:
    """Scored pairs in cilink's shape: canonical order (record_id_l < record_id_r), weight, probability,
    and per comparison its contribution to the weight (``w_<name>``, log2 Bayes factor incl. term frequency)."""
    names = [c["output_column_name"] for c in model.settings["comparisons"]]
    cols: list[pl.Expr] = [pl.col("match_weight").cast(pl.Float64), pl.col("match_probability").cast(pl.Float64)]
    for n in names:
        w = pl.col(f"mw_{n}").cast(pl.Float64)
        if f"mw_tf_adj_{n}" in pred.columns:
            w = w + pl.col(f"mw_tf_adj_{n}").cast(pl.Float64).fill_null(0.0)
        cols.append(w.alias(f"w_{n}"))
    lo = pl.min_horizontal(f"{UNIQUE_ID}_l", f"{UNIQUE_ID}_r").alias("record_id_l")
    hi = pl.max_horizontal(f"{UNIQUE_ID}_l", f"{UNIQUE_ID}_r").alias("record_id_r")
    return pred.select(lo, hi, *cols).sort("record_id_l", "record_id_r")


def pairs_schema(model: Model) -> pl.Schema:
    """Columns of the frames ``score_all`` and ``score_new`` return."""
    schema: dict[str, pl.DataType] = {"record_id_l": pl.String(), "record_id_r": pl.String(),
                                      "match_weight": pl.Float64(), "match_probability": pl.Float64()}
    for c in model.settings["comparisons"]:
        schema[f"w_{c['output_column_name']}"] = pl.Float64()
    return pl.Schema(schema)


@dataclass
class Scored:
    """Scored pairs at or above the floor, and how many candidate pairs blocking produced."""

    pairs: pl.DataFrame
    candidates: int


def score_all(model: Model, records: pl.DataFrame, spec: LinkSpec, *, min_weight: float,
              engine: EngineSettings) -> Scored:
    """Every candidate pair of ``records`` (by the spec's blocking rules) with match weight ≥ ``min_weight``.

    Example: ``score_all(model, records, spec, min_weight=-5.0, engine=EngineSettings()).pairs``
    """
    if records.height < 2:
        return Scored(pl.DataFrame(schema=pairs_schema(model)), 0)
    backend = backend_for(engine)
    # the backend sees each record's rank in record-id order instead of its id: blocking writes and the
    # scoring joins read 4-byte keys instead of 30-byte strings, and as the order is the same, every pair
    # comes out as with the ids themselves
    keyed = records.select([c for c in spec.columns if c in records.columns]).sort(UNIQUE_ID)
    ids = keyed[UNIQUE_ID]
    keyed = keyed.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias(UNIQUE_ID))
    with quiet_splink():
        db = backend.db_api()
        try:
            sdf = backend.register(db, keyed, "records")
            linker = _linker(model, backend, db, sdf, spec, [records])
            blocked = linker.inference.compute_blocked_pairs_for_predict()  # cached; predict() reuses it
            n_candidates = int(to_polars(linker.misc.query_sql(
                f"select count(*) as n from {blocked.physical_name}", output_type="splink_df"))["n"][0])
            pred = _predictions(backend, db, linker.inference.predict(threshold_match_weight=min_weight,
                                                                      warning_mode="never"), model)
        finally:
            backend.release(db)
    pred = pred.with_columns(ids.gather(pred[f"{UNIQUE_ID}_l"]).alias(f"{UNIQUE_ID}_l"),
                             ids.gather(pred[f"{UNIQUE_ID}_r"]).alias(f"{UNIQUE_ID}_r"))
    pairs = _pairs(pred, model) if pred.height else pl.DataFrame(schema=pairs_schema(model))
    return Scored(pairs, n_candidates)


def _between(model: Model, neighbours: pl.DataFrame, new: pl.DataFrame, spec: LinkSpec,
             backend: Backend) -> tuple[pl.DataFrame, list[str]]:
    """Splink's ``predict_between`` of ``neighbours`` × ``new``, and (where it records them) the SQL it ran."""
    not_self = pl.col(f"{UNIQUE_ID}_l") != pl.col(f"{UNIQUE_ID}_r")
    with quiet_splink():
        db = backend.db_api()
        with backend.recording(db) as statements:
            new_sdf = backend.register(db, new, "new_records")
            # a value's term frequency does not depend on the other records (see tf_lookup), so the lookup
            # needs only the values of the records scored here
            linker = _linker(model, backend, db, new_sdf, spec, [neighbours])
            left = backend.register(db, neighbours, "neighbour_records")
            pred = _predictions(backend, db, linker.inference.predict_between(left, new_sdf, warning_mode="never"),
                                model, not_self)
    return pred.filter(not_self), list(statements)


def prepare_scoring(model: Model, engine: EngineSettings) -> None:
    """Get ready, in the background, for a ``score_new`` that will replay the model's compiled SQL."""
    if backend_for(engine).replays_compiled_sql and model.scoring_sql:
        compiled.warm_up()


def _scoring_key(model: Model, spec: LinkSpec, schema: pl.Schema) -> str:
    return compiled.cache_key(model.settings, spec.fingerprint, splink_version, schema, list(model.tf_tables))


def compile_scoring(model: Model, spec: LinkSpec, records: pl.DataFrame, engine: EngineSettings | None = None) -> bool:
    """Record the SQL Splink runs to score new ``records`` with ``model`` (on empty tables of their schema)
    into ``model.scoring_sql``, unless it is there already for this model; True if it was (re)compiled.
    With ``engine``: nothing is compiled (False) when its backend does not replay compiled SQL (Spark)."""
    if engine is not None and not backend_for(engine).replays_compiled_sql:
        return False
    schema = records.select([c for c in spec.columns if c in records.columns]).schema
    key = _scoring_key(model, spec, schema)
    if model.scoring_sql and model.scoring_sql.get("key") == key:
        return False
    empty = pl.DataFrame(schema=schema)
    _, statements = _between(model, empty, empty, spec, DuckDBBackend())
    model.scoring_sql = {"key": key, "splink_version": splink_version, "statements": statements} \
        if statements else None
    return model.scoring_sql is not None


def save_scoring_sql(model: Model, directory: Path) -> None:
    """Save ``model.scoring_sql`` beside the model (see ``cilink.link.engine.compiled``)."""
    if model.scoring_sql:
        compiled.save(model.scoring_sql, directory)


def score_new(model: Model, records: pl.DataFrame, new_ids: pl.Series, spec: LinkSpec, *, min_weight: float,
              engine: EngineSettings) -> Scored:
    """Pairs involving the records ``new_ids`` only — new × other and new × new — scored as ``score_all``
    would score them; pairs among the other ``records`` are not rescored (Splink's ``predict_between``, or
    on DuckDB its SQL compiled for this model, see ``compile_scoring``)."""
    columns = [c for c in spec.columns if c in records.columns]
    new = records.filter(pl.col(UNIQUE_ID).is_in(new_ids.implode())).select(columns)
    if new.height == 0:
        return Scored(pl.DataFrame(schema=pairs_schema(model)), 0)
    backend = backend_for(engine)
    # left = the records that share a blocking key with a new one (the new ones included), right = the new
    # ones: new × new pairs come out in both orders and each new record is paired with itself; both are
    # dropped
    near = candidates.neighbours(records.select(columns), new, spec)
    cached = model.scoring_sql
    pred = None
    if backend.replays_compiled_sql and cached and cached.get("key") == _scoring_key(model, spec, new.schema):
        tables = {"new_records": new, "neighbour_records": near,
                  **{f"tf_lookup_{col}": tf_lookup(model, col, [near]) for col in model.tf_tables}}
        pred = compiled.replay(cached["statements"], tables, blocked=candidates.blocked_pairs(near, new, spec),
                               parts=parallel.workers())
        if pred is not None:
            pred = pred.filter(pl.col(f"{UNIQUE_ID}_l") != pl.col(f"{UNIQUE_ID}_r"))
    if pred is None:
        pred, _ = _between(model, near, new, spec, backend)
    if pred.height == 0:
        return Scored(pl.DataFrame(schema=pairs_schema(model)), 0)
    pairs = _pairs(pred, model).unique(["record_id_l", "record_id_r"], keep="first", maintain_order=True)  # sorted
    return Scored(pairs.filter(pl.col("match_weight") >= min_weight), pairs.height)
