"""The continuum of care's HUD HMIS CSV export: Export, Client, Enrollment, Exit and Project in one zip.

Column names follow the HUD HMIS CSV specifications. Two column sets are supported: ``FY2024``
(``HispanicLatinaeo``; gender as ``Woman``/``Man``/``NonBinary``/… flags) and ``FY2026``
(``HispanicLatinao``; element 4.21 ``Sex`` coded 0 Female, 1 Male, 8/9/99 missing). Client.csv carries no
address; the head of household's ``LastPermanentZIP`` is in Enrollment.csv. Data-quality codes 8/9/99
(client doesn't know / prefers not to answer / not collected) appear for names, SSNs, DOBs and sex.
Households enrol together under one ``HouseholdID``; about 3 % of clients were entered twice under a second
``PersonalID`` (the duplicate clients HMIS deduplication exists for).
"""

from __future__ import annotations

import datetime as dt
import io
import random
import zipfile
from pathlib import Path

import polars as pl

from cilink.demo.bad_rows import PARTNER_HMIS, locate
from cilink.demo.noise import NoiseProfile, apply_noise, with_household_ssn, written_birth_date
from cilink.demo.partners import (
    FIXED_TIMESTAMP,
    PartnerExport,
    partner_rng,
    plant_bad_rows,
    solo_source_ids,
    truth_frame,
)
from cilink.demo.population import REFERENCE_DATE, WINDOW_START, age_on
from cilink.schemas.identity import RaceEthnicity

HMIS_FILE = "hmis-export.zip"
HMIS_VERSIONS = ("FY2024", "FY2026")
COC_CODE = "MA-504"
EXPORT_ID = "1001"

HMIS_NOISE = NoiseProfile(
    typo_first=0.02, typo_last=0.02, nickname=0.05, maiden_name=0.3, name_swap=0.008, dob_swap=0.01,
    dob_typo=0.01, old_address=0.5, ssn_typo=0.01, ssn_household=0.015, strip_accents=0.3, dob_garbled=0.015,
    missing={"middle_name": 0.5},
)
DUPLICATE_CLIENT_RATE = 0.03
#: a client under two recorded with a placeholder first name, an older child likewise
PLACEHOLDER_BABY_RATE, PLACEHOLDER_CHILD_RATE = 0.3, 0.02
#: a client recorded with a household member's birth date
RELATIVE_DOB_RATE = 0.01

_RACE_COLUMNS = ("AmIndAKNative", "Asian", "BlackAfAmerican", "{hispanic}", "MidEastNAfrican", "NativeHIPacific",
                 "White")
_RACE_OF_COLUMN = {
    "AmIndAKNative": RaceEthnicity.AIAN, "Asian": RaceEthnicity.ASIAN, "BlackAfAmerican": RaceEthnicity.BLACK,
    "{hispanic}": RaceEthnicity.HISPANIC, "MidEastNAfrican": RaceEthnicity.MENA,
    "NativeHIPacific": RaceEthnicity.NHPI, "White": RaceEthnicity.WHITE,
}
_GENDER_COLUMNS_FY2024 = ("Woman", "Man", "NonBinary", "CulturallySpecific", "Transgender", "Questioning",
                          "DifferentIdentity", "GenderNone", "DifferentIdentityText")
_VETERAN_COLUMNS = ("VeteranStatus", "YearEnteredService", "YearSeparated", "WorldWarII", "KoreanWar",
                    "VietnamWar", "DesertStorm", "AfghanistanOEF", "IraqOIF", "IraqOND", "OtherTheater",
                    "MilitaryBranch", "DischargeStatus")
_TRAILER = ("DateCreated", "DateUpdated", "UserID", "DateDeleted", "ExportID")

EXPORT_COLUMNS = ("ExportID", "SourceType", "SourceID", "SourceName", "SourceContactFirst", "SourceContactLast",
                  "SourceContactPhone", "SourceContactExtension", "SourceContactEmail", "ExportDate",
                  "ExportStartDate", "ExportEndDate", "SoftwareName", "SoftwareVersion", "CSVVersion",
                  "ExportPeriodType", "ExportDirective", "HashStatus", "ImplementationID")
