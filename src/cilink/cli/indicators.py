"""`cilink indicators`: the shared measures, small cells suppressed, as CSV and Parquet."""

from __future__ import annotations

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag, ReleaseOption
from cilink.cli.progress import progress_bar


def indicators(
    release: ReleaseOption
    = None,
    json_out: JsonFlag = False,
) -> None:
    """Compute the default and [[indicators]] measures from the linked data (full detail, in the restricted
    zone) into indicators/<release_id>/ (indicators.csv, indicators.parquet, definitions.json). To publish
    them repeatedly, export an aggregate-tier release instead. Example: cilink indicators --release 2026-q3
    """
    from cilink.indicators.compute import write_indicators

    with progress_bar(not json_out) as progress:
        result = write_indicators(output.open_workspace(), release, progress)
    if json_out:
        output.emit_json(result.to_dict())
        return
    rows = result.table.filter(result.table["breakdown"] == "all")  # breakdowns: --json or the CSV
    output.table(f"Indicators for {result.release_id} (* = suppressed)",
                 ["indicator", "period", "numerator", "denominator", "value"],
                 [[r["indicator"], r["period"], _n(r["numerator"]), _n(r["denominator"]), r["value"]]
                  for r in rows.iter_rows(named=True)])
    output.line(f"Written to {result.path}: {', '.join(result.files)} ({result.suppressed_cells} cell(s) suppressed)")


def _n(v: int | None) -> int | str:
    return "*" if v is None else v


def register(app: typer.Typer) -> None:
    app.command()(indicators)
