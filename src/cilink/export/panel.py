"""panel.parquet: person × period (quarter) with domain status flags, ready for longitudinal analysis.

Each person has one row for every period from their first to their last observed period (gaps included,
with all ``in_*`` flags false), so analysts can look at "the following year" with a shift or a self-join.
Periods are calendar quarters; when any event date is released only at year precision the panel is
yearly, so it never reveals timing finer than the events themselves.

How it is computed, for tens of millions of person-periods: each person's row range in the dense grid
is fixed from their first and last period (``minimum.at``/``maximum.at``), each event interval is expanded
to the grid rows it covers (``repeat`` + ``arange``), and a flag is set by indexing those rows — no
group-by and no sort over the tens of millions of rows.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from cilink.export.columns import PROJECT_GROUP_LABELS, conform, panel_columns
from cilink.export.events import chronically_absent, project_type_group
from cilink.export.generalize import ReleasePlan
from cilink.export.sources import event_intervals

_GROUPS = list(PROJECT_GROUP_LABELS)
# category codes of interval events
_SCHOOL_ABSENT, _SCHOOL_PRESENT, _SCHOOL_UNKNOWN, _WORKFORCE = 0, 1, 2, 3
_HMIS = {g: 4 + i for i, g in enumerate(_GROUPS)}  # 4 … 13
_HMIS_UNTYPED = 4 + len(_GROUPS)  # an HMIS enrollment without a project type
# category codes of point events
_Q2_YES, _Q2_NO, _Q4_YES, _Q4_NO, _PERM_YES = 0, 1, 2, 3, 4


def _quarter_index(d: pl.Expr) -> pl.Expr:
    return d.dt.year().cast(pl.Int64) * 4 + (d.dt.month().cast(pl.Int64) - 1) // 3


def _to_period(quarter_idx: pl.Expr, yearly: bool) -> pl.Expr:
    return quarter_idx // 4 if yearly else quarter_idx


def _intervals(domain: str, df: pl.DataFrame, as_of: dt.date, yearly: bool) -> pl.DataFrame:
    start, end = event_intervals(domain)
    end = pl.min_horizontal(end.fill_null(as_of), pl.lit(as_of))
    if domain == "school":
        ca = chronically_absent()
        cat = (pl.when(ca).then(_SCHOOL_ABSENT).when(~ca).then(_SCHOOL_PRESENT).otherwise(_SCHOOL_UNKNOWN))
    elif domain == "workforce":
        cat = pl.lit(_WORKFORCE)
    else:
        cat = project_type_group().replace_strict(_HMIS, default=_HMIS_UNTYPED, return_dtype=pl.Int64)
    return df.select(pl.col("person_idx").cast(pl.Int64), _to_period(_quarter_index(start), yearly).alias("p0"),
                     _to_period(_quarter_index(end), yearly).alias("p1"), cat.cast(pl.Int64).alias("c")
                     ).drop_nulls(["p0", "p1"]).filter(pl.col("p1") >= pl.col("p0"))


def _points(domain: str, df: pl.DataFrame, yearly: bool) -> list[pl.DataFrame]:
    """Flags placed at one period relative to an exit: employment 2 and 4 quarters after, housing exits."""
    specs: list[tuple[pl.Expr, int, pl.Expr]] = []  # (condition, lag in quarters, category)
    if domain == "workforce":
        for col, lag, yes, no in (("employed_q2", 2, _Q2_YES, _Q2_NO), ("employed_q4", 4, _Q4_YES, _Q4_NO)):
            specs.append((pl.col(col).is_not_null(), lag, pl.when(pl.col(col)).then(yes).otherwise(no)))
    elif domain == "housing":
        specs.append((pl.col("destination_category") == "permanent", 0, pl.lit(_PERM_YES)))
    return [df.filter(cond & pl.col("exit_date").is_not_null()).select(
        pl.col("person_idx").cast(pl.Int64),
        _to_period(_quarter_index(pl.col("exit_date")) + lag, yearly).alias("p"), cat.cast(pl.Int64).alias("c"))
        for cond, lag, cat in specs]


def _labels(p_lo: int, p_hi: int, yearly: bool) -> pl.DataFrame:
    """period, year, quarter, school_year for period indexes p_lo … p_hi (gathered by index, not joined)."""
    p = pl.int_range(p_lo, p_hi + 1, eager=True, dtype=pl.Int64).alias("_p")
    year = (pl.col("_p") // 4) if not yearly else pl.col("_p")
    quarter = (pl.col("_p") % 4 + 1) if not yearly else pl.lit(None, dtype=pl.Int64)
    sy = pl.when(quarter >= 3).then(year).otherwise(year - 1)
    return pl.DataFrame(p).select(
        pl.format("{}Q{}", year, quarter).alias("period") if not yearly else year.cast(pl.String).alias("period"),
        year.cast(pl.Int16).alias("year"), quarter.cast(pl.Int8).alias("quarter"),
        (pl.format("{}-{}", sy, ((sy + 1) % 100).cast(pl.String).str.zfill(2)) if not yearly
         else pl.lit(None, dtype=pl.String)).alias("school_year"),
    )


class _Grid:
    """Each person's rows: from their first to their last period, persons in index order."""

    def __init__(self, n_persons: int, person: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
        self.pmin = np.full(n_persons, np.iinfo(np.int64).max, np.int64)
        self.pmax = np.full(n_persons, -1, np.int64)
        np.minimum.at(self.pmin, person, first)
        np.maximum.at(self.pmax, person, last)
        length = np.where(self.pmax >= 0, self.pmax - self.pmin + 1, 0)
        self.offset = np.cumsum(length) - length
        self.size = int(length.sum())
        self.person = np.repeat(np.arange(n_persons, dtype=np.int32), length)
        self.period = np.arange(self.size, dtype=np.int64) - (self.offset - self.pmin)[self.person]

    def row(self, person: np.ndarray, period: np.ndarray) -> np.ndarray:
        return self.offset[person] + period - self.pmin[person]

    def expand(self, person: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid rows covered by each interval, and for each such row the interval it came from."""
        length = p1 - p0 + 1
        first_row = self.row(person, p0)
        ends = np.cumsum(length)
        source = np.repeat(np.arange(len(length)), length)
        rows = np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64) + (first_row - (ends - length))[source]
        return rows, source

    def flag(self, rows: np.ndarray) -> np.ndarray:
        hit = np.zeros(self.size, bool)
        hit[rows] = True
        return hit

    def at(self, person: np.ndarray, period: np.ndarray) -> np.ndarray:
        hit = np.zeros(self.size, bool)
        hit[self.row(person, period)] = True
        return hit


def build_panel(events: dict[str, pl.DataFrame], plan: ReleasePlan, as_of: dt.date) -> pl.DataFrame:
    """The panel (keyed by person_idx), ordered by person and period."""
    yearly = plan.period == "year"
    specs = [s for s in panel_columns(plan) if s.name != "person_key"]
    ivals = pl.concat([_intervals(d, df, as_of, yearly) for d, df in events.items()])
    points = pl.concat([p for d, df in events.items() for p in _points(d, df, yearly)]
                       or [pl.DataFrame(schema={"person_idx": pl.Int64, "p": pl.Int64, "c": pl.Int64})])
    if ivals.is_empty():
        return conform(pl.DataFrame(), specs).with_columns(pl.lit(None, dtype=pl.Int32).alias("person_idx"))
    n_persons = int(ivals.get_column("person_idx").max()) + 1
    if not points.is_empty():
        n_persons = max(n_persons, int(points.get_column("person_idx").max()) + 1)
    cols = {c: ivals.get_column(c).to_numpy() for c in ("person_idx", "p0", "p1", "c")}
    pts = {c: points.get_column(c).to_numpy() for c in ("person_idx", "p", "c")}
    grid = _Grid(n_persons, np.concatenate([cols["person_idx"], pts["person_idx"]]),
                 np.concatenate([cols["p0"], pts["p"]]), np.concatenate([cols["p1"], pts["p"]]))

    rows, source = grid.expand(cols["person_idx"], cols["p0"], cols["p1"])
    row_cat = cols["c"][source]
    del source

    def covered(*cats: int) -> np.ndarray:
        return grid.flag(rows[np.isin(row_cat, cats)] if len(cats) > 1 else rows[row_cat == cats[0]])

    def at(cat: int) -> np.ndarray:
        keep = pts["c"] == cat
        return grid.at(pts["person_idx"][keep], pts["p"][keep])

    p_lo = int(grid.pmin[grid.pmax >= 0].min())
    labels = _labels(p_lo, int(grid.pmax.max()), yearly)
    at_label = pl.Series(grid.period - p_lo)
    flags = pl.DataFrame({
        "in_school": covered(_SCHOOL_ABSENT, _SCHOOL_PRESENT, _SCHOOL_UNKNOWN),
        "_absent": covered(_SCHOOL_ABSENT), "_present": covered(_SCHOOL_PRESENT),
        "in_workforce_program": covered(_WORKFORCE),
        "_q2_yes": at(_Q2_YES), "_q2_no": at(_Q2_NO), "_q4_yes": at(_Q4_YES), "_q4_no": at(_Q4_NO),
        "in_hmis": covered(*_HMIS.values(), _HMIS_UNTYPED),
        **{f"in_hmis_{g}": covered(c) for g, c in _HMIS.items()},
        "exited_to_permanent_housing": at(_PERM_YES),
    })

    def tri(yes: str, no: str) -> pl.Expr:
        return pl.when(pl.col(yes)).then(True).when(pl.col(no)).then(False).otherwise(None)

    panel = flags.select(
        pl.Series("person_idx", grid.person),
        *[labels.get_column(c).gather(at_label).alias(c) for c in labels.columns],
        pl.all().exclude("^_.*$"),
        tri("_absent", "_present").alias("chronically_absent"),
        tri("_q2_yes", "_q2_no").alias("employed_q2_after_exit"),
        tri("_q4_yes", "_q4_no").alias("employed_q4_after_exit"),
    )
    return conform(panel, specs).with_columns(panel.get_column("person_idx"))
