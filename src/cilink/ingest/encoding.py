"""Turn a partner file's bytes into UTF-8 text: BOMs, configured encodings, detection, NUL bytes.

Partners' exports arrive as UTF-8 (with or without BOM), UTF-16 from some Windows tools, and very often
cp1252/latin-1 from older systems. Bytes that no encoding explains reject the whole file (exit 3).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from cilink.errors import InputRejected
from cilink.ingest.reasons import FileProblem

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]

#: single-byte Western encodings charset-normalizer cannot tell apart on a few accented names
_LATIN_FAMILY = ("cp125", "iso8859", "latin", "mac_", "cp437", "cp850", "cp858", "cp775", "cp857", "cp1006")
_SAMPLE = 2 * 1024 * 1024


@dataclass(frozen=True)
class Decoded:
    """UTF-8 bytes of a file (BOM removed, NUL bytes dropped) and how they were obtained."""

    data: bytes
    encoding: str
    nul_bytes_removed: int


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _detect(data: bytes) -> str | None:
    """Best guess for non-UTF-8 bytes, or None when they look binary."""
    from charset_normalizer import from_bytes

    best = from_bytes(data[:_SAMPLE]).best()
    if best is None:
        return None
    enc = best.encoding.lower()
    # charset-normalizer often answers cp1250 for cp1252 text with a handful of accents (the byte values
    # of é, ü, ñ … are the same). US partners' legacy exports are overwhelmingly cp1252, so within the
    # Latin single-byte family we prefer cp1252 when it decodes; a partner on cp1250 configures `encoding`.
    if enc.startswith(_LATIN_FAMILY):
        try:
            data.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            return "latin-1" if enc in ("latin_1", "iso8859_1") else best.encoding
    return best.encoding


def decode(data: bytes, *, encoding: str | None, file: str) -> Decoded:
    """Decode ``data`` with the configured ``encoding`` (or detect it) and return UTF-8 bytes.

    Raises InputRejected(undecodable) naming the line of the first bad byte — never its value.
    Example: ``decode(b"id\\n1\\n", encoding=None, file="a.csv").data == b"id\\n1\\n"``
    """
    chosen = encoding
    verified_utf8 = False
    if chosen is None:
        for bom, name in _BOMS:
            if data.startswith(bom):
                chosen = name
                break
    if chosen is None:
        try:
            data.decode("utf-8")
            chosen, verified_utf8 = "utf-8", True
        except UnicodeDecodeError:
            chosen = _detect(data)
            if chosen is None:
                raise InputRejected(
                    f"{file}: the bytes are not text in any known encoding (is it a spreadsheet or a "
                    "compressed file saved with a .csv name?)",
                    hint="re-export the file as CSV (UTF-8), or set the partner's `format` to match the file",
                    file=file, reason=FileProblem.UNDECODABLE,
                ) from None
    elif chosen.replace("_", "-").lower() in ("utf-8", "utf8") and data.startswith(codecs.BOM_UTF8):
        chosen = "utf-8-sig"
    try:
        # already checked to be UTF-8: skip a decode/encode round trip on large files
        text_bytes = data if verified_utf8 else data.decode(chosen).encode("utf-8")
    except UnicodeDecodeError as e:
        raise InputRejected(
            f"{file}: line {_line_of(data, e.start)} has bytes that are not valid {chosen}",
            hint="set `encoding` for this partner in cilink.toml (e.g. \"cp1252\" or \"latin-1\"), "
            "or ask the partner to re-export as UTF-8",
            file=file, reason=FileProblem.UNDECODABLE,
        ) from None
    except LookupError:
        raise InputRejected(
            f"{file}: unknown encoding '{chosen}' configured for this partner",
            hint="use a Python codec name such as utf-8, cp1252, latin-1 or utf-16",
            file=file, reason=FileProblem.UNDECODABLE,
        ) from None
    nul = text_bytes.count(b"\x00")
    if nul:
        # NUL is never meaningful in administrative text and breaks downstream tools; drop it
        text_bytes = text_bytes.replace(b"\x00", b"")
    if b"\n" not in text_bytes and b"\r" in text_bytes:
        text_bytes = text_bytes.replace(b"\r", b"\n")  # classic Mac line endings
    return Decoded(text_bytes, chosen, nul)
