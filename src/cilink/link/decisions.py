"""From scored pairs to decisions: link, review or below the floor — thresholds, pair guards, reviewers.

- ``link``: match weight ≥ ``link_threshold`` and no pair guard objects;
- ``review``: weight in the review band [threshold − band, threshold), or a link held back by a guard;
- ``must_link`` / ``cannot_link``: a reviewer's latest ``match`` / ``non_match`` decision on the pair.

Pair guards (household members are the main source of false links, design §5):

- ``address_only`` — agreement on address alone never makes a link. Where the data come in households
  (the model measured it: ``Model.meta["households_present"]``), the pair must reach the review floor
  without its household evidence (street, zip, home phone); where they do not (address agreement is as
  rare among same-surname pairs as among random ones, so it is strong evidence of one person), the pair
  needs at least one personal identifier — name, birth date, SSN or e-mail — that agrees;
- ``first_name_conflict`` — first names disagree outright (no exact, alias, swapped or close-spelling
  level) while no SSN or e-mail agrees: twins and siblings share last name, birth date and address. Only
  where the data come in households: elsewhere that pattern is one person with a mistyped first name;
- ``birth_date_conflict`` — the birth dates disagree outright (another year, or the same year and
  nothing closer: ``Level.conflict``) while no SSN or e-mail agrees: a father and his namesake son, or
  two people who share a common name in one town. Only where the data come in households. A relative's
  birth date typed on a person's form looks the same, so such a pair needs a reviewer either way;
- ``nameless_ambiguous`` — a record without a first name (none given, or a placeholder such as "Baby Boy")
  that reaches the link threshold with two or more records of one partner (then all its candidates wait),
  or with a record of its own partner (families enrol together: the one candidate there may be the twin), or a
  pair of two such records: twins and siblings agree on everything else, so which of them it is needs a
  reviewer, unless an SSN or e-mail agrees. With one candidate at another partner it links: a missing name is
  missing, not a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

LINK, REVIEW, MUST_LINK, CANNOT_LINK = "link", "review", "must_link", "cannot_link"
GUARD_ADDRESS = "address_only"
GUARD_FIRST_NAME = "first_name_conflict"
GUARD_NAMELESS = "nameless_ambiguous"
GUARD_BIRTH_DATE = "birth_date_conflict"
#: a birth-date weight this close to the model's outright-disagreement weight counts as that level
_SAME_WEIGHT = 1e-6
#: an SSN or e-mail agreement at least this strong (log2) vouches for a pair whose first names differ
_STRONG_ID_WEIGHT = 8.0
#: comparisons that agree for half of all pairs by chance: never the personal evidence a link needs
_NOT_PERSONAL = {"w_sex"}


@dataclass(frozen=True)
class Thresholds:
    """``link_threshold`` and the review band below it; pairs under ``floor`` are not kept."""

    link: float
    band: float

    @property
    def floor(self) -> float:
        return self.link - self.band


def latest_decisions(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """Reviewer decisions (record_id_l, record_id_r, decision) in ledger order → the latest per pair,
    with the pair in canonical order (record_id_l < record_id_r)."""
    frame = pl.DataFrame(rows, schema={"a": pl.String, "b": pl.String, "decision": pl.String}, orient="row")
    return (
        frame.with_row_index("seq")
        .select(
            pl.min_horizontal("a", "b").alias("record_id_l"),
            pl.max_horizontal("a", "b").alias("record_id_r"),
            "decision", "seq",
        )
        .filter(pl.col("record_id_l") != pl.col("record_id_r"))
        .sort("seq")
        .unique(["record_id_l", "record_id_r"], keep="last", maintain_order=True)
        .drop("seq")
        .sort("record_id_l", "record_id_r")
    )


def _address_only(pairs: pl.DataFrame, floor: float, household: list[str], households_present: bool) -> pl.Expr:
    hh_cols = [f"w_{h}" for h in household if f"w_{h}" in pairs.columns]
    if households_present:
        household_w = pl.sum_horizontal(*[pl.col(c).clip(lower_bound=0) for c in hh_cols]) if hh_cols else 0.0
        return (pl.col("match_weight") - household_w) < floor
    personal = [c for c in pairs.columns if c.startswith("w_") and c not in hh_cols and c not in _NOT_PERSONAL]
    return ~pl.any_horizontal(*[pl.col(c) > 0 for c in personal]) if personal else pl.lit(True)


def nameless_ambiguous(pairs: pl.DataFrame, thresholds: Thresholds, nameless: pl.Series) -> pl.DataFrame:
    """Pairs (record_id_l, record_id_r) the ``nameless_ambiguous`` guard holds back: every link-level pair
    of a record in ``nameless`` (record ids without a first name) that has two or more link-level candidates
    at one partner, and every link-level pair of two nameless records — except pairs whose SSN or e-mail
    agrees. Decided on all scored pairs, so an incremental run holds back what a full run does."""
    empty = pl.DataFrame(schema={"record_id_l": pl.String, "record_id_r": pl.String})
    if not len(nameless) or not pairs.height:
        return empty
    strong = _strong_id(pairs)
    linked = pairs.filter(pl.col("match_weight") >= thresholds.link).select(
        "record_id_l", "record_id_r", (pl.any_horizontal(*strong) if strong else pl.lit(False)).alias("_strong"))
    sides = pl.concat([linked.with_columns(pl.col("record_id_l").alias("_x"), pl.col("record_id_r").alias("_y")),
                       linked.with_columns(pl.col("record_id_r").alias("_x"), pl.col("record_id_l").alias("_y"))])
    sides = sides.filter(pl.col("_x").is_in(nameless.implode())).with_columns(
        pl.col("_y").str.splitn(":", 2).struct.field("field_0").alias("_partner"))
    # ambiguous at one partner: every candidate of that record waits (the twin may be at another partner too)
    ambiguous = (pl.len().over("_x", "_partner") >= 2).any().over("_x")
    # a candidate at the nameless record's own partner: families enrol together, so a same-surname, same-birth-
    # date record there is as likely the twin as the child's other entry
    own_partner = pl.col("_x").str.splitn(":", 2).struct.field("field_0") == pl.col("_partner")
    held = sides.filter(ambiguous | own_partner | pl.col("_y").is_in(nameless.implode()))
    return (held.filter(~pl.col("_strong")).select("record_id_l", "record_id_r").unique()
            .sort("record_id_l", "record_id_r"))


def _strong_id(pairs: pl.DataFrame) -> list[pl.Expr]:
    """An SSN or e-mail agreement strong enough to tell twins apart (the plaintext or encoded comparison)."""
    return [pl.col(c) >= _STRONG_ID_WEIGHT for c in ("w_ssn", "w_shared_id", "w_email", "w_ssn_enc", "w_email_enc")
            if c in pairs.columns]


def decide(pairs: pl.DataFrame, thresholds: Thresholds, reviewed: pl.DataFrame,
           household: list[str], households_present: bool = True,
           held: pl.DataFrame | None = None, dob_conflict: float | None = None) -> pl.DataFrame:
    """Add ``decision`` and ``guard`` to scored ``pairs`` (and add reviewed pairs that were not scored).

    ``reviewed``: latest reviewer decisions (record_id_l, record_id_r, decision: match | non_match);
    ``household``: names of the household comparisons (their ``w_<name>`` columns);
    ``households_present``: whether the data come in households (see the module docstring);
    ``held``: pairs the ``nameless_ambiguous`` guard holds back (``nameless_ambiguous``);
    ``dob_conflict``: the dob weight at or below which birth dates disagree outright
    (``engine.Model.conflict_weight``; None: no ``birth_date_conflict`` guard).
    """
    # the *_enc comparisons stand in for the plaintext ones where a record is encoded (docs/encodings.md)
    strong = _strong_id(pairs)
    first = [c for c in ("w_first_name", "w_first_name_enc") if c in pairs.columns]
    first_conflict = (pl.min_horizontal(first) < 0) if first and households_present else pl.lit(False)
    dob_conflicts = (pl.col("w_dob") <= dob_conflict + _SAME_WEIGHT).fill_null(False) \
        if dob_conflict is not None and households_present and "w_dob" in pairs.columns else pl.lit(False)
    if strong:
        first_conflict = first_conflict & ~pl.any_horizontal(*strong)
        dob_conflicts = dob_conflicts & ~pl.any_horizontal(*strong)
    if held is not None and held.height:
        pairs = pairs.join(held.select("record_id_l", "record_id_r", pl.lit(True).alias("_held")),
                           on=["record_id_l", "record_id_r"], how="left", maintain_order="left")
    else:
        pairs = pairs.with_columns(pl.lit(None, dtype=pl.Boolean).alias("_held"))
    guard = (
        pl.when(_address_only(pairs, thresholds.floor, household, households_present)).then(pl.lit(GUARD_ADDRESS))
        .when(first_conflict).then(pl.lit(GUARD_FIRST_NAME))
        .when(dob_conflicts).then(pl.lit(GUARD_BIRTH_DATE))
        .when(pl.col("_held").fill_null(False)).then(pl.lit(GUARD_NAMELESS))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    scored = pairs.filter(pl.col("match_weight") >= thresholds.floor).with_columns(
        pl.when(pl.col("match_weight") >= thresholds.link).then(guard)
        .otherwise(pl.lit(None, dtype=pl.String)).alias("guard")
    )
    review = reviewed.rename({"decision": "_reviewed"})
    missing = review.join(scored, on=["record_id_l", "record_id_r"], how="anti").select("record_id_l", "record_id_r")
    out = pl.concat([scored, missing], how="diagonal_relaxed").join(review, on=["record_id_l", "record_id_r"],
                                                                     how="left")
    decision = (
        pl.when(pl.col("_reviewed") == "match").then(pl.lit(MUST_LINK))
        .when(pl.col("_reviewed") == "non_match").then(pl.lit(CANNOT_LINK))
        .when((pl.col("match_weight") >= thresholds.link) & pl.col("guard").is_null()).then(pl.lit(LINK))
        .otherwise(pl.lit(REVIEW))
    )
    return (out.with_columns(decision.alias("decision")).drop("_reviewed", "_held")
            .sort("record_id_l", "record_id_r"))
