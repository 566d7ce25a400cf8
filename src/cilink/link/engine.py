"""The Splink adapter — the only module that imports splink (with ``spark_backend``, which it alone uses).

It turns cilink rule specs (``cilink.link.comparisons``) into Splink settings, trains the Fellegi–Sunter
model (prior from deterministic rules, u by seeded random sampling, m by EM), scores pairs (all of them, or
new records against existing ones and within themselves) and saves/loads the model. Tables go in and come
out as polars frames; the SQL backend (embedded DuckDB by default, Spark for scale-out) is chosen here and
nowhere else, from ``[engine] backend`` (Spark's session and Parquet exchange: ``cilink.link.spark_backend``).

Term frequencies are part of the model: they are computed from the training records and frozen with it, so
an incremental run and a full run score any pair identically. Values first seen after training get no
term-frequency adjustment (the level's average weight) until ``cilink link --retrain``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow  # noqa: F401  (imported up front: Splink needs it for every table it registers)
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import Linker, SettingsCreator
from splink import __version__ as splink_version
from splink import block_on as splink_block_on

from cilink import atomic, parallel
from cilink.config import EngineSettings
from cilink.errors import CilinkError, ConfigError
from cilink.link import compiled_scoring, spark_backend
from cilink.link.comparisons import Comparison, Level, LinkSpec
from cilink.link.comparisons import column as column_of

UNIQUE_ID = "record_id"
MODEL_FILE = "model.json"
MODEL_META_FILE = "model_meta.json"
MODEL_TF_FILE = "model_tf.parquet"
#: trained parameters are rounded so floating-point noise in parallel sums never changes a saved model
_SIGNIFICANT = 9
#: smallest m (and u) a level may have — see _regularize
M_FLOOR = 1e-3
U_FLOOR = 1e-7
#: an EM training rule needs at least this many pairs to run
MIN_EM_PAIRS = 50
#: same-surname pairs sharing an address this many times more often than random pairs = households exist
HOUSEHOLD_LIFT = 10.0


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


# --- backend -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_splink() -> Iterator[None]:
    """Keep Splink's own log lines (progress, SQL) out of cilink's output; errors still raise."""
    logger = logging.getLogger("splink")
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        yield
    finally:
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def _db_api(engine: EngineSettings) -> Any:
    """The Splink database API for ``[engine] backend`` — the one place the backend is chosen."""
    if engine.backend == "duckdb":
        from splink import DuckDBAPI

        db = DuckDBAPI()
        db.duckdb_con.execute("SET enable_progress_bar = false")  # cilink renders its own output
        return db
    if engine.backend == "spark":
        return spark_backend.db_api(engine)
    raise ConfigError(f"unknown engine.backend {engine.backend!r}", hint="use duckdb or spark")


def check_backend(engine: EngineSettings) -> None:
    """Fail fast (ConfigError, exit 2, with the install command) if the chosen backend cannot run here."""
    if engine.backend == "spark":
        spark_backend.require_pyspark()


def _register(db_api: Any, frame: pl.DataFrame, name: str) -> Any:
    if spark_backend.is_spark(db_api):  # Spark reads the records from Parquet, not through the driver
        return spark_backend.register(db_api, frame, name)
    return db_api.register(frame.to_arrow(), dataset_display_name=name)


def _predictions(db: Any, sdf: Any, model: Model, where: pl.Expr | None = None) -> pl.DataFrame:
    """Splink's scored pairs as polars, only the columns ``_pairs`` reads (and rows matching ``where``):
    on Spark written as Parquet by the executors and read back with polars, never collected."""
    if not spark_backend.is_spark(db):
        pred = _to_polars(sdf)
        return pred if where is None else pred.filter(where)
    names = [c["output_column_name"] for c in model.settings["comparisons"]]
    columns = [f"{UNIQUE_ID}_l", f"{UNIQUE_ID}_r", "match_weight", "match_probability",
               *(f"mw_{n}" for n in names), *(f"mw_tf_adj_{n}" for n in names)]
    return spark_backend.read_back(db, sdf, columns, where)


def _to_polars(sdf: Any) -> pl.DataFrame:
    if hasattr(sdf, "as_pyarrow_table"):
        try:
            return pl.from_arrow(sdf.as_pyarrow_table())  # type: ignore[return-value]
        except NotImplementedError:
            pass
    return pl.from_pandas(sdf.as_pandas_dataframe())


# --- spec → Splink -----------------------------------------------------------------------------------------


def _dice_sql(col: str, dialect: Any) -> str:
    """The Dice coefficient of two Bloom-filter encodings (Binary columns) as SQL — DuckDB only: Spark SQL
    has no bit count over binary values."""
    if dialect.sql_dialect_str != "duckdb":
        raise ConfigError("comparing encoded identifiers (Dice of Bloom filters) needs the DuckDB backend",
                          hint='set [engine] backend = "duckdb" (or run `cilink link --backend duckdb`)')
    a, b = f"CAST({col}_l AS BIT)", f"CAST({col}_r AS BIT)"
    return f"2 * BIT_COUNT({a} & {b}) / NULLIF(BIT_COUNT({a}) + BIT_COUNT({b}), 0)"


def _level(level: Level, dialect: Any, mu: tuple[Any, Any] = (None, None)) -> Any:
    col = level.columns[0] if level.columns else None
    if level.kind == "null":
        made = cll.NullLevel(col) if len(level.columns) == 1 else cll.Or(*(cll.NullLevel(c) for c in level.columns))
    elif level.kind == "exact":
        made = cll.ExactMatchLevel(col)
        if level.tf:
            made = made.configure(tf_adjustment_column=col)
    elif level.kind == "jaro_winkler":
        made = cll.JaroWinklerLevel(col, level.threshold)
    elif level.kind == "edit_distance":
        made = cll.DamerauLevenshteinLevel(col, int(level.threshold or 1))
    elif level.kind == "array_intersect":
        made = cll.ArrayIntersectLevel(col, min_intersection=int(level.threshold or 1))
    elif level.kind == "swapped":
        made = cll.ColumnsReversedLevel(level.columns[0], level.columns[1], symmetrical=True)
    elif level.kind == "swapped_similar":
        jw, (a, b), t = dialect.jaro_winkler_function_name, level.columns, level.threshold
        made = cll.CustomLevel(f"{jw}({a}_l, {b}_r) >= {t} AND {jw}({b}_l, {a}_r) >= {t}")
    elif level.kind == "date_within":
        made = cll.AbsoluteDateDifferenceLevel(col, input_is_string=False, threshold=int(level.threshold or 0),
                                               metric="day")
    elif level.kind == "either_equals":
        made = cll.Or(cll.LiteralMatchLevel(col, level.value, "string", "left"),
                      cll.LiteralMatchLevel(col, level.value, "string", "right"))
    elif level.kind == "all_of":
        made = cll.And(*(_level(p, dialect) for p in level.parts))
    elif level.kind == "else":
        made = cll.ElseLevel()
    elif level.kind == "dice":
        made = cll.CustomLevel(f"{_dice_sql(col or '', dialect)} >= {level.threshold}")
    elif level.kind == "encoded_null":  # no encoded evidence: both sides have the plaintext, or a side no encoding
        plain, enc = level.columns
        made = cll.CustomLevel(f"({plain}_l IS NOT NULL AND {plain}_r IS NOT NULL) OR {enc}_l IS NULL "
                               f"OR {enc}_r IS NULL").configure(is_null_level=True)
    else:  # pragma: no cover - the Level type lists every kind
        raise ValueError(f"unknown level kind {level.kind}")
    if level.kind == "null" and len(level.columns) > 1:
        made = made.configure(is_null_level=True)
    if level.prior_mu is not None:
        m, u = level.prior_mu
        made = made.configure(m_probability=m, u_probability=u)
        if level.fix_m:
            made = made.configure(fix_m_probability=True)
    if mu[0] is not None and mu[1] is not None:  # trained parameters of a saved model
        made = made.configure(m_probability=mu[0], u_probability=mu[1])
    return made.configure(label_for_charts=str(level.label))


def _comparison(comp: Comparison, dialect: Any, params: list[tuple[Any, Any]] | None = None) -> Any:
    params = params or [(None, None)] * len(comp.levels)
    return cl.CustomComparison(
        comparison_levels=[_level(lv, dialect, mu) for lv, mu in zip(comp.levels, params, strict=True)],
        output_column_name=comp.name,
        comparison_description=comp.description or comp.name,
    )


def _settings(spec: LinkSpec, db: Any, model: Model | None = None) -> SettingsCreator:
    """Splink settings for ``spec`` in this backend's SQL; with ``model``, carrying its trained parameters."""
    params: list[list[tuple[Any, Any]]] = [[(None, None)] * len(c.levels) for c in spec.comparisons]
    extra: dict[str, Any] = {}
    if model is not None:
        params = _parameters(model)
        if [len(c.levels) for c in spec.comparisons] != [len(p) for p in params]:
            raise LinkEngineError("the saved model does not fit the comparisons in force",
                                  hint="run `cilink link --retrain`")
        extra["probability_two_random_records_match"] = model.settings["probability_two_random_records_match"]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIQUE_ID,
        comparisons=[_comparison(c, db.sql_dialect, p) for c, p in zip(spec.comparisons, params, strict=True)],
        **extra,
        blocking_rules_to_generate_predictions=[splink_block_on(*r.columns) for r in spec.blocking_rules],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=True,
        max_iterations=25,
        em_convergence=0.0001,
    )


