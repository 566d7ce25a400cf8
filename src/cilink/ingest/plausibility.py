"""Column-level plausibility: a typed column that mostly fails to parse is a config mistake, not bad rows.

Row rules quarantine or flag single bad values; but when a partner's ``date_format`` is wrong, *every*
date of the file is unparseable (nulled or quarantined) or, worse, day and month are silently swapped.
So after validation each date, number and yes/no column is judged as a whole: when more than the
partner's ``max_unparseable_share`` of its non-blank values fail, or when another common date format
reads every value that the configured one misses, the file is rejected (exit 3, nothing written) and
the message names the format that would have worked. Messages name columns and counts, never values.
"""

from __future__ import annotations

import polars as pl

from cilink.config import PartnerSettings
from cilink.errors import InputRejected
from cilink.ingest.dates import ISO, DateParser
from cilink.ingest.fields import Kind, field_specs
from cilink.ingest.mapping import Mapped
from cilink.ingest.reasons import FileProblem, Flag, Reason
from cilink.ingest.validate import Checked

#: date formats partners' systems actually write; the sniffer tries each on the column's distinct values
CANDIDATE_FORMATS = (
    "%m/%d/%Y", "%d/%m/%Y", ISO, "%Y/%m/%d", "%m-%d-%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d",
    "%d-%b-%Y", "%d %b %Y", "%b %d %Y", "%B %d, %Y", "%m/%d/%y", "%d/%m/%y",
)
_TYPED = (Kind.DATE, Kind.INT, Kind.FLOAT, Kind.BOOL)
_FAILED = {Reason.UNPARSEABLE_DATE.value, Reason.INVALID_VALUE.value}
#: distinct values the sniffer looks at (dates repeat; a few thousand decide the format)
_SNIFF_SAMPLE = 5000
#: failures needed before the share rule applies
_MIN_FAILED = 3


def _failures(checked: Checked, fld: str) -> int:
    """Rows whose value of ``fld`` failed to parse: quarantined for it, or accepted with the value nulled."""
    q = checked.quarantine
    quarantined = q.filter((pl.col("field") == fld) & pl.col("reason").is_in(list(_FAILED)))["_cilink_row"].n_unique()
    return quarantined + checked.flags_by_field.get(fld, {}).get(Flag.DATE_UNPARSEABLE.value, 0)


def _parse_share(values: pl.Series, fmt: str, pivot: int | None, accept_iso: bool) -> float:
    frame = pl.DataFrame({"v": values.cast(pl.String)})
    parsed = frame.select(DateParser(fmt, pivot, accept_iso).parse(pl.col("v")).alias("d")).to_series()
    return parsed.is_not_null().sum() / max(len(values), 1)


def sniff_date_formats(values: pl.Series, pivot: int | None = None) -> list[tuple[str, float]]:
    """Candidate formats with the share of ``values`` (distinct, non-null text) each reads, best first.

    Several may read everything when no day is above 12 (day-first and month-first look alike).
    """
    sample = values.drop_nulls().unique(maintain_order=True).head(_SNIFF_SAMPLE)
    if sample.is_empty():
        return []
    # %y needs a century pivot: try 30 (the README's example) so the message can say what to set
    shares = [(f, _parse_share(sample, f, pivot if pivot is not None else 30, False)) for f in CANDIDATE_FORMATS]
    return sorted(((f, r) for f, r in shares if r > 0), key=lambda fr: -fr[1])


def _date_advice(sniffed: list[tuple[str, float]], partner: PartnerSettings) -> tuple[str, str]:
    working = [f for f, r in sniffed if r == 1.0]
    if not sniffed:
        return ("no common date format reads them either",
                "check that the column mapped to this field holds dates, and set the partner's date_format "
                "(e.g. \"%m/%d/%Y\") to match them")
    best = working[0] if working else sniffed[0][0]
    if working:
        found = "they all parse as " + " or ".join(f"'{f}'" for f in working[:3])
        found += " (ambiguous: no day above 12)" if len(working) > 1 else ""
    else:
        found = f"'{best}' reads the most distinct values ({sniffed[0][1]:.0%})"
    pivot = "; a %y format also needs two_digit_year_pivot" if "%y" in best and partner.two_digit_year_pivot is None \
        else ""
    hint = (f"set date_format = \"{best}\" for partner '{partner.id}' in cilink.toml{pivot}, then ingest the "
            "file again (nothing was written)")
    if len(working) > 1:
        hint += "; confirm the order of day and month with the partner"
    return found, hint


def check_columns(mapped: Mapped, checked: Checked, partner: PartnerSettings, domain: str, file: str) -> None:
    """Reject the file (InputRejected ``implausible_column``) when one of its typed columns is implausible."""
    specs = field_specs(domain)
    share = partner.max_unparseable_share
    fmt = partner.date_format or ISO
    for fld, spec in specs.items():
        if spec.kind not in _TYPED or fld not in mapped.frame.columns:
            continue
        column = mapped.source_columns.get(fld, fld)
        values = mapped.frame[fld]
        given = values.len() - values.null_count()
        if given == 0:
            continue
        failed = _failures(checked, fld)
        # a handful of bad values in a small file are row problems (quarantine, flags), not a config mistake
        too_many = failed > share * given and failed >= _MIN_FAILED
        if spec.kind != Kind.DATE:
            if too_many:
                kind = {Kind.INT: "whole numbers", Kind.FLOAT: "numbers", Kind.BOOL: "yes/no values"}[spec.kind]
                raise InputRejected(
                    f"{file}: column '{column}' ({fld}): {failed} of {given} values are not {kind} "
                    f"(more than {share:.0%})",
                    hint=f"check that [partners.columns] {fld} for partner '{partner.id}' names the right column",
                    file=file, column=column, reason=FileProblem.IMPLAUSIBLE_COLUMN,
                )
            continue
        if failed == 0:
            continue
        sniffed = [(f, r) for f, r in sniff_date_formats(values, partner.two_digit_year_pivot) if f != fmt]
        # a format that reads every value the configured one misses: day and month swapped, or the wrong
        # format altogether; two failures at least, so one typo in a clean file is still a row problem
        swapped = any(r == 1.0 for _, r in sniffed) and failed >= 2
        if too_many or swapped:
            found, hint = _date_advice(sniffed, partner)
            raise InputRejected(
                f"{file}: column '{column}' ({fld}): {failed} of {given} dates do not parse as "
                f"date_format '{fmt}'; {found}",
                hint=hint, file=file, column=column, reason=FileProblem.IMPLAUSIBLE_COLUMN,
            )
