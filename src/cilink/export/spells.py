"""spells.parquet: program spells — a person's events in one domain program, merged across short gaps.

A spell is a run of a person's events with the same partner and program (school: any enrollment; workforce:
the program; housing: the HUD project type group) in which each event starts at most ``GAP_DAYS`` (by domain) after
the latest end so far. Spells are computed on exact dates inside the restricted zone; only their generalized
start and end leave it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from cilink.export.columns import conform, spells_columns
from cilink.export.events import project_type_group
from cilink.export.generalize import ReleasePlan, generalize_dates
from cilink.export.sources import intervals_of

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

_EXTRA: dict[str, list[tuple[str, str]]] = {  # (staged field, spell column) read off a spell's last event
    "school": [],
    "workforce": [("employed_q2", "_employed_q2"), ("employed_q4", "_employed_q4"), ("earnings_q2", "_earnings")],
    "housing": [("destination_category", "_destination")],
}


def _spell_bounds(person: np.ndarray, pc: np.ndarray, prc: np.ndarray, start: np.ndarray, end: np.ndarray,
                  gap: int) -> dict[str, np.ndarray]:
    """Spells of event rows sorted by group (person, partner, program), start and end.

    A row starts a new spell when it starts more than ``gap`` days after the latest end so far in its group.
    The running maximum must restart at every group; instead of a window function or a group-by (slow on
    millions of groups) each group's days are offset by ``_GROUP_STRIDE`` × its sequence number, so one
    global running maximum never carries over from the previous group. Returns, per spell, its first and
    last row (``i0``, ``i1``), latest end (``end``) and sequence number within its group (``seq``).
    Temporaries are updated in place: at millions of rows each new array is mostly page faults.
    """
    n = len(person)
    gfirst = np.ones(n, dtype=bool)
    np.not_equal(person[1:], person[:-1], out=gfirst[1:])
    gfirst[1:] |= pc[1:] != pc[:-1]
    gfirst[1:] |= prc[1:] != prc[:-1]
    offset = np.cumsum(gfirst, dtype=np.int64)
    offset -= 1
    offset *= _GROUP_STRIDE
    reach = end.astype(np.int64)
    reach += offset
    np.maximum.accumulate(reach, out=reach)
    later = offset[1:] + start[1:]  # start of each row past the previous row's reach, beyond the gap?
    later -= reach[:-1]
    new = gfirst.copy()
    new[1:] |= later > gap
    del later
    i0 = np.flatnonzero(new)
    i1 = np.r_[i0[1:] - 1, n - 1] if n else i0
    spell = np.arange(len(i0))
    seq = spell - np.maximum.accumulate(np.where(gfirst[i0], spell, 0)) + 1
    return {"i0": i0, "i1": i1, "end": reach[i1] - offset[i1], "seq": seq}


def _program_code(domain: str, df: pl.DataFrame) -> pl.Expr:
    """Each row's program as its rank among the domain's programs in text order (null: last, as one program).

    Housing programs are project type groups: ranked from the few distinct HUD codes, not row by row.
    """
    if domain == "housing":
        codes = df.get_column("project_type").drop_nulls().unique().sort()
        groups = pl.DataFrame({"project_type": codes}).select(project_type_group()).to_series().to_list()
        ranked = sorted(set(groups))
        rank = pl.col("project_type").replace_strict(codes, [ranked.index(g) for g in groups], return_dtype=pl.Int16)
        return pl.when(pl.col("project_type").is_null()).then(pl.lit(len(ranked), dtype=pl.Int16)).otherwise(rank)
    programs = sorted(df.select(_program(domain).drop_nulls().unique()).to_series().to_list())
    return _program(domain).cast(pl.Enum(programs)).to_physical().cast(pl.Int16).fill_null(len(programs))


def domain_spells(domain: str, df: pl.DataFrame, partners: tuple[str, ...], as_of: dt.date) -> pl.DataFrame:
    """One domain's spells (keyed by person_idx), ordered by person, partner, program and start.

    Partner and program are sorted and grouped by integer codes (their rank), not by text. Events arrive
    grouped by person (``load_sources``), so the stable sort only reorders rows within a person.
    """
    start, end = intervals_of(domain, df)
    rows = df.select(
        pl.col("person_idx").cast(pl.Int32).alias("_person"),
        pl.col("partner").cast(pl.Enum(partners)).to_physical().cast(pl.Int16).alias("_pc"),
        _program_code(domain, df).alias("_prc"),
        start.cast(pl.Int32).alias("_start"),
        pl.min_horizontal(end.fill_null(as_of), pl.lit(as_of)).cast(pl.Int32).alias("_end"),
        _open(domain, end, as_of).fill_null(False).alias("_open"),
        (pl.col("graduated").fill_null(False) if domain == "school" else pl.lit(False)).alias("_graduated"),
        pl.int_range(pl.len(), dtype=pl.UInt32 if df.height < 2**32 else pl.UInt64).alias("_row"),
    ).filter(pl.col("_start").is_not_null())
    rows = rows.sort(["_person", "_pc", "_prc", "_start", "_end"], maintain_order=True)
    a = {c: rows.get_column(c).to_numpy() for c in rows.columns}
    del rows
    b = _spell_bounds(a["_person"], a["_pc"], a["_prc"], a["_start"], a["_end"], GAP_DAYS[domain])
    i0, i1 = b["i0"], b["i1"]

    def any_of(flags: np.ndarray) -> np.ndarray:
        return np.logical_or.reduceat(flags, i0) if len(i0) else flags[:0]

    # the last event's fields, read off only the events that end a spell
    raw = ["partner", *{"workforce": ["program"], "housing": ["project_type"]}.get(domain, [])]
    last = df.select(*raw, *[f for f, _ in _EXTRA[domain]]).gather(a["_row"][i1]).select(
        "partner", _program(domain).alias("program"), *[pl.col(f).alias(c) for f, c in _EXTRA[domain]])
    spells = last.with_columns(
        pl.Series("person_idx", a["_person"][i1]).cast(pl.Int32),
        pl.Series("_start", a["_start"][i0]).cast(pl.Int32).cast(pl.Date),
        pl.Series("_end", b["end"]).cast(pl.Int32).cast(pl.Date),
        pl.Series("spell_seq", b["seq"]).cast(pl.Int16),
        pl.Series("n_events", i1 - i0 + 1).cast(pl.Int16),
        pl.Series("ongoing", any_of(a["_open"])),
        pl.Series("_graduated", any_of(a["_graduated"])),
    )
    return spells.with_columns(pl.lit(domain).alias("domain"), _outcome(domain).alias("outcome")).with_columns(
        (pl.col("outcome") == "permanent").alias("exited_to_permanent_housing") if domain == "housing"
        else pl.lit(None, dtype=pl.Boolean).alias("exited_to_permanent_housing"))


def build_spells(events: dict[str, pl.DataFrame], plan: ReleasePlan, partners: tuple[str, ...],
                 as_of: dt.date) -> pl.DataFrame:
    """The spells table (keyed by person_idx), ordered by domain, then person, partner, program and start."""
    p = plan.derived_precision
    stem = "month" if p == "month" else "year"
    specs = [s for s in spells_columns(plan, partners) if s.name != "person_key"]
    parts = []
    for domain, df in events.items():
        spells = domain_spells(domain, df, partners, as_of)
        spells = spells.with_columns(
            generalize_dates(spells.get_column("_start"), p).alias(f"start_{stem}"),
            pl.when(pl.col("ongoing")).then(None).otherwise(generalize_dates(spells.get_column("_end"), p))
            .alias(f"end_{stem}"),
        )
        # conformed part by part and stacked as chunks: no copy of the whole table
        parts.append(conform(spells, specs).with_columns(spells.get_column("person_idx")))
    if not parts:
        return conform(pl.DataFrame(), specs).with_columns(pl.lit(None, dtype=pl.Int32).alias("person_idx"))
    # each domain's part is already ordered by person, partner, program and start
    return pl.concat(parts, how="vertical")
