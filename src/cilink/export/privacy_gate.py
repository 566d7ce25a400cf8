"""The privacy gate: every table and metadata file of a release is checked before anything is written.

Rules (each failure names the table, the column and the rule — never a value):

- column names: no column named for a personal identifier (``cilink.schemas.pii_fields`` plus partner
  and cilink ids and common aliases), and no column the data dictionary does not declare;
- declared shapes: dtype as declared; values within the declared vocabulary, pattern or range — this is how
  closed columns (sex, grade, race …) are checked, and it is stricter than any look-up;
- identifier look-ups: every distinct value of every free-text column is looked up in hash sets of the
  restricted zone's names, SSNs, dates of birth, streets, phones, e-mails and partner/cilink ids
  (``restricted_values``); date columns are refused outright (releases carry months or years), and any
  date equal to a staged date of birth is reported as such;
- shapes of identifiers in free text: SSN-, phone-, e-mail- and full-date-shaped values;
- k-anonymity of persons over the released quasi-identifiers (persons whose quasi-identifiers were
  suppressed excepted), and no aggregate cell in the metadata between 1 and ``min_cell`` − 1.

Every check is a polars expression over a column's distinct values, so a ten-million-row release is
checked in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import polars as pl

from cilink.errors import PrivacyGateRefused
from cilink.export.columns import ColumnSpec
from cilink.export.kanonymity import QI_RELEASE_COLUMNS, min_class_size
from cilink.export.restricted_values import RestrictedValues, digits, normalize_name
from cilink.schemas import DOMAIN_MODELS, pii_fields


class GateRule(StrEnum):
    """Stable reason codes of the privacy gate (tests assert these, not wording)."""

    PII_COLUMN_NAME = "pii_column_name"
    UNDOCUMENTED_COLUMN = "undocumented_column"
    UNEXPECTED_TYPE = "unexpected_type"
    OUTSIDE_VOCABULARY = "value_outside_vocabulary"
    OUTSIDE_PATTERN = "value_outside_pattern"
    OUTSIDE_RANGE = "value_outside_range"
    NAME_VALUE = "name_value"
    SSN_VALUE = "ssn_value"
    DOB_VALUE = "dob_value"
    STREET_VALUE = "street_value"
    PHONE_VALUE = "phone_value"
    EMAIL_VALUE = "email_value"
    SOURCE_ID_VALUE = "source_id_value"
    SSN_PATTERN = "ssn_pattern"
    PHONE_PATTERN = "phone_pattern"
    EMAIL_PATTERN = "email_pattern"
    DATE_PATTERN = "full_date_pattern"
    DAY_PRECISION_DATE = "day_precision_date"
    K_ANONYMITY = "k_anonymity"
    SMALL_CELL = "small_cell"


@dataclass(frozen=True)
class GateFailure:
    """One refused column (or metadata entry): where and which rule; ``count`` distinct values matched."""

    table: str
    column: str
    rule: GateRule
    count: int = 0

    def __str__(self) -> str:
        return f"{self.table}: column '{self.column}': {self.rule}" + (f" ({self.count})" if self.count else "")


#: Column-name tokens that mean an identifier, beyond the schema's pii fields.
_ID_NAME_TOKENS = [("source", "person", "id"), ("enrollment", "id"), ("household", "id"), ("record", "id"),
                   ("person", "id"), ("name",), ("names",), ("surname",), ("firstname",), ("lastname",),
                   ("fullname",), ("ssn",), ("dob",), ("birthdate",), ("birthday",), ("birth", "date"),
                   ("address",), ("street",), ("phone",), ("telephone",), ("email",), ("mail",)]

_SSN_SHAPE = r"(^|[^0-9])\d{3}-\d{2}-\d{4}([^0-9]|$)|^\s*\d{9}\s*$"
_PHONE_SHAPE = r"^\s*(\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}\s*$"
_EMAIL_SHAPE = r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"
_DATE_SHAPE = r"(^|[^0-9])\d{4}-\d{2}-\d{2}([^0-9]|$)|(^|[^0-9])\d{1,2}/\d{1,2}/\d{2,4}([^0-9]|$)"


def pii_name_tokens(allowed: set[str]) -> list[tuple[str, ...]]:
    """Token sequences a column name must not contain (pii fields of every domain, ids, aliases)."""
    fields = {f for d in DOMAIN_MODELS for f in pii_fields(d)} - allowed
    return sorted({tuple(f.split("_")) for f in fields} | set(_ID_NAME_TOKENS))


def _tokens(name: str) -> tuple[str, ...]:
    return tuple(t for t in re.split(r"[^a-z0-9]+", name.lower()) if t)


def _contains(seq: tuple[str, ...], sub: tuple[str, ...]) -> bool:
    return any(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def check_column_name(table: str, column: str, allowed: set[str]) -> list[GateFailure]:
    tokens = _tokens(column)
    if any(_contains(tokens, bad) for bad in pii_name_tokens(allowed)):
        return [GateFailure(table, column, GateRule.PII_COLUMN_NAME)]
    return []


# What each kind of candidate value is looked up for. "text": free text (and undeclared columns);
# "key": person_key (must never equal a person or partner id); "int": integer columns.
_APPLIES: dict[GateRule, tuple[str, ...]] = {
    GateRule.NAME_VALUE: ("text",), GateRule.SSN_VALUE: ("text", "int"), GateRule.DOB_VALUE: ("text", "int"),
    GateRule.STREET_VALUE: ("text",), GateRule.PHONE_VALUE: ("text", "int"), GateRule.EMAIL_VALUE: ("text",),
    GateRule.SOURCE_ID_VALUE: ("text", "key"),
}
_SHAPES = {GateRule.SSN_PATTERN: _SSN_SHAPE, GateRule.PHONE_PATTERN: _PHONE_SHAPE,
           GateRule.EMAIL_PATTERN: _EMAIL_SHAPE, GateRule.DATE_PATTERN: _DATE_SHAPE}


def _lookup_keys() -> dict[GateRule, pl.Expr]:
    """How a candidate value is normalized before it is looked up in each restricted set."""
    v = pl.col("v")
    d = digits(v)
    return {
        GateRule.NAME_VALUE: normalize_name(v),
        GateRule.SSN_VALUE: d,
        GateRule.DOB_VALUE: v.str.strip_chars(),
        GateRule.STREET_VALUE: v.str.to_uppercase().str.replace_all(r"\s+", " ").str.strip_chars(),
        GateRule.PHONE_VALUE: pl.when(d.str.len_chars() == 11).then(d.str.slice(1)).otherwise(d),
        GateRule.EMAIL_VALUE: v.str.to_lowercase().str.strip_chars(),
        GateRule.SOURCE_ID_VALUE: v.str.strip_chars(),
    }


def _restricted_set(rv: RestrictedValues, rule: GateRule) -> pl.Series:
    return {GateRule.NAME_VALUE: rv.names, GateRule.SSN_VALUE: rv.ssn, GateRule.DOB_VALUE: rv.dob_text,
            GateRule.STREET_VALUE: rv.street, GateRule.PHONE_VALUE: rv.phone, GateRule.EMAIL_VALUE: rv.email,
            GateRule.SOURCE_ID_VALUE: rv.source_ids}[rule]


def lookup_failures(candidates: pl.DataFrame, rv: RestrictedValues, *, shapes: bool = True) -> list[GateFailure]:
    """Look every candidate value (table, column, v, kind) up in the restricted hash sets, in one pass per rule.

    Candidates are de-duplicated across tables first (person_key appears in every table), each rule is one
    hash semi-join of the normalized distinct values against one restricted set, and hits are mapped back
    to the tables and columns they came from. Run once per release, so each restricted set is hashed once.
    """
    if candidates.is_empty():
        return []
    distinct = candidates.select("v", "kind").unique()
    found: list[pl.DataFrame] = []
    keys = _lookup_keys()
    for rule, kinds in _APPLIES.items():
        restricted = _restricted_set(rv, rule)
        probe = distinct.filter(pl.col("kind").is_in(list(kinds)))
        if not len(restricted) or probe.is_empty():
            continue
        probe = probe.with_columns(keys[rule].alias("k"))
        if rule == GateRule.SOURCE_ID_VALUE:  # ids re-typed in upper or lower case are still the ids
            probe = pl.concat([probe, probe.with_columns(pl.col("k").str.to_lowercase()),
                               probe.with_columns(pl.col("k").str.to_uppercase())])
        # the restricted set can hold tens of millions of ids: stream it past a hash of the (smaller) probe
        # keys, rather than hashing the whole set for every rule
        hit_keys = pl.DataFrame({"k": restricted.cast(pl.String)}).join(probe.select("k").unique(), on="k",
                                                                          how="semi")
        hits = probe.join(hit_keys, on="k", how="semi").select("v", "kind")
        if hits.is_empty():
            continue
        found.append(candidates.join(hits.unique(), on=["v", "kind"], how="semi")
                     .group_by("table", "column").agg(pl.col("v").n_unique().alias("n"))
                     .with_columns(pl.lit(str(rule)).alias("rule")))
    if shapes:
        text = candidates.filter(pl.col("kind") == "text")
        for rule, shape in _SHAPES.items():
            found.append(text.filter(pl.col("v").str.contains(shape)).group_by("table", "column")
                         .agg(pl.len().alias("n")).with_columns(pl.lit(str(rule)).alias("rule")))
    if not found:
        return []
    out = pl.concat([f.with_columns(pl.col("n").cast(pl.Int64)) for f in found])
    return [GateFailure(t, c, GateRule(r), int(n)) for t, c, n, r in out.sort("table", "column", "rule").iter_rows()]


def _distinct(values: pl.Series) -> pl.Series:
    # drop runs of equal values first: release tables are sorted by person, so this shrinks 30M keys to 1M
    # in one cheap pass, and it never drops a distinct value even when the column is not sorted
    values = values.drop_nulls()
    return values.filter(values.ne_missing(values.shift(1))).unique()


def _column_checks(table: str, column: str, values: pl.Series, spec: ColumnSpec | None,
                   rv: RestrictedValues) -> tuple[list[GateFailure], pl.DataFrame | None]:
    """Declared-shape checks of one column, plus its values still to be looked up (or None)."""
    dtype = values.dtype
    if isinstance(dtype, pl.List):
        values = values.explode()
        dtype = values.dtype
    found: dict[GateRule, int] = {}
    declared = spec.dtype.inner if spec is not None and isinstance(spec.dtype, pl.List) else (
        spec.dtype if spec is not None else None)
    if declared is not None and dtype != declared:
        found[GateRule.UNEXPECTED_TYPE] = 1
    if dtype == pl.Boolean:  # nothing to look up in a true/false column
        return [GateFailure(table, column, rule, n) for rule, n in found.items()], None
    u = _distinct(values)
    kind: str | None = None
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        found[GateRule.DAY_PRECISION_DATE] = len(u)
        found |= _count(u.cast(pl.Date), {GateRule.DOB_VALUE: pl.col("v").is_in(rv.dob.implode())})
    elif dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        u = u.cast(pl.String)
        if spec is not None and spec.vocabulary is not None:
            parts = u.str.split(spec.separator).explode() if spec.separator else u
            found |= _count(parts, {GateRule.OUTSIDE_VOCABULARY: ~pl.col("v").is_in(list(spec.vocabulary))})
        elif spec is not None and spec.pattern is not None:
            # a pattern column (keys, months, ZIPs, state codes) cannot hold a name, SSN, phone, e-mail or
            # full date once every value matches its pattern; person_key is also kept apart from all ids
            found |= _count(u, {GateRule.OUTSIDE_PATTERN: ~pl.col("v").str.contains(spec.pattern)})
            kind = "key" if column == "person_key" else None
            if GateRule.OUTSIDE_PATTERN in found:
                kind = "text"
        else:
            kind = "text"
    elif dtype.is_integer() or dtype.is_float():
        if spec is not None and spec.value_range is not None:
            lo, hi = spec.value_range
            found |= _count(u, {GateRule.OUTSIDE_RANGE: (pl.col("v") < lo) | (pl.col("v") > hi)})
        if dtype.is_integer():
            u, kind = u.cast(pl.String), "int"
    elif dtype != pl.Boolean:
        found[GateRule.UNEXPECTED_TYPE] = 1
    failures = [GateFailure(table, column, rule, n) for rule, n in found.items()]
    if kind is None or not len(u):
        return failures, None
    return failures, pl.DataFrame({"v": u}).select(pl.lit(table).alias("table"), pl.lit(column).alias("column"),
                                                 pl.col("v"), pl.lit(kind).alias("kind"))


def _count(values: pl.Series, checks: dict[GateRule, pl.Expr]) -> dict[GateRule, int]:
    if not len(values) or not checks:
        return {}
    row = pl.DataFrame({"v": values}).select(
        [e.fill_null(False).sum().alias(str(rule)) for rule, e in checks.items()]).row(0, named=True)
    return {GateRule(k): int(n) for k, n in row.items() if n}


def check_values(table: str, column: str, values: pl.Series, spec: ColumnSpec | None,
                 rv: RestrictedValues) -> list[GateFailure]:
    """Check one column's values (any dtype) against its spec and the restricted hash sets."""
    failures, candidates = _column_checks(table, column, values, spec, rv)
    return failures + (lookup_failures(candidates, rv) if candidates is not None else [])


