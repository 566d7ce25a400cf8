"""Partner dates → ``Date``, strictly: the partner's ``date_format`` (or ISO), never a guess.

A format is compiled to one anchored regular expression, so parsing is vectorized and exact: ``%Y``
needs four digits (a two-digit year under ``%Y`` is unparseable, not year 85), ``%y`` is accepted only
with ``two_digit_year_pivot``. Values that match but name no real day (Feb 30) are unparseable too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from cilink.errors import InputRejected
from cilink.ingest.reasons import FileProblem

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_FULL_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december"]

#: directive → (regex, group name or None when the value is ignored: time of day)
_DIRECTIVES: dict[str, tuple[str, str | None]] = {
    "Y": (r"\d{4}", "Y"),
    "y": (r"\d{2}", "y"),
    "m": (r"\d{1,2}", "m"),
    "d": (r"\d{1,2}", "d"),
    "e": (r"\s?\d{1,2}", "d"),
    "b": (r"[A-Za-z]{3}\.?", "b"),
    "B": (r"[A-Za-z]+", "b"),
    "H": (r"\d{1,2}", None),
    "I": (r"\d{1,2}", None),
    "M": (r"\d{2}", None),
    "S": (r"\d{2}", None),
    "f": (r"\d{1,9}", None),
    "p": (r"[AaPp][Mm]", None),
}
#: a time of day Excel and databases append to dates ("3/4/2024 0:00", "2024-03-04T00:00:00Z")
_TIME_SUFFIX = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?(?:Z|[+-]\d{2}:?\d{2})?)?"
ISO = "%Y-%m-%d"


@dataclass(frozen=True)
class DateParser:
    """Compiled date format of one partner. ``accept_iso`` also takes ISO values (typed cells of XLSX
    and Parquet arrive as ISO text whatever the partner's text format is)."""

    fmt: str
    pivot: int | None = None
    accept_iso: bool = False

    def __post_init__(self) -> None:
        compile_format(self.fmt)  # fail early, naming the key

    def parse(self, raw: pl.Expr) -> pl.Expr:
        """Date or null for a String expression (null means missing or unparseable)."""
        pattern, groups = compile_format(self.fmt)
        parsed = _parse_with(raw, pattern, groups, self.pivot)
        if self.accept_iso and self.fmt != ISO:
            iso_pattern, iso_groups = compile_format(ISO)
            parsed = parsed.fill_null(_parse_with(raw, iso_pattern, iso_groups, None))
        return parsed

    def repair(self, raw: pl.Expr) -> pl.Expr:
        """Date for a value the format does not read but one unambiguous repair does; null otherwise.

        Two repairs, the mistakes partners' birth dates show most: look-alike characters typed or scanned
        for digits (``O``→0, ``l``/``I``/``|``→1), and day and month exchanged where that is the only
        reading (the month would be over 12, the day is not). A wrong number of digits is not repaired:
        there is no single date it could have been.
        """
        pattern, groups = compile_format(self.fmt)
        text = raw.str.replace_many(list(_LOOKALIKES), list(_LOOKALIKES.values())) if "m" in groups else raw
        as_written = _parse_with(text, pattern, groups, self.pivot)
        return as_written.fill_null(_parse_with(text, pattern, groups, self.pivot, exchange=True)) \
            if {"m", "d"} <= groups else as_written


#: characters that stand in for digits in typed and scanned dates (only where months are numbers, so
#: "Oct" stays a month)
_LOOKALIKES = {"O": "0", "o": "0", "l": "1", "I": "1", "|": "1"}


def compile_format(fmt: str) -> tuple[str, set[str]]:
    """An strftime-style date format as an anchored regex with named groups Y/y/m/d/b."""
    out, groups, i = [], set(), 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            d = fmt[i + 1]
            if d == "%":
                out.append("%")
            elif d in _DIRECTIVES:
                regex, group = _DIRECTIVES[d]
                glued = (i >= 2 and fmt[i - 2] == "%") or fmt[i + 2 : i + 3] == "%"
                if d in "md" and glued:
                    regex = r"\d{2}"  # %Y%m%d: without separators only fixed widths are unambiguous
                if group and group not in groups:
                    out.append(f"(?<{group}>{regex})")
                    groups.add(group)
                else:
                    out.append(f"(?:{regex})")
            else:
                raise InputRejected(
                    f"date_format uses %{d}, which cilink does not support",
                    hint="use %Y %y %m %d %b %B (and %H %M %S %p for times) in the partner's date_format",
                    reason=FileProblem.UNSUPPORTED_DATE_FORMAT,
                )
            i += 2
            continue
        out.append(r"\s+" if ch == " " else re.escape(ch))
        i += 1
    if not ({"Y", "y"} & groups and {"m", "b"} & groups and "d" in groups):
        raise InputRejected(
            f"date_format '{fmt}' does not name a year, a month and a day",
            hint="e.g. %m/%d/%Y, %d.%m.%Y or %Y%m%d",
            reason=FileProblem.UNSUPPORTED_DATE_FORMAT,
        )
    time_given = any(f"%{t}" in fmt for t in "HIMS")
    return "^" + "".join(out) + ("" if time_given else _TIME_SUFFIX) + "$", groups


def _parse_with(raw: pl.Expr, pattern: str, groups: set[str], pivot: int | None, *,
                exchange: bool = False) -> pl.Expr:
    """Dates of the values that match ``pattern``; ``exchange`` reads its month as the day and its day as
    the month, for values whose month is over 12 and whose day is not (null for every other value)."""
    parts = raw.str.extract_groups(pattern)
    if "Y" in groups:
        year = parts.struct.field("Y")
    else:
        yy = parts.struct.field("y").cast(pl.Int32)
        # without a pivot %y never reaches here with a value: the config refuses it (see config.py)
        p = 69 if pivot is None else pivot
        year = pl.when(yy < p).then(yy + 2000).otherwise(yy + 1900).cast(pl.String)
    if "m" in groups:
        month = parts.struct.field("m")
    else:
        name = parts.struct.field("b").str.to_lowercase().str.strip_chars(".")
        month = (name.replace_strict({**{m: str(i + 1) for i, m in enumerate(_MONTHS)},
                                      **{m: str(i + 1) for i, m in enumerate(_FULL_MONTHS)}},
                                     default=None, return_dtype=pl.String))
    day = parts.struct.field("d").str.strip_chars()
    if exchange:
        readable = (month.cast(pl.Int32, strict=False) > 12) & (day.cast(pl.Int32, strict=False) <= 12)
        month, day = pl.when(readable).then(day), pl.when(readable).then(month)
    iso = pl.concat_str([year, month.str.zfill(2), day.str.zfill(2)], separator="-")
    return iso.str.to_date("%Y-%m-%d", strict=False)


def date_parser(date_format: str | None, pivot: int | None, *, accept_iso: bool = False) -> DateParser:
    """The partner's parser: its format, or ISO only when none is configured."""
    return DateParser(date_format or ISO, pivot, accept_iso)
