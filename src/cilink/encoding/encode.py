"""`cilink encode` as a library: a partner export → a Parquet file where identifiers are keyed Bloom filters.

Runs at the partner's site, without a workspace: the export is read, mapped, standardized and validated
exactly as ``cilink ingest`` would (``cilink.ingest.batches.read_export`` + ``validate_batch``), so the
encodings agree with what the hub encodes for plaintext partners. Identifier fields become ``enc_<field>``
Binary columns (``m/8`` bytes); event and program fields pass through unchanged; ``birth_year`` is kept in
clear as a blocking key. Quarantined rows are not written (the result counts them, for the partner to fix).

Example::

    result = encode_export(Path("cilink.toml"), Path("export.csv"), Path("export.encoded.parquet"))
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from cilink import atomic
from cilink.config import PartnerSettings, load_config
from cilink.encoding.bloom import SaltPermutations, blip_matrix, filter_matrix, to_series
from cilink.encoding.scheme import (
    BIRTH_YEAR,
    DROPPED_FIELDS,
    ENC_PREFIX,
    METADATA_KEY,
    SCHEME_ID,
    Scheme,
    metadata_bytes,
    read_encoding_secret,
)
from cilink.errors import UsageError
from cilink.ingest.batches import read_export, validate_batch
from cilink.link.names import phonetic_series
from cilink.schemas import polars_schema


@dataclass
class EncodeResult:
    """What one encode did: rows read / written / quarantined, and the file's encoding metadata."""

    partner: str
    input: str
    output: str
    sha256: str
    rows_in: int
    encoded: int
    quarantined: int
    metadata: dict[str, Any]
    audit: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _value(frame: pl.DataFrame, name: str) -> pl.Series:
    col = frame[name]
    if col.dtype == pl.Date:
        return col.dt.strftime("%Y%m%d")
    return col.cast(pl.String)


def salt_series(frame: pl.DataFrame, salt_of: str | None) -> pl.Series | None:
    """Each record's salt as text from a ``Scheme.salt_of`` spec: a field, ``~`` its phonetic code (``~~``: of
    the formal form), ``birth_year`` the year of ``dob``, parts joined by ``+`` (null when a part is). None
    when the spec names nothing the frame has. The encoder, the hub and the audit's attacker all call this."""
    if salt_of is None:
        return None
    parts = []
    for part in salt_of.split("+"):
        column = part.rstrip("~")
        if column == BIRTH_YEAR:
            if "dob" not in frame.columns:
                return None
            parts.append(frame["dob"].dt.year().cast(pl.String))
            continue
        if column not in frame.columns:
            return None
        values = _value(frame, column)
        if part.endswith("~"):
            values = phonetic_series(values, formal=part.endswith("~~"))
        parts.append(values)
    if len(parts) == 1:
        return parts[0]
    return pl.DataFrame(parts).select(pl.concat_str(pl.all(), separator="|")).to_series()


def field_filters(frame: pl.DataFrame, scheme: Scheme, secret: bytes, name: str,
                  permutations: SaltPermutations | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unhardened filters, mask of rows with a value) of one field of standardized records, salted as the
    scheme says (``Scheme.salt_of``). The partner's encoder and the hub's encodings of plaintext partners
    both call this, so their encodings of the same record agree. Pass one ``permutations`` for all fields
    of a frame to compute each salt's permutation once."""
    salt_of = scheme.salt_of(name)
    if salt_of == BIRTH_YEAR:  # v1: the clear year, as a number
        salts = frame["dob"].dt.year().cast(pl.Int16) if "dob" in frame.columns else None
    else:
        salts = salt_series(frame, salt_of)
    if scheme.deprecated:
        permutations = None
    elif permutations is None:
        permutations = SaltPermutations(secret, scheme.m)
    return filter_matrix(_value(frame, name), salts, secret=secret, field=name, m=scheme.m, k=scheme.k,
                         permute=permutations)


