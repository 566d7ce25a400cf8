"""Turn a partner file's bytes into UTF-8 text: BOMs, configured encodings, detection, NUL bytes.

Partners' exports arrive as UTF-8 (with or without BOM), UTF-16 from some Windows tools, and very often
cp1252/latin-1 from older systems. Bytes that no encoding explains reject the whole file (exit 3).
"""

from __future__ import annotations

import codecs
import re
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

#: encodings detection chooses from (a partner on anything else configures `encoding`); ordered by how
#: often US partners' exports use them. Wider detection (charset-normalizer) picked hp_roman8 or cp1250
#: for cp1252 files with a few accents, silently turning "José" into "josu".
CANDIDATES = ("utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1")
_SAMPLE = 2 * 1024 * 1024
#: a well-formed multi-byte UTF-8 sequence: its presence says "UTF-8 text", so stray bytes are repaired
_UTF8_MULTI = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
#: C0 control bytes no text export holds (tab, LF, CR, NUL and Ctrl-Z excepted)
_CONTROL = re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x19\x1b-\x1f\x7f]")


@dataclass(frozen=True)
class Decoded:
    """UTF-8 bytes of a file (BOM removed, NUL bytes dropped, line ends LF) and how they were obtained.

    ``bytes_repaired`` counts bytes that were not valid in the file's encoding and were read as cp1252
    (one stray cp1252 byte in a UTF-8 file) or replaced by U+FFFD; the file is flagged when it is non-zero.
    """

    data: bytes
    encoding: str
    nul_bytes_removed: int
    bytes_repaired: int = 0


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _utf16_without_bom(sample: bytes) -> str | None:
    """utf-16-le/-be when every other byte is NUL (ASCII text in UTF-16 written without a BOM)."""
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _looks_binary(sample: bytes) -> bool:
    return len(_CONTROL.findall(sample)) > max(2, len(sample) // 200) or sample.count(0) > len(sample) // 10


_ESCAPED = re.compile("[\udc80-\udcff]")


def _repair_utf8(data: bytes) -> tuple[bytes, int]:
    """UTF-8 with stray bytes: each invalid byte read as cp1252 (else U+FFFD); (UTF-8 bytes, bytes repaired)."""
    text = data.decode("utf-8", errors="surrogateescape")  # an invalid byte b becomes U+DC00+b
    repaired = len(_ESCAPED.findall(text))
    text = _ESCAPED.sub(lambda m: bytes([ord(m.group()) - 0xDC00]).decode("cp1252", errors="replace"), text)
    return text.encode("utf-8"), repaired


def _detect(data: bytes) -> str | None:
    """One of CANDIDATES for bytes that are not strict UTF-8, or None when they look binary.

    Returns "utf-8" for UTF-8 text with a few stray bytes (decode then repairs them).
    """
    sample = data[:_SAMPLE]
    if _looks_binary(sample):
        return None
    if _UTF8_MULTI.search(data):
        return "utf-8"
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"  # bytes cp1252 leaves undefined (0x81, 0x8d …): latin-1 reads every byte


def _not_text(file: str) -> InputRejected:
    return InputRejected(
        f"{file}: the bytes are not text in any known encoding (is it a spreadsheet or a "
        "compressed file saved with a .csv name?)",
        hint="re-export the file as CSV (UTF-8), or set the partner's `format` to match the file",
        file=file, reason=FileProblem.UNDECODABLE,
    )


def decode(data: bytes, *, encoding: str | None, file: str) -> Decoded:
    """Decode ``data`` with the configured ``encoding`` (or detect it) and return UTF-8 bytes.

    Raises InputRejected(undecodable) naming the line of the first bad byte — never its value.
    Example: ``decode(b"id\\n1\\n", encoding=None, file="a.csv").data == b"id\\n1\\n"``
    """
    chosen = encoding
    verified_utf8 = False
    repaired = 0
    if chosen is None:
        for bom, name in _BOMS:
            if data.startswith(bom):
                chosen = name
                break
    if chosen is None:
        chosen = _utf16_without_bom(data[:4096])
    if chosen is None:
        try:
            data.decode("utf-8")
            chosen, verified_utf8 = "utf-8", True
            if _looks_binary(data[:_SAMPLE]):  # control bytes are valid UTF-8 too, but no export is made of them
                raise _not_text(file)
        except UnicodeDecodeError:
            chosen = _detect(data)
            if chosen is None:
                raise _not_text(file) from None
    elif chosen.replace("_", "-").lower() in ("utf-8", "utf8") and data.startswith(codecs.BOM_UTF8):
        chosen = "utf-8-sig"
    try:
        # already checked to be UTF-8: skip a decode/encode round trip on large files
        if verified_utf8:
            text_bytes = data
        elif encoding is None and chosen == "utf-8":
            text_bytes, repaired = _repair_utf8(data)
        else:
            text_bytes = data.decode(chosen).encode("utf-8")
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
    if b"\r" in text_bytes:
        # CRLF (Windows), CR alone (classic Mac) or both in one file (appended by different tools): a
        # reader seeing only one convention merges the other's rows into one, so every line end becomes LF
        text_bytes = text_bytes.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return Decoded(text_bytes, chosen, nul, repaired)
