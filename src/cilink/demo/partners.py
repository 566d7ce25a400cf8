"""The demo partners: who each one serves, and their exports shaped like the real thing.

Three partners of a Holyoke-like collective-impact initiative:

- ``holyoke-schools`` — a district SIS export, ``holyoke-schools.csv`` (UTF-8 with BOM, CRLF, ISO dates),
  one row per student per school year 2021-22 … 2024-25; no SSN.
- ``workforce-board`` — a WIOA-style participant list, ``workforce-board.xlsx`` (sheet ``Participants`` plus
  ``Notes``), US dates written as text, zip written as a number (so 01040 arrives as 1040), SSNs sometimes
  missing, masked or placeholders.
- ``coc-hmis`` — the continuum of care's HUD HMIS CSV export zip (see ``cilink.demo.hmis``).

``assign_partners`` decides who appears where (most people with one partner, about a quarter with two, a few
with all three); the ``*_rows`` functions draw the partner's records (with the partner's own identifier
noise) and the ``write_*`` functions write the files. ``partners_toml`` is the matching cilink.toml section.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import xlsxwriter

from cilink.demo.bad_rows import MARK, PARTNER_SCHOOL, PARTNER_WORKFORCE, bad_rows_for, locate, plant
from cilink.demo.noise import NoiseProfile, apply_noise, with_household_ssn, written_birth_date
from cilink.demo.population import REFERENCE_DATE, WINDOW_START, age_on
from cilink.schemas.identity import RaceEthnicity

SCHOOL_FILE = "holyoke-schools.csv"
WORKFORCE_FILE = "workforce-board.xlsx"
WORKFORCE_SHEET = "Participants"
SCHOOL_DATE_FORMAT = "%Y-%m-%d"
WORKFORCE_DATE_FORMAT = "%m/%d/%Y"
#: Fixed creation time written into the workbook, so the same seed gives byte-identical files.
FIXED_TIMESTAMP = dt.datetime(2025, 7, 1, 2, 0, 0)

#: Source header for each canonical field, per partner (the cilink.toml ``columns`` tables).
SCHOOL_COLUMNS: dict[str, str] = {
    "source_person_id": "StudentID",
    "last_name": "Last Name",
    "first_name": "First Name",
    "middle_name": "Middle Name",
    "name_suffix": "Suffix",
    "dob": "Birth Date",
    "sex": "Gender",
    "street": "Street Address",
    "unit": "Apt",
    "city": "City",
    "state": "State",
    "zip5": "Zip",
    "phone": "Guardian Phone",
    "race_ethnicity": "Race/Ethnicity",
    "school_year": "School Year",
    "school_id": "School Code",
    "grade_level": "Grade",
    "entry_date": "Entry Date",
    "exit_date": "Exit Date",
    "days_enrolled": "Days Enrolled",
    "days_present": "Days Present",
    "graduated": "Graduated",
}
SCHOOL_HEADERS: tuple[str, ...] = tuple(SCHOOL_COLUMNS.values())

WORKFORCE_COLUMNS: dict[str, str] = {
    "source_person_id": "Participant ID",
    "first_name": "First",
    "last_name": "Last",
    "dob": "DOB",
    "ssn": "SSN",
    "sex": "Sex",
    "street": "Address",
    "zip5": "Zip",
    "phone": "Phone",
    "email": "Email",
    "program": "Program",
    "entry_date": "Participation Date",
    "exit_date": "Exit Date",
    "employed_q2": "Employed Q2",
    "employed_q4": "Employed Q4",
    "earnings_q2": "Q2 Earnings",
    "credential_attained": "Credential",
}
WORKFORCE_HEADERS: tuple[str, ...] = tuple(WORKFORCE_COLUMNS.values())

#: How each partner writes race/ethnicity (school: labels joined with ';').
RACE_LABELS: dict[str, str] = {
    RaceEthnicity.AIAN: "American Indian or Alaska Native",
    RaceEthnicity.ASIAN: "Asian",
    RaceEthnicity.BLACK: "Black or African American",
    RaceEthnicity.HISPANIC: "Hispanic or Latino",
    RaceEthnicity.MENA: "Middle Eastern or North African",
    RaceEthnicity.NHPI: "Native Hawaiian or Pacific Islander",
    RaceEthnicity.WHITE: "White",
}

#: First and last instructional day of each school year in the window (year = the fall it starts).
SCHOOL_YEARS: dict[int, tuple[dt.date, dt.date]] = {
    2021: (dt.date(2021, 8, 30), dt.date(2022, 6, 14)),
    2022: (dt.date(2022, 8, 29), dt.date(2023, 6, 15)),
    2023: (dt.date(2023, 8, 30), dt.date(2024, 6, 13)),
    2024: (dt.date(2024, 8, 28), dt.date(2025, 6, 12)),
}
_SCHOOL_DAYS = 180
# Massachusetts-style 8-digit school codes in a district numbered 0137.
_ELEMENTARY = tuple(f"0137{n:04d}" for n in (5, 10, 15, 20, 25, 30, 35, 40))
_MIDDLE = ("01370305", "01370310", "01370315")
_HIGH = ("01370505", "01370510")

_STREET_ABBREVIATIONS = {
    "Street": "St", "Avenue": "Ave", "Road": "Rd", "Drive": "Dr", "Lane": "Ln", "Court": "Ct", "Place": "Pl",
    "Terrace": "Ter", "Boulevard": "Blvd",
}
_PLACEHOLDER_SSNS = ("999-99-9999", "123-45-6789", "000-00-0000")

SCHOOL_NOISE = NoiseProfile(
    typo_first=0.01, typo_last=0.01, nickname=0.015, middle_initial=0.1, maiden_name=0.0, name_swap=0.002,
    dob_swap=0.006, dob_typo=0.004, old_address=0.0, strip_accents=0.25, dob_garbled=0.004,
    missing={"middle_name": 0.15, "home_phone": 0.04, "sex": 0.004, "unit": 0.1},
)
WORKFORCE_NOISE = NoiseProfile(
    typo_first=0.02, typo_last=0.02, nickname=0.06, maiden_name=0.35, name_swap=0.005, dob_swap=0.01,
    dob_typo=0.006, old_address=0.5, ssn_typo=0.008, ssn_household=0.01, strip_accents=0.6, dob_garbled=0.012,
    missing={"email": 0.3, "phone": 0.06, "dob": 0.004, "sex": 0.01},
)


@dataclass(frozen=True)
class PartnerExport:
    """What a partner writer produced: the file, its row count, the truth pairs and the planted bad rows."""

    partner: str
    path: Path
    rows: int
    truth: pl.DataFrame  # partner, source_person_id, true_id
    bad_rows: list[dict[str, object]]


def partner_rng(seed: int, purpose: str) -> random.Random:
    """An independent stream per purpose, so changing one partner does not reshuffle the others."""
    return random.Random(f"{purpose}:{seed}")


def assign_partners(population: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Decide which partners serve each person (``true_id``, ``school``, ``workforce``, ``housing``).

    Homeless services enrol whole households; the school district enrols most school-age children of the
    city; the workforce board serves a share of working-age adults, more of them among people who were
    homeless. People served by no partner are dropped. Roughly 70 % of the rest appear with one partner,
    25 % with two and 4 % with all three.
    """
    rng = partner_rng(seed, "partners")
    age = (pl.lit(REFERENCE_DATE) - pl.col("dob")).dt.total_days() // 365
    households = (
        population.group_by("household_id", maintain_order=True)
        .agg(teen=age.is_between(16, 22).any(), child=(pl.col("relationship") == "child").any(), size=pl.len())
        .iter_rows()
    )
    # Chance a household was served by homeless services. Households with older teens are over-represented
    # (youth homelessness), which is also what puts some people in all three partners' data.
    housed = {
        h for h, teen, child, size in households
        if rng.random() < (0.45 if teen else 0.25 if child else 0.18 if size == 1 else 0.07)
    }
    out: dict[str, list[object]] = {"true_id": [], "school": [], "workforce": [], "housing": []}
    school_start, school_end = dt.date(2021, 9, 1), dt.date(2024, 9, 1)
    for true_id, household, dob in population.select("true_id", "household_id", "dob").iter_rows():
        housing = household in housed
        school_age = age_on(dob, school_start) <= 18 and age_on(dob, school_end) >= 4
        working_age = age_on(dob, REFERENCE_DATE) >= 16 and age_on(dob, WINDOW_START) <= 70
        school = school_age and rng.random() < 0.85
        if not working_age:
            p_work = 0.0
        elif school_age:  # youth programmes recruit older teens, above all homeless ones
            p_work = 0.85 if housing else 0.15
        else:
            p_work = 0.55 if housing else 0.33
        workforce = rng.random() < p_work
        if school or workforce or housing:
            out["true_id"].append(true_id)
            out["school"].append(school)
            out["workforce"].append(workforce)
            out["housing"].append(housing)
    return pl.DataFrame(out, schema={"true_id": pl.String, "school": pl.Boolean, "workforce": pl.Boolean,
                                     "housing": pl.Boolean})


