"""`cilink review export|import|serve`: clerical review of borderline pairs (CSV loop or local workbench)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag

review_app = typer.Typer(help="Clerical review of borderline pairs (identifiable: keep the files restricted).",
                         no_args_is_help=True)


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
    output.line(f"Next: fill 'decision' (match / non_match), then `cilink{output.workspace_flag()} review import "
                f"{file}`.")


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


@review_app.command("serve")
def review_serve(
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Name recorded with each decision "
                                                  "(default: your login name)")] = None,
    second: Annotated[bool, typer.Option("--second", help="Second, blind review of pairs others decided; "
                                          "disagreements go to adjudication")] = False,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (default: any free port)")] = 0,
) -> None:
    """Open the review workbench in your browser: each queued pair side by side with the weight of every
    comparison; keys m / n / u / s / z decide match, non-match, unsure, skip, undo. Local only (127.0.0.1),
    opened once with the printed URL. Decisions are recorded at once; `cilink link` applies them.
    Example: cilink review serve --reviewer alice
    """
    from cilink.ledger import current_user
    from cilink.link.workbench import Workbench
    from cilink.web.app import serve

    ws = output.open_workspace()
    bench = Workbench(ws, reviewer or current_user(), second=second)
    pairs = len(bench.queue())  # fails now (exit 2) if the workspace has not been linked

    def ready(url: str) -> None:
        output.line(f"Review workbench for {bench.reviewer}: {pairs} pair(s) queued. Open (once) in a browser "
                    "on this computer:")
        output.line(f"  {url}")
        output.line("Stop with Ctrl-C. Decisions are already saved; run `cilink link` to apply them.")

    serve(bench, port=port, ready=ready)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
