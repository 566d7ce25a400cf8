"""Deliberately bad rows planted in the demo exports, so ingest's quarantine and flags have work to do.

``DELIBERATE_BAD_ROWS`` lists them; ``plant`` puts them into a partner's export frame and ``locate`` reports
where they ended up (1-based data row, header excluded). ``generate_demo`` writes that list to
``.cilink/demo-bad-rows.json`` in the restricted zone.

Rows that ingest must quarantine are *extra* copies of a real row, so the person still has good rows and the
ground truth stays linkable. Rows that are only flagged or accepted modify a real row of a person who
appears with just that partner, so linkage metrics are not skewed by the planted values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import polars as pl

PARTNER_SCHOOL = "holyoke-schools"
PARTNER_WORKFORCE = "workforce-board"
PARTNER_HMIS = "coc-hmis"

#: Column that marks planted rows inside a frame until ``locate`` removes it.
MARK = "_cilink_demo_bad"

Outcome = Literal["quarantine", "flag", "accept"]


@dataclass(frozen=True)
class BadRow:
    """One kind of planted problem: where it goes and what ingest is expected to do with it.

    ``reason`` is the expected quarantine reason or data-quality flag code (``None`` when the row must simply
    be accepted as it is, e.g. a formula-like name stored as text). ``insert`` says whether the row is an
    extra copy (quarantine cases) or a modified real row (flag and accept cases).
    """

    key: str
    partner: str
    file: str
    column: str
    value: str
    reason: str | None
    outcome: Outcome
    insert: bool
    description: str


DELIBERATE_BAD_ROWS: tuple[BadRow, ...] = (
    BadRow("school_missing_id", PARTNER_SCHOOL, "holyoke-schools.csv", "StudentID", "",
           "missing_source_person_id", "quarantine", True, "a student-year row with no StudentID"),
    BadRow("school_exit_before_entry", PARTNER_SCHOOL, "holyoke-schools.csv", "Exit Date", "",
           "exit_before_entry", "quarantine", True, "Exit Date falls before Entry Date"),
    BadRow("school_dob_1850", PARTNER_SCHOOL, "holyoke-schools.csv", "Birth Date", "",
           "dob_impossible", "flag", False, "birth year 1850: DOB nulled and flagged, row kept"),
    BadRow("workforce_date_na", PARTNER_WORKFORCE, "workforce-board.xlsx", "Participation Date", "N/A",
           "unparseable_date", "quarantine", True, "required participation date is 'N/A'"),
    BadRow("workforce_date_1899", PARTNER_WORKFORCE, "workforce-board.xlsx", "Participation Date",
           "07/01/1899", "date_before_1900", "quarantine", True, "participation date before 1900"),
    BadRow("workforce_ssn_placeholder", PARTNER_WORKFORCE, "workforce-board.xlsx", "SSN", "999-99-9999",
           "ssn_invalid", "flag", False, "placeholder SSN: nulled and flagged, row kept"),
    BadRow("workforce_zip_text", PARTNER_WORKFORCE, "workforce-board.xlsx", "Zip", "UNKNOWN",
           "zip_invalid", "flag", False, "zip cell holds text instead of a zip"),
    BadRow("workforce_formula_name", PARTNER_WORKFORCE, "workforce-board.xlsx", "First",
           '=HYPERLINK("http://x","click")', None, "accept", False,
           "formula-like first name: stored as text, never evaluated"),
    BadRow("hmis_future_entry", PARTNER_HMIS, "Enrollment.csv", "EntryDate", "2052-03-10",
           "future_date", "quarantine", True, "project entry date in the future (2052 for 2025)"),
)


def bad_rows_for(partner: str) -> list[BadRow]:
    """The planted problems of one partner."""
    return [b for b in DELIBERATE_BAD_ROWS if b.partner == partner]


def plant(frame: pl.DataFrame, bad: BadRow, index: int, values: dict[str, object],
          position: int | None = None) -> pl.DataFrame:
    """Plant ``bad`` using row ``index`` of ``frame`` (all-string or compatible columns).

    Quarantine cases insert a modified copy of the row at ``position`` (default: right after it); the others
    overwrite the row in place. ``values`` maps columns to the values to write (``bad.value`` is written to
    ``bad.column`` unless ``values`` says otherwise).
    """
    if MARK not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(MARK))
    updates = {bad.column: bad.value, **values, MARK: bad.key}
    row = frame.slice(index, 1).with_columns(
        [pl.lit(v, dtype=frame.schema[c]).alias(c) for c, v in updates.items()]
    )
    if bad.insert:
        at = index + 1 if position is None else position
        return pl.concat([frame.slice(0, at), row, frame.slice(at)])
    return pl.concat([frame.slice(0, index), row, frame.slice(index + 1)])


def locate(frame: pl.DataFrame, partner_file: str, id_column: str) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    """Remove the marker column and report each planted row: its data row number and expectations.

    ``partner_file`` is the export file the rows live in (for HMIS, the zip; ``file`` names the member).
    """
    if MARK not in frame.columns:
        return frame, []
    by_key = {b.key: b for b in DELIBERATE_BAD_ROWS}
    found = (
        frame.with_row_index("row", offset=1)
        .filter(pl.col(MARK).is_not_null())
        .to_dicts()
    )
    entries = []
    for hit in found:
        b = by_key[str(hit[MARK])]
        entry = {k: v for k, v in asdict(b).items() if k != "insert"}
        written = hit[b.column]
        entry.update(value="" if written is None else str(written), row=hit["row"], export_file=partner_file,
                     source_person_id=hit[id_column] or None)
        entries.append(entry)
    return frame.drop(MARK), entries
