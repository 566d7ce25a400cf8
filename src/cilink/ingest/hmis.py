"""HUD HMIS CSV exports (folder or zip): Client, Enrollment, Exit and Project joined into housing rows.

One staged row per Enrollment.csv row (``_cilink_row`` is its row number). Knows the FY2024 and FY2026
column sets (``HispanicLatinaeo`` / ``HispanicLatinao``; FY2026 ``Sex`` 0/1/8/9/99 where FY2024 had
gender columns) and HMIS data-quality conventions: 8 (doesn't know), 9 (prefers not to answer) and 99
(not collected) carry no information and become null, as do names/SSN/DOB whose *DataQuality is 8/9/99.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cilink.config import PartnerSettings
from cilink.errors import InputRejected
from cilink.ingest.limits import check_zip_members, read_member
from cilink.ingest.mapping import Mapped, clean_text
from cilink.ingest.readers import NFIELDS, ROW, RawTable, read_csv_bytes
from cilink.ingest.reasons import FileProblem, Reason
from cilink.schemas import RaceEthnicity

DQ_NULL = ["8", "9", "99"]
FILES = ("Export.csv", "Client.csv", "Enrollment.csv", "Exit.csv", "Project.csv")
REQUIRED_FILES = ("Client.csv", "Enrollment.csv")
REQUIRED_COLUMNS = {
    "Client.csv": ["PersonalID"],
    "Enrollment.csv": ["EnrollmentID", "PersonalID", "EntryDate"],
    "Exit.csv": ["EnrollmentID", "ExitDate"],
    "Project.csv": ["ProjectID", "ProjectType"],
}
#: race columns of Client.csv (both spellings of the Hispanic/Latina/e/o column)
RACE_COLUMNS = {
    "AmIndAKNative": RaceEthnicity.AIAN, "Asian": RaceEthnicity.ASIAN, "BlackAfAmerican": RaceEthnicity.BLACK,
    "HispanicLatinaeo": RaceEthnicity.HISPANIC, "HispanicLatinao": RaceEthnicity.HISPANIC,
    "MidEastNAfrican": RaceEthnicity.MENA, "NativeHIPacific": RaceEthnicity.NHPI, "White": RaceEthnicity.WHITE,
}
#: marks an issue column computed here (validate.py collects every column with this prefix)
ISSUE_PREFIX = "_issue__"


@dataclass(frozen=True)
class HmisSource:
    """The export's member files as bytes, and a digest of exactly those bytes."""

    files: dict[str, bytes]
    sha256: str
    size_bytes: int


def _is_member(name: str) -> str | None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if name.startswith("__MACOSX") or base.startswith("._"):
        return None
    for f in FILES:
        if base.lower() == f.lower():
            return f
    return None


def load_source(path: Path) -> HmisSource:
    """Collect the export's CSV files from a folder or a zip (any sub-folder), by name, case-blind."""
    found: dict[str, bytes] = {}
    if path.is_dir():
        # never follow symlinks: a link inside the export could point at a key file or /etc/shadow
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                member = _is_member(str(p.relative_to(path)))
                if member and member not in found and p.is_file() and not p.is_symlink():
                    found[member] = p.read_bytes()
    else:
        try:
            with zipfile.ZipFile(path) as z:
                infos = [i for i in sorted(z.infolist(), key=lambda i: i.filename)
                         if not i.is_dir() and _is_member(i.filename)]
                check_zip_members(z, path.name, infos)
                for info in infos:
                    member = _is_member(info.filename)
                    if member and member not in found:
                        found[member] = read_member(z, info, path.name)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise InputRejected(
                f"{path.name}: not a readable zip file", hint="give the HMIS export as a .zip or an unzipped folder",
                file=path.name, reason=FileProblem.MALFORMED,
            ) from e
    for f in REQUIRED_FILES:
        if f not in found:
            raise InputRejected(
                f"{path.name}: the HMIS export has no {f}",
                hint="export the full HMIS CSV set (Client, Enrollment, Exit, Project, Export) and try again",
                file=path.name, column=f, reason=FileProblem.MISSING_HMIS_FILE,
            )
    h = hashlib.sha256()
    for name in sorted(found):
        h.update(name.encode() + b"\0" + hashlib.sha256(found[name]).digest())
    return HmisSource(found, h.hexdigest(), sum(len(b) for b in found.values()))


