"""The deidentified tier's measures: coarsened, derived attributes of each person, and their hierarchies.

The deidentified tier never copies a partner's event values verbatim (a partner could match its own export
back). It releases what analysts compute anyway — per school year a grade band, an attendance-rate band and
chronic absence; per workforce spell the program, entry/exit year, outcome and an earnings band; per housing
spell the HUD project-type group, entry/exit year and destination category — plus a person's age band, sex,
race/ethnicity, geography, domains and whether an HMIS enrollment overlapped a school enrollment.

Each released *attribute* has a generalization hierarchy, finest first, ending in "not released".
An attribute is either a group of columns of ``persons.parquet`` or a whole row table (a person's rows of
``school_years.parquet`` etc. form one value: the rows, repeats included). ``Measures.view`` gives an attribute's
release columns at a level; ``cilink.export.disclosure`` picks the levels and suppresses the rest.
Everything here runs in the restricted zone on exact dates; only the views leave it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from cilink.export.columns import DOMAINS
from cilink.export.events import days_absent
from cilink.export.kanonymity import RACE_LEVELS, birth_exprs, geo_exprs, race_expr
from cilink.export.persons import birth_year, person_base, race_of
from cilink.export.sources import CLEAR_BIRTH_YEAR
from cilink.export.spells import domain_spells

PERSONS = "persons.parquet"
SCHOOL_YEARS = "school_years.parquet"
WORKFORCE_SPELLS = "workforce_spells.parquet"
HOUSING_SPELLS = "housing_spells.parquet"
TABLES = (PERSONS, SCHOOL_YEARS, WORKFORCE_SPELLS, HOUSING_SPELLS)

NOT_RELEASED = "not released"
#: Source of the demographic attributes: every partner supplies them about its own clients.
IDENTITY = "identity"

GRADE_BANDS = ("PK-K", "1-5", "6-8", "9-12")
ATTENDANCE_BANDS = ("95-100%", "90-95%", "80-90%", "below 80%")
EARNINGS_BANDS = ("0", "1-4999", "5000-9999", "10000+")
WORKFORCE_OUTCOMES = ("enrolled", "exited_employed", "exited_not_employed", "exited_unknown")
HOUSING_OUTCOMES = ("enrolled", "permanent", "temporary", "institutional", "homeless", "other", "unknown")


@dataclass(frozen=True)
class Attribute:
    """One released attribute: its columns in one table, its levels (finest first), where it comes from."""

    name: str
    table: str
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    #: domains it is derived from, or IDENTITY (each partner supplies it for its own clients)
    sources: frozenset[str]
    description: str

    @property
    def rows(self) -> bool:
        """Whether the attribute is a row table (rows per person) rather than person columns."""
        return self.table != PERSONS

    @property
    def top(self) -> int:
        """The "not released" level."""
        return len(self.levels) - 1


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("age", PERSONS, ("birth_year_min", "birth_year_max", "age_90_plus"),
              ("1-year", "5-year", "10-year", "20-year", NOT_RELEASED), frozenset({IDENTITY}),
              "birth-year band (ages 90+ one top-coded category)"),
    Attribute("sex", PERSONS, ("sex",), ("as recorded", NOT_RELEASED), frozenset({IDENTITY}), "sex"),
    Attribute("race_ethnicity", PERSONS, ("race_ethnicity",), (*RACE_LEVELS[:-1], NOT_RELEASED),
              frozenset({IDENTITY}), "race/ethnicity"),
    Attribute("geography", PERSONS, ("zip3", "state"), ("zip3", "state", NOT_RELEASED), frozenset({IDENTITY}),
              "ZIP3 or state of the most recent address"),
    Attribute("domains", PERSONS, ("domains",), ("as recorded", NOT_RELEASED), frozenset(DOMAINS),
              "domains (school, workforce, housing) the person appears in"),
    Attribute("observed_period", PERSONS, ("first_seen_year", "last_seen_year"), ("years", NOT_RELEASED),
              frozenset(DOMAINS), "first and last year with any record"),
    Attribute("hmis_while_in_school", PERSONS, ("hmis_while_in_school",), ("as recorded", NOT_RELEASED),
              frozenset({"school", "housing"}), "an HMIS enrollment overlapped a school enrollment"),
    Attribute("school_outcomes", PERSONS, ("chronically_absent_any", "graduated_any"),
              ("chronic absence and graduation", "chronic absence", NOT_RELEASED), frozenset({"school"}),
              "ever chronically absent; ever graduated (school records only)"),
    Attribute("workforce_outcome", PERSONS, ("employed_after_exit",), ("as recorded", NOT_RELEASED),
              frozenset({"workforce"}), "employed in the 2nd or 4th quarter after a workforce program exit"),
    Attribute("housing_outcome", PERSONS, ("exited_to_permanent_housing",), ("as recorded", NOT_RELEASED),
              frozenset({"housing"}), "an HMIS exit to a permanent destination"),
    Attribute("school_years", SCHOOL_YEARS,
              ("school_year", "grade_band", "attendance_band", "chronically_absent", "graduated"),
              ("year, grade band, attendance band, chronic absence, graduation",
               "year, grade band, chronic absence", "year, chronic absence", "year", NOT_RELEASED),
              frozenset({"school"}), "one row per person and school year"),
    Attribute("workforce_spells", WORKFORCE_SPELLS,
              ("program", "entry_year", "exit_year", "outcome", "earnings_band"),
              ("program, entry and exit year, outcome, earnings band", "program, entry year, outcome",
               "entry year, outcome", "outcome", NOT_RELEASED),
              frozenset({"workforce"}), "one row per workforce program spell"),
    Attribute("housing_spells", HOUSING_SPELLS,
              ("project_type_group", "entry_year", "exit_year", "destination_category"),
              ("project type group, entry and exit year, destination", "project type group, entry year, destination",
               "project type group, destination", "destination", NOT_RELEASED),
              frozenset({"housing"}), "one row per HMIS spell"),
)
BY_NAME = {a.name: a for a in ATTRIBUTES}

#: Which columns each level of a row table keeps (the others are released as null).
_ROW_LEVEL_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "school_years": (("school_year", "grade_band", "attendance_band", "chronically_absent", "graduated"),
                     ("school_year", "grade_band", "chronically_absent"), ("school_year", "chronically_absent"),
                     ("school_year",)),
    "workforce_spells": (("program", "entry_year", "exit_year", "outcome", "earnings_band"),
                         ("program", "entry_year", "outcome"), ("entry_year", "outcome"), ("outcome",)),
    "housing_spells": (("project_type_group", "entry_year", "exit_year", "destination_category"),
                       ("project_type_group", "entry_year", "destination_category"),
                       ("project_type_group", "destination_category"), ("destination_category",)),
}

#: Default order in which attributes are kept (first = kept longest); [export] priorities moves some forward.
DEFAULT_PRIORITIES = ("age", "domains", "sex", "hmis_while_in_school", "school_outcomes", "housing_outcome",
                      "workforce_outcome", "school_years", "housing_spells", "workforce_spells", "race_ethnicity",
                      "observed_period", "geography")

#: Release dtype of each column.
DTYPES: dict[str, pl.DataType] = {
    "birth_year_min": pl.Int16(), "birth_year_max": pl.Int16(), "age_90_plus": pl.Boolean(), "sex": pl.String(),
    "race_ethnicity": pl.String(), "zip3": pl.String(), "state": pl.String(), "domains": pl.List(pl.String()),
    "first_seen_year": pl.Int16(), "last_seen_year": pl.Int16(), "hmis_while_in_school": pl.Boolean(),
    "chronically_absent_any": pl.Boolean(), "graduated_any": pl.Boolean(), "employed_after_exit": pl.Boolean(),
    "exited_to_permanent_housing": pl.Boolean(),
    "school_year": pl.String(), "grade_band": pl.String(), "attendance_band": pl.String(),
    "chronically_absent": pl.Boolean(), "graduated": pl.Boolean(), "program": pl.String(),
    "entry_year": pl.Int16(), "exit_year": pl.Int16(), "outcome": pl.String(), "earnings_band": pl.String(),
    "project_type_group": pl.String(), "destination_category": pl.String(),
}


def grade_band(grade: pl.Expr) -> pl.Expr:
    """PK/K → "PK-K", 1–5, 6–8, 9–12."""
    n = grade.cast(pl.Int32, strict=False)
    return (pl.when(grade.is_in(["PK", "K"])).then(pl.lit("PK-K")).when(n <= 5).then(pl.lit("1-5"))
            .when(n <= 8).then(pl.lit("6-8")).when(n <= 12).then(pl.lit("9-12")))


def attendance_band(enrolled: pl.Expr, absent: pl.Expr) -> pl.Expr:
    """Share of enrolled days present, in four bands (null when days enrolled are unknown or zero)."""
    rate = 1 - absent / enrolled
    return (pl.when(enrolled.is_null() | (enrolled <= 0) | absent.is_null()).then(None)
            .when(rate >= 0.95).then(pl.lit("95-100%")).when(rate >= 0.90).then(pl.lit("90-95%"))
            .when(rate >= 0.80).then(pl.lit("80-90%")).otherwise(pl.lit("below 80%")))


def earnings_band(earnings: pl.Expr) -> pl.Expr:
    """Quarterly earnings in four bands, top-coded at 10000+."""
    return (pl.when(earnings.is_null()).then(None).when(earnings <= 0).then(pl.lit("0"))
            .when(earnings < 5000).then(pl.lit("1-4999")).when(earnings < 10000).then(pl.lit("5000-9999"))
            .otherwise(pl.lit("10000+")))


_GRADE_RANK = {g: i for i, g in enumerate(["PK", "K", *[str(n) for n in range(1, 13)]])}


def school_year_rows(df: pl.DataFrame) -> pl.DataFrame:
    """One row per person, partner and school year: highest grade, summed days, chronic absence, graduation."""
    if df.is_empty():
        return pl.DataFrame(schema={"person_idx": pl.Int32, "partner": pl.String, "school_year": pl.String,
                                    "grade_band": pl.String, "attendance_band": pl.String,
                                    "chronically_absent": pl.Boolean, "graduated": pl.Boolean})
    rows = (df.filter(pl.col("school_year").is_not_null())
            .with_columns(days_absent().alias("_absent"),
                          pl.col("grade_level").replace_strict(_GRADE_RANK, default=None, return_dtype=pl.Int8)
                          .alias("_grade"))
            .group_by("person_idx", "partner", "school_year")
            .agg(pl.col("_grade").max(), pl.col("days_enrolled").sum().alias("_enrolled"),
                 pl.col("_absent").sum(), pl.col("graduated").any().alias("graduated"),
                 pl.col("days_enrolled").is_not_null().any().alias("_known")))
    enrolled = pl.when(pl.col("_known")).then(pl.col("_enrolled"))
    grade = pl.col("_grade").replace_strict({v: k for k, v in _GRADE_RANK.items()}, default=None,
                                            return_dtype=pl.String)
    return rows.select(
        pl.col("person_idx").cast(pl.Int32), "partner", "school_year", grade_band(grade).alias("grade_band"),
        attendance_band(enrolled, pl.col("_absent")).alias("attendance_band"),
        pl.when(enrolled > 0).then(pl.col("_absent") / enrolled >= 0.10).alias("chronically_absent"),
        "graduated",
    ).sort("person_idx", "school_year", "partner")


def spell_rows(domain: str, df: pl.DataFrame, partners: tuple[str, ...], as_of: dt.date) -> pl.DataFrame:
    """Workforce or housing spells (exact dates stay here; years, outcome and bands leave)."""
    if df.is_empty():
        cols = _ROW_LEVEL_COLUMNS[f"{domain}_spells"][0]
        return pl.DataFrame(schema={"person_idx": pl.Int32, "partner": pl.String,
                                    **{c: DTYPES[c] for c in cols}})
    spells = domain_spells(domain, df, partners, as_of)
    years = [pl.col("_start").dt.year().cast(pl.Int16).alias("entry_year"),
             pl.when(pl.col("ongoing")).then(None).otherwise(pl.col("_end").dt.year()).cast(pl.Int16)
             .alias("exit_year")]
    if domain == "workforce":
        out = spells.select("person_idx", "partner", "program", *years, "outcome",
                            earnings_band(pl.col("_earnings")).alias("earnings_band"))
    else:
        out = spells.select("person_idx", "partner", pl.col("program").alias("project_type_group"), *years,
                            pl.col("outcome").alias("destination_category"))
    return out.with_columns(pl.col("person_idx").cast(pl.Int32)).sort("person_idx", "entry_year", maintain_order=True)


def _overlap(a: pl.DataFrame, b: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """Persons with an interval of ``a`` overlapping one of ``b`` (person_idx, True)."""
    def ivals(df: pl.DataFrame) -> pl.DataFrame:
        return df.select(pl.col("person_idx").cast(pl.Int32), pl.col("_start").alias("s"),
                         pl.col("_end").fill_null(as_of).alias("e")).drop_nulls("s")
    joined = ivals(a).join(ivals(b), on="person_idx", suffix="_b")
    hit = joined.filter((pl.col("s") <= pl.col("e_b")) & (pl.col("s_b") <= pl.col("e")))
    return hit.select("person_idx").unique().with_columns(pl.lit(True).alias("_overlap"))


@dataclass
class Measures:
    """Every person's raw (restricted) attributes and row tables, and the release views of each level."""

    person: pl.DataFrame  # person_idx + _birth_year, sex, _race, _zip5, _dm, _first, _last, _hmis_school
    rows: dict[str, pl.DataFrame]  # attribute name → rows with person_idx, partner and the release columns
    cutoff: int  # birth years at or before this are top-coded (90+)
    _cache: dict[tuple[str, int], pl.DataFrame] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.person.height

    def view(self, attr: Attribute, level: int, person: pl.DataFrame | None = None,
             rows: pl.DataFrame | None = None) -> pl.DataFrame:
        """``attr``'s release columns at ``level``: one row per person (persons attributes, every person, in
        person_idx order) or the person's rows (row tables). ``person``/``rows`` replace the raw data (a
        partner's own view of its clients, for the gate's attack)."""
        custom = person is not None or rows is not None
        key = (attr.name, level)
        if not custom and key in self._cache:
            return self._cache[key]
        out = (_row_view(attr, level, self.rows[attr.name] if rows is None else rows) if attr.rows
               else _person_view(attr, level, self.person if person is None else person, self.cutoff))
        if not custom:
            self._cache[key] = out
        return out


