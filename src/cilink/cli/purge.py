"""`cilink purge`: remove a partner's data or data past retention, then relink."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from cilink.cli import output


def purge(
    partner: Annotated[str | None, typer.Option("--partner", help="Remove everything from this partner")] = None,
    before: Annotated[
        dt.datetime | None, typer.Option("--before", formats=["%Y-%m-%d"], help="Remove batches ingested before DATE")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Purge staged rows, quarantine, kept exports and crosswalk entries; relink; record it in the audit log."""
    from cilink.operate.purge import purge as do_purge

    ws = output.open_workspace()
    scope = f"partner {partner}" if partner else f"batches ingested before {before:%Y-%m-%d}" if before else "?"
    if not yes and not typer.confirm(f"Permanently remove the data of {scope}?", default=False):
        raise typer.Exit(1)
    result = do_purge(ws, partner=partner, before=before.date() if before else None)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Purged {scope}: {result.batches} batch(es), {result.staged_rows} staged row(s), "
                f"{result.files_removed} file(s), {result.review_decisions} review decision(s); relinked.")
    for note in result.notes:
        output.line(f"Note: {note}")


def register(app: typer.Typer) -> None:
    app.command()(purge)
