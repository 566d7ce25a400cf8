"""`cilink encode PARTNER_CONFIG INPUT OUTPUT`: encode a partner export's identifiers at the partner's site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output


def encode(
    partner_config: Annotated[Path, typer.Argument(help="cilink.toml describing your partner entry")],
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="Your export, as you would send it")],
    output_file: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Encoded Parquet file to send instead")],
    partner: Annotated[str | None, typer.Option("--partner", help="Partner id when the config lists several")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Replace names, DOB, SSN, address, phone and e-mail by keyed Bloom filters (secret: CILINK_ENCODING_SECRET)."""
    from cilink.encoding.encode import encode_export

    r = encode_export(partner_config, input_file, output_file, partner_id=partner)
    if json_out:
        output.emit_json(r.to_dict())
        return
    output.table(f"Encoded {r.partner}", ["measure", "value"], [
        ["rows in", r.rows_in], ["rows encoded", r.encoded], ["rows quarantined (fix and re-export)", r.quarantined],
        ["scheme", r.metadata["scheme"]], ["key fingerprint", r.metadata["key_fingerprint"]],
        ["output", r.output],
    ])


def register(app: typer.Typer) -> None:
    app.command()(encode)