def truth_frame(partner: str, source_ids: list[str], true_ids: list[str]) -> pl.DataFrame:
    """Ground-truth pairs of one partner: ``partner``, ``source_person_id``, ``true_id``."""
    return pl.DataFrame(
        {"partner": [partner] * len(source_ids), "source_person_id": source_ids, "true_id": true_ids},
        schema={"partner": pl.String, "source_person_id": pl.String, "true_id": pl.String},
    )


def _phone(digits: str | None, style: str) -> str | None:
    if digits is None:
        return None
    if style == "paren":
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def _unique_ids(rng: random.Random, k: int, digits: int) -> list[str]:
    width = max(digits, len(str(k * 4)))
    return [str(v) for v in rng.sample(range(10 ** (width - 1), 10**width), k)]


def _school_code(grade: int, picks: tuple[int, int, int]) -> str:
    if grade <= 5:
        return _ELEMENTARY[picks[0] % len(_ELEMENTARY)]
    if grade <= 8:
        return _MIDDLE[picks[1] % len(_MIDDLE)]
    return _HIGH[picks[2] % len(_HIGH)]


def _grade_label(grade: int) -> str:
    return "PK" if grade == -1 else "K" if grade == 0 else str(grade)


def _absence_rate(rng: random.Random) -> float:
    """A student's usual share of days absent; about one in six is chronically absent (≥ 10 %)."""
    r = rng.random()
    if r < 0.70:
        return rng.uniform(0.0, 0.06)
    if r < 0.84:
        return rng.uniform(0.06, 0.095)
    return rng.uniform(0.10, 0.32)