def check_shapes(table: str, frame: pl.DataFrame, specs: list[ColumnSpec], allowed_pii: set[str],
                 rv: RestrictedValues) -> tuple[list[GateFailure], pl.DataFrame | None]:
    """Names, declarations and declared shapes of one table's columns; returns the values still to look up."""
    declared = {s.name: s for s in specs}
    failures: list[GateFailure] = []
    candidates: list[pl.DataFrame] = []
    for column in frame.columns:
        failures += check_column_name(table, column, allowed_pii)
        spec = declared.get(column)
        if spec is None:
            failures.append(GateFailure(table, column, GateRule.UNDOCUMENTED_COLUMN))
        shape_failures, cand = _column_checks(table, column, frame.get_column(column), spec, rv)
        failures += shape_failures
        if cand is not None:
            candidates.append(cand)
    return failures, pl.concat(candidates) if candidates else None


def check_tables(tables: dict[str, pl.DataFrame], specs: dict[str, list[ColumnSpec]], rv: RestrictedValues,
                 allowed_pii: set[str]) -> list[GateFailure]:
    """Every column of every release table: name, declaration, shape, then one batched identifier look-up."""
    failures: list[GateFailure] = []
    candidates: list[pl.DataFrame] = []
    for table, frame in tables.items():
        table_failures, cand = check_shapes(table, frame, specs[table], allowed_pii, rv)
        failures += table_failures
        if cand is not None:
            candidates.append(cand)
    if candidates:
        failures += lookup_failures(pl.concat(candidates), rv)
    return failures


