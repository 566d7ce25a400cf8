"""Resource caps for what a partner file may make cilink do: unzip, allocate, recurse.

A 1 MB zip that inflates to 1 GiB, a 5 KB workbook with one cell at XFD1048576 (a dense 17-billion
cell grid to a reader), or JSON nested 200,000 deep are not exports but accidents or attacks; each is
rejected alone (exit 3, ``too_large`` / ``encrypted`` / ``unsupported_content``) before the expensive
step, so it can neither abort the process nor stop `cilink run` for the other partners.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from typing import Any

from cilink.errors import InputRejected
from cilink.ingest.reasons import FileProblem

#: total uncompressed bytes cilink unpacks from one zip (an HMIS export or an xlsx workbook)
MAX_UNZIPPED_BYTES = 4 * 1024**3
#: a member inflating more than this many times its compressed size is a zip bomb, not a CSV
MAX_ZIP_RATIO = 200
#: the ratio cap applies to members larger than this (tiny files of blanks compress very well)
RATIO_FLOOR_BYTES = 8 * 1024**2
#: cells a worksheet may span (rows x columns of its used range); Excel's own grid is 17 billion
MAX_XLSX_CELLS = 50_000_000
#: columns a worksheet may span
MAX_XLSX_COLUMNS = 5_000
#: nesting depth of a JSON value inside a record (records of flat fields need 2 or 3)
MAX_JSON_DEPTH = 32
#: zip compression methods Python reads: stored, deflate, bzip2, lzma (Deflate64 = 9 is not among them)
_READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                     zipfile.ZIP_LZMA: "lzma"}
_METHOD_NAMES = {9: "Deflate64", 98: "PPMd", 99: "AES-encrypted", 93: "Zstandard", 95: "xz"}


def _reject(file: str, problem: FileProblem, message: str, hint: str) -> InputRejected:
    return InputRejected(f"{file}: {message}", hint=hint, file=file, reason=problem)


def check_zip_members(z: zipfile.ZipFile, file: str, members: list[zipfile.ZipInfo]) -> None:
    """Reject encrypted members, unreadable compression methods and declared sizes over the caps."""
    total = 0
    for info in members:
        if info.flag_bits & 0x1 or info.compress_type == 99:
            raise _reject(file, FileProblem.ENCRYPTED, "the zip is password-protected",
                          "ask the partner to send the export without a zip password (over the agreed secure "
                          "channel instead)")
        if info.compress_type not in _READABLE_METHODS:
            method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
            raise _reject(file, FileProblem.UNSUPPORTED_CONTENT,
                          f"a member is compressed with {method}, which cilink cannot unpack",
                          "re-zip the export with standard (Deflate) compression, or give the unzipped folder")
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise _reject(file, FileProblem.TOO_LARGE,
                          f"the zip unpacks to more than {MAX_UNZIPPED_BYTES // 1024**3} GiB",
                          "give the export as an unzipped folder, or ask the partner for a smaller extract")
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise _reject(file, FileProblem.TOO_LARGE,
                          f"a member inflates {info.file_size // max(info.compress_size, 1)} times its packed size "
                          f"(at most {MAX_ZIP_RATIO})", "ask the partner for a new export; this zip looks damaged")


def read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, file: str) -> bytes:
    """A member's bytes, read in one read of at most one byte beyond its declared size (the header may lie)."""
    try:
        with z.open(info) as fh:
            # one byte more than declared, in one read: a member that yields it lies about its size
            out = fh.read(info.file_size + 1)
            if len(out) > info.file_size:
                raise _reject(file, FileProblem.TOO_LARGE, "a member unpacks to more than its declared size",
                              "ask the partner for a new export; this zip looks damaged or crafted")
    except InputRejected:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise _reject(file, FileProblem.MALFORMED, "a member of the zip is damaged (checksum or data error)",
                      "ask the partner to export and zip it again") from e
    except (NotImplementedError, RuntimeError) as e:  # unsupported method / password required
        raise _reject(file, FileProblem.UNSUPPORTED_CONTENT, "a member of the zip cannot be unpacked",
                      "re-zip the export with standard (Deflate) compression and no password") from e
    return out


