"""Purge as a crash-safe transaction (issue 22): SIGKILL at its write and commit points, then the next command
completes it; `purge --verify` finds anything left; the crosswalk and later releases hold none of the partner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cilink.ledger import Ledger
from cilink.link.outputs import read_crosswalk
from tests.conftest import run_cli

PARTNER = "coc-hmis"
# On the 150-person demo a partner purge has 14 durable writes (1 removing the batch's files, 2-13 the full
# relink, 13 publishing its generation, 14 publishing the release) and 3 ledger commits (1 the intent,
# 2 the relink, 3 done). The default run crashes mid-purge and after it; `-m slow` crashes at every point.
EVERY_POINT = [("write", n) for n in range(1, 15)] + [("commit", n) for n in (1, 2, 3)]
EACH_PHASE = [("write", 1)]  # between the intent and the relink (write 14 in test_purge_verify_names_what_remains)


@pytest.fixture
def linked(linked_demo: Path) -> Path:
    return linked_demo


def copy_of(src: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(src, ws, symlinks=True)
    return ws


def partner_batches(ws: Path) -> set[str]:
    with Ledger(ws / ".cilink" / "ledger.sqlite") as ledger:
        return {b.batch_id for b in ledger.batches(PARTNER)}


def assert_purged(ws: Path, purged_batches: set[str]) -> None:
    """What the purge promises, read from the files: no generation or later release holds the partner."""
    link_root = ws / ".cilink" / "link"
    gens = sorted(link_root.glob("gen-*"))
    assert gens
    for gen in gens:
        cw = read_crosswalk(gen)
        assert cw is not None and cw.height > 0
        assert PARTNER not in cw["partner"].to_list(), f"{gen.name} still links the partner's records"
        assert not (gen / f"records-{PARTNER}.arrow").exists(), f"{gen.name} still holds its records file"
    assert not [p for b in purged_batches for p in (ws / ".cilink" / "staged").rglob(f"*{b}*")]
    with Ledger(ws / ".cilink" / "ledger.sqlite") as ledger:
        purges = ledger.purges()
        assert [p["state"] for p in purges] == ["done"]
        finished = purges[0]["finished_at"]
        later = [r for r in ledger.conn.execute("SELECT path, created_at FROM releases") if r[1] >= finished]
        assert [e["action"] for e in ledger.audit_entries() if e["command"] == "purge"] == ["purge_started", "purge"]
    assert later, "no release was written after the purge"
    for path, _ in later:
        manifest = json.loads((ws / path / "manifest.json").read_text())
        assert not {b["batch_id"] for b in manifest["inputs"]["batches"]} & purged_batches
        assert PARTNER not in {b["partner"] for b in manifest["inputs"]["batches"]}
    verify = run_cli("-w", ws, "purge", "--verify", "--json")
    assert verify.returncode == 0, verify.stdout
    assert json.loads(verify.stdout)["remains"] == []


def _crash_then_next_command(linked: Path, tmp_path: Path, kind: str, nth: int) -> None:
    ws = copy_of(linked, tmp_path)
    batches = partner_batches(ws)
    crashed = run_cli("-w", ws, "purge", "--partner", PARTNER, "--yes", env={"CILINK_CRASH_AT": f"{kind}:{nth}"})
    assert crashed.returncode == -9, f"the crash point was not reached: {crashed.returncode} {crashed.stderr}"
    with Ledger(ws / ".cilink" / "ledger.sqlite") as ledger:
        recorded = ledger.purges()
    if not recorded:  # killed before the intent committed: nothing happened; the user runs the purge again
        assert (kind, nth) == ("commit", 1)
        assert run_cli("-w", ws, "purge", "--partner", PARTNER, "--yes").returncode == 0
    else:
        # a cron `run` is the next command: it completes the purge before anything else, then exports
        nxt = run_cli("-w", ws, "run", "--json")
        assert nxt.returncode == 0, nxt.stderr
    assert_purged(ws, batches)


@pytest.mark.parametrize(("kind", "nth"), EACH_PHASE, ids=[f"{k}-{n}" for k, n in EACH_PHASE])
def test_purge_killed_in_each_phase_is_completed_by_the_next_command(linked: Path, tmp_path: Path, kind: str,
                                                                     nth: int) -> None:
    _crash_then_next_command(linked, tmp_path, kind, nth)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "nth"), EVERY_POINT, ids=[f"{k}-{n}" for k, n in EVERY_POINT])
def test_purge_killed_at_every_point_is_completed_by_the_next_command(linked: Path, tmp_path: Path, kind: str,
                                                                      nth: int) -> None:
    _crash_then_next_command(linked, tmp_path, kind, nth)


def test_purge_verify_names_what_remains(linked: Path, tmp_path: Path) -> None:
    old_gen = next((linked / ".cilink" / "link").glob("gen-*"))
    kept = tmp_path / "old-gen"
    shutil.copytree(old_gen, kept)
    _crash_then_next_command(linked, tmp_path, "write", 14)  # killed after done, before the release
    ws = tmp_path / "ws"
    # someone restores an old link generation and leaves a staged file behind
    shutil.copytree(kept, ws / ".cilink" / "link" / "gen-000000")
    (ws / ".cilink" / "staged" / PARTNER).mkdir(parents=True, exist_ok=True)
    (ws / ".cilink" / "staged" / PARTNER / "left.parquet").write_bytes(b"x")
    verify = run_cli("-w", ws, "purge", "--verify")
    assert verify.returncode == 6, verify.stdout + verify.stderr
    remains = [line for line in verify.stdout.splitlines() if line.startswith("Remains:")]
    assert len(remains) == 3, remains  # the generation's batches, its records, the staged file
    assert any("gen-000000" in r and "holds coc-hmis" in r for r in remains)
    assert any("staged/coc-hmis" in r for r in remains)


def test_purge_usage(linked: Path, tmp_path: Path) -> None:
    ws = copy_of(linked, tmp_path)
    unknown = run_cli("-w", ws, "purge", "--partner", "nobody", "--yes")
    assert unknown.returncode == 2 and "unknown partner 'nobody'" in unknown.stderr
    declined = run_cli("purge", "--partner", PARTNER, "-w", ws, "--no-export", input_text="n\n")
    assert declined.returncode == 0 and "Nothing was purged" in declined.stdout
    assert partner_batches(ws) and run_cli("-w", ws, "purge", "--verify").returncode == 0
    with Ledger(ws / ".cilink" / "ledger.sqlite") as ledger:
        assert ledger.purges() == [] and all(b.status == "active" for b in ledger.batches(PARTNER))