def school_rows(population: pl.DataFrame, assigned: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The district's student-year rows (all-string frame in ``SCHOOL_HEADERS`` order) and truth pairs."""
    rng = partner_rng(seed, "school")
    dob_text = partner_rng(seed, "dob-text:school")
    students = population.join(assigned.filter("school").select("true_id"), on="true_id", how="semi")
    ident = apply_noise(with_household_ssn(students), SCHOOL_NOISE, rng)
    ids = _unique_ids(rng, ident.height, 6)
    rows: dict[str, list[object]] = {h: [] for h in SCHOOL_HEADERS}
    truth_ids: list[str] = []
    truth_true: list[str] = []
    years = sorted(SCHOOL_YEARS)
    # The district's recorded DOB may be noisy; the grade a child is in follows the real birth date.
    true_dobs = dict(students.select("true_id", "dob").iter_rows())
    for n, rec in enumerate(ident.iter_rows(named=True)):
        population_dob = true_dobs[rec["true_id"]]
        retention = rng.choices((0, -1, 1), weights=(90, 8, 2))[0]
        eligible = []
        for y in years:
            g = age_on(population_dob, dt.date(y, 9, 1)) - 5 + retention
            if -1 <= g <= 12:
                eligible.append((y, g))
        if not eligible:
            continue
        start, stop = 0, len(eligible)
        if len(eligible) > 1 and rng.random() < 0.15:
            start = rng.randrange(1, len(eligible))
        if stop - start > 1 and rng.random() < 0.15:
            stop = rng.randrange(start + 1, stop)
        spell = eligible[start:stop]
        # Joined mid-year: moved in (a first year above K after the window opened) or a few transfers.
        moved_in = start > 0 or (spell[0][0] > years[0] and spell[0][1] > 0) or rng.random() < 0.04
        moved_out = stop < len(eligible) and rng.random() < 0.7
        dropout = spell[-1][1] >= 9 and rng.random() < 0.03
        move_at = rng.randrange(0, len(spell) + 1) if rec["prev_street"] is not None else 0
        picks = (rng.randrange(8), rng.randrange(3), rng.randrange(2))
        absence = _absence_rate(rng)
        sid = ids[n]
        truth_ids.append(sid)
        truth_true.append(rec["true_id"])
        race = ";".join(RACE_LABELS[r] for r in (rec["race_ethnicity"] or []))
        for k, (year, grade) in enumerate(spell):
            first_day, last_day = SCHOOL_YEARS[year]
            entry, exit_ = first_day, last_day
            if k == 0 and moved_in:
                entry = first_day + dt.timedelta(days=rng.randrange(0, 200))
            last = k == len(spell) - 1
            if last and (moved_out or dropout):
                exit_ = max(entry + dt.timedelta(days=10), last_day - dt.timedelta(days=rng.randrange(20, 200)))
                exit_ = min(exit_, last_day)
            graduated = grade == 12 and exit_ == last_day and rng.random() < 0.92
            span = (last_day - first_day).days
            enrolled = max(1, round(_SCHOOL_DAYS * (exit_ - entry).days / span))
            rate = min(0.9, max(0.0, absence + rng.uniform(-0.02, 0.02)))
            present = round(enrolled * (1 - rate))
            old = k < move_at
            rows["StudentID"].append(sid)
            rows["Last Name"].append(rec["last_name"])
            rows["First Name"].append(rec["first_name"])
            rows["Middle Name"].append(rec["middle_name"])
            rows["Suffix"].append(rec["suffix"])
            rows["Birth Date"].append(written_birth_date(rec["dob"], SCHOOL_DATE_FORMAT, SCHOOL_NOISE.dob_garbled,
                                                         dob_text))
            rows["Gender"].append({"F": "Female", "M": "Male"}.get(rec["sex"] or ""))
            rows["Street Address"].append(rec["prev_street"] if old else rec["street"])
            rows["Apt"].append(rec["prev_unit"] if old else rec["unit"])
            rows["City"].append(rec["prev_city"] if old else rec["city"])
            rows["State"].append("MA")
            rows["Zip"].append(rec["prev_zip5"] if old else rec["zip5"])
            rows["Guardian Phone"].append(_phone(rec["home_phone"], "paren"))
            rows["Race/Ethnicity"].append(race or None)
            rows["School Year"].append(f"{year}-{(year + 1) % 100:02d}")
            rows["School Code"].append(_school_code(grade, picks))
            rows["Grade"].append(_grade_label(grade))
            rows["Entry Date"].append(entry.strftime(SCHOOL_DATE_FORMAT))
            rows["Exit Date"].append(exit_.strftime(SCHOOL_DATE_FORMAT))
            rows["Days Enrolled"].append(str(enrolled))
            rows["Days Present"].append(str(present))
            rows["Graduated"].append("Y" if graduated else "N")
    frame = pl.DataFrame(rows, schema={h: pl.String for h in SCHOOL_HEADERS}).sort(
        "School Year", "School Code", "StudentID", maintain_order=True
    )
    truth = truth_frame(PARTNER_SCHOOL, truth_ids, truth_true)
    return frame, truth


def _single_partner_people(assigned: pl.DataFrame, partner_column: str) -> set[str]:
    others = [c for c in ("school", "workforce", "housing") if c != partner_column]
    only = assigned.filter(pl.col(partner_column) & ~pl.any_horizontal(others))
    return set(only.get_column("true_id").to_list())


def _pick_row(frame: pl.DataFrame, id_column: str, allowed_ids: set[str] | None, rng: random.Random) -> int | None:
    """Index of an unmarked row whose person id is in ``allowed_ids`` (``None``: any), deterministic for rng.

    ``None`` when every row is already taken (only in tiny demos)."""
    ids = frame.get_column(id_column).to_list()
    marks = frame.get_column(MARK).to_list() if MARK in frame.columns else [None] * len(ids)
    free = [i for i, m in enumerate(marks) if m is None]
    candidates = [i for i in free if allowed_ids is None or ids[i] in allowed_ids] or free
    return candidates[int(rng.random() * len(candidates))] if candidates else None


def plant_bad_rows(frame: pl.DataFrame, partner: str, id_column: str, solo_ids: set[str], seed: int,
                   extra: dict[str, dict[str, object]] | None = None) -> pl.DataFrame:
    """Plant this partner's ``DELIBERATE_BAD_ROWS`` into its export frame (see ``cilink.demo.bad_rows``).

    Modified rows come first (they belong to people seen by this partner only, ``solo_ids``); extra copies
    are then spread through the file. ``extra`` adds column values per bad-row key (e.g. a fresh row id).
    """
    rng = partner_rng(seed, f"bad-rows:{partner}")
    planned = sorted(bad_rows_for(partner), key=lambda b: b.insert)
    for k, bad in enumerate(planned, start=1):
        i = _pick_row(frame, id_column, None if bad.insert else solo_ids, rng)
        if i is None:
            break
        values: dict[str, object] = dict((extra or {}).get(bad.key, {}))
        if bad.key == "school_exit_before_entry":
            year = int(str(frame[i, "School Year"])[:4])
            values |= {"Entry Date": f"{year + 1}-03-02", "Exit Date": f"{year}-11-16"}
        elif bad.key == "school_dob_1850":
            dob = frame[i, "Birth Date"]
            values |= {"Birth Date": f"1850{str(dob)[4:]}" if dob else "1850-04-12"}
        position = max(1, frame.height * k // (len(planned) + 1)) if bad.insert else None
        frame = plant(frame, bad, i, values, position=position)
    return frame


def write_school_csv(population: pl.DataFrame, assigned: pl.DataFrame, seed: int, directory: Path) -> PartnerExport:
    """Write ``holyoke-schools.csv`` (UTF-8 with BOM, CRLF line ends) into ``directory``."""
    frame, truth = school_rows(population, assigned, seed)
    solo = solo_source_ids(truth, assigned, "school")
    frame = plant_bad_rows(frame, PARTNER_SCHOOL, "StudentID", solo, seed)
    frame, bad = locate(frame, SCHOOL_FILE, "StudentID")
    path = directory / SCHOOL_FILE
    frame.write_csv(path, include_bom=True, line_terminator="\r\n", null_value="")
    return PartnerExport(PARTNER_SCHOOL, path, frame.height, truth, bad)


def solo_source_ids(truth: pl.DataFrame, assigned: pl.DataFrame, partner_column: str) -> set[str]:
    """Source ids of people who appear with this partner only (safe to plant flagged values on)."""
    solo = _single_partner_people(assigned, partner_column)
    return {s for s, t in truth.select("source_person_id", "true_id").iter_rows() if t in solo}


# -- workforce -------------------------------------------------------------------------------------------


def _program(age: int, rng: random.Random) -> str:
    if age <= 24 and rng.random() < 0.8:
        return rng.choices(("WIOA Youth", "YouthWorks Summer Jobs"), weights=(6, 4))[0]
    return rng.choices(("WIOA Adult", "WIOA Dislocated Worker", "Wagner-Peyser"), weights=(55, 20, 25))[0]


def _address_line(street: str | None, unit: str | None, abbreviate: bool) -> str | None:
    if street is None:
        return None
    if abbreviate:
        head, _, suffix = street.rpartition(" ")
        street = f"{head} {_STREET_ABBREVIATIONS.get(suffix, suffix)}"
    return f"{street} {unit}" if unit else street


def _ssn_cell(ssn: str | None, rng: random.Random) -> str | None:
    """The SSN as the workforce board holds it: often dashed, sometimes bare, masked, placeholder or blank."""
    r = rng.random()
    if ssn is None or r < 0.08:
        return None
    if r < 0.14:
        return f"XXX-XX-{ssn[5:]}"
    if r < 0.147:
        return rng.choice(_PLACEHOLDER_SSNS)
    if r < 0.28:
        return ssn
    return f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}"


def _us(d: dt.date | None) -> str | None:
    return d.strftime(WORKFORCE_DATE_FORMAT) if d else None


def workforce_rows(population: pl.DataFrame, assigned: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The workforce board's participation rows (``WORKFORCE_HEADERS``; Q2 Earnings numeric) and truth."""
    rng = partner_rng(seed, "workforce")
    dob_text = partner_rng(seed, "dob-text:workforce")
    people = population.join(assigned.filter("workforce").select("true_id"), on="true_id", how="semi")
    ident = apply_noise(with_household_ssn(people), WORKFORCE_NOISE, rng)
    ids = _unique_ids(rng, ident.height, 7)
    rows: dict[str, list[object]] = {h: [] for h in WORKFORCE_HEADERS}
    truth_ids: list[str] = []
    truth_true: list[str] = []
    true_dobs = dict(people.select("true_id", "dob").iter_rows())
    for n, rec in enumerate(ident.iter_rows(named=True)):
        dob = true_dobs[rec["true_id"]]
        try:
            turns16 = dob.replace(year=dob.year + 16)
            turns71 = dob.replace(year=dob.year + 71)
        except ValueError:
            turns16 = dob.replace(year=dob.year + 16, day=28)
            turns71 = dob.replace(year=dob.year + 71, day=28)
        low, high = max(WINDOW_START, turns16), min(REFERENCE_DATE - dt.timedelta(days=7), turns71)
        if low > high:
            continue
        pid = f"WB{ids[n]}"
        truth_ids.append(pid)
        truth_true.append(rec["true_id"])
        upper = rng.random() < 0.1
        abbreviate = rng.random() < 0.6
        ssn = _ssn_cell(rec["ssn"], rng)
        entry = low + dt.timedelta(days=int(rng.random() * ((high - low).days + 1)))
        spells = 2 if rng.random() < 0.15 else 1
        for _ in range(spells):
            if entry > REFERENCE_DATE:
                break
            exit_: dt.date | None = entry + dt.timedelta(days=rng.randint(45, 420))
            if exit_ > REFERENCE_DATE:  # type: ignore[operator]
                exit_ = None
            q2 = q4 = credential = None
            earnings: float | None = None
            if exit_ is not None:
                credential = "Yes" if rng.random() < 0.45 else "No"
                if exit_ + dt.timedelta(days=183) <= REFERENCE_DATE:
                    employed = rng.random() < 0.68
                    q2 = "Yes" if employed else "No"
                    earnings = round(rng.uniform(2500, 16000), 2) if employed else 0.0
                    if exit_ + dt.timedelta(days=365) <= REFERENCE_DATE:
                        q4 = "Yes" if (employed and rng.random() < 0.88) or rng.random() < 0.15 else "No"
            first, last = rec["first_name"], rec["last_name"]
            if upper:
                first, last = (first or "").upper() or None, (last or "").upper() or None
            rows["Participant ID"].append(pid)
            rows["First"].append(first)
            rows["Last"].append(last)
            rows["DOB"].append(written_birth_date(rec["dob"], WORKFORCE_DATE_FORMAT, WORKFORCE_NOISE.dob_garbled,
                                                  dob_text))
            rows["SSN"].append(ssn)
            rows["Sex"].append({"F": "Female", "M": "Male"}.get(rec["sex"] or ""))
            rows["Address"].append(_address_line(rec["street"], rec["unit"], abbreviate))
            rows["Zip"].append(rec["zip5"])
            rows["Phone"].append(_phone(rec["phone"], "dash"))
            rows["Email"].append(rec["email"])
            rows["Program"].append(_program(age_on(dob, entry), rng))
            rows["Participation Date"].append(_us(entry))
            rows["Exit Date"].append(_us(exit_))
            rows["Employed Q2"].append(q2)
            rows["Employed Q4"].append(q4)
            rows["Q2 Earnings"].append(earnings)
            rows["Credential"].append(credential)
            if exit_ is None:
                break
            entry = exit_ + dt.timedelta(days=rng.randint(30, 500))
    schema = {h: pl.String for h in WORKFORCE_HEADERS}
    schema["Q2 Earnings"] = pl.Float64
    frame = pl.DataFrame(rows, schema=schema)
    order = frame.select(
        pl.col("Participation Date").str.strptime(pl.Date, WORKFORCE_DATE_FORMAT).alias("d"), "Participant ID"
    )
    frame = frame.with_columns(order["d"].alias("_d")).sort("_d", "Participant ID", maintain_order=True).drop("_d")
    truth = truth_frame(PARTNER_WORKFORCE, truth_ids, truth_true)
    return frame, truth


def write_workforce_xlsx(population: pl.DataFrame, assigned: pl.DataFrame, seed: int,
                         directory: Path) -> PartnerExport:
    """Write ``workforce-board.xlsx``: a ``Participants`` sheet (zip as a number, dates as text) and ``Notes``."""
    frame, truth = workforce_rows(population, assigned, seed)
    solo = solo_source_ids(truth, assigned, "workforce")
    frame = plant_bad_rows(frame, PARTNER_WORKFORCE, "Participant ID", solo, seed)
    frame, bad = locate(frame, WORKFORCE_FILE, "Participant ID")
    path = directory / WORKFORCE_FILE
    # constant_memory streams rows to disk (a million-person demo has hundreds of thousands of rows).
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False,
                                               "strings_to_numbers": False, "strings_to_urls": False})
    workbook.set_properties({"title": "Participant export", "author": "Workforce Board MIS",
                             "created": FIXED_TIMESTAMP})
    bold = workbook.add_format({"bold": True})
    sheet = workbook.add_worksheet(WORKFORCE_SHEET)
    zip_col = WORKFORCE_HEADERS.index("Zip")
    earn_col = WORKFORCE_HEADERS.index("Q2 Earnings")
    for c, header in enumerate(WORKFORCE_HEADERS):
        sheet.write_string(0, c, header, bold)
    for r, values in enumerate(frame.iter_rows(), start=1):
        for c, value in enumerate(values):
            if value is None:
                continue
            if c == zip_col and str(value).isdigit():
                sheet.write_number(r, c, int(value))  # what Excel does to a zip: 01040 becomes 1040
            elif c == earn_col:
                sheet.write_number(r, c, float(value))
            else:
                sheet.write_string(r, c, str(value))
    notes = workbook.add_worksheet("Notes")
    for r, line in enumerate((
        "Workforce Board participant export (synthetic demo data — every person is fictional).",
        f"Reporting period: {_us(WINDOW_START)} to {_us(REFERENCE_DATE)}.",
        "Dates are MM/DD/YYYY. Employed Q2/Q4 and Q2 Earnings are blank until the quarter has passed.",
        "SSN may be blank, masked (XXX-XX-1234) or a placeholder where the participant declined.",
    )):
        notes.write_string(r, 0, line)
    workbook.close()
    return PartnerExport(PARTNER_WORKFORCE, path, frame.height, truth, bad)


