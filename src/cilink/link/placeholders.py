"""Placeholder names: values partners type where a name is unknown, which are not a person's name.

Intake staff write "Baby Boy" for a newborn, "Unknown" or "Refused" for a client who would not say, "FNU"
(first name unknown) or a relation word ("Son", "Mother") for a household member. Compared as names they
disagree with the person's real name and make a true pair look like two siblings. cilink treats them as
*missing*: ``build_records`` nulls them before it picks a record's most recent name (so a real name given
in another batch wins) and flags the record (``_cilink_name_placeholder``). A record left without a first
name is then guarded against the twins it can no longer tell apart (``decisions.nameless_ambiguous``).

The list below is matched against standardized names (lower case, single spaces, no punctuation); a
project adds its own values with ``[link] placeholder_names`` (docs/linkage.md). HMIS records whose
``NameDataQuality`` says the name is partial, not collected or refused arrive without names already
(``cilink.ingest.hmis``).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

#: First names that mean "no first name". Whole values only: "Boy George" is a name, "Boy" is not.
FIRST_NAME_PLACEHOLDERS = frozenset({
    "baby", "baby boy", "baby girl", "babyboy", "babygirl", "baby a", "baby b", "boy", "girl", "infant",
    "infant boy", "infant girl", "newborn", "unborn", "child", "kid", "minor", "twin", "twin a", "twin b",
    "male", "female", "unknown", "unk", "unkn", "none", "na", "n a", "null", "noname", "no name", "no first name",
    "anonymous", "anon", "client", "resident", "guest", "patient", "refused", "declined", "not given",
    "not provided", "test", "fnu", "nfn", "xxx", "xx", "x", "mr", "mrs", "ms", "miss", "mister", "son",
    "daughter", "brother", "sister", "mother", "father", "mom", "dad", "wife", "husband", "spouse", "partner",
    "grandmother", "grandfather", "aunt", "uncle", "cousin", "nephew", "niece", "sibling", "parent",
    "head of household", "hoh", "dependent",
})
#: Last names that mean "no last name" ("Doe" as in John Doe: rare as a real surname, common as a stand-in).
LAST_NAME_PLACEHOLDERS = frozenset({
    "unknown", "unk", "unkn", "none", "na", "n a", "null", "noname", "no name", "no last name", "anonymous",
    "anon", "client", "resident", "refused", "declined", "not given", "not provided", "test", "lnu", "nln",
    "xxx", "xx", "x", "doe",
})


def placeholder(column: str, extra: Iterable[str] = ()) -> pl.Expr:
    """Whether a standardized name in ``column`` is a placeholder (built-in list plus ``extra``)."""
    builtin = FIRST_NAME_PLACEHOLDERS if column in ("first_name", "middle_name") else LAST_NAME_PLACEHOLDERS
    values = sorted(builtin | {normalize(v) for v in extra})
    return normalize_expr(pl.col(column)).is_in(values).fill_null(False)


def normalize(value: str) -> str:
    """A listed value in the form staged names take: lower case, letters and single spaces."""
    return " ".join("".join(c if c.isalnum() else " " for c in value.lower()).split())


def normalize_expr(name: pl.Expr) -> pl.Expr:
    """``normalize`` for a column (staged names are standardized already; this makes the match robust)."""
    return name.str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars()
