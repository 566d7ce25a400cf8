"""README.md of a release: what is in it, how to load it, one longitudinal question, and the privacy rules."""

from __future__ import annotations

from typing import Any

#: The worked example, shared with docs/analysts.md (a test runs it against a fixture release).
EXAMPLE = '''\
import polars as pl
import cilink

r = cilink.open_release("{path}")
sy = pl.col("school_year").str.slice(0, 4).cast(pl.Int32)     # school year by its first calendar year

# students who were in an HMIS project during a school year in which they were enrolled
hmis = r.panel.filter(pl.col("in_school") & pl.col("in_hmis")).select("person_key", year=sy).unique()
# was each student chronically absent in each school year?
absent = (r.panel.filter(pl.col("in_school"))
          .group_by("person_key", year=sy).agg(pl.col("chronically_absent").max()))
# join each HMIS year to the student's following school year
following = hmis.join(absent.with_columns(pl.col("year") - 1), on=["person_key", "year"])
print(following.select(students=pl.len(), chronically_absent=pl.col("chronically_absent").sum()).collect())
'''


def render_readme(manifest: dict[str, Any], project: str) -> str:
    """The release's README.md for analysts (no data values; counts only as in the manifest)."""
    prof = manifest["profile"]
    anon = manifest["anonymization"]
    rows = manifest["row_counts"]
    gen = ", ".join(f"{k}: {v}" for k, v in anon["generalization"].items())
    dates = ", ".join(f"{k} → {v}" for k, v in prof["date_precision"].items())
    rid = manifest["release_id"]
    files = "\n".join(["| file | contents | rows |", "|---|---|---|"] + [f"| {f} | {what} | {n} |" for f, what, n in (
        ("`persons.parquet`", "one row per person: `person_key`, generalized birth year, sex, race/ethnicity, "
         "geography, partners and domains, first/last period seen", rows["persons.parquet"]),
        ("`events/domain=…/`", "one row per school enrollment year, workforce program participation or HMIS "
         "enrollment (hive-partitioned by `domain`)", rows["events"]),
        ("`spells.parquet`", "program spells with start, end and outcome", rows["spells.parquet"]),
        ("`panel.parquet`", f"person × {prof['panel_period']} with status flags (in school, chronically absent, "
         "in a workforce program, employed after exit, in an HMIS project by type, exited to permanent housing)",
         rows["panel.parquet"]),
        ("`dictionary.json`, `DICTIONARY.md`", "every column: type, meaning, allowed values, source fields", ""),
        ("`manifest.json`", "release id, cilink version, config hash, inputs, link model summary, sha256 of every "
         "file", ""))])
    return f"""# Release {rid}

De-identified longitudinal dataset of **{project}**, made by cilink {manifest["cilink_version"]}
(profile `{prof["profile"]}`, audience `{manifest["audience"]}`, data through {manifest["as_of"]}).

{files}
`person_key` joins the tables. It is a keyed hash of cilink's internal person id: the same person has the
same key in every release made for audience `{manifest["audience"]}`, and a different one for other audiences.

## Loading

No cilink needed: polars `pl.scan_parquet("persons.parquet")`, `pl.scan_parquet("events/", hive_partitioning=True)`;
pandas `pd.read_parquet("events")`; DuckDB `SELECT * FROM read_parquet('events/*/*.parquet', hive_partitioning = true)`;
Spark `spark.read.parquet("events")`. With cilink, `cilink.open_release(path)` returns polars LazyFrames.

## A longitudinal question in a few lines

Of students who had an HMIS enrollment, how many were chronically absent the following school year?

```python
{EXAMPLE.format(path=f"releases/{rid}")}```

## Privacy

- No names, SSNs, exact dates of birth, addresses, phone numbers, e-mails or partner ids: the privacy gate
  checked every column and value of this release against the restricted data before it was written.
- Dates are months or years ({dates}); ZIP codes are {prof["geography"]} (restricted ZIP3 areas → `000`);
  ages 90 and over are one category (`age_90_plus`).
- k-anonymity: every combination of birth year, sex, geography and race/ethnicity is shared by at least
  {anon["k"]} persons ({gen}); {anon["suppressed_persons"]} persons had these attributes suppressed (`qi_suppressed`).
- When you publish results, suppress any cell (count) below {prof["min_cell"]}, and do not try to identify anyone
  or link this release to other data about individuals.
"""
