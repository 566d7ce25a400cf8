"""`cilink audit`: show the append-only audit log."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag


def audit(
    limit: Annotated[int, typer.Option("--limit", help="Show the last N entries")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """Who did what, when, with which inputs (hashes) and outcome."""
    from cilink.ledger import Ledger

    ws = output.open_workspace()
    with Ledger(ws.ledger_path) as ledger:
        entries = ledger.audit_entries(limit)
    if json_out:
        output.emit_json(entries)
        return
    output.table("Audit log", ["#", "at", "user", "action", "outcome", "inputs"],
                 [[e["seq"], e["at"], e["user"], e["action"], e["outcome"], json.dumps(e["inputs"])] for e in entries])


def register(app: typer.Typer) -> None:
    app.command()(audit)