def _tf_columns(settings: dict[str, Any]) -> list[str]:
    cols: list[str] = []
    for comp in settings["comparisons"]:
        for lv in comp["comparison_levels"]:
            c = lv.get("tf_adjustment_column")
            if c and c not in cols:
                cols.append(c)
    return cols


def _round(x: Any) -> Any:
    if isinstance(x, float) and x != 0 and math.isfinite(x):
        return round(x, _SIGNIFICANT - 1 - math.floor(math.log10(abs(x))))
    return x


def _rounded_settings(settings: dict[str, Any]) -> dict[str, Any]:
    settings = json.loads(json.dumps(settings))
    settings["probability_two_random_records_match"] = _round(settings["probability_two_random_records_match"])
    for comp in settings["comparisons"]:
        for lv in comp["comparison_levels"]:
            for k in ("m_probability", "u_probability"):
                if k in lv:
                    lv[k] = _round(lv[k])
    return settings


# --- training ----------------------------------------------------------------------------------------------


def _tf_from(records: pl.DataFrame, col: str) -> pl.DataFrame:
    """Term frequencies of ``col`` computed directly (as Splink does: count / non-null count)."""
    values = records.select(pl.col(col)).drop_nulls()
    if values.height == 0:
        return pl.DataFrame(schema={col: pl.String, f"tf_{col}": pl.Float64})
    return (values.group_by(col).len().with_columns((pl.col("len") / values.height).alias(f"tf_{col}"))
            .select(col, f"tf_{col}").sort(col))