def _table(src: HmisSource, name: str, partner: PartnerSettings) -> RawTable | None:
    if name not in src.files:
        return None
    try:
        t = read_csv_bytes(src.files[name], name, encoding=partner.encoding)
    except InputRejected as e:
        # an export period with no exits (or a Project.csv left empty) is normal, not a broken file
        if e.reason == FileProblem.NO_DATA_ROWS and name not in REQUIRED_FILES:
            return None
        raise
    missing = [c for c in REQUIRED_COLUMNS.get(name, []) if c not in t.headers]
    if missing:
        raise InputRejected(
            f"{name}: no column '{missing[0]}' (required in an HMIS CSV export)",
            hint="check that the export follows the HUD HMIS CSV specification (FY2024 or later)",
            file=name, column=missing[0], reason=FileProblem.MISSING_COLUMN,
        )
    return t


def _col(t: RawTable, header: str) -> pl.Expr:
    """A cleaned text column of a member file, or null when the export lacks it."""
    if header in t.headers:
        return clean_text(pl.col(t.frame.columns[t.headers.index(header)]))
    return pl.lit(None, dtype=pl.String)


def _usable(t: RawTable, key: str) -> pl.DataFrame:
    """Rows of a lookup file that can be joined: right field count, not deleted; last row per key wins."""
    frame = t.frame.filter(pl.col(NFIELDS) == len(t.headers))
    frame = frame.filter(_col(t, "DateDeleted").is_null())
    return frame.with_columns(_col(t, key).alias("__key")).filter(pl.col("__key").is_not_null()) \
        .unique("__key", keep="last", maintain_order=True)


def version(client: RawTable) -> str:
    """FY2026 exports have ``Sex`` (and ``HispanicLatinao``); FY2024 have gender columns and ``HispanicLatinaeo``."""
    if "Sex" in client.headers or "HispanicLatinao" in client.headers:
        return "FY2026"
    if "HispanicLatinaeo" in client.headers or "Woman" in client.headers:
        return "FY2024"
    return "unknown"


def _dq_ok(t: RawTable, header: str) -> pl.Expr:
    return ~_col(t, header).is_in(DQ_NULL).fill_null(False)


def _sex(client: RawTable) -> pl.Expr:
    if "Sex" in client.headers:
        s = _col(client, "Sex")
        return pl.when(s == "0").then(pl.lit("F")).when(s == "1").then(pl.lit("M")) \
            .when(s.is_in(DQ_NULL)).then(None).otherwise(s)
    # FY2024 records gender, not sex: a single Woman/Man/NonBinary answer is the best proxy we have;
    # anything else (several answers, transgender, questioning …) stays unknown rather than guessed
    woman, man, nb = (_col(client, c) == "1" for c in ("Woman", "Man", "NonBinary"))
    woman, man, nb = woman.fill_null(False), man.fill_null(False), nb.fill_null(False)
    n = woman.cast(pl.Int8) + man.cast(pl.Int8) + nb.cast(pl.Int8)
    return pl.when(n != 1).then(None).when(woman).then(pl.lit("F")).when(man).then(pl.lit("M")) \
        .otherwise(pl.lit("X"))


def _race(client: RawTable) -> pl.Expr:
    parts = [pl.when(_col(client, c) == "1").then(pl.lit(v.value)) for c, v in RACE_COLUMNS.items()
             if c in client.headers]
    if not parts:
        return pl.lit(None, dtype=pl.String)
    joined = pl.concat_str(parts, separator=";", ignore_nulls=True)
    return pl.when(joined.str.len_bytes() > 0).then(joined).otherwise(None)


