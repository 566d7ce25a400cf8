"""Compute the declared indicators, suppress small cells, and write them to indicators/<name>/.

Every count printed (each indicator's numerator and denominator, per period and breakdown group) is a
cell of ``cilink.disclosure.suppression.Cells``; counts over the same unit are related through the atoms of that
unit (``Cells.atoms``), so a small cell cannot be recovered by subtracting one printed count from another,
whichever indicators they belong to. A rate or median whose counts are withheld is withheld too.

The units are built from a release's tables (``cilink.indicators.units``); ``write_indicators`` builds them
from the full-detail data in the restricted zone (``cilink.export.detail``), since the default
``deidentified`` tier is too coarse. Outputs go to ``indicators/<name>/`` at the workspace root — never into
a release, whose files are immutable and hashed in its manifest: ``indicators.csv`` (formula-safe),
``indicators.parquet`` and ``definitions.json`` (each indicator's population, numerator, period and unit).
The ``aggregate`` tier puts the same table into its releases (``cilink.export.aggregate``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cilink import atomic
from cilink.config import IndicatorSettings
from cilink.disclosure.suppression import Cells, Protection, Published
from cilink.errors import ConfigError
from cilink.export.open import Release
from cilink.indicators.definitions import indicator_definitions
from cilink.indicators.units import UNIT_COLUMNS, UNIT_ID, UNIT_PERIOD, UNITS
from cilink.ingest.quarantine import neutralize_formulas
from cilink.ledger import Ledger
from cilink.workspace import Workspace

#: Progress callback: (step description, steps done, steps in total). The CLI draws it; stages never print.
Progress = Callable[[str, int, int], None]

ALL = "all"
COLUMNS: dict[str, pl.DataType] = {
    "indicator": pl.String(), "title": pl.String(), "statistic": pl.String(), "unit": pl.String(),
    "period": pl.String(), "breakdown": pl.String(), "group": pl.String(), "numerator": pl.Int64(),
    "denominator": pl.Int64(), "value": pl.Float64(), "suppressed": pl.Boolean(),
}


@dataclass
class IndicatorsResult:
    """What `cilink indicators` computed and where it wrote it (aggregates only)."""

    release_id: str
    path: Path | None
    table: pl.DataFrame
    definitions: list[IndicatorSettings]
    suppressed_cells: int
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"release_id": self.release_id, "path": str(self.path) if self.path else None,
                "indicators": len(self.definitions), "rows": self.table.height,
                "suppressed_cells": self.suppressed_cells, "files": self.files,
                "values": self.table.to_dicts()}


@dataclass
class _Cell:
    key: tuple[Any, ...]
    expr: pl.Expr


@dataclass
class _Row:
    definition: IndicatorSettings
    period: str
    breakdown: str
    group: str
    den: tuple[Any, ...]
    num: tuple[Any, ...] | None
    median: float | None = None


def _check_columns(d: IndicatorSettings, columns: list[str]) -> None:
    """Every column an indicator names must exist in its unit: ConfigError naming the key otherwise."""
    named: dict[str, list[str]] = {"population": pl.sql_expr(d.population).meta.root_names()}
    if d.numerator:
        named["numerator"] = pl.sql_expr(d.numerator).meta.root_names()
    for key in ("value", "period"):
        if getattr(d, key):
            named[key] = [getattr(d, key)]
    named["by"] = list(d.by)
    for key, cols in named.items():
        unknown = sorted(set(cols) - set(columns))
        if unknown:
            raise ConfigError(f"indicators[{d.id}].{key} names unknown column(s) {unknown} of unit '{d.unit}'",
                              hint=f"columns of {d.unit}: {', '.join(columns)} (docs/indicators.md)")


def _condition(text: str) -> pl.Expr:
    # SQL's three-valued logic: a condition that is unknown (null) does not count
    return pl.sql_expr(text).fill_null(False).cast(pl.Boolean)


def _plan(d: IndicatorSettings, frame: pl.DataFrame) -> tuple[list[_Cell], list[_Row]]:
    """The cells (key + membership expression) and output rows of one indicator over its unit's frame."""
    assert d.unit is not None
    period_col = d.period or UNIT_PERIOD[d.unit]
    pop = _condition(d.population)
    if d.statistic == "median":
        assert d.value is not None
        pop = pop & pl.col(d.value).is_not_null()
    # periods and groups that occur in the population (a period nobody is in yet is not a row)
    members = frame.filter(pop)
    periods = ([str(v) for v in members.get_column(period_col).drop_nulls().unique().sort().to_list()]
               if period_col else [ALL])
    groups: list[tuple[str, str]] = [(ALL, ALL)]
    for b in d.by:
        groups += [(b, str(v).lower() if isinstance(v, bool) else str(v))
                   for v in members.get_column(b).drop_nulls().unique().sort().to_list()]
    stat = f"median:{d.value}" if d.statistic == "median" else "share"
    cells: list[_Cell] = []
    rows: list[_Row] = []
    for period in periods:
        in_period = pl.col(period_col).cast(pl.String) == period if period_col else pl.lit(True)
        for breakdown, group in groups:
            in_group = (pl.lit(True) if breakdown == ALL else
                        pl.col(breakdown).cast(pl.String).str.to_lowercase() == group.lower())
            where = (period_col, period, breakdown, group)
            den = ("indicator", d.unit, "den", d.population, stat, *where)
            base = in_period.fill_null(False) & in_group.fill_null(False) & pop
            cells.append(_Cell(den, base))
            num = None
            if d.statistic == "share":
                assert d.numerator is not None
                num = ("indicator", d.unit, "num", d.population, d.numerator, *where)
                cells.append(_Cell(num, base & _condition(d.numerator)))
            rows.append(_Row(d, period, breakdown, group, den, num))
    return cells, rows


