"""The units indicators count, built from a release's tables only (``cilink.open_release`` LazyFrames).

A unit is one row per thing counted: a student's school year, a grade-9 cohort member, a workforce exit, a
housing exit, a person, a person-quarter. Cross-system columns (``hmis_enrolled``, ``housing_history`` …)
come from the person's other records in the same release — the measures only linked data can give.
Dates in a release are months (or years, under year precision); comparisons here are made at that precision.
Every unit carries ``_unit_id``, the same for the same unit in every release built with the same person keys
(small-cell suppression relates the counts of two releases through it, ``cilink.disclosure.suppression``).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from cilink.export.open import Release

#: Each unit's period column (None: the unit has no period, shown as "all").
UNIT_PERIOD: dict[str, str | None] = {
    "school_year": "school_year", "graduation_cohort": "cohort", "workforce_exit": "exit_year",
    "housing_exit": "exit_year", "person": None, "panel": "period",
}

#: Unit columns and their meaning (documentation and error messages; persons' sex, race_ethnicity and
#: birth_year are on every person-based unit).
#: Column holding each unit's id (person_key plus what tells a person's units apart).
UNIT_ID = "_unit_id"


def _unit_id(*parts: str) -> pl.Expr:
    """person_key|part|…, plus the rank among identical ones (two exits on the same months)."""
    base = pl.concat_str([pl.col(p).cast(pl.String).fill_null("") for p in ("person_key", *parts)], separator="|")
    return pl.concat_str([base, (pl.int_range(pl.len()).over(base)).cast(pl.String)], separator="#")


UNIT_COLUMNS: dict[str, dict[str, str]] = {
    "school_year": {
        "school_year": "school year, e.g. 2024-25", "partner": "school partner (first by id)",
        "grade_level": "highest grade that year", "days_enrolled": "days enrolled, all enrollments",
        "days_absent": "days absent, all enrollments", "chronically_absent": "missed >= 10% of enrolled days",
        "graduated": "graduated that year", "hmis_enrolled": "in an HMIS project during the school year",
        "workforce_enrolled": "in a workforce program during the school year",
    },
    "graduation_cohort": {
        "cohort": "school year the student was expected to graduate (grade 9 year + 3)",
        "cohort_start": "school year first seen in grade 9", "graduated_on_time": "graduated by the expected year",
        "complete": "the expected graduation year is over in the data",
        "hmis_during_high_school": "in an HMIS project during the four school years",
    },
    "workforce_exit": {
        "exit_year": "year of the program exit", "partner": "workforce partner", "program": "program",
        "employed_q2": "employed in the 2nd quarter after exit",
        "employed_q4": "employed in the 4th quarter after exit",
        "earnings_q2": "earnings in the 2nd quarter after exit (USD, rounded to 100)",
        "credential_attained": "attained a recognised credential",
        "housing_history": "had an HMIS enrollment starting before (or in the month of) the exit",
        "age_at_exit": "exit year - birth year (when the birth year is released exactly)",
    },
    "housing_exit": {
        "exit_year": "year of the exit", "partner": "HMIS partner", "program": "HUD project type group",
        "destination_category": "exit destination category",
        "exited_to_permanent_housing": "exit to a permanent destination",
        **{f"returned_{n}m": f"new street outreach/shelter/safe haven/TH enrollment within {n} months"
           for n in (6, 12, 24)},
        **{f"followup_{n}m": f"the data cover {n} months after the exit" for n in (6, 12, 24)},
    },
    "person": {"n_partners": "partners holding records of the person", "in_school": "appears in school data",
               "in_workforce": "appears in workforce data", "in_housing": "appears in HMIS data"},
    "panel": {"period": "quarter (or year)", "year": "calendar year", "in_school": "see the release dictionary"},
}

_GRADES = ["PK", "K", *[str(g) for g in range(1, 13)]]
_GRADE_RANK = {g: i - 1 for i, g in enumerate(_GRADES)}  # PK = -1, K = 0, 1 … 12
_HOMELESS_PROGRAMS = ["so", "es", "sh", "th"]
RETURN_MONTHS = (6, 12, 24)


def _month_index(name: str) -> pl.Expr:
    """Months since year 0 of a release period column ("YYYY-MM", or a year: its January)."""
    if name.endswith("_month"):
        text = pl.col(name)
        return text.str.slice(0, 4).cast(pl.Int32) * 12 + text.str.slice(5, 2).cast(pl.Int32) - 1
    return pl.col(name).cast(pl.Int32) * 12


def _year(name: str) -> pl.Expr:
    if name.endswith("_month"):
        return pl.col(name).str.slice(0, 4).cast(pl.Int16)
    return pl.col(name).cast(pl.Int16)


def _column(frame: pl.LazyFrame, stem: str) -> str:
    names = frame.collect_schema().names()
    return f"{stem}_month" if f"{stem}_month" in names else f"{stem}_year"


def as_of_index(release: Release) -> int:
    """The release's as-of period as a month index (a year-only as-of counts as its January: conservative)."""
    text = str(release.manifest.get("as_of") or "")
    if len(text) >= 7:
        return int(text[:4]) * 12 + int(text[5:7]) - 1
    if len(text) == 4:
        return int(text) * 12
    raise ValueError("the release manifest has no as_of period")


