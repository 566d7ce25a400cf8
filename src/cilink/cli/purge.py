"""`cilink purge`: remove a partner's data or data past retention, relink and export; `--verify` checks it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag

#: `purge --verify` found data of a purged partner or batch still in the workspace (README "Exit codes")
VERIFY_FAILED = 6


def purge(
    partner: Annotated[str | None, typer.Option("--partner", help="Remove everything from this partner")] = None,
    before: Annotated[
        dt.datetime | None, typer.Option("--before", formats=["%Y-%m-%d"], help="Remove batches ingested before DATE")
    ] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check that nothing of any earlier purge remains "
                                         "(exit 6 if something does)")] = False,
    no_export: Annotated[bool, typer.Option("--no-export", help="Do not write a release afterwards")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Purge staged rows, quarantine, kept exports and crosswalk entries; relink; export; audit it.

    A purge killed part-way is completed by the next cilink command that writes to the workspace.
    """
    from cilink.errors import UsageError
    from cilink.operate.purge import check_scope, verify_purges
    from cilink.operate.purge import purge as do_purge

    ws = output.open_workspace()
    if verify:
        if partner or before:
            raise UsageError("--verify checks every recorded purge and takes no --partner or --before")
        check = verify_purges(ws)
        if json_out:
            output.emit_json(check.to_dict())
        else:
            output.line(f"Checked {check.purges} purge(s), {check.generations_checked} link generation(s), "
                        f"{check.releases_checked} later release(s): "
                        + ("nothing of the purged data remains." if check.ok else f"{len(check.remains)} remain(s)."))
            for r in check.remains:
                output.line(f"Remains: {r}")
        raise typer.Exit(0 if check.ok else VERIFY_FAILED)
    if (partner is None) == (before is None):
        raise UsageError("purge needs exactly one of --partner or --before (or --verify)")
    check_scope(ws, partner)  # an unknown partner is a usage error before any question is asked
    scope = f"partner {partner}" if partner else f"batches ingested before {before:%Y-%m-%d}"
    if not yes and not typer.confirm(f"Permanently remove the data of {scope}?", default=False):
        output.line("Nothing was purged.")
        raise typer.Exit(0)
    result = do_purge(ws, partner=partner, before=before.date() if before else None,
                      export=False if no_export else None)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Purged {scope}: {result.batches} batch(es), {result.staged_rows} staged row(s), "
                f"{result.files_removed} file(s), {result.review_decisions} review decision(s)"
                + (f"; relinked; release: {result.release_id or 'none'}." if result.relinked else "."))
    for note in result.notes:
        output.line(f"Note: {note}")
    output.line(f"Next: cilink{output.workspace_flag()} purge --verify")


def register(app: typer.Typer) -> None:
    app.command()(purge)
