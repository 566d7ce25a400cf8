"""`cilink demo DIR`: synthetic partner data through the whole pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output


def demo(
    directory: Annotated[Path, typer.Argument(help="New directory for the demo workspace")],
    people: Annotated[int, typer.Option("--people", help="Size of the synthetic population")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives identical files")] = 1,
    generate_only: Annotated[bool, typer.Option("--generate-only", help="Write the exports, do not run")] = False,
    encoded: Annotated[list[str] | None, typer.Option(
        "--encoded", metavar="PARTNER",
        help="This partner sends `cilink encode` output instead (repeatable; needs CILINK_ENCODING_SECRET)")] = None,
) -> None:
    """Create a synthetic workspace (school CSV, workforce XLSX, HMIS zip) and run ingest → link → export."""
    from cilink.operate.demo import run_demo

    result = run_demo(directory, people=people, seed=seed, pipeline=not generate_only, encoded=tuple(encoded or ()))
    output.line(f"Demo workspace: {result.workspace} ({people} synthetic people, seed {seed})")
    run = result.run
    if run is not None:
        output.table(
            "Ingest", ["partner", "file", "rows in", "accepted", "quarantined"],
            [[f.partner, f.file, f.rows_in, f.accepted, f.quarantined] for f in run.files],
        )
        if run.link_summary:
            output.line("Linked: " + ", ".join(f"{k} {v}" for k, v in run.link_summary.items()
                                                if isinstance(v, int | float)))
        if run.release_id:
            output.line(f"Release: {result.workspace / 'releases' / run.release_id}")
        for e in run.errors:
            output.line(f"Problem: {e}")
    output.line(f"Ground truth (restricted): {result.truth}")
    output.line(f"Next: cilink -w {directory} evaluate {result.truth}    # linkage accuracy")
    raise typer.Exit(run.exit_code if run else 0)


def register(app: typer.Typer) -> None:
    app.command()(demo)
