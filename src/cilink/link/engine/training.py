"""Training the Fellegi–Sunter model: the prior match probability from the spec's deterministic rules, u by
seeded random sampling (household comparisons: among same-surname pairs), m by EM on each training rule.

Parameters are rounded (``_SIGNIFICANT`` digits) so floating-point noise in parallel sums never changes a
saved model, and regularized (``M_FLOOR``) so one unseen level cannot veto a pair. Term frequencies are
computed from the training records and frozen with the model: an incremental run and a full run score any
pair identically.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import polars as pl
from splink import Linker, SettingsCreator
from splink import __version__ as splink_version
from splink import block_on as splink_block_on

from cilink.config import EngineSettings
from cilink.link.comparisons import LinkSpec
from cilink.link.comparisons import column as column_of
from cilink.link.engine.backend import Backend, backend_for, quiet_splink, to_polars
from cilink.link.engine.model_io import Model, tf_columns
from cilink.link.engine.settings import UNIQUE_ID, splink_comparison, splink_settings

#: trained parameters are rounded so floating-point noise in parallel sums never changes a saved model
_SIGNIFICANT = 9
#: smallest m (and u) a level may have — see _regularize
M_FLOOR = 1e-3
U_FLOOR = 1e-7
#: an EM training rule needs at least this many pairs to run
MIN_EM_PAIRS = 50
#: same-surname pairs sharing an address this many times more often than random pairs = households exist
HOUSEHOLD_LIFT = 10.0


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


def _agreeing_pairs(frame: pl.DataFrame, keys: list[str]) -> float:
    """Pairs of ``frame``'s records that agree on every one of ``keys`` (none of them missing), from group
    sizes. Grouped by one 64-bit hash of the keys, not by the text columns (3× faster at 1M records); a
    collision among a million groups (odds ~1e-8) would move the count by one group's pairs."""
    if frame.height == 0:
        return 0.0
    key = frame.drop_nulls(keys).select(pl.struct(keys).hash(0).alias("key"))
    sizes = key.group_by("key").len()["len"].cast(pl.Float64)
    return float((sizes * (sizes - 1) / 2).sum())


def _rule_pairs(records: pl.DataFrame, rule: Any) -> int | None:
    """Pairs of a training ``rule`` (agree on its columns, not on its ``apart`` ones), counted from group
    sizes by inclusion and exclusion — Splink's count joins them (1.7 s for the 15.8M birth-date pairs at 1M
    people, this 0.3 s). None when a column is not in ``records``."""
    agree = list(rule.columns)
    apart = [column_of(a) for a in rule.apart]
    if not set(agree + apart) <= set(records.columns):
        return None
    total = 0.0
    for k in range(len(apart) + 1):
        for subset in itertools.combinations(apart, k):
            total += (-1) ** k * _agreeing_pairs(records, [*agree, *subset])
    return round(total)


def _pairs_on(sdf: Any, rule: Any) -> int:
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    counted = count_comparisons_from_blocking_rules(
        sdf, blocking_rules=[rule], link_type="dedupe_only", unique_id_column_name=UNIQUE_ID,
        record_sample_proportion=1.0,
    )
    return int(counted[0]["marginal_comparison_count"])