def read_hmis(path: Path, partner: PartnerSettings, src: HmisSource | None = None) -> Mapped:
    """Read an HMIS CSV export (folder or zip) into canonical housing columns (text, not yet standardized).

    Orphan enrollments (no Client.csv row) and rows marked deleted get the quarantine reasons
    ``orphan_record`` and ``deleted_in_source``; every Enrollment.csv row is accounted for.
    """
    src = src or load_source(path)
    client = _table(src, "Client.csv", partner)
    enrollment = _table(src, "Enrollment.csv", partner)
    exits = _table(src, "Exit.csv", partner)
    project = _table(src, "Project.csv", partner)
    assert client is not None and enrollment is not None  # load_source guarantees both

    names_ok = _dq_ok(client, "NameDataQuality")
    c = _usable(client, "PersonalID").select(
        pl.col("__key").alias("__pid"),
        pl.lit(True).alias("__client"),
        *[pl.when(names_ok).then(_col(client, h)).alias(f)
          for f, h in [("first_name", "FirstName"), ("middle_name", "MiddleName"), ("last_name", "LastName"),
                       ("name_suffix", "NameSuffix")]],
        pl.when(_dq_ok(client, "SSNDataQuality")).then(_col(client, "SSN")).alias("ssn"),
        pl.when(_dq_ok(client, "DOBDataQuality")).then(_col(client, "DOB")).alias("dob"),
        _sex(client).alias("sex"),
        _race(client).alias("race_ethnicity"),
    )
    e = enrollment.frame.select(
        pl.col(ROW), pl.col(NFIELDS),
        _col(enrollment, "PersonalID").alias("source_person_id"),
        _col(enrollment, "EnrollmentID").alias("enrollment_id"),
        _col(enrollment, "ProjectID").alias("__project"),
        _col(enrollment, "HouseholdID").alias("household_id"),
        _col(enrollment, "RelationshipToHoH").alias("relationship_to_hoh"),
        _col(enrollment, "EntryDate").alias("entry_date"),
        _col(enrollment, "MoveInDate").alias("move_in_date"),
        _col(enrollment, "DateDeleted").alias("__deleted"),
    )
    frame = e.join(c, left_on="source_person_id", right_on="__pid", how="left", maintain_order="left")
    if exits is not None:
        x = _usable(exits, "EnrollmentID").select(
            pl.col("__key").alias("__enr"), _col(exits, "ExitDate").alias("exit_date"),
            _col(exits, "Destination").alias("destination"))
        frame = frame.join(x, left_on="enrollment_id", right_on="__enr", how="left", maintain_order="left")
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in ("exit_date", "destination"))
    if project is not None:
        p = _usable(project, "ProjectID").select(pl.col("__key").alias("__proj"),
                                                 _col(project, "ProjectType").alias("project_type"))
        frame = frame.join(p, left_on="__project", right_on="__proj", how="left", maintain_order="left")
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("project_type"))
    deleted = pl.col("__deleted").is_not_null()
    frame = frame.sort(ROW).with_columns(
        deleted.alias(f"{ISSUE_PREFIX}enrollment_id__{Reason.DELETED_IN_SOURCE}"),
        (pl.col("__client").is_null() & pl.col("source_person_id").is_not_null() & ~deleted)
        .alias(f"{ISSUE_PREFIX}source_person_id__{Reason.ORPHAN_RECORD}"),
    ).drop("__client", "__project", "__deleted")
    sources = {
        "source_person_id": "Enrollment.csv:PersonalID", "enrollment_id": "Enrollment.csv:EnrollmentID",
        "household_id": "Enrollment.csv:HouseholdID", "relationship_to_hoh": "Enrollment.csv:RelationshipToHoH",
        "entry_date": "Enrollment.csv:EntryDate", "move_in_date": "Enrollment.csv:MoveInDate",
        "first_name": "Client.csv:FirstName", "middle_name": "Client.csv:MiddleName",
        "last_name": "Client.csv:LastName", "name_suffix": "Client.csv:NameSuffix", "ssn": "Client.csv:SSN",
        "dob": "Client.csv:DOB", "sex": "Client.csv:Sex" if "Sex" in client.headers else "Client.csv:Woman/Man",
        "race_ethnicity": "Client.csv:race columns", "exit_date": "Exit.csv:ExitDate",
        "destination": "Exit.csv:Destination", "project_type": "Project.csv:ProjectType",
    }
    notes: dict[str, object] = {"hmis_version": version(client), "client_rows": client.rows,
                                "enrollment_rows": enrollment.rows}
    return Mapped(frame, sources, len(enrollment.headers), notes=notes)


_UNKNOWN_DEST = [8, 9, 30, 37, 99]   # doesn't know, prefers not to answer, no exit interview, unable, not collected
_OTHER_DEST = [17, 24]               # other, deceased


def destination_category(code: pl.Expr) -> pl.Expr:
    """HUD FY2024+ exit destination code → permanent / temporary / institutional / homeless / other / unknown.

    FY2024 numbers encode the category in the hundreds: 1xx homeless (101, 116, 118), 2xx institutional,
    3xx temporary, 4xx permanent (410, 411, 421, 422, 423, 426, 435 …). Null for codes outside the list.
    """
    return (
        pl.when(code.is_in(_UNKNOWN_DEST)).then(pl.lit("unknown"))
        .when(code.is_in(_OTHER_DEST)).then(pl.lit("other"))
        .when(code.is_between(100, 199)).then(pl.lit("homeless"))
        .when(code.is_between(200, 299)).then(pl.lit("institutional"))
        .when(code.is_between(300, 399)).then(pl.lit("temporary"))
        .when(code.is_between(400, 499)).then(pl.lit("permanent"))
        .otherwise(None)
    )


def is_dq_code(code: pl.Expr) -> pl.Expr:
    """HMIS 8/9/99 answers (doesn't know / prefers not to answer / not collected): no information."""
    return code.is_in([8, 9, 99]).fill_null(False)
