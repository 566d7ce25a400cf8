"""Unattended operation (issue 7): cron runs over the inbox, the lock, crash safety, purge, clean logs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from cilink.demo import generate_demo
from cilink.ledger import Ledger
from cilink.link.outputs import read_crosswalk
from cilink.operate.inbox import mark_complete
from cilink.workspace import Workspace, ensure_layout
from tests.conftest import TEST_SECRET, run_cli
from tests.release_fixtures import RESEARCH, RESEARCH_AUDIENCE

PEOPLE = 150


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated (not yet run) demo workspace, copied per test."""
    root = tmp_path_factory.mktemp("demo-src") / "ws"
    generate_demo(root, people=PEOPLE, seed=7)
    ensure_layout(root)
    mark_complete(Workspace.open(root))
    return root


def fresh_workspace(demo_source: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(demo_source, ws, symlinks=True)
    return ws


def staged_invariants(ws_root: Path, *, linked: bool = False, after_crash: bool = False) -> None:
    """Ledger ⇔ staged files; no partial release; after a finished run, the crosswalk covers every record.

    Right after a SIGKILL the killed ingest may have left its staged file without a ledger row: no reader
    sees it (readers go through the ledger) and the next writer removes it, so it is allowed only then.
    """
    ws = Workspace.open(ws_root)
    with Ledger(ws.ledger_path) as ledger:
        batches = ledger.active_batches()
        recorded = {(ws.root / b.staged_path).resolve() for b in ledger.batches() if b.status != "purged"}
    on_disk = {p.resolve() for p in (ws.restricted / "staged").rglob("*.parquet")}
    orphans = on_disk - recorded
    assert len(orphans) <= (1 if after_crash else 0), "a staged file without a ledger row"
    if orphans:
        from cilink.staging import staged_records

        seen = set(staged_records(ws).select("_cilink_batch_id").unique().collect().to_series().to_list())
        assert not {p.stem for p in orphans} & seen, "an unrecorded batch is visible to readers"
    for b in batches:
        assert (ws.root / b.staged_path).exists(), "a ledger row without its staged file"
        assert b.rows_in == b.accepted + b.quarantined
    cw = read_crosswalk(ws.link_dir)
    if cw is not None:
        assert cw.height == cw.select("partner", "source_person_id").unique().height, "one person_id per record"
    if linked:
        from cilink.staging import staged_records

        staged_ids = {tuple(r) for r in staged_records(ws).select("_cilink_partner", "source_person_id")
                      .unique().collect().rows()}
        assert staged_ids == {tuple(r) for r in cw.select("partner", "source_person_id").rows()}
    for rel in ws.releases_dir.iterdir():
        assert not rel.name.startswith("."), "a temp release directory was left behind"
        assert (rel / "manifest.json").exists(), "a release without its manifest"


def crosswalk_partition(ws_root: Path) -> set[frozenset[str]]:
    cw = read_crosswalk(Workspace.open(ws_root).link_dir)
    assert cw is not None
    groups = cw.group_by("person_id").agg(pl.format("{}:{}", "partner", "source_person_id").alias("r"))
    return {frozenset(r) for r in groups["r"].to_list()}


def test_cron_run_twice_with_one_malformed_file(demo_source: Path, tmp_path: Path) -> None:
    ws = fresh_workspace(demo_source, tmp_path)
    bad = ws / "inbox" / "workforce-board" / "broken.xlsx"
    bad.write_bytes(b"this is not a spreadsheet")
    bad.with_name(bad.name + ".done").touch()
    first = run_cli("-w", ws, "run", "--json")
    assert first.returncode == 3, first.stderr
    summary = json.loads(first.stdout)
    outcomes = {f["file"]: f["outcome"] for f in summary["files"]}
    assert outcomes == {"holyoke-schools.csv": "ingested", "workforce-board.xlsx": "ingested",
                        "hmis-export.zip": "ingested", "broken.xlsx": "rejected"}
    assert summary["linked"] and summary["release_id"]
    rejected = ws / ".cilink" / "inbox" / "workforce-board" / "rejected"
    assert (rejected / "broken.xlsx").exists()
    assert (rejected / "broken.xlsx.reason.txt").read_text().strip()
    for partner, name in [("holyoke-schools", "holyoke-schools.csv"), ("coc-hmis", "hmis-export.zip")]:
        kept = ws / ".cilink" / "inbox" / partner / "processed" / name
        assert kept.exists() and kept.stat().st_mode & 0o777 == 0o600, "raw exports are kept owner-only"
        assert not (ws / "inbox" / partner / name).exists() and not (ws / "inbox" / partner / (name + ".done")).exists()
    status = json.loads(run_cli("-w", ws, "status", "--json").stdout)
    cron = status["last_inbox_run"]
    assert cron["exit_code"] == 3 and cron["outcome_counts"] == {"ingested": 3, "rejected": 1}
    outcomes = {f["file"]: (f["outcome"], f["reason"]) for f in cron["files"]}
    assert outcomes["broken.xlsx"] == ("rejected", "wrong_format")
    assert status["last_release"]["current"] is True
    shown = run_cli("-w", ws, "status").stdout
    assert "exit 3 — 3 ingested, 1 rejected" in shown and "broken.xlsx\trejected" in shown
    second = run_cli("-w", ws, "run", "--json")
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["files"] == [] and not again["linked"] and again["release_id"] is None
    # a run whose only file is rejected links nothing and writes no release
    (ws / "inbox" / "workforce-board" / "broken-2.xlsx").write_bytes(b"not a spreadsheet either")
    (ws / "inbox" / "workforce-board" / "broken-2.xlsx.done").touch()
    third = json.loads(run_cli("-w", ws, "run", "--json").stdout)
    assert [f["outcome"] for f in third["files"]] == ["rejected"] and not third["linked"]
    assert third["release_id"] is None and len(list((ws / "releases").iterdir())) == 1
    with Ledger(ws / ".cilink" / "ledger.sqlite") as ledger:
        assert len(ledger.batches()) == 3  # each good file ingested exactly once
        assert any(e["action"] == "run" for e in ledger.audit_entries())
    staged_invariants(ws, linked=True)


def test_a_second_run_exits_4_while_the_first_works(demo_source: Path, tmp_path: Path) -> None:
    ws = fresh_workspace(demo_source, tmp_path)
    env = {"CILINK_SECRET": TEST_SECRET, "NO_COLOR": "1"}
    import os

    procs = [subprocess.Popen([sys.executable, "-m", "cilink", "-w", str(ws), "run"], env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 4], results
    busy_err = next(err for code, err in results if code == 4)
    assert "busy" in busy_err and "pid" in busy_err


def test_purge_partner_removes_its_data_everywhere(demo_source: Path, tmp_path: Path) -> None:
    ws = fresh_workspace(demo_source, tmp_path)
    assert run_cli("-w", ws, "run").returncode == 0
    r = run_cli("-w", ws, "purge", "--partner", "coc-hmis", "--yes", "--json", "--no-export")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["batches"] == 1
    w = Workspace.open(ws)
    with Ledger(w.ledger_path) as ledger:
        purged = ledger.batches("coc-hmis")
    assert [b.status for b in purged] == ["purged"]
    assert not (w.root / purged[0].staged_path).exists()
    assert not (w.staged_dir("coc-hmis")).exists() or not any(w.staged_dir("coc-hmis").iterdir())
    cw = read_crosswalk(w.link_dir)
    assert cw is not None
    assert "coc-hmis" not in cw["partner"].to_list() and cw.height > 0
    assert not list((ws / "inbox" / "coc-hmis").rglob("*.zip")), "the kept raw export is purged too"
    assert not list((ws / ".cilink" / "inbox" / "coc-hmis").rglob("*.zip")), "the kept raw export is purged too"
    gens = [p for p in w.link_root.iterdir() if p.name.startswith("gen-")]
    assert len(gens) == 1, "older link generations still held the purged records"
    # the research tier: full event detail, so an absent housing domain means the purge reached the release
    with open(ws / "cilink.toml", "a", encoding="utf-8") as fh:
        fh.write(RESEARCH_AUDIENCE)
    exp = run_cli("-w", ws, "export", "--audience", RESEARCH, "--json")
    assert exp.returncode == 0, exp.stderr
    release = max((ws / "releases").iterdir(), key=lambda p: p.stat().st_mtime)
    persons = pl.read_parquet(release / "persons.parquet")
    assert not any("coc-hmis" in str(v) for v in persons.to_dicts())
    assert not (release / "events" / "domain=housing").exists() or not list(
        (release / "events" / "domain=housing").rglob("*.parquet"))
    with Ledger(w.ledger_path) as ledger:
        assert any(e["action"] == "purge" and "coc-hmis" in e["inputs"]["scope"] for e in ledger.audit_entries())


def test_logs_contain_no_identifiers(demo_source: Path, tmp_path: Path) -> None:
    ws = fresh_workspace(demo_source, tmp_path)
    assert run_cli("-w", ws, "run").returncode == 0
    w = Workspace.open(ws)
    from cilink.staging import staged_records

    staged = staged_records(w).collect()
    needles = set()
    for col in ("first_name", "last_name", "ssn"):
        needles |= {v for v in staged[col].drop_nulls().to_list() if len(v) >= 4}
    needles |= {d.isoformat() for d in staged["dob"].drop_nulls().to_list()}
    logs = "".join(p.read_text() for p in w.logs_dir.glob("*.jsonl")).lower()
    audit = json.dumps(Ledger(w.ledger_path).audit_entries()).lower()
    assert logs, "cron runs leave JSON-lines logs"
    leaked = [n for n in needles if n.lower() in logs or n.lower() in audit]
    assert not leaked


# On this 150-person demo a run has 22 durable writes (1-9 ingest, 10-21 link, 22 publishing the link
# generation / release) and 4 ledger commits (1-3 ingest, 4 link): crash in every stage.
CRASH_POINTS = [("write", n) for n in (1, 3, 5, 8, 12, 16, 20, 21, 22)] + [("commit", n) for n in (1, 2, 3, 4)]


@pytest.fixture(scope="module")
def uninterrupted(demo_source: Path, tmp_path_factory: pytest.TempPathFactory) -> set[frozenset[str]]:
    ws = tmp_path_factory.mktemp("base") / "ws"
    shutil.copytree(demo_source, ws, symlinks=True)
    assert run_cli("-w", ws, "run").returncode == 0
    return crosswalk_partition(ws)


@pytest.mark.parametrize(("kind", "nth"), CRASH_POINTS, ids=[f"{k}-{n}" for k, n in CRASH_POINTS])
def test_crash_at_any_point_then_rerun_completes(demo_source: Path, tmp_path: Path, kind: str, nth: int,
                                                  uninterrupted: set[frozenset[str]]) -> None:
    ws = fresh_workspace(demo_source, tmp_path)
    crashed = run_cli("-w", ws, "run", env={"CILINK_CRASH_AT": f"{kind}:{nth}"})
    assert crashed.returncode == -9, f"the crash point was not reached: {crashed.returncode} {crashed.stderr}"
    staged_invariants(ws, after_crash=True)
    rerun = run_cli("-w", ws, "run")
    assert rerun.returncode == 0, rerun.stderr
    staged_invariants(ws, linked=True)
    assert crosswalk_partition(ws) == uninterrupted
    assert any((ws / "releases").iterdir()), "the rerun finished the export"


def test_staged_records_of_an_empty_partner_keep_its_domain_columns(demo_source: Path, tmp_path: Path) -> None:
    from cilink.staging import staged_records

    ws = Workspace.open(fresh_workspace(demo_source, tmp_path))
    frame = staged_records(ws, "coc-hmis").collect()
    assert frame.height == 0 and {"project_type", "destination_category"} <= set(frame.columns)
