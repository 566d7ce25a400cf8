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

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
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
    #: deidentified tier: every released attribute of every table, a person's rows taken together
    WHOLE_RECORD_K = "whole_record_k_anonymity"
    WHOLE_RECORD_RISK = "whole_record_risk"
    PARTNER_SINGLE_OUT = "partner_single_out"
    NON_IDENTIFYING_WITHOUT_REASON = "non_identifying_without_reason"


@dataclass(frozen=True)
class GateFailure:
    """One refused column (or metadata entry): where and which rule; ``count`` distinct values matched."""

    table: str
    column: str
    rule: GateRule
    count: int = 0

    def __str__(self) -> str:
        return f"{self.table}: column '{self.column}': {self.rule}" + (f" ({self.count})" if self.count else "")


@dataclass(frozen=True)
class Candidates:
    """One column's values still to be looked up in the restricted sets (as text; each value at least once).

    ``kind`` says which look-ups apply (``_APPLIES``): "text" (free text, undeclared columns), "key"
    (person_key: never equal to a person or partner id) or "int" (integer columns).
    """

    table: str
    column: str
    kind: str
    values: pl.Series


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


#: The restricted set (a RestrictedValues field) each look-up rule searches.
_RESTRICTED_SET = {GateRule.NAME_VALUE: "names", GateRule.SSN_VALUE: "ssn", GateRule.DOB_VALUE: "dob_text",
                   GateRule.STREET_VALUE: "street", GateRule.PHONE_VALUE: "phone", GateRule.EMAIL_VALUE: "email",
                   GateRule.SOURCE_ID_VALUE: "source_ids"}


def lookup_failures(candidates: list[Candidates], rv: RestrictedValues, *, shapes: bool = True) -> list[GateFailure]:
    """Look every candidate value up in the restricted hash sets, in one pass per rule.

    Candidates are de-duplicated across tables first (person_key appears in every table), each rule is one
    membership test of the normalized distinct values against one restricted set, and hits are mapped back
    to the tables and columns they came from. Run once per release, so each restricted set is read once.
    """
    candidates = [c for c in candidates if len(c.values)]
    if not candidates:
        return []
    by_kind: dict[str, list[Candidates]] = {}
    for c in candidates:
        by_kind.setdefault(c.kind, []).append(c)
    distinct = {kind: union_distinct([c.values for c in cs]) for kind, cs in by_kind.items()}
    found: list[tuple[str, str, str, int]] = []
    keys = _lookup_keys()
    for rule, kinds in _APPLIES.items():
        present = [k for k in kinds if k in distinct]
        if not len(getattr(rv, _RESTRICTED_SET[rule])) or not present:
            continue
        probe = pl.DataFrame({"v": pl.concat([distinct[k] for k in present])}).with_columns(keys[rule].alias("k"))
        # ids re-typed in another case are still the ids
        hit = _hits(probe, *rv.indexed(_RESTRICTED_SET[rule]), fold_case=rule == GateRule.SOURCE_ID_VALUE)
        if hit.is_empty():
            continue
        for c in (c for k in present for c in by_kind[k]):
            n = c.values.filter(c.values.is_in(hit.implode())).n_unique()
            if n:
                found.append((c.table, c.column, str(rule), n))
    if shapes:
        for c in by_kind.get("text", []):
            for rule, shape in _SHAPES.items():
                n = c.values.filter(c.values.str.contains(shape)).n_unique()
                if n:
                    found.append((c.table, c.column, str(rule), n))
    return [GateFailure(t, c, GateRule(r), n) for t, c, r, n in sorted(found)]