def _person_view(attr: Attribute, level: int, p: pl.DataFrame, cutoff: int) -> pl.DataFrame:
    top = level == attr.top
    if attr.name == "age":
        exprs = birth_exprs(4 if top else level, cutoff)[1:]
    elif attr.name == "sex":
        exprs = [pl.lit(None, dtype=pl.String).alias("sex") if top else pl.col("sex")]
    elif attr.name == "race_ethnicity":
        # a few dozen distinct combinations: recode those, not every person's string
        distinct = p.select(pl.col("_race").unique()).with_columns(race_expr(len(RACE_LEVELS) - 1 if top else level))
        return p.select("person_idx", "_race").join(distinct, on="_race", how="left", maintain_order="left",
                                                     nulls_equal=True).select(
            "person_idx", pl.col("race_ethnicity").cast(DTYPES["race_ethnicity"]))
    elif attr.name == "geography":
        exprs = geo_exprs(3 if top else level + 1)[1:]
    elif attr.name == "domains":
        # the list of each bit combination, gathered (building lists per person row is ~25× slower)
        names = pl.Series([[d for i, d in enumerate(DOMAINS) if m >> i & 1] for m in range(1 << len(DOMAINS))],
                          dtype=pl.List(pl.String))
        exprs = [pl.lit(None, dtype=pl.List(pl.String)).alias("domains") if top
                 else pl.lit(names).gather(pl.col("_dm")).alias("domains")]
    elif attr.name == "observed_period":
        exprs = [(pl.lit(None) if top else pl.col(c).cast(pl.Int32).cast(pl.Date).dt.year()).cast(pl.Int16)
                 .alias(f"{stem}_seen_year") for c, stem in (("_first", "first"), ("_last", "last"))]
    elif attr.name == "hmis_while_in_school":
        both = ((pl.col("_dm") & (1 << DOMAINS.index("school"))) != 0) & (
            (pl.col("_dm") & (1 << DOMAINS.index("housing"))) != 0)
        exprs = [(pl.lit(None, dtype=pl.Boolean) if top else pl.when(both).then(pl.col("_hmis_school")
                                                                             .fill_null(False)))
                 .alias("hmis_while_in_school")]
    elif attr.name in _FLAGS:
        exprs = [(pl.lit(None, dtype=pl.Boolean) if top or (attr.name == "school_outcomes" and c == "graduated_any"
                                                             and level >= 1) else pl.col(f"_{c}")).alias(c)
                 for c in attr.columns]
    else:  # pragma: no cover - ATTRIBUTES is closed
        raise KeyError(attr.name)
    return p.select("person_idx", *exprs).select(
        "person_idx", *[pl.col(c).cast(DTYPES[c]) for c in attr.columns])


