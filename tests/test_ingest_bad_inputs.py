"""The intake reliability corpus (issue 21): bad inputs built in the test, each rejected alone or read exactly.

Every case asserts the outcome a data manager sees: the exit code (3 = file rejected, 0 = ingested), the
stable reason code, the reconciliation (rows in / accepted / quarantined) and, after a rejection, that
the workspace is exactly as before. The cases call the library (a subprocess each would take minutes);
a few run the real `cilink ingest`, and the last tests grep every message, log and reason file for the
corpus' names, SSNs and birth dates.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import io
import json
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cilink.errors import CilinkError, InputRejected
from cilink.ingest import ingest_file, limits
from cilink.ledger import Ledger
from cilink.workspace import Workspace
from tests.conftest import run_cli
from tests.ingest_helpers import hmis, ingest_json, make_ws, reason_of, workspace_state

TODAY = dt.date(2025, 11, 1)
#: the corpus' people: names, SSNs and birth dates that must never appear in a message, log or reason file
PEOPLE = [
    ("P01", "Xiomara", "Quintanilla", "03/14/1987", "531-42-7788", "09/16/2024"),
    ("P02", "Bartholomew", "Okonkwo", "11/23/1979", "602-19-4471", "10/21/2024"),
    ("P03", "Eulalia", "Fitzgerald", "07/30/1992", "417-63-2209", "11/18/2024"),
    ("P04", "Thaddeus", "Vanderhoeven", "12/25/2001", "288-71-9035", "09/30/2024"),
    ("P05", "Philippa", "Marchetti", "05/19/1968", "364-05-8812", "10/14/2024"),
    ("P06", "Cornelius", "Abernathy", "08/27/1995", "509-88-1346", "12/16/2024"),
    ("P07", "Genoveva", "Salazar", "01/31/1983", "731-26-5590", "01/27/2025"),
    ("P08", "Ignatius", "Prendergast", "10/13/1974", "146-37-6624", "02/24/2025"),
    ("P09", "Rosalind", "Weatherby", "06/22/1999", "275-90-3158", "03/17/2025"),
    ("P10", "Evander", "Kowalczyk", "04/15/1990", "683-54-2071", "04/28/2025"),
]
N = len(PEOPLE)
HEADER = ["PID", "First", "Last", "Birth", "SSN", "Start"]
SECRETS = [p[i] for p in PEOPLE for i in (1, 2, 4)] + [
    f(p[3]) for p in PEOPLE for f in (
        lambda d: d,
        lambda d: f"{d[6:]}-{d[:2]}-{d[3:5]}",
        lambda d: f"{d[3:5]}.{d[:2]}.{d[6:]}",
        lambda d: f"{d[6:]}{d[:2]}{d[3:5]}",
    )
]

COLUMNS = """
[partners.columns]
source_person_id = "PID"
first_name = "First"
last_name = "Last"
dob = "Birth"
ssn = "SSN"
entry_date = "Start"
"""


def partner(pid: str, fmt: str = "csv", *, date_format: str | None = "%m/%d/%Y", extra: str = "",
            columns: str = COLUMNS) -> str:
    df = f'date_format = "{date_format}"\n' if date_format else ""
    return f'\n[[partners]]\nid = "{pid}"\ndomain = "workforce"\nformat = "{fmt}"\n{df}{extra}{columns}'


BLOCKS = [
    partner("csv"),
    partner("csv-dmy", date_format="%d.%m.%Y"),
    partner("csv-dmy-slash", date_format="%d/%m/%Y"),
    partner("csv-iso", date_format=None),
    partner("csv-utf8", extra='encoding = "utf-8"\n'),
    partner("csv-badenc", extra='encoding = "no-such-codec"\n'),
    partner("csv-dob-is-name", columns=COLUMNS.replace('dob = "Birth"', 'dob = "First"')),
    partner("csv-nobirth", columns=COLUMNS.replace('"Birth"', '"Birthdate"')),
    partner("csv-ssn-id", columns=COLUMNS.replace('source_person_id = "PID"', 'source_person_id = "Empty"')),
    partner("csv-typed", columns=COLUMNS + 'employed_q2 = "Employed"\nearnings_q2 = "Earnings"\n'),
    partner("xlsx", "xlsx"),
    partner("xlsx-sheet", "xlsx", extra='sheet = "Participants"\n'),
    partner("json", "json", date_format=None),
    partner("parquet", "parquet", date_format=None),
    hmis("hmis"),
]


# builders ---------------------------------------------------------------------------------------------
def rows_of(people: list[tuple[str, ...]] = PEOPLE, dates: Callable[[str], str] = lambda d: d) -> list[list[str]]:
    return [[pid, first, last, dates(dob), ssn, dates(start)] for pid, first, last, dob, ssn, start in people]


def csv_text(rows: list[list[str]] | None = None, *, header: list[str] = HEADER, sep: str = ",",
             eol: str = "\n") -> str:
    body = rows if rows is not None else rows_of()
    return "".join(sep.join(r) + eol for r in [header, *body])


def swap_dm(d: str) -> str:
    return f"{d[3:5]}/{d[:2]}/{d[6:]}"


def xlsx_bytes(cells: list[tuple[int, int, object]] | None = None, sheet: str = "Sheet1") -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    ws = wb.add_worksheet(sheet)
    if cells is None:
        for r, row in enumerate([HEADER, *rows_of()]):
            ws.write_row(r, 0, row)
    else:
        for r, c, v in cells:
            ws.write(r, c, v)
    wb.close()
    return out.getvalue()


def records(dates: Callable[[str], str] = lambda d: f"{d[6:]}-{d[:2]}-{d[3:5]}") -> list[dict[str, str]]:
    return [dict(zip(HEADER, r, strict=True)) for r in rows_of(dates=dates)]


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_parquet(out)
    return out.getvalue()


def good_parquet() -> bytes:
    return parquet_bytes(pl.DataFrame(records(), schema={h: pl.String for h in HEADER}))


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def patch_zip(data: bytes, *, flag_bits: int | None = None, method: int | None = None) -> bytes:
    """Rewrite the general-purpose flags / compression method in every local and central header."""
    buf = bytearray(data)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = buf.find(sig)
        while i != -1:
            if flag_bits is not None:
                struct.pack_into("<H", buf, i + flag_at, struct.unpack_from("<H", buf, i + flag_at)[0] | flag_bits)
            if method is not None:
                struct.pack_into("<H", buf, i + method_at, method)
            i = buf.find(sig, i + 4)
    return bytes(buf)


HMIS_CLIENT = (b"PersonalID,FirstName,LastName,SSN,DOB\n"
               + b"".join(f"{p[0]},{p[1]},{p[2]},{p[4]},{p[3][6:]}-{p[3][:2]}-{p[3][3:5]}\n".encode() for p in PEOPLE))
HMIS_ENROLLMENT = (b"EnrollmentID,PersonalID,ProjectID,EntryDate\n"
                   + b"".join(f"E{i},{p[0]},1,2024-09-0{i % 9 + 1}\n".encode() for i, p in enumerate(PEOPLE)))


def hmis_zip(**patch: int) -> bytes:
    data = zip_bytes({"Client.csv": HMIS_CLIENT, "Enrollment.csv": HMIS_ENROLLMENT})
    return patch_zip(data, **patch) if patch else data


def ole_bytes(encrypted: bool) -> bytes:
    body = ("EncryptionInfo".encode("utf-16-le") if encrypted else b"Workbook\x00") + b"\x00" * 512
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + body


def nested_json(depth: int) -> bytes:
    return json.dumps([{"PID": "P01", "Start": "2024-09-01", "First": "x"}])[:-2].encode() + \
        b', "Deep": ' + b"[" * depth + b"]" * depth + b"}]"


# the corpus -------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    partner: str
    content: bytes | Callable[[Path], Path]
    exit: int = 0
    reason: str | None = None
    rows: tuple[int, int, int] | None = None  # rows_in, accepted, quarantined
    notes: dict[str, object] = field(default_factory=dict)
    name: str = "export.dat"


def text(s: str, enc: str = "utf-8") -> bytes:
    return s.encode(enc)


CLEAN = csv_text()
OK = (N, N, 0)
CASES = [
    # read exactly ----------------------------------------------------------------------------------------
    Case("clean-lf", "csv", text(CLEAN), rows=OK),
    Case("crlf", "csv", text(csv_text(eol="\r\n")), rows=OK),
    Case("cr-only", "csv", text(csv_text(eol="\r")), rows=OK),
    Case("crlf-then-cr", "csv", text(csv_text(rows_of()[:4], eol="\r\n") + "".join(
        ",".join(r) + "\r" for r in rows_of()[4:])), rows=OK),
    Case("lf-then-cr", "csv", text(csv_text(rows_of()[:5]) + "".join(",".join(r) + "\r" for r in rows_of()[5:])),
         rows=OK),
    Case("cr-then-crlf-quoted", "csv", text(csv_text(rows_of()[:3], eol="\r") + '"P11","A\r\nB","Z","01/02/1990",'
                                             '"","09/16/2024"\r\n'), rows=(4, 4, 0)),
    Case("semicolon", "csv", text(csv_text(sep=";")), rows=OK),
    Case("tab", "csv", text(csv_text(sep="\t")), rows=OK),
    Case("pipe", "csv", text(csv_text(sep="|")), rows=OK),
    Case("utf8-bom", "csv", codecs.BOM_UTF8 + text(CLEAN), rows=OK),
    Case("utf16-bom", "csv", text(CLEAN, "utf-16"), rows=OK),
    Case("utf16le-no-bom", "csv", text(CLEAN.replace("Xiomara", "Xiómara"), "utf-16-le"), rows=OK),
    Case("cp1252-accents", "csv", text(CLEAN.replace("Xiomara", "Xiómara").replace("Salazar", "Salazár"), "cp1252"),
         rows=OK),
    Case("latin1-undefined-in-cp1252", "csv", text(CLEAN).replace(b"Xiomara", b"Xiom\x81ra"), rows=OK),
    Case("utf8-with-one-cp1252-byte", "csv", text(CLEAN.replace("Okonkwo", "Okonkwó")).replace(
        b"Xiomara", b"Xiom\xe1ra"), rows=OK, notes={"bytes_repaired": 1, "encoding": "utf-8"}),
    Case("blank-lines-everywhere", "csv", text(CLEAN.replace("\n", "\n\n\n")), rows=OK,
         notes={"blank_rows_skipped": 22}),
    Case("blank-lines-above-header", "csv", text("\n\n" + CLEAN), rows=OK),
    Case("ten-thousand-blank-lines", "csv", text(CLEAN + "\n" * 10_000), rows=OK,
         notes={"blank_rows_skipped": 10_000}),
    Case("rows-of-empty-cells", "csv", text(CLEAN + ",,,,,\n" * 5 + "  , ,\t,,,\n"), rows=OK,
         notes={"blank_rows_skipped": 6}),
    Case("nul-bytes", "csv", text(CLEAN).replace(b"Xiomara", b"Xio\x00mara"), rows=OK),
    Case("one-typo-date", "csv", text(CLEAN.replace("09/16/2024", "09/61/2024")), rows=(N, N - 1, 1)),
    Case("dmy-configured", "csv-dmy", text(csv_text(rows_of(dates=lambda d: f"{d[3:5]}.{d[:2]}.{d[6:]}"))), rows=OK),
    Case("xlsx", "xlsx", xlsx_bytes(), rows=OK),
    Case("xlsx-named-sheet", "xlsx-sheet", xlsx_bytes([(0, i, h) for i, h in enumerate(HEADER)] + [
        (r + 1, c, v) for r, row in enumerate(rows_of()) for c, v in enumerate(row)], sheet="Participants"), rows=OK),
    Case("json-array", "json", json.dumps(records()).encode(), rows=OK),
    Case("ndjson", "json", "\n".join(json.dumps(r) for r in records()).encode(), rows=OK),
    Case("json-blank-records", "json", json.dumps([*records(), {}, {"PID": ""}]).encode(), rows=OK,
         notes={"blank_rows_skipped": 2}),
    Case("parquet", "parquet", good_parquet(), rows=OK),
    Case("hmis-zip", "hmis", hmis_zip(), rows=OK),
    # whole-file rejections: config mistakes that used to lose data silently --------------------------------
    Case("dmy-format-on-us-dates", "csv-dmy", text(CLEAN), 3, "implausible_column"),
    Case("day-first-slash-on-us-dates", "csv-dmy-slash", text(CLEAN), 3, "implausible_column"),
    Case("day-first-slash-swaps-silently", "csv-dmy-slash", text(csv_text(
        [[*r[:3], "02/03/1990", r[4], "09/05/2024"] for r in rows_of()[:8]] + rows_of()[8:]))
        , 3, "implausible_column"),
    Case("iso-config-us-dates", "csv-iso", text(CLEAN), 3, "implausible_column"),
    Case("us-config-iso-dates", "csv", text(csv_text(rows_of(dates=lambda d: f"{d[6:]}-{d[:2]}-{d[3:5]}"))), 3,
         "implausible_column"),
    Case("us-config-two-digit-years", "csv", text(csv_text(rows_of(dates=lambda d: d[:6] + d[8:]))), 3,
         "implausible_column"),
    Case("dob-mapped-to-names", "csv-dob-is-name", text(CLEAN), 3, "implausible_column"),
    Case("bool-column-is-text", "csv-typed", text(csv_text([[*r, "maybe", "12.5"] for r in rows_of()],
                                                           header=[*HEADER, "Employed", "Earnings"])), 3,
         "implausible_column"),
    Case("number-column-is-text", "csv-typed", text(csv_text([[*r, "yes", "n/a"] for r in rows_of()],
                                                             header=[*HEADER, "Employed", "Earnings"])), 3,
         "implausible_column"),
    Case("all-rows-missing-id", "csv-ssn-id", text(csv_text([[*r, ""] for r in rows_of()],
                                                            header=[*HEADER, "Empty"])), 3, "all_rows_quarantined"),
    # file identity by content ----------------------------------------------------------------------------
    Case("xlsx-to-csv-partner", "csv", xlsx_bytes(), 3, "wrong_format", name="export.csv"),
    Case("zip-to-csv-partner", "csv", hmis_zip(), 3, "wrong_format", name="export.csv"),
    Case("parquet-to-csv-partner", "csv", good_parquet(), 3, "wrong_format", name="export.csv"),
    Case("pdf-to-csv-partner", "csv", b"%PDF-1.7\n" + b"\x00\x01binary" * 50, 3, "wrong_format"),
    Case("gzip-to-csv-partner", "csv", gzip.compress(text(CLEAN)), 3, "wrong_format", name="export.csv.gz"),
    Case("json-to-csv-partner", "csv", json.dumps(records()).encode(), 3, "wrong_format"),
    Case("csv-to-xlsx-partner", "xlsx", text(CLEAN), 3, "wrong_format", name="export.xlsx"),
    Case("csv-to-json-partner", "json", text(CLEAN), 3, "wrong_format"),
    Case("csv-to-parquet-partner", "parquet", text(CLEAN), 3, "wrong_format"),
    Case("csv-to-hmis-partner", "hmis", text(CLEAN), 3, "wrong_format", name="export.zip"),
    Case("xls-to-xlsx-partner", "xlsx", ole_bytes(encrypted=False), 3, "wrong_format"),
    Case("encrypted-workbook", "xlsx", ole_bytes(encrypted=True), 3, "encrypted"),
    Case("random-binary", "csv", bytes(range(256)) * 8, 3, "undecodable"),
    # empty and structural ----------------------------------------------------------------------------------
    Case("empty", "csv", b"", 3, "empty_file"),
    Case("whitespace-only", "csv", b" \n\r\n\t\n", 3, "empty_file"),
    Case("header-only", "csv", text(",".join(HEADER) + "\n"), 3, "no_data_rows"),
    Case("header-then-blank-lines", "csv", text(",".join(HEADER) + "\n" + "\n" * 50 + ",,,\n"), 3, "no_data_rows"),
    Case("headerless-csv", "csv", text(csv_text(rows_of()[1:], header=rows_of()[0])), 3, "missing_column"),
    Case("missing-column", "csv-nobirth", text(CLEAN), 3, "missing_column"),
    Case("duplicate-mapped-column", "csv", text(csv_text(header=[*HEADER[:5], "First"])), 3, "duplicate_column"),
    Case("wrong-sheet", "xlsx-sheet", xlsx_bytes(), 3, "wrong_sheet"),
    Case("configured-utf8-gets-cp1252", "csv-utf8", text(CLEAN.replace("Xiomara", "Xiómara"), "cp1252"), 3,
         "undecodable"),
    Case("unknown-codec-configured", "csv-badenc", text(CLEAN), 3, "undecodable"),
    # JSON --------------------------------------------------------------------------------------------------
    Case("json-keyed-by-name", "json", json.dumps({f"{p[1]} {p[2]}": {"SSN": p[4], "DOB": p[3]}
                                                   for p in PEOPLE}).encode(), 3, "malformed"),
    Case("json-200k-deep", "json", b"[" * 200_000 + b"]" * 200_000, 3, "too_large"),
    Case("json-deep-inside-record", "json", nested_json(40), 3, "too_large"),
    Case("json-invalid", "json", b'[{"PID": "P01",', 3, "malformed"),
    Case("json-array-of-scalars", "json", b"[1, 2, 3]", 3, "malformed"),
    Case("ndjson-with-a-scalar-line", "json", b'{"PID": "P01"}\n42\n', 3, "malformed"),
    # zips (HMIS) -------------------------------------------------------------------------------------------
    Case("zip-bomb", "hmis", zip_bytes({"Client.csv": HMIS_CLIENT, "Enrollment.csv": HMIS_ENROLLMENT,
                                        "Exit.csv": b"\x00" * (20 * 1024 * 1024)}), 3, "too_large", name="x.zip"),
    Case("zip-encrypted", "hmis", hmis_zip(flag_bits=0x1), 3, "encrypted", name="x.zip"),
    Case("zip-deflate64", "hmis", hmis_zip(method=9), 3, "unsupported_content", name="x.zip"),
    Case("zip-truncated", "hmis", hmis_zip()[:-40], 3, "malformed", name="x.zip"),
    Case("zip-crc-error", "hmis", (lambda d: d.replace(b"Xiomara", b"Xiomarb"))(
        zip_bytes({"Client.csv": HMIS_CLIENT, "Enrollment.csv": HMIS_ENROLLMENT}, zipfile.ZIP_STORED)), 3,
         "malformed", name="x.zip"),
    Case("zip-without-client", "hmis", zip_bytes({"Enrollment.csv": HMIS_ENROLLMENT}), 3, "missing_hmis_file",
         name="x.zip"),
    # xlsx --------------------------------------------------------------------------------------------------
    Case("xlsx-cell-at-XFD1048576", "xlsx", xlsx_bytes([(0, 0, "PID"), (1048575, 16383, "x")]), 3, "too_large"),
    Case("xlsx-6000-columns", "xlsx", xlsx_bytes([(0, 0, "PID"), (1, 5999, "x")]), 3, "too_large"),
    Case("xlsx-truncated", "xlsx", xlsx_bytes()[:2000], 3, "malformed"),
    # Parquet -----------------------------------------------------------------------------------------------
    Case("parquet-duration-column", "parquet", parquet_bytes(pl.DataFrame(records()).with_columns(
        pl.duration(days=pl.int_range(0, N)).alias("Wait"))), 3, "unsupported_content"),
    Case("parquet-time-column", "parquet", parquet_bytes(pl.DataFrame(records()).with_columns(
        pl.lit(dt.time(8, 30)).alias("Clock"))), 3, "unsupported_content"),
    Case("parquet-binary-column", "parquet", parquet_bytes(pl.DataFrame(records()).with_columns(
        pl.lit(b"\x00\x01").alias("Blob"))), 3, "unsupported_content"),
    Case("parquet-garbage", "parquet", b"PAR1" + b"\x07" * 300 + b"PAR1", 3, "malformed"),
    # not a regular file ------------------------------------------------------------------------------------
    Case("fifo", "csv", lambda tmp: _fifo(tmp), 3, "not_regular_file"),
    Case("folder-to-csv-partner", "csv", lambda tmp: _folder(tmp), 3, "malformed"),
    Case("no-such-file", "csv", lambda tmp: tmp / "does-not-exist.csv", 3, "file_not_found"),
    Case("hmis-folder-with-symlinked-client", "hmis", lambda tmp: _hmis_folder_with_link(tmp), 3,
         "missing_hmis_file"),
]


def _fifo(tmp: Path) -> Path:
    path = tmp / "pipe.csv"
    os.mkfifo(path)
    return path


def _folder(tmp: Path) -> Path:
    path = tmp / "a-folder.csv"
    path.mkdir()
    return path


def _hmis_folder_with_link(tmp: Path) -> Path:
    folder = tmp / "hmis-export"
    folder.mkdir()
    (folder / "Enrollment.csv").write_bytes(HMIS_ENROLLMENT)
    secret = tmp / "key-file.csv"
    secret.write_bytes(HMIS_CLIENT)
    (folder / "Client.csv").symlink_to(secret)  # a link must never be followed: the export has no Client.csv
    return folder


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace.open(make_ws(tmp_path_factory.mktemp("bad-inputs"), *BLOCKS))


MESSAGES: list[str] = []  # every rejection message and hint of the corpus, for the leak test


def _materialize(case: Case, tmp: Path) -> Path:
    if callable(case.content):
        return case.content(tmp)
    path = tmp / case.name
    path.write_bytes(case.content)
    return path


def test_corpus_size() -> None:
    assert len(CASES) >= 60 + 20  # ≥ 60 new bad inputs, plus the good files they are told apart from
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ws: Workspace, tmp_path: Path) -> None:
    path = _materialize(case, tmp_path)
    before = workspace_state(ws.root)
    try:
        result = ingest_file(ws, case.partner, path, dry_run=True, today=TODAY) if case.exit == 0 else \
            ingest_file(ws, case.partner, path, today=TODAY)
    except InputRejected as e:
        MESSAGES.append(str(e))
        assert (e.exit_code, e.reason) == (case.exit, case.reason), str(e)
        assert e.reason and e.hint, "a rejection names its reason and a fix"
        assert workspace_state(ws.root) == before, "a rejected file must leave the workspace unchanged"
        return
    assert case.exit == 0, f"expected exit {case.exit} ({case.reason}), got an ingest"
    assert (result.rows_in, result.accepted, result.quarantined) == case.rows
    assert result.rows_in == result.accepted + result.quarantined
    for key, value in case.notes.items():
        assert result.notes.get(key) == value, (key, result.notes)
    assert workspace_state(ws.root) == before  # a dry run writes nothing


def test_wrong_date_format_names_the_one_that_works(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(CLEAN)
    with pytest.raises(InputRejected) as e:
        ingest_file(ws, "csv-dmy", path, today=TODAY)
    assert "'%m/%d/%Y'" in e.value.message and 'date_format = "%m/%d/%Y"' in (e.value.hint or "")
    assert "10 of 10" in e.value.message and e.value.column == "Start"


def test_one_stray_cp1252_byte_keeps_names_and_is_flagged(ws: Workspace, tmp_path: Path) -> None:
    from cilink.ingest.batches import read_export, validate_batch

    path = tmp_path / "mixed.csv"
    path.write_bytes(text(CLEAN.replace("Okonkwo", "Okonkwó")).replace(b"Xiomara", b"Jos\xe9"))
    _, mapped = read_export(path, ws.config.partner("csv"))
    assert mapped.notes["bytes_repaired"] == 1 and mapped.notes["encoding"] == "utf-8"
    names = validate_batch(mapped, ws.config.partner("csv"), "workforce", TODAY).accepted["first_name"].to_list()
    assert names[0] == "jose", "the stray byte is read as cp1252 é, not decoded as hp_roman8 (josu)"
    assert validate_batch(mapped, ws.config.partner("csv"), "workforce", TODAY).accepted["last_name"][1] == "okonkwo"


def test_config_check_validates_date_format(tmp_path: Path) -> None:
    config = tmp_path / "cilink.toml"
    config.write_text('[project]\nname = "t"\n' + partner("p", date_format="%m/%Q/%Y")
                      + partner("q", date_format="%m/%Y"))
    r = run_cli("config", "check", config)
    assert r.returncode == 2 and "2 problem(s)" in r.stderr
    assert "partners[p]: date_format uses %Q" in r.stderr
    assert "partners[q]: date_format '%m/%Y' does not name a year, a month and a day" in r.stderr


CLI_CASES = ["crlf-then-cr", "dmy-format-on-us-dates", "headerless-csv", "json-keyed-by-name"]


def test_real_cli_runs_and_nothing_leaks(tmp_path: Path) -> None:
    """The real `cilink ingest` on a slice of the corpus, then every message, log and file cilink wrote
    outside the quarantine and staged rows is searched for the corpus' names, SSNs and birth dates."""
    root = make_ws(tmp_path, *BLOCKS)
    by_id = {c.id: c for c in CASES}
    outputs = []
    for cid in CLI_CASES:
        case = by_id[cid]
        path = _materialize(case, tmp_path)
        before = workspace_state(root)
        code, result, stderr = ingest_json(root, case.partner, path)
        assert code == case.exit, (cid, stderr)
        if code:
            assert reason_of(stderr) == case.reason, (cid, stderr)
            assert workspace_state(root) == before
        else:
            assert result is not None and (result["rows_in"], result["accepted"], result["quarantined"]) == case.rows
        outputs.append(stderr)
        path.unlink()
    ws = Workspace.open(root)
    logs = [p.read_text(errors="replace") for p in ws.logs_dir.rglob("*") if p.is_file()]
    assert logs, "ingest writes a run log"
    _assert_no_secrets([*outputs, *logs, *MESSAGES], "a CLI message, log or rejection message")