def _hits(probe: pl.DataFrame, restricted: pl.Series, lengths: pl.Series, *, fold_case: bool = False) -> pl.Series:
    """The values ``v`` of ``probe`` whose key ``k`` is in ``restricted`` (given its values' byte lengths);
    with ``fold_case``, also when it is there in lower or upper case.

    The restricted set can hold tens of millions of ids: only those as long (in bytes) as some probe key can
    equal one, a cheap test that leaves few (person keys are 32 bytes; most partner ids are shorter), and
    only those few are compared as text, against a hash set of whichever side is smaller. When both sides
    are still large (a million person keys, hundreds of thousands of 32-character partner ids), their 64-bit
    hashes are compared first and only the texts whose hash is on both sides are compared as text.
    """
    forms = [pl.col("k"), pl.col("k").str.to_lowercase(), pl.col("k").str.to_uppercase()] if fold_case else [
        pl.col("k")]
    # repeats among the forms cost less than de-duplicating a million keys
    keys = pl.concat(probe.select(f.alias("k")).to_series() for f in forms).drop_nulls()
    near = restricted.filter(lengths.is_in(keys.str.len_bytes().unique().implode()))
    if near.is_empty():
        return probe.get_column("v").clear()
    if min(len(keys), len(near)) > 50_000:
        # hundreds of thousands of keys and of ids as long (person keys, 32-character partner ids): their
        # 64-bit hashes are compared first, several times cheaper than a set of as many texts; only texts whose
        # hash is on both sides go on (a few keys, as in the metadata, are cheaper looked up directly)
        key_hash, near_hash = keys.hash(), near.hash()
        common = key_hash.filter(key_hash.is_in(near_hash.implode())).implode()
        keys, near = keys.filter(key_hash.is_in(common)), near.filter(near_hash.is_in(common))
        if near.is_empty():
            return probe.get_column("v").clear()
    matched = near.filter(near.is_in(keys.implode())) if len(keys) <= len(near) else keys.filter(
        keys.is_in(near.implode()))
    if matched.is_empty():
        return probe.get_column("v").clear()
    found = matched.implode()
    return probe.filter(pl.any_horizontal([f.is_in(found) for f in forms])).get_column("v").unique()


def _sorted_distinct(values: pl.Series, max_runs: int = 8) -> pl.Series | None:
    """The distinct values, in order, when ``values`` is a few sorted runs (None otherwise).

    Release tables are sorted by person_key (spells: by domain, then person_key): their key columns are one
    or a few ascending runs, which merge in one linear pass — far cheaper than hashing 32-byte texts.
    """
    n = len(values)
    if n < 2:
        return values
    breaks = (values.slice(1) <= values.slice(0, n - 1)).arg_true()
    if len(breaks) >= max_runs:
        return None
    if not len(breaks):
        return values
    bounds = [0, *[int(b) + 1 for b in breaks], n]
    runs = [values.slice(lo, hi - lo).to_frame("v") for lo, hi in itertools.pairwise(bounds)]
    merged = runs[0].set_sorted("v")
    for run in runs[1:]:
        merged = merged.merge_sorted(run.set_sorted("v"), key="v")
    out = merged.get_column("v")
    return out.filter(pl.concat([pl.Series([True]), out.slice(1).ne_missing(out.slice(0, len(out) - 1))]))


def union_distinct(parts: list[pl.Series]) -> pl.Series:
    """The distinct non-null values of several columns together (sorted ones are merged, not hashed)."""
    parts = [p.drop_nulls() for p in parts if len(p)]
    if not parts:
        return pl.Series("v", [], dtype=pl.String)
    values = pl.concat(parts).rechunk()
    merged = _sorted_distinct(values, max_runs=2 * len(parts) + 2)
    return merged if merged is not None else distinct_values(values)


def distinct_values(values: pl.Series) -> pl.Series:
    """The distinct non-null values of ``values``, exactly, in no particular order.

    Two shortcuts, chosen from the first 10,000 values, for tens of millions of rows:

    - many distinct texts longer than 12 bytes (person keys are 32) are slow to de-duplicate as text, since
      each lives out of line: they are told apart by a 64-bit hash, which is then checked against the text
      itself — on any collision they are de-duplicated as text after all;
    - few distinct values among many rows (a panel's periods): the distinct values of the first million
      rows are taken when every row is among them (one membership test, half the cost of de-duplicating).
    """
    values = values.drop_nulls()
    n = len(values)
    if n < 2:
        return values
    sample = values.head(10_000)
    many = sample.n_unique() > len(sample) // 2
    if many and values.dtype == pl.String and sample.str.len_bytes().max() > 12:  # type: ignore[operator]
        hashes = values.hash().to_numpy()
        _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        reps = values.gather(first)
        if (reps.gather(inverse.reshape(-1)) == values).all():
            return reps
    elif not many and n > 2_000_000:
        head = values.head(1_000_000).unique()
        if values.is_in(head.implode()).all():
            return head
    return values.unique()