def _training_rule(rule: Any) -> Any:
    """A cilink training rule as Splink SQL (``apart`` fields must differ or be missing)."""
    if not rule.apart:
        return splink_block_on(*rule.columns)
    # unquoted: cilink's column names are plain lower-case identifiers, and "x" is a string literal in Spark SQL
    agree = " AND ".join(f"l.{c} = r.{c}" for c in rule.columns)
    apart = " AND ".join(f"(l.{c} IS NULL OR r.{c} IS NULL OR l.{c} <> r.{c})"
                         for c in (column_of(a) for a in rule.apart))
    return f"{agree} AND {apart}"


def _pairs_on(sdf: Any, rule: Any) -> int:
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    counted = count_comparisons_from_blocking_rules(
        sdf, blocking_rules=[rule], link_type="dedupe_only", unique_id_column_name=UNIQUE_ID,
        record_sample_proportion=1.0,
    )
    return int(counted[0]["marginal_comparison_count"])


def _household_u(db: Any, records: pl.DataFrame, spec: LinkSpec, max_pairs: float,
                 seed: int) -> dict[str, list[float | None]]:
    """u of each household comparison's levels among pairs that share a last name but not first name or
    birth date — nearly all non-matches, and the ones that matter: household members.

    Agreement on address is not independent of agreement on surname (families share both), so the usual
    u from random pairs makes an address look like strong evidence of one person. Measured among
    same-surname pairs it shows what it is worth where it is used: little where households dominate
    (school and HMIS data), much where they do not.
    """
    household = [c for c in spec.comparisons if c.role == "household"]
    named = records.filter(pl.col("last_name").is_not_null())
    sizes = named.group_by("last_name").len()["len"]
    total = float((sizes * (sizes - 1) / 2).sum()) if sizes.len() else 0.0
    if not household or total < MIN_EM_PAIRS:
        return {}
    fraction = min(1.0, math.sqrt(max_pairs / total))
    if fraction < 1.0:  # deterministic sample of records (hash of the record id and the seed)
        named = named.filter(pl.col(UNIQUE_ID).hash(seed) % 1_000_000 < int(fraction * 1_000_000))
    creator = SettingsCreator(
        link_type="dedupe_only", unique_id_column_name=UNIQUE_ID,
        comparisons=[_comparison(c, db.sql_dialect) for c in household],
        blocking_rules_to_generate_predictions=[
            "l.last_name = r.last_name AND l.first_name <> r.first_name "
            "AND l._cilink_dob_digits <> r._cilink_dob_digits"
        ],
        retain_matching_columns=True,
    )
    linker = Linker(_register(db, named, "household_sample"), creator, log_level=None)
    vectors = _to_polars(linker.inference.predict(warning_mode="never"))
    out: dict[str, list[float | None]] = {}
    for comp in household:
        gamma = vectors[f"gamma_{comp.name}"]
        observed = gamma.filter(gamma >= 0)
        n_levels = sum(1 for lv in comp.levels if lv.kind != "null")
        if observed.len() < MIN_EM_PAIRS:
            continue
        counts = observed.value_counts()
        by_value = dict(zip(counts[gamma.name].to_list(), counts["count"].to_list(), strict=True))
        # Splink numbers non-null levels from n-1 (first) down to 0 (last)
        out[comp.name] = [max(by_value.get(n_levels - 1 - i, 0), 1) / observed.len() for i in range(n_levels)]
    return out