def encode_frame(frame: pl.DataFrame, scheme: Scheme, secret: bytes, *, seed: bytes = b"") -> pl.DataFrame:
    """Replace the identifier columns of standardized records by their encodings (``enc_<field>``).

    ``seed`` makes the BLIP noise reproducible (the same file encodes to the same bytes); it is mixed
    with the secret, so the noise cannot be replayed without it.
    """
    year = frame["dob"].dt.year().cast(pl.Int16) if "dob" in frame.columns else None
    rng = np.random.default_rng(int.from_bytes(hmac.new(secret, b"blip|" + seed, hashlib.sha256).digest()[:8]))
    encoded = []
    permutations = SaltPermutations(secret, scheme.m)
    for name in scheme.fields:
        if name not in frame.columns:
            continue
        filters, mask = field_filters(frame, scheme, secret, name, permutations)
        encoded.append(to_series(ENC_PREFIX + name, blip_matrix(filters, mask, scheme.blip, rng), mask))
    keep = [c for c in frame.columns if c not in scheme.fields and c not in DROPPED_FIELDS]
    out = frame.select(keep)
    if year is not None:
        out = out.with_columns(year.alias(BIRTH_YEAR))
    return out.with_columns(encoded)


def partner_of(config_path: Path, partner_id: str | None) -> PartnerSettings:
    """The partner a PARTNER_CONFIG describes (``partner_id`` needed when it lists several)."""
    partners = load_config(config_path).partners
    if partner_id is None:
        if len(partners) != 1:
            raise UsageError(f"{config_path} lists {len(partners)} partners",
                             hint="name yours with --partner ID: " + ", ".join(p.id for p in partners))
        return partners[0]
    for p in partners:
        if p.id == partner_id:
            return p
    raise UsageError(f"no partner '{partner_id}' in {config_path}",
                     hint="use one of: " + ", ".join(p.id for p in partners))


def write_encoded(frame: pl.DataFrame, path: Path, meta: dict[str, object]) -> None:
    """Write an encoded frame with its metadata (atomically: temp file, fsync, rename)."""
    table = frame.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: metadata_bytes(meta)})

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The encoding metadata of a Parquet file, or None when it is not an encoded file."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):  # not Parquet at all: not an encoded file
        return None
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else None


def encode_export(config_path: Path, input_path: Path, output_path: Path, *, partner_id: str | None = None,
                  scheme: Scheme | None = None, secret: bytes | None = None,
                  audit_limit: float | None = None) -> EncodeResult:
    """Read a partner export as ingest would and write its encoded form to ``output_path``.

    ``audit_limit``: first run the attacks of ``cilink.encoding.audit`` on the encoded records; when any
    re-identifies more than this share of a field's records, raise AuditRefused (exit 5) and write nothing.
    """
    partner = partner_of(config_path, partner_id)
    secret = secret if secret is not None else read_encoding_secret()
    scheme = scheme or Scheme()
    sha, mapped = read_export(input_path, partner)
    if mapped.encoding is not None:
        raise UsageError(f"{input_path} is already an encoded file", hint="encode the partner's original export")
    checked = validate_batch(mapped, partner, str(partner.domain))
    schema = polars_schema(str(partner.domain), with_meta=False)
    accepted = checked.accepted.select([pl.col(n).cast(t) for n, t in schema.items() if n in checked.accepted.columns])
    encoded = encode_frame(accepted, scheme, secret, seed=sha.encode())
    meta = {**scheme.metadata(secret), "partner": partner.id, "domain": str(partner.domain)}
    audited = None
    if audit_limit is not None:
        from cilink.encoding.audit import AuditRefused, audit_frame

        audited = audit_frame(encoded, accepted, scheme, limit=audit_limit)
        if not audited.passed:
            worst = ", ".join(f"{f} {v:.1%}" for f, v in audited.worst().items() if v > audit_limit)
            raise AuditRefused(f"the encoding audit re-identified more than {audit_limit:.0%} of the records in "
                               f"{worst}; {output_path} was not written",
                               hint=f"encode with the default scheme ({SCHEME_ID}); see docs/encodings.md",
                               audit=audited)
    write_encoded(encoded, output_path, meta)
    return EncodeResult(partner=partner.id, input=str(input_path), output=str(output_path), sha256=sha,
                        rows_in=checked.rows_in, encoded=encoded.height, quarantined=checked.quarantined,
                        metadata=meta, audit=audited.to_dict() if audited else None)