def _increasing(values: pl.Series) -> bool:
    """Whether every value is greater than the one before (so all are distinct); the first 10,000 decide early."""
    n = len(values)
    head = values.head(10_000)
    return bool((head.slice(1) > head.slice(0, len(head) - 1)).all()) and (
        n <= len(head) or bool((values.slice(1) > values.slice(0, n - 1)).all()))


def _distinct(values: pl.Series) -> pl.Series:
    """Every distinct non-null value, once.

    Runs of equal values are dropped first: release tables are sorted by person, so this shrinks 30M keys
    to 1M in one cheap pass, and it never drops a distinct value even when the column is not sorted; a key
    column is then one or a few ascending runs, merged in order. A column that changes on most rows (a
    panel's period) is de-duplicated outright, unless it is strictly increasing (a key column in key order).
    """
    values = values.drop_nulls().rechunk()
    n = len(values)
    if n < 2:
        return values
    changed = values.slice(1).ne_missing(values.slice(0, n - 1))
    if changed.sum() <= n // 2:
        runs = values.filter(pl.concat([pl.Series([True]), changed]))
        merged = _sorted_distinct(runs)
        return merged if merged is not None else distinct_values(runs)
    return values if _increasing(values) else distinct_values(values)


def _column_checks(table: str, column: str, values: pl.Series, spec: ColumnSpec | None,
                   rv: RestrictedValues) -> tuple[list[GateFailure], Candidates | None]:
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
        found[GateRule.DAY_PRECISION_DATE] = u.n_unique()
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
    return failures, Candidates(table, column, kind, u.alias("v"))


def _count(values: pl.Series, checks: dict[GateRule, pl.Expr]) -> dict[GateRule, int]:
    """Distinct values matching each check (``values`` may repeat some: only matches are de-duplicated)."""
    if not len(values) or not checks:
        return {}
    row = pl.DataFrame({"v": values}).select(
        [pl.col("v").filter(e.fill_null(False)).n_unique().alias(str(rule)) for rule, e in checks.items()]
    ).row(0, named=True)
    return {GateRule(k): int(n) for k, n in row.items() if n}


def check_values(table: str, column: str, values: pl.Series, spec: ColumnSpec | None,
                 rv: RestrictedValues) -> list[GateFailure]:
    """Check one column's values (any dtype) against its spec and the restricted hash sets."""
    failures, candidates = _column_checks(table, column, values, spec, rv)
    return failures + (lookup_failures([candidates], rv) if candidates is not None else [])


def check_shapes(table: str, frame: pl.DataFrame, specs: list[ColumnSpec], allowed_pii: set[str],
                 rv: RestrictedValues) -> tuple[list[GateFailure], list[Candidates]]:
    """Names, declarations and declared shapes of one table's columns; returns the values still to look up."""
    declared = {s.name: s for s in specs}
    failures: list[GateFailure] = []
    candidates: list[Candidates] = []
    for column in frame.columns:
        failures += check_column_name(table, column, allowed_pii)
        spec = declared.get(column)
        if spec is None:
            failures.append(GateFailure(table, column, GateRule.UNDOCUMENTED_COLUMN))
        shape_failures, cand = _column_checks(table, column, frame.get_column(column), spec, rv)
        failures += shape_failures
        if cand is not None:
            candidates.append(cand)
    return failures, candidates


def check_tables(tables: dict[str, pl.DataFrame], specs: dict[str, list[ColumnSpec]], rv: RestrictedValues,
                 allowed_pii: set[str]) -> list[GateFailure]:
    """Every column of every release table: name, declaration, shape, then one batched identifier look-up."""
    failures: list[GateFailure] = []
    candidates: list[Candidates] = []
    for table, frame in tables.items():
        table_failures, cands = check_shapes(table, frame, specs[table], allowed_pii, rv)
        failures += table_failures
        candidates += cands
    return failures + lookup_failures(candidates, rv)


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
        values = pl.Series("v", strings, dtype=pl.String)
        failures += lookup_failures([Candidates(name, "(text)", kind, values) for kind in ("int", "key")], rv,
                                    shapes=False)
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
