"""One benchmark result per row, and the results CSV (``benchmarks/results/*.csv``) they are kept in."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement

CILINK = "cilink"


def human(n: int) -> str:
    """10000 → 10k, 1000000 → 1M."""
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return f"{n:,}"


@dataclass
class Row:
    """A tool doing one task on one dataset: how long, how much memory, how accurate.

    ``section`` is febrl4, scale, incremental or spark; ``size`` is the synthetic population (people) or, for
    FEBRL4, the records; ``records`` the linkable records the tools saw; ``status`` ok, timeout, oom or
    error, with the reason in ``note``. ``wall_s`` covers the whole child process; ``work_s`` is the tool's
    own timing of its work where it reports one.
    """

    section: str
    dataset: str
    size: int
    records: int | None
    tool: str
    task: str
    status: str
    wall_s: float | None = None
    work_s: float | None = None
    peak_mb: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def measured(cls, m: Measurement, **kw: Any) -> Row:
        """A row from a measurement: its time and peak memory, or its failure and the limit it hit."""
        note = kw.pop("note", "")
        if not m.ok:
            note = "; ".join(x for x in (m.describe(), note) if x)
        return cls(status=m.status, wall_s=m.wall_s if m.ok else None, peak_mb=m.peak_mb if m.ok else None,
                   note=note, **kw)


def write_csv(rows: list[Row], path: Path, row_type: type[Row] = Row) -> None:
    """Write ``rows`` with one column per field of ``row_type`` (a ``Row`` or a subclass with more fields)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(row_type)])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})


def read_csv(path: Path, row_type: type[Row] = Row) -> list[Row]:
    """The rows ``write_csv`` wrote, as ``row_type``."""
    types = {fl.name: fl.type for fl in fields(row_type)}
    rows = []
    with path.open(newline="") as f:
        for raw in csv.DictReader(f):
            values: dict[str, Any] = {}
            for k, v in raw.items():
                t = str(types[k])
                if v == "" and "None" in t:
                    values[k] = None
                elif t.startswith("int"):
                    values[k] = int(v)
                elif t.startswith("float"):
                    values[k] = float(v)
                else:
                    values[k] = v
            rows.append(row_type(**values))
    return rows


def key(row: Row) -> tuple[str, str, str, str]:
    """What a row measures: a re-measurement of the same key replaces it."""
    return (row.section, row.dataset, row.tool, row.task)


def merge(old: list[Row], new: list[Row]) -> list[Row]:
    """``old`` with every row that ``new`` re-measured replaced, in place; ``new``'s other rows appended."""
    fresh = {key(r): r for r in new}
    out = [fresh.pop(key(r), r) for r in old]
    return out + [r for r in new if key(r) in fresh]


def load_meta(path: Path) -> dict[str, Any]:
    """The run record kept beside a results CSV: limits, machine, versions and the runs that made it."""
    return json.loads(path.read_text()) if path.is_file() else {"runs": []}


def save_meta(path: Path, meta: dict[str, Any]) -> None:
    path.write_text(json.dumps(meta, indent=2) + "\n")
