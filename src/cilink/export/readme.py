"""README.md of a release: what it is (its tier and label), what is in it, how to load it, one longitudinal
question, and what it does and does not protect, with the measured risk figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cilink.config import ReleaseTier
from cilink.export.labels import agreement_lines, percent, risk_table, tier_label, tier_of

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


#: What each record-level table holds (row_counts key → README line); ``{period}`` is the panel period.
TABLES: dict[str, tuple[str, str]] = {
    "persons.parquet": ("`persons.parquet`", "one row per person: `person_key`, generalized birth year, sex, "
                        "race/ethnicity, geography, partners and domains, first/last period seen"),
    "events": ("`events/domain=…/`", "one row per school enrollment year, workforce program participation or HMIS "
               "enrollment (hive-partitioned by `domain`)"),
    "spells.parquet": ("`spells.parquet`", "program spells with start, end and outcome"),
    "panel.parquet": ("`panel.parquet`", "person × {period} with status flags (in school, chronically absent, in a "
                      "workforce program, employed after exit, in an HMIS project by type, exited to permanent "
                      "housing)"),
}


def _files(manifest: Mapping[str, Any], tables: Mapping[str, tuple[str, str]]) -> str:
    period = manifest["profile"].get("panel_period", "period")
    rows = [(tables[name][0], tables[name][1].format(period=period), n) if name in tables
            else (f"`{name}`", "see DICTIONARY.md", n) for name, n in manifest["row_counts"].items()]
    rows += [("`dictionary.json`, `DICTIONARY.md`", "every column: type, meaning, allowed values, source fields", ""),
             ("`manifest.json`", "release id, tier, cilink version, config hash, inputs, link model summary, risk "
              "figures, sha256 of every file", "")]
    return "\n".join(["| file | contents | rows |", "|---|---|---|"] + [f"| {f} | {w} | {n} |" for f, w, n in rows])


def _agreement(manifest: Mapping[str, Any]) -> str:
    dua = manifest.get("data_use_agreement") or {}
    lines = "\n".join(f"- {line}" for line in agreement_lines(manifest))
    return f"""## Data-use agreement

This release is personal data. It was exported for one named recipient under a data-use agreement, and the
export is recorded in the workspace's audit log with that recipient.

{lines}

Use it only for the purpose above, only in the controlled environment the agreement names, by the people it
names; do not pass it on, link it to other data about individuals or try to identify anyone; return or
destroy it (and every copy and extract) when the agreement ends on {dua.get("expires", "its expiry date")}.
"""


def _research_privacy(manifest: Mapping[str, Any]) -> str:
    prof, anon, risk = manifest["profile"], manifest.get("anonymization") or {}, manifest.get("risk")
    dates = ", ".join(f"{k} → {v}" for k, v in prof["date_precision"].items())
    if prof.get("safe_harbor"):
        shape = ("Dates and geography have the HIPAA Safe Harbor shape (years, ZIP3). Safe Harbor also requires "
                 "that what remains cannot identify anyone; the figures above show that it can, so no "
                 "Safe Harbor or de-identification claim is made.")
    else:
        shape = f"Profile {prof.get('description', prof['profile'])}: this is not the Safe Harbor shape."
    figures = (f"""
Measured on this release ({risk["attributes"]} released attributes in {len(risk["tables"])} tables): a person's
record is their `persons` row plus all their rows (repeats included) in every other table; persons with
identical records form a class, and a person's re-identification risk is 1 / the size of their class.

{risk_table(risk)}

{percent(risk["joined_record"]["share_unique"])} of persons are unique on their whole record: whoever knows enough of
one person's history (a contributing partner knows what it sent) can find that person here.
""" if risk else "")
    k_line = (f"- Birth year, sex, geography and race/ethnicity were generalized so that each combination of those "
              f"four columns alone is shared by at least {anon['k']} persons "
              f"({', '.join(f'{k}: {v}' for k, v in anon.get('generalization', {}).items())}; "
              f"{anon.get('suppressed_persons', 0)} persons suppressed). That is a property of four columns, not a "
              "protection of the record: see the figures above.\n" if "k" in anon else "")
    return f"""## Privacy: what this release does and does not protect

**Pseudonymised personal data — not de-identified.** Full event detail is kept (days enrolled and present,
codes, earnings, destinations), and most records are unique.
{figures}
- Removed: names, SSNs, exact dates of birth, addresses, phone numbers, e-mails and partner ids; the privacy
  gate checked every column and value against the restricted data before it was written.
