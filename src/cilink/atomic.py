"""Atomic file and directory writes: temp file + fsync + rename, so a crash never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from cilink.faults import crash_point


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success fsync it and rename it over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        crash_point("write")
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes) -> None:
    """Atomically write bytes to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    """Atomically write UTF-8 text to ``target``."""
    write_bytes(target, text.encode("utf-8"))


def write_parquet(target: Path, frame: pl.DataFrame | pl.LazyFrame) -> None:
    """Atomically write a frame as Parquet (zstd)."""
    with atomic_path(target) as tmp:
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(tmp, compression="zstd")
        else:
            frame.write_parquet(tmp, compression="zstd")


@contextlib.contextmanager
def atomic_dir(target: Path, tmp_parent: Path | None = None) -> Iterator[Path]:
    """Yield a temp directory beside ``target``; on success rename it to ``target`` (which must not exist).

    ``tmp_parent`` puts the temp directory elsewhere on the same filesystem (export stages a release in the
    restricted zone, so nothing appears under releases/ before the privacy gate has passed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=tmp_parent or target.parent))
    try:
        yield tmp
        for root, _dirs, files in os.walk(tmp):
            for name in files:
                with open(Path(root) / name, "rb") as fh:
                    os.fsync(fh.fileno())
        crash_point("write")
        os.rename(tmp, target)
        fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sweep_temp(root: Path, predicate: Callable[[Path], bool] | None = None) -> int:
    """Remove leftover ``.*.tmp`` files/dirs a crashed process left under ``root``; return how many."""
    removed = 0
    for path in root.rglob(".*.tmp"):
        if predicate is not None and not predicate(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed
