"""persons.parquet: one row per linked person — person_key, generalized quasi-identifiers, where they appear.

A person's attributes come from all their staged rows across partners: for each one the most recent
non-null value (design §5: "most recent values"), ordered by the record's latest date, ties kept in input
order, so the choice is deterministic. The rows are sorted once by person and date; everything per person
is then read off runs of that sorted frame (numpy ``reduceat``), with no hash group-by over a million
groups.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from cilink.export.columns import DOMAINS, conform, persons_columns
from cilink.export.generalize import ReleasePlan, generalize_date, top_code_cutoff
from cilink.export.kanonymity import Anonymization, anonymize
from cilink.export.sources import event_intervals


def attach_keys(frame: pl.DataFrame, keys_in_order: pl.Series) -> pl.DataFrame:
    """Replace ``person_idx`` by ``person_key`` as the first column (a gather: the index is the key's rank)."""
    keys = keys_in_order.gather(frame.get_column("person_idx")).alias("person_key")
    return frame.drop("person_idx").insert_column(0, keys)


def _race_key() -> pl.Expr:
    # list operations are slow on millions of rows: rows carry a hash of their category list, and only the
    # few distinct lists are turned into text (see _race_text)
    r = pl.col("race_ethnicity")
    return pl.when(r.is_null() | (r.list.len() == 0)).then(None).otherwise(r.hash()).alias("_race_key")


def _race_text(events: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """_race_key → the categories, de-duplicated, sorted and joined by ';'."""
    distinct = pl.concat([df.select(_race_key(), "race_ethnicity").drop_nulls("_race_key")
                          .unique(subset="_race_key") for df in events.values()]).unique(subset="_race_key")
    return distinct.select("_race_key", pl.col("race_ethnicity").list.unique().list.sort().list.join(";")
                           .alias("_race"))


def _rows(events: dict[str, pl.DataFrame], partners: tuple[str, ...], as_of: dt.date) -> pl.DataFrame:
    """One row per staged event: person, dates as day numbers, partner/domain bits, raw quasi-identifiers."""
    parts = []
    for domain, df in events.items():
        start, end = event_intervals(domain)
        end = pl.min_horizontal(end.fill_null(as_of), pl.lit(as_of))
        parts.append(df.select(
            "person_idx",
            start.cast(pl.Int32).alias("_start"), end.cast(pl.Int32).alias("_end"),
            pl.coalesce(end, start).cast(pl.Int32).alias("_t"),
            (pl.lit(1, dtype=pl.Int64) * 2 ** pl.col("partner").cast(pl.Enum(partners)).to_physical()
             .cast(pl.Int64)).alias("_partner_bit"),
            pl.lit(1 << DOMAINS.index(domain), dtype=pl.Int64).alias("_domain_bit"),
            pl.col("dob").dt.year().cast(pl.Int32).alias("_birth_year"), "sex", _race_key(),
            pl.col("zip5").alias("_zip5"),
        ))
    return pl.concat(parts, how="vertical_relaxed").sort(["person_idx", "_t"], maintain_order=True, nulls_last=False)


def _latest(rows: pl.DataFrame, col: str) -> pl.DataFrame:
    """The most recent non-null value of ``col`` per person (rows sorted by person, then date)."""
    sub = rows.select("person_idx", col).filter(pl.col(col).is_not_null())
    return sub.filter(pl.col("person_idx") != pl.col("person_idx").shift(-1).fill_null(-1))


def _names_of(mask: pl.Series, names: tuple[str, ...], alias: str) -> pl.DataFrame:
    """Bit mask → sorted list of names, for the few distinct masks present."""
    distinct = mask.unique().sort().to_list()
    return pl.DataFrame({"_mask": distinct, alias: [[n for i, n in enumerate(names) if m >> i & 1] for m in distinct]},
                        schema={"_mask": pl.Int64, alias: pl.List(pl.String)})


def build_persons(events: dict[str, pl.DataFrame], n_persons: int, plan: ReleasePlan, as_of: dt.date,
                  partners: tuple[str, ...]) -> tuple[pl.DataFrame, Anonymization]:
    """The persons table (keyed by person_idx) and the k-anonymization applied to it.

    ``events`` are the staged rows per domain with ``person_idx`` (every person has at least one); raises
    KAnonymityUnreachable when k cannot be reached within the suppression limit.
    """
    rows = _rows(events, partners, as_of)
    person = rows.get_column("person_idx").to_numpy()
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    assert len(starts) == n_persons, "every person in the index has at least one staged row"
    partner_mask = pl.Series(np.bitwise_or.reduceat(rows.get_column("_partner_bit").to_numpy(), starts))
    domain_mask = pl.Series(np.bitwise_or.reduceat(rows.get_column("_domain_bit").to_numpy(), starts))
    first = pl.Series(np.minimum.reduceat(rows.get_column("_start").fill_null(2**31 - 1).to_numpy(), starts))
    last = pl.Series(np.maximum.reduceat(rows.get_column("_end").fill_null(-(2**31)).to_numpy(), starts))
    base = pl.DataFrame({"person_idx": pl.int_range(0, n_persons, dtype=pl.Int32, eager=True)})
    for col in ("_birth_year", "sex", "_race_key", "_zip5"):
        base = base.join(_latest(rows, col), on="person_idx", how="left", maintain_order="left")
    del rows
    qi = base.join(_race_text(events), on="_race_key", how="left", maintain_order="left").drop("_race_key")
    anon, result = anonymize(qi, k=plan.k, max_suppression=plan.max_suppression, zip5=plan.zip5,
                             cutoff=top_code_cutoff(as_of))
    p = plan.derived_precision
    stem = "month" if p == "month" else "year"
    seen = pl.DataFrame({
        "person_idx": base.get_column("person_idx"), "_pm": partner_mask, "_dm": domain_mask,
        f"first_seen_{stem}": pl.select(generalize_date(pl.lit(first.cast(pl.Int32).cast(pl.Date)), p)).to_series(),
        f"last_seen_{stem}": pl.select(generalize_date(pl.lit(last.cast(pl.Int32).cast(pl.Date)), p)).to_series(),
    })
    seen = (seen.join(_names_of(partner_mask, partners, "partners"), left_on="_pm", right_on="_mask", how="left",
                      maintain_order="left")
            .join(_names_of(domain_mask, DOMAINS, "domains"), left_on="_dm", right_on="_mask", how="left",
                  maintain_order="left"))
    persons = anon.join(seen, on="person_idx", how="left").sort("person_idx")
    specs = [s for s in persons_columns(plan) if s.name != "person_key"]
    return conform(persons, specs).with_columns(persons.get_column("person_idx")), result