# -- cilink.toml -------------------------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _table(name: str, mapping: dict[str, str], quote_keys: bool = True) -> list[str]:
    return [f"[{name}]", *(f"{_toml_str(k) if quote_keys else k} = {_toml_str(v)}" for k, v in mapping.items()), ""]


def partners_toml() -> str:
    """The ``[[partners]]`` entries of the demo's cilink.toml, matching the headers the writers use."""
    yes_no = {"Yes": "true", "No": "false"}
    race = {label: str(code) for code, label in RACE_LABELS.items()}
    lines = [
        "[[partners]]",
        f"id = {_toml_str(PARTNER_SCHOOL)}",
        'domain = "school"',
        'format = "csv"',
        'encoding = "utf-8"            # the export starts with a BOM; ingest strips it',
        f"date_format = {_toml_str(SCHOOL_DATE_FORMAT)}",
        'mode = "snapshot"',
        "",
        *_table("partners.columns", SCHOOL_COLUMNS, quote_keys=False),
        *_table("partners.codes.sex", {"Female": "F", "Male": "M", "Non-binary": "X"}),
        *_table("partners.codes.graduated", {"Y": "true", "N": "false"}),
        "# Race/Ethnicity may hold several labels separated by ';'",
        *_table("partners.codes.race_ethnicity", race),
        "[[partners]]",
        f"id = {_toml_str(PARTNER_WORKFORCE)}",
        'domain = "workforce"',
        'format = "xlsx"',
        f"sheet = {_toml_str(WORKFORCE_SHEET)}",
        f"date_format = {_toml_str(WORKFORCE_DATE_FORMAT)}",
        'mode = "snapshot"',
        "",
        *_table("partners.columns", WORKFORCE_COLUMNS, quote_keys=False),
        *_table("partners.codes.sex", {"Female": "F", "Male": "M"}),
        *_table("partners.codes.employed_q2", yes_no),
        *_table("partners.codes.employed_q4", yes_no),
        *_table("partners.codes.credential_attained", yes_no),
    ]
    return "\n".join(lines)
