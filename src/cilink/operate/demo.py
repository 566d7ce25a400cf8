"""`cilink demo`: a synthetic workspace taken through the whole pipeline, exactly as cron would run it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cilink import atomic
from cilink.config import CONFIG_FILE
from cilink.encoding.scheme import read_encoding_secret
from cilink.errors import UsageError
from cilink.operate.inbox import DONE, RunResult, mark_complete, run_inbox
from cilink.workspace import Workspace, ensure_layout


@dataclass
class DemoResult:
    """Where the demo put things, and the run that processed them."""

    workspace: Path
    people: int
    seed: int
    run: RunResult | None
    truth: Path


def run_demo(directory: Path, *, people: int = 2000, seed: int = 1, pipeline: bool = True,
             encoded: tuple[str, ...] = ()) -> DemoResult:
    """Generate synthetic partner exports into a new workspace and run ingest → link → export on them.

    ``pipeline=False`` only writes the workspace and exports (for benchmarks and tutorials). ``encoded``:
    partners that send `cilink encode` files instead of plaintext (see ``encode_demo_partners``).
    Example: ``run_demo(Path("demo-ws"), people=5000, seed=1)``
    """
    from cilink.demo import PARTNER_IDS, generate_demo

    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} exists and is not empty", hint="choose a new directory or remove it first")
    if people < 10:
        raise UsageError("--people must be at least 10")
    unknown = sorted(set(encoded) - set(PARTNER_IDS))
    if unknown:
        raise UsageError(f"--encoded: unknown demo partner(s) {unknown}", hint="use " + ", ".join(PARTNER_IDS))
    if encoded:
        read_encoding_secret()  # before writing anything: a clear ConfigError when it is missing
    files = generate_demo(directory, people=people, seed=seed)
    if encoded:
        encode_demo_partners(directory, encoded)
    ensure_layout(directory)
    ws = Workspace.open(directory)
    for p in ws.config.partners:
        ws.inbox_dir(p.id).mkdir(parents=True, exist_ok=True)
    mark_complete(ws)  # as a partner's upload script would: the run takes them without waiting
    run = run_inbox(ws) if pipeline else None
    return DemoResult(workspace=directory, people=people, seed=seed, run=run, truth=files.truth)


def encode_demo_partners(directory: Path, partners: tuple[str, ...]) -> None:
    """Play the partners that encode: replace each one's export in the inbox by its `cilink encode` output
    (secret: ``CILINK_ENCODING_SECRET``, which the hub then also needs — in the demo you are both) and set its
    ``format = "encoded"`` in cilink.toml. Rows the partner's validation quarantines are not sent."""
    from cilink.demo import EXPORT_FILES
    from cilink.encoding.encode import encode_export

    secret = read_encoding_secret()
    config = directory / CONFIG_FILE
    for partner in dict.fromkeys(partners):
        export = directory / "inbox" / partner / EXPORT_FILES[partner]
        encoded = export.with_name(f"{partner}.encoded.parquet")
        encode_export(config, export, encoded, partner_id=partner, secret=secret)
        export.unlink()
        marker = export.with_name(export.name + DONE)
        if marker.exists():  # the encoded file replaces a complete export: complete as well
            marker.replace(encoded.with_name(encoded.name + DONE))
    text = config.read_text(encoding="utf-8")
    for partner in dict.fromkeys(partners):
        block = re.search(rf'^id = "{re.escape(partner)}"$.*?(?=^\[\[|\Z)', text, flags=re.M | re.S)
        assert block is not None, partner
        changed = re.sub(r"^format = .*$", 'format = "encoded"            # `cilink encode` output (docs/encodings.md)',
                         block.group(0), count=1, flags=re.M)
        text = text[:block.start()] + changed + text[block.end():]
    atomic.write_text(config, text)