#: Person-level outcome flags, read off the row tables before generalization (columns "_<name>").
_FLAGS = ("school_outcomes", "workforce_outcome", "housing_outcome")


#: The person-level flag columns each row table gives (``_flags``).
_FLAG_COLUMNS: dict[str, tuple[str, ...]] = {
    "school_years": ("_chronically_absent_any", "_graduated_any"), "workforce_spells": ("_employed_after_exit",),
    "housing_spells": ("_exited_to_permanent_housing",)}


def _flags(rows: dict[str, pl.DataFrame]) -> list[pl.DataFrame]:
    """Per person: ever chronically absent / graduated, employed after an exit, exited to permanent housing."""
    return [_table_flags(name, rows[name]) for name in _FLAG_COLUMNS]


def _table_flags(name: str, rows: pl.DataFrame) -> pl.DataFrame:
    """The flags of one row table (``_FLAG_COLUMNS``), per person with rows."""
    if name == "school_years":
        return rows.group_by("person_idx").agg(
            pl.col("chronically_absent").any().alias("_chronically_absent_any"),
            pl.col("graduated").any().alias("_graduated_any"))
    if name == "workforce_spells":
        return rows.filter(pl.col("outcome") != "enrolled").group_by("person_idx").agg(
            pl.when((pl.col("outcome") == "exited_unknown").all()).then(None)
            .otherwise((pl.col("outcome") == "exited_employed").any()).alias("_employed_after_exit"))
    return rows.filter(pl.col("destination_category") != "enrolled").group_by("person_idx").agg(
        (pl.col("destination_category") == "permanent").any().alias("_exited_to_permanent_housing"))


