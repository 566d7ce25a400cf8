"""The hub's side of encodings: its copy of the encoding secret, which staged batches are encoded, and the
checks that keep every encoding of a project comparable (same scheme, same parameters, same key).

A project without encoded partners never needs any of this. In a *mixed* project (some partners send
`cilink encode` files, some plaintext) the hub encodes the plaintext partners' identifiers itself at link
time, so it needs the partners' encoding secret: ``[project] encoding_secret_env`` (default
``CILINK_ENCODING_SECRET``) or ``encoding_secret_file``. Like the linkage secret it is read when needed and
never written to the workspace, logs or releases (see docs/encodings.md for what holding it means).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from cilink.config import ProjectSettings, secret_from
from cilink.encoding.scheme import BIRTH_YEAR, ENC_PREFIX, METADATA_KEY
from cilink.errors import ConfigError

if TYPE_CHECKING:
    from cilink.ledger import Batch
    from cilink.workspace import Workspace

#: metadata that must agree between two encoded files for their encodings to be comparable
COMPARABLE = ("scheme", "m", "k", "salt_names", "key_fingerprint")
#: magic bytes a Parquet file starts with
PARQUET_MAGIC = b"PAR1"


def is_encoded_column(name: str) -> bool:
    """An encoding (``enc_<field>``) or the clear birth year an encoded file carries beside them."""
    return name.startswith(ENC_PREFIX) or name == BIRTH_YEAR


def hub_secret(project: ProjectSettings, *, required: bool) -> bytes | None:
    """The encoding secret the hub holds (environment variable, else key file), or None when it holds none.

    ``required``: a mixed project cannot link without it — raise a ConfigError (exit 2) naming what to set.
    """
    name = project.encoding_secret_env
    value = secret_from(name, project.encoding_secret_file, "project.encoding_secret_file")
    if value:
        if len(value) < 16:
            raise ConfigError(f"the encoding secret ({name}) is too short ({len(value)} characters)",
                              hint="it must be the secret the encoding partners used (at least 16 characters)")
        return value
    if not required:
        return None
    raise ConfigError(
        f"this project mixes encoded and plaintext partners, and the hub needs the partners' encoding secret to "
        f"encode the plaintext partners' identifiers: environment variable {name} is not set",
        hint=f"export {name}=<the secret the partners used with `cilink encode`>, or set "
             "project.encoding_secret_file to a key file outside the workspace; or have every partner send "
             "`cilink encode` files (see docs/encodings.md, 'Mixed projects')",
    )


def parquet_metadata(source: Path | bytes) -> dict[str, Any] | None:
    """The ``cilink.encoding`` metadata of a Parquet file (a path or its bytes); None when there is none or
    the file is not Parquet. Raises ValueError when the metadata is there but is not a JSON object."""
    try:
        file_meta = pq.read_metadata(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (OSError, ValueError):
        return None
    raw = (file_meta.metadata or {}).get(METADATA_KEY)
    if raw is None:
        return None
    meta = json.loads(raw)
    if not isinstance(meta, dict):
        raise ValueError("encoding metadata is not a JSON object")
    return meta


def encoded_batches(ws: Workspace, batches: list[Batch]) -> dict[str, dict[str, Any]]:
    """batch_id → encoding metadata, for the ``batches`` whose staged file is encoded."""
    out = {}
    for b in batches:
        if b.staged_path is None:
            continue
        try:
            meta = parquet_metadata(ws.root / b.staged_path)
        except ValueError:
            meta = None
        if meta is not None:
            out[b.batch_id] = meta
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The metadata keys on which two encoded files disagree (empty: their encodings are comparable)."""
    return [k for k in COMPARABLE if a.get(k) != b.get(k)]