def _school_year_label(start: pl.Expr) -> pl.Expr:
    return pl.format("{}-{}", start, ((start + 1) % 100).cast(pl.String).str.zfill(2))


def _person_attributes(release: Release) -> pl.LazyFrame:
    return release.persons.select("person_key", "sex", "race_ethnicity", "birth_year")


def _panel_school_years(release: Release) -> pl.LazyFrame:
    """person × school year with HMIS / workforce participation in any period of it (quarterly panels carry
    the school year; a yearly panel's year touches two school years)."""
    p = release.panel.select("person_key", "school_year", "year", "in_hmis", "in_workforce_program")
    year = pl.col("year").cast(pl.Int32)
    both = pl.concat_list([_school_year_label(year - 1), _school_year_label(year)])
    p = p.with_columns(pl.when(pl.col("school_year").is_not_null()).then(pl.concat_list([pl.col("school_year")]))
                       .otherwise(both).alias("_sy")).explode("_sy")
    return p.group_by("person_key", pl.col("_sy").alias("school_year")).agg(
        pl.col("in_hmis").any().alias("hmis_enrolled"),
        pl.col("in_workforce_program").any().alias("workforce_enrolled"))


def school_year(release: Release) -> pl.LazyFrame:
    """One row per student and school year: attendance summed over the year's enrollments."""
    ev = release.events.filter((pl.col("domain") == "school") & pl.col("school_year").is_not_null())
    known = pl.col("days_enrolled").is_not_null() & pl.col("days_absent").is_not_null()
    rank = pl.col("grade_level").replace_strict(_GRADE_RANK, default=None, return_dtype=pl.Int8)
    years = ev.group_by("person_key", "school_year").agg(
        pl.col("partner").min(),
        pl.col("days_enrolled").filter(known).cast(pl.Int32).sum().alias("days_enrolled"),
        pl.col("days_absent").filter(known).cast(pl.Int32).sum().alias("days_absent"),
        rank.max().alias("_grade"),
        pl.when(pl.col("graduated").count() > 0).then(pl.col("graduated").any()).alias("graduated"),
    )
    enrolled = pl.col("days_enrolled")
    return (years.with_columns(
        pl.when(enrolled > 0).then(pl.col("days_absent") / enrolled >= 0.10).alias("chronically_absent"),
        pl.col("_grade").replace_strict({v: k for k, v in _GRADE_RANK.items()}, default=None,
                                        return_dtype=pl.String).alias("grade_level"))
        .join(_panel_school_years(release), on=["person_key", "school_year"], how="left")
        .with_columns(pl.col("hmis_enrolled").fill_null(False), pl.col("workforce_enrolled").fill_null(False),
                      pl.concat_str([pl.col("person_key"), pl.col("school_year")], separator="|").alias(UNIT_ID))
        .join(_person_attributes(release), on="person_key", how="left"))


def graduation_cohort(release: Release) -> pl.LazyFrame:
    """One row per student first seen in grade 9: cohort = the school year of expected graduation."""
    years = school_year(release).with_columns(pl.col("school_year").str.slice(0, 4).cast(pl.Int32).alias("_y"))
    start = years.filter(pl.col("_grade") == 9).group_by("person_key").agg(pl.col("_y").min().alias("_start"))
    grad = years.filter(pl.col("graduated").fill_null(False)).group_by("person_key").agg(
        pl.col("_y").min().alias("_grad"))
    hmis = (years.join(start, on="person_key").filter(
        (pl.col("_y") >= pl.col("_start")) & (pl.col("_y") <= pl.col("_start") + 3))
        .group_by("person_key").agg(pl.col("hmis_enrolled").any().alias("hmis_during_high_school")))
    expected = pl.col("_start") + 3
    ends = (expected + 1) * 12 + 5  # June of the expected year's second calendar year
    return (start.join(grad, on="person_key", how="left").join(hmis, on="person_key", how="left")
            .select("person_key", _school_year_label(expected).alias("cohort"),
                    _school_year_label(pl.col("_start")).alias("cohort_start"),
                    (pl.col("_grad").is_not_null() & (pl.col("_grad") <= expected)).alias("graduated_on_time"),
                    (ends <= as_of_index(release)).alias("complete"),
                    pl.col("hmis_during_high_school").fill_null(False), pl.col("person_key").alias(UNIT_ID))
            .join(_person_attributes(release), on="person_key", how="left"))