def _assert_no_secrets(texts: list[str], where: str) -> None:
    joined = "\n".join(texts)
    found = sorted({s for s in SECRETS if s in joined})
    assert not found, f"{where} holds corpus values: {found}"


def test_no_rejection_message_of_the_corpus_holds_a_value(ws: Workspace, tmp_path: Path) -> None:
    """The library messages of every rejected case (this test does not rely on the parametrized run order)."""
    messages = []
    for case in CASES:
        if case.exit == 0:
            continue
        sub = tmp_path / case.id
        sub.mkdir()
        try:
            ingest_file(ws, case.partner, _materialize(case, sub), dry_run=True, today=TODAY)
        except InputRejected as e:
            messages.append(f"{e}\n{e.column or ''}")
    assert len(messages) == sum(c.exit == 3 for c in CASES)
    _assert_no_secrets(messages, "a rejection message")


# arbitrary bytes --------------------------------------------------------------------------------------
SEEDS = [text(CLEAN), xlsx_bytes(), json.dumps(records()).encode(), good_parquet(), hmis_zip()]
PARTNER_OF_SEED = ["csv", "xlsx", "json", "parquet", "hmis"]


@st.composite
def mangled(draw: st.DrawFn) -> tuple[str, bytes]:
    """A good file of one format with bytes flipped, cut or inserted — or plain random bytes."""
    i = draw(st.integers(0, len(SEEDS) - 1))
    partner_id = draw(st.sampled_from([PARTNER_OF_SEED[i], "csv", "json"]))
    if draw(st.booleans()):
        return partner_id, draw(st.binary(max_size=600))
    data = bytearray(SEEDS[i])
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        if not data:
            break
    return partner_id, bytes(data)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(mangled())
