"""Ingest stage functions tested directly on in-memory frames and bytes (no CLI, no workspace)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import polars as pl
import pytest

from cilink.config import parse_config
from cilink.errors import ConfigError, InputRejected
from cilink.ingest import hmis
from cilink.ingest import standardize as std
from cilink.ingest.batches import validate_batch
from cilink.ingest.dates import compile_format, date_parser
from cilink.ingest.mapping import map_columns
from cilink.ingest.quarantine import neutralize_formulas, write_safe_csv
from cilink.ingest.readers import read_csv_bytes, read_table, sniff_delimiter
from cilink.ingest.reasons import FileProblem, Flag, Reason
from cilink.schema_files import SCHEMA_NAMES, schema_document
from tests.ingest_helpers import FIXTURES, school, workforce
from tests.ingest_helpers import hmis as hmis_block

TODAY = dt.date(2025, 11, 1)


def _partner(block: str):  # type: ignore[no-untyped-def]
    return parse_config('[project]\nname = "t"\n' + block).partners[0]


def _apply(fn, values: list[str | None], *extra):  # type: ignore[no-untyped-def]
    """Run a standardize function over a Series; returns the tuple of output lists."""
    out = fn(pl.col("v"), *extra)
    outs = out if isinstance(out, tuple) else (out,)
    df = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(
        [o.alias(f"o{i}") for i, o in enumerate(outs)])
    return tuple(df[c].to_list() for c in df.columns)


def _check_csv(text: str, block: str, today: dt.date = TODAY):  # type: ignore[no-untyped-def]
    partner = _partner(block)
    mapped = map_columns(read_csv_bytes(text.encode(), "t.csv"), partner)
    return validate_batch(mapped, partner, str(partner.domain), today)


# schemas ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_files_in_sync_with_models(name: str) -> None:
    path = Path(__file__).resolve().parents[1] / "schemas" / f"{name}.json"
    assert json.loads(path.read_text()) == schema_document(name), (
        f"schemas/{name}.json is stale: run `python -m cilink.schema_files`")


# names -----------------------------------------------------------------------------------------------
def test_names_nfkc_casefold_accents_punctuation() -> None:
    (out,) = _apply(std.name, ["José", "  ZOË  ", "O'Brien-Smith", "ﬁnn", "Straße", "Łukasz Ørsted", "!!!", None,
                               '=HYPERLINK("http://x","y")'])
    assert out == ["jose", "zoe", "obrien smith", "finn", "strasse", "lukasz orsted", None, None, "hyperlink http x y"]


@pytest.mark.parametrize(("last", "rest", "suffix"), [
    ("smith jr", "smith", "JR"), ("lee iii", "lee", "III"), ("perez iv", "perez", "IV"), ("walsh sr", "walsh", "SR"),
    ("jr", "jr", None), ("oconnor", "oconnor", None), ("de la cruz ii", "de la cruz", "II"),
])
def test_suffix_split_from_last_name(last: str, rest: str, suffix: str | None) -> None:
    df = pl.DataFrame({"v": [last]}).select(*[e.alias(str(i)) for i, e in enumerate(std.split_suffix(pl.col("v")))])
    assert df.row(0) == (rest, suffix)


def test_suffix_column_aliases() -> None:
    out, bad = _apply(std.suffix, ["Jr.", "junior", "3rd", "II", "MD", None])
    assert out == ["JR", "JR", "III", "II", None, None]
    assert bad == [False, False, False, False, True, False]


# identifiers -----------------------------------------------------------------------------------------
def test_ssn_rules() -> None:
    values = ["212-55-1234", "XXX-XX-1234", "***-**-5678", "999-99-9999", "123-45-6789", "111-11-1111",
              "000-12-3456", "666-12-3456", "912-34-5678", "212-00-3456", "212-34-0000", "31234567", "XXX-XX-XXXX",
              "078-05-1120", None]
    ssn, last4, invalid, masked = _apply(std.ssn, values)
    assert ssn == ["212551234", None, None, None, None, None, None, None, None, None, None, "031234567", None,
                   None, None]
    assert last4 == ["1234", "1234", "5678", None, None, None, None, None, None, None, None, "4567", None, None, None]
    assert invalid == [False, False, False, True, True, True, True, True, True, True, True, False, False, True, False]
    assert masked == [False, True, True, False, False, False, False, False, False, False, False, False, True, False,
                      False]


def test_zip5_leading_zeros_and_zip4() -> None:
    out, bad = _apply(std.zip5, ["1040", "01040-1234", "010401234", "1040.0", "10401234", "00000", "ABCDE", "501",
                                 " 01040 ", None])
    assert out == ["01040", "01040", "01040", "01040", "01040", None, None, "00501", "01040", None]
    assert bad == [False, False, False, False, False, True, True, False, False, False]


def test_phone_email_state() -> None:
    phone, bad = _apply(std.phone, ["(413) 555-1234", "1-413-555-1234 x12", "555-1234", "000-000-0000", None])
    assert phone == ["4135551234", "4135551234", None, None, None]
    assert bad == [False, False, True, True, False]
    email, bad = _apply(std.email, ["A.B@Example.COM ", "not-an-email", None])
    assert email == ["a.b@example.com", None, None] and bad == [False, True, False]
    state, bad = _apply(std.state, ["ma", "Massachusetts", "M.A.", "Narnia", None])
    assert state == ["MA", "MA", "MA", None, None] and bad == [False, False, False, True, False]


def test_codes_sex_grade_race() -> None:
    sex, bad = _apply(std.sex, ["f", "MALE", "Non-binary", "Unknown", "Q", None])
    assert sex == ["F", "M", "X", None, None, None] and bad == [False, False, False, False, True, False]
    grade, bad = _apply(std.grade_level, ["01", "KG", "Pre-K", "12", "13", None],
                        ("PK", "K", *[str(i) for i in range(1, 13)]))
    assert grade == ["1", "K", "PK", "12", None, None] and bad == [False, False, False, False, True, False]
    race, bad = _apply(std.race_ethnicity, ["White; Hispanic or Latino", "Black|asian", "2", "Martian", None],
                       {"2": "asian"})
    assert race == [["hispanic_latino", "white"], ["asian", "black_african_american"], ["asian"], None, None]
    assert bad == [False, False, False, True, False]


def test_numbers_booleans_school_year() -> None:
    ints, bad = _apply(std.integer, ["12", "12.0", "1,200", "x", None])
    assert ints == [12, 12, 1200, None, None] and bad == [False, False, False, True, False]
    nums, bad = _apply(std.number, ["$1,200.50", "-5", "abc"])
    assert nums == [1200.5, -5.0, None] and bad == [False, False, True]
    bools, bad = _apply(std.boolean, ["Y", "no", "TRUE", "1", "maybe"])
    assert bools == [True, False, True, True, None] and bad == [False, False, False, False, True]
    (ids,) = _apply(std.shared_id, ["12-345 a", " 0012345 ", "--", None])
    assert ids == ["12345A", "0012345", None, None], "separators go, leading zeros and letters stay"
    (years,) = _apply(std.school_year, ["2024-2025", "2024/25", "2024-25", "24-25"])
    assert years == ["2024-25", "2024-25", "2024-25", "24-25"]


# dates -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "pivot", "value", "expected"), [
    ("%m/%d/%Y", None, "03/04/2024", dt.date(2024, 3, 4)),
    ("%m/%d/%Y", None, "3/4/2024 0:00", dt.date(2024, 3, 4)),
    ("%m/%d/%Y", None, "3/4/85", None),                 # two-digit year under %Y: unparseable, not year 85
    ("%m/%d/%Y", None, "2024-03-04", None),             # ISO is not this partner's format
    ("%m/%d/%Y", None, "02/30/2024", None),             # no such day
    ("%d.%m.%Y", None, "04.03.2024", dt.date(2024, 3, 4)),
    ("%Y%m%d", None, "20240304", dt.date(2024, 3, 4)),
    ("%d %b %Y", None, "4 Mar 2024", dt.date(2024, 3, 4)),
    ("%m/%d/%y", 30, "03/04/29", dt.date(2029, 3, 4)),
    ("%m/%d/%y", 30, "03/04/30", dt.date(1930, 3, 4)),
    (None, None, "2024-03-04", dt.date(2024, 3, 4)),    # no format: ISO only
    (None, None, "2024-03-04T10:00:00Z", dt.date(2024, 3, 4)),
    (None, None, "03/04/2024", None),                   # ambiguous without a format: never guessed
])
def test_date_formats(fmt: str | None, pivot: int | None, value: str, expected: dt.date | None) -> None:
    out = pl.DataFrame({"v": [value]}).select(date_parser(fmt, pivot).parse(pl.col("v")))
    assert out.item() == expected


@pytest.mark.parametrize(("fmt", "value", "expected"), [
    ("%m/%d/%Y", "13/05/2010", dt.date(2010, 5, 13)),   # day first in a month-first format: month 13
    ("%m/%d/%Y", "O5/13/2O10", dt.date(2010, 5, 13)),   # letter O for zero
    ("%m/%d/%Y", "l1/3/2010", dt.date(2010, 11, 3)),    # letter l for one
    ("%Y-%m-%d", "2010-13-05", dt.date(2010, 5, 13)),
    ("%Y%m%d", "20101305", dt.date(2010, 5, 13)),
    ("%m/%d/%Y", "13/13/2010", None),                   # no reading is a date
    ("%m/%d/%Y", "05/13/20100", None),                  # a wrong digit count has no single repair
    ("%m/%d/%Y", "garbage", None),
    ("%d-%b-%Y", "13-0ct-2010", None),                  # month names: no look-alike repair
])
def test_birth_date_repairs_are_unambiguous(fmt: str, value: str, expected: dt.date | None) -> None:
    parser = date_parser(fmt, None)
    out = pl.DataFrame({"v": [value]}).select(parser.parse(pl.col("v")).alias("as_written"),
                                              parser.repair(pl.col("v")).alias("repaired"))
    assert out.row(0) == (None, expected)


def test_unsupported_date_directive_rejected() -> None:
    with pytest.raises(InputRejected) as e:
        compile_format("%Q/%d/%Y")
    assert e.value.reason == FileProblem.UNSUPPORTED_DATE_FORMAT


def test_two_digit_year_needs_pivot_in_config() -> None:
    with pytest.raises(ConfigError) as e:
        _partner(workforce(date_format="%m/%d/%y"))
    assert any("two_digit_year_pivot" in p for p in e.value.problems)


# readers ---------------------------------------------------------------------------------------------
def test_sniff_delimiter() -> None:
    assert sniff_delimiter("a;b;c") == ";"
    assert sniff_delimiter("a\tb\tc") == "\t"
    assert sniff_delimiter('"x,y";b;c') == ";"
    assert sniff_delimiter("single") == ","


def test_ragged_field_counts_fast_and_slow_paths_agree() -> None:
    plain = b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n\n10,\"x,y\",12\n"
    awkward = b"a,b,c\n1,\"two\nlines\",3\n4,5\n6,7,8,9\n\n10,\"x,y\",12\n"
    fast = read_csv_bytes(plain, "p.csv").frame["_cilink_nfields"].to_list()
    slow = read_csv_bytes(awkward, "a.csv").frame["_cilink_nfields"].to_list()
    assert fast == slow == [3, 2, 4, 3]  # the blank line is skipped (and counted), not a ragged row
    reference = [len(r) for r in csv.reader(io.StringIO(awkward.decode(), newline="")) if r][1:]
    assert slow == reference


def test_quoted_newlines_keep_record_numbers() -> None:
    raw = read_csv_bytes((FIXTURES / "quoted_newlines.csv").read_bytes(), "q.csv")
    assert raw.frame["_cilink_row"].to_list() == [1, 2, 3, 4, 5]
    assert raw.frame["First Name"][0] == "Ana\nMaria"
    assert raw.frame["Last Name"][1] == 'Chen, "Jr"'


def test_xlsx_named_sheet_native_dates_and_wrong_sheet(tmp_path: Path) -> None:
    import xlsxwriter

    path = tmp_path / "w.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Participants")
    ws.write_row(0, 0, ["ParticipantID", "First", "Last", "DOB", "Participation Date", "Zip"])
    ws.write_row(1, 0, ["W1", "Ana", "Rivera"])
    ws.write_datetime(1, 3, dt.datetime(1985, 3, 14), wb.add_format({"num_format": "mm/dd/yyyy"}))
    ws.write_string(1, 4, "09/01/2024")
    ws.write_number(1, 5, 1040)
    ws.write_row(2, 0, ["W2", "Mei"])
    ws.write_string(2, 2, '=HYPERLINK("http://x","y")')
    ws.write_string(2, 3, "07/04/1990")
    ws.write_datetime(2, 4, dt.datetime(2024, 10, 15), wb.add_format({"num_format": "mm/dd/yyyy"}))
    wb.add_worksheet("Notes")
    wb.close()
    block = workforce(fmt="xlsx", extra='sheet = "Participants"\n').replace('exit_date = "Exit Date"', 'zip5 = "Zip"')
    partner = _partner(block)
    raw = read_table(path.read_bytes(), path.name, format="xlsx", sheet="Participants")
    checked = validate_batch(map_columns(raw, partner), partner, "workforce", TODAY)
    rows = checked.accepted.select("source_person_id", "last_name", "dob", "entry_date", "zip5").rows()
    assert rows == [("W1", "rivera", dt.date(1985, 3, 14), dt.date(2024, 9, 1), "01040"),
                    ("W2", "hyperlink http x y", dt.date(1990, 7, 4), dt.date(2024, 10, 15), None)]
    with pytest.raises(InputRejected) as e:
        read_table(path.read_bytes(), path.name, format="xlsx", sheet="Sheet1")
    assert e.value.reason == FileProblem.WRONG_SHEET


def test_parquet_typed_columns(tmp_path: Path) -> None:
    frame = pl.DataFrame({"ParticipantID": [1, 2], "First": ["Ana", "Mei"], "Last": ["Rivera", "Chen"],
                          "DOB": [dt.date(1985, 3, 14), None], "Participation Date": [dt.date(2024, 9, 1)] * 2,
                          "Exit Date": [None, "10/01/2024"]})
    path = tmp_path / "w.parquet"
    frame.write_parquet(path)
    partner = _partner(workforce(fmt="parquet"))
    raw = read_table(path.read_bytes(), path.name, format="parquet")
    checked = validate_batch(map_columns(raw, partner), partner, "workforce", TODAY)
    assert checked.accepted.select("source_person_id", "dob", "entry_date", "exit_date").rows() == [
        ("1", dt.date(1985, 3, 14), dt.date(2024, 9, 1), None),
        ("2", None, dt.date(2024, 9, 1), dt.date(2024, 10, 1)),
    ]


# mapping ---------------------------------------------------------------------------------------------
def test_headers_match_case_and_space_blind_and_codes_apply() -> None:
    text = "studentid,FIRST  NAME,Last Name,Birth Date,Gender,SSN,Zip,School Year,Grade,Entry Date,Exit Date\n" \
           "S1,Ana,Lee,03/14/2012,female,,01040,2024-25,6,,\n"
    checked = _check_csv(text, school())
    assert checked.accepted.select("source_person_id", "first_name", "sex").row(0) == ("S1", "ana", "F")


def test_missing_mapped_column_names_file_and_column() -> None:
    with pytest.raises(InputRejected) as e:
        _check_csv("StudentID,First Name\nS1,Ana\n", school())
    assert e.value.reason == FileProblem.MISSING_COLUMN and e.value.file == "t.csv" and e.value.column
    assert "Ana" not in str(e.value), "no data values in messages"


# validation ------------------------------------------------------------------------------------------
HEADER = "StudentID,First Name,Last Name,Birth Date,Gender,SSN,Zip,School Year,Grade,Entry Date,Exit Date\n"


def test_row_with_several_problems_counts_once_with_all_reasons() -> None:
    text = HEADER + ",Ana,Lee,03/14/2012,F,,01040,2024-25,6,09/01/2024,08/01/2024\nS2,Mei,Chen,,,,,,,,\n"
    c = _check_csv(text, school())
    assert (c.rows_in, c.accepted_rows, c.quarantined) == (2, 1, 1)
    assert c.quarantine_by_reason == {Reason.EXIT_BEFORE_ENTRY: 1, Reason.MISSING_SOURCE_PERSON_ID: 1}
    q = c.quarantine.select("_cilink_row", "column", "reason").rows()
    assert q == [(1, "Exit Date", "exit_before_entry"), (1, "StudentID", "missing_source_person_id")]
    assert set(c.quarantine.columns) >= {"_cilink_row", "column", "field", "value", "reason", "detail"}


def test_flags_null_the_value_and_list_codes() -> None:
    text = (HEADER + "S1,Ana,Lee,03/14/1850,F,XXX-XX-1234,ABCDE,2024-25,6,,\n"
            "S2,Mei,Chen,03/14/2012,Q,,01040,2024-25,6,,\n")
    c = _check_csv(text, school())
    rows = c.accepted.select("dob", "ssn", "ssn_last4", "zip5", "sex", "_cilink_flags").rows()
    assert rows[0] == (None, None, "1234", None, "F", [Flag.DOB_IMPOSSIBLE, Flag.SSN_MASKED, Flag.ZIP_INVALID])
    assert rows[1] == (dt.date(2012, 3, 14), None, None, "01040", None, [Flag.CODE_UNMAPPED])
    assert c.flags_by_field == {"dob": {"dob_impossible": 1}, "sex": {"code_unmapped": 1}, "ssn": {"ssn_masked": 1},
                                "zip5": {"zip_invalid": 1}}


def test_repaired_birth_dates_are_kept_and_flagged_unrepairable_ones_nulled() -> None:
    text = HEADER + "S1,Ana,Lee,14/03/2012,F,,01040,2024-25,6,,\nS2,Bo,Lee,O3/14/2012,F,,01040,2024-25,6,,\n" \
                    "S3,Cy,Lee,03/14/20122,F,,01040,2024-25,6,,\nS4,Di,Lee,03/14/2012,F,,01040,2024-25,6,,\n"
    c = _check_csv(text, school())
    assert c.quarantine.is_empty() and c.rows_in == 4
    rows = c.accepted.sort("source_person_id").select("dob", "_cilink_flags").rows()
    assert rows == [(dt.date(2012, 3, 14), [Flag.DOB_REPAIRED]), (dt.date(2012, 3, 14), [Flag.DOB_REPAIRED]),
                    (None, [Flag.DATE_UNPARSEABLE]), (dt.date(2012, 3, 14), [])]
    assert c.flags_by_field == {"dob": {"date_unparseable": 1, "dob_repaired": 2}}


def test_required_entry_date_missing_unparseable_future() -> None:
    text = "ParticipantID,First,Last,DOB,Participation Date,Exit Date\n" \
           "W1,A,B,,,\nW2,A,B,,garbage,\nW3,A,B,,01/01/2099,\nW4,A,B,,01/01/1899,\nW5,A,B,,01/01/2024,\n"
    c = _check_csv(text, workforce())
    assert c.quarantine.select("_cilink_row", "reason").rows() == [
        (1, "missing_required"), (2, "unparseable_date"), (3, "future_date"), (4, "date_before_1900")]
    assert c.accepted["source_person_id"].to_list() == ["W5"]


def test_staged_columns_match_polars_schema(tmp_path: Path) -> None:
    from cilink.ingest.batches import staged_frame
    from cilink.schemas import polars_schema

    c = _check_csv(HEADER + "S1,Ana,Lee,03/14/2012,F,,01040,2024-25,6,,\n", school())
    frame = staged_frame(c, "schools", "b1", "school")
    assert frame.schema == polars_schema("school")


# hmis ------------------------------------------------------------------------------------------------
def test_destination_categories() -> None:
    codes = [410, 411, 421, 422, 435, 101, 116, 118, 204, 215, 225, 302, 312, 314, 17, 24, 8, 9, 30, 37, 99, 5, None]
    out = pl.DataFrame({"d": codes}, schema={"d": pl.Int64}).select(hmis.destination_category(pl.col("d")))
    assert out.to_series().to_list() == (
        ["permanent"] * 5 + ["homeless"] * 3 + ["institutional"] * 3 + ["temporary"] * 3 + ["other"] * 2
        + ["unknown"] * 5 + [None, None])


def _hmis_checked(folder: str):  # type: ignore[no-untyped-def]
    partner = _partner(hmis_block())
    mapped = hmis.read_hmis(FIXTURES / folder, partner)
    return mapped, validate_batch(mapped, partner, "housing", TODAY)


def test_hmis_fy2024_join_codes_and_data_quality() -> None:
    mapped, c = _hmis_checked("hmis_fy2024")
    assert mapped.notes["hmis_version"] == "FY2024"
    got = {r["enrollment_id"]: r for r in c.accepted.to_dicts()}
    assert sorted(got) == ["E1", "E10", "E11", "E12", "E13", "E2", "E3", "E4"]
    e1 = got["E1"]
    assert (e1["first_name"], e1["last_name"], e1["sex"], e1["ssn"], e1["race_ethnicity"]) == (
        "maria", "santos", "F", "212551234", ["hispanic_latino", "white"])
    assert (e1["project_type"], e1["destination"], e1["destination_category"], e1["_cilink_row"]) == (
        0, 410, "permanent", 1)
    assert got["E2"]["move_in_date"] == dt.date(2024, 4, 1) and got["E2"]["project_type"] == 13
    e3 = got["E3"]  # DOBDataQuality 8: the DOB value is not trusted; SSNDataQuality 99
    assert (e3["dob"], e3["ssn"], e3["sex"], e3["name_suffix"], e3["destination_category"]) == (
        None, None, "M", "JR", "homeless")
    e4 = got["E4"]  # NameDataQuality 9 → no names; masked SSN → last4; RelationshipToHoH 99 → null
    assert (e4["first_name"], e4["ssn_last4"], e4["sex"], e4["relationship_to_hoh"], e4["destination_category"]) == (
        None, "1234", None, None, "institutional")
    assert got["E10"]["destination_category"] == "other"
    assert (got["E11"]["destination"], got["E11"]["destination_category"], got["E11"]["sex"]) == (None, "unknown", "X")
    assert got["E12"]["destination_category"] == "temporary", "the deleted Exit row is ignored"
    assert (got["E13"]["destination"], got["E13"]["destination_category"]) == (30, "unknown")
    assert c.quarantine.select("_cilink_row", "source_person_id", "reason").rows() == [
        (5, "P5", "orphan_record"), (6, "P4", "exit_before_entry"), (7, "P9", "orphan_record"),
        (8, "P6", "missing_required"), (9, "P6", "deleted_in_source")]


def test_hmis_fy2026_sex_codes() -> None:
    mapped, c = _hmis_checked("hmis_fy2026")
    assert mapped.notes["hmis_version"] == "FY2026"
    sex = dict(c.accepted.select("source_person_id", "sex").iter_rows())
    assert sex == {"Q1": "F", "Q2": "M", "Q3": None, "Q4": None, "Q5": None}
    race = dict(c.accepted.select("source_person_id", "race_ethnicity").iter_rows())
    assert race["Q1"] == ["hispanic_latino"] and race["Q4"] == ["american_indian_alaska_native", "white"]
    cat = dict(c.accepted.select("enrollment_id", "destination_category").iter_rows())
    assert cat == {"F1": "permanent", "F2": "homeless", "F3": "permanent", "F4": None, "F5": "unknown"}
    assert c.quarantine.select("_cilink_row", "reason").rows() == [(6, "future_date")]


def test_hmis_missing_client_file(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("Enrollment.csv", "Exit.csv"):
        (folder / name).write_bytes((FIXTURES / "hmis_fy2024" / name).read_bytes())
    with pytest.raises(InputRejected) as e:
        hmis.load_source(folder)
    assert e.value.reason == FileProblem.MISSING_HMIS_FILE and e.value.column == "Client.csv"


# quarantine CSV --------------------------------------------------------------------------------------
def test_formula_prefixes_neutralized(tmp_path: Path) -> None:
    values = ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain", None]
    frame = pl.DataFrame({"value": values, "n": list(range(8))})
    assert neutralize_formulas(frame)["value"].to_list() == [
        "'=1+2", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "plain", None]
    write_safe_csv(frame, tmp_path / "q.csv")
    with open(tmp_path / "q.csv", encoding="utf-8-sig", newline="") as fh:
        back = list(csv.reader(fh))
    assert [r[0] for r in back[1:]] == ["'=1+2", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "plain", ""]
