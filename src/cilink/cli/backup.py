"""`cilink backup DEST` and `cilink restore BACKUP DIR` (docs/operations.md#backup-and-restore)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag


def backup(
    dest: Annotated[Path, typer.Argument(help="New directory to write the backup to (outside the workspace)")],
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for a running command to finish")] = 600,
    json_out: JsonFlag = False,
) -> None:
    """Copy the workspace consistently (ledger by SQLite online backup, files as published) under the lock."""
    from cilink.operate.backup import backup as do_backup

    result = do_backup(output.open_workspace(), dest, wait=wait)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Backed up {result.files} file(s), {result.bytes:,} bytes, to {result.path} (mode 0700: it "
                "holds identifiable data; keep it as safe as the workspace).")


def restore(
    backup_dir: Annotated[Path, typer.Argument(help="A directory `cilink backup` wrote")],
    target: Annotated[Path, typer.Argument(help="New directory for the restored workspace")],
    json_out: JsonFlag = False,
) -> None:
    """Check every file of a backup against its sha256, then make a workspace from it in a new directory."""
    from cilink.operate.backup import restore as do_restore

    result = do_restore(backup_dir, target)
    if json_out:
        output.emit_json(result.to_dict())
        return
    output.line(f"Restored {result.files} file(s) from the backup of {result.created_at} to {result.path}.")
    output.line(f"Next: cilink -w {result.path} status")


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command()(restore)
