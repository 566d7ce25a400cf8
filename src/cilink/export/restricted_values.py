"""Hash sets of the identifying values in the restricted zone, for the privacy gate to look for in a release.

Built from the staged records of the active batches and the crosswalk: names, SSNs, dates of birth, street
addresses, phone numbers, e-mails, partner source ids (person, enrollment, household) and cilink's own
record and person ids. Kept as polars Series so every check is a vectorized ``is_in`` (a hash join), and
never written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import polars as pl

from cilink.schemas import domain_fields
from cilink.staging import staged_records
from cilink.workspace import Workspace

#: Partner-supplied ids shorter than this are not matched by value: codes of one to three characters
#: (grades, school numbers "12") collide with short ids by chance, and so short an id identifies no one
#: without the partner's own list. Column-name checks still catch such a column.
MIN_ID_CHARS = 4
#: Names of one letter (initials) are not matched by value, for the same reason.
MIN_NAME_CHARS = 2

DOB_TEXT_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%-m/%-d/%Y", "%Y%m%d", "%d/%m/%Y", "%Y/%m/%d")


def normalize_name(expr: pl.Expr) -> pl.Expr:
    """A value in the staged names' standard form: lower-case letters, single spaces."""
    return (expr.str.to_lowercase().str.replace_all(r"[^a-z]+", " ").str.strip_chars()
            .str.replace_all(r"\s+", " "))


def digits(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(r"[\s\-\.\(\)\+/]", "")


@dataclass
class RestrictedValues:
    """The identifying values of the restricted zone, one deduplicated Series per kind."""

    names: pl.Series
    ssn: pl.Series
    dob: pl.Series
    dob_text: pl.Series
    street: pl.Series
    phone: pl.Series
    email: pl.Series
    source_ids: pl.Series
    _indexed: dict[str, tuple[pl.Series, pl.Series]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def sizes(self) -> dict[str, int]:
        return {f.name: len(getattr(self, f.name)) for f in fields(self) if f.init}

    def indexed(self, name: str) -> tuple[pl.Series, pl.Series]:
        """One set as text, with each value's byte length; computed once, for every look-up.

        The gate looks tens of millions of ids up several times per release (tables, dictionary, manifest):
        a value can only equal a candidate of the same byte length, and lengths are cheap to compare, so each
        look-up narrows the set down before it touches any text. (Hashing every id up front cost more than
        the look-ups: at a million persons, 1.3 s of page faults late in an export.)
        """
        if name not in self._indexed:
            text = getattr(self, name).cast(pl.String)
            self._indexed[name] = (text, text.str.len_bytes())
        return self._indexed[name]


def collect_restricted_values(ws: Workspace, crosswalk: pl.DataFrame | None = None) -> RestrictedValues:
    """Read every identifying value of the active staged batches (and the crosswalk) into hash sets.

    One partner at a time: its identifying columns are read once, reduced to distinct values, and freed.
    Staged values are already in standard form (docs/internals.md: names lower-case, SSN and phone digits,
    e-mail lower-case, street upper-case), so they are kept as they are and the gate normalizes the release
    side instead. Ids — often one per row — are kept raw and not de-duplicated: the look-up streams them
    past the release's candidates, where duplicates cost nothing (de-duplicating ten million ids did).
    """
    first, last, middle = pl.col("first_name"), pl.col("last_name"), pl.col("middle_name")
    kinds: dict[str, list[pl.Series]] = {k: [] for k in ("names", "ssn", "dob", "street", "phone", "email", "ids")}
    for partner in ws.config.partners:
        extra = [f for f in ("enrollment_id", "household_id") if f in domain_fields(str(partner.domain))]
        staged = staged_records(ws, partner.id)
        # one query per kind, run together by the streaming engine: each reads only its columns and reduces
        # them to distinct values batch by batch, never holding ten million raw values at once
        triples, *distinct = pl.collect_all(engine="streaming", lazy_frames=[
            # full-name forms are built from the distinct (first, middle, last) triples, not from every row
            staged.select(first, middle, last).unique(),
            *[staged.select(pl.col(kind).drop_nulls().unique()) for kind in ("ssn", "dob", "street", "phone", "email")],
            staged.select(pl.col("source_person_id").cast(pl.String).drop_nulls().unique()),
            # a shared identifier (a statewide student id) is an id like the partner's own
            staged.select((pl.col("shared_id") if "shared_id" in staged.collect_schema() else pl.lit(None))
                          .cast(pl.String).drop_nulls().unique()),
        ])
        kinds["names"] += [triples.select(e.alias("v")).to_series().drop_nulls() for e in (
            first, last, middle, pl.concat_str([first, last], separator=" "),
            pl.concat_str([last, first], separator=" "), pl.concat_str([first, middle, last], separator=" "))]
        for kind, values in zip(("ssn", "dob", "street", "phone", "email", "ids", "ids"), distinct, strict=True):
            kinds[kind].append(values.to_series())
        if extra:  # enrollment and household ids are about one per row: nothing to gain from de-duplicating
            ids = staged.select(*[pl.col(f).cast(pl.String) for f in extra]).collect()
            kinds["ids"] += [ids.get_column(f).drop_nulls() for f in extra]
            del ids
        del triples, distinct
    if crosswalk is not None:
        kinds["ids"] += [crosswalk.get_column(c).cast(pl.String) for c in ("record_id", "person_id")]

    def merged(kind: str, dtype: pl.DataType | None = None, *, unique: bool = False) -> pl.Series:
        # distinct within each partner; values repeated across partners cost the look-up nothing
        parts = kinds[kind]
        if not parts:
            return pl.Series("v", [], dtype=dtype or pl.String())
        out = pl.concat(parts, rechunk=False).rename("v")
        return out.unique() if unique else out

    names = merged("names", unique=True)
    ids = merged("ids")
    dob = merged("dob", pl.Date(), unique=True)
    dob_text = pl.concat([dob.dt.strftime(f) for f in DOB_TEXT_FORMATS]).unique() if len(dob) else (
        pl.Series("v", [], dtype=pl.String))
    return RestrictedValues(
        names=names.filter(names.str.len_chars() >= MIN_NAME_CHARS), ssn=merged("ssn"), dob=dob,
        dob_text=dob_text, street=merged("street"), phone=merged("phone"), email=merged("email"),
        source_ids=ids.filter(ids.str.len_chars() >= MIN_ID_CHARS))
