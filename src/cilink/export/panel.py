"""panel.parquet: person × period (quarter) with domain status flags, ready for longitudinal analysis.

Each person has one row for every period from their first to their last observed period (gaps included,
with all ``in_*`` flags false), so analysts can look at "the following year" with a shift or a self-join.
Periods are calendar quarters; when any event date is released only at year precision the panel is
yearly, so it never reveals timing finer than the events themselves.

How it is computed, for tens of millions of person-periods: each person's row range in the dense grid
is fixed from their first and last period (``reduceat`` over the intervals, which arrive grouped by
person), each event interval is expanded to the grid rows it covers (``repeat`` + ``arange``, one status
category at a time), and a flag is set by indexing those rows — no group-by and no sort over the tens of
millions of rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import polars as pl

from cilink.export.columns import PROJECT_GROUP_LABELS, PROJECT_TYPE_GROUPS, conform, panel_columns
from cilink.export.events import chronically_absent
from cilink.export.generalize import ReleasePlan
from cilink.export.sources import intervals_of

_GROUPS = list(PROJECT_GROUP_LABELS)
# category codes of interval events
_SCHOOL_ABSENT, _SCHOOL_PRESENT, _SCHOOL_UNKNOWN, _WORKFORCE = 0, 1, 2, 3
_HMIS = {g: 4 + i for i, g in enumerate(_GROUPS)}  # 4 … 13
_HMIS_UNTYPED = 4 + len(_GROUPS)  # an HMIS enrollment without a project type
# category codes of point events
_Q2_YES, _Q2_NO, _Q4_YES, _Q4_NO, _PERM_YES = 0, 1, 2, 3, 4


def _quarter_index(d: pl.Expr) -> pl.Expr:
    return d.dt.year().cast(pl.Int64) * 4 + d.dt.quarter().cast(pl.Int64) - 1


def _to_period(quarter_idx: pl.Expr, yearly: bool) -> pl.Expr:
    return quarter_idx // 4 if yearly else quarter_idx


def _intervals(domain: str, df: pl.DataFrame, as_of: dt.date, yearly: bool) -> pl.DataFrame:
    start, end = intervals_of(domain, df)
    end = pl.min_horizontal(end.fill_null(as_of), pl.lit(as_of))
    if domain == "school":
        ca = chronically_absent()
        cat = (pl.when(ca).then(_SCHOOL_ABSENT).when(~ca).then(_SCHOOL_PRESENT).otherwise(_SCHOOL_UNKNOWN))
    elif domain == "workforce":
        cat = pl.lit(_WORKFORCE)
    else:
        # HUD code straight to category (as project_type_group, without the text in between)
        codes = {code: _HMIS[g] for code, g in PROJECT_TYPE_GROUPS.items()}
        cat = (pl.when(pl.col("project_type").is_null()).then(pl.lit(_HMIS_UNTYPED, dtype=pl.Int64))
               .otherwise(pl.col("project_type").replace_strict(codes, default=_HMIS["other"], return_dtype=pl.Int64)))
    # narrow integer types: ten million intervals, and every byte is memory touched
    return df.lazy().select(
        pl.col("person_idx").cast(pl.Int32),
        _to_period(_quarter_index(start), yearly).cast(pl.Int32).alias("p0"),
        _to_period(_quarter_index(end), yearly).cast(pl.Int32).alias("p1"), cat.cast(pl.Int8).alias("c"),
    ).drop_nulls(["p0", "p1"]).filter(pl.col("p1") >= pl.col("p0")).collect()


def _points(domain: str, df: pl.DataFrame, yearly: bool) -> list[pl.DataFrame]:
    """Flags placed at one period relative to an exit: employment 2 and 4 quarters after, housing exits."""
    specs: list[tuple[pl.Expr, int, pl.Expr]] = []  # (condition, lag in quarters, category)
    if domain == "workforce":
        for col, lag, yes, no in (("employed_q2", 2, _Q2_YES, _Q2_NO), ("employed_q4", 4, _Q4_YES, _Q4_NO)):
            specs.append((pl.col(col).is_not_null(), lag, pl.when(pl.col(col)).then(yes).otherwise(no)))
    elif domain == "housing":
        specs.append((pl.col("destination_category") == "permanent", 0, pl.lit(_PERM_YES)))
    return [df.lazy().filter(cond & pl.col("exit_date").is_not_null()).select(
        pl.col("person_idx").cast(pl.Int32),
        _to_period(_quarter_index(pl.col("exit_date")) + lag, yearly).cast(pl.Int32).alias("p"),
        cat.cast(pl.Int8).alias("c")).collect()
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


def _per_person(n_persons: int, person: np.ndarray, values: np.ndarray, reduce: np.ufunc, fill: int) -> np.ndarray:
    """``reduce`` (minimum or maximum) of ``values`` per person; ``fill`` for persons without any.

    Rows arrive grouped by person within each domain, so ``reduceat`` first folds each run of one person
    and ``ufunc.at`` then only combines a few values per person (it is slow per element; correct in any order).
    """
    out = np.full(n_persons, fill, dtype=np.int64)
    if not len(person):
        return out
    runs = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    reduce.at(out, person[runs], reduce.reduceat(values, runs))
    return out


class _Grid:
    """Each person's rows: from their first to their last period, persons in index order.

    Flags are set in one reused scratch array and handed out as polars Booleans (bits): tens of millions of
    rows make every fresh numpy array a few hundred MB of new pages, and page faults cost as much as the
    work itself.
    """

    def __init__(self, n_persons: int, person: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
        self.pmin = _per_person(n_persons, person, first, np.minimum, np.iinfo(np.int64).max)
        self.pmax = _per_person(n_persons, person, last, np.maximum, -1)
        self.length = np.where(self.pmax >= 0, self.pmax - self.pmin + 1, 0)
        self.offset = np.cumsum(self.length) - self.length
        self.size = int(self.length.sum())
        self.index = np.int32 if self.size < 2**31 else np.int64  # row numbers fit in 32 bits below 2^31 rows
        self.person = np.repeat(np.arange(n_persons, dtype=np.int32), self.length)
        self._hit = np.zeros(self.size, bool)

    def periods_from(self, p_lo: int) -> np.ndarray:
        """Each row's period as an offset from ``p_lo`` (row number − the person's first row + their pmin)."""
        rel = np.repeat((self.pmin - self.offset - p_lo).astype(self.index), self.length)
        rel += np.arange(self.size, dtype=self.index)
        return rel

    def row(self, person: np.ndarray, period: np.ndarray) -> np.ndarray:
        return self.offset[person] + period - self.pmin[person]

    def _flag(self, rows: np.ndarray) -> pl.Series:
        self._hit.fill(False)
        self._hit[rows] = True
        return pl.Series(self._hit)  # a copy, packed into bits

    def covered(self, person: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> pl.Series:
        """Flag of the grid rows covered by any of the intervals [p0, p1] (each expanded to its rows)."""
        if not len(person):
            return self._flag(np.zeros(0, self.index))
        length = p1 - p0 + 1
        first_row = self.row(person, p0)
        # rows of interval j are first_row[j], first_row[j] + 1, …: one running sum of steps that are 1
        # except where an interval starts, in a single array
        starts = np.cumsum(length) - length
        steps = np.ones(int(starts[-1] + length[-1]), dtype=self.index)
        steps[starts] = np.diff(first_row, prepend=first_row[:1] * 0) - np.r_[0, length[:-1] - 1]
        return self._flag(np.cumsum(steps, out=steps))

    def at(self, person: np.ndarray, period: np.ndarray) -> pl.Series:
        return self._flag(self.row(person, period))


def _by_category(arrays: dict[str, np.ndarray]) -> Callable[[int], dict[str, np.ndarray]]:
    """Arrays regrouped by their category ``c`` (stably: by person within one), as a look-up of slices.

    One small-integer sort (radix) and one gather per array, instead of a mask over every row per flag.
    """
    cats = arrays["c"]
    order = np.argsort(cats.astype(np.int16), kind="stable")
    grouped = {k: v[order] for k, v in arrays.items() if k != "c"}
    bounds = np.searchsorted(cats[order], np.arange(int(cats.max(initial=0)) + 2))

    def of(cat: int) -> dict[str, np.ndarray]:
        lo, hi = (bounds[cat], bounds[cat + 1]) if 0 <= cat < len(bounds) - 1 else (0, 0)
        return {k: v[lo:hi] for k, v in grouped.items()}

    return of


def build_panel(events: dict[str, pl.DataFrame], plan: ReleasePlan, as_of: dt.date) -> pl.DataFrame:
    """The panel (keyed by person_idx), ordered by person and period."""
    yearly = plan.period == "year"
    specs = [s for s in panel_columns(plan) if s.name != "person_key"]
    ivals = pl.concat([_intervals(d, df, as_of, yearly) for d, df in events.items()])
    points = pl.concat([p for d, df in events.items() for p in _points(d, df, yearly)]
                       or [pl.DataFrame(schema={"person_idx": pl.Int32, "p": pl.Int32, "c": pl.Int8})])
    if ivals.is_empty():
        return conform(pl.DataFrame(), specs).with_columns(pl.lit(None, dtype=pl.Int32).alias("person_idx"))
    n_persons = int(ivals.get_column("person_idx").max()) + 1
    if not points.is_empty():
        n_persons = max(n_persons, int(points.get_column("person_idx").max()) + 1)
    cols = {c: ivals.get_column(c).to_numpy() for c in ("person_idx", "p0", "p1", "c")}
    pts = {c: points.get_column(c).to_numpy() for c in ("person_idx", "p", "c")}
    del ivals, points
    grid = _Grid(n_persons, np.concatenate([cols["person_idx"], pts["person_idx"]]),
                 np.concatenate([cols["p0"], pts["p"]]), np.concatenate([cols["p1"], pts["p"]]))

    by_cat, pts_by_cat = _by_category(cols), _by_category(pts)

    def covered(cat: int) -> np.ndarray:
        # one category's intervals at a time: only they are expanded, never all intervals per flag
        c = by_cat(cat)
        return grid.covered(c["person_idx"], c["p0"], c["p1"])

    def at(cat: int) -> np.ndarray:
        c = pts_by_cat(cat)
        return grid.at(c["person_idx"], c["p"])

    hmis = {g: covered(c) for g, c in _HMIS.items()}
    absent, present = covered(_SCHOOL_ABSENT), covered(_SCHOOL_PRESENT)
    in_hmis = covered(_HMIS_UNTYPED)
    for flag in hmis.values():
        in_hmis = in_hmis | flag
    p_lo = int(grid.pmin[grid.pmax >= 0].min())
    labels = _labels(p_lo, int(grid.pmax.max()), yearly)
    at_label = pl.Series(grid.periods_from(p_lo))
    flags = pl.DataFrame([
        (absent | present | covered(_SCHOOL_UNKNOWN)).alias("in_school"),
        absent.alias("_absent"), present.alias("_present"),
        covered(_WORKFORCE).alias("in_workforce_program"),
        at(_Q2_YES).alias("_q2_yes"), at(_Q2_NO).alias("_q2_no"), at(_Q4_YES).alias("_q4_yes"),
        at(_Q4_NO).alias("_q4_no"),
        in_hmis.alias("in_hmis"),
        *[flag.alias(f"in_hmis_{g}") for g, flag in hmis.items()],
        at(_PERM_YES).alias("exited_to_permanent_housing"),
    ])
    del hmis, absent, present, in_hmis

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
