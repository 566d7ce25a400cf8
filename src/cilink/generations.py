"""Link outputs are published as whole generations: a crash mid-link leaves the previous generation in force."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from cilink.atomic import fsync_dir
from cilink.faults import crash_point
from cilink.workspace import Workspace

KEEP = 3


def _generations(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("gen-*") if p.is_dir() and not p.name.endswith(".tmp"))


def current_generation(ws: Workspace) -> Path | None:
    link = ws.link_root / "current"
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


@contextlib.contextmanager
def new_link_generation(ws: Workspace) -> Iterator[Workspace]:
    """Yield a workspace whose ``link_dir`` is a fresh generation seeded from the current one.

    Files are hard-linked from the current generation (cheap; writers replace files rather than edit them),
    so a stage can read its previous outputs and overwrite what it recomputes. On success the ``current``
    symlink is swapped atomically; on any failure the half-written generation is removed.
    """
    root = ws.link_root
    root.mkdir(parents=True, exist_ok=True)
    gens = _generations(root)
    number = int(gens[-1].name.split("-")[1]) + 1 if gens else 1
    new = root / f"gen-{number:06d}"
    work = root / f".gen-{number:06d}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    cur = current_generation(ws)
    if cur is not None:
        for f in cur.iterdir():
            if f.is_file():
                os.link(f, work / f.name)
    try:
        yield dataclasses.replace(ws, link_generation=work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    crash_point("write")
    os.rename(work, new)
    tmp_link = root / ".current.tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(new.name)
    os.replace(tmp_link, root / "current")
    fsync_dir(root)
    prune_generations(ws)


def prune_generations(ws: Workspace, keep: int = KEEP) -> None:
    """Delete all but the newest ``keep`` generations (purge keeps only the current one)."""
    for old in _generations(ws.link_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
