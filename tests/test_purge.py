"""Purge as a crash-safe transaction (issue 22): SIGKILL at its write and commit points, then the next command
completes it; `purge --verify` finds anything left; the crosswalk and later releases hold none of the partner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cilink.ledger import Ledger
from cilink.link.outputs import read_crosswalk
from tests.conftest import DemoRun, run_cli
from tests.test_permissions import assert_private_restricted_zone, assert_release_readable_by

PARTNER = "coc-hmis"
# On the 150-person demo a partner purge has 14 durable writes (1 removing the batch's files, 2-13 the full
# relink, 13 publishing its generation, 14 publishing the release) and 3 ledger commits (1 the intent,
# 2 the relink, 3 done). The default suite crashes once, mid-purge; `-m slow` crashes at every point.
EVERY_POINT = [("write", n) for n in range(1, 15)] + [("commit", n) for n in (1, 2, 3)]
EACH_PHASE = [("write", 1)]  # between the intent and the relink


@pytest.fixture
def linked(demo_run: DemoRun) -> Path:
    """The 150-person demo after one `cilink run` (ingested, linked, released; `[export] group` set)."""
    return demo_run.ws


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


def _crash_then_next_command(linked: Path, tmp_path: Path, kind: str, nth: int) -> Path:
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
        # a cron `run` is the next command (under umask 022): it completes the purge first, then exports
        nxt = run_cli("-w", ws, "run", "--json", umask=0o022)
        assert nxt.returncode == 0, nxt.stderr
    assert_purged(ws, batches)
    return ws


@pytest.mark.parametrize(("kind", "nth"), EACH_PHASE, ids=[f"{k}-{n}" for k, n in EACH_PHASE])
def test_purge_killed_is_completed_by_the_next_command_and_verify_names_what_remains(
        linked: Path, tmp_path: Path, kind: str, nth: int) -> None:
    old_gen = tmp_path / "old-gen"
    shutil.copytree(next((linked / ".cilink" / "link").glob("gen-*")), old_gen)
    ws = _crash_then_next_command(linked, tmp_path, kind, nth)
    # the relink and the release were written by a `cilink run` under umask 022: private / group-readable
    assert_private_restricted_zone(ws)
    assert_release_readable_by(ws, 0o2750)
    assert len(list((ws / "releases").iterdir())) == 2
    # someone restores an old link generation and leaves a staged file behind
    shutil.copytree(old_gen, ws / ".cilink" / "link" / "gen-000000")
    (ws / ".cilink" / "staged" / PARTNER).mkdir(parents=True, exist_ok=True)
    (ws / ".cilink" / "staged" / PARTNER / "left.parquet").write_bytes(b"x")
    verify = run_cli("-w", ws, "purge", "--verify")
    assert verify.returncode == 6, verify.stdout + verify.stderr
    remains = [line for line in verify.stdout.splitlines() if line.startswith("Remains:")]
    assert len(remains) == 3, remains  # the generation's batches, its records, the staged file
    assert any("gen-000000" in r and "holds coc-hmis" in r for r in remains)
    assert any("staged/coc-hmis" in r for r in remains)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "nth"), EVERY_POINT, ids=[f"{k}-{n}" for k, n in EVERY_POINT])
def test_purge_killed_at_every_point_is_completed_by_the_next_command(linked: Path, tmp_path: Path, kind: str,
                                                                      nth: int) -> None:
    _crash_then_next_command(linked, tmp_path, kind, nth)


def test_purge_usage(linked: Path, tmp_path: Path) -> None:
    ws = copy_of(linked, tmp_path)
    unknown = run_cli("-w", ws, "purge", "--partner", "nobody", "--yes")
    assert unknown.returncode == 2 and "unknown partner 'nobody'" in unknown.stderr
    declined = run_cli("purge", "--partner", PARTNER, "-w", ws, "--no-export", input_text="n\n")
    assert declined.returncode == 0 and "Nothing was purged" in declined.stdout
    assert partner_batches(ws) and run_cli("-w", ws, "purge", "--verify").returncode == 0
    with Ledger(ws / ".cilink" / "ledger.sqlite") as ledger:
        assert ledger.purges() == [] and all(b.status == "active" for b in ledger.batches(PARTNER))
