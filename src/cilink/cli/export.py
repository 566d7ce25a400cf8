"""`cilink export`: write a de-identified release, or refuse (exit 5) and write nothing."""

from __future__ import annotations

from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag


def export(
    audience: Annotated[str | None, typer.Option(
        "--audience", help="An [[export.audiences]] id (its own person_key secret and profile); "
        "default: the workspace secret")] = None,
    release_id: Annotated[str | None, typer.Option("--release-id", help="Directory name under releases/; "
                                                   "default: the UTC time. The same id, inputs, config and "
                                                   "secret give byte-identical files")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write releases/<release_id>/ for the audience's tier: aggregate, deidentified or research.

    Everything passes the privacy gate first (identifiers; for the deidentified tier k and risk on the whole
    record and each partner as attacker; small cells); on failure the command exits 5 naming each table,
    column and rule, and nothing is written.
    Example: cilink export --release-id 2026-q3
    """
    from cilink.export.release import export_release

    result = export_release(output.open_workspace(), audience=audience, release_id=release_id)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Released {result.release_id} to {result.path} (tier {result.tier}, audience {result.audience})")
    if result.rows:  # the aggregate tier has tables of counts, not record-level files with rows
        output.table("Rows", ["file", "rows"], [[name, n] for name, n in result.rows.items()])
    for line in result.summary_lines():
        output.line(line)


def register(app: typer.Typer) -> None:
    app.command()(export)
