"""Every column a release may contain, declared once: dtype, meaning, allowed values, source fields.

The builders select exactly these columns (``conform``), the dictionary is rendered from them, and the
privacy gate refuses any column not declared here and any value outside a declared vocabulary, pattern or
range. Columns that depend on the profile (``entry_month`` vs ``entry_year``, ``zip5``) come from the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cilink.export.generalize import ReleasePlan
from cilink.schemas import RaceEthnicity

PERSONS = "persons.parquet"
EVENTS = "events"
SPELLS = "spells.parquet"
PANEL = "panel.parquet"

DOMAINS = ("school", "workforce", "housing")
SEX = ("F", "M", "X")
GRADES = ("PK", "K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12")
DESTINATION_CATEGORIES = ("permanent", "temporary", "institutional", "homeless", "other", "unknown")

#: HUD project type code → the group used for panel flags and spells.
PROJECT_TYPE_GROUPS: dict[int, str] = {
    0: "es", 1: "es", 2: "th", 3: "psh", 4: "so", 6: "other", 7: "other", 8: "sh", 9: "oph", 10: "oph",
    11: "other", 12: "hp", 13: "rrh", 14: "ce",
}
PROJECT_GROUP_LABELS: dict[str, str] = {
    "es": "emergency shelter (HUD types 0, 1)", "th": "transitional housing (2)", "sh": "safe haven (8)",
    "rrh": "rapid re-housing (13)", "psh": "permanent supportive housing (3)",
    "oph": "other permanent housing (9, 10)", "so": "street outreach (4)", "ce": "coordinated entry (14)",
    "hp": "homelessness prevention (12)", "other": "services only, day shelter, other (6, 7, 11, unknown)",
}

#: Race/ethnicity values at each generalization level (see cilink.export.kanonymity).
RACE_SINGLE = tuple(str(r) for r in RaceEthnicity)
RACE_LEVEL1 = (*RACE_SINGLE, "multiple")
RACE_LEVEL2 = ("hispanic_latino", "white", "black_african_american", "asian", "other")

SCHOOL_OUTCOMES = ("graduated", "enrolled", "left")
WORKFORCE_OUTCOMES = ("enrolled", "exited_employed", "exited_not_employed", "exited_unknown")
HOUSING_OUTCOMES = ("enrolled", *DESTINATION_CATEGORIES)

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
KEY_PATTERN = r"^[0-9a-f]{32}$"


@dataclass(frozen=True)
class ColumnSpec:
    """One release column. ``vocabulary``/``pattern``/``value_range`` bound its values (checked by the gate)."""

    name: str
    dtype: pl.DataType
    description: str
    source: tuple[str, ...] = ()
    vocabulary: tuple[str, ...] | None = None
    pattern: str | None = None
    value_range: tuple[int, int] | None = None
    separator: str | None = None  # multi-valued text: each part must be in the vocabulary

    @property
    def open_text(self) -> bool:
        """Free partner-supplied text (school_id, program): checked value by value against identifiers."""
        return self.dtype == pl.String and self.vocabulary is None and self.pattern is None


def _date_col(plan: ReleasePlan, field: str, meaning: str) -> ColumnSpec:
    precision = plan.date_precision[field]
    name = plan.date_column(field)
    if precision == "year":
        return ColumnSpec(name, pl.Int16(), f"{meaning}: year", (field,), value_range=(1900, 2200))
    return ColumnSpec(name, pl.String(), f"{meaning}: month, YYYY-MM", (field,), pattern=MONTH_PATTERN)


def _derived_date_col(plan: ReleasePlan, stem: str, meaning: str, source: tuple[str, ...]) -> ColumnSpec:
    if plan.derived_precision == "year":
        return ColumnSpec(f"{stem}_year", pl.Int16(), f"{meaning}: year", source, value_range=(1900, 2200))
    return ColumnSpec(f"{stem}_month", pl.String(), f"{meaning}: month, YYYY-MM", source, pattern=MONTH_PATTERN)


def _key() -> ColumnSpec:
    return ColumnSpec("person_key", pl.String(),
                      "Pseudonymous person key: HMAC-SHA256 of the internal person id under this audience's "
                      "secret (128 bits, hex). Same person ⇒ same key in every release for the audience.",
                      pattern=KEY_PATTERN)


def persons_columns(plan: ReleasePlan) -> list[ColumnSpec]:
    """persons.parquet: one row per linked person, quasi-identifiers generalized to k-anonymity."""
    geo = [ColumnSpec("zip5", pl.String(), "5-digit ZIP of the most recent address (limited profile only); "
                      "null when generalized or suppressed", ("zip5",), pattern=r"^\d{5}$")] if plan.zip5 else []
    return [
        _key(),
        ColumnSpec("birth_year", pl.Int16(), "Birth year when released exactly; null when generalized to a band, "
                   "top-coded (age 90+), suppressed or unknown", ("dob",), value_range=(1900, 2200)),
        ColumnSpec("birth_year_min", pl.Int16(), "Earliest possible birth year (null: open-ended, age 90+)",
                   ("dob",), value_range=(1900, 2200)),
        ColumnSpec("birth_year_max", pl.Int16(), "Latest possible birth year (equals birth_year when exact)",
                   ("dob",), value_range=(1900, 2200)),
        ColumnSpec("age_90_plus", pl.Boolean(), "Aged 90 or older by the end of the data (birth year top-coded)",
                   ("dob",)),
        ColumnSpec("sex", pl.String(), "Sex as most recently recorded across partners", ("sex",), vocabulary=SEX),
        ColumnSpec("race_ethnicity", pl.String(),
                   "OMB SPD-15 categories as most recently recorded, generalized as the release needs: "
                   "categories joined by ';' (exact), or 'multiple', or 'other' (coarser levels)",
                   ("race_ethnicity",), vocabulary=(*RACE_LEVEL1, "other"), separator=";"),
        *geo,
        ColumnSpec("zip3", pl.String(), "First 3 ZIP digits of the most recent address; '000' for the HIPAA "
                   "restricted ZIP3 areas and when generalized", ("zip5",), pattern=r"^\d{3}$"),
        ColumnSpec("state", pl.String(), "State of the most recent address (from its ZIP3)", ("zip5",),
                   pattern=r"^[A-Z]{2}$"),
        ColumnSpec("qi_suppressed", pl.Boolean(), "True when this person's quasi-identifiers (birth year, sex, "
                   "race/ethnicity, geography) were suppressed to reach k-anonymity"),
        ColumnSpec("partners", pl.List(pl.String()), "Partners holding records of this person (sorted)",
                   ("_cilink_partner",)),
        ColumnSpec("domains", pl.List(pl.String()), "Domains the person appears in (sorted)",
                   ("_cilink_partner",), vocabulary=DOMAINS),
        _derived_date_col(plan, "first_seen", "First period with any record", ("entry_date", "school_year")),
        _derived_date_col(plan, "last_seen", "Last period with any record", ("exit_date", "entry_date",
                                                                              "school_year")),
    ]


def events_columns(plan: ReleasePlan, partners: tuple[str, ...]) -> list[ColumnSpec]:
    """events/domain=…/: one row per staged domain event, one schema across all domain partitions."""
    return [
        _key(),
        ColumnSpec("partner", pl.String(), "Partner that reported the event", ("_cilink_partner",),
                   vocabulary=partners),
        _date_col(plan, "entry_date", "Entry / enrollment start"),
        _date_col(plan, "exit_date", "Exit / enrollment end (null: open or not reported)"),
        ColumnSpec("school_year", pl.String(), "School year, e.g. 2024-25 (school)", ("school_year",),
                   pattern=r"^\d{4}-\d{2}$"),
        ColumnSpec("school_id", pl.String(), "School identifier as reported by the district (school)",
                   ("school_id",)),
        ColumnSpec("grade_level", pl.String(), "Grade level (school)", ("grade_level",), vocabulary=GRADES),
        ColumnSpec("days_enrolled", pl.Int16(), "Days enrolled in the school year (school)", ("days_enrolled",),
                   value_range=(0, 366)),
        ColumnSpec("days_present", pl.Int16(), "Days present (school)", ("days_present",), value_range=(0, 366)),
        ColumnSpec("days_absent", pl.Int16(), "Days absent; days_enrolled − days_present when not reported "
                   "(school)", ("days_absent", "days_enrolled", "days_present"), value_range=(0, 366)),
        ColumnSpec("chronically_absent", pl.Boolean(), "Missed at least 10% of enrolled days (school)",
                   ("days_absent", "days_enrolled", "days_present")),
        ColumnSpec("graduated", pl.Boolean(), "Graduated at the end of the year (school)", ("graduated",)),
        ColumnSpec("program", pl.String(), "Program name or code (workforce)", ("program",)),
        ColumnSpec("employed_q2", pl.Boolean(), "Employed in the 2nd quarter after exit (workforce)",
                   ("employed_q2",)),
        ColumnSpec("employed_q4", pl.Boolean(), "Employed in the 4th quarter after exit (workforce)",
                   ("employed_q4",)),
        ColumnSpec("earnings_q2", pl.Int32(), "Earnings in the 2nd quarter after exit, USD rounded to the "
                   "nearest 100 (workforce)", ("earnings_q2",), value_range=(0, 10_000_000)),
        ColumnSpec("credential_attained", pl.Boolean(), "Attained a recognised credential (workforce)",
                   ("credential_attained",)),
        ColumnSpec("project_type", pl.Int16(), "HUD HMIS project type code (housing)", ("project_type",),
                   value_range=(0, 99)),
        ColumnSpec("project_type_group", pl.String(), "Project type group: " + "; ".join(
            f"{k} = {v}" for k, v in PROJECT_GROUP_LABELS.items()) + " (housing)", ("project_type",),
                   vocabulary=tuple(PROJECT_GROUP_LABELS)),
        ColumnSpec("relationship_to_hoh", pl.Int16(), "HUD RelationshipToHoH code, 1 = head of household "
                   "(housing)", ("relationship_to_hoh",), value_range=(0, 99)),
        _date_col(plan, "move_in_date", "Housing move-in (housing)"),
        ColumnSpec("destination", pl.Int16(), "HUD exit destination code (housing)", ("destination",),
                   value_range=(0, 999)),
        ColumnSpec("destination_category", pl.String(), "Exit destination category (housing)",
                   ("destination_category", "destination"), vocabulary=DESTINATION_CATEGORIES),
    ]


#: The hive partition column of events/ (a directory name, not stored in the files).
EVENTS_PARTITION = ColumnSpec("domain", pl.String(), "Domain of the event (hive partition: events/domain=…/)",
                              ("_cilink_partner",), vocabulary=DOMAINS)


def spells_columns(plan: ReleasePlan, partners: tuple[str, ...]) -> list[ColumnSpec]:
    """spells.parquet: runs of a person's events in one domain program with gaps of at most 31 days."""
    return [
        _key(),
        ColumnSpec("domain", pl.String(), "Domain of the spell", vocabulary=DOMAINS),
        ColumnSpec("partner", pl.String(), "Partner that reported the spell", ("_cilink_partner",),
                   vocabulary=partners),
        ColumnSpec("program", pl.String(), "Workforce program, or HMIS project type group (housing); null for "
                   "school", ("program", "project_type")),
        ColumnSpec("spell_seq", pl.Int16(), "1, 2, … per person, domain, partner and program, by start",
                   value_range=(1, 10_000)),
        _derived_date_col(plan, "start", "Spell start", ("entry_date", "school_year")),
        _derived_date_col(plan, "end", "Spell end (null while ongoing at the end of the data)",
                          ("exit_date", "school_year")),
        ColumnSpec("ongoing", pl.Boolean(), "Still open at the end of the data"),
        ColumnSpec("n_events", pl.Int16(), "Events merged into the spell", value_range=(1, 10_000)),
        ColumnSpec("outcome", pl.String(), "school: graduated | enrolled | left; workforce: enrolled | "
                   "exited_employed | exited_not_employed | exited_unknown; housing: enrolled or the exit "
                   "destination category", ("graduated", "employed_q2", "employed_q4", "destination_category"),
                   vocabulary=tuple(dict.fromkeys((*SCHOOL_OUTCOMES, *WORKFORCE_OUTCOMES, *HOUSING_OUTCOMES)))),
        ColumnSpec("exited_to_permanent_housing", pl.Boolean(), "Housing spell ended with an exit to a "
                   "permanent destination (housing)", ("destination_category",)),
    ]