def test_arbitrary_bytes_never_crash_ingest(ws: Workspace, tmp_path: Path, sample: tuple[str, bytes]) -> None:
    partner_id, data = sample
    path = tmp_path / "fuzz.dat"
    path.write_bytes(data)
    try:
        result = ingest_file(ws, partner_id, path, dry_run=True, today=TODAY)
    except InputRejected as e:
        assert e.exit_code == 3 and e.reason
        return
    except CilinkError as e:  # pragma: no cover - shown with its type if it ever happens
        pytest.fail(f"{type(e).__name__} (exit {e.exit_code}) instead of a rejection: {e}")
    assert result.rows_in == result.accepted + result.quarantined


def test_arbitrary_bytes_through_the_cli_exit_0_or_3(tmp_path: Path) -> None:
    """A few mangled files through the real command: no exit 1, no abort (a signal gives a negative code)."""
    import random

    root = make_ws(tmp_path, *BLOCKS)
    rng = random.Random(21)
    for n, (seed, partner_id) in enumerate(list(zip(SEEDS, PARTNER_OF_SEED, strict=True))[1:3]):
        data = bytearray(seed)
        for _ in range(8):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = tmp_path / f"m{n}.dat"
        path.write_bytes(bytes(data))
        r = run_cli("-w", root, "ingest", partner_id, path, "--dry-run")
        assert r.returncode in (0, 3), (partner_id, r.returncode, r.stderr)


