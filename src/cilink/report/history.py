"""What earlier aggregate releases published, kept in the restricted zone so the next cannot be subtracted from it.

Every ``aggregate``-tier release leaves ``.cilink/aggregates/<release_id>/``: ``state.json`` (each count it
registered, its value and whether it was printed, and the relations between them) and one
``members-<n>.parquet`` per unit space (which units — internal ids — each count counted). The next
aggregate release, whatever its audience (aggregates go to partners, funders and the public alike, so they
are one public record), loads the latest one (``latest``) and suppresses until nothing it prints, together
with what was printed before, gives away a small count (``cilink.disclosure.suppression``).

A state becomes final only with its release: ``stage`` writes it under ``aggregates/pending/<release_id>/``
while the release is being staged, and ``commit`` (called by export once the release is published) moves it
into place. A crash in between leaves the pending state; ``latest`` commits it when its release exists
under releases/, and the next ``stage`` removes the pending states of releases that never appeared.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from cilink.atomic import fsync_dir
from cilink.disclosure.suppression import Key, Published
from cilink.workspace import Workspace

STATE = "state.json"
#: release id, audience and when the state was staged (read to find the latest without parsing every state)
META = "meta.json"
FORMAT = 1


def aggregates_dir(ws: Workspace) -> Path:
    """``.cilink/aggregates/``: one directory per published aggregate release."""
    return ws.restricted / "aggregates"


def _pending_dir(ws: Workspace) -> Path:
    return aggregates_dir(ws) / "pending"


def _encode(key: Key) -> Any:
    if isinstance(key, tuple):
        return [_encode(k) for k in key]
    return key


def _decode(value: Any) -> Key:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def _write(target: Path, published: Published, audience: str) -> None:
    """Write the state into a new directory beside ``target`` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        keys = list(published.cells)
        index = {k: i for i, k in enumerate(keys)}
        spaces = []
        for n, (space, (space_keys, frame)) in enumerate(sorted(published.members.items())):
            name = f"members-{n}.parquet"
            frame.write_parquet(tmp / name, compression="zstd")
            spaces.append({"space": space, "file": name, "keys": [_encode(k) for k in space_keys]})
        meta = {"format": FORMAT, "release_id": published.release_id, "audience": audience,
                "staged_ns": time.time_ns()}
        (tmp / META).write_text(json.dumps(meta), encoding="utf-8")
        doc = {
            **meta,
            "cells": [[_encode(k), published.cells[k], k in published.printed] for k in keys],
            "relations": [[[index[k], c] for k, c in rel.items()] for rel in published.relations],
            "spaces": spaces,
        }
        (tmp / STATE).write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
        fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _read(path: Path) -> Published:
    doc = json.loads((path / STATE).read_text(encoding="utf-8"))
    keys = [_decode(k) for k, _, _ in doc["cells"]]
    members = {}
    for sp in doc["spaces"]:
        members[sp["space"]] = ([_decode(k) for k in sp["keys"]], pl.read_parquet(path / sp["file"]))
    return Published(
        release_id=doc["release_id"], cells={k: int(v) for k, (_, v, _) in zip(keys, doc["cells"], strict=True)},
        printed=frozenset(k for k, (_, _, p) in zip(keys, doc["cells"], strict=True) if p),
        relations=[{keys[i]: int(c) for i, c in rel} for rel in doc["relations"]], members=members)


def stage(ws: Workspace, published: Published, audience: str) -> Path:
    """Keep a release's state as pending until ``commit`` (stale pending states of releases that were never
    published are removed first; export holds the writer lock)."""
    pending = _pending_dir(ws)
    if pending.is_dir():
        for old in pending.iterdir():
            if old.is_dir() and not (ws.releases_dir / old.name / "manifest.json").is_file():
                shutil.rmtree(old, ignore_errors=True)
    target = pending / published.release_id
    _write(target, published, audience)
    return target


def commit(ws: Workspace, release_id: str) -> bool:
    """Make a pending state final (after its release was published); False if there was none."""
    source = _pending_dir(ws) / release_id
    target = aggregates_dir(ws) / release_id
    if not source.is_dir():
        return target.is_dir()
    if target.exists():  # committed already (a crash after the rename, or a concurrent latest())
        shutil.rmtree(source, ignore_errors=True)
        return True
    try:
        os.rename(source, target)
    except FileNotFoundError:  # another process committed it meanwhile
        return target.is_dir()
    fsync_dir(target.parent)
    return True


def latest(ws: Workspace) -> Published | None:
    """The state of the most recent published aggregate release (None before the first one)."""
    pending = _pending_dir(ws)
    if pending.is_dir():
        for p in pending.iterdir():
            if p.is_dir() and (ws.releases_dir / p.name / "manifest.json").is_file():
                commit(ws, p.name)
    root = aggregates_dir(ws)
    if not root.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for d in root.iterdir():
        if d.name == "pending" or d.name.startswith(".") or not (d / META).is_file():
            continue
        staged = int(json.loads((d / META).read_text(encoding="utf-8"))["staged_ns"])
        if best is None or staged > best[0]:
            best = (staged, d)
    return _read(best[1]) if best is not None else None
