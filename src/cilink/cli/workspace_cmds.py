"""`cilink init`, `cilink config check`, `cilink status`, `cilink schema`: the workspace itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag
from cilink.config import load_config
from cilink.errors import UsageError

config_app = typer.Typer(help="Check the workspace configuration (cilink.toml).", no_args_is_help=True)


def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the workspace in")],
    name: Annotated[str | None, typer.Option(help="Project name written into cilink.toml")] = None,
) -> None:
    """Create a workspace: cilink.toml, inbox/, releases/ and the restricted zone .cilink/ (mode 0700)."""
    from cilink.workspace import init_workspace

    ws = init_workspace(directory, name=name)
    output.line(f"Created workspace {ws.root}")
    output.line(f"Next: edit {ws.config_path} (add [[partners]]), then run `cilink -w {directory} config check`.")


@config_app.command("check")
def config_check(
    file: Annotated[Path | None, typer.Argument(help="Config file (default: the workspace's cilink.toml)")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Validate cilink.toml; every problem is named by its key. Exit 2 if invalid."""
    path = file or output.open_workspace().config_path
    cfg = load_config(path)
    if json_out:
        output.emit_json({"ok": True, "file": str(path), "partners": [p.id for p in cfg.partners]})
        return
    output.line(f"{path}: OK — {len(cfg.partners)} partner(s): {', '.join(p.id for p in cfg.partners) or 'none'}")


def status(json_out: JsonFlag = False) -> None:
    """Show partners, batches, quarantine counts, last run, review queue and last release."""
    from cilink.status import workspace_status

    st = workspace_status(output.open_workspace())
    if json_out:
        output.emit_json(st.to_dict())
        return
    output.line(f"{st.project} — {st.root}")
    output.table(
        "Partners",
        ["partner", "domain", "batches", "accepted", "quarantined", "last ingest"],
        [
            [p.partner, p.domain, p.active_batches, p.rows_accepted, p.rows_quarantined, p.last_ingest]
            for p in st.partners
        ],
    )
    for purge_id in st.pending_purges:
        output.line(f"Purge pending: {purge_id} was interrupted; the next writing command (e.g. "
                    f"`cilink{output.workspace_flag()} run`) completes it")
    run = st.last_run
    output.line(
        f"Last command: {run['command']} at {run['started_at']}, exit {run['exit_code']}" if run else
        "Last command: none"
    )
    inbox = st.last_inbox_run
    if inbox is not None:
        counts = ", ".join(f"{n} {o}" for o, n in sorted(inbox["outcome_counts"].items())) or "no new files"
        output.line(f"Last cron run: {inbox['started_at']}, exit {inbox['exit_code']} — {counts}")
        if inbox["files"]:
            output.table("Files of the last cron run", ["partner", "file", "outcome", "accepted", "quarantined",
                                                        "reason"],
                         [[f["partner"], f["file"], f["outcome"], f["accepted"], f["quarantined"], f["reason"]]
                          for f in inbox["files"]])
    output.line(
        f"Persons linked: {st.persons if st.persons is not None else 'not linked yet'}; "
        f"review queue: {st.review_queue if st.review_queue is not None else '-'}"
    )
    rel = st.last_release
    currency = {True: "current", False: "NOT current: the data or config changed since; `cilink run` or "
                "`cilink export` writes a new one", None: ""}
    output.line(f"Last release: {rel['release_id']} ({rel['tier']} tier, audience {rel['audience']}, "
                f"{rel['created_at']}; {currency[rel['current']]})" if rel else "Last release: none")
    if st.inbox_pending:
        output.table("Inbox entries not taken by `cilink run`", ["partner", "entry", "state", "reason"],
                     [[e["partner"], e["entry"], e["state"], e["reason"]] for e in st.inbox_pending])


def schema(
    domain: Annotated[str, typer.Argument(help="school | workforce | housing | config")],
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of a domain's staged records (or of cilink.toml with `config`)."""
    from cilink.schema_files import schema_document

    try:
        doc = schema_document(domain)
    except KeyError as e:
        raise UsageError(str(e.args[0]), hint="use one of: school, workforce, housing, config") from None
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if out:
        out.write_text(text, encoding="utf-8")
        output.line(f"Wrote {out}")
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(status)
    app.command()(schema)
    app.add_typer(config_app, name="config")
