"""Property tests: no row is ever lost or duplicated, and standardization is idempotent."""

from __future__ import annotations

import csv
import datetime as dt
import io

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cilink.config import parse_config
from cilink.ingest import standardize as std
from cilink.ingest.batches import validate_batch
from cilink.ingest.mapping import map_columns
from cilink.ingest.readers import read_csv_bytes
from cilink.ingest.validate import Checked
from tests.ingest_helpers import school

TODAY = dt.date(2025, 11, 1)
PARTNER = parse_config('[project]\nname = "t"\n' + school()).partners[0]
ISO_PARTNER = parse_config('[project]\nname = "t"\n' + school(date_format=None)).partners[0]
HEADER = ["StudentID", "First Name", "Last Name", "Birth Date", "Gender", "SSN", "Zip", "School Year", "Grade",
          "Entry Date", "Exit Date"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# cells that stress parsing: delimiters, quotes, newlines, formula prefixes, accents, NUL-free control chars
tricky_text = st.text(alphabet=st.sampled_from(list("aZé ß,;\"'\n\r\t=+-@/.0123456789XÅ李")), max_size=12)
cell = st.one_of(tricky_text, st.sampled_from(["", "03/14/2012", "1040", "XXX-XX-1234", "999-99-9999", "K", "F"]))
row = st.lists(cell, min_size=0, max_size=len(HEADER) + 2)


def _csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)  # "\r\n" line ends, as Excel writes; a field holding CR or LF gets quoted
    w.writerow(HEADER)
    for r in rows:
        w.writerow(r)
    return out.getvalue().encode("utf-8")


def _check(data: bytes, partner=PARTNER) -> Checked:  # type: ignore[no-untyped-def]
    return validate_batch(map_columns(read_csv_bytes(data, "p.csv"), partner), partner, "school", TODAY)


def _assert_partition(c: Checked, n: int, blank: set[int] | None = None) -> None:
    """Every row 1..n is accepted or quarantined exactly once, except fully blank rows (skipped, counted)."""
    blank = blank or set()
    accepted = c.accepted["_cilink_row"].to_list()
    quarantined = c.quarantine["_cilink_row"].unique().to_list()
    assert c.rows_in == n - len(blank)
    assert len(accepted) == len(set(accepted)), "an accepted row appears twice"
    assert not set(accepted) & set(quarantined), "a row is both accepted and quarantined"
    assert set(accepted) | set(quarantined) == set(range(1, n + 1)) - blank, "a row was lost"
    assert c.rows_in == c.accepted_rows + c.quarantined
    assert c.quarantined == len(quarantined)


@SETTINGS
@given(st.lists(row, min_size=1, max_size=25))
def test_every_csv_row_is_accepted_or_quarantined_exactly_once(rows: list[list[str]]) -> None:
    data = _csv_bytes(rows)
    records = list(csv.reader(io.StringIO(data.decode(), newline="")))[1:]
    blank = {i for i, r in enumerate(records, 1) if all(not c.strip() for c in r)}
    if len(blank) == len(records):
        return  # only blank rows: rejected as no_data_rows (a test in test_ingest_bad_inputs)
    _assert_partition(_check(data), len(records), blank)


@SETTINGS
@given(st.lists(st.tuples(*[st.one_of(st.none(), tricky_text)] * 5, st.integers(9, 12)), min_size=1, max_size=30))
def test_every_frame_row_is_accepted_or_quarantined_exactly_once(rows: list[tuple]) -> None:
    from cilink.ingest.dates import date_parser
    from cilink.ingest.mapping import Mapped
    from cilink.ingest.readers import NFIELDS, ROW
    from cilink.ingest.validate import Rules, check

    fields = ["source_person_id", "first_name", "dob", "zip5", "exit_date"]
    frame = pl.DataFrame({**{f: [r[i] for r in rows] for i, f in enumerate(fields)}, NFIELDS: [r[5] for r in rows]},
                         schema={**dict.fromkeys(fields, pl.String), NFIELDS: pl.Int64})
    frame = frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW))
    mapped = Mapped(frame, {f: f for f in fields}, expected_fields=11)
    _assert_partition(check(mapped, Rules("school", date_parser(None, None), TODAY)), len(rows))