def check_k_anonymity(persons: pl.DataFrame, k: int, table: str = "persons.parquet") -> list[GateFailure]:
    """Re-measure k on the persons table exactly as released."""
    smallest = min_class_size(persons)
    if smallest is not None and smallest < k:
        cols = ", ".join(c for c in QI_RELEASE_COLUMNS if c in persons.columns)
        return [GateFailure(table, cols, GateRule.K_ANONYMITY, smallest)]
    return []


def _leaves(doc: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, doc


#: Metadata string leaves that are digests, not data (a sha256 can contain any digit run).
_DIGEST_KEYS = ("sha256",)


def check_metadata(name: str, doc: Any, rv: RestrictedValues, *, min_cell: int,
                   is_aggregate: Callable[[str], bool]) -> list[GateFailure]:
    """JSON metadata: no identifier among its strings; no small cell among counts in aggregate sections."""
    failures: list[GateFailure] = []
    strings = sorted({v for p, v in _leaves(doc) if isinstance(v, str) and not p.endswith(_DIGEST_KEYS)})
    if strings:
        # not the name look-up: dictionaries and manifests are made of vocabulary words ("white", "other")
        # that are also surnames; ids, SSNs, phones, e-mails, dates of birth and their shapes are checked
        cand = pl.DataFrame({"v": strings}).select(pl.lit(name).alias("table"), pl.lit("(text)").alias("column"),
                                                   pl.col("v"), pl.lit("meta").alias("kind"))
        cand = pl.concat([cand.with_columns(pl.lit(k).alias("kind")) for k in ("int", "key")])
        failures += lookup_failures(cand, rv, shapes=False)
        failures += [GateFailure(name, "(text)", rule, n) for rule, n in _count(pl.Series(strings), {
            GateRule.SSN_PATTERN: pl.col("v").str.contains(_SSN_SHAPE),
            GateRule.EMAIL_PATTERN: pl.col("v").str.contains(_EMAIL_SHAPE)}).items()]
    small = sorted({p.split("[")[0] for p, v in _leaves(doc)
                    if is_aggregate(p) and isinstance(v, int) and not isinstance(v, bool)
                    and 0 < v < min_cell})
    failures += [GateFailure(name, p, GateRule.SMALL_CELL) for p in small]
    return failures


def refuse_if_failed(failures: list[GateFailure], hint: str | None = None) -> None:
    """Raise PrivacyGateRefused (exit 5) listing every failure; messages carry no values."""
    if not failures:
        return
    lines = [str(f) for f in failures]
    raise PrivacyGateRefused(
        f"privacy gate refused the release ({len(lines)} problem(s)); nothing was written:\n  " + "\n  ".join(lines),
        hint=hint or "each line names the table, column and rule that failed; fix the configuration or the data "
        "that puts identifying values there (see docs/analysts.md, 'Privacy gate'), then export again",
        failures=lines,
    )
