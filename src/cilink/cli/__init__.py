"""The `cilink` command: a thin typer layer over the library (one module per command or group)."""

from __future__ import annotations

import errno
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from cilink import __version__
from cilink.cli import output
from cilink.errors import SIGNALS_RECEIVED, CilinkError, DiskFull, Interrupted

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
        backup,
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
        secret,
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
    secret.register(app)
    backup.register(app)


_register()


#: click's base of usage errors (typer vendors click in recent versions: found through typer's own class)
_CLICK_EXCEPTION: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

#: options of the `cilink` group that are also accepted after the subcommand (`cilink status -w WS`)
_GLOBAL_WITH_VALUE = ("-w", "--workspace")
_GLOBAL_FLAGS = ("--debug",)


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move ``-w DIR``/``--workspace[=]DIR``/``--debug`` given after the subcommand in front of it.

    click only knows a group's options before the subcommand; users (and cron lines) put them anywhere.
    Nothing after ``--`` is touched.
    """
    front: list[str] = []
    rest: list[str] = []
    i, seen_command = 0, False
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest += argv[i:]
            break
        takes_value = a in _GLOBAL_WITH_VALUE and i + 1 < len(argv)
        if not seen_command:
            rest += argv[i:i + 2] if takes_value else [a]
            seen_command = not a.startswith("-")
        elif takes_value or a.startswith("--workspace=") or a in _GLOBAL_FLAGS:
            front += argv[i:i + 2] if takes_value else [a]
        else:
            rest.append(a)
        i += 2 if takes_value else 1
    return front + rest


def _on_signal(signum: int, frame: object) -> None:
    """SIGINT and SIGTERM become Interrupted (a BaseException): rollbacks and temp-file cleanup still run.

    Remembered too: raised inside a library callback (DuckDB, polars) it may come back as that library's error.
    """
    SIGNALS_RECEIVED.append(Interrupted("SIGTERM", 143) if signum == signal.SIGTERM else Interrupted("SIGINT", 130))
    raise SIGNALS_RECEIVED[-1]


def _disk_full(e: BaseException) -> bool:
    """Whether an error (or one it was raised from) is "no space left on device", whichever library raised it."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        text = str(seen).lower()
        if "no space left on device" in text or "database or disk is full" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def main() -> None:
    """Console-script entry point: run the app and map every error to its exit code (README "Exit codes").

    Usage errors exit 2; library errors carry their code; disk full exits 7, SIGINT 130 and SIGTERM 143,
    each with a message and with nothing half-written (every output is published by an atomic rename).
    Under ``--json`` an error is also one JSON document on stdout.
    """
    argv = hoist_global_options(sys.argv[1:])
    output.STATE.json = "--json" in argv[: argv.index("--") if "--" in argv else len(argv)]
    output.STATE.json_written = False
    SIGNALS_RECEIVED.clear()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        code = app(args=argv, prog_name="cilink", standalone_mode=False)
    except CilinkError as e:
        output.report(e)
        sys.exit(e.exit_code)
    except typer.Abort as e:  # Ctrl-C (click turns KeyboardInterrupt into Abort) or EOF at a prompt
        interrupted = isinstance(e.__context__, KeyboardInterrupt)
        _fail(130 if interrupted else 2, "interrupted (SIGINT)" if interrupted else "aborted at a prompt",
              "nothing was half-written; run the command again" if interrupted else
              "answer the question, or pass --yes")
    except KeyboardInterrupt:
        _fail(130, "interrupted (SIGINT)", "nothing was half-written; run the command again")
    except Interrupted as e:
        _fail(e.exit_code, f"{'interrupted' if e.exit_code == 130 else 'terminated'} ({e.signal_name})",
              "nothing was half-written; run the command again")
    except _CLICK_EXCEPTION as e:  # usage errors: bad option, missing argument (exit 2)
        if output.STATE.json:
            output.error_json(e.exit_code, e.format_message())
        e.show()
        sys.exit(e.exit_code)
    except Exception as e:  # the one place unexpected errors are caught, to keep tracebacks opt-in
        if output.STATE.debug:
            traceback.print_exc()
        _fail_if_signalled()  # the signal surfaced as a library's own error
        if _disk_full(e):
            error = DiskFull("the disk is full", hint="free space on the workspace's filesystem and run the "
                             "command again; nothing was half-written")
            output.report(error)
            sys.exit(error.exit_code)
        if not output.STATE.debug:
            _fail(1, f"unexpected {type(e).__name__}", "nothing was half-written; rerun with --debug for the "
                  "traceback and report it")
        sys.exit(1)
    except (SystemExit, GeneratorExit):
        raise
    except BaseException:
        # a signal raised inside a Rust library's call back into Python comes out as that library's panic
        # (pyo3's PanicException derives from BaseException): it is still the signal
        _fail_if_signalled()
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _fail_if_signalled() -> None:
    """Exit with the first signal's code and message, if a signal arrived during the command."""
    if SIGNALS_RECEIVED:
        first = SIGNALS_RECEIVED[0]
        _fail(first.exit_code, f"{'interrupted' if first.exit_code == 130 else 'terminated'} "
              f"({first.signal_name})", "nothing was half-written; run the command again")


def _fail(code: int, message: str, hint: str) -> None:
    if output.STATE.json:
        output.error_json(code, message, hint)
    output.err.print(f"Error: {message}", highlight=False, markup=False)
    output.err.print(f"Fix: {hint}", highlight=False, markup=False)
    sys.exit(code)
