"""Partner file formats → one raw table: every cell a string (or null), plus the source row number.

Readers decide nothing about meaning: they only get text out of CSV, XLSX, JSON/NDJSON and Parquet
faithfully, number the rows as the partner sees them, and note rows with the wrong number of fields.
Whole-file problems (empty, undecodable, wrong sheet, malformed) raise InputRejected (exit 3).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field

import polars as pl

from cilink.errors import InputRejected
from cilink.ingest.encoding import decode
from cilink.ingest.limits import MAX_JSON_DEPTH, check_xlsx, json_too_deep
from cilink.ingest.reasons import FileProblem

ROW = "_cilink_row"
#: number of fields found in the source row; differs from the header's count on ragged rows
NFIELDS = "_cilink_nfields"
_DELIMITERS = [",", ";", "\t", "|"]
_LEADING_BLANK_LINES = re.compile(rb"\A(?:[ \t]*\n)+")
_LINE_SEP = "\x1f"  # ASCII unit separator: a byte no CSV uses, so a whole line reads as one field


@dataclass
class RawTable:
    """A partner file as text: ``frame`` has one String column per source column, plus ``_cilink_row``
    (1-based data row, header excluded) and ``_cilink_nfields`` (fields found in that row).
    """

    frame: pl.DataFrame
    headers: list[str]
    file: str
    native_dates: bool = False
    encoding: str | None = None
    delimiter: str | None = None
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.frame.height


def _reject(file: str, problem: FileProblem, message: str, hint: str, column: str | None = None) -> InputRejected:
    return InputRejected(f"{file}: {message}", hint=hint, file=file, column=column, reason=problem)


def _unique_names(headers: list[str]) -> list[str]:
    """Frame column names for source headers: blank ones named by position, repeats numbered."""
    seen: dict[str, int] = {}
    names = []
    for i, h in enumerate(headers):
        base = h if h else f"column_{i + 1}"
        n = seen.get(base, 0) + 1
        seen[base] = n
        names.append(base if n == 1 else f"{base} ({n})")
    return names


def _clean_header(h: object) -> str:
    return "" if h is None else " ".join(str(h).replace("\ufeff", "").split())


def _finish(frame: pl.DataFrame, headers: list[str], file: str, nfields: pl.Series | None = None,
            **kw: object) -> RawTable:
    n = len(headers)
    if frame.height == 0:
        raise _reject(file, FileProblem.NO_DATA_ROWS, "the file has a header but no data rows",
                      "ask the partner for the full export (this one holds column names only)")
    cells = frame.columns
    frame = frame.with_columns(
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW),
        (nfields.cast(pl.Int64) if nfields is not None else pl.lit(n, dtype=pl.Int64)).alias(NFIELDS),
    )
    # a fully blank line (or a row of empty cells) is no record: skipped and counted, not quarantined
    # (row numbers keep counting it, so they still match the partner's file)
    blank = pl.all_horizontal(pl.col(c).cast(pl.String).str.strip_chars().fill_null("") == "" for c in cells) \
        if cells else pl.lit(True)
    blank_rows = int(frame.select(blank.sum()).item())
    if blank_rows:
        frame = frame.filter(~blank)
        if frame.height == 0:
            raise _reject(file, FileProblem.NO_DATA_ROWS, f"the file holds {blank_rows} blank rows and no data",
                          "ask the partner for the full export")
        notes = dict(kw.pop("notes", None) or {})  # type: ignore[call-overload]
        notes["blank_rows_skipped"] = blank_rows
        kw["notes"] = notes
    return RawTable(frame=frame, headers=headers, file=file, **kw)  # type: ignore[arg-type]


# CSV -------------------------------------------------------------------------------------------------
def sniff_delimiter(first_line: str) -> str:
    """The delimiter of a header line: the candidate seen most often outside quotes (',' when none)."""
    unquoted = re.sub(r'"(?:[^"]|"")*"', "", first_line)
    counts = {d: unquoted.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties resolve in _DELIMITERS order
    return best if counts[best] else ","


def _field_counts_fast(data: bytes, sep: str) -> pl.Series | None:
    """Fields per data row, counted on whole lines with polars; None when rows may span lines."""
    if _LINE_SEP.encode() in data:
        return None
    lines = pl.read_csv(data, has_header=False, separator=_LINE_SEP, quote_char=None, new_columns=["l"],
                        infer_schema=False, empty_string_is_null=False)["l"].fill_null("")
    if (lines.str.count_matches('"', literal=True) % 2 != 0).any():
        return None  # a quoted field holds a newline (or a stray quote): let the csv module decide
    s = re.escape(sep)
    line = pl.col("l")
    # drop quoted fields (a quote that opens a field, up to its closing quote) so their delimiters
    # don't count, then fields = delimiters + 1; a blank line has no fields (as Python's csv module says)
    unquoted = line.str.replace_all(rf'(^|{s})"(?:[^"]|"")*"', "${1}")
    counts = pl.when(line.str.strip_chars("\r") == "").then(0) \
        .otherwise(unquoted.str.count_matches(sep, literal=True) + 1)
    return pl.DataFrame({"l": lines}).select(counts.cast(pl.Int64).alias(NFIELDS)).to_series().slice(1)


def _normalize_with_csv_module(text: str, sep: str, n: int) -> tuple[bytes, pl.Series]:
    """Slow, exact path for awkward files: re-write every row with exactly ``n`` quoted fields.

    Used when polars cannot parse the file (stray quotes inside unquoted fields) or when rows may span
    lines; Python's csv module is the reference for where rows end.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    counts = []
    for row in reader:
        counts.append(len(row))
        writer.writerow((row + [""] * n)[:n])
    return out.getvalue().encode("utf-8"), pl.Series(NFIELDS, counts[1:], dtype=pl.Int64)


