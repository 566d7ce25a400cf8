"""The encoding scheme: which fields are encoded how, its parameters, and the metadata an encoded file carries.

The metadata (Parquet key-value metadata under ``cilink.encoding``) names the scheme and its parameters and
carries a *key fingerprint* — HMAC of a fixed label under the encoding secret — so the hub can tell whether
two partners encoded with the same secret without ever holding it. The secret itself is never written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass, field

from cilink.errors import ConfigError

#: the default scheme: field filters whose bigram keys are salted by another identifier of the same record
SCHEME_ID = "cilink-fbf-crosssalted-v3"
#: the second scheme: v3 but with the birth date salted by the first name's code alone, which dozens of
#: records share — a known-pairs attacker decodes a large file's birth dates per salt group (docs/encodings.md,
#: "Residual risk"); still read and linked, with a warning
SCHEME_V2 = "cilink-fbf-crosssalted-v2"
#: the first scheme (2025): still read and linked, with a warning — its name filters fall to frequency,
#: pattern-mining, graph-matching and known-plaintext attacks (docs/encodings.md)
SCHEME_V1 = "cilink-fbf-bigram-v1"
#: every scheme this cilink reads
READABLE_SCHEMES = (SCHEME_ID, SCHEME_V2, SCHEME_V1)
SECRET_ENV = "CILINK_ENCODING_SECRET"
METADATA_KEY = b"cilink.encoding"
ENC_PREFIX = "enc_"
#: clear-text blocking key an encoded file keeps beside the encodings (coarse, as in the release)
BIRTH_YEAR = "birth_year"
_FINGERPRINT_LABEL = b"cilink encoding key fingerprint v1"

#: identifier fields replaced by encodings (names, birth date, SSN, address, contact)
ENCODED_FIELDS = (
    "first_name", "middle_name", "last_name", "dob", "ssn", "ssn_last4", "street", "zip5", "phone", "email",
)
#: v2: the field whose standardized value salts each field's bigram keys. The salt is never in the file in
#: clear (a clear salt, like v1's birth year, lets the attacker group by it and defeats salting); records of
#: the same person share it, records that merely share a name almost never do — so equal names no longer
#: give similar filters, and nothing about a bigram's bit positions carries from one record to the next.
#: Names and contact fields are salted by the birth date; the birth date by the phonetic code of the first
#: name's formal form (``cilink.link.names.formal_phonetic``: a married name keeps first name and birth
#: date, and a nickname or one-letter typo keeps the birth date); the SSN by the phonetic code of the last
#: name (a wrong birth date or a nickname keeps SSN agreement) — chosen on the demo so that one error
#: seldom takes more than two comparisons. ``~`` marks a phonetic salt (``~~``: of the formal form), ``+``
#: joins parts. v3 adds the clear birth year to the birth date's salt: it hides nothing (the year is in the
#: file) but splits the first-name code's groups of dozens into groups of a few, so half the records known
#: no longer give the other birth dates away (93 % of them at 100,000 records under v2); a wrong birth year
#: now keys the date apart, a cost of about 0.002 F1 on the demo.
CROSS_SALTS_V2 = {
    "first_name": "dob", "middle_name": "dob", "last_name": "dob", "dob": "first_name~~", "ssn": "last_name~",
    "ssn_last4": "last_name~", "street": "dob", "zip5": "dob", "phone": "dob", "email": "dob",
}
CROSS_SALTS = {**CROSS_SALTS_V2, "dob": "first_name~~+birth_year"}
#: identifying fields dropped outright (too little signal to be worth an encoding)
DROPPED_FIELDS = ("name_suffix", "unit", "shared_id")


@dataclass(frozen=True)
class Scheme:
    """Parameters of one encoding: filter size ``m`` bits, ``k`` bit positions per bigram, hardening.

    ``blip``: probability with which every bit is flipped (0 = unhardened). ``scheme``: ``SCHEME_ID`` salts
    each field by another field of the record (``CROSS_SALTS``); ``SCHEME_V1`` salts nothing, or names by
    the clear birth year with ``salt_names`` (kept to read old files; that salt is in the file in clear).
    """

    m: int = 1024
    k: int = 15
    blip: float = 0.01
    salt_names: bool = False
    fields: tuple[str, ...] = ENCODED_FIELDS
    scheme: str = field(default=SCHEME_ID)

    def salt_of(self, name: str) -> str | None:
        """The field whose value salts ``name``'s bigram keys (``birth_year``: v1's clear year), or None."""
        if self.scheme == SCHEME_V1:
            return BIRTH_YEAR if self.salt_names and name.endswith("_name") else None
        return (CROSS_SALTS_V2 if self.scheme == SCHEME_V2 else CROSS_SALTS).get(name)

    @property
    def deprecated(self) -> bool:
        """Whether files of this scheme are read only for compatibility (re-encode them)."""
        return self.scheme == SCHEME_V1

    def metadata(self, secret: bytes) -> dict[str, object]:
        """The metadata written with an encoded file (parameters + key fingerprint, never the key)."""
        out = asdict(self)
        out["fields"] = list(self.fields)
        out["key_fingerprint"] = key_fingerprint(secret)
        if self.scheme != SCHEME_V1:
            out["salted_by"] = {f: self.salt_of(f) for f in self.fields}  # which field, never its value
        return out

    @classmethod
    def from_metadata(cls, meta: dict[str, object]) -> Scheme:
        """The scheme an encoded file was written with."""
        return cls(m=int(meta["m"]), k=int(meta["k"]), blip=float(meta["blip"]),  # type: ignore[arg-type]
                   salt_names=bool(meta["salt_names"]), fields=tuple(meta["fields"]),  # type: ignore[arg-type]
                   scheme=str(meta["scheme"]))


def key_fingerprint(secret: bytes) -> str:
    """HMAC-SHA256 of a fixed label under the secret (first 16 hex digits): equal secrets ⇔ equal prints."""
    return hmac.new(secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def read_encoding_secret(env_name: str = SECRET_ENV) -> bytes:
    """The partners' shared encoding secret from the environment (a clear ConfigError when unset)."""
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"the encoding secret is missing: environment variable {env_name} is not set",
                          hint=f"set {env_name} to the secret the partners agreed on (never give it to the hub "
                               "unless the hub encodes plaintext partners, see docs/encodings.md)")
    if len(value) < 16:
        raise ConfigError(f"{env_name} is too short ({len(value)} characters)",
                          hint="use at least 16 random characters, e.g. `openssl rand -hex 32`")
    return value.encode("utf-8")


def metadata_bytes(meta: dict[str, object]) -> bytes:
    """Canonical JSON for the Parquet key-value metadata."""
    return json.dumps(meta, sort_keys=True).encode()
