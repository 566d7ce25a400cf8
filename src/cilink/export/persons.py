"""persons.parquet: one row per linked person — person_key, generalized quasi-identifiers, where they appear.

A person's attributes come from all their staged rows across partners: for each one the most recent
non-null value (design §5: "most recent values"), ordered by the record's latest date, ties going to the
later row (domains in release order, then staged order), so the choice is deterministic. Rows arrive
grouped by person in each domain (``load_sources``): everything per person is read off those runs with
numpy ``reduceat`` and folded across the domains — no sort and no hash group-by over ten million rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from cilink.export.columns import DOMAINS, conform, persons_columns
from cilink.export.generalize import ReleasePlan, generalize_dates, top_code_cutoff
from cilink.export.kanonymity import Anonymization, anonymize
from cilink.export.sources import CLEAR_BIRTH_YEAR, intervals_of, race_text

#: Raw quasi-identifiers, each the person's most recent non-null value.
_QI = ("_birth_year", "sex", "_race", "_zip5")


def attach_keys(frame: pl.DataFrame, keys_in_order: pl.Series) -> pl.DataFrame:
    """Replace ``person_idx`` by ``person_key`` as the first column (a gather: the index is the key's rank)."""
    keys = keys_in_order.gather(frame.get_column("person_idx")).alias("person_key")
    return frame.drop("person_idx").insert_column(0, keys)


def race_of(df: pl.DataFrame) -> pl.Expr:
    """The recorded race/ethnicity combination as text (``load_sources`` gives text already; lists are converted)."""
    r = pl.col("race_ethnicity")
    return (race_text(r) if isinstance(df.schema["race_ethnicity"], pl.List) else r).alias("_race")


def birth_year(df: pl.DataFrame) -> pl.Expr:
    """Year of ``dob``, or the clear birth year an encoded partner staged instead (``CLEAR_BIRTH_YEAR``)."""
    year = pl.col("dob").dt.year().cast(pl.Int32)
    if CLEAR_BIRTH_YEAR in df.columns:
        year = pl.coalesce(year, pl.col(CLEAR_BIRTH_YEAR).cast(pl.Int32))
    return year.alias("_birth_year")


def _domain_rows(domain: str, df: pl.DataFrame, partners: tuple[str, ...], as_of: dt.date) -> pl.DataFrame:
    """One row per staged event, grouped by person (stable): dates as day numbers, partner code, raw QIs."""
    start, end = intervals_of(domain, df)
    end = pl.min_horizontal(end.fill_null(as_of), pl.lit(as_of))
    rows = df.select(
        pl.col("person_idx").cast(pl.Int64),
        start.cast(pl.Int32).alias("_start"), end.cast(pl.Int32).alias("_end"),
        pl.coalesce(end, start).cast(pl.Int32).alias("_t"),
        pl.col("partner").cast(pl.Enum(partners)).to_physical().cast(pl.Int64).alias("_pc"),
        birth_year(df), "sex", race_of(df),
        pl.col("zip5").alias("_zip5"),
    )
    person = rows.get_column("person_idx").to_numpy()
    if not (person[1:] >= person[:-1]).all():  # not in person order: sort (stably, keeping staged order)
        rows = rows.sort("person_idx", maintain_order=True)
    return rows


def _runs(person: np.ndarray) -> np.ndarray:
    """Start of each run of equal persons."""
    return np.flatnonzero(np.r_[True, person[1:] != person[:-1]]) if len(person) else np.zeros(0, np.int64)


def _latest_rows(person: np.ndarray, t: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Per person with a valid row (rows grouped by person): the person, their latest valid row, its time.

    "Latest" is the greatest ``t``; among rows with that ``t``, the last one. ``valid=None``: every row.
    """
    idx = np.arange(len(person)) if valid is None else np.flatnonzero(valid)
    p, tt = (person, t) if valid is None else (person[idx], t[idx])
    starts = _runs(p)
    if not len(starts):
        return p, idx, tt
    top = np.maximum.reduceat(tt, starts)
    at_top = np.where(tt == np.repeat(top, np.diff(np.r_[starts, len(p)])), np.arange(len(p)), -1)
    return p[starts], idx[np.maximum.reduceat(at_top, starts)], top


@dataclass
class _Fold:
    """Per-person aggregates, folded over the domains' rows one domain at a time."""

    n: int

    def __post_init__(self) -> None:
        self.partner_mask = np.zeros(self.n, np.int64)
        self.domain_mask = np.zeros(self.n, np.int64)
        self.first = np.full(self.n, 2**31 - 1, np.int64)
        self.last = np.full(self.n, -(2**31), np.int64)
        # per quasi-identifier: time, domain and row of the latest non-null value so far
        self.best = {c: (np.full(self.n, np.iinfo(np.int64).min, np.int64), np.full(self.n, -1, np.int64),
                         np.zeros(self.n, np.int64)) for c in _QI}

    def add(self, d: int, domain: str, rows: pl.DataFrame) -> None:
        person = rows.get_column("person_idx").to_numpy()
        runs = _runs(person)
        if not len(runs):
            return
        who = person[runs]  # one run per person: no repeated index below

        def per_run(col: str, reduce: np.ufunc, fill: int) -> np.ndarray:
            return reduce.reduceat(rows.get_column(col).fill_null(fill).to_numpy().astype(np.int64), runs)

        self.partner_mask[who] |= np.bitwise_or.reduceat(np.left_shift(1, rows.get_column("_pc").to_numpy()), runs)
        self.domain_mask[who] |= 1 << DOMAINS.index(domain)
        self.first[who] = np.minimum(self.first[who], per_run("_start", np.minimum, 2**31 - 1))
        self.last[who] = np.maximum(self.last[who], per_run("_end", np.maximum, -(2**31)))
        t = rows.get_column("_t").fill_null(np.iinfo(np.int64).min).to_numpy().astype(np.int64)
        every_row = None  # the answer for columns without nulls, computed once
        for c in _QI:
            values = rows.get_column(c)
            if values.null_count():
                p, row, top = _latest_rows(person, t, values.is_not_null().to_numpy())
            else:
                if every_row is None:
                    every_row = _latest_rows(person, t, None)
                p, row, top = every_row
            best_t, best_d, best_row = self.best[c]
            win = top >= best_t[p]  # a later domain wins ties, as it follows in release order
            best_t[p[win]], best_d[p[win]], best_row[p[win]] = top[win], d, row[win]

    def latest(self, c: str, domain_rows: list[pl.DataFrame]) -> pl.DataFrame:
        """(person_idx, c): each person's latest non-null value of ``c``, persons without one left out."""
        _t, best_d, best_row = self.best[c]
        parts = []
        for d, rows in enumerate(domain_rows):
            who = np.flatnonzero(best_d == d)
            parts.append(pl.DataFrame({"person_idx": pl.Series(who, dtype=pl.Int32),
                                       c: rows.get_column(c).gather(best_row[who])}))
        return pl.concat(parts, how="vertical_relaxed").sort("person_idx")


def _names_of(mask: pl.Series, names: tuple[str, ...], alias: str) -> pl.DataFrame:
    """Bit mask → sorted list of names, for the few distinct masks present."""
    distinct = mask.unique().sort().to_list()
    return pl.DataFrame({"_mask": distinct, alias: [[n for i, n in enumerate(names) if m >> i & 1] for m in distinct]},
                        schema={"_mask": pl.Int64, alias: pl.List(pl.String)})


def person_base(events: dict[str, pl.DataFrame], n_persons: int, as_of: dt.date,
                partners: tuple[str, ...]) -> pl.DataFrame:
    """One row per person_idx (restricted): raw quasi-identifiers (``_birth_year``, ``sex``, ``_race``,
    ``_zip5``: each the latest non-null value across partners), partner and domain bit masks (``_pm``,
    ``_dm``) and the first and last day with any record (``_first``, ``_last``, day numbers)."""
    fold = _Fold(n_persons)
    domain_rows = [_domain_rows(domain, df, partners, as_of) for domain, df in events.items()]
    for d, (domain, rows) in enumerate(zip(events, domain_rows, strict=True)):
        fold.add(d, domain, rows)
    assert bool((fold.domain_mask > 0).all()), "every person in the index has at least one staged row"
    base = pl.DataFrame({"person_idx": pl.int_range(0, n_persons, dtype=pl.Int32, eager=True)})
    for col in _QI:
        base = base.join(fold.latest(col, domain_rows), on="person_idx", how="left", maintain_order="left")
    return base.with_columns(pl.Series("_pm", fold.partner_mask), pl.Series("_dm", fold.domain_mask),
                             pl.Series("_first", fold.first), pl.Series("_last", fold.last))


def build_persons(events: dict[str, pl.DataFrame], n_persons: int, plan: ReleasePlan, as_of: dt.date,
                  partners: tuple[str, ...]) -> tuple[pl.DataFrame, Anonymization]:
    """The persons table (keyed by person_idx) and the k-anonymization applied to it.

    ``events`` are the staged rows per domain with ``person_idx`` (every person has at least one); raises
    KAnonymityUnreachable when k cannot be reached within the suppression limit.
    """
    base = person_base(events, n_persons, as_of, partners)
    partner_mask, domain_mask = base.get_column("_pm"), base.get_column("_dm")
    first, last = base.get_column("_first"), base.get_column("_last")
    base = base.drop("_pm", "_dm", "_first", "_last")
    anon, result = anonymize(base, k=plan.k, max_suppression=plan.max_suppression, zip5=plan.zip5,
                             cutoff=top_code_cutoff(as_of))
    p = plan.derived_precision
    stem = "month" if p == "month" else "year"
    seen = pl.DataFrame({
        "person_idx": base.get_column("person_idx"), "_pm": partner_mask, "_dm": domain_mask,
        f"first_seen_{stem}": generalize_dates(first.cast(pl.Int32).cast(pl.Date), p),
        f"last_seen_{stem}": generalize_dates(last.cast(pl.Int32).cast(pl.Date), p),
    })
    seen = (seen.join(_names_of(partner_mask, partners, "partners"), left_on="_pm", right_on="_mask", how="left",
                      maintain_order="left")
            .join(_names_of(domain_mask, DOMAINS, "domains"), left_on="_dm", right_on="_mask", how="left",
                  maintain_order="left"))
    persons = anon.join(seen, on="person_idx", how="left").sort("person_idx")
    specs = [s for s in persons_columns(plan) if s.name != "person_key"]
    return conform(persons, specs).with_columns(persons.get_column("person_idx")), result
