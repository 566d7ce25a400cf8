"""`cilink encode PARTNER_CONFIG INPUT OUTPUT`: encode a partner export's identifiers at the partner's site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag


def encode(
    partner_config: Annotated[Path, typer.Argument(help="cilink.toml describing your partner entry")],
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="Your export, as you would send it")],
    output_file: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Encoded Parquet file to send instead")],
    partner: Annotated[str | None, typer.Option("--partner", help="Partner id when the config lists several")] = None,
    audit: Annotated[bool, typer.Option("--audit", help="Attack the encodings first; write nothing (exit 5) when "
                                        "an attack re-identifies more than --audit-limit of a field")] = False,
    audit_limit: Annotated[float, typer.Option("--audit-limit", min=0.0, max=1.0,
                                               help="Largest share an attack may re-identify")] = 0.05,
    json_out: JsonFlag = False,
) -> None:
    """Replace names, DOB, SSN, address, phone and e-mail by keyed Bloom filters (secret: CILINK_ENCODING_SECRET)."""
    from cilink.encoding.audit import AuditRefused
    from cilink.encoding.encode import encode_export

    try:
        r = encode_export(partner_config, input_file, output_file, partner_id=partner,
                          audit_limit=audit_limit if audit else None)
    except AuditRefused as e:
        if e.audit is not None:
            if json_out:
                output.emit_json({"written": False, "audit": e.audit.to_dict()})
            else:
                _audit_table(e.audit.to_dict())
        raise
    if json_out:
        output.emit_json(r.to_dict())
        return
    if r.audit:
        _audit_table(r.audit)
    output.table(f"Encoded {r.partner}", ["measure", "value"], [
        ["rows in", r.rows_in], ["rows encoded", r.encoded], ["rows quarantined (fix and re-export)", r.quarantined],
        ["scheme", r.metadata["scheme"]], ["key fingerprint", r.metadata["key_fingerprint"]],
        ["output", r.output],
    ])


def _audit_table(audit: dict) -> None:  # type: ignore[type-arg]
    rows = [[f, a, f"{v:.1%}"] for f, shares in audit["shares"].items() for a, v in shares.items()]
    verdict = "passed" if audit["passed"] else "REFUSED"
    output.table(f"Encoding audit: share of records re-identified (limit {audit['limit']:.0%}, {verdict}, "
                 f"{audit['seconds']} s)", ["field", "attack", "re-identified"], rows)


def register(app: typer.Typer) -> None:
    app.command()(encode)