def _medians(d: IndicatorSettings, frame: pl.DataFrame, rows: list[_Row]) -> None:
    assert d.value is not None
    for r in rows:
        period_col = d.period or UNIT_PERIOD[d.unit or ""]
        cond = _condition(d.population) & pl.col(d.value).is_not_null()
        if period_col:
            cond = cond & (pl.col(period_col).cast(pl.String) == r.period)
        if r.breakdown != ALL:
            cond = cond & (pl.col(r.breakdown).cast(pl.String).str.to_lowercase() == r.group.lower())
        r.median = frame.filter(cond.fill_null(False)).get_column(d.value).median()  # type: ignore[assignment]


#: The unit space of counts of persons, shared with the report's person tables (``cilink.report.sections``).
PERSONS_SPACE = "persons"


def register_indicators(release: Release, definitions: list[IndicatorSettings], cells: Cells,
                        progress: Progress | None = None) -> list[_Row]:
    """Register every count the indicators print in ``cells``, with their units; returns the rows to print.

    Counts of one unit are related through its units (``Cells.units``, space ``unit:<unit>``); a count in
    which no person has two units (a school year, a cohort, an exit year in which nobody exited twice) is
    a count of persons and joins the persons space as well, where the report's person counts are.
    """
    units = sorted({d.unit for d in definitions if d.unit})
    rows: list[_Row] = []
    total = len(units) + 1
    for step, unit in enumerate(units):
        if progress:
            progress(f"indicators: {unit}", step, total)
        frame = UNITS[unit](release).collect()
        unit_cells: dict[tuple[Any, ...], pl.Expr] = {}
        for d in (d for d in definitions if d.unit == unit):
            _check_columns(d, [c for c in frame.columns if not c.startswith("_")])
            planned, drows = _plan(d, frame)
            for c in planned:
                unit_cells.setdefault(c.key, c.expr)
            if d.statistic == "median":
                _medians(d, frame, drows)
            rows += drows
        keys = list(unit_cells)
        membership = frame.select([e.fill_null(False).alias(f"c{i}") for i, e in enumerate(unit_cells.values())])
        for key, n in zip(keys, membership.sum().row(0), strict=True):
            cells.add(key, int(n or 0))
        if not keys:
            continue
        per_person = (membership.with_columns(frame.get_column("person_key")).group_by("person_key")
                      .agg(pl.all().cast(pl.Int64).sum()))
        once = [i for i, m in enumerate(per_person.drop("person_key").max().row(0)) if (m or 0) <= 1]
        if len(once) < len(keys):
            cells.units(f"unit:{unit}", keys, frame.get_column(UNIT_ID), membership)
        if once:
            cells.units(PERSONS_SPACE, [keys[i] for i in once], per_person.get_column("person_key"),
                        per_person.select([pl.col(f"c{i}") > 0 for i in once]))
    if progress:
        progress("indicators: small-cell suppression", len(units), total)
    return rows