ENROLLMENT_COLUMNS = ("EnrollmentID", "PersonalID", "ProjectID", "EntryDate", "HouseholdID", "RelationshipToHoH",
                      "EnrollmentCoC", "LivingSituation", "RentalSubsidyType", "LengthOfStay", "LOSUnderThreshold",
                      "PreviousStreetESSH", "DateToStreetESSH", "TimesHomelessPastThreeYears",
                      "MonthsHomelessPastThreeYears", "DisablingCondition", "DateOfEngagement", "MoveInDate",
                      "LastPermanentZIP", "TranslationNeeded", "PreferredLanguage", *_TRAILER)
EXIT_COLUMNS = ("ExitID", "EnrollmentID", "PersonalID", "ExitDate", "Destination", "DestinationSubsidyType",
                "OtherDestination", "HousingAssessment", "SubsidyInformation", *_TRAILER)
PROJECT_COLUMNS = ("ProjectID", "OrganizationID", "ProjectName", "ProjectCommonName", "OperatingStartDate",
                   "OperatingEndDate", "ContinuumProject", "ProjectType", "HousingType", "RRHSubType",
                   "ResidentialAffiliation", "TargetPopulation", "HOPWAMedAssistedLivingFac", "PITCount", *_TRAILER)

#: (ProjectID, name, HUD project type, serves families?)
PROJECTS: tuple[tuple[str, str, int, bool], ...] = (
    ("101", "Riverside Family Shelter", 0, True),
    ("102", "Canal Street Adult Shelter", 1, False),
    ("103", "Bridgeway Transitional Housing", 2, True),
    ("104", "Valley Rapid Rehousing", 13, True),
    ("105", "Summit Permanent Supportive Housing", 3, False),
    ("106", "Street Outreach Team", 4, False),
    ("107", "Keep Home Prevention", 12, True),
)
_PROJECT_WEIGHTS_FAMILY = {"101": 50, "103": 12, "104": 25, "107": 13}
_PROJECT_WEIGHTS_SINGLE = {"102": 50, "104": 15, "105": 10, "106": 15, "107": 10}
#: Length of stay (days) by project type.
_STAY = {0: (7, 150), 1: (1, 120), 2: (90, 540), 13: (60, 400), 3: (300, 1400), 4: (20, 240), 12: (30, 120)}
_DESTINATIONS = {
    "permanent": ((410, 435, 422, 423, 411, 421), (35, 30, 14, 8, 3, 3)),
    "temporary": ((312, 313, 302, 314, 327), (40, 25, 15, 15, 5)),
    "homeless": ((101, 116, 118), (60, 35, 5)),
    "institutional": ((204, 205, 206, 207, 215, 225), (15, 25, 25, 25, 5, 5)),
    "other": ((8, 9, 17, 24, 30, 99), (5, 5, 15, 3, 60, 12)),
}
_OUTCOME_MIX = {  # by project type: permanent, temporary, homeless, institutional, other
    0: (30, 25, 20, 5, 20), 1: (15, 20, 40, 7, 18), 2: (55, 15, 8, 5, 17), 13: (75, 8, 4, 3, 10),
    3: (60, 8, 4, 10, 18), 4: (15, 15, 45, 8, 17), 12: (85, 5, 2, 1, 7),
}
_SUBSIDY_TYPES = (419, 420, 428, 431, 433, 434, 436, 437, 438, 439, 440)
_RELATIONSHIP = {"head": 1, "child": 2, "spouse": 3, "parent": 4}


def client_columns(version: str) -> tuple[str, ...]:
    """Client.csv header of an HMIS CSV version (FY2024 or FY2026)."""
    hispanic = "HispanicLatinaeo" if version == "FY2024" else "HispanicLatinao"
    race = tuple(c.replace("{hispanic}", hispanic) for c in _RACE_COLUMNS)
    sex_or_gender = _GENDER_COLUMNS_FY2024 if version == "FY2024" else ("Sex",)
    return ("PersonalID", "FirstName", "MiddleName", "LastName", "NameSuffix", "NameDataQuality", "SSN",
            "SSNDataQuality", "DOB", "DOBDataQuality", *race, "RaceNone", "AdditionalRaceEthnicity",
            *sex_or_gender, *_VETERAN_COLUMNS, *_TRAILER)