def workforce_exit(release: Release) -> pl.LazyFrame:
    """One row per workforce program exit, with the exiter's housing history."""
    ev = release.events
    exit_col, entry_col = _column(ev, "exit"), _column(ev, "entry")
    exits = ev.filter((pl.col("domain") == "workforce") & pl.col(exit_col).is_not_null())
    housing = ev.filter(pl.col("domain") == "housing").group_by("person_key").agg(
        _month_index(entry_col).min().alias("_first_hmis"))
    return (exits.join(housing, on="person_key", how="left")
            .join(_person_attributes(release), on="person_key", how="left")
            .select("person_key", _unit_id("partner", "program", entry_col, exit_col).alias(UNIT_ID),
                    "partner", "program", _year(exit_col).alias("exit_year"),
                    "employed_q2", "employed_q4", "earnings_q2", "credential_attained",
                    (pl.col("_first_hmis").is_not_null() & (pl.col("_first_hmis") <= _month_index(exit_col)))
                    .alias("housing_history"),
                    (_year(exit_col) - pl.col("birth_year")).alias("age_at_exit"),
                    "sex", "race_ethnicity", "birth_year"))


def housing_exit(release: Release) -> pl.LazyFrame:
    """One row per ended HMIS spell, with returns to homelessness after it (at month precision)."""
    sp = release.spells.filter(pl.col("domain") == "housing").with_row_index("_sid")
    start_col, end_col = _column(sp, "start"), _column(sp, "end")
    sp = sp.with_columns(_month_index(start_col).alias("_s"), _month_index(end_col).alias("_e"))
    exits = sp.filter(~pl.col("ongoing") & pl.col(end_col).is_not_null())
    later = sp.filter(pl.col("program").is_in(_HOMELESS_PROGRAMS)).select(
        "person_key", pl.col("_sid").alias("_rsid"), pl.col("_s").alias("_rs"))
    gaps = (exits.select("_sid", "person_key", "_e").join(later, on="person_key")
            .filter((pl.col("_rsid") != pl.col("_sid")) & (pl.col("_rs") >= pl.col("_e")))
            .group_by("_sid").agg((pl.col("_rs") - pl.col("_e")).min().alias("_gap")))
    as_of = as_of_index(release)
    return (exits.join(gaps, on="_sid", how="left").join(_person_attributes(release), on="person_key", how="left")
            .select("person_key", _unit_id("partner", "program", start_col, end_col).alias(UNIT_ID),
                    "partner", "program", _year(end_col).alias("exit_year"),
                    pl.col("outcome").alias("destination_category"),
                    pl.col("exited_to_permanent_housing").fill_null(False),
                    *[(pl.col("_gap").is_not_null() & (pl.col("_gap") <= n)).alias(f"returned_{n}m")
                      for n in RETURN_MONTHS],
                    *[(pl.col("_e") + n <= as_of).alias(f"followup_{n}m") for n in RETURN_MONTHS],
                    "sex", "race_ethnicity", "birth_year"))


def person(release: Release) -> pl.LazyFrame:
    """persons.parquet with a few convenience flags."""
    return release.persons.with_columns(
        pl.col("person_key").alias(UNIT_ID), pl.col("partners").list.len().alias("n_partners"),
        *[pl.col("domains").list.contains(d).alias(f"in_{d}") for d in ("school", "workforce", "housing")])


def panel(release: Release) -> pl.LazyFrame:
    """panel.parquet as it is (units are person-periods)."""
    return release.panel.with_columns(
        pl.concat_str([pl.col("person_key"), pl.col("period").cast(pl.String)], separator="|").alias(UNIT_ID))


UNITS: dict[str, Callable[[Release], pl.LazyFrame]] = {
    "school_year": school_year, "graduation_cohort": graduation_cohort, "workforce_exit": workforce_exit,
    "housing_exit": housing_exit, "person": person, "panel": panel,
}