_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\b[^>]*?\bref="[A-Z]{1,3}[0-9]{1,7}:?([A-Z]{1,3})?([0-9]{1,7})?"')
#: bytes that may separate XML attributes
_XML_SPACE = (0x20, 0x09, 0x0A, 0x0D)


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def _sheet_extent(xml: bytes) -> tuple[int, int]:
    """(last row, last column) any cell or row of a worksheet's XML names in its ``r`` attribute.

    Vectorised over the bytes with numpy: a 257,000-row export is 216 MB of XML holding 4.1 million
    references, which a regular expression took 3.6 s to walk and this takes 0.65 s. Every ``r="…"`` attribute
    counts (cells' ``A1`` and rows' ``1`` alike), which can only make the caps stricter; a reference with more
    than three letters or seven digits (beyond Excel's grid) counts as over the caps. Only the largest
    reference is wanted, so no reference is converted to a number: among those with the most letters the
    largest column is the greatest byte string, and likewise the largest row among those with as many digits.
    """
    import numpy as np

    a = np.frombuffer(xml, dtype=np.uint8)
    if a.size < 8:
        return 0, 0
    # b'r="' after a space: one pass for the 'r' bytes (fewer than '=' or '"'), then look around those only
    r = np.flatnonzero(a[1:-2] == 0x72) + 1
    r = r[(a[r + 1] == 0x3D) & (a[r + 2] == 0x22)]
    r = r[np.isin(a[r - 1], _XML_SPACE)]
    start = r + 3  # first byte of the value
    if start.size == 0:
        return 0, 0
    padded = np.concatenate([a, np.zeros(12, dtype=np.uint8)])  # values near the end read zeros past it
    letters, letter_bytes = _run_of(padded, start, ord("A"), 26, 4)
    if letters is None:
        return 1 << 40, 1 << 40
    digits, digit_bytes = _run_of(padded, start + letters, ord("0"), 10, 8)
    if digits is None:
        return 1 << 40, 1 << 40
    most = int(letters.max())
    col = 0
    if most:  # no letter is a zero: more letters is always a larger column
        for ch in _greatest(letter_bytes[:most], letters == most):
            col = col * 26 + ch - 64
    # digits may start with zeros ("A0099"): the greatest of each length, compared as numbers
    row = max((int(bytes(_greatest(digit_bytes[:n], digits == n))) for n in range(1, int(digits.max()) + 1)
               if (digits == n).any()), default=0)
    return row, col


def _run_of(padded: Any, start: Any, first: int, count: int, limit: int) -> tuple[Any, list[Any]]:
    """How many bytes from each ``start`` are in ``first`` … ``first + count − 1`` (capped below ``limit``),
    and the bytes at each offset; (None, []) when some run reaches ``limit`` (beyond Excel's grid)."""
    import numpy as np

    length = np.zeros(start.size, np.int64)
    open_ = np.ones(start.size, dtype=bool)
    taken = []
    for k in range(limit):
        ch = padded[start + k]
        open_ &= (ch - np.uint8(first)) < count  # uint8 wraps below ``first``: one comparison for the range
        taken.append(ch)
        length += open_
    return (None, []) if open_.any() else (length, taken)


def _greatest(columns: list[Any], among: Any) -> list[int]:
    """The greatest byte string, column by column, among the rows ``among`` (all of length ``len(columns)``)."""
    import numpy as np

    rows = np.flatnonzero(among)
    out = []
    for c in columns:
        values = c[rows]
        best = int(values.max())
        out.append(best)
        rows = rows[values == best]
    return out


def check_xlsx(data: bytes, file: str) -> None:
    """Zip caps for the workbook, then the extent of every worksheet (cells it spans) against the caps."""
    import io

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise _reject(file, FileProblem.MALFORMED, "not a readable .xlsx workbook (the zip is damaged)",
                      "re-save the file as .xlsx, or check the partner's `format` in cilink.toml") from e
    with z:
        infos = z.infolist()
        check_zip_members(z, file, infos)
        for info in infos:
            if not (info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml")):
                continue
            xml = read_member(z, info, file)
            rows, cols = _sheet_extent(xml)
            dim = _DIMENSION.search(xml[:4096])
            if dim and dim.group(1) and dim.group(2):
                cols, rows = max(cols, _column_number(dim.group(1))), max(rows, int(dim.group(2)))
            if cols > MAX_XLSX_COLUMNS or rows * cols > MAX_XLSX_CELLS:
                raise _reject(file, FileProblem.TOO_LARGE,
                              f"a worksheet spans {rows:,} rows x {cols:,} columns ({rows * cols:,} cells; at most "
                              f"{MAX_XLSX_CELLS:,} cells and {MAX_XLSX_COLUMNS:,} columns)",
                              "delete stray cells far right of or below the data (Ctrl+End shows them), save, "
                              "and send the file again; or export it as CSV")


def json_too_deep(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``value`` nests lists/objects deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values() if isinstance(x, dict | list))
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v if isinstance(x, dict | list))
    return False