def _household_u(backend: Backend, db: Any, records: pl.DataFrame, spec: LinkSpec, max_pairs: float,
                 seed: int) -> dict[str, list[float | None]]:
    """u of each household comparison's levels among pairs that share a last name but not first name or
    birth date — nearly all non-matches, and the ones that matter: household members.

    Agreement on address is not independent of agreement on surname (families share both), so the usual
    u from random pairs makes an address look like strong evidence of one person. Measured among
    same-surname pairs it shows what it is worth where it is used: little where households dominate
    (school and HMIS data), much where they do not.
    """
    household = [c for c in spec.comparisons if c.role == "household"]
    # the blocking rule below: same last name, first names and birth-date digits both present and different
    named = records.filter(pl.col("last_name").is_not_null() & pl.col("first_name").is_not_null()
                           & pl.col("_cilink_dob_digits").is_not_null())
    total = _same_surname_pairs(named, [])
    if not household or total < MIN_EM_PAIRS:
        return {}
    fraction = min(1.0, math.sqrt(max_pairs / total))
    sample = named
    if fraction < 1.0:  # deterministic sample of records (hash of the record id and the seed)
        sample = named.filter(pl.col(UNIQUE_ID).hash(seed) % 1_000_000 < int(fraction * 1_000_000))
    creator = SettingsCreator(
        link_type="dedupe_only", unique_id_column_name=UNIQUE_ID,
        comparisons=[splink_comparison(c, db.sql_dialect) for c in household],
        blocking_rules_to_generate_predictions=[
            "l.last_name = r.last_name AND l.first_name <> r.first_name "
            "AND l._cilink_dob_digits <> r._cilink_dob_digits"
        ],
        retain_matching_columns=True,
    )
    linker = Linker(backend.register(db, sample, "household_sample"), creator, log_level=None)
    vectors = to_polars(linker.inference.predict(warning_mode="never"))
    out: dict[str, list[float | None]] = {}
    for comp in household:
        levels = [lv for lv in comp.levels if lv.kind != "null"]
        gamma = vectors[f"gamma_{comp.name}"]
        observed = gamma.filter(gamma >= 0)
        # Splink numbers non-null levels from n-1 (first) down to 0 (last)
        counts = dict(zip(*observed.value_counts().to_dict(as_series=False).values(), strict=True))
        sampled = [float(counts.get(len(levels) - 1 - i, 0)) for i in range(len(levels))]
        exact = _exact_level_counts(named, comp, levels)
        if exact is not None:
            n_obs, n_exact = exact
            # a sample of records keeps a pair only if it keeps both records, so a household's few pairs
            # vanish from it: the exact-address pairs are counted over all records instead, and the sample
            # only splits the rest between the other levels
            rest = sum(sampled[1:])
            sampled = [n_exact, *((n_obs - n_exact) * x / rest if rest else 0.0 for x in sampled[1:])]
            if not rest:
                sampled[-1] = n_obs - n_exact
        n = sum(sampled)
        if n < MIN_EM_PAIRS:
            continue
        out[comp.name] = [max(x, 1.0) / n for x in sampled]
    return out


def _same_surname_pairs(named: pl.DataFrame, also: list[str]) -> float:
    """Pairs of ``named`` records (all with last name, first name and birth date) that agree on the last
    name and on ``also`` but differ in first name and birth date — counted from group sizes (inclusion and
    exclusion), not by forming the pairs."""
    def pairs(keys: list[str]) -> float:
        return _agreeing_pairs(named, keys)

    base = ["last_name", *also]
    return (pairs(base) - pairs([*base, "first_name"]) - pairs([*base, "_cilink_dob_digits"])
            + pairs([*base, "first_name", "_cilink_dob_digits"]))


def _exact_column(levels: list[Any]) -> str | None:
    """The column whose plain equality is the first of ``levels`` (non-null levels), else None."""
    first = levels[0] if levels else None
    return first.columns[0] if first is not None and first.kind == "exact" and len(first.columns) == 1 else None


def _exact_level_counts(named: pl.DataFrame, comp: Any, levels: list[Any]) -> tuple[float, float] | None:
    """(pairs of the household rule where the comparison is observed, pairs at its first level) when that
    level is plain equality of one column, counted exactly; None otherwise."""
    col = _exact_column(levels)
    if col is None:
        return None
    present = named.filter(pl.col(col).is_not_null())
    return _same_surname_pairs(present, []), _same_surname_pairs(present, [col])


