"""What a file is, by its content (magic bytes), before any reader sees it.

A workbook saved with a .csv name, a zip given to a CSV partner or a PDF in the inbox used to reach a
reader that then failed with a misleading message ("set encoding cp1252", then "not valid cp1252").
Here the first bytes decide the kind, and a kind that does not fit the partner's ``format`` rejects the
file (``wrong_format``, exit 3) with both named.
"""

from __future__ import annotations

import codecs
import io
import zipfile

from cilink.config import FileFormat
from cilink.errors import InputRejected
from cilink.ingest.reasons import FileProblem

#: kind → how the message names it
KINDS = {
    "xlsx": "an Excel workbook (.xlsx)",
    "xls": "a legacy Excel (.xls) or password-protected Office file",
    "zip": "a zip archive",
    "damaged-zip": "a damaged zip archive (or .xlsx workbook)",
    "parquet": "a Parquet file",
    "json": "JSON text",
    "text": "delimited text (CSV)",
    "pdf": "a PDF document",
    "gzip": "a gzip-compressed file",
    "7z": "a 7-Zip archive",
    "rar": "a RAR archive",
}
_MAGIC = [
    (b"PAR1", "parquet"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "xls"),
    (b"%PDF", "pdf"),
    (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!", "rar"),
]
#: which kinds each configured format reads
_ACCEPTS = {
    FileFormat.CSV: {"text"},
    FileFormat.JSON: {"json"},
    FileFormat.XLSX: {"xlsx", "damaged-zip"},
    FileFormat.PARQUET: {"parquet"},
    FileFormat.ENCODED: {"parquet"},
    FileFormat.HMIS_CSV: {"zip", "damaged-zip"},
}
_FORMAT_FOR = {"text": "csv", "json": "json", "xlsx": "xlsx", "parquet": "parquet", "zip": "hmis-csv"}


def _is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def sniff_kind(data: bytes) -> str:
    """The file's kind from its content: one of ``KINDS`` (text when nothing binary is recognised)."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if _is_zip(data):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = set(z.namelist())
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return "damaged-zip"  # xlsx and hmis-csv readers say what is wrong with it
        return "xlsx" if "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names) else "zip"
    head = data[:64]
    for bom, enc in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                     (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            head = head[len(bom):].decode(enc, errors="ignore").encode()
            break
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return "text"


def check_identity(data: bytes, file: str, fmt: FileFormat, partner_id: str) -> str:
    """The file's kind; raises InputRejected(wrong_format) when it is not what ``fmt`` reads."""
    kind = sniff_kind(data)
    if kind in _ACCEPTS.get(fmt, {kind}):
        return kind
    if fmt == FileFormat.CSV and kind == "json":
        # a CSV whose first header happens to start with a bracket is odd but possible: only say JSON
        # when the whole start reads as a JSON document opening
        stripped = data.lstrip(codecs.BOM_UTF8 + b" \t\r\n")
        if not stripped.startswith((b'{"', b"[{", b'[ {', b"[\n", b"[\r\n", b"{\n", b"{\r\n")):
            return "text"
    if kind == "xls" and "EncryptionInfo".encode("utf-16-le") in data:
        raise InputRejected(f"{file}: the workbook is password-protected", hint="ask the partner to export it "
                            "again without a password (send it over the agreed secure channel instead)",
                            file=file, reason=FileProblem.ENCRYPTED)
    suggestion = _FORMAT_FOR.get(kind)
    hint = (f"set format = \"{suggestion}\" for partner '{partner_id}' in cilink.toml if the partner now sends "
            f"this kind of file, or ask the partner for a {fmt} export" if suggestion else
            f"ask the partner for a {fmt} export (cilink does not read {KINDS[kind]})")
    raise InputRejected(
        f"{file}: the file is {KINDS[kind]}, but partner '{partner_id}' has format = \"{fmt}\"",
        hint=hint, file=file, reason=FileProblem.WRONG_FORMAT,
    )
