"""cilink rule specs (``cilink.link.comparisons``) as Splink comparisons and settings, in a backend's SQL.

Rebuilding the settings from the spec (instead of replaying saved SQL) is what makes a model trained on
DuckDB usable on Spark: only the trained parameters travel (``splink_settings(spec, db, model)``).
"""

from __future__ import annotations

from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator
from splink import block_on as splink_block_on

from cilink.errors import ConfigError
from cilink.link.candidates import RECORD_ID
from cilink.link.comparisons import SIBLING_AGREES, Comparison, Level, LinkSpec
from cilink.link.engine.model_io import LinkEngineError, Model, parameters

#: Splink's unique id column: the records' own key
UNIQUE_ID = RECORD_ID


def dice_sql(col: str, dialect: Any) -> str:
    """The Dice coefficient of two Bloom-filter encodings (Binary columns) as SQL — DuckDB only: Spark SQL
    has no bit count over binary values."""
    return dice_of(f"{col}_l", f"{col}_r", dialect)


def dice_of(a: str, b: str, dialect: Any) -> str:
    """``dice_sql`` of two Binary SQL expressions (``x`` and ``enc_first_name_r``, say)."""
    if dialect.sql_dialect_str != "duckdb":
        raise ConfigError("comparing encoded identifiers (Dice of Bloom filters) needs the DuckDB backend",
                          hint='set [engine] backend = "duckdb" (or run `cilink link --backend duckdb`)')
    a, b = f"CAST({a} AS BIT)", f"CAST({b} AS BIT)"
    return f"2 * BIT_COUNT({a} & {b}) / NULLIF(BIT_COUNT({a}) + BIT_COUNT({b}), 0)"


def _hamming_sql(a: str, b: str, dialect: Any) -> str:
    """Positions at which two strings of one length differ, as SQL (DuckDB has ``hamming``; on Spark the
    characters are zipped and counted)."""
    if dialect.sql_dialect_str == "duckdb":
        return f"hamming({a}, {b})"
    return f"aggregate(zip_with(split({a}, ''), split({b}, ''), (x, y) -> IF(x = y, 0, 1)), 0, (n, v) -> n + v)"


def edits_sql(col: str, distance: int, dialect: Any) -> str:
    """``col`` within ``distance`` (1 or 2) Damerau–Levenshtein edits, as SQL that computes the edit distance
    only for the few pairs the cheap Hamming distance leaves open.

    Birth-date digits and SSNs are strings of one length. For those, one edit is a substitution (Hamming 1)
    or one adjacent transposition (Hamming 2 and edit distance 1) — exactly Damerau–Levenshtein ≤ 1. Two
    edits is Damerau–Levenshtein ≤ 2 with at most four positions differing: a deleted digit and an added one
    that shift more than four digits (no typing slip a person makes in a date or SSN) no longer count. Strings
    of different lengths fall back to the edit distance. Each condition is a CASE branch, because DuckDB
    evaluates a branch only for the rows that reach it (an OR inside a value expression is evaluated whole):
    on the 1M-person demo this cut the birth date's comparison from 2.8 s to 0.8 s per 3M pairs and the SSN's
    from 1.9 s to 0.14 s.
    """
    a, b = f"{col}_l", f"{col}_r"
    dl, ham = f"{dialect.damerau_levenshtein_function_name}({a}, {b})", _hamming_sql(a, b, dialect)
    if distance == 1:
        near = f"WHEN {ham} <= 1 THEN TRUE WHEN {ham} = 2 THEN {dl} <= 1"
    elif distance == 2:
        near = f"WHEN {ham} <= 2 THEN TRUE WHEN {ham} <= 4 THEN {dl} <= 2"
    else:
        raise ValueError(f"edit distance {distance}: cilink's levels use 1 or 2")
    return f"(CASE WHEN length({a}) != length({b}) THEN {dl} <= {distance} {near} ELSE FALSE END)"