def _hex_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032X}"


def _stamp(day: dt.date, rng: random.Random) -> str:
    return f"{day.isoformat()} {8 + int(rng.random() * 10):02d}:{int(rng.random() * 60):02d}:00"


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def _missing_code(rng: random.Random) -> str:
    return rng.choices(("8", "9", "99"), weights=(3, 2, 5))[0]


def _placeholder_first_name(rec: dict[str, object], created: dt.date, written: random.Random) -> str | None:
    """What intake writes for a child whose name it does not have yet ("Baby Girl", "Infant", "Child")."""
    age = age_on(rec["true_dob"], created)  # type: ignore[arg-type]
    rate = PLACEHOLDER_BABY_RATE if age < 2 else PLACEHOLDER_CHILD_RATE if age < 18 else 0.0
    if not rate or written.random() >= rate:
        return None
    if age < 2:
        return written.choice(({"F": "Baby Girl", "M": "Baby Boy"}.get(str(rec["sex"]), "Baby"), "Infant"))
    return written.choice(("Child", "Unknown", "Minor"))


def _client_row(rec: dict[str, object], pid: str, version: str, created: dt.date, rng: random.Random,
                written: random.Random) -> dict:
    """One Client.csv row from a noisy identity, with HUD data-quality coding.

    ``written`` draws what intake staff get wrong as they type (a placeholder for a baby's first name, a
    relative's birth date, a garbled date): its own stream, so the rest of the export draws the same."""
    minor = age_on(rec["true_dob"], REFERENCE_DATE) < 18  # type: ignore[arg-type]
    row: dict[str, object] = {c: None for c in client_columns(version)}
    row.update(PersonalID=pid, FirstName=rec["first_name"], MiddleName=rec["middle_name"],
               LastName=rec["last_name"], NameSuffix="Jr." if rec["suffix"] == "JR" else rec["suffix"])
    row["NameDataQuality"] = "2" if rng.random() < 0.02 else "1"
    placeholder = _placeholder_first_name(rec, created, written)
    if placeholder is not None:
        row["FirstName"], row["NameDataQuality"] = placeholder, "2"
    ssn = rec["ssn"]
    r = rng.random()
    if ssn is None or (minor and r < 0.3):
        row["SSNDataQuality"] = "99" if minor or r < 0.5 else "8"
    elif r < 0.80:
        row["SSN"], row["SSNDataQuality"] = ssn, "1"
    elif r < 0.85:
        row["SSN"], row["SSNDataQuality"] = f"xxxxx{str(ssn)[5:]}", "2"
    else:
        row["SSNDataQuality"] = _missing_code(rng)
    dob = rec["dob"]
    if rec.get("relative_dob") is not None and written.random() < RELATIVE_DOB_RATE:
        dob = rec["relative_dob"]  # the parent's date typed on the child's form, or the other way round
    r = rng.random()
    if dob is None or r < 0.01:
        row["DOBDataQuality"] = _missing_code(rng)
    elif r < 0.03:
        row["DOB"], row["DOBDataQuality"] = f"{dob.year}-01-01", "2"  # type: ignore[union-attr]
    else:
        row["DOB"] = written_birth_date(dob, "%Y-%m-%d", HMIS_NOISE.dob_garbled, written)  # type: ignore[arg-type]
        row["DOBDataQuality"] = "1"
    race = set(rec["race_ethnicity"] or [])  # type: ignore[arg-type]
    hispanic = "HispanicLatinaeo" if version == "FY2024" else "HispanicLatinao"
    no_race = not race or rng.random() < 0.02
    for col in _RACE_COLUMNS:
        name = col.replace("{hispanic}", hispanic)
        row[name] = "0" if no_race else ("1" if str(_RACE_OF_COLUMN[col]) in race else "0")
    row["RaceNone"] = _missing_code(rng) if no_race else None
    sex = rec["sex"] if rng.random() >= 0.015 else None
    if version == "FY2024":
        for col in _GENDER_COLUMNS_FY2024[:-2]:
            row[col] = "0"
        if sex is None:
            row["GenderNone"] = _missing_code(rng)
        else:
            row["Woman" if sex == "F" else "Man"] = "1"
    else:
        row["Sex"] = {"F": "0", "M": "1"}.get(str(sex)) or _missing_code(rng)
    if minor:
        row["VeteranStatus"] = "99"
    else:
        r = rng.random()
        row["VeteranStatus"] = "1" if r < 0.04 else "0" if r < 0.98 else _missing_code(rng)
    row.update(DateCreated=_stamp(created, rng), DateUpdated=_stamp(min(REFERENCE_DATE, created +
               dt.timedelta(days=int(rng.random() * 60))), rng), UserID=f"U{100 + int(rng.random() * 40)}",
               ExportID=EXPORT_ID)
    return row


