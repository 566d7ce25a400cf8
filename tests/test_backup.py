"""`cilink backup` / `cilink restore` (issue 22): a backup taken while a run works waits for it and restores to a
consistent workspace; an altered backup is refused and nothing is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cilink.demo import generate_demo
from cilink.ledger import Ledger
from cilink.workspace import ensure_layout
from tests.conftest import TEST_SECRET, run_cli
from tests.test_operate import staged_invariants


@pytest.fixture(scope="module")
def backed_up_during_a_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A fresh demo; `cilink run` started; `cilink backup` started while the run holds the lock."""
    base = tmp_path_factory.mktemp("backup")
    ws = base / "ws"
    generate_demo(ws, people=150, seed=7)
    ensure_layout(ws)
    env = {**os.environ, "CILINK_SECRET": TEST_SECRET, "NO_COLOR": "1"}
    run = subprocess.Popen([sys.executable, "-m", "cilink", "-w", str(ws), "run"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder = ws / ".cilink" / "lock.holder"
    deadline = time.monotonic() + 120
    while not (holder.exists() and '"run"' in holder.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    busy = run_cli("-w", ws, "backup", base / "not-now", "--wait", "0")
    bk = run_cli("-w", ws, "backup", base / "bk", "--json")
    assert run.wait(300) == 0, run.stderr.read()  # type: ignore[union-attr]
    assert busy.returncode == 4 and "busy" in busy.stderr and not (base / "not-now").exists()
    assert bk.returncode == 0, bk.stderr
    return ws, base / "bk", bk.stdout


def test_backup_during_a_run_restores_to_a_consistent_workspace(backed_up_during_a_run: tuple[Path, Path, str],
                                                                tmp_path: Path) -> None:
    ws, bk, out = backed_up_during_a_run
    assert json.loads(out)["files"] > 20
    assert oct(bk.stat().st_mode & 0o777) == "0o700", "a backup holds identifiable data"
    restored = tmp_path / "restored"
    r = run_cli("restore", bk, restored)
    assert r.returncode == 0, r.stderr
    staged_invariants(restored, linked=True)  # ledger ⇔ staged files, crosswalk covers every record
    with Ledger(restored / ".cilink" / "ledger.sqlite") as copy, Ledger(ws / ".cilink" / "ledger.sqlite") as live:
        assert copy.last_run("run")["exit_code"] == 0, "the backup waited for the run to finish"
        assert [b.batch_id for b in copy.batches()] == [b.batch_id for b in live.batches()]
        assert copy.last_release()["release_id"] == live.last_release()["release_id"]
        assert [e["action"] for e in copy.audit_entries()][-1] == "restore"
    assert sorted(p.name for p in (restored / "releases").iterdir()) == sorted(
        p.name for p in (ws / "releases").iterdir())
    status = run_cli("-w", restored, "status", "--json")
    assert json.loads(status.stdout)["last_release"]["current"] is True
    again = run_cli("-w", restored, "run", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["release_id"] is None, "nothing changed: no new release"


def test_an_altered_backup_is_refused(backed_up_during_a_run: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, bk, _ = backed_up_during_a_run
    altered = tmp_path / "altered"
    subprocess.run(["cp", "-a", str(bk), str(altered)], check=True)
    staged = next((altered / ".cilink" / "staged").rglob("*.parquet"))
    staged.write_bytes(staged.read_bytes()[:-1])
    r = run_cli("restore", altered, tmp_path / "out")
    assert r.returncode == 3 and "missing or altered" in r.stderr and staged.name in r.stderr
    assert not (tmp_path / "out").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    assert run_cli("restore", bk, existing).returncode == 2 and (existing / "keep.txt").exists()