def splink_level(level: Level, dialect: Any, mu: tuple[Any, Any] = (None, None)) -> Any:
    """One cilink ``Level`` as a Splink comparison level; ``mu``: trained (m, u) of a saved model."""
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
        made = cll.CustomLevel(edits_sql(col or "", int(level.threshold or 1), dialect))
    elif level.kind == "array_intersect" and int(level.threshold or 1) == 1 and dialect.sql_dialect_str == "duckdb":
        # the same truth as Splink's array_length(list_intersect(..)) >= 1, at half the cost: no list is built
        made = cll.CustomLevel(f"list_has_any({col}_l, {col}_r)")
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
        made = cll.And(*(splink_level(p, dialect) for p in level.parts))
    elif level.kind == "else":
        made = cll.ElseLevel()
    elif level.kind == "dice":
        made = cll.CustomLevel(f"{dice_sql(col or '', dialect)} >= {level.threshold}")
        if level.tf:  # by the plaintext side's value; the level's own u is the base (no exact-match level)
            made = made.configure(tf_adjustment_column=level.columns[1], disable_tf_exact_match_detection=True)
    elif level.kind == "dice_any":  # a filter against a list of the other record's filters, both ways
        many, one = level.columns
        made = cll.CustomLevel(" OR ".join(
            f"COALESCE(list_max(list_transform({many}_{a}, lambda x: {dice_of('x', f'{one}_{b}', dialect)})), 0)"
            f" >= {level.threshold}" for a, b in (("l", "r"), ("r", "l"))))
    elif level.kind == "dice_cross":  # a's filter on one side against b's on the other, either way round
        a, b = level.columns
        made = cll.CustomLevel(" OR ".join(
            f"COALESCE({dice_of(f'{a}_{x}', f'{b}_{y}', dialect)}, 0) >= {level.threshold}"
            for x, y in (("l", "r"), ("r", "l"))))
    elif level.kind == "encoded_null":  # no encoded evidence: both sides have the plaintext, or a side no encoding
        plain, enc = level.columns
        made = cll.CustomLevel(f"({plain}_l IS NOT NULL AND {plain}_r IS NOT NULL) OR {enc}_l IS NULL "
                               f"OR {enc}_r IS NULL").configure(is_null_level=True)
    elif level.kind == "keyed_apart":  # salted apart: the Dice is of unrelated filters (comparisons.keyed_apart)
        salt, *sibling = level.columns
        made = cll.CustomLevel(
            f"NOT ({salt}_l IS NULL AND {salt}_r IS NULL) "
            f"AND COALESCE({dice_sql(salt, dialect)} < {level.threshold}, TRUE)"
            + "".join(f" AND COALESCE({dice_sql(c, dialect)} < {SIBLING_AGREES}, TRUE)" for c in sibling)
        ).configure(is_null_level=True)
    else:  # pragma: no cover - the Level type lists every kind
        raise ValueError(f"unknown level kind {level.kind}")
    if level.kind == "null" and len(level.columns) > 1:
        made = made.configure(is_null_level=True)
    if level.prior_mu is not None:
        m, u = level.prior_mu
        made = made.configure(m_probability=m, u_probability=u)
        if level.fix_m:
            made = made.configure(fix_m_probability=True)
        if level.fix_u:
            made = made.configure(fix_u_probability=True)
    if mu[0] is not None and mu[1] is not None:  # trained parameters of a saved model
        made = made.configure(m_probability=mu[0], u_probability=mu[1])
    return made.configure(label_for_charts=str(level.label))


def splink_comparison(comp: Comparison, dialect: Any, params: list[tuple[Any, Any]] | None = None) -> Any:
    """One cilink ``Comparison`` as a Splink comparison; ``params``: its levels' trained (m, u)."""
    params = params or [(None, None)] * len(comp.levels)
    return cl.CustomComparison(
        comparison_levels=[splink_level(lv, dialect, mu) for lv, mu in zip(comp.levels, params, strict=True)],
        output_column_name=comp.name,
        comparison_description=comp.description or comp.name,
    )


def splink_settings(spec: LinkSpec, db: Any, model: Model | None = None) -> SettingsCreator:
    """Splink settings for ``spec`` in this backend's SQL; with ``model``, carrying its trained parameters."""
    params: list[list[tuple[Any, Any]]] = [[(None, None)] * len(c.levels) for c in spec.comparisons]
    extra: dict[str, Any] = {}
    if model is not None:
        params = parameters(model)
        if [len(c.levels) for c in spec.comparisons] != [len(p) for p in params]:
            raise LinkEngineError("the saved model does not fit the comparisons in force",
                                  hint="run `cilink link --retrain`")
        extra["probability_two_random_records_match"] = model.settings["probability_two_random_records_match"]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIQUE_ID,
        comparisons=[splink_comparison(c, db.sql_dialect, p) for c, p in zip(spec.comparisons, params, strict=True)],
        **extra,
        blocking_rules_to_generate_predictions=[splink_block_on(*r.columns) for r in spec.blocking_rules],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=True,
        max_iterations=25,
        em_convergence=0.0001,
    )
