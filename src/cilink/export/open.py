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

#: Tables of a deidentified release (cilink.export.measures), by attribute name on ``Release``.
DEIDENTIFIED_TABLES = ("persons", "school_years", "workforce_spells", "housing_spells")


@dataclass(frozen=True)
class Release:
    """A release's tables as LazyFrames, plus its manifest and dictionary.

    Research tier: ``persons, events, spells, panel``. Deidentified tier: ``persons, school_years,
    workforce_spells, housing_spells`` (the others are None). Unpacks into its tier's four tables:
    ``persons, events, spells, panel = cilink.open_release(path)``.
    """

    path: Path
    persons: pl.LazyFrame
    events: pl.LazyFrame | None = None
    spells: pl.LazyFrame | None = None
    panel: pl.LazyFrame | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    dictionary: dict[str, Any] = field(default_factory=dict)
    school_years: pl.LazyFrame | None = None
    workforce_spells: pl.LazyFrame | None = None
    housing_spells: pl.LazyFrame | None = None

    @property
    def tier(self) -> str:
        """aggregate | deidentified | research (a manifest without a tier predates tiers: research)."""
        return str(self.manifest.get("tier", "research"))

    def __iter__(self) -> Iterator[pl.LazyFrame]:
        names = DEIDENTIFIED_TABLES if self.tier == "deidentified" else ("persons", "events", "spells", "panel")
        return iter(getattr(self, n) for n in names)


def open_release(path: str | Path, *, verify: bool = False) -> Release:
    """Open ``releases/<release_id>/`` of a record-level tier; ``verify=True`` first checks every file's
    sha256 against the manifest.

    Research tier: ``events`` has the hive partition column ``domain``. Example::

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
    tier = manifest.get("tier", "research")
    if tier == "aggregate":
        raise WorkspaceError(f"{root} is an aggregate release: it holds tables, not record-level data",
                             hint="read its indicators.csv / indicators.parquet directly")
    if tier == "deidentified":
        return Release(path=root, manifest=manifest, dictionary=dictionary,
                       **{n: pl.scan_parquet(root / f"{n}.parquet") for n in DEIDENTIFIED_TABLES})
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