def train(records: pl.DataFrame, spec: LinkSpec, *, seed: int, max_pairs_u: float,
          max_pairs_em: float, engine: EngineSettings) -> Model:
    """Train a model on ``records`` (linkable records): the prior match probability from the spec's
    deterministic rules, u by random sampling with ``seed``, m by EM on each training rule.

    Deterministic for the same inputs. Data too thin for a step keeps the spec's priors for it: a rule
    with fewer than ``MIN_EM_PAIRS`` pairs is skipped, and without deterministic pairs the prior match
    probability falls back to 1 / records. What happened is recorded in ``model.meta["training"]``.
    """
    backend = backend_for(engine)
    notes: list[str] = []
    fallback_prior = 1.0 / max(records.height, 2)
    if records.height < 2:  # nothing to sample or train on: the priors, as they are
        with quiet_splink():
            db = backend.db_api()
            creator = splink_settings(spec, db)
            creator.probability_two_random_records_match = fallback_prior
            settings = _rounded_settings(creator.get_settings(db.sql_dialect.sql_dialect_str).as_dict())
        settings.pop("linker_uid", None)
        tf_tables = {col: _tf_from(records, col) for col in tf_columns(settings)}
        return Model(settings=settings, tf_tables=tf_tables,
                     meta={"spec_fingerprint": spec.fingerprint, "splink_version": splink_version, "seed": seed,
                           "trained_on_records": records.height, "training": ["too few records: priors only"]})
    with quiet_splink():
        db = backend.db_api()
        sdf = backend.register(db, records, "records")
        creator = splink_settings(spec, db)
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
        household_u = _household_u(backend, db, records, spec, max_pairs_u, seed)
        households = _households(linker.misc.save_model_to_json(), household_u, _random_exact_shares(records, spec))
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
            counted = _rule_pairs(records, rule)
            n = counted if counted is not None else _pairs_on(sdf, splink_rule)
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
        for col in tf_columns(settings):
            tf = to_polars(linker.table_management.compute_tf_table(col))
            tf_tables[col] = tf.select(
                col, pl.col(f"tf_{col}").map_elements(_round, return_dtype=pl.Float64)
            ).sort(col)
    backend.release(db)  # before scoring opens its own database
    _regularize(settings)
    return Model(settings=settings, tf_tables=tf_tables,
                 meta={"spec_fingerprint": spec.fingerprint, "splink_version": splink_version, "seed": seed,
                       "trained_on_records": records.height, "training": notes,
                       "households_present": households["present"], "household_lift": households["lift"]})


def _random_exact_shares(records: pl.DataFrame, spec: LinkSpec) -> dict[str, float]:
    """Share of all pairs of records (both with the value) that agree exactly, for each household
    comparison whose first level is plain equality of one column — counted from value counts, not sampled.

    Random sampling cannot see it at scale: at 3M people (2.2M records, 1M distinct street keys) one random
    pair in 930,000 shares a street key, so a sample of random pairs holds none and Splink leaves the level's u
    at its prior (0.15), which made same-surname pairs look no likelier than strangers to share a street.
    """
    out: dict[str, float] = {}
    for comp in spec.comparisons:
        col = _exact_column([lv for lv in comp.levels if lv.kind != "null"]) if comp.role == "household" else None
        if col is None or col not in records.columns:
            continue
        n = float(records.height - records.get_column(col).null_count())
        if n >= 2:
            out[comp.name] = _agreeing_pairs(records, [col]) / (n * (n - 1) / 2)
    return out


def _households(random_settings: dict[str, Any], household_u: dict[str, list[float | None]],
                random_exact: dict[str, float] | None = None) -> dict[str, Any]:
    """Do the records come in households? Compare each household comparison's top level ("same street")
    among same-surname pairs (``household_u``) with the same level among random pairs — counted exactly
    where ``random_exact`` has it (``_random_exact_shares``), else the sampled u.

    Where families share both a surname and an address (school and HMIS data), same-surname pairs agree on
    the address hundreds of times more often than random pairs do; where they do not (FEBRL-like data), the
    two rates are close. The lift decides how strict the address guard is (``cilink.link.decisions``). Too
    few same-surname pairs to measure means "assume households" — the strict guard.
    """
    lift: dict[str, float] = {}
    for comp in random_settings["comparisons"]:
        measured = household_u.get(comp["output_column_name"])
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        name = comp["output_column_name"]
        random_u = (random_exact or {}).get(name) or (levels[0].get("u_probability") if levels else None)
        if not measured or measured[0] is None or not random_u:
            continue
        lift[name] = round(measured[0] / random_u, 2)
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
