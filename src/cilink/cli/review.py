"""`cilink review export|import`: clerical review of borderline pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output

review_app = typer.Typer(help="Clerical review of borderline pairs (identifiable: keep the files restricted).",
                         no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON")]


@review_app.command("export")
def review_export(
    file: Annotated[Path, typer.Argument(help="CSV to write (owner-only; never inside releases/)")],
    json_out: JsonFlag = False,
) -> None:
    """Write the review queue side by side; fill the 'decision' column with match or non_match."""
    from cilink.link.review import export_queue

    result = export_queue(output.open_workspace(), file)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Wrote {result.pairs} pair(s) to {result.path} (identifiable: mode 0600).")
    output.line(f"Next: fill 'decision' (match / non_match), then `cilink review import {file}`.")


@review_app.command("import")
def review_import(
    file: Annotated[Path, typer.Argument(help="The reviewed CSV")],
    json_out: JsonFlag = False,
) -> None:
    """Record reviewers' decisions; the next `cilink link` obeys them (must-link / cannot-link)."""
    from cilink.link.review import import_decisions

    result = import_decisions(output.open_workspace(), file)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Recorded {result.match} match and {result.non_match} non-match decision(s); "
                f"{result.undecided} row(s) left undecided. Run `cilink link` to apply them.")


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