PANEL_FLAGS: list[tuple[str, str]] = [
    ("in_school", "Enrolled in school at some point in the period"),
    ("in_workforce_program", "Participating in a workforce program in the period"),
    ("in_hmis", "Enrolled in any HMIS project in the period"),
    *[(f"in_hmis_{g}", f"Enrolled in an HMIS {label} project in the period")
      for g, label in PROJECT_GROUP_LABELS.items()],
    ("exited_to_permanent_housing", "Exited an HMIS project to a permanent destination in the period"),
]


def panel_columns(plan: ReleasePlan) -> list[ColumnSpec]:
    """panel.parquet: person × period (quarter, or year under year-precision dates) with status flags."""
    quarterly = plan.period == "quarter"
    return [
        _key(),
        ColumnSpec("period", pl.String(), "Calendar quarter (YYYYQn) or year (YYYY)",
                   pattern=r"^\d{4}(Q[1-4])?$"),
        ColumnSpec("year", pl.Int16(), "Calendar year of the period", value_range=(1900, 2200)),
        ColumnSpec("quarter", pl.Int8(), "Calendar quarter 1–4 (null in yearly panels)", value_range=(1, 4)),
        ColumnSpec("school_year", pl.String(), "School year the quarter falls in (July–June), e.g. 2024-25 "
                   + ("" if quarterly else "(null in yearly panels)"), pattern=r"^\d{4}-\d{2}$"),
        *[ColumnSpec(n, pl.Boolean(), d) for n, d in PANEL_FLAGS[:1]],
        ColumnSpec("chronically_absent", pl.Boolean(), "In a school enrollment during which at least 10% of "
                   "enrolled days were missed (null: not enrolled or attendance not reported)",
                   ("days_absent", "days_enrolled", "days_present")),
        *[ColumnSpec(n, pl.Boolean(), d) for n, d in PANEL_FLAGS[1:2]],
        ColumnSpec("employed_q2_after_exit", pl.Boolean(), "The period is the 2nd quarter after a workforce "
                   "program exit: employed then (null: no such exit or not reported)", ("employed_q2",)),
        ColumnSpec("employed_q4_after_exit", pl.Boolean(), "The period is the 4th quarter after a workforce "
                   "program exit: employed then", ("employed_q4",)),
        *[ColumnSpec(n, pl.Boolean(), d, ("project_type",) if n.startswith("in_hmis") else
                     ("destination_category",)) for n, d in PANEL_FLAGS[2:]],
    ]


def conform(frame: pl.DataFrame, specs: list[ColumnSpec]) -> pl.DataFrame:
    """Exactly the declared columns, in order, with the declared dtypes (missing ones as typed nulls)."""
    return frame.select([
        (pl.col(s.name) if s.name in frame.columns else pl.lit(None)).cast(s.dtype).alias(s.name) for s in specs
    ])


def specs_by_file(plan: ReleasePlan, partners: tuple[str, ...]) -> dict[str, list[ColumnSpec]]:
    """Column specs of every release table, keyed by its path in the release."""
    return {
        PERSONS: persons_columns(plan),
        EVENTS: [*events_columns(plan, partners), EVENTS_PARTITION],
        SPELLS: spells_columns(plan, partners),
        PANEL: panel_columns(plan),
    }