def _row_view(attr: Attribute, level: int, rows: pl.DataFrame) -> pl.DataFrame:
    if level == attr.top:
        return rows.clear().select("person_idx", *[pl.col(c).cast(DTYPES[c]) for c in attr.columns])
    return rows.select("person_idx", *row_level_exprs(attr, level))


def row_level_columns(attr: Attribute, level: int) -> tuple[str, ...]:
    """The columns row table ``attr`` keeps at ``level`` (below "not released"); the others are null."""
    return _ROW_LEVEL_COLUMNS[attr.name][level]


def row_level_exprs(attr: Attribute, level: int) -> list[pl.Expr]:
    """The release columns of row table ``attr`` at ``level`` (below "not released"): columns the level does
    not keep are null."""
    kept = _ROW_LEVEL_COLUMNS[attr.name][level]
    return [(pl.col(c) if c in kept else pl.lit(None)).cast(DTYPES[c]).alias(c) for c in attr.columns]


def build_measures(events: dict[str, pl.DataFrame], n_persons: int, as_of: dt.date, partners: tuple[str, ...],
                   cutoff: int) -> Measures:
    """The raw attributes of every person (restricted) from the staged events of ``load_sources``."""
    base = person_base(events, n_persons, as_of, partners)
    empty = pl.DataFrame(schema={"person_idx": pl.Int32, "_start": pl.Date, "_end": pl.Date})
    school, housing = events.get("school", empty), events.get("housing", empty)
    overlap = _overlap(housing, school, as_of) if school.height and housing.height else pl.DataFrame(
        schema={"person_idx": pl.Int32, "_overlap": pl.Boolean})
    person = base.join(overlap, on="person_idx", how="left", maintain_order="left").rename(
        {"_overlap": "_hmis_school"})
    rows = {
        "school_years": school_year_rows(events["school"]) if "school" in events else school_year_rows(
            pl.DataFrame()),
        "workforce_spells": spell_rows("workforce", events.get("workforce", pl.DataFrame()), partners, as_of),
        "housing_spells": spell_rows("housing", events.get("housing", pl.DataFrame()), partners, as_of),
    }
    for flags in _flags(rows):
        person = person.join(flags.with_columns(pl.col("person_idx").cast(pl.Int32)), on="person_idx", how="left",
                             maintain_order="left")
    return Measures(person=person, rows=rows, cutoff=cutoff)


