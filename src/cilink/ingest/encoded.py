"""Encoded partner files (``format = "encoded"``, or any Parquet file carrying ``cilink.encoding`` metadata):
the output of `cilink encode`, where names, birth date, SSN, address, phone and e-mail are keyed Bloom
filters (``enc_<field>``) and everything else is in clear (see docs/encodings.md).

The file is checked as a whole first — it must say how it was encoded, with a scheme this hub reads, for
this partner and domain, without plaintext identifier columns, and with the same key and parameters as the
hub's encoding secret (when it holds one) and every other encoded partner — and rejected (exit 3, nothing
written) otherwise. Its clear fields then go through the same validation as any export, so every row still
ends accepted or quarantined with a reason code; an encoding of the wrong size quarantines its row
(``invalid_value`` on ``enc_<field>``). Staged rows carry the ``enc_<field>`` columns and ``birth_year``
beside null plaintext identifiers, and the staged file keeps the encoding metadata (``staged_encoding``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import polars as pl

from cilink import atomic
from cilink.config import FileFormat, IngestMode, PartnerSettings
from cilink.encoding.hub import differences, encoded_batches, hub_secret, is_encoded_column, parquet_metadata
from cilink.encoding.scheme import (
    BIRTH_YEAR,
    DROPPED_FIELDS,
    ENC_PREFIX,
    ENCODED_FIELDS,
    METADATA_KEY,
    READABLE_SCHEMES,
    SCHEME_ID,
    SCHEME_V1,
    SCHEME_V2,
    key_fingerprint,
    metadata_bytes,
)
from cilink.errors import InputRejected
from cilink.ingest.fields import field_specs
from cilink.ingest.hmis import ISSUE_PREFIX
from cilink.ingest.mapping import Mapped, clean_text
from cilink.ingest.readers import NFIELDS, ROW, _stringify
from cilink.ingest.reasons import FileProblem, Reason
from cilink.ledger import Ledger
from cilink.workspace import Workspace

#: metadata every encoded file must carry
REQUIRED_METADATA = ("scheme", "m", "k", "blip", "salt_names", "fields", "key_fingerprint", "partner", "domain")
_ENCODE_HINT = "ask the partner to re-encode the export with `cilink encode` (see docs/encodings.md)"


def _reject(file: str, problem: FileProblem, message: str, hint: str = _ENCODE_HINT,
            column: str | None = None) -> InputRejected:
    return InputRejected(f"{file}: {message}", hint=hint, file=file, column=column, reason=problem)


def file_encoding(data: bytes, file: str, partner: PartnerSettings) -> dict[str, Any] | None:
    """The file's encoding metadata when it is an encoded file, else None (an ordinary export).

    A partner configured ``format = "encoded"`` must send one; any other Parquet file is taken as encoded
    when it carries the metadata (auto-detection).
    """
    required = partner.format == FileFormat.ENCODED
    try:
        meta = parquet_metadata(data)
    except ValueError as e:
        raise _reject(file, FileProblem.NOT_ENCODED, "its cilink.encoding metadata is unreadable") from e
    if meta is None and required:
        raise _reject(file, FileProblem.NOT_ENCODED,
                      "not a file written by `cilink encode` (no cilink.encoding metadata in a Parquet file)",
                      hint=f"partner '{partner.id}' is configured with format = \"encoded\": ask for the output of "
                           "`cilink encode`, or fix the partner's `format` in cilink.toml")
    return meta


def _check_metadata(meta: dict[str, Any], file: str, partner: PartnerSettings) -> None:
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise _reject(file, FileProblem.NOT_ENCODED, f"its encoding metadata lacks {', '.join(missing)}")
    if meta["scheme"] not in READABLE_SCHEMES:
        raise _reject(file, FileProblem.ENCODING_MISMATCH,
                      f"encoded with scheme '{meta['scheme']}'; this cilink compares "
                      f"{' and '.join(repr(s) for s in READABLE_SCHEMES)} encodings",
                      hint="encode with the same cilink version the hub runs")
    try:
        m, k = int(meta["m"]), int(meta["k"])
    except (TypeError, ValueError):
        m = k = 0
    if m <= 0 or 65536 % m or m % 8 or k <= 0:
        raise _reject(file, FileProblem.NOT_ENCODED, "its encoding metadata gives an impossible filter size")
    if meta["domain"] != str(partner.domain):
        raise _reject(file, FileProblem.ENCODING_MISMATCH,
                      f"encoded as a {meta['domain']} export, but partner '{partner.id}' is {partner.domain}",
                      hint="ingest the file as the partner it belongs to")
    if meta["partner"] != partner.id:
        raise _reject(file, FileProblem.ENCODING_MISMATCH,
                      f"encoded for partner '{meta['partner']}', not '{partner.id}'",
                      hint="ingest the file as the partner it belongs to, or re-encode it with "
                           f"`cilink encode --partner {partner.id}`")


def read_encoded(data: bytes, file: str, partner: PartnerSettings, meta: dict[str, Any]) -> Mapped:
    """An encoded file as a Mapped batch: clear fields as text (validated like any export), encodings and
    birth year set aside in ``passthrough`` (joined back to the accepted rows by ``_cilink_row``)."""
    _check_metadata(meta, file, partner)
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _reject(file, FileProblem.MALFORMED, "not a readable Parquet file") from e
    plaintext = [c for c in frame.columns if c in ENCODED_FIELDS or c in DROPPED_FIELDS]
    if plaintext:
        raise _reject(file, FileProblem.PLAINTEXT_IN_ENCODED,
                      f"an encoded file must not hold plaintext identifiers, but it has column(s) {plaintext}",
                      column=plaintext[0])
    if "source_person_id" not in frame.columns:
        raise _reject(file, FileProblem.MISSING_COLUMN, "no column 'source_person_id'", column="source_person_id")
    if frame.height == 0:
        raise _reject(file, FileProblem.NO_DATA_ROWS, "the file holds no records")
    encodings = [c for c in frame.columns if c.startswith(ENC_PREFIX)]
    wrong = [c for c in encodings if frame.schema[c] != pl.Binary]
    if BIRTH_YEAR in frame.columns and not frame.schema[BIRTH_YEAR].is_integer():
        wrong.append(BIRTH_YEAR)
    if wrong:
        raise _reject(file, FileProblem.MALFORMED, f"column(s) {wrong} have the wrong type", column=wrong[0])

    specs = field_specs(str(partner.domain))
    fields = [c for c in frame.columns if c in specs]
    columns = frame.columns
    frame = frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW))
    nbytes = int(meta["m"]) // 8
    year = pl.col(BIRTH_YEAR) if BIRTH_YEAR in frame.columns else pl.lit(None, dtype=pl.Int16)
    checks = {f"{ISSUE_PREFIX}{c}__{Reason.INVALID_VALUE}": pl.col(c).is_not_null() & (pl.col(c).bin.size() != nbytes)
              for c in encodings}
    checks[f"{ISSUE_PREFIX}{BIRTH_YEAR}__{Reason.INVALID_VALUE}"] = year.is_not_null() & ((year < 1900) | (year > 2200))
    frame = frame.with_columns(year.cast(pl.Int16).alias(BIRTH_YEAR), **checks)
    text = _stringify(frame.select(fields)).select([clean_text(pl.col(c)).alias(c) for c in fields])
    mapped = pl.concat([frame.select(ROW, pl.lit(len(columns), dtype=pl.Int64).alias(NFIELDS)), text,
                        frame.select(list(checks))], how="horizontal")
    passthrough = frame.select(ROW, *encodings, BIRTH_YEAR)
    ignored = [c for c in columns if c not in specs and not is_encoded_column(c)]
    notes: dict[str, object] = {"encoded": meta["scheme"], "key_fingerprint": meta["key_fingerprint"]}
    if ignored:
        notes["ignored_columns"] = len(ignored)
    if meta["scheme"] == SCHEME_V1:
        notes["warning"] = (f"encoded with the old scheme '{SCHEME_V1}', whose name filters published attacks "
                            f"re-identify (docs/encodings.md); ask the partner to re-encode with '{SCHEME_ID}' "
                            "(all partners of a project must use one scheme)")
    elif meta["scheme"] == SCHEME_V2:
        notes["warning"] = (f"encoded with the old scheme '{SCHEME_V2}', whose birth dates an attacker who knows "
                            "part of a large file's plaintext decodes (docs/encodings.md); ask the partner to "
                            f"re-encode with '{SCHEME_ID}' (all partners of a project must use one scheme)")
    return Mapped(mapped, {f: f for f in fields}, len(columns), ignored, notes=notes, native_dates=True,
                  passthrough=passthrough, encoding=meta)


def check_comparable(ws: Workspace, partner: PartnerSettings, meta: dict[str, Any], file: str) -> None:
    """Reject an encoded file whose key or parameters differ from the hub's encoding secret (when the hub
    holds one) or from another encoded partner's active batch — such encodings could never be compared."""
    secret = hub_secret(ws.config.project, required=False)
    if secret is not None and meta["key_fingerprint"] != key_fingerprint(secret):
        raise _reject(file, FileProblem.ENCODING_KEY_MISMATCH,
                      f"encoded with another key than the hub's {ws.config.project.encoding_secret_env} "
                      f"(key fingerprint {meta['key_fingerprint']} vs {key_fingerprint(secret)})",
                      hint="the partner and the hub must use the same encoding secret: check which one is current, "
                           "and re-encode with it")
    with Ledger(ws.ledger_path) as ledger:
        batches = ledger.active_batches()
    # a snapshot replaces the partner's own earlier batches, so only they may differ (a re-keyed partner)
    others = [b for b in batches if b.partner != partner.id or partner.mode == IngestMode.APPEND]
    for batch_id, other in sorted(encoded_batches(ws, others).items()):
        diff = differences(meta, other)
        if diff:
            owner = next(b.partner for b in others if b.batch_id == batch_id)
            key_only = diff == ["key_fingerprint"]
            raise _reject(
                file, FileProblem.ENCODING_KEY_MISMATCH if key_only else FileProblem.ENCODING_MISMATCH,
                f"its encoding differs from partner '{owner}' (batch {batch_id}) in {', '.join(diff)}"
                + (": the partners used different encoding secrets" if key_only else ""),
                hint="every partner must encode with the same secret and cilink version; re-encode the file "
                     "that is out of line")


def write_staged(path: Path, frame: pl.DataFrame, encoding: dict[str, Any] | None) -> None:
    """Write a staged batch (atomically); an encoded batch keeps its encoding metadata (see
    ``cilink.encoding.hub.encoded_batches``)."""
    if encoding is None:
        atomic.write_parquet(path, frame)
        return
    metadata = {METADATA_KEY.decode(): metadata_bytes(encoding).decode()}
    with atomic.atomic_path(path) as tmp:
        frame.write_parquet(tmp, compression="zstd", metadata=metadata)
