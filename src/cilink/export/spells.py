"""spells.parquet: program spells — a person's events in one domain program, merged across short gaps.

A spell is a run of a person's events with the same partner and program (school: any enrollment; workforce:
the program; housing: the HUD project type group) in which each event starts at most ``GAP_DAYS`` (by domain) after
the latest end so far. Spells are computed on exact dates inside the restricted zone; only their generalized
start and end leave it.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from cilink.export.columns import conform, spells_columns
from cilink.export.events import project_type_group
from cilink.export.generalize import ReleasePlan, generalize_date
from cilink.export.sources import event_intervals

#: Largest gap (days) between one event's end and the next one's start that still continues a spell.
#: School years are separated by the summer break (June → late August/September); elsewhere a month
#: bridges re-enrollment paperwork and shelter stays interrupted by a few nights away.
GAP_DAYS: dict[str, int] = {"school": 120, "workforce": 31, "housing": 31}


def _program(domain: str) -> pl.Expr:
    if domain == "workforce":
        return pl.col("program")
    if domain == "housing":
        return project_type_group()
    return pl.lit(None, dtype=pl.String)


def _open(domain: str, end: pl.Expr, as_of: dt.date) -> pl.Expr:
    """An event still open at the end of the data: no exit (school: and its year not over yet)."""
    if domain == "school":
        return pl.col("exit_date").is_null() & (end >= pl.lit(as_of)) & ~pl.col("graduated").fill_null(False)
    return pl.col("exit_date").is_null()


def _outcome(domain: str) -> pl.Expr:
    ongoing = pl.col("ongoing")
    if domain == "school":
        return (pl.when(pl.col("_graduated")).then(pl.lit("graduated")).when(ongoing).then(pl.lit("enrolled"))
                .otherwise(pl.lit("left")))
    if domain == "workforce":
        q2, q4 = pl.col("_employed_q2"), pl.col("_employed_q4")
        return (pl.when(ongoing).then(pl.lit("enrolled"))
                .when(q2.fill_null(False) | q4.fill_null(False)).then(pl.lit("exited_employed"))
                .when(q2.is_not_null() | q4.is_not_null()).then(pl.lit("exited_not_employed"))
                .otherwise(pl.lit("exited_unknown")))
    return (pl.when(ongoing).then(pl.lit("enrolled"))
            .otherwise(pl.col("_destination").fill_null("unknown")))


#: Offset between consecutive groups in the running-maximum trick below: larger than any day number plus gap.
_GROUP_STRIDE = 10_000_000


def _spell_rows(rows: pl.LazyFrame, group: list[str], gap: int, last_cols: list[str],
                any_cols: list[str]) -> pl.LazyFrame:
    """One row per spell from event rows sorted by group, start, end.

    A row starts a new spell when it starts more than ``gap`` days after the latest end so far in its group.
    The running maximum must restart at every group; instead of a window function or a group-by (slow on
    millions of groups) each group's days are offset by ``_GROUP_STRIDE`` × its sequence number, so one
    global running maximum never carries over from the previous group. Spell values are then read off the
    first and last row of each run: start, latest end, count, "any" flags (by cumulative sums) and the
    outcome fields of the last event.
    """
    gid = pl.struct(group).rle_id().cast(pl.Int64)
    offset = pl.col("_gid") * _GROUP_STRIDE
    rows = rows.with_columns(gid.alias("_gid"), pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"))
    # dates as day numbers (days since 1970; ≥ -25567 for 1900) shifted into the group's own range
    rows = rows.with_columns((pl.col("_end").cast(pl.Int64) + offset).cum_max().alias("_reach"))
    new = pl.col("_start").cast(pl.Int64) + offset > pl.col("_reach").shift(1).fill_null(-1) + gap
    rows = rows.with_columns(new.alias("_new"), *[pl.col(c).fill_null(False).cast(pl.Int64).cum_sum()
                                                   .alias(f"_cum{c}") for c in any_cols])
    rows = rows.with_columns(
        pl.col("_new").cast(pl.Int64).cum_sum().alias("_sid"),
        (pl.col("_gid") != pl.col("_gid").shift(1).fill_null(-1)).alias("_gfirst"),
    ).collect().lazy()  # materialized once: both the first-row and last-row selections below read it
    is_last = pl.col("_sid") != pl.col("_sid").shift(-1).fill_null(-1)
    first = rows.filter(pl.col("_new")).select(
        "_sid", pl.col("_start"), pl.col("_i").alias("_i0"),
        *[(pl.col(f"_cum{c}") - pl.col(c).fill_null(False).cast(pl.Int64)).alias(f"_before{c}") for c in any_cols],
        pl.when(pl.col("_gfirst")).then(pl.col("_sid")).otherwise(None).forward_fill().alias("_sid0"))
    last = rows.filter(is_last).select(
        "_sid", *group, (pl.col("_reach") - offset).cast(pl.Date).alias("_end"), pl.col("_i").alias("_i1"),
        *last_cols, *[pl.col(f"_cum{c}") for c in any_cols])
    # both sides hold one row per spell in the same order, so they line up without a join
    out = pl.concat([first, last.drop("_sid")], how="horizontal")
    return out.select(
        *group, "_start", "_end",
        (pl.col("_sid") - pl.col("_sid0") + 1).cast(pl.Int16).alias("spell_seq"),
        (pl.col("_i1") - pl.col("_i0") + 1).cast(pl.Int16).alias("n_events"),
        *last_cols, *[(pl.col(f"_cum{c}") - pl.col(f"_before{c}") > 0).alias(c) for c in any_cols])


def build_spells(events: dict[str, pl.DataFrame], plan: ReleasePlan, partners: tuple[str, ...],
                 as_of: dt.date) -> pl.DataFrame:
    """The spells table (keyed by person_idx), ordered by domain, then person, partner, program and start.

    Partner and program are sorted and grouped by integer codes (their rank), not by text.
    """
    parts = []
    for d_code, (domain, df) in enumerate(events.items()):
        start, end = event_intervals(domain)
        extra = {
            "school": [pl.col("graduated").alias("_graduated")],
            "workforce": [pl.col("employed_q2").alias("_employed_q2"), pl.col("employed_q4").alias("_employed_q4")],
            "housing": [pl.col("destination_category").alias("_destination")],
        }[domain]
        programs = sorted(df.select(_program(domain).drop_nulls().unique()).to_series().to_list())
        rows = df.lazy().select(
            "person_idx", "partner", _program(domain).alias("program"),
            pl.col("partner").cast(pl.Enum(partners)).to_physical().cast(pl.Int32).alias("_pc"),
            _program(domain).cast(pl.Enum(programs)).to_physical().cast(pl.Int32).alias("_prc"),
            start.alias("_start"), pl.min_horizontal(end.fill_null(as_of), pl.lit(as_of)).alias("_end"),
            _open(domain, end, as_of).alias("_open"), *extra,
        ).filter(pl.col("_start").is_not_null())
        group = ["person_idx", "_pc", "_prc"]
        last_cols = ["partner", "program", *{"school": [], "workforce": ["_employed_q2", "_employed_q4"],
                                             "housing": ["_destination"]}[domain]]
        any_cols = ["_open", "_graduated"] if domain == "school" else ["_open"]
        spells = _spell_rows(rows.sort([*group, "_start", "_end"], nulls_last=True, maintain_order=True), group,
                             GAP_DAYS[domain], last_cols, any_cols).rename({"_open": "ongoing"})
        spells = spells.with_columns(pl.lit(domain).alias("domain"), pl.lit(d_code).alias("_dc"),
                                     _outcome(domain).alias("outcome"))
        spells = spells.with_columns(
            (pl.col("outcome") == "permanent").alias("exited_to_permanent_housing") if domain == "housing"
            else pl.lit(None, dtype=pl.Boolean).alias("exited_to_permanent_housing"))
        parts.append(spells.collect())
    p = plan.derived_precision
    stem = "month" if p == "month" else "year"
    out = pl.concat(parts, how="diagonal_relaxed").with_columns(
        generalize_date(pl.col("_start"), p).alias(f"start_{stem}"),
        pl.when(pl.col("ongoing")).then(None).otherwise(generalize_date(pl.col("_end"), p)).alias(f"end_{stem}"),
    )  # each domain's part is already ordered by person, partner, program and start
    specs = [s for s in spells_columns(plan, partners) if s.name != "person_key"]
    return conform(out, specs).with_columns(out.get_column("person_idx"))