def _order_key(frame: pl.DataFrame) -> pl.Series:
    """One Int64 that orders rows by ``person_idx``, then ``_t`` (an Int64 time, null first)."""
    lo = frame.get_column("_t").min()
    return frame.select((pl.col("person_idx").cast(pl.Int64) * (1 << 32)
                         + (pl.col("_t") - (lo or 0) + 1).fill_null(0)).alias("_k")).to_series()


def _latest(frame: pl.DataFrame, key: pl.Series) -> pl.DataFrame:
    """Per person_idx (ascending), each other column's last non-null value in ``key`` order (ties: row order),
    for ``key`` ordering rows by person first.

    The same as a stable sort by ``key`` then ``group_by(maintain_order=True).agg(drop_nulls().last())``, but
    only one row per person and column is gathered: moving millions of text values to sort them cost more
    than all the rest of a partner's view.
    """
    n = frame.height
    if not n:
        return frame.clear()
    perm = None if key.is_sorted() else np.argsort(key.to_numpy(), kind="stable")
    person = frame.get_column("person_idx").to_numpy()
    person = person if perm is None else person[perm]
    starts = np.flatnonzero(np.concatenate(([True], person[1:] != person[:-1])))
    out = [pl.Series("person_idx", person[starts])]
    ends = np.append(starts[1:], n) - 1
    position: np.ndarray | None = None
    for c in (c for c in frame.columns if c != "person_idx"):
        col = frame.get_column(c)
        if not col.null_count():  # every row has a value: the last is the run's last row
            out.append(col.gather(ends if perm is None else perm[ends]))
            continue
        if position is None:
            position = np.arange(n)
        valid = col.is_not_null().to_numpy()
        last = np.maximum.reduceat(np.where(valid if perm is None else valid[perm], position, -1), starts)
        found = last >= 0
        rows = np.where(found, last, 0) if perm is None else perm[np.where(found, last, 0)]
        out.append(pl.select(pl.when(pl.Series(found)).then(col.gather(rows)).alias(c)).to_series())
    return pl.DataFrame(out)


