"""`cilink secret generate FILE` and `cilink secret rotate`: the workspace's secrets (docs/operations.md#secrets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag

secret_app = typer.Typer(help="Generate a secret; re-key the workspace on purpose.", no_args_is_help=True)


@secret_app.command("generate")
def generate(
    file: Annotated[Path, typer.Argument(help="Key file to create (mode 0600), outside the workspace")],
) -> None:
    """Write a new 256-bit secret to FILE (mode 0600); refuses to overwrite a file or write inside a workspace."""
    from cilink.keys import write_key_file

    write_key_file(file, workspace=Path(output.STATE.workspace) if output.STATE.workspace else None)
    output.line(f"Wrote a new secret to {file} (mode 0600). Keep a copy where you keep passwords; losing it "
                "means every later person_key differs.")
    output.line(f"Next: export CILINK_SECRET=\"$(cat {file})\"   # or [project] secret_file = \"{file}\"")


@secret_app.command("rotate")
def rotate(
    audience: Annotated[str | None, typer.Option("--audience", help="Rotate this audience's secret instead")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Accept the secret now configured as the workspace's (or an audience's) new secret; audited.

    Person keys in later releases then differ from earlier releases' (joins across them break), which is
    what rotating after a leak is for.
    """
    from cilink import keys
    from cilink.locking import writer_lock

    ws = output.open_workspace()
    if audience is None:
        name, value, source = keys.LINKAGE, ws.raw_secret(None), ws.secret_source(None)
    else:
        env = ws.config.export.audience(audience).secret_env
        name, value, source = f"audience:{audience}", ws.raw_secret(env), ws.secret_source(env)
    if not yes and not typer.confirm(f"Make the secret in {source} the new {name} secret? Later person_keys "
                                     "will not join with earlier releases.", default=False):
        output.line("Nothing was rotated.")
        raise typer.Exit(0)
    with writer_lock(ws.lock_path, "secret rotate"):
        old, new = keys.rotate(ws.ledger_path, name, value, source, demo=ws.config.project.demo)
    if json_out:
        output.emit_json({"secret": name, "old_fingerprint": old, "new_fingerprint": new})
        return
    output.line(f"Rotated the {name} secret: fingerprint {old[:8] or 'none'}… → {new[:8]}… (audited).")


def register(app: typer.Typer) -> None:
    app.add_typer(secret_app, name="secret")
