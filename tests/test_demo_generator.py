"""The synthetic demo generator: deterministic, realistic enough to exercise ingest and linkage."""

from __future__ import annotations

import io
import json
import os
import random
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest

from cilink.config import parse_config
from cilink.demo import DELIBERATE_BAD_ROWS, EXPORT_FILES, PARTNER_IDS, DemoFiles, generate_demo
from cilink.demo.hmis import client_columns
from cilink.demo.noise import CLEAN, NoiseProfile, apply_noise, nicknames_for, typo, with_household_ssn
from cilink.demo.partners import SCHOOL_HEADERS, WORKFORCE_HEADERS
from cilink.demo.population import generate_population
from cilink.errors import UsageError
from cilink.schemas.identity import RaceEthnicity

PEOPLE = 600


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return generate_demo(tmp_path_factory.mktemp("demo"), people=PEOPLE, seed=3)


@pytest.fixture(scope="module")
def truth(demo: DemoFiles) -> pl.DataFrame:
    return pl.read_csv(demo.truth, infer_schema=False)


def _school(demo: DemoFiles) -> pl.DataFrame:
    return pl.read_csv(demo.exports["holyoke-schools"], infer_schema=False, encoding="utf8")


def _workforce(demo: DemoFiles) -> pl.DataFrame:
    return pl.read_excel(demo.exports["workforce-board"], sheet_name="Participants",
                         schema_overrides={"Zip": pl.String})


def _hmis(demo: DemoFiles, name: str) -> pl.DataFrame:
    with zipfile.ZipFile(demo.exports["coc-hmis"]) as archive:
        return pl.read_csv(io.BytesIO(archive.read(name)), infer_schema=False)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_restricted_zone(demo: DemoFiles) -> None:
    for partner in PARTNER_IDS:
        path = demo.root / "inbox" / partner / EXPORT_FILES[partner]
        assert path.is_file() and demo.exports[partner] == path
    assert demo.truth == demo.root / ".cilink" / "truth.csv"
    assert stat.S_IMODE((demo.root / ".cilink").stat().st_mode) == 0o700
    assert not [p for p in demo.root.iterdir() if p.name.startswith(".demo-")]  # staging cleaned up
    assert demo.people == PEOPLE and 0 < demo.people_in_data <= PEOPLE


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = generate_demo(tmp_path / "a", people=300, seed=11)
    # A second process with another string-hash seed: set ordering must not leak into the output.
    code = "import sys; from pathlib import Path; from cilink.demo import generate_demo; " \
           "generate_demo(Path(sys.argv[1]), people=300, seed=11)"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], check=True,
                   env={**os.environ, "PYTHONHASHSEED": "12345"})
    a, b = _tree_bytes(first.root), _tree_bytes(tmp_path / "b")
    assert a.keys() == b.keys()
    assert {k for k in a if a[k] != b[k]} == set()
    other = generate_demo(tmp_path / "c", people=300, seed=12)
    assert _tree_bytes(other.root)[".cilink/truth.csv"] != a[".cilink/truth.csv"]


def test_tiny_demos_do_not_break(tmp_path: Path) -> None:
    for n in (1, 10):
        files = generate_demo(tmp_path / str(n), people=n, seed=1)
        assert files.truth.is_file() and parse_config(files.config.read_text(encoding="utf-8"))


def test_refuses_to_overwrite_a_workspace(demo: DemoFiles) -> None:
    with pytest.raises(UsageError):
        generate_demo(demo.root, people=10)
    with pytest.raises(UsageError):
        generate_demo(demo.root / "x", people=10, hmis_version="FY2019")


def test_generated_config_validates_and_matches_headers(demo: DemoFiles) -> None:
    config = parse_config(demo.config.read_text(encoding="utf-8"))
    assert [p.id for p in config.partners] == list(PARTNER_IDS)
    school = config.partner("holyoke-schools")
    assert set(school.columns.values()) <= set(SCHOOL_HEADERS)
    assert school.codes["sex"]["Male"] == "M"
    workforce = config.partner("workforce-board")
    assert workforce.sheet == "Participants" and workforce.date_format == "%m/%d/%Y"
    assert set(workforce.columns.values()) <= set(WORKFORCE_HEADERS)
    assert config.partner("coc-hmis").format == "hmis-csv"
    assert set(_school(demo).columns) == set(SCHOOL_HEADERS)
    assert _workforce(demo).columns == list(WORKFORCE_HEADERS)


def test_overlap_proportions(truth: pl.DataFrame) -> None:
    assert set(truth.columns) == {"partner", "source_person_id", "true_id"}
    assert truth.select("partner", "source_person_id").is_duplicated().sum() == 0
    k = truth.group_by("true_id").agg(pl.col("partner").n_unique().alias("k")).get_column("k")
    share = {n: (k == n).mean() for n in (1, 2, 3)}
    assert 0.6 <= share[1] <= 0.8
    assert 0.17 <= share[2] <= 0.33
    assert 0.01 <= share[3] <= 0.08


