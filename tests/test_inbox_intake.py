"""`cilink run` over a hostile inbox (issue 21): one poison file per partner beside good ones, links, FIFOs,
a file still being written, an unknown partner folder — good files ingested, bad ones rejected alone."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from cilink.ledger import Ledger
from cilink.operate.inbox import kept_dir, run_inbox, scan_inbox
from cilink.status import workspace_status
from cilink.workspace import Workspace
from tests.conftest import run_cli
from tests.ingest_helpers import hmis, make_ws
from tests.test_ingest_bad_inputs import (
    CLEAN,
    HEADER,
    SECRETS,
    csv_text,
    hmis_zip,
    partner,
    records,
    rows_of,
    xlsx_bytes,
)

GROWING = [["G" + r[0], *r[1:]] for r in rows_of()]  # other records than students.csv
LONG_NAME = "x" * 246 + ".csv"  # 250 characters: with ".reason.txt" beside it, over NAME_MAX


def _drop(folder: Path, name: str, data: bytes, *, done: bool = False, age: float = 120) -> Path:
    """Put an export into an inbox folder, finished ``age`` seconds ago (or marked with .done)."""
    path = folder / name
    path.write_bytes(data)
    if done:
        path.with_name(name + ".done").touch()
    else:
        past = time.time() - age
        os.utime(path, (past, past))
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> Workspace:
    root = make_ws(tmp_path, partner("csv"), partner("json", "json", date_format=None), partner("xlsx", "xlsx"),
                   hmis("hmis"))
    ws = Workspace.open(root)
    box = {p: ws.inbox_dir(p) for p in ("csv", "json", "xlsx", "hmis")}
    for folder in box.values():
        folder.mkdir(parents=True, exist_ok=True)
    # good files
    _drop(box["csv"], "students.csv", CLEAN.encode(), done=True)
    _drop(box["json"], "people.json", json.dumps(records()).encode())
    _drop(box["xlsx"], "participants.xlsx", xlsx_bytes(), done=True)
    _drop(box["hmis"], "hmis-export.zip", hmis_zip())
    # one poison file per partner (and a second, long-named one for csv)
    _drop(box["csv"], "really.csv", xlsx_bytes())
    _drop(box["csv"], LONG_NAME, b"\x00\x01\x02\x03" * 100)
    _drop(box["json"], "deep.json", b"[" * 200_000 + b"]" * 200_000, done=True)
    _drop(box["xlsx"], "stray-cell.xlsx", xlsx_bytes([(0, 0, "PID"), (1048575, 16383, "x")]))
    _drop(box["hmis"], "locked.zip", hmis_zip(flag_bits=0x1))
    # entries that must never be read
    secret = tmp_path / "secret-key.csv"
    secret.write_text(CLEAN)
    (box["csv"] / "link.csv").symlink_to(secret)
    os.mkfifo(box["json"] / "pipe.json")
    (box["csv"] / "subfolder").mkdir()
    (ws.root / "inbox" / "ghost-partner").mkdir()
    _drop(ws.root / "inbox" / "ghost-partner", "orphan.csv", CLEAN.encode())
    # a file still being written: changed a moment ago, no .done marker
    growing = box["csv"] / "growing.csv"
    growing.write_text(csv_text(GROWING[:3]))
    return ws


def test_poison_files_are_rejected_alone_and_good_ones_ingested(inbox: Workspace, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    ws = inbox
    old_umask = os.umask(0)  # the worst case the issue found: raw exports world-readable
    try:
        result = run_inbox(ws, link=False, export=False)
    finally:
        os.umask(old_umask)
    outcomes = {(f.partner, f.file): (f.outcome, f.reason) for f in result.files}
    assert outcomes == {
        ("csv", "students.csv"): ("ingested", None),
        ("json", "people.json"): ("ingested", None),
        ("xlsx", "participants.xlsx"): ("ingested", None),
        ("hmis", "hmis-export.zip"): ("ingested", None),
        ("csv", "really.csv"): ("rejected", "wrong_format"),
        ("csv", LONG_NAME): ("rejected", "undecodable"),
        ("json", "deep.json"): ("rejected", "too_large"),
        ("xlsx", "stray-cell.xlsx"): ("rejected", "too_large"),
        ("hmis", "locked.zip"): ("rejected", "encrypted"),
        ("csv", "link.csv"): ("skipped", "symlink"),
        ("csv", "subfolder"): ("skipped", "sub_folder"),
        ("json", "pipe.json"): ("skipped", "not_regular_file"),
        ("ghost-partner", "ghost-partner"): ("skipped", "unknown_partner_folder"),
        ("csv", "growing.csv"): ("waiting", "not_stable"),
    }
    assert result.exit_code == 3
    with Ledger(ws.ledger_path) as ledger:
        batches = ledger.active_batches()
        rejections = [e for e in ledger.audit_entries() if e["action"] == "reject_file"]
    assert sorted(b.partner for b in batches) == ["csv", "hmis", "json", "xlsx"]
    assert sum(b.rows_in for b in batches) == 40 and all(b.accepted == 10 for b in batches)
    assert len(rejections) == 5, "every rejection has its audit entry"

    # kept raw exports: in the restricted zone, owner-only even under umask 000
    for p, name in [("csv", "students.csv"), ("hmis", "hmis-export.zip")]:
        kept = kept_dir(ws, p, "processed") / name
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
        assert not (ws.inbox_dir(p) / name).exists()
    reasons = sorted(kept_dir(ws, "csv", "rejected").glob("*.reason.txt"))
    assert len(reasons) == 2 and all(len(r.name.encode()) <= 255 for r in reasons)
    assert all(stat.S_IMODE(r.stat().st_mode) == 0o600 for r in reasons)
    assert "Reason: wrong_format" in (kept_dir(ws, "csv", "rejected") / "really.csv.reason.txt").read_text()

    # never followed, never moved: the link, the FIFO, the sub-folder and the unknown partner's file
    assert (ws.inbox_dir("csv") / "link.csv").is_symlink() and (tmp_path / "secret-key.csv").read_text() == CLEAN
    assert stat.S_ISFIFO((ws.inbox_dir("json") / "pipe.json").lstat().st_mode)
    assert (ws.root / "inbox" / "ghost-partner" / "orphan.csv").exists()

    # status shows what run did not take
    pending = {(e["partner"], e["entry"]): (e["state"], e["reason"]) for e in workspace_status(ws).inbox_pending}
    assert pending[("csv", "growing.csv")] == ("waiting", "not_stable")
    assert pending[("ghost-partner", "ghost-partner")] == ("skipped", "unknown_partner_folder")

    # nothing cilink wrote outside the quarantine and staged rows repeats a name, SSN or birth date
    written = [p.read_text(errors="replace") for d in (ws.logs_dir, ws.restricted / "inbox")
               for p in d.rglob("*.txt")] + [p.read_text(errors="replace") for p in ws.logs_dir.rglob("*")
                                             if p.is_file()]
    written.append(json.dumps(result.to_dict()))
    leaked = sorted({s for s in SECRETS if any(s in t for t in written)})
    assert not leaked, f"values in reason files, logs or the run summary: {leaked}"


def test_a_file_being_written_is_taken_only_once_stable(inbox: Workspace) -> None:
    ws = inbox
    growing = ws.inbox_dir("csv") / "growing.csv"
    first = run_inbox(ws, link=False, export=False)
    assert ("growing.csv", "waiting") in {(f.file, f.outcome) for f in first.files}
    with growing.open("a") as fh:  # the copy goes on: the rest of the rows arrive
        fh.write("".join(",".join(r) + "\n" for r in GROWING[3:]))
    assert [e.state for e in scan_inbox(ws) if e.path == growing] == ["waiting"], "just changed: still waiting"
    past = time.time() - 60
    os.utime(growing, (past, past))  # ... and then nothing changes for a minute
    second = run_inbox(ws, link=False, export=False)
    taken = [f for f in second.files if f.file == "growing.csv"]
    assert [(f.outcome, f.rows_in, f.accepted) for f in taken] == [("ingested", 10, 10)], "all rows, not the first 3"


def test_stable_seconds_and_processed_delete_are_configurable(tmp_path: Path) -> None:
    root = make_ws(tmp_path, partner("csv"))
    with (root / "cilink.toml").open("a") as fh:
        fh.write('\n[inbox]\nstable_seconds = 0\nprocessed = "delete"\n')
    ws = Workspace.open(root)
    ws.inbox_dir("csv").mkdir(parents=True, exist_ok=True)
    (ws.inbox_dir("csv") / "now.csv").write_text(csv_text(header=HEADER))
    result = run_inbox(ws, link=False, export=False)
    assert [(f.file, f.outcome) for f in result.files] == [("now.csv", "ingested")]
    assert not (ws.inbox_dir("csv") / "now.csv").exists()
    assert not kept_dir(ws, "csv", "processed").exists(), "deleted, not kept"


def test_an_unexpected_error_in_one_file_is_that_files_rejection(inbox: Workspace,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import cilink.ingest.batches as batches

    real = batches.ingest_file

    def flaky(ws: Workspace, partner_id: str, path: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if path.name == "people.json":
            raise KeyError("Xiomara Quintanilla")  # an exception whose text quotes a value
        return real(ws, partner_id, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(batches, "ingest_file", flaky)
    result = run_inbox(inbox, link=False, export=False)
    outcome = next(f for f in result.files if f.file == "people.json")
    assert (outcome.outcome, outcome.reason) == ("rejected", "unreadable")
    assert {f.file for f in result.files if f.outcome == "ingested"} == {
        "students.csv", "participants.xlsx", "hmis-export.zip"}, "the other files and partners go on"
    reason = (kept_dir(inbox, "json", "rejected") / "people.json.reason.txt").read_text()
    assert "KeyError" in reason and "Xiomara" not in reason


def test_cilink_run_and_status_report_the_inbox(tmp_path: Path) -> None:
    """The real commands: a poison file next to a good one gives exit 3; status lists what waits."""
    root = make_ws(tmp_path, partner("csv"))
    ws = Workspace.open(root)
    box = ws.inbox_dir("csv")
    box.mkdir(parents=True, exist_ok=True)
    _drop(box, "really.csv", xlsx_bytes(), done=True)
    (box / "fresh.csv").write_text(CLEAN)  # just arrived: waits
    r = run_cli("-w", root, "run", "--json")
    assert r.returncode == 3, r.stderr
    files = {f["file"]: (f["outcome"], f["reason"]) for f in json.loads(r.stdout)["files"]}
    assert files == {"really.csv": ("rejected", "wrong_format"), "fresh.csv": ("waiting", "not_stable")}
    s = run_cli("-w", root, "status")
    assert s.returncode == 0 and "fresh.csv" in s.stdout and "not_stable" in s.stdout