def read_csv_bytes(raw: bytes, file: str, *, encoding: str | None = None, delimiter: str | None = None) -> RawTable:
    """Read CSV bytes (any encoding, any of , ; tab | delimiters) into a RawTable.

    Example: ``read_csv_bytes(b"id;name\\n1;Ann\\n", "a.csv").delimiter == ";"``
    """
    decoded = decode(raw, encoding=encoding, file=file)
    data = _LEADING_BLANK_LINES.sub(b"", decoded.data)  # blank lines above the header (some exporters)
    if not data.strip():
        raise _reject(file, FileProblem.EMPTY_FILE, "the file is empty", "ask the partner to export it again")
    head = data[: 1024 * 1024].decode("utf-8", errors="replace")
    sep = delimiter or sniff_delimiter(head.split("\n", 1)[0])
    header_row = next(csv.reader(io.StringIO(head, newline=""), delimiter=sep), [])
    headers = [_clean_header(h) for h in header_row]
    if not any(headers):
        raise _reject(file, FileProblem.MALFORMED, "the first line holds no column names",
                      "remove blank lines above the header, or re-export with a header row")
    n = len(headers)
    names = _unique_names(headers)
    schema = {name: pl.String for name in names}
    counts: pl.Series | None = None
    frame: pl.DataFrame | None = None
    try:
        frame = pl.read_csv(data, has_header=False, skip_rows=1, separator=sep, schema=schema,
                            missing_columns="insert", truncate_ragged_lines=True, infer_schema=False)
        counts = _field_counts_fast(data, sep)
    except pl.exceptions.PolarsError:
        frame = None
    if frame is None or counts is None or counts.len() != frame.height:
        text = data.decode("utf-8")
        normalized, counts = _normalize_with_csv_module(text, sep, n)
        try:
            frame = pl.read_csv(normalized, has_header=False, skip_rows=1, separator=sep, schema=schema,
                                infer_schema=False)
        except pl.exceptions.PolarsError as e:
            raise _reject(file, FileProblem.MALFORMED, "the file is not readable as CSV",
                          "check that it is a delimited text export") from e
        if counts.len() != frame.height:
            raise _reject(file, FileProblem.MALFORMED, "cannot tell where rows end (unbalanced quotes?)",
                          "re-export the file with standard CSV quoting")
    notes: dict[str, object] = {}
    if decoded.nul_bytes_removed:
        notes["nul_bytes_removed"] = decoded.nul_bytes_removed
    if decoded.bytes_repaired:
        notes["bytes_repaired"] = decoded.bytes_repaired
    return _finish(frame, headers, file, counts, encoding=decoded.encoding, delimiter=sep, notes=notes)




