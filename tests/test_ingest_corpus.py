"""The bad-input corpus: each partner file in tests/fixtures/partners through the real `cilink ingest`.

Every case asserts the exact outcome: exit code, rows in / accepted / quarantined, quarantine reason
codes and data-quality flags (codes, never wording). Run as a subprocess on a fresh workspace.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.ingest_helpers import (
    FIXTURES,
    hmis,
    ingest_json,
    make_ws,
    reason_of,
    school,
    workforce,
    workforce_json,
    workspace_state,
)


@dataclass
class Case:
    id: str
    block: str
    partner: str
    file: str | Callable[[Path], Path]
    exit: int = 0
    rows: tuple[int, int, int] | None = None  # rows_in, accepted, quarantined
    reasons: dict[str, int] = field(default_factory=dict)
    flags: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected: str | None = None  # FileProblem code when exit == 3


def _zip_of(folder: str, *, drop: str | None = None) -> Callable[[Path], Path]:
    """Build a zip of an HMIS fixture folder inside the test (optionally without one member)."""

    def build(tmp: Path) -> Path:
        target = tmp / f"{folder}{'-no-' + drop if drop else ''}.zip"
        with zipfile.ZipFile(target, "w") as z:
            for p in sorted((FIXTURES / folder).iterdir()):
                if p.name != drop:
                    z.write(p, f"export/{p.name}")  # a sub-folder inside the zip, as some HMIS vendors do
        return target

    return build


def _big_cell(column: str) -> Callable[[Path], Path]:
    """school_clean.csv with a 1 MB cell in ``column`` on data row 2."""

    def build(tmp: Path) -> Path:
        lines = (FIXTURES / "school_clean.csv").read_text().splitlines()
        header = [*lines[0].split(","), "Notes"]
        rows = [[*line.split(","), ""] for line in lines[1:]]
        rows[1][header.index(column)] = "x" * (1024 * 1024)
        target = tmp / f"big_{column.replace(' ', '_')}.csv"
        target.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
        return target

    return build


SCHOOL = school()
CASES = [
    Case("clean", SCHOOL, "schools", "school_clean.csv", rows=(6, 6, 0)),
    Case("cp1252-names", SCHOOL, "schools", "cp1252_names.csv", rows=(5, 5, 0)),
    Case("latin1-detected", SCHOOL, "schools", "latin1_names.csv", rows=(5, 5, 0)),
    Case("latin1-configured", school(extra='encoding = "latin-1"\n'), "schools", "latin1_names.csv", rows=(5, 5, 0)),
    Case("utf8-bom", SCHOOL, "schools", "bom_utf8.csv", rows=(5, 5, 0)),
    Case("utf16-bom", SCHOOL, "schools", "utf16_bom.csv", rows=(5, 5, 0)),
    Case("semicolon", SCHOOL, "schools", "semicolon.csv", rows=(5, 5, 0)),
    Case("duplicate-mapped-header", SCHOOL, "schools", "duplicate_headers.csv", exit=3, rejected="duplicate_column"),
    Case("duplicate-unmapped-header", SCHOOL, "schools", "duplicate_unmapped_headers.csv", rows=(5, 5, 0)),
    Case("extra-columns", SCHOOL, "schools", "extra_columns.csv", rows=(5, 5, 0)),
    Case("zips-as-numbers", SCHOOL, "schools", "zip_numbers.csv", rows=(8, 8, 0),
         flags={"zip5": {"zip_invalid": 2}}),
    Case("dates-mdy", SCHOOL, "schools", "dates_mdy.csv", rows=(5, 5, 0)),
    Case("dates-dmy", school(date_format="%d.%m.%Y"), "schools", "dates_dmy.csv", rows=(5, 5, 0)),
    Case("dates-ymd", school(date_format="%Y%m%d"), "schools", "dates_ymd.csv", rows=(5, 5, 0)),
    Case("dates-iso-only-when-unconfigured", school(date_format=None), "schools", "dates_ambiguous.csv",
         rows=(5, 5, 0), flags={"dob": {"date_unparseable": 2}, "entry_date": {"date_unparseable": 1}}),
    Case("two-digit-years-rejected", workforce(), "workforce", "two_digit_years.csv", exit=3,
         rejected="implausible_column"),
    Case("two-digit-years-with-pivot", workforce(date_format="%m/%d/%y", extra="two_digit_year_pivot = 30\n"),
         "workforce", "two_digit_years.csv", rows=(6, 5, 1), reasons={"unparseable_date": 1},
         flags={"dob": {"dob_impossible": 1}}),
    Case("nul-bytes", SCHOOL, "schools", "nul_bytes.csv", rows=(3, 3, 0)),
    Case("one-mb-cell-unmapped", SCHOOL, "schools", _big_cell("Notes"), rows=(6, 6, 0)),
    Case("one-mb-cell-mapped", SCHOOL, "schools", _big_cell("First Name"), rows=(6, 5, 1),
         reasons={"invalid_value": 1}),
    Case("formula-like-values", SCHOOL, "schools", "formulas.csv", rows=(5, 4, 1), reasons={"exit_before_entry": 1}),
    Case("ssn-masked-and-placeholders", SCHOOL, "schools", "ssn_cases.csv", rows=(14, 14, 0),
         flags={"ssn": {"ssn_invalid": 9, "ssn_masked": 2}}),
    Case("dates-future-old-exit-before-entry", workforce(), "workforce", "workforce_dates.csv", rows=(11, 4, 7),
         reasons={"date_before_1900": 1, "exit_before_entry": 1, "future_date": 2, "missing_required": 1,
                  "missing_source_person_id": 1, "unparseable_date": 2},
         flags={"dob": {"dob_impossible": 2}}),
    Case("ragged-rows", SCHOOL, "schools", "ragged.csv", rows=(5, 2, 3), reasons={"ragged_row": 3}),
    Case("quoted-newlines", SCHOOL, "schools", "quoted_newlines.csv", rows=(5, 4, 1), reasons={"ragged_row": 1}),
    Case("stray-quotes", SCHOOL, "schools", "stray_quotes.csv", rows=(5, 5, 0)),
    Case("json-array", workforce_json(), "workforce-json", "workforce.json", rows=(5, 3, 2),
         reasons={"invalid_value": 1, "missing_required": 1}),
    Case("ndjson", workforce_json(fmt="json"), "workforce-json", "workforce.ndjson", rows=(5, 3, 2),
         reasons={"invalid_value": 1, "missing_required": 1}),
    Case("hmis-fy2024-folder", hmis(), "coc-hmis", "hmis_fy2024", rows=(13, 8, 5),
         reasons={"deleted_in_source": 1, "exit_before_entry": 1, "missing_required": 1, "orphan_record": 2},
         flags={"ssn": {"ssn_invalid": 1, "ssn_masked": 2}}),
    Case("hmis-fy2026-folder", hmis(), "coc-hmis", "hmis_fy2026", rows=(6, 5, 1), reasons={"future_date": 1}),
    Case("hmis-fy2024-zip", hmis(), "coc-hmis", _zip_of("hmis_fy2024"), rows=(13, 8, 5),
         reasons={"deleted_in_source": 1, "exit_before_entry": 1, "missing_required": 1, "orphan_record": 2},
         flags={"ssn": {"ssn_invalid": 1, "ssn_masked": 2}}),
    Case("hmis-fy2026-zip", hmis(), "coc-hmis", _zip_of("hmis_fy2026"), rows=(6, 5, 1), reasons={"future_date": 1}),
    Case("hmis-zip-without-client", hmis(), "coc-hmis", _zip_of("hmis_fy2024", drop="Client.csv"), exit=3,
         rejected="missing_hmis_file"),
    Case("empty-file", SCHOOL, "schools", "empty.csv", exit=3, rejected="empty_file"),
    Case("header-only", SCHOOL, "schools", "header_only.csv", exit=3, rejected="no_data_rows"),
    Case("missing-mapped-column", SCHOOL.replace('"Birth Date"', '"Birthdate"'), "schools", "school_clean.csv",
         exit=3, rejected="missing_column"),
    Case("undecodable-bytes", school(extra='encoding = "utf-8"\n'), "schools", "undecodable_utf8.csv", exit=3,
         rejected="undecodable"),
    Case("binary-as-csv", SCHOOL, "schools", "binary.csv", exit=3, rejected="undecodable"),
    Case("unknown-partner", SCHOOL, "no-such-partner", "school_clean.csv", exit=3, rejected="unknown_partner"),
    Case("file-not-found", SCHOOL, "schools", "no_such_file.csv", exit=3, rejected="file_not_found"),
    Case("wrong-date-format", workforce(date_format="%d.%m.%Y"), "workforce", "workforce_dates.csv", exit=3,
         rejected="implausible_column"),
    Case("all-rows-quarantined", SCHOOL.replace('"StudentID"', '"SSN"'), "schools", "dates_mdy.csv", exit=3,
         rejected="all_rows_quarantined"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case: Case, tmp_path: Path) -> None:
    ws = make_ws(tmp_path, case.block)
    path = case.file(tmp_path) if callable(case.file) else FIXTURES / case.file
    before = workspace_state(ws)
    code, result, stderr = ingest_json(ws, case.partner, path)
    assert code == case.exit, stderr
    if case.exit:
        assert reason_of(stderr) == case.rejected
        assert workspace_state(ws) == before, "a rejected file must leave the workspace unchanged"
        return
    assert result is not None
    assert (result["rows_in"], result["accepted"], result["quarantined"]) == case.rows
    assert result["rows_in"] == result["accepted"] + result["quarantined"]
    assert result["quarantine_by_reason"] == case.reasons
    assert result["flags_by_field"] == case.flags
    assert result["status"] == "ingested"