def _episodes(rng: random.Random, family: bool) -> list[tuple[str, int, dt.date, dt.date | None]]:
    """(ProjectID, project type, entry, exit or None) for a household's stays, in time order."""
    weights = _PROJECT_WEIGHTS_FAMILY if family else _PROJECT_WEIGHTS_SINGLE
    types = {p[0]: p[2] for p in PROJECTS}
    count = rng.choices((1, 2, 3), weights=(70, 22, 8))[0]
    span = (REFERENCE_DATE - WINDOW_START).days
    entry = WINDOW_START + dt.timedelta(days=int(rng.random() * span * (0.9 if count > 1 else 1.0)))
    out: list[tuple[str, int, dt.date, dt.date | None]] = []
    for _ in range(count):
        project = rng.choices(tuple(weights), weights=tuple(weights.values()))[0]
        low, high = _STAY[types[project]]
        exit_: dt.date | None = entry + dt.timedelta(days=rng.randint(low, high))
        if exit_ > REFERENCE_DATE:  # type: ignore[operator]
            exit_ = None
        out.append((project, types[project], entry, exit_))
        if exit_ is None:
            break
        entry = exit_ + dt.timedelta(days=rng.randint(1, 300))
        if entry > REFERENCE_DATE:
            break
    return out


def _destination(project_type: int, rng: random.Random) -> tuple[str, str | None]:
    kind = rng.choices(tuple(_DESTINATIONS), weights=_OUTCOME_MIX[project_type])[0]
    codes, weights = _DESTINATIONS[kind]
    code = rng.choices(codes, weights=weights)[0]
    subsidy = str(rng.choice(_SUBSIDY_TYPES)) if code == 435 else None
    return str(code), subsidy


