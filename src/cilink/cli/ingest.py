"""`cilink ingest PARTNER FILE`: one partner export → staged records, quarantine, ledger row."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag


def ingest(
    partner: Annotated[str, typer.Argument(help="Partner id from cilink.toml")],
    file: Annotated[Path, typer.Argument(help="The export (for hmis-csv: a zip or a folder)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report; write nothing")] = False,
    json_out: JsonFlag = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Read a file ingested before again (after a cilink.toml fix); the new batch replaces "
        "the earlier one (audited)")] = False,
) -> None:
    """Validate, standardize and stage a partner export; print the reconciliation (rows in = accepted + quarantined)."""
    from cilink.ingest import ingest_file

    r = ingest_file(output.open_workspace(), partner, file, dry_run=dry_run, replace=replace)
    if json_out:
        output.emit_json(r.to_dict())
        return
    if r.status == "duplicate":
        output.line(f"{r.file}: {r.message}")
        return
    head = "Dry run (nothing written)" if r.status == "dry_run" else f"Ingested as batch {r.batch_id} ({r.mode})"
    output.line(f"{r.partner}: {r.file} — {head}")
    output.table("Reconciliation", ["count", "rows"],
                 [["rows in", r.rows_in], ["accepted", r.accepted], ["quarantined", r.quarantined]])
    if r.quarantine_by_reason:
        output.table("Quarantined by reason (a row may have several)", ["reason", "rows"],
                     sorted(r.quarantine_by_reason.items()))
    if r.flags_by_field:
        output.table("Flags by field (accepted rows, value set to null)", ["field", "flag", "rows"],
                     [[f, c, n] for f, codes in r.flags_by_field.items() for c, n in codes.items()])
    repaired, blank = r.notes.get("bytes_repaired"), r.notes.get("blank_rows_skipped")
    if repaired:
        output.line(f"Note: {repaired} byte(s) were not valid {r.notes.get('encoding')} and were read as cp1252 "
                    "(check accented names in the staged rows).")
    if blank:
        output.line(f"Note: {blank} blank row(s) skipped (not counted in rows in).")
    if r.replaced:
        output.line(f"Replaces batch {r.replaced} (the same file, ingested before with the earlier cilink.toml).")
    if r.superseded:
        output.line(f"Supersedes {len(r.superseded)} earlier batch(es) of {r.partner} (snapshot mode).")
    if r.notes.get("warning"):
        output.line(f"Warning: {r.notes['warning']}")
    if r.quarantine_csv:
        output.line(f"Quarantine for the partner: {r.quarantine_csv}")


def register(app: typer.Typer) -> None:
    app.command()(ingest)
