"""Open a release for analysis: polars LazyFrames over its Parquet files (``cilink.open_release``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cilink.errors import WorkspaceError
from cilink.export.sources import file_sha256


@dataclass(frozen=True)
class Release:
    """A release's tables as LazyFrames, plus its manifest and dictionary.

    Unpacks as ``persons, events, spells, panel = cilink.open_release(path)``.
    """

    path: Path
    persons: pl.LazyFrame
    events: pl.LazyFrame
    spells: pl.LazyFrame
    panel: pl.LazyFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    dictionary: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[pl.LazyFrame]:
        return iter((self.persons, self.events, self.spells, self.panel))


def open_release(path: str | Path, *, verify: bool = False) -> Release:
    """Open ``releases/<release_id>/``; ``verify=True`` first checks every file's sha256 against the manifest.

    ``events`` has the hive partition column ``domain``. Example::

        r = cilink.open_release("releases/2026-11-23T120000Z")
        r.persons.filter(pl.col("domains").list.contains("housing")).collect()
    """
    root = Path(path)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise WorkspaceError(f"{root} is not a cilink release (no manifest.json)",
                             hint="pass the path of a directory under releases/")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if verify:
        for rel, meta in manifest.get("files", {}).items():
            f = root / rel
            if not f.is_file() or file_sha256(f) != meta["sha256"]:
                raise WorkspaceError(f"release file {rel} is missing or does not match manifest.json",
                                     hint="the release was altered or copied incompletely; copy it again")
    dictionary_path = root / "dictionary.json"
    dictionary = json.loads(dictionary_path.read_text(encoding="utf-8")) if dictionary_path.is_file() else {}
    return Release(
        path=root,
        persons=pl.scan_parquet(root / "persons.parquet"),
        events=pl.scan_parquet(root / "events" / "**" / "*.parquet", hive_partitioning=True,
                               hive_schema={"domain": pl.String}),
        spells=pl.scan_parquet(root / "spells.parquet"),
        panel=pl.scan_parquet(root / "panel.parquet"),
        manifest=manifest,
        dictionary=dictionary,
    )