def indicator_table(rows: list[_Row], protection: Protection, min_cell: int) -> pl.DataFrame:
    """The indicator rows as printed: withheld counts (and the rates and medians resting on them) are null."""
    out = []
    for r in rows:
        den = protection.shown(r.den)
        num = protection.shown(r.num) if r.num else None
        if r.definition.statistic == "share":
            value = round(100.0 * num / den, 1) if num is not None and den else None
            suppressed = den is None or num is None
        else:
            value = r.median if den is not None and den >= min_cell else None
            suppressed = den is None
        out.append({"indicator": r.definition.id, "title": r.definition.title or r.definition.id,
                    "statistic": r.definition.statistic, "unit": r.definition.unit, "period": r.period,
                    "breakdown": r.breakdown, "group": r.group, "numerator": num, "denominator": den,
                    "value": value, "suppressed": suppressed})
    return pl.DataFrame(out, schema=COLUMNS)


def compute_indicators(release: Release, definitions: list[IndicatorSettings], min_cell: int,
                       progress: Progress | None = None, *,
                       earlier: Published | None = None) -> tuple[pl.DataFrame, Protection]:
    """The indicator table of a release (suppressed) and the protection that decided what was withheld.

    ``earlier``: what the previous aggregate release published (``cilink.report.history.latest``): its
    printed counts are taken as known, so nothing here can be subtracted from them.
    Example: ``compute_indicators(open_release(path), indicator_definitions(cfg), 11)[0]``
    """
    cells = Cells(min_cell=min_cell)
    if earlier is not None:
        cells.earlier(earlier)
    rows = register_indicators(release, definitions, cells, progress)
    protection = cells.protect()
    return indicator_table(rows, protection, min_cell), protection


def _output_name(ws: Workspace, release_id: str | None) -> str:
    """The folder name under indicators/: the release the indicators accompany (``--release``, which must
    exist; default: the latest release) or, before any release, the UTC time."""
    from cilink.releases import find_release

    ref = find_release(ws, release_id, required=True)
    return ref.release_id if ref is not None else dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")


def definitions_document(definitions: list[IndicatorSettings], release_id: str, min_cell: int) -> dict[str, Any]:
    """definitions.json: what each indicator counts (its unit, population, numerator, period, breakdowns)."""
    return {
        "release_id": release_id, "min_cell": min_cell,
        "computed_from": "the linked data of the active batches, at full detail, inside the restricted zone",
        "suppression": f"counts of 1 to {min_cell - 1} are withheld, and further counts where a withheld one "
                       "could otherwise be worked out from the printed ones (complementary suppression), "
                       "also together with the counts the latest aggregate release printed",
        "indicators": [{**d.model_dump(exclude={"enabled"}),
                        "period": d.period or UNIT_PERIOD[d.unit or ""] or ALL,
                        "denominator": "units of the population" + (
                            f" with a {d.value}" if d.statistic == "median" else "")} for d in definitions],
        "units": UNIT_COLUMNS,
    }


def write_indicators(ws: Workspace, release_id: str | None = None,
                     progress: Progress | None = None) -> IndicatorsResult:
    """Compute the workspace's indicators into indicators/<name>/ (``release_id``: the release they go with).

    The counts come from the full-detail data in the restricted zone (``cilink.export.detail``), not from a
    release: the default ``deidentified`` tier is too coarse for them. What the latest aggregate release
    printed is taken as known (``cilink.report.history``).
    Example: ``write_indicators(Workspace.open("ws")).table``
    """
    from cilink.export.detail import detailed_release
    from cilink.report import history

    definitions = indicator_definitions(ws.config)
    min_cell = ws.config.export.min_cell
    rid = _output_name(ws, release_id)
    earlier = history.latest(ws)
    with detailed_release(ws) as detail:
        table, protection = compute_indicators(detail, definitions, min_cell, progress, earlier=earlier)
    out = ws.root / "indicators" / rid
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_parquet(out / "indicators.parquet", table)
    atomic.write_text(out / "indicators.csv", neutralize_formulas(table).write_csv())
    atomic.write_text(out / "definitions.json",
                      json.dumps(definitions_document(definitions, rid, min_cell), indent=2) + "\n")
    files = ["indicators.csv", "indicators.parquet", "definitions.json"]
    with Ledger(ws.ledger_path) as ledger:
        ledger.audit("indicators", "indicators", "ok",
                     inputs={"release_id": rid, "checked_against": earlier.release_id if earlier else None},
                     details={"indicators": len(definitions), "rows": table.height,
                              "suppressed_cells": len(protection.suppressed)})
    return IndicatorsResult(release_id=rid, path=out, table=table, definitions=definitions,
                            suppressed_cells=len(protection.suppressed), files=files)