def test_school_csv_has_bom_and_realistic_rows(demo: DemoFiles) -> None:
    raw = demo.exports["holyoke-schools"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfStudentID,Last Name,First Name")
    assert b"\r\n" in raw
    school = _school(demo).filter(pl.col("StudentID").is_not_null())
    assert "SSN" not in school.columns
    assert set(school["School Year"].unique()) == {"2021-22", "2022-23", "2023-24", "2024-25"}
    assert school["Zip"].str.starts_with("0").mean() > 0.9  # leading zeros kept in the CSV
    present = school.select(pl.col("Days Present").cast(pl.Int64) / pl.col("Days Enrolled").cast(pl.Int64))
    assert 0.05 < (present.to_series() < 0.9).mean() < 0.35  # some chronic absence, not too much
    per_student = school.group_by("StudentID").len()
    assert per_student["len"].max() > 1  # one row per student per year


def test_households_share_address_phone_and_last_name(demo: DemoFiles, truth: pl.DataFrame) -> None:
    population = generate_population(PEOPLE, seed=3)
    families = population.filter(pl.col("household_id").is_duplicated())
    assert families.height > 0
    per_household = families.group_by("household_id").agg(
        pl.col("street").n_unique(), pl.col("zip5").n_unique(), pl.col("home_phone").n_unique(),
        (pl.col("relationship") == "child").any().alias("has_child"),
    )
    assert per_household.select(pl.col("street", "zip5", "home_phone").max()).row(0) == (1, 1, 1)
    kids = families.filter(pl.col("relationship") == "child")
    heads = families.filter(pl.col("relationship") == "head").select("household_id", head_last="last_name")
    assert (kids.join(heads, on="household_id")["last_name"] == kids.join(heads, on="household_id")["head_last"]).all()
    # Siblings in the school export share the guardian phone and street of their household.
    school = _school(demo).filter(pl.col("StudentID").is_not_null())
    ids = truth.filter(pl.col("partner") == "holyoke-schools").select("source_person_id", "true_id")
    linked = (
        school.filter(pl.col("School Year") == "2024-25")
        .join(ids, left_on="StudentID", right_on="source_person_id")
        .join(population.select("true_id", "household_id"), on="true_id")
    )
    siblings = linked.filter(pl.col("household_id").is_duplicated())
    if siblings.height:
        same_zip = siblings.group_by("household_id").agg(pl.col("Zip").n_unique())["Zip"]
        assert (same_zip == 1).mean() > 0.8


def test_population_is_deterministic_and_plausible() -> None:
    a, b = generate_population(2000, seed=5), generate_population(2000, seed=5)
    assert a.equals(b)
    assert a["ssn"].drop_nulls().is_unique().all()
    assert set(a["state"].unique()) == {"MA"}
    assert a["zip5"].str.contains(r"^0\d{4}$").all()
    allowed = {str(r) for r in RaceEthnicity}
    assert set(a["race_ethnicity"].explode().unique()) <= allowed
    assert (a["race_ethnicity"].list.len() == 2).any()
    assert (a["suffix"] == "JR").any()
    # Twins: two children of one household born the same day.
    kids = a.filter(pl.col("relationship") == "child")
    assert kids.select("household_id", "dob").is_duplicated().any()


def test_workforce_xlsx_zip_is_a_number_and_ssns_are_messy(demo: DemoFiles) -> None:
    with zipfile.ZipFile(demo.exports["workforce-board"]) as archive:
        names = archive.namelist()
        sheet = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
        workbook = archive.read("xl/workbook.xml").decode("utf-8")
    assert 'name="Participants"' in workbook and 'name="Notes"' in workbook
    assert "xl/worksheets/sheet2.xml" in names
    # Zip cells are numbers (<c r="H2"><v>1040</v></c>): Excel has dropped the leading zero.
    zip_cells = re.findall(r'<c r="H(\d+)"([^>]*)>(.*?)</c>', sheet)
    numeric = [v for row, attrs, v in zip_cells if int(row) > 1 and "t=" not in attrs]
    text = [v for row, attrs, v in zip_cells if int(row) > 1 and "t=" in attrs]
    assert len(numeric) > 0.95 * len(zip_cells) and len(text) <= 1  # the one text cell is a planted bad row
    assert all(re.fullmatch(r"<v>[1-9]\d{3}</v>", v) for v in numeric)
    frame = pl.read_excel(demo.exports["workforce-board"], sheet_name="Participants")
    assert frame.schema["DOB"] == pl.String  # dates are text, MM/DD/YYYY
    dob = frame["DOB"].drop_nulls()
    written = dob.str.contains(r"^\d{2}/\d{2}/\d{4}$")
    # a few are garbled as typed dates are (noise.written_birth_date): month over 12, O or l for a digit, a digit
    # too many
    garbled = dob.filter(~written)
    assert 0 < garbled.len() <= 0.03 * dob.len()
    assert garbled.str.contains(r"^(1[3-9]|2\d|3[01])/|[Ol]|\d{5}$").all()
    ssn = _workforce(demo)["SSN"]
    assert ssn.null_count() > 0
    assert ssn.str.starts_with("XXX-XX-").any()


def test_hmis_zip_has_the_five_files_with_hud_columns(demo: DemoFiles, truth: pl.DataFrame) -> None:
    with zipfile.ZipFile(demo.exports["coc-hmis"]) as archive:
        assert sorted(archive.namelist()) == ["Client.csv", "Enrollment.csv", "Exit.csv", "Export.csv",
                                              "Project.csv"]
        assert {i.date_time for i in archive.infolist()} == {(2025, 7, 1, 2, 0, 0)}
    client = _hmis(demo, "Client.csv")
    assert client.columns == list(client_columns("FY2026"))
    assert {"HispanicLatinao", "Sex", "SSNDataQuality", "NameDataQuality", "DOBDataQuality"} <= set(client.columns)
    assert set(client["Sex"].unique()) <= {"0", "1", "8", "9", "99"}
    assert client["SSNDataQuality"].is_in(["8", "9", "99"]).any()
    assert _hmis(demo, "Export.csv")["CSVVersion"].to_list() == ["FY2026"]
    enrollment = _hmis(demo, "Enrollment.csv")
    for column in ("EnrollmentID", "PersonalID", "ProjectID", "EntryDate", "HouseholdID", "RelationshipToHoH",
                   "MoveInDate", "LastPermanentZIP"):
        assert column in enrollment.columns
    assert enrollment.group_by("HouseholdID").len()["len"].max() > 1  # families enrol together
    assert {"ExitID", "EnrollmentID", "PersonalID", "ExitDate", "Destination"} <= set(_hmis(demo, "Exit.csv").columns)
    assert {"ProjectID", "ProjectName", "ProjectType"} <= set(_hmis(demo, "Project.csv").columns)
    hmis = truth.filter(pl.col("partner") == "coc-hmis")
    assert set(hmis["source_person_id"]) == set(client["PersonalID"])
    assert hmis["true_id"].is_duplicated().any()  # duplicate clients under a second PersonalID


def test_hmis_fy2024_columns(tmp_path: Path) -> None:
    files = generate_demo(tmp_path, people=200, seed=2, hmis_version="FY2024")
    client = _hmis(files, "Client.csv")
    assert {"HispanicLatinaeo", "Woman", "Man", "NonBinary", "GenderNone"} <= set(client.columns)
    assert "Sex" not in client.columns and "HispanicLatinao" not in client.columns
    assert _hmis(files, "Export.csv")["CSVVersion"].to_list() == ["FY2024"]


def test_deliberate_bad_rows_are_where_the_manifest_says(demo: DemoFiles) -> None:
    manifest = json.loads(demo.bad_rows.read_text(encoding="utf-8"))["rows"]
    assert {e["key"] for e in manifest} == {b.key for b in DELIBERATE_BAD_ROWS}
    reasons = {e["reason"] for e in manifest}
    assert {"missing_source_person_id", "unparseable_date", "exit_before_entry", "future_date",
            "date_before_1900", "dob_impossible", "ssn_invalid", "zip_invalid"} <= reasons
    frames = {
        "holyoke-schools.csv": _school(demo),
        "workforce-board.xlsx": pl.read_excel(demo.exports["workforce-board"], sheet_name="Participants",
                                              infer_schema_length=0),
        "Enrollment.csv": _hmis(demo, "Enrollment.csv"),
    }
    for entry in manifest:
        row = frames[entry["file"]].row(entry["row"] - 1, named=True)
        cell = row[entry["column"]]
        assert (cell or "") == entry["value"], entry["key"]
    by_key = {e["key"]: e for e in manifest}
    assert by_key["workforce_formula_name"]["value"] == '=HYPERLINK("http://x","click")'
    assert by_key["workforce_formula_name"]["outcome"] == "accept"
    assert by_key["school_dob_1850"]["value"].startswith("1850-")
    school_row = frames["holyoke-schools.csv"].row(by_key["school_exit_before_entry"]["row"] - 1, named=True)
    assert school_row["Exit Date"] < school_row["Entry Date"]
    # The formula is stored as a text cell, not a formula.
    with zipfile.ZipFile(demo.exports["workforce-board"]) as archive:
        assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode("utf-8")


def test_noise_is_modest_and_realistic() -> None:
    population = with_household_ssn(generate_population(3000, seed=9))
    clean = apply_noise(population, CLEAN, random.Random(1))
    assert clean.select("first_name", "last_name", "dob", "ssn").equals(
        population.select("first_name", "last_name", "dob", "ssn"))
    noisy = apply_noise(population, NoiseProfile(), random.Random(1))
    same = (noisy["first_name"] == population["first_name"]) & (noisy["last_name"] == population["last_name"])
    assert 0.85 < same.mean() < 0.99
    assert "Bob" in nicknames_for("Robert")
    assert typo("Rodriguez", random.Random(4)) != "Rodriguez"