def train(records: pl.DataFrame, spec: LinkSpec, *, seed: int, max_pairs_u: float,
          max_pairs_em: float, engine: EngineSettings) -> Model:
    """Train a model on ``records`` (linkable records): the prior match probability from the spec's
    deterministic rules, u by random sampling with ``seed``, m by EM on each training rule.

    Deterministic for the same inputs. Data too thin for a step keeps the spec's priors for it: a rule
    with fewer than ``MIN_EM_PAIRS`` pairs is skipped, and without deterministic pairs the prior match
    probability falls back to 1 / records. What happened is recorded in ``model.meta["training"]``.
    """
    notes: list[str] = []
    fallback_prior = 1.0 / max(records.height, 2)
    if records.height < 2:  # nothing to sample or train on: the priors, as they are
        with _quiet_splink():
            db = _db_api(engine)
            creator = _settings(spec, db)
            creator.probability_two_random_records_match = fallback_prior
            settings = _rounded_settings(creator.get_settings(db.sql_dialect.sql_dialect_str).as_dict())
        settings.pop("linker_uid", None)
        tf_tables = {col: _tf_from(records, col) for col in _tf_columns(settings)}
        return Model(settings=settings, tf_tables=tf_tables,
                     meta={"spec_fingerprint": spec.fingerprint, "splink_version": splink_version, "seed": seed,
                           "trained_on_records": records.height, "training": ["too few records: priors only"]})
    with _quiet_splink():
        db = _db_api(engine)
        sdf = _register(db, records, "records")
        creator = _settings(spec, db)
        creator.probability_two_random_records_match = fallback_prior
        linker = Linker(sdf, creator, log_level=None)
        deterministic = [splink_block_on(*r.columns) for r in spec.deterministic_rules]
        if sum(_pairs_on(sdf, r) for r in deterministic) > 0:
            linker.training.estimate_probability_two_random_records_match(
                deterministic, recall=spec.deterministic_recall)
        settings = linker.misc.save_model_to_json()
        if not 0 < settings["probability_two_random_records_match"] < 1:
            notes.append("prior: no deterministic pairs; used 1/records")
            creator.probability_two_random_records_match = fallback_prior
            linker = Linker(sdf, creator, log_level=None)
        linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs_u, seed=seed)
        household_u = _household_u(db, records, spec, max_pairs_u, seed)
        households = _households(linker.misc.save_model_to_json(), household_u)
        notes.append(households["note"])
        if household_u:
            settings = linker.misc.save_model_to_json()
            for comp in settings["comparisons"]:
                levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
                for lv, u in zip(levels, household_u.get(comp["output_column_name"], []), strict=False):
                    if u is not None:
                        lv["u_probability"] = u
            linker = Linker(sdf, settings, log_level=None)
            notes.append("household u: from pairs sharing a last name (" + ", ".join(household_u) + ")")
        for rule in spec.training_rules:
            splink_rule = _training_rule(rule)
            n = _pairs_on(sdf, splink_rule)
            if n < MIN_EM_PAIRS:  # Splink's EM on an empty rule also corrupts the linker's settings
                notes.append(f"EM on '{rule}' skipped: {n} pair(s)")
                continue
            before = linker.misc.save_model_to_json()
            try:
                # a sample of a big rule's pairs trains m as well (Splink samples records by a hash, so
                # the sample is deterministic); smaller rules use every pair, as before
                linker.training.estimate_parameters_using_expectation_maximisation(
                    splink_rule, estimate_without_term_frequencies=True,
                    max_pairs=max_pairs_em if n > max_pairs_em else None,
                )
            except ValueError as e:
                # Splink refuses an m or u that underflows to 0 (a level never observed among this rule's
                # pairs) and leaves the linker half-updated: restore the model as it was and skip the rule.
                if "underflow" not in str(e):
                    raise
                linker = Linker(sdf, before, log_level=None)
                notes.append(f"EM on '{rule}' skipped: a level was never observed among its {n} pairs")
                continue
            notes.append(f"EM on '{rule}': {n} pairs" + (f", sampled to ~{max_pairs_em:.0f}" if n > max_pairs_em
                                                          else ""))
        settings = _rounded_settings(linker.misc.save_model_to_json())
        settings.pop("linker_uid", None)  # random per linker; the saved model must depend on its inputs only
        tf_tables = {}
        for col in _tf_columns(settings):
            tf = _to_polars(linker.table_management.compute_tf_table(col))
            tf_tables[col] = tf.select(
                col, pl.col(f"tf_{col}").map_elements(_round, return_dtype=pl.Float64)
            ).sort(col)
    _regularize(settings)
    return Model(settings=settings, tf_tables=tf_tables,
                 meta={"spec_fingerprint": spec.fingerprint, "splink_version": splink_version, "seed": seed,
                       "trained_on_records": records.height, "training": notes,
                       "households_present": households["present"], "household_lift": households["lift"]})