# XLSX ------------------------------------------------------------------------------------------------
def read_xlsx(data: bytes, file: str, *, sheet: str | None = None) -> RawTable:
    """Read one sheet (the named one, else the first) of an .xlsx workbook as text.

    Cells typed as dates come out as ISO text ("2001-03-04 00:00:00"), so ``native_dates`` is set.
    Formula cells give their cached value: cilink never evaluates anything.
    """
    import fastexcel

    check_xlsx(data, file)  # caps first: a stray far-away cell would make the reader allocate the whole grid
    try:
        book = fastexcel.read_excel(data)
    except Exception as e:  # fastexcel raises its own hierarchy for corrupt/non-xlsx files
        raise _reject(file, FileProblem.MALFORMED, "not a readable .xlsx workbook",
                      "check the partner's `format` in cilink.toml, or re-save the file as .xlsx") from e
    names = book.sheet_names
    if not names:
        raise _reject(file, FileProblem.EMPTY_FILE, "the workbook has no sheets", "ask for a new export")
    name = sheet if sheet is not None else names[0]
    if name not in names:
        raise _reject(file, FileProblem.WRONG_SHEET, f"no sheet named '{sheet}' (sheets: {', '.join(names)})",
                      "set the partner's `sheet` in cilink.toml to one of the sheets listed")
    # one read of the sheet: the reader parses the whole sheet even for its first row
    grid = book.load_sheet_by_name(name, header_row=None, dtypes="string").to_polars()
    if grid.height == 0:
        raise _reject(file, FileProblem.EMPTY_FILE, f"sheet '{name}' is empty", "ask for a new export")
    headers = [_clean_header(v) for v in grid.row(0)]
    body = grid.slice(1).select(pl.all().cast(pl.String))
    width = len(headers)
    cols = body.columns
    # a sheet can have cells right of the header; keep exactly the header's width
    body = body.select([pl.col(cols[i]) if i < len(cols) else pl.lit(None, dtype=pl.String) for i in range(width)])
    body.columns = _unique_names(headers)
    return _finish(body, headers, file, native_dates=True, notes={"sheet": name})


