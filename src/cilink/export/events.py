"""events/domain=…/: one row per staged domain event, dates generalized, identifiers left behind.

All domains share one schema (columns of other domains are null), so polars, pandas, DuckDB and Spark read
the hive-partitioned directory as one table without schema merging.
"""

from __future__ import annotations

import polars as pl

from cilink.export.columns import PROJECT_TYPE_GROUPS, conform, events_columns
from cilink.export.generalize import DATE_FIELDS, ReleasePlan, generalize_dates


def project_type_group(col: str = "project_type") -> pl.Expr:
    """HUD project type code → group (es, th, sh, rrh, psh, oph, so, ce, hp, other)."""
    return (pl.when(pl.col(col).is_null()).then(None)
            .otherwise(pl.col(col).replace_strict(PROJECT_TYPE_GROUPS, default="other", return_dtype=pl.String)))


def days_absent() -> pl.Expr:
    """Reported days absent, else enrolled − present (never negative)."""
    derived = (pl.col("days_enrolled") - pl.col("days_present")).clip(lower_bound=0)
    return pl.coalesce(pl.col("days_absent"), derived)


def chronically_absent() -> pl.Expr:
    """At least 10% of enrolled days missed; null when attendance is not known."""
    enrolled = pl.col("days_enrolled")
    return pl.when(enrolled > 0).then(days_absent() / enrolled >= 0.10).otherwise(None)


def domain_columns(domain: str) -> list[pl.Expr]:
    """Release columns derived from a domain's staged fields (before date generalization)."""
    if domain == "school":
        return [days_absent().alias("days_absent"), chronically_absent().alias("chronically_absent")]
    if domain == "workforce":
        # exact earnings are a quasi-identifier against wage records; $100 steps keep the analysis value
        return [((pl.col("earnings_q2") / 100).round(0) * 100).cast(pl.Int32).alias("earnings_q2")]
    return [project_type_group().alias("project_type_group")]


def build_events(domain: str, frame: pl.DataFrame, plan: ReleasePlan, partners: tuple[str, ...]) -> pl.DataFrame:
    """The release rows of one domain (keyed by person_idx; ``domain`` is the partition, not a column).

    Rows are ordered by person, exact entry and exit and partner with a stable sort of integers; ties keep
    the input order — staged order within a person (``load_sources``), itself deterministic — so the same
    inputs always give the same bytes. Rows already grouped by person are only reordered within a person.
    """
    dates = [generalize_dates(frame.get_column(f), plan.date_precision[f]).alias(plan.date_column(f))
             for f in DATE_FIELDS if f in frame.columns]
    specs = [s for s in events_columns(plan, partners) if s.name != "person_key"]
    exit_ = pl.col("exit_date") if "exit_date" in frame.columns else pl.lit(None, dtype=pl.Date)
    order = frame.select(pl.arg_sort_by(
        pl.col("person_idx"), pl.col("entry_date").cast(pl.Int32), exit_.cast(pl.Int32),
        pl.col("partner").cast(pl.Enum(partners)).to_physical(), nulls_last=True, maintain_order=True)).to_series()
    out = conform(frame.with_columns(*domain_columns(domain), *dates), specs).with_columns(
        frame.get_column("person_idx"))
    if (order == pl.int_range(len(order), dtype=order.dtype, eager=True)).all():
        return out  # already in order: no reordering at all
    return out.gather(order)
