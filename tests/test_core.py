"""Core pieces: ledger (append-only audit), writer lock, atomic writes, secrets."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import polars as pl
import pytest

from cilink import atomic
from cilink.config import ProjectSettings, read_secret
from cilink.errors import ConfigError, WorkspaceBusy
from cilink.ledger import Ledger
from cilink.locking import writer_lock


def test_audit_log_is_append_only(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.audit("ingest", "ingest", "ok", inputs={"sha256": "ab"})
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            ledger.conn.execute("UPDATE audit SET outcome = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            ledger.conn.execute("DELETE FROM audit")
        assert [e["outcome"] for e in ledger.audit_entries()] == ["ok"]


def test_id_history_methods_read_what_a_run_appended(tmp_path: Path) -> None:
    """The ledger's ID-history methods (used by link): events appended per run, issue order, ids ever issued
    — in chunks, so more ids than one statement may bind still work."""
    with Ledger(tmp_path / "l.sqlite") as ledger:
        assert ledger.id_history_seq() == 0 and not ledger.has_id_events("r1")
        many = [f"P{i:05d}" for i in range(1200)]
        ledger.add_id_events("r1", "2026-01-01T00:00:00Z",
                             [("new", "PA", None), ("new", "PB", None), ("split", "PA", "PC"),
                              *(("new", p, None) for p in many)])
        assert ledger.has_id_events("r1") and not ledger.has_id_events("r2")
        assert ledger.id_history_seq() == 3 + len(many)
        assert ledger.id_issue_order(["PA", "PB", "PC", "PZ"]) == {"PA": 1, "PB": 2, "PC": 3}
        assert ledger.ids_in_history(["PA", "PC", "PZ"]) == {"PA", "PC"}
        assert ledger.ids_in_history([*many, "PZ"]) == set(many)
        assert len(ledger.id_issue_order(many)) == len(many)


def test_bulk_id_events_rebuild_the_indexes_and_a_failed_append_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large append drops and rebuilds the ID history's indexes in its transaction: afterwards they exist
    and answer; an append that fails half-way leaves rows and indexes as they were."""
    import cilink.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "BULK_ID_EVENTS", 10)
    indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'id_history' ORDER BY name"
    with Ledger(tmp_path / "l.sqlite") as ledger:
        expected = sorted(name for name, _ in ledger_module.ID_HISTORY_INDEXES)
        ledger.add_id_events("r1", "2026-01-01T00:00:00Z", [("new", f"P{i:03d}", None) for i in range(50)])
        assert [r[0] for r in ledger.conn.execute(indexes)] == expected
        assert ledger.id_issue_order(["P007", "P049"]) == {"P007": 8, "P049": 50}
        plan = " ".join(str(r[-1]) for r in ledger.conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM id_history WHERE person_id = 'P007'"))
        assert "id_history_person" in plan
        bad = [("new", f"Q{i:03d}", None) for i in range(60)] + [("vanish", "Q999", None)]
        with pytest.raises(sqlite3.IntegrityError):
            ledger.add_id_events("r2", "2026-01-02T00:00:00Z", bad)
        assert [r[0] for r in ledger.conn.execute(indexes)] == expected
        assert ledger.id_history_seq() == 50 and not ledger.has_id_events("r2")


def _hold_lock(path: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event) -> None:
    with writer_lock(Path(path), "holder"):
        ready.set()
        release.wait(10)


def test_second_writer_is_refused_with_holder_info(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(lock), ready, release))
    proc.start()
    try:
        assert ready.wait(20)
        with pytest.raises(WorkspaceBusy) as exc, writer_lock(lock, "second"):
            pass
        assert exc.value.exit_code == 4
        assert f"pid {proc.pid}" in exc.value.message and "holder" in exc.value.message
    finally:
        release.set()
        proc.join(10)


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(lock), ready, release))
    proc.start()
    assert ready.wait(20)
    proc.kill()
    proc.join(10)
    time.sleep(0.1)
    with writer_lock(lock, "after-crash"):
        pass


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.parquet"
    atomic.write_parquet(target, pl.DataFrame({"a": [1]}))
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash")
    assert pl.read_parquet(target)["a"].to_list() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_atomic_dir_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "release"
    with pytest.raises(RuntimeError), atomic.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("a")
        raise RuntimeError("crash")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (target / "a.txt").read_text() == "a"


def test_missing_secret_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CILINK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="CILINK_SECRET"):
        read_secret(ProjectSettings())
    key = tmp_path / "key"
    key.write_text("from-file\n")
    key.chmod(0o600)
    assert read_secret(ProjectSettings(secret_file=key)) == b"from-file"
    monkeypatch.setenv("CILINK_SECRET", "from-env")
    assert read_secret(ProjectSettings(secret_file=key)) == b"from-env"


def test_writer_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with writer_lock(lock, "run"), writer_lock(lock, "ingest"):
        pass
    with writer_lock(lock, "again"):  # fully released afterwards
        pass
