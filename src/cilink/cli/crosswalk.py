"""`cilink crosswalk export`: partner, source_person_id → person_id (restricted)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag

crosswalk_app = typer.Typer(help="The crosswalk from partners' IDs to person IDs (identifiable).",
                            no_args_is_help=True)


@crosswalk_app.command("export")
def crosswalk_export(
    file: Annotated[Path, typer.Argument(help="CSV (or .parquet) to write; owner-only, never in releases/")],
    partner: Annotated[str | None, typer.Option("--partner", help="Only this partner's records")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write partner, source_person_id, person_id for every linked record."""
    from cilink.link.crosswalk import export_crosswalk

    result = export_crosswalk(output.open_workspace(), file, partner=partner)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Wrote {result.rows} row(s) ({result.persons} persons) to {result.path} (identifiable: mode 0600).")


def register(app: typer.Typer) -> None:
    app.add_typer(crosswalk_app, name="crosswalk")
