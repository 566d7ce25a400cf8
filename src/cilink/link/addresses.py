"""Street address keys for comparison: USPS standard suffix abbreviations, no unit designators.

Partners write the same address as "564 Brock Street Apt 2", "564 BROCK ST" or "564 Brock St., #2"; ingest
upper-cases and trims it, and this module reduces it to a key ("564 BROCK ST") so that the street
comparison, the ``street & zip5`` blocking rule and training see one household address as one value. The
suffix table is the common part of USPS Publication 28, Appendix C1.
"""

from __future__ import annotations

import polars as pl

#: street suffix (as written) → USPS standard abbreviation
SUFFIXES: dict[str, str] = {
    "STREET": "ST", "STR": "ST", "AVENUE": "AVE", "AV": "AVE", "AVN": "AVE", "ROAD": "RD", "DRIVE": "DR",
    "DRV": "DR", "LANE": "LN", "COURT": "CT", "PLACE": "PL", "TERRACE": "TER", "TERR": "TER",
    "BOULEVARD": "BLVD", "BOUL": "BLVD", "CIRCLE": "CIR", "CIRCUIT": "CIR", "WAY": "WAY", "PARKWAY": "PKWY",
    "HIGHWAY": "HWY", "SQUARE": "SQ", "CRESCENT": "CRES", "HEIGHTS": "HTS", "EXTENSION": "EXT",
}
#: words that start a unit designator (the rest of the line is the unit)
UNIT_WORDS = ("APT", "APARTMENT", "UNIT", "STE", "SUITE", "FL", "FLOOR", "RM", "ROOM", "BLDG", "#")


def street_key(street: pl.Expr) -> pl.Expr:
    """The comparison key of a street address expression (null stays null)."""
    cleaned = (
        street.str.to_uppercase()
        .str.replace_all(r"#", " # ")
        .str.replace_all(r"[.,]", " ")
        .str.replace(r"\s(" + "|".join(w for w in UNIT_WORDS if w != "#") + r"|#)\s.*$", "")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
    words = cleaned.str.split(" ")
    last = words.list.last()
    normalized = pl.when(words.list.len() > 1).then(
        words.list.slice(0, words.list.len() - 1).list.join(" ") + pl.lit(" ")
        + last.replace(SUFFIXES)
    ).otherwise(cleaned)
    return pl.when(normalized.str.len_chars() > 0).then(normalized).otherwise(None)