#: Where a partner's own view of an attribute comes from: ``{"person": frame}`` (raw person columns of its
#: clients) or ``{"rows": frame}`` (its own rows of a row table), as ``Measures.view`` takes them.
PartnerSource = dict[str, pl.DataFrame]


def partner_view(measures: Measures, events: dict[str, pl.DataFrame], partner: str, domain: str, as_of: dt.date,
                 partners: tuple[str, ...]) -> tuple[pl.Series, Callable[[Attribute], PartnerSource | None]]:
    """What a partner knows of its own clients: its clients' person_idx, and per attribute the raw data its
    own view is computed from (``Measures.view(attr, level, **source)``; None: the partner cannot know it).

    Demographics come from the partner's own latest values; a row table of the partner's domain from its own
    rows (equal to the released rows when it is the domain's only partner); anything derived from another
    domain (observed period, HMIS while in school, the other domains) it does not know.
    """
    df = events[domain]
    mine = df.get_column("partner") == partner
    sole = bool(mine.all())  # the domain's only partner: its records are all the domain's records
    wanted = ["person_idx", "dob", "sex", "zip5", "race_ethnicity", "_start", "_end"]
    df = df.select(*wanted, *[c for c in df.columns if c == CLEAR_BIRTH_YEAR])  # only what is read
    if not sole:
        df = df.filter(mine)
    clients = df.get_column("person_idx").unique().sort()
    demographics = ("_birth_year", "sex", "_race", "_zip5")
    t = pl.coalesce(pl.col("_end"), pl.col("_start")).cast(pl.Int64)
    df = df.with_columns(birth_year(df), race_of(df), pl.col("zip5").alias("_zip5"), t.alias("_t"))
    # the latest value per person: ordered by person, then time (no time first), stably
    raw = (_latest(df.select("person_idx", *demographics), _order_key(df))
           .with_columns(pl.col("person_idx").cast(pl.Int32)))
    own_rows: dict[str, pl.DataFrame] = {}
    idx = measures.person.get_column("person_idx")
    in_order = bool((idx.to_numpy() == np.arange(len(idx))).all())  # row i is person i, as build_measures makes it
    for name, rows in measures.rows.items():
        ours = rows.get_column("partner") == partner
        whole = rows.height > 0 and bool(ours.all())
        own_rows[name] = rows if whole else rows.filter(ours)
        # outcome flags as the partner computes them from its own rows; from all of a table's rows (the
        # partner is its only source) they are the persons' flags already computed, gathered
        if whole and in_order:
            raw = raw.with_columns(measures.person.get_column(c).gather(raw.get_column("person_idx"))
                                   for c in _FLAG_COLUMNS[name])
            continue
        flags = (measures.person.select("person_idx", *_FLAG_COLUMNS[name]) if whole
                 else _table_flags(name, own_rows[name]).with_columns(pl.col("person_idx").cast(pl.Int32)))
        raw = raw.join(flags, on="person_idx", how="left")

    def source(attr: Attribute) -> PartnerSource | None:
        if IDENTITY in attr.sources or (attr.name in _FLAGS and attr.sources == {domain}):
            return {"person": raw}
        if attr.rows and attr.sources == {domain}:
            return {"rows": own_rows[attr.name]}
        return None

    return clients.cast(pl.Int32), source
