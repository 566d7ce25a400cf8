"""The `cilink` command: a thin typer layer over the library (one module per command or group)."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from cilink import __version__
from cilink.cli import output
from cilink.errors import CilinkError

app = typer.Typer(
    name="cilink",
    help="Link people across partner organisations' data and release a de-identified longitudinal dataset.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        output.line(f"cilink {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", "-w", envvar="CILINK_WORKSPACE", help="Workspace directory (default: current)"),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for unexpected errors")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    output.STATE.workspace = str(workspace) if workspace else None
    output.STATE.debug = debug


def _register() -> None:
    # one line per command module; each module's register() adds its commands
    from cilink.cli import (
        audit,
        crosswalk,
        demo,
        encode,
        evaluate,
        export,
        indicators,
        ingest,
        link,
        purge,
        report,
        review,
        run,
        workspace_cmds,
    )

    workspace_cmds.register(app)
    ingest.register(app)
    link.register(app)
    review.register(app)
    crosswalk.register(app)
    evaluate.register(app)
    export.register(app)
    run.register(app)
    report.register(app)
    indicators.register(app)
    purge.register(app)
    audit.register(app)
    demo.register(app)
    encode.register(app)


_register()


def main() -> None:
    """Console-script entry point: run the app and map every error to its exit code (design §7).

    typer's standalone mode already turns usage errors into exit 2; library errors surface here.
    """
    try:
        app()
    except CilinkError as e:
        output.report(e)
        sys.exit(e.exit_code)
    except Exception as e:  # the one place unexpected errors are caught, to keep tracebacks opt-in
        if output.STATE.debug:
            traceback.print_exc()
        else:
            output.err.print(
                f"Error: unexpected {type(e).__name__}. Nothing was half-written. "
                "Rerun with --debug for the traceback and report it.",
                highlight=False,
                markup=False,
            )
        sys.exit(1)
