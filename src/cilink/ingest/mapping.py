"""Source columns → canonical fields, and partners' code lists → canonical codes (from cilink.toml)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from cilink.config import PartnerSettings
from cilink.errors import InputRejected
from cilink.ingest.readers import NFIELDS, ROW, RawTable
from cilink.ingest.reasons import FileProblem

#: fields whose code list applies to each value of a multi-valued cell (standardize does that)
TOKEN_CODED = {"race_ethnicity"}


@dataclass
class Mapped:
    """Canonical text columns of one batch, before standardization.

    ``frame`` has ``_cilink_row``, ``_cilink_nfields`` and one String column per mapped canonical field
    (trimmed; blank → null). ``source_columns`` names, per field, the source column the partner knows
    (used in the quarantine table). ``expected_fields`` is the header's field count.
    """

    frame: pl.DataFrame
    source_columns: dict[str, str]
    expected_fields: int
    ignored_columns: list[str] = field(default_factory=list)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)
    #: typed cells (XLSX, Parquet) arrive as ISO text: accept ISO dates besides the partner's format
    native_dates: bool = False
    #: encoded files: columns staged as they are (``enc_<field>``, ``birth_year``), keyed by ``_cilink_row``
    passthrough: pl.DataFrame | None = None
    #: encoded files: the file's ``cilink.encoding`` metadata (see cilink.ingest.encoded)
    encoding: dict[str, Any] | None = None


def _norm(h: str) -> str:
    return " ".join(h.casefold().split())


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Trim a raw cell; blank → null. Text stays text: nothing here interprets it."""
    s = expr.str.strip_chars()
    return pl.when(s.str.len_bytes() > 0).then(s).otherwise(None)


def apply_codes(expr: pl.Expr, codes: dict[str, str]) -> pl.Expr:
    """Replace source codes by canonical ones (matching trimmed, case-insensitively); others unchanged."""
    if not codes:
        return expr
    table = {" ".join(k.casefold().split()): v for k, v in codes.items()}
    key = expr.str.to_lowercase().str.replace_all(r"\s+", " ")
    return key.replace_strict(table, default=expr, return_dtype=pl.String)


#: a header cell that looks like a value: a date, an SSN or phone, a number, an e-mail, an id with digits
_DATA_LIKE = re.compile(r"\d{3,}|\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}|@|^\s*[+-]?\d+(?:[.,]\d+)?\s*$")


def _kind_of(cell: str) -> str:
    if re.fullmatch(r"\s*\d{3}-?\d{2}-?\d{4}\s*", cell):
        return "SSN-like number"
    if re.search(r"\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}", cell):
        return "date"
    if "@" in cell:
        return "e-mail"
    return "number" if re.search(r"\d", cell) else "text"


def describe_headers(headers: list[str], limit: int = 40) -> str:
    """The file's header for a message, without repeating anything that may be a data value.

    When any header cell looks like a value, the first line is taken to be a data row (a headerless
    export) and every column is described by position and type only (names in a headerless file are
    people's names). Otherwise headers are quoted as they are: they are the partner's column names.
    """
    if any(_DATA_LIKE.search(h) for h in headers):
        kinds = ", ".join(f"column {i + 1}: {_kind_of(h) if h else 'blank'}" for i, h in enumerate(headers[:limit]))
        return (f"no header: the first line looks like a data row ({kinds}{', …' if len(headers) > limit else ''})")
    return "the file has: " + ", ".join(f"'{c}'" for c in headers[:limit])


def map_columns(raw: RawTable, partner: PartnerSettings) -> Mapped:
    """Pick and rename the partner's mapped columns; reject the file if one is missing or ambiguous.

    Headers match exactly, else case- and space-insensitively when that is unambiguous.
    Example: with ``columns = {source_person_id = "StudentID"}`` the frame gets ``source_person_id``.
    """
    counts = Counter(raw.headers)
    by_norm: dict[str, list[int]] = {}
    for i, h in enumerate(raw.headers):
        by_norm.setdefault(_norm(h), []).append(i)
    names = raw.frame.columns  # frame names, position-aligned with raw.headers
    exprs: list[pl.Expr] = [pl.col(ROW), pl.col(NFIELDS)]
    sources: dict[str, str] = {}
    used: set[int] = set()
    for fld, header in partner.columns.items():
        h = " ".join(header.split())
        if counts.get(h, 0) > 1:
            raise InputRejected(
                f"{raw.file}: column '{header}' (mapped to {fld}) appears {counts[h]} times in the header",
                hint="ask the partner to rename the duplicate columns, or map the field to another column",
                file=raw.file, column=header, reason=FileProblem.DUPLICATE_COLUMN,
            )
        if counts.get(h, 0) == 1:
            idx = raw.headers.index(h)
        else:
            hits = by_norm.get(_norm(h), [])
            if len(hits) != 1:
                problem = FileProblem.DUPLICATE_COLUMN if hits else FileProblem.MISSING_COLUMN
                raise InputRejected(
                    f"{raw.file}: no column '{header}' (mapped to {fld}); {describe_headers(raw.headers)}"
                    if not hits else f"{raw.file}: column '{header}' (mapped to {fld}) is ambiguous",
                    hint=f"fix [partners.columns] {fld} = \"…\" for partner '{partner.id}' in cilink.toml "
                    "to the file's header, or ask the partner for the agreed layout",
                    file=raw.file, column=header, reason=problem,
                )
            idx = hits[0]
        used.add(idx)
        sources[fld] = raw.headers[idx] or names[idx]
        col = clean_text(pl.col(names[idx]))
        if fld not in TOKEN_CODED:
            col = apply_codes(col, partner.codes.get(fld, {}))
        exprs.append(col.alias(fld))
    frame = raw.frame.select(exprs)
    ignored = [h or names[i] for i, h in enumerate(raw.headers) if i not in used]
    return Mapped(frame, sources, len(raw.headers), ignored,
                  {k: v for k, v in partner.codes.items() if k in TOKEN_CODED}, native_dates=raw.native_dates)