# idempotence -----------------------------------------------------------------------------------------
def _run(fn, values: list[str | None]) -> list:  # type: ignore[no-untyped-def]
    out = fn(pl.col("v"))
    value = out[0] if isinstance(out, tuple) else out
    return pl.DataFrame({"v": values}, schema={"v": pl.String}).select(value.alias("o"))["o"].to_list()


TEXT_FUNCS = [std.name, std.address_line, std.text, std.zip5, std.phone, std.email, lambda e: std.ssn(e)[0],
              std.state, std.sex, std.school_year, std.suffix,
              lambda e: std.grade_level(e, ("PK", "K", *[str(i) for i in range(1, 13)]))]
any_text = st.one_of(st.none(), st.text(max_size=20), tricky_text,
                     st.sampled_from(["O'Brien-Smith, JR.", "José", "01040-1234", "(413) 555-1234 x2",
                                      "A.B@Example.com", "212-55-1234", "Massachusetts", "female", "2024/25", "3rd",
                                      "KG", "ﬁnn Ørsted"]))


@SETTINGS
@given(st.lists(any_text, min_size=1, max_size=20), st.sampled_from(range(len(TEXT_FUNCS))))
def test_standardizers_are_idempotent(values: list[str | None], i: int) -> None:
    fn = TEXT_FUNCS[i]
    once = _run(fn, values)
    assert _run(fn, once) == once


@SETTINGS
@given(st.lists(any_text, min_size=1, max_size=20))
def test_race_standardization_is_idempotent(values: list[str | None]) -> None:
    once = _run(std.race_ethnicity, values)
    again = _run(std.race_ethnicity, [";".join(v) if v else None for v in once])
    assert again == once


plausible = st.fixed_dictionaries({
    "StudentID": st.from_regex(r"S[0-9]{1,5}", fullmatch=True),
    "First Name": st.sampled_from(["José", "ZOË", "Ann-Marie", "o'neil", "Łukasz", "=HYPERLINK(\"x\")"]),
    "Last Name": st.sampled_from(["García Jr.", "Smith", "Lee III", "O'Brien", "Müller-Lüdenscheidt"]),
    "Birth Date": st.dates(dt.date(1890, 1, 1), dt.date(2030, 1, 1)).map(lambda d: d.isoformat()),
    "Gender": st.sampled_from(["F", "Male", "x", "Unknown", ""]),
    "SSN": st.sampled_from(["212-55-1234", "XXX-XX-9876", "123-45-6789", "31234567", ""]),
    "Zip": st.sampled_from(["1040", "01040-1234", "ABCDE", "02134", ""]),
    "School Year": st.sampled_from(["2024-2025", "2024-25", ""]),
    "Grade": st.sampled_from(["01", "K", "PK", "12", ""]),
    "Entry Date": st.dates(dt.date(2020, 1, 1), dt.date(2025, 1, 1)).map(lambda d: d.isoformat()),
    "Exit Date": st.sampled_from(["", "2025-06-13"]),
})


def _as_text(frame: pl.DataFrame) -> list[list[str]]:
    """Staged rows back to partner-style text (dates ISO), mapped to HEADER order."""
    back = {"StudentID": "source_person_id", "First Name": "first_name", "Birth Date": "dob", "Gender": "sex",
            "SSN": "ssn", "Zip": "zip5", "School Year": "school_year", "Grade": "grade_level",
            "Entry Date": "entry_date", "Exit Date": "exit_date"}
    cols = []
    for h in HEADER:
        if h == "Last Name":
            cols.append(pl.concat_str([pl.col("last_name"), pl.col("name_suffix")], separator=" ", ignore_nulls=True))
        else:
            cols.append(pl.col(back[h]).cast(pl.String))
    return [["" if v is None else v for v in r] for r in frame.select(cols).rows()]


@SETTINGS
@given(st.lists(plausible, min_size=1, max_size=15))
def test_standardizing_staged_output_again_changes_nothing(rows: list[dict[str, str]]) -> None:
    first = _check(_csv_bytes([[r[h] for h in HEADER] for r in rows]), ISO_PARTNER)
    if first.accepted_rows == 0:
        return
    second = _check(_csv_bytes(_as_text(first.accepted)), ISO_PARTNER)
    assert second.quarantined == 0
    cols = [c for c in first.accepted.columns if c not in ("_cilink_row", "_cilink_flags", "ssn_last4")]
    assert second.accepted.select(cols).equals(first.accepted.select(cols))
