"""`cilink ingest` end to end: ledger, snapshot/append, duplicates, dry runs, quarantine files, audit, logs."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from cilink.ingest import ingest_file
from cilink.ledger import Ledger
from cilink.staging import staged_records
from cilink.workspace import Workspace
from tests.conftest import run_cli
from tests.ingest_helpers import FIXTURES, ingest_json, make_ws, reason_of, school, workforce, workspace_state


def _staged(ws: Path, partner: str) -> pl.DataFrame:
    return staged_records(Workspace.open(ws), partner).collect().sort("_cilink_row")


def test_human_output_is_a_reconciliation_table(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, workforce())
    r = run_cli("-w", ws, "ingest", "workforce", FIXTURES / "workforce_dates.csv")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "rows in\t11" in lines and "accepted\t4" in lines and "quarantined\t7" in lines
    assert "future_date\t2" in lines and "dob\tdob_impossible\t2" in lines
    assert any(line.startswith("Quarantine for the partner: .cilink/quarantine/workforce/") for line in lines)


def test_same_file_twice_is_a_noop(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school())
    code, first, _ = ingest_json(ws, "schools", FIXTURES / "school_clean.csv")
    assert code == 0 and first is not None
    state = workspace_state(ws)
    r = run_cli("-w", ws, "ingest", "schools", FIXTURES / "school_clean.csv")
    assert r.returncode == 0
    assert f"already ingested as batch {first['batch_id']}" in r.stdout
    code, again, _ = ingest_json(ws, "schools", FIXTURES / "school_clean.csv")
    assert code == 0 and again is not None and again["status"] == "duplicate"
    assert again["batch_id"] == first["batch_id"]
    assert workspace_state(ws) == state


def test_snapshot_supersedes_and_append_adds(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school(), school("schools-log", mode="append"))
    for partner in ("schools", "schools-log"):
        assert ingest_json(ws, partner, FIXTURES / "school_clean.csv")[0] == 0
        code, second, _ = ingest_json(ws, partner, FIXTURES / "school_clean_v2.csv")
        assert code == 0 and second is not None
    snap = _staged(ws, "schools")
    assert snap["source_person_id"].to_list() == ["S001", "S007", "S008"], "snapshot: only the latest file counts"
    log = _staged(ws, "schools-log")
    assert log.height == 6 + 3, "append: both files count"
    with Ledger(Workspace.open(ws).ledger_path) as ledger:
        statuses = sorted((b.partner, b.status) for b in ledger.batches())
    assert statuses == [("schools", "active"), ("schools", "superseded"),
                        ("schools-log", "active"), ("schools-log", "active")]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, workforce())
    before = workspace_state(ws)
    code, result, _ = ingest_json(ws, "workforce", FIXTURES / "workforce_dates.csv", "--dry-run")
    assert code == 0 and result is not None
    assert result["status"] == "dry_run" and result["batch_id"] is None
    assert (result["rows_in"], result["accepted"], result["quarantined"]) == (11, 4, 7)
    assert workspace_state(ws) == before
    # and a real run afterwards is not mistaken for a duplicate
    assert ingest_json(ws, "workforce", FIXTURES / "workforce_dates.csv")[1]["status"] == "ingested"  # type: ignore[index]


def test_ledger_row_and_quarantine_files(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school())
    code, result, _ = ingest_json(ws, "schools", FIXTURES / "formulas.csv")
    assert code == 0 and result is not None
    batch_id = result["batch_id"]
    qdir = ws / ".cilink" / "quarantine" / "schools"
    assert result["quarantine_path"] == f".cilink/quarantine/schools/{batch_id}.parquet"
    table = pl.read_parquet(qdir / f"{batch_id}.parquet")
    assert table.select("_cilink_row", "column", "value", "reason").rows() == [
        (5, "Exit Date", "08/01/2024", "exit_before_entry")]
    with open(qdir / f"{batch_id}.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"row": "5", "source_person_id": "'@cmd", "column": "Exit Date", "value": "08/01/2024",
                     "reason": "exit_before_entry", "detail": "exit date is before the entry date"}]
    with Ledger(Workspace.open(ws).ledger_path) as ledger:
        (batch,) = ledger.batches("schools")
    assert (batch.rows_in, batch.accepted, batch.quarantined) == (5, 4, 1)
    assert batch.quarantine_by_reason == {"exit_before_entry": 1}
    assert batch.sha256 == result["sha256"] and batch.file_name == "formulas.csv" and batch.schema_version == 1
    assert batch.size_bytes == (FIXTURES / "formulas.csv").stat().st_size
    assert batch.staged_path == f".cilink/staged/schools/{batch_id}.parquet"
    # formula-like text is stored as text, never evaluated
    staged = _staged(ws, "schools")
    assert staged["source_person_id"].to_list() == ["=1+2", "S802", "S803", "S804"]
    assert staged["last_name"][3] is None  # "-2+3" holds no letters, so no name


def test_audit_and_log_carry_hashes_and_counts_never_identifiers(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school())
    code, result, _ = ingest_json(ws, "schools", FIXTURES / "ssn_cases.csv")
    assert code == 0 and result is not None
    with Ledger(Workspace.open(ws).ledger_path) as ledger:
        (entry,) = ledger.audit_entries()
    assert entry["command"] == "ingest" and entry["outcome"] == "ok"
    assert entry["inputs"]["file_sha256"] == result["sha256"] and "config_sha256" in entry["inputs"]
    assert entry["details"]["rows_in"] == 14 and entry["details"]["batch_id"] == result["batch_id"]
    logs = "".join(p.read_text() for p in (ws / ".cilink" / "logs").glob("*.jsonl"))
    events = [json.loads(line) for line in logs.splitlines()]
    assert any(e["event"] == "ingest" and e["rows_in"] == 14 for e in events)
    text = json.dumps(entry) + logs
    for identifier in ("S901", "Rivera", "212-34-5678", "212345678", "1234", "ssn_cases.csv"):
        assert identifier not in text


def test_three_date_formats_give_the_same_dates(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school("mdy"), school("dmy", date_format="%d.%m.%Y"),
                 school("ymd", date_format="%Y%m%d"))
    for partner, file in (("mdy", "dates_mdy.csv"), ("dmy", "dates_dmy.csv"), ("ymd", "dates_ymd.csv")):
        assert ingest_json(ws, partner, FIXTURES / file)[0] == 0
    frames = [_staged(ws, p).select("source_person_id", "dob", "entry_date", "exit_date")
              for p in ("mdy", "dmy", "ymd")]
    assert frames[0].equals(frames[1]) and frames[1].equals(frames[2])
    assert frames[0]["dob"].to_list() == [dt.date(2012, 3, 14), dt.date(2013, 7, 4), dt.date(2009, 1, 5),
                                         dt.date(2011, 12, 31), dt.date(2012, 2, 29)]


def test_encodings_give_the_same_standardized_names(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school("a"), school("b"), school("c"), school("d"))
    for partner, file in (("a", "cp1252_names.csv"), ("b", "bom_utf8.csv"), ("c", "utf16_bom.csv"),
                          ("d", "latin1_names.csv")):
        assert ingest_json(ws, partner, FIXTURES / file)[0] == 0
    names = [_staged(ws, p).select("first_name", "last_name").rows() for p in "abcd"]
    assert names[0] == names[1] == names[2] == names[3] == [
        ("jose", "garcia"), ("zoe", "muller"), ("francois", "lefevre"), ("inaki", "nunez"), ("siobhan", "obrien")]


def test_semicolons_suffixes_nul_bytes_and_quoted_newlines(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school("semi"), school("nul"), school("quoted"))
    for partner, file in (("semi", "semicolon.csv"), ("nul", "nul_bytes.csv"), ("quoted", "quoted_newlines.csv")):
        assert ingest_json(ws, partner, FIXTURES / file)[0] == 0
    assert _staged(ws, "semi").select("last_name", "name_suffix").rows() == [
        ("smith", "JR"), ("lee", "III"), ("chen", None), ("oconnor", "SR"), ("perez", "IV")]
    assert _staged(ws, "nul").select("first_name", "last_name").rows() == [
        ("john", "smith"), ("mary", "jones"), ("ann", "lee")]
    quoted = _staged(ws, "quoted")
    assert quoted["_cilink_row"].to_list() == [1, 2, 4, 5]
    assert quoted.select("first_name", "last_name", "name_suffix").rows()[:2] == [
        ("ana maria", "rivera", None), ("mei", "chen", "JR")]


def test_zips_restored(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school())
    assert ingest_json(ws, "schools", FIXTURES / "zip_numbers.csv")[0] == 0
    staged = _staged(ws, "schools")
    assert staged["zip5"].to_list() == ["01040", "01201", "02134", "01040", "01040", None, None, "00501"]
    assert staged["_cilink_flags"].to_list()[5:7] == [["zip_invalid"], ["zip_invalid"]]


def test_xlsx_wrong_sheet_exit_3_and_named_sheet_ok(tmp_path: Path) -> None:
    import xlsxwriter

    path = tmp_path / "participants.xlsx"
    wb = xlsxwriter.Workbook(path)
    sheet = wb.add_worksheet("Sheet1")
    sheet.write_row(0, 0, ["ParticipantID", "First", "Last", "DOB", "Participation Date", "Exit Date"])
    sheet.write_row(1, 0, ["W1", "Ana", "Rivera", "03/14/1985", "09/01/2024", ""])
    wb.close()
    ws = make_ws(tmp_path, workforce("wrong", fmt="xlsx", extra='sheet = "Participants"\n'),
                 workforce("right", fmt="xlsx", extra='sheet = "Sheet1"\n'))
    code, _, stderr = ingest_json(ws, "wrong", path)
    assert code == 3 and reason_of(stderr) == "wrong_sheet"
    assert "Sheet1" in stderr, "the message lists the sheets the file has"
    code, result, _ = ingest_json(ws, "right", path)
    assert code == 0 and result is not None and result["accepted"] == 1


def test_two_digit_year_format_without_pivot_is_a_config_error(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school())
    (ws / "cilink.toml").write_text((ws / "cilink.toml").read_text() + workforce(date_format="%m/%d/%y"))
    r = run_cli("-w", ws, "ingest", "workforce", FIXTURES / "two_digit_years.csv")
    assert r.returncode == 2 and "two_digit_year_pivot" in r.stderr


def test_rejection_messages_hold_no_data_values(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, workforce(date_format="%d.%m.%Y"), school(extra='encoding = "utf-8"\n'))
    code, _, stderr = ingest_json(ws, "workforce", FIXTURES / "workforce_dates.csv")
    assert code == 3 and reason_of(stderr) == "implausible_column"
    assert "'%m/%d/%Y'" in stderr, "the message names the format that would have worked"
    code, _, stderr2 = ingest_json(ws, "schools", FIXTURES / "undecodable_utf8.csv")
    assert code == 3 and "line 3" in stderr2
    for value in ("W001", "Rivera", "03/14/1985", "José", "Garc"):
        assert value not in stderr + stderr2


def test_failed_ledger_write_removes_the_staged_and_quarantine_files(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_ws(tmp_path, school())
    before = workspace_state(ws)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Ledger, "add_batch", boom)
    with pytest.raises(RuntimeError):
        ingest_file(Workspace.open(ws), "schools", FIXTURES / "formulas.csv")
    assert workspace_state(ws) == before


def test_a_purged_file_is_not_taken_in_again(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, school())
    code, result, _ = ingest_json(ws, "schools", FIXTURES / "school_clean.csv")
    assert code == 0 and result is not None
    with Ledger(Workspace.open(ws).ledger_path) as ledger:
        ledger.set_batch_status([result["batch_id"]], "purged")
    code, _, stderr = ingest_json(ws, "schools", FIXTURES / "school_clean.csv")
    assert code == 3 and reason_of(stderr) == "purged_file"


def test_orphan_quarantine_files_are_swept_by_the_next_writer(tmp_path: Path) -> None:
    from cilink.locking import writer_lock

    ws = make_ws(tmp_path, school())
    orphan = ws / ".cilink" / "quarantine" / "schools" / "20990101T000000Z-deadbeef.csv"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("row\n")
    with writer_lock(Workspace.open(ws).lock_path, "test"):
        pass
    assert not orphan.exists()
