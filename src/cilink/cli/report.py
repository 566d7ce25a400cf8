"""`cilink report`: one self-contained HTML report of aggregates, safe to send to partners."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag
from cilink.cli.progress import progress_bar


def report(
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: <workspace>/report.html)")]
    = None,
    json_out: JsonFlag = False,
) -> None:
    """Write the linkage report: a summary (records in, people linked, partner overlap), what changed, the
    shared measures and linked vs. unlinked; ingest, data quality, model and review in an appendix —
    aggregates only, counts of people below [export] min_cell suppressed. Works offline (inline SVG charts).
    Example: cilink report --out report.html
    """
    from cilink.report.document import build_report

    with progress_bar(not json_out) as progress:
        result = build_report(output.open_workspace(), out, progress)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Report written to {result.path} ({result.bytes // 1024} KiB, {len(result.charts)} charts, "
                f"{result.suppressed_cells} cell(s) suppressed)")


def register(app: typer.Typer) -> None:
    app.command()(report)
