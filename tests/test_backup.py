"""`cilink backup` / `cilink restore` (issue 22): a backup taken while a run works waits for it and restores to a
consistent workspace; an altered backup is refused and nothing is written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cilink.ledger import Ledger
from tests.conftest import DemoRun, run_cli
from tests.test_operate import staged_invariants


def test_backup_during_a_run_restores_to_a_consistent_workspace(demo_run: DemoRun, tmp_path: Path) -> None:
    ws, bk = demo_run.ws, demo_run.backup
    assert demo_run.busy.returncode == 4 and "busy" in demo_run.busy.stderr  # --wait 0 while the run works
    assert not (bk.parent / "not-now").exists()
    assert json.loads(demo_run.backup_out)["files"] > 20
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


def test_an_altered_backup_is_refused(demo_run: DemoRun, tmp_path: Path) -> None:
    bk = demo_run.backup
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