# --replace ---------------------------------------------------------------------------------------------
def test_replace_reingests_a_file_after_a_config_fix(tmp_path: Path) -> None:
    """A file ingested with a config mistake (a date column mapped wrong: every birth date flagged) is read
    again after the fix with --replace; the new batch replaces the earlier one, and the audit log says so."""
    root = make_ws(tmp_path, partner("p", columns=COLUMNS.replace('dob = "Birth"\n', "")))
    path = tmp_path / "people.csv"
    path.write_text(CLEAN)
    first = ingest_file(Workspace.open(root), "p", path).to_dict()
    assert first["accepted"] == N and first["flags_by_field"] == {}
    again = ingest_file(Workspace.open(root), "p", path)
    assert again.status == "duplicate", "without --replace: a no-op"
    config = root / "cilink.toml"
    config.write_text(config.read_text().replace('last_name = "Last"\n', 'last_name = "Last"\ndob = "Birth"\n'))
    code, replaced, stderr = ingest_json(root, "p", path, "--replace")
    assert code == 0, stderr
    assert replaced is not None and replaced["replaced"] == first["batch_id"] and replaced["superseded"] == []
    assert replaced["batch_id"] != first["batch_id"] and replaced["accepted"] == N
    with Ledger(Workspace.open(root).ledger_path) as ledger:
        status = {b.batch_id: b.status for b in ledger.batches("p")}
        audit = [e for e in ledger.audit_entries() if e["action"] == "replace_batch"]
    assert status == {first["batch_id"]: "replaced", replaced["batch_id"]: "active"}
    assert len(audit) == 1 and audit[0]["details"]["replaces"] == first["batch_id"]
    from cilink.staging import staged_records

    dobs = staged_records(Workspace.open(root)).select("dob").collect()["dob"]
    assert dobs.len() == N and dobs.null_count() == 0, "only the new batch's rows count"
    dup = ingest_file(Workspace.open(root), "p", path)
    assert dup.status == "duplicate" and dup.batch_id == replaced["batch_id"]


