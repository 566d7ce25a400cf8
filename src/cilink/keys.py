"""Secret continuity (docs/operations.md#secrets): strength, key files, and a keyed fingerprint per secret.

A workspace's ``person_id`` generator and every release's ``person_key`` are keyed by its secrets, so a
different secret silently breaks every join across releases. The ledger therefore keeps, per secret, a keyed
fingerprint — HMAC-SHA256(secret, a fixed label), which says nothing about the secret — recorded on first
use; a different secret later is a configuration error (exit 2) until `cilink secret rotate` re-keys on
purpose (audited).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import string
from pathlib import Path

from cilink.errors import ConfigError
from cilink.ledger import Ledger

MIN_BITS = 128
_FINGERPRINT_LABEL = b"cilink secret fingerprint v1"
#: secrets printed in cilink's own Makefile and docs: accepted only in a `cilink demo` workspace
PUBLISHED = frozenset({b"demo-secret-not-for-production"})
#: the ledger name of the workspace (linkage and default-audience) secret
LINKAGE = "linkage"


_BASE64 = frozenset(string.ascii_letters + string.digits + "+/-_=")


def estimated_bits(secret: bytes) -> float:
    """An upper bound of the secret's strength: length × log2(alphabet of the character classes it uses).

    Hex is 4 bits a character, base64 6; a random passphrase counts its letters and separators. A phrase
    of dictionary words scores higher than it deserves: generate secrets (`cilink secret generate`).
    """
    try:
        text = secret.decode("ascii")
    except UnicodeDecodeError:
        return 4.0 * len(secret)  # non-ASCII text: at most a nibble a byte counted
    if len(set(text)) < 10:  # "aaaa…" or "abab…": its length says nothing
        return 4.0 * len(set(text))
    if all(c in string.hexdigits for c in text) and (text == text.lower() or text == text.upper()):
        return 4.0 * len(text)
    alphabet = sum(size for chars, size in ((string.ascii_lowercase, 26), (string.ascii_uppercase, 26),
                                            (string.digits, 10)) if any(c in chars for c in text))
    alphabet += 33 if any(c not in string.ascii_letters + string.digits for c in text) else 0
    if alphabet == 52 and all(c in _BASE64 for c in text):
        # both cases and nothing else: a base64 secret that happened to draw no digit or '-'/'_' (one
        # `secrets.token_urlsafe(16)` in a hundred) is still 6 bits a character
        alphabet = 64
    return len(text) * math.log2(alphabet)


def fingerprint(secret: bytes) -> str:
    """Keyed fingerprint of a secret (128 bits, hex): equal for equal secrets, and reveals nothing else."""
    return hmac.new(secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]


def generate_secret() -> str:
    """A new secret: 256 random bits as 64 hex characters."""
    return secrets.token_hex(32)


def check_strength(secret: bytes, source: str, *, demo: bool = False) -> None:
    """ConfigError (exit 2) for a secret under MIN_BITS, or a published one outside a demo workspace."""
    if secret in PUBLISHED and not demo:
        raise ConfigError(f"the secret in {source} is cilink's published demo secret",
                          hint="generate one with `cilink secret generate FILE` and use that file's contents")
    bits = estimated_bits(secret)
    if bits < MIN_BITS:
        raise ConfigError(f"the secret in {source} is too weak: about {bits:.0f} bits, at least {MIN_BITS} needed",
                          hint="generate one with `cilink secret generate FILE` (256 random bits) and use that "
                          "file's contents")


def check_key_file(path: Path, setting: str, workspace: Path) -> None:
    """ConfigError (exit 2) for a key file inside the workspace (backups and git would carry it)."""
    resolved = path.expanduser().resolve()
    if resolved.is_relative_to(workspace.resolve()):
        raise ConfigError(f"{setting} ({path}) is inside the workspace",
                          hint="move the key file outside the workspace (e.g. /etc/cilink/) and update "
                          f"{setting}")


def guarded(ledger_path: Path, name: str, secret: bytes, source: str, *, demo: bool = False) -> bytes:
    """The secret, after the strength check and the fingerprint check against the one recorded for ``name``.

    The first use records the fingerprint; a different secret later is a ConfigError naming the fix.
    """
    check_strength(secret, source, demo=demo)
    fp = fingerprint(secret)
    with Ledger(ledger_path) as ledger:
        recorded = ledger.secret_fingerprint(name)
        if recorded is None:
            ledger.set_secret_fingerprint(name, fp, audit={
                "command": "secret", "action": "secret_recorded", "outcome": "ok",
                "inputs": {"secret": name}, "details": {"fingerprint": fp}})
        elif not hmac.compare_digest(recorded, fp):
            raise ConfigError(
                f"the secret in {source} is not the one this workspace uses for {name} "
                f"(fingerprint {fp[:8]}…, recorded {recorded[:8]}…)",
                hint=f"set {source} to the workspace's secret; to re-key on purpose (every later person_key "
                f"changes) run `cilink secret rotate{_audience_flag(name)}`")
    return secret


def rotate(ledger_path: Path, name: str, secret: bytes, source: str, *, demo: bool = False) -> tuple[str, str]:
    """Record ``secret`` as the new secret of ``name`` (audited with both fingerprints); returns (old, new)."""
    check_strength(secret, source, demo=demo)
    fp = fingerprint(secret)
    with Ledger(ledger_path) as ledger:
        old = ledger.secret_fingerprint(name) or ""
        if old == fp:
            raise ConfigError(f"the secret in {source} is already the one recorded for {name}",
                              hint=f"set {source} to the new secret first, then rotate")
        ledger.set_secret_fingerprint(name, fp, audit={
            "command": "secret", "action": "secret_rotate", "outcome": "ok", "inputs": {"secret": name},
            "details": {"old_fingerprint": old, "new_fingerprint": fp}})
    return old, fp


def _audience_flag(name: str) -> str:
    return f" --audience {name.removeprefix('audience:')}" if name.startswith("audience:") else ""


def write_key_file(path: Path, *, workspace: Path | None = None) -> None:
    """Create ``path`` holding a new secret, mode 0600 from the start; never overwrites a file.

    ``workspace`` (or the current directory when it is one) must not contain the file.
    """
    import os

    from cilink.config import CONFIG_FILE
    from cilink.errors import UsageError

    root = workspace if workspace is not None else Path.cwd()
    if (root / CONFIG_FILE).is_file() and path.resolve().parent.is_relative_to(root.resolve()):
        raise UsageError(f"{path} is inside the workspace {root}", hint="write the key file outside the workspace")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists", hint="choose a new file; an existing secret is never "
                         "overwritten") from None
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # whatever the umask
        fh.write(generate_secret() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
