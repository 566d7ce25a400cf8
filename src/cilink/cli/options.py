"""Options shared by several commands, declared once so their names and help read the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

#: ``--json``: one JSON document on stdout (errors too, see cilink.cli.output).
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON")]

#: ``--release``: which release a command works with.
ReleaseOption = Annotated[str | None, typer.Option(
    "--release", help="The release this goes with: names the folder (default: the latest release)")]