def test_non_latin_names_are_transliterated_not_nulled(ws: Workspace, tmp_path: Path) -> None:
    from cilink.ingest.batches import read_export, validate_batch

    names = [("李", "小龙"), ("Оксана", "Білик"), ("Σοφία", "Παπαδοπούλου"), ("محمد", "الحسن"), ("Nguyễn", "Thị")]
    rows = [[f"U{i}", first, last, "03/14/1987", "", "09/16/2024"] for i, (first, last) in enumerate(names)]
    path = tmp_path / "scripts.csv"
    path.write_text(csv_text(rows))
    checked = validate_batch(read_export(path, ws.config.partner("csv"))[1], ws.config.partner("csv"), "workforce",
                             TODAY)
    assert checked.accepted_rows == 5
    assert checked.accepted["first_name"].to_list() == ["li", "oksana", "sofia", "mhmd", "nguyen"]
    assert checked.accepted["last_name"].null_count() == 0


def test_a_headerless_file_is_described_by_position_and_type(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "no-header.csv"
    path.write_text(csv_text(rows_of()[1:], header=rows_of()[0]))
    with pytest.raises(InputRejected) as e:
        ingest_file(ws, "csv", path, today=TODAY)
    assert "no header: the first line looks like a data row (column 1: number, column 2: text, column 3: text, " \
        "column 4: date, column 5: SSN-like number, column 6: date)" in e.value.message


def test_repaired_bytes_and_blank_rows_are_recorded_in_the_audit_log(tmp_path: Path) -> None:
    root = make_ws(tmp_path, partner("p"))
    path = tmp_path / "mixed.csv"
    path.write_bytes(text(CLEAN.replace("Okonkwo", "Okonkwó") + "\n" * 7).replace(b"Xiomara", b"Xiom\xe1ra"))
    result = ingest_file(Workspace.open(root), "p", path, today=TODAY)
    assert (result.rows_in, result.accepted) == (N, N)
    with Ledger(Workspace.open(root).ledger_path) as ledger:
        entry = next(e for e in ledger.audit_entries() if e["action"] == "ingest_batch")
    assert entry["details"]["bytes_repaired"] == 1 and entry["details"]["blank_rows_skipped"] == 7


@pytest.mark.parametrize(("xml", "extent"), [
    (b'<row r="1"><c r="A1"/><c r="ZZ9"/></row>', (9, 702)),
    (b'<c r="AB12"/><c r="B100"/><c r="AA99"/>', (100, 28)),  # more letters: a larger column, whatever follows
    (b'<c r="XFD1048576"/>', (1_048_576, 16_384)),
    (b'<c r="A00001"/><c r="B1000"/>', (1000, 2)),  # leading zeros: more digits is not a larger row
    (b'<c r="A0999999"/><c r="A99"/>', (999_999, 1)),
    (b'<row r="7654321"><c r="A1234567"/>', (7_654_321, 1)),
    (b'<c r="AAAA1"/>', (1 << 40, 1 << 40)),  # beyond Excel's grid counts as over every cap
    (b'<c r="A12345678"/>', (1 << 40, 1 << 40)),
    (b'<c foo="x"/><c ar="B2"/>', (0, 0)),  # only an r attribute after a space is a reference
])
def test_worksheet_extent_is_the_largest_reference(xml: bytes, extent: tuple[int, int]) -> None:
    assert limits._sheet_extent(xml) == extent
