"""Shared test helpers: run the real `cilink` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_SECRET = "test-secret-not-for-production"


def run_cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300,
    input_text: str | None = None, umask: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m cilink ARGS` as a user would; returns the completed process (never raises)."""
    full_env = {**os.environ, "CILINK_SECRET": TEST_SECRET, "NO_COLOR": "1", "COLUMNS": "200"}
    full_env.pop("CILINK_WORKSPACE", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cilink", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input_text,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CILINK_SECRET", TEST_SECRET)


@pytest.fixture(scope="module")
def module_secret() -> Iterator[None]:
    """The test secret for a module's shared (module-scoped) workspaces: ``_secret`` is per test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", TEST_SECRET)
        yield


def pytest_configure(config: pytest.Config) -> None:
    # pyproject's markers list is not ours to edit here; registered so `-m spark` / `-m 'not spark'` work
    config.addinivalue_line("markers", "spark: needs pyspark (the spark extra) and Java 17+; skipped without them")


@pytest.fixture(scope="session")
def demo_2000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's demo (2,000 people, seed 1), ingested and linked, no release: shared by the workbench and
    report tests — copy it before changing it."""
    from cilink.operate.demo import run_demo
    from cilink.operate.inbox import run_inbox
    from cilink.workspace import Workspace

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", TEST_SECRET)
        root = tmp_path_factory.mktemp("demo2000") / "ws"
        run_demo(root, people=2000, seed=1, pipeline=False)
        result = run_inbox(Workspace.open(root), export=False)
        assert result.exit_code == 0, result.errors
    return root


@dataclass(frozen=True)
class DemoRun:
    """The 150-person demo after one `cilink run` under umask 000 with ``[export] group`` set, and a `cilink
    backup` started while that run held the lock (``busy``: one with ``--wait 0``, refused)."""

    ws: Path
    backup: Path
    backup_out: str
    busy: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One expensive run shared by the backup, permissions and purge tests. Copy ``ws``
    (``shutil.copytree(..., symlinks=True)``) before changing anything."""
    import grp
    import time

    from cilink.demo import generate_demo
    from cilink.operate.inbox import mark_complete
    from cilink.workspace import Workspace, ensure_layout

    base = tmp_path_factory.mktemp("demo-run")
    ws = base / "ws"
    old = os.umask(0o000)
    try:
        generate_demo(ws, people=150, seed=7)
        ensure_layout(ws)
        mark_complete(Workspace.open(ws))  # the partners' uploads are complete: `cilink run` takes them at once
    finally:
        os.umask(old)
    group = grp.getgrgid(os.getgid()).gr_name  # the only group a test can chown to: our own
    (ws / "cilink.toml").write_text((ws / "cilink.toml").read_text() + f'\n[export]\ngroup = "{group}"\n')
    env = {**os.environ, "CILINK_SECRET": TEST_SECRET, "NO_COLOR": "1"}
    run = subprocess.Popen([sys.executable, "-m", "cilink", "-w", str(ws), "run"], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: os.umask(0o000))
    holder = ws / ".cilink" / "lock.holder"
    deadline = time.monotonic() + 120
    while not (holder.exists() and '"run"' in holder.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    busy = run_cli("-w", ws, "backup", base / "not-now", "--wait", "0")
    bk = run_cli("-w", ws, "backup", base / "bk", "--json")
    assert run.wait(300) == 0, run.stderr.read()  # type: ignore[union-attr]
    assert bk.returncode == 0, bk.stderr
    return DemoRun(ws=ws, backup=base / "bk", backup_out=bk.stdout, busy=busy)
