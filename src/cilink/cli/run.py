"""`cilink run`: the cron entry point (inbox → ingest → link → export)."""

from __future__ import annotations

from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag


def run(
    json_out: JsonFlag = False,
    no_export: Annotated[bool, typer.Option("--no-export", help="Skip the export even if [export] on_run")] = False,
) -> None:
    """Ingest every new file in inbox/<partner>/, link incrementally, then export (if [export] on_run).

    Exit code is the worst outcome: 0 all good, 3 some input rejected, 4 workspace busy, 5 export refused.
    """
    from cilink.operate.inbox import run_inbox

    result = run_inbox(output.open_workspace(), export=False if no_export else None)
    if json_out:
        output.emit_json(result.to_dict())
    else:
        output.table(
            f"Run {result.run_id}",
            ["partner", "file", "outcome", "rows in", "accepted", "quarantined", "reason"],
            [[f.partner, f.file, f.outcome, f.rows_in, f.accepted, f.quarantined, f.reason] for f in result.files],
        )
        if not result.files:
            output.line("No new files in the inbox.")
        output.line(f"Linked: {'yes' if result.linked else 'no'}; release: {result.release_id or 'none'}")
        for e in result.errors:
            output.line(f"Problem: {e}")
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command()(run)
