"""Identifiable CSV files that leave the restricted zone on purpose (review queue, crosswalk).

They are written owner-only (mode 0600), atomically, never into ``releases/`` (the de-identified zone), and
formula-safe: a cell that a spreadsheet would run as a formula (``= + - @``, tab, carriage return) gets a
leading apostrophe, which spreadsheets show as text and ``unescape`` removes on the way back in.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from cilink import atomic
from cilink.errors import UsageError
from cilink.workspace import Workspace

_FORMULA_START = r"^[=+\-@\t\r]"


def formula_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text, with formula-like cells prefixed by an apostrophe."""
    return frame.select(
        pl.when(pl.col(c).cast(pl.String).str.contains(_FORMULA_START))
        .then(pl.lit("'") + pl.col(c).cast(pl.String))
        .otherwise(pl.col(c).cast(pl.String))
        .alias(c)
        for c in frame.columns
    )


def unescape(values: pl.Expr) -> pl.Expr:
    """Undo ``formula_safe`` on a text column read back from such a CSV."""
    return pl.when(values.str.contains(r"^'[=+\-@\t\r]")).then(values.str.slice(1)).otherwise(values)


def check_target(ws: Workspace, path: Path) -> Path:
    """Refuse to write identifiable data into the workspace's de-identified releases directory."""
    target = path.expanduser().resolve()
    releases = ws.releases_dir.resolve()
    if target == releases or releases in target.parents:
        raise UsageError(
            f"{path} is inside {ws.releases_dir}, which holds de-identified releases only",
            hint="write identifiable files elsewhere, e.g. inside .cilink/ or a restricted share",
        )
    if target.is_dir():
        raise UsageError(f"{path} is a directory", hint="give a file name, e.g. review.csv")
    return target


def write_restricted_csv(ws: Workspace, path: Path, frame: pl.DataFrame) -> Path:
    """Write ``frame`` as a formula-safe UTF-8 CSV readable only by its owner; returns the resolved path."""
    target = check_target(ws, path)
    with atomic.atomic_path(target) as tmp:
        formula_safe(frame).write_csv(tmp)
        os.chmod(tmp, 0o600)
    return target
