"""Permissions by design (issue 22): the restricted zone 0700/0600 and releases readable by `[export] group`,
under umask 000 and 022; `init` writes a .gitignore that keeps identifiable data out of git."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from cilink.workspace import init_workspace
from tests.conftest import DemoRun


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def assert_private_restricted_zone(ws: Path) -> None:
    restricted = [ws / ".cilink", *(ws / ".cilink").rglob("*")]
    assert len(restricted) > 20 and (ws / ".cilink" / "ledger.sqlite") in restricted
    loose = [f"{p.relative_to(ws)} {_mode(p):04o}" for p in restricted
             if not p.is_symlink() and _mode(p) & 0o077]
    assert loose == [], "restricted files readable by group or others"
    assert {_mode(p) for p in restricted if p.is_dir() and not p.is_symlink()} == {0o700}
    assert {_mode(p) for p in restricted if p.is_file()} == {0o600}


def assert_release_readable_by(ws: Path, dir_mode: int) -> None:
    releases = ws / "releases"
    tree = [p for release in releases.iterdir() for p in (release, *release.rglob("*"))]
    assert tree
    assert {_mode(p) for p in tree if p.is_dir()} == {dir_mode}
    assert {_mode(p) for p in tree if p.is_file()} == {0o640}
    assert _mode(releases) == dir_mode
    assert {p.stat().st_gid for p in tree} == {os.getgid()}


def test_umask_000_restricted_zone_private_release_readable_by_export_group(demo_run: DemoRun) -> None:
    assert_private_restricted_zone(demo_run.ws)  # ingested, linked and released under umask 000
    assert_release_readable_by(demo_run.ws, 0o2750)
    assert_private_restricted_zone(demo_run.backup)  # the backup holds the same identifiable data
    assert _mode(demo_run.backup) == 0o700


# umask 022: tests/test_purge.py (a full relink and a release by `cilink run` under umask 022)


def test_init_writes_a_gitignore_for_the_restricted_zone_and_inbox(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    ws = init_workspace(repo / "ws").root
    (ws / "inbox" / "p").mkdir()
    (ws / "inbox" / "p" / "export.csv").write_text("id,name\n1,Ann\n")
    (ws / ".cilink" / "staged" / "x.parquet").write_bytes(b"x")
    listed = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout.split("\n")
    paths = sorted(line[3:] for line in listed if line)
    assert paths == ["ws/.gitignore", "ws/cilink.toml"]