def hmis_tables(population: pl.DataFrame, assigned: pl.DataFrame, seed: int,
                version: str = "FY2026") -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The five HMIS CSV tables (all-string frames, keyed by file name) and the truth pairs."""
    if version not in HMIS_VERSIONS:
        raise ValueError(f"unknown HMIS CSV version {version!r}; use one of {', '.join(HMIS_VERSIONS)}")
    rng = partner_rng(seed, "hmis")
    written = partner_rng(seed, "dob-text:hmis")
    people = population.join(assigned.filter("housing").select("true_id"), on="true_id", how="semi")
    people = people.with_columns(pl.col("dob").alias("true_dob"))
    noisy = apply_noise(with_household_ssn(people), HMIS_NOISE, rng)
    relative = people.select("true_id", pl.coalesce(pl.col("dob").shift(-1).over("household_id"),
                                                    pl.col("dob").shift(1).over("household_id")))
    relative_dob = dict(relative.iter_rows())
    ident = {r["true_id"]: {**r, "relative_dob": relative_dob.get(r["true_id"])} for r in noisy.iter_rows(named=True)}
    dup_people = [t for t in noisy.get_column("true_id").to_list() if rng.random() < DUPLICATE_CLIENT_RATE]
    dup_noisy = apply_noise(with_household_ssn(people).filter(pl.col("true_id").is_in(dup_people)), HMIS_NOISE,
                            partner_rng(seed, "hmis-duplicates"))
    pid = {t: _hex_id(rng) for t in noisy.get_column("true_id").to_list()}
    enrollments: list[dict[str, object]] = []
    exits: list[dict[str, object]] = []
    first_seen: dict[str, dt.date] = {}
    next_id = 200001

    def enrol(person: dict[str, object], personal_id: str, project: str, ptype: int, entry: dt.date,
              exit_: dt.date | None, household: str, relationship: int, destination: tuple[str, str | None]) -> None:
        nonlocal next_id
        eid = str(next_id)
        next_id += 1
        adult = age_on(person["true_dob"], entry) >= 18  # type: ignore[arg-type]
        head = relationship == 1
        move_in = None
        if ptype in (3, 13):
            candidate = entry + dt.timedelta(days=rng.randint(10, 120))
            if candidate <= (exit_ or REFERENCE_DATE):
                move_in = candidate
        zip5 = person["prev_zip5"] or person["zip5"]
        enrollments.append({
            "EnrollmentID": eid, "PersonalID": personal_id, "ProjectID": project, "EntryDate": _iso(entry),
            "HouseholdID": household, "RelationshipToHoH": str(relationship), "EnrollmentCoC": COC_CODE,
            "LivingSituation": str(rng.choice((116, 101, 312, 313, 314, 410, 215, 207))) if adult else None,
            "LengthOfStay": str(rng.choice((2, 3, 4, 5, 10, 11))) if adult else None,
            "DisablingCondition": rng.choices(("0", "1", "99"), weights=(70, 25, 5))[0],
            "MoveInDate": _iso(move_in),
            "LastPermanentZIP": zip5 if head and rng.random() < 0.85 else None,
            "DateCreated": _stamp(entry, rng), "DateUpdated": _stamp(exit_ or entry + dt.timedelta(days=1), rng),
            "UserID": f"U{100 + int(rng.random() * 40)}", "ExportID": EXPORT_ID,
        })
        first_seen[personal_id] = min(first_seen.get(personal_id, entry), entry)
        if exit_ is not None:
            stamp = _stamp(exit_, rng)
            exits.append({
                "ExitID": f"X{eid}", "EnrollmentID": eid, "PersonalID": personal_id, "ExitDate": _iso(exit_),
                "Destination": destination[0], "DestinationSubsidyType": destination[1],
                "DateCreated": stamp, "DateUpdated": stamp,
                "UserID": f"U{100 + int(rng.random() * 40)}", "ExportID": EXPORT_ID,
            })

    households = people.group_by("household_id", maintain_order=True).agg("true_id", "relationship")
    for _hh, members, relationships in households.iter_rows():
        family = "child" in relationships
        for project, ptype, entry, exit_ in _episodes(rng, family):
            household = _hex_id(rng)
            destination = _destination(ptype, rng)  # a household leaves together
            present = [(t, r) for t, r in zip(members, relationships, strict=True)
                       if ident[t]["true_dob"] <= entry]
            has_head = any(r == "head" for _t, r in present)
            for t, r in present:
                rel = _RELATIONSHIP[r] if has_head else (1 if (t, r) == present[0] else 4)
                enrol(ident[t], pid[t], project, ptype, entry, exit_, household, rel, destination)
    dup_pid: dict[str, str] = {}
    for person in dup_noisy.iter_rows(named=True):
        second = _hex_id(rng)
        dup_pid[second] = person["true_id"]
        span = (REFERENCE_DATE - WINDOW_START).days
        entry = WINDOW_START + dt.timedelta(days=int(rng.random() * span))
        entry = max(entry, person["true_dob"] + dt.timedelta(days=1))
        stay = entry + dt.timedelta(days=rng.randint(2, 60))
        adult = age_on(person["true_dob"], entry) >= 18
        ptype = 1 if adult else 0
        enrol(person, second, "102" if adult else "101", ptype, entry, stay if stay <= REFERENCE_DATE else None,
              _hex_id(rng), 1, _destination(ptype, rng))

    clients = [
        _client_row(ident[t], pid[t], version, first_seen[pid[t]], rng, written) for t in pid if pid[t] in first_seen
    ] + [_client_row(p, second, version, first_seen[second], rng, written)
         for p, second in zip(dup_noisy.iter_rows(named=True), dup_pid, strict=True)]
    truth_pairs = [(pid[t], t) for t in pid if pid[t] in first_seen] + [(s, t) for s, t in dup_pid.items()]
    tables = {
        "Export.csv": _frame([_export_row(version)], EXPORT_COLUMNS),
        "Project.csv": _frame(_project_rows(), PROJECT_COLUMNS),
        "Client.csv": _frame(clients, client_columns(version)).sort("PersonalID"),
        "Enrollment.csv": _frame(enrollments, ENROLLMENT_COLUMNS),
        "Exit.csv": _frame(exits, EXIT_COLUMNS),
    }
    truth = truth_frame(PARTNER_HMIS, [p for p, _ in truth_pairs], [t for _, t in truth_pairs])
    return tables, truth


def _frame(rows: list[dict[str, object]], columns: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame({c: [r.get(c) for r in rows] for c in columns}, schema={c: pl.String for c in columns})


def _export_row(version: str) -> dict[str, object]:
    return {
        "ExportID": EXPORT_ID, "SourceType": "1", "SourceID": COC_CODE,
        "SourceName": "Hampden County CoC HMIS (synthetic demo)", "SourceContactFirst": "Data",
        "SourceContactLast": "Manager", "SourceContactEmail": "hmis@example.org",
        "ExportDate": FIXED_TIMESTAMP.strftime("%Y-%m-%d %H:%M:%S"), "ExportStartDate": _iso(WINDOW_START),
        "ExportEndDate": _iso(REFERENCE_DATE), "SoftwareName": "DemoHMIS", "SoftwareVersion": "4.2",
        "CSVVersion": version, "ExportPeriodType": "3", "ExportDirective": "2", "HashStatus": "1",
        "ImplementationID": "cilink-demo",
    }


def _project_rows() -> list[dict[str, object]]:
    return [
        {"ProjectID": pid, "OrganizationID": "10" + pid[-1], "ProjectName": name, "ProjectCommonName": name,
         "OperatingStartDate": "2015-07-01", "ContinuumProject": "1", "ProjectType": str(ptype),
         "HousingType": "1" if ptype in (0, 1, 2, 3) else None, "RRHSubType": "2" if ptype == 13 else None,
         "TargetPopulation": "4", "PITCount": None, "DateCreated": "2015-06-15 09:00:00",
         "DateUpdated": "2024-10-01 09:00:00", "UserID": "U100", "ExportID": EXPORT_ID}
        for pid, name, ptype, _family in PROJECTS
    ]


def write_hmis_zip(population: pl.DataFrame, assigned: pl.DataFrame, seed: int, directory: Path,
                   version: str = "FY2026") -> PartnerExport:
    """Write ``hmis-export.zip`` (fixed timestamps inside, so the same seed gives the same bytes)."""
    tables, truth = hmis_tables(population, assigned, seed, version)
    solo = solo_source_ids(truth, assigned, "housing")
    last_id = tables["Enrollment.csv"].get_column("EnrollmentID").cast(pl.Int64).max()
    fresh_id = str(int(last_id) + 1 if isinstance(last_id, int) else 200001)
    enrollment = plant_bad_rows(tables["Enrollment.csv"], PARTNER_HMIS, "PersonalID", solo, seed,
                                extra={"hmis_future_entry": {"EnrollmentID": fresh_id, "MoveInDate": None}})
    tables["Enrollment.csv"], bad = locate(enrollment, HMIS_FILE, "PersonalID")
    path = directory / HMIS_FILE
    stamp = FIXED_TIMESTAMP.timetuple()[:6]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ("Export.csv", "Project.csv", "Client.csv", "Enrollment.csv", "Exit.csv"):
            buffer = io.BytesIO()
            tables[name].write_csv(buffer, null_value="")
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    return PartnerExport(PARTNER_HMIS, path, tables["Enrollment.csv"].height, truth, bad)
