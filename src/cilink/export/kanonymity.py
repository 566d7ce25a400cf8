"""k-anonymity over persons' quasi-identifiers: full-domain generalization, then suppression of what is left.

Quasi-identifiers (design §6): birth year, sex, geography (ZIP3; ZIP5 under the limited profile) and
race/ethnicity. Each has a generalization hierarchy ending, as usual, in "not released" (null for all):

- birth year: exact year → 5-year band → 10-year band → 20-year band → not released (ages 90+ are
  always one top-coded category);
- geography: ZIP5 (limited only) → ZIP3 → state only (ZIP3 shown as "000") → not released;
- race/ethnicity: the reported combination → federal 7 categories (Hispanic of any race; "multiple")
  → 5 categories (Hispanic, White, Black, Asian, other) → Hispanic or other → not released;
- sex is never generalized, only suppressed (so a person unique by sex needs suppression).

Every combination of levels (a lattice of at most 100 nodes) is scored on the counts of distinct
quasi-identifier combinations — a few thousand rows even for a million persons — so the search takes
well under a second. The chosen node minimises information loss (mean normalised generalization height plus the
share of persons suppressed) among nodes whose persons in classes smaller than k fit within
``max_suppression``. Those persons' quasi-identifiers are then set to null (``qi_suppressed``); if no node
fits, the release is refused.

We measure equivalence classes with polars rather than pycanon/anjana: both pin exact versions of numpy,
pandas and typer (pycanon 1.3.6: numpy==2.0.2, pandas==2.3.3, typer==0.23.2) that conflict with ours, drop
or mishandle null quasi-identifiers depending on the pandas version, and build classes in Python lists
(pycanon takes ~2 s for k over a million rows; a polars group_by takes ~0.1 s). anjana's search also
prints to stdout and generalizes one attribute at a time greedily rather than over the whole lattice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import polars as pl

from cilink.export.columns import RACE_SINGLE

#: Columns of the persons table that together form the released quasi-identifier tuple.
QI_RELEASE_COLUMNS = ["birth_year_min", "birth_year_max", "age_90_plus", "sex", "race_ethnicity", "zip5", "zip3",
                      "state"]

BIRTH_LEVELS = ("exact year", "5-year bands", "10-year bands", "20-year bands", "not released")
GEO_LEVELS = ("zip5", "zip3", "state only (zip3 '000')", "not released")
RACE_LEVELS = ("reported combination", "federal 7 categories", "5 categories", "Hispanic or other",
               "not released")


@dataclass(frozen=True)
class Node:
    """One point of the generalization lattice: a level per quasi-identifier."""

    birth: int
    geo: int
    race: int

    def describe(self) -> dict[str, str]:
        return {"birth_year": BIRTH_LEVELS[self.birth], "geography": GEO_LEVELS[self.geo],
                "race_ethnicity": RACE_LEVELS[self.race], "sex": "as recorded"}


@dataclass
class Anonymization:
    """The generalization chosen and its effect; reported in the manifest (all derivable from persons)."""

    node: Node
    k: int
    persons: int
    suppressed: int
    achieved_k: int | None
    candidates: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"quasi_identifiers": ["birth_year", "sex", "geography", "race_ethnicity"], "k": self.k,
                "generalization": self.node.describe(), "suppressed_persons": self.suppressed,
                "achieved_k": self.achieved_k}


class KAnonymityUnreachable(Exception):
    """No lattice node reaches k within the suppression limit (turned into PrivacyGateRefused by the gate)."""

    def __init__(self, k: int, persons: int, smallest_suppression: int, allowed: int) -> None:
        super().__init__(k, persons, smallest_suppression, allowed)
        self.k, self.persons, self.needed, self.allowed = k, persons, smallest_suppression, allowed


# --- generalization expressions over the raw quasi-identifiers (_birth_year, sex, _race, _zip5) -----------

def birth_exprs(level: int, cutoff: int) -> list[pl.Expr]:
    """birth_year, birth_year_min, birth_year_max, age_90_plus at a level; years ≤ cutoff are top-coded."""
    if level == len(BIRTH_LEVELS) - 1:
        return [*[pl.lit(None, dtype=pl.Int16).alias(c) for c in ("birth_year", "birth_year_min", "birth_year_max")],
                pl.lit(None, dtype=pl.Boolean).alias("age_90_plus")]
    y = pl.col("_birth_year").cast(pl.Int32)
    top = y <= cutoff
    width = (1, 5, 10, 20)[level]
    lo = (y // width) * width
    hi = lo + (width - 1)
    return [
        pl.when(top | pl.lit(level > 0)).then(None).otherwise(y).cast(pl.Int16).alias("birth_year"),
        pl.when(top | y.is_null()).then(None).otherwise(pl.max_horizontal(lo, pl.lit(cutoff + 1))).cast(pl.Int16)
        .alias("birth_year_min"),
        pl.when(top).then(pl.lit(cutoff)).otherwise(hi).cast(pl.Int16).alias("birth_year_max"),
        top.alias("age_90_plus"),
    ]


def geo_exprs(level: int) -> list[pl.Expr]:
    """zip5, zip3, state at a level (0 = zip5, 1 = zip3, 2 = state only)."""
    from cilink.export.generalize import state_expr, zip3_expr

    if level == len(GEO_LEVELS) - 1:
        return [pl.lit(None, dtype=pl.String).alias(c) for c in ("zip5", "zip3", "state")]
    z = pl.col("_zip5")
    z3 = zip3_expr(z)
    return [
        (z if level == 0 else pl.lit(None, dtype=pl.String)).alias("zip5"),
        (z3 if level <= 1 else pl.when(z3.is_not_null()).then(pl.lit("000"))).alias("zip3"),
        state_expr(z).alias("state"),
    ]


def race_expr(level: int) -> pl.Expr:
    """race_ethnicity at a level from the ';'-joined sorted combination in ``_race``."""
    r = pl.col("_race")
    if level == len(RACE_LEVELS) - 1:
        return pl.lit(None, dtype=pl.String).alias("race_ethnicity")
    if level == 0:
        return r.alias("race_ethnicity")
    single = r.is_in(list(RACE_SINGLE))
    federal = (pl.when(r.str.contains("hispanic_latino")).then(pl.lit("hispanic_latino"))
               .when(single).then(r).when(r.is_not_null()).then(pl.lit("multiple")))
    if level == 1:
        return federal.alias("race_ethnicity")
    kept = ["hispanic_latino", "white", "black_african_american", "asian"] if level == 2 else ["hispanic_latino"]
    return (pl.when(federal.is_in(kept)).then(federal).when(federal.is_not_null()).then(pl.lit("other"))
            .alias("race_ethnicity"))


def generalize(frame: pl.DataFrame | pl.LazyFrame, node: Node, cutoff: int) -> pl.LazyFrame:
    """Add the released quasi-identifier columns for ``node`` (raw ``_`` columns are kept for the caller)."""
    return frame.lazy().with_columns(
        *birth_exprs(node.birth, cutoff), *geo_exprs(node.geo), race_expr(node.race), pl.col("sex")
    )


def lattice(zip5: bool) -> list[Node]:
    """All nodes, in a fixed order used to break ties deterministically."""
    geos = range(len(GEO_LEVELS)) if zip5 else range(1, len(GEO_LEVELS))
    return [Node(b, g, r) for b, g, r in
            itertools.product(range(len(BIRTH_LEVELS)), geos, range(len(RACE_LEVELS)))]


def class_sizes(frame: pl.DataFrame | pl.LazyFrame, weight: str | None = None) -> pl.LazyFrame:
    """Size of each equivalence class over the released quasi-identifier columns (nulls are a value)."""
    size = pl.col(weight).sum() if weight else pl.len()
    return frame.lazy().group_by(QI_RELEASE_COLUMNS).agg(size.alias("_size"))


def anonymize(qi: pl.DataFrame, *, k: int, max_suppression: float, zip5: bool, cutoff: int
              ) -> tuple[pl.DataFrame, Anonymization]:
    """Generalize and suppress ``qi`` (one row per person with _birth_year, sex, _race, _zip5) to k-anonymity.

    Returns the frame with the released quasi-identifier columns and ``qi_suppressed``, and what was done.
    Raises KAnonymityUnreachable when even the best node needs more suppression than allowed.
    """
    n = qi.height
    allowed = int(max_suppression * n)
    base = qi.group_by(["_birth_year", "sex", "_race", "_zip5"]).agg(pl.len().alias("_n"))
    nodes = lattice(zip5)
    heights = (len(BIRTH_LEVELS) - 1, len(GEO_LEVELS) - (1 if zip5 else 2), len(RACE_LEVELS) - 1)
    scored: list[tuple[float, int, int, Node]] = []
    smallest = n
    for i, node in enumerate(nodes):
        g = generalize(base, node, cutoff)
        small = (class_sizes(g, "_n").filter(pl.col("_size") < k).select(pl.col("_size").sum()).collect().item()
                 or 0)
        smallest = min(smallest, small)
        if small > allowed:
            continue
        geo_h = node.geo - (0 if zip5 else 1)
        loss = (node.birth / heights[0] + geo_h / heights[1] + node.race / heights[2]) / 3 + small / max(n, 1)
        scored.append((loss, small, i, node))
    if not scored:
        raise KAnonymityUnreachable(k, n, smallest, allowed)
    _loss, _small, _i, best = min(scored)
    out = generalize(qi, best, cutoff).collect()
    sizes = class_sizes(out).collect()
    out = out.join(sizes, on=QI_RELEASE_COLUMNS, how="left", nulls_equal=True)
    suppress = pl.col("_size") < k
    out = out.with_columns(
        *[pl.when(suppress).then(None).otherwise(pl.col(c)).alias(c)
          for c in ["birth_year", *QI_RELEASE_COLUMNS]],
        suppress.alias("qi_suppressed"),
    ).drop("_size")
    kept = out.filter(~pl.col("qi_suppressed"))
    achieved = class_sizes(kept).select(pl.col("_size").min()).collect().item() if kept.height else None
    return out, Anonymization(node=best, k=k, persons=n, suppressed=int(out["qi_suppressed"].sum()),
                              achieved_k=achieved, candidates=len(scored))


def min_class_size(persons: pl.DataFrame) -> int | None:
    """Smallest equivalence class among persons whose quasi-identifiers were not suppressed (gate check)."""
    cols = [c for c in QI_RELEASE_COLUMNS if c in persons.columns]
    kept = persons.lazy()
    if "qi_suppressed" in persons.columns:
        kept = kept.filter(~pl.col("qi_suppressed").fill_null(False))
    return kept.group_by(cols).agg(pl.len().alias("_size")).select(pl.col("_size").min()).collect().item()