- Dates: {dates}; geography: {prof["geography"]} (restricted ZIP3 areas → `000`); ages 90 and over are one
  category (`age_90_plus`). {shape}
{k_line}- When you publish results, publish aggregates only and suppress any cell (count) below {prof["min_cell"]}.
"""


def _gate_privacy(manifest: Mapping[str, Any]) -> str:
    prof, anon, risk = manifest["profile"], manifest.get("anonymization") or {}, manifest.get("risk")
    dates = ", ".join(f"{k} → {v}" for k, v in prof["date_precision"].items())
    gen = ", ".join(f"{k}: {v}" for k, v in anon.get("generalization", {}).items())
    k_line = (f"- k-anonymity: every combination of birth year, sex, geography and race/ethnicity is shared by at "
              f"least {anon['k']} persons ({gen}); {anon.get('suppressed_persons', 0)} persons had these attributes "
              "suppressed (`qi_suppressed`).\n" if "k" in anon else "")
    figures = f"\nMeasured on this release:\n\n{risk_table(risk)}\n" if risk else ""
    return f"""## Privacy
{figures}
- No names, SSNs, exact dates of birth, addresses, phone numbers, e-mails or partner ids: the privacy gate
  checked every column and value of this release against the restricted data before it was written.
- Dates: {dates}; ZIP codes are {prof["geography"]} (restricted ZIP3 areas → `000`); ages 90 and over are one
  category (`age_90_plus`). Profile: {prof.get("description", prof["profile"])}.
{k_line}- When you publish results, suppress any cell (count) below {prof["min_cell"]}, and do not try to identify
  anyone or link this release to other data about individuals.
"""


def render_readme(manifest: Mapping[str, Any], project: str, *,
                  tables: Mapping[str, tuple[str, str]] = TABLES, example: str | None = EXAMPLE) -> str:
    """The release's README.md for analysts (no data values; counts only as in the manifest).

    The tier, its label and the data-use agreement come from the manifest (``tier``, ``label``,
    ``data_use_agreement``; a manifest without a tier is taken as research, the tier that claims least),
    and the risk figures from its ``risk`` section. ``tables`` describes the files by their ``row_counts``
    key (others are listed as "see DICTIONARY.md"); ``example`` is the worked question (None: none).
    Example: ``render_readme(json.loads(Path("manifest.json").read_text()), "Holyoke C2C")``
    """
    tier = tier_of(manifest)
    label = manifest.get("label") or tier_label(tier)
    prof = manifest["profile"]
    rid, audience = manifest["release_id"], manifest["audience"]
    research = tier == ReleaseTier.RESEARCH
    dua = manifest.get("data_use_agreement") or {}
    if research:
        intro = (f"Pseudonymised longitudinal record-level data of **{project}**, with full event detail, for "
                 f"**{dua.get('recipient', 'the named recipient')}** under data-use agreement "
                 f"`{dua.get('agreement', '?')}` (until {dua.get('expires', '?')}).")
    else:
        intro = f"Longitudinal dataset of **{project}**."
    worked = (f"""
## A longitudinal question in a few lines

Of students who had an HMIS enrollment, how many were chronically absent the following school year?

```python
{example.format(path=f"releases/{rid}")}```
""" if example else "")
    return f"""# Release {rid}

**{label[0].upper() + label[1:]}.**

{intro} Made by cilink {manifest["cilink_version"]} (tier `{tier}`, profile `{prof["profile"]}`, audience
`{audience}`, data through {manifest["as_of"]}).

{_agreement(manifest) if research else ""}
{_files(manifest, tables)}

`person_key` joins the tables. It is a keyed hash of cilink's internal person id: the same person has the
same key in every release made for audience `{audience}`, and a different one for other audiences. A
different key does not stop two releases being matched on their content (dates, codes, counts): treat any
two releases about the same people as linkable.

## Loading

No cilink needed: polars `pl.scan_parquet("persons.parquet")`, `pl.scan_parquet("events/", hive_partitioning=True)`;
pandas `pd.read_parquet("events")`; DuckDB `SELECT * FROM read_parquet('events/*/*.parquet', hive_partitioning = true)`;
Spark `spark.read.parquet("events")`. With cilink, `cilink.open_release(path)` returns polars LazyFrames.
{worked}
{_research_privacy(manifest) if research else _gate_privacy(manifest)}"""
