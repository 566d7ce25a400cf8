"""Rebuild ``src/cilink/encoding/data/public_names.csv``, the public name-frequency list `cilink encode --audit`
attacks with (``python -m benchmarks.public_names``).

Source: the US Social Security Administration's "top 200 names of the decade" tables for the 1960s-1990s
(first names, weighted by the number of births; https://www.ssa.gov/OACT/babynames/decades/) and the US Census
Bureau's 1,000 most frequent surnames (weighted by occurrences; by way of names.mongabay.com), both US
government works in the public domain, as bundled with their weights in faker's ``en_US`` person provider
(MIT licence; this machine has no internet beyond package registries, so the tables were not downloaded from
ssa.gov and census.gov directly). Names are standardized as cilink standardizes them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
from faker.providers.person.en_US import Provider

from cilink.ingest.standardize import name

OUT = Path(__file__).resolve().parents[1] / "src" / "cilink" / "encoding" / "data" / "public_names.csv"


def build() -> pl.DataFrame:
    rows: list[tuple[str, str, float, str]] = []
    for field, sources, origin in (
        ("first_name", (Provider.first_names_female, Provider.first_names_male), "SSA top names 1960s-1990s"),
        ("last_name", (Provider.last_names,), "US Census top 1000 surnames"),
    ):
        weights: Counter[str] = Counter()
        for table in sources:
            weights.update(dict(table))
        rows += [(field, v, w, origin) for v, w in weights.items()]
    frame = pl.DataFrame(rows, schema=["field", "value", "weight", "source"], orient="row")
    frame = frame.with_columns(name(pl.col("value")).alias("value")).drop_nulls("value")
    frame = frame.group_by("field", "value", "source").agg(pl.col("weight").sum())
    total = pl.col("weight").sum().over("field")
    return (frame.with_columns((pl.col("weight") / total).round(8).alias("share"))
            .sort(["field", "share", "value"], descending=[False, True, False])
            .select("field", "value", "share", "source"))


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    build().write_csv(OUT)
    print(OUT)
