"""Rendering for the CLI: rich on a terminal, plain lines when piped, JSON on --json; errors to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from cilink.errors import CilinkError


@dataclass
class State:
    """Options given before the command (`cilink --workspace W --debug COMMAND`)."""

    workspace: str | None = None
    debug: bool = False
    #: --json was given (anywhere on the command line): errors are printed as JSON too
    json: bool = False
    #: the command has written its JSON document: an error after it adds none (stdout stays one document)
    json_written: bool = False


STATE = State()
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def is_tty() -> bool:
    return out.is_terminal


def emit_json(data: Any) -> None:
    """Write machine-readable output (one JSON document) to stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    STATE.json_written = True


def line(text: str, *, markup: bool = False) -> None:
    """One line of human output; rich ``markup`` is interpreted only when asked (data never is)."""
    if is_tty():
        out.print(text, markup=markup, highlight=False)
    elif markup:
        sys.stdout.write(Console(no_color=True).render_str(text).plain + "\n")
    else:
        sys.stdout.write(text + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table: rich on a terminal, tab-separated lines with a header when piped."""
    if is_tty():
        t = Table(title=title, title_justify="left")
        for c in columns:
            t.add_column(c, justify="right" if rows and isinstance(rows[0][columns.index(c)], int | float) else "left")
        for r in rows:
            t.add_row(*[_cell(v) for v in r])
        out.print(t)
    else:
        sys.stdout.write(f"# {title}\n" + "\t".join(columns) + "\n")
        for r in rows:
            sys.stdout.write("\t".join(_cell(v) for v in r) + "\n")


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def workspace_flag() -> str:
    """`` -w DIR`` when the command was given a workspace, so "Next:" hints can be pasted as they are."""
    import shlex

    return f" -w {shlex.quote(STATE.workspace)}" if STATE.workspace else ""


def error_json(exit_code: int, message: str, hint: str | None = None, **extra: Any) -> None:
    """An error as the one JSON document on stdout (under --json): ``{"error": {...}}`` — unless the command
    already printed its own (which then says what went wrong, e.g. an audit that did not pass)."""
    if STATE.json_written:
        return
    emit_json({"error": {"exit_code": exit_code, "message": message, "hint": hint,
                         **{k: v for k, v in extra.items() if v}}})


def report(e: CilinkError) -> None:
    """Print a CilinkError to stderr as one paragraph: message, then the fix; under --json also as the one
    JSON document on stdout, for scripts."""
    if STATE.json:
        error_json(e.exit_code, e.message, e.hint, reason=getattr(e, "reason", None),
                   problems=getattr(e, "problems", None), failures=getattr(e, "failures", None))
    err.print(f"Error: {e.message}", highlight=False, markup=False)
    if e.hint:
        err.print(f"Fix: {e.hint}", highlight=False, markup=False)
    reason = getattr(e, "reason", None)
    if reason:  # a stable code (e.g. missing_column) for scripts, tests and searching the docs
        err.print(f"Reason: {reason}", highlight=False, markup=False)


def open_workspace():  # type: ignore[no-untyped-def]
    """The workspace named by --workspace / CILINK_WORKSPACE, or the current directory."""
    from pathlib import Path

    from cilink.workspace import Workspace

    return Workspace.open(Path(STATE.workspace) if STATE.workspace else Path.cwd())