# JSON / NDJSON ---------------------------------------------------------------------------------------
def _stringify(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text; whole floats without '.0' (zip 1040.0 → "1040"), dates as ISO."""
    exprs = []
    for name, dtype in frame.schema.items():
        c = pl.col(name)
        if dtype == pl.String:
            exprs.append(c)
        elif dtype.is_float():
            exprs.append(pl.when(c.is_finite() & (c == c.round(0)) & (c.abs() < 1e15))
                         .then(c.cast(pl.Int64).cast(pl.String)).otherwise(c.cast(pl.String)).alias(name))
        elif dtype == pl.Date:
            exprs.append(c.dt.to_string("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(c.dt.to_string("%Y-%m-%d %H:%M:%S"))
        elif isinstance(dtype, pl.List | pl.Array):
            # multi-valued fields (race lists) become "a;b", the separator the standardizer splits on
            exprs.append(c.cast(pl.List(pl.String)).list.join(";").alias(name))
        elif isinstance(dtype, pl.Struct):
            exprs.append(c.struct.json_encode().alias(name))
        elif dtype == pl.Boolean:
            exprs.append(pl.when(c).then(pl.lit("true")).when(~c).then(pl.lit("false")).alias(name))
        else:
            exprs.append(c.cast(pl.String))
    return frame.select(exprs)


def _json_scalar(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, list) and all(not isinstance(x, dict | list) for x in v):
        return ";".join(str(x) for x in v if x is not None)
    if isinstance(v, int | float):
        return str(v)
    return json.dumps(v, sort_keys=True)


def read_json(raw: bytes, file: str, *, encoding: str | None = None) -> RawTable:
    """Read a JSON array of objects, an object holding one such array, or NDJSON (one object a line)."""
    data = decode(raw, encoding=encoding, file=file).data
    stripped = data.strip()
    if not stripped:
        raise _reject(file, FileProblem.EMPTY_FILE, "the file is empty", "ask the partner to export it again")
    ndjson = stripped.startswith(b"{") and b"\n" in stripped and not _is_single_object(stripped)
    try:
        if ndjson:
            records = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        else:
            doc = json.loads(stripped)
            records = _records_of(doc)
    except RecursionError as e:
        raise _reject(file, FileProblem.TOO_LARGE, f"JSON nested deeper than cilink reads (at most {MAX_JSON_DEPTH})",
                      "re-export the file as flat JSON records (one object per person or event)") from e
    except (ValueError, TypeError) as e:
        raise _reject(file, FileProblem.MALFORMED, "not valid JSON (an array of objects, or one object a line)",
                      "re-export the file as JSON records or NDJSON") from e
    if not all(isinstance(r, dict) for r in records):
        raise _reject(file, FileProblem.MALFORMED, "every record must be a JSON object",
                      "re-export the file as JSON records or NDJSON")
    if any(json_too_deep(r) for r in records):
        raise _reject(file, FileProblem.TOO_LARGE, f"JSON nested deeper than cilink reads (at most {MAX_JSON_DEPTH})",
                      "re-export the file as flat JSON records (one object per person or event)")
    if len(records) == 1 and len(records[0]) > 1 and all(isinstance(v, dict) for v in records[0].values()):
        # {"Maria Lopez": {...}, "John Doe": {...}}: the keys are data (often names), never column names;
        # say so without repeating a single key
        raise _reject(file, FileProblem.MALFORMED,
                      f"one JSON object whose {len(records[0])} members are objects (keyed by a value such as a "
                      "name or id?), not a list of records",
                      "re-export the file as an array of records, each with its id as a field")
    headers: list[str] = []
    seen: set[str] = set()
    for r in records:
        for k in r:
            if k not in seen:
                seen.add(k)
                headers.append(k)
    if not records:
        raise _reject(file, FileProblem.NO_DATA_ROWS, "the file holds no records", "ask for the full export")
    try:
        # fast path: polars builds typed columns; mixed types (zip 1040 in one record, "01040" in the
        # next) make it fail, and then we stringify value by value
        frame = _stringify(pl.DataFrame(records, infer_schema_length=None))
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        frame = pl.DataFrame({h: pl.Series(h, [_json_scalar(r.get(h)) for r in records], dtype=pl.String)
                              for h in headers})
    frame = frame.select([pl.col(h) for h in headers])
    frame.columns = _unique_names([_clean_header(h) for h in headers])
    return _finish(frame, [_clean_header(h) for h in headers], file, notes={"json": "ndjson" if ndjson else "array"})


def _is_single_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def _records_of(doc: object) -> list:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
        return [doc]
    raise ValueError("not records")


# Parquet ---------------------------------------------------------------------------------------------
def read_parquet(data: bytes, file: str) -> RawTable:
    """Read a Parquet file; typed columns become text (dates as ISO, so ``native_dates`` is set)."""
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError, ValueError) as e:
        raise _reject(file, FileProblem.MALFORMED, "not a readable Parquet file",
                      "check the partner's `format` in cilink.toml") from e
    for i, dtype in enumerate(frame.schema.values(), 1):
        if not _readable_type(dtype):
            # named by position and type: a column name may be anything the partner's tool wrote
            raise _reject(file, FileProblem.UNSUPPORTED_CONTENT,
                          f"column {i} has type {dtype.base_type()}, which cilink does not read as text",
                          "ask the partner to write that column as text, a number or a date")
    headers = [_clean_header(c) for c in frame.columns]
    frame = _stringify(frame)
    frame.columns = _unique_names(headers)
    return _finish(frame, headers, file, native_dates=True)


def _readable_type(dtype: pl.DataType) -> bool:
    """Types _stringify turns into text faithfully: text, numbers, booleans, dates, lists and structs of them."""
    if isinstance(dtype, pl.List | pl.Array):
        return _readable_type(dtype.inner)  # type: ignore[arg-type]
    if isinstance(dtype, pl.Struct):
        return all(_readable_type(f.dtype) for f in dtype.fields)  # type: ignore[arg-type]
    return (dtype == pl.String or dtype.is_numeric() or dtype in (pl.Boolean, pl.Date, pl.Null)
            or isinstance(dtype, pl.Datetime | pl.Categorical | pl.Enum))


def read_table(data: bytes, file: str, *, format: str, encoding: str | None = None, delimiter: str | None = None,
               sheet: str | None = None) -> RawTable:
    """Read one partner file of the given format (csv, xlsx, json, parquet) from its bytes."""
    if format == "csv":
        return read_csv_bytes(data, file, encoding=encoding, delimiter=delimiter)
    if format == "xlsx":
        return read_xlsx(data, file, sheet=sheet)
    if format == "json":
        return read_json(data, file, encoding=encoding)
    if format == "parquet":
        return read_parquet(data, file)
    raise ValueError(f"no reader for format {format!r}")