def _households(random_settings: dict[str, Any], household_u: dict[str, list[float | None]]) -> dict[str, Any]:
    """Do the records come in households? Compare each household comparison's top level ("same street")
    among same-surname pairs (``household_u``) with the same level among random pairs.

    Where families share both a surname and an address (school and HMIS data), same-surname pairs agree on
    the address hundreds of times more often than random pairs do; where they do not (FEBRL-like data), the
    two rates are close. The lift decides how strict the address guard is (``cilink.link.decisions``). Too
    few same-surname pairs to measure means "assume households" — the strict guard.
    """
    lift: dict[str, float] = {}
    for comp in random_settings["comparisons"]:
        measured = household_u.get(comp["output_column_name"])
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        if not measured or measured[0] is None or not levels or not levels[0].get("u_probability"):
            continue
        lift[comp["output_column_name"]] = round(measured[0] / levels[0]["u_probability"], 2)
    present = not lift or max(lift.values()) >= HOUSEHOLD_LIFT
    shown = ", ".join(f"{name} ×{x:g}" for name, x in sorted(lift.items())) or "not measurable"
    return {"present": present, "lift": lift,
            "note": f"households {'present' if present else 'absent'}: same-surname address lift {shown}"}


def _regularize(settings: dict[str, Any]) -> None:
    """Keep every level's m at least ``M_FLOOR`` (then renormalize) and give untrained levels m = u.

    EM drives m to ~0 for levels it never sees among matches (e.g. "same birth year" on clean data), which
    would make one disagreement veto any pair (weights of −50 and below); a floor bounds that veto.
    """
    for comp in settings["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        if any(lv.get("fix_m_probability") for lv in levels):
            continue  # m fixed by design
        for lv in levels:
            u = lv.get("u_probability")
            if u is None or not math.isfinite(u) or u <= 0:
                lv["u_probability"] = u = U_FLOOR
            m = lv.get("m_probability")
            if m is None or not math.isfinite(m):
                lv["m_probability"] = u
        floored = [max(lv["m_probability"], M_FLOOR) for lv in levels]
        total = sum(floored)
        for lv, m in zip(levels, floored, strict=True):
            lv["m_probability"] = _round(m / total)


# --- scoring -----------------------------------------------------------------------------------------------


def _parameters(model: Model) -> list[list[tuple[Any, Any]]]:
    return [[(lv.get("m_probability"), lv.get("u_probability")) for lv in comp["comparison_levels"]]
            for comp in model.settings["comparisons"]]


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


def _linker(model: Model, db: Any, inputs: Any, spec: LinkSpec, frames: list[pl.DataFrame]) -> Linker:
    """A linker for scoring ``frames``: the spec's rules in this backend's SQL, with the model's trained
    parameters and term frequencies (see ``tf_lookup``).

    Rebuilding the SQL from the spec (instead of replaying the saved SQL) is what makes a model trained on
    DuckDB usable on Spark: only the parameters travel.
    """
    linker = Linker(inputs, _settings(spec, db, model), log_level=None, validate_settings=False)
    for col in model.tf_tables:
        tf_sdf = _register(db, tf_lookup(model, col, frames), f"tf_lookup_{col}")
        linker.table_management.register_term_frequency_lookup(tf_sdf, col)
    return linker


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
    """Every candidate pair of ``records`` (by the spec's blocking rules) with match weight ≥ ``min_weight``."""
    if records.height < 2:
        return Scored(pl.DataFrame(schema=pairs_schema(model)), 0)
    with _quiet_splink():
        db = _db_api(engine)
        linker = _linker(model, db, _register(db, records.select([c for c in spec.columns if c in records.columns]),
                                              "records"), spec, [records])
        blocked = linker.inference.compute_blocked_pairs_for_predict()  # cached; predict() reuses it
        candidates = int(_to_polars(linker.misc.query_sql(
            f"select count(*) as n from {blocked.physical_name}", output_type="splink_df"))["n"][0])
        pred = _predictions(db, linker.inference.predict(threshold_match_weight=min_weight, warning_mode="never"),
                            model)
    pairs = _pairs(pred, model) if pred.height else pl.DataFrame(schema=pairs_schema(model))
    return Scored(pairs, candidates)


def _neighbours(records: pl.DataFrame, new: pl.DataFrame, spec: LinkSpec) -> pl.DataFrame:
    """The records sharing a blocking key with some new record (the new ones among them) — the only
    records a new one can be paired with, so the backend need not see the others.

    Keys are compared by hash (one 64-bit hash per rule, null when a key column is null, as SQL equality
    never holds on null): a collision only adds a record the backend's exact blocking then leaves unpaired.
    """
    rules = [list(r.columns) for r in spec.blocking_rules]
    if not rules:
        return new
    mix = pl.lit(0x100000001B3, dtype=pl.UInt64)  # each column is hashed once, then the rule's hashes mixed

    def keys(frame: pl.DataFrame) -> pl.DataFrame:
        used = sorted({c for cols in rules for c in cols})
        hashes = frame.select(*(pl.col(c).hash().alias(c) for c in used),
                              *(pl.col(c).is_null().alias(f"_null_{c}") for c in used))
        return hashes.select(
            pl.when(~pl.any_horizontal(pl.col(f"_null_{c}") for c in cols))
            .then(functools.reduce(lambda key, c: key * mix + pl.col(c), cols[1:], pl.col(cols[0])))
            .alias(f"_k{i}") for i, cols in enumerate(rules))

    wanted = keys(new)
    hit = pl.any_horizontal(pl.col(f"_k{i}").is_in(wanted[f"_k{i}"].drop_nulls().implode())
                            for i in range(len(rules)))
    return records.filter(keys(records).select(hit).to_series())


def _blocked_pairs(neighbours: pl.DataFrame, new: pl.DataFrame, spec: LinkSpec) -> pl.DataFrame:
    """The candidate pairs Splink's blocking SQL makes for ``predict_between(neighbours, new)``: every
    (neighbour, new) pair agreeing on all the columns of some blocking rule (nulls never agree), once, with
    the index of the first such rule as ``match_key`` — less what the caller drops from Splink's result
    anyway: each new record paired with itself, and the second order of a pair of two new records (the one
    kept has the smaller id on the left, as in a full run)."""
    hits = [
        neighbours.lazy().select(pl.col(UNIQUE_ID).alias("join_key_l"), *cols).drop_nulls(cols)
        .join(new.lazy().select(pl.col(UNIQUE_ID).alias("join_key_r"), *cols).drop_nulls(cols), on=cols)
        .select("join_key_l", "join_key_r", pl.lit(i, dtype=pl.Int32).alias("rule"))
        for i, cols in enumerate(list(r.columns) for r in spec.blocking_rules)
    ]
    schema = {"match_key": pl.String, "join_key_l": pl.String, "join_key_r": pl.String}
    if not hits:
        return pl.DataFrame(schema=schema)
    both_new = pl.col("join_key_l").is_in(new[UNIQUE_ID].implode())
    return (pl.concat(hits).filter(~both_new | (pl.col("join_key_l") < pl.col("join_key_r")))
            .group_by("join_key_l", "join_key_r").agg(pl.col("rule").min())
            .select(pl.col("rule").cast(pl.String).alias("match_key"), "join_key_l", "join_key_r")
            .sort("join_key_r", "join_key_l").collect())


def _between(model: Model, neighbours: pl.DataFrame, new: pl.DataFrame, spec: LinkSpec,
             engine: EngineSettings) -> tuple[pl.DataFrame, list[str]]:
    """Splink's ``predict_between`` of ``neighbours`` × ``new``, and (on DuckDB) the SQL it ran."""
    not_self = pl.col(f"{UNIQUE_ID}_l") != pl.col(f"{UNIQUE_ID}_r")
    with _quiet_splink():
        db = _db_api(engine)
        recorder = contextlib.nullcontext([]) if spark_backend.is_spark(db) else compiled_scoring.recording(db)
        with recorder as statements:
            new_sdf = _register(db, new, "new_records")
            # a value's term frequency does not depend on the other records (see tf_lookup), so the lookup
            # needs only the values of the records scored here
            linker = _linker(model, db, new_sdf, spec, [neighbours])
            left = _register(db, neighbours, "neighbour_records")
            pred = _predictions(db, linker.inference.predict_between(left, new_sdf, warning_mode="never"), model,
                                not_self)
    return pred.filter(not_self), list(statements)


def prepare_scoring(model: Model, engine: EngineSettings) -> None:
    """Get ready, in the background, for a ``score_new`` that will replay the model's compiled SQL."""
    if engine.backend == "duckdb" and model.scoring_sql:
        compiled_scoring.warm_up()


def _scoring_key(model: Model, spec: LinkSpec, schema: pl.Schema) -> str:
    return compiled_scoring.cache_key(model.settings, spec.fingerprint, splink_version, schema,
                                      list(model.tf_tables))


def compile_scoring(model: Model, spec: LinkSpec, records: pl.DataFrame) -> bool:
    """Record the SQL Splink runs to score new ``records`` with ``model`` (on empty tables of their schema)
    into ``model.scoring_sql``, unless it is there already for this model; True if it was (re)compiled."""
    schema = records.select([c for c in spec.columns if c in records.columns]).schema
    key = _scoring_key(model, spec, schema)
    if model.scoring_sql and model.scoring_sql.get("key") == key:
        return False
    empty = pl.DataFrame(schema=schema)
    _, statements = _between(model, empty, empty, spec, EngineSettings(backend="duckdb"))
    model.scoring_sql = {"key": key, "splink_version": splink_version, "statements": statements} \
        if statements else None
    return model.scoring_sql is not None


def save_scoring_sql(model: Model, directory: Path) -> None:
    """Save ``model.scoring_sql`` beside the model (see ``cilink.link.compiled_scoring``)."""
    if model.scoring_sql:
        compiled_scoring.save(model.scoring_sql, directory)


def score_new(model: Model, records: pl.DataFrame, new_ids: pl.Series, spec: LinkSpec, *, min_weight: float,
              engine: EngineSettings) -> Scored:
    """Pairs involving the records ``new_ids`` only — new × other and new × new — scored as ``score_all``
    would score them; pairs among the other ``records`` are not rescored (Splink's ``predict_between``, or
    on DuckDB its SQL compiled for this model, see ``compile_scoring``)."""
    columns = [c for c in spec.columns if c in records.columns]
    new = records.filter(pl.col(UNIQUE_ID).is_in(new_ids.implode())).select(columns)
    if new.height == 0:
        return Scored(pl.DataFrame(schema=pairs_schema(model)), 0)
    # left = the records that share a blocking key with a new one (the new ones included), right = the new
    # ones: new × new pairs come out in both orders and each new record is paired with itself; both are
    # dropped
    neighbours = _neighbours(records.select(columns), new, spec)
    compiled = model.scoring_sql
    pred = None
    if engine.backend == "duckdb" and compiled and compiled.get("key") == _scoring_key(model, spec, new.schema):
        tables = {"new_records": new, "neighbour_records": neighbours,
                  **{f"tf_lookup_{col}": tf_lookup(model, col, [neighbours]) for col in model.tf_tables}}
        pred = compiled_scoring.replay(compiled["statements"], tables, blocked=_blocked_pairs(neighbours, new, spec),
                                       parts=parallel.workers())
        if pred is not None:
            pred = pred.filter(pl.col(f"{UNIQUE_ID}_l") != pl.col(f"{UNIQUE_ID}_r"))
    if pred is None:
        pred, _ = _between(model, neighbours, new, spec, engine)
    if pred.height == 0:
        return Scored(pl.DataFrame(schema=pairs_schema(model)), 0)
    pairs = _pairs(pred, model).unique(["record_id_l", "record_id_r"], keep="first", maintain_order=True)  # sorted
    return Scored(pairs.filter(pl.col("match_weight") >= min_weight), pairs.height)


# --- the model on disk -------------------------------------------------------------------------------------


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
    """The saved model in ``directory``, or None if there is none."""
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
        for col in _tf_columns(settings):
            part = tf.filter(pl.col("column") == col)
            tf_tables[col] = part.select(pl.col("value").alias(col), pl.col("tf").alias(f"tf_{col}"))
    return Model(settings=settings, tf_tables=tf_tables, meta=meta, scoring_sql=compiled_scoring.load(directory))


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
