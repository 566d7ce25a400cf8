"""Rules → reasons and flags: every row of a batch ends accepted (maybe flagged) or quarantined.

All checks are polars expressions over whole columns (no Python per row). Each check produces a
boolean issue column named ``_issue__<field>__<code>``; codes from ``Reason`` quarantine the row,
codes from ``Flag`` null the value and mark the row in ``_cilink_flags``. Which checks a field gets
follows from its FieldSpec (the domain model) and, for identity fields, from its name.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

import polars as pl

from cilink import parallel
from cilink.ingest import standardize as std
from cilink.ingest.dates import DateParser
from cilink.ingest.fields import FieldSpec, Kind, field_specs
from cilink.ingest.hmis import ISSUE_PREFIX, destination_category, is_dq_code
from cilink.ingest.mapping import Mapped
from cilink.ingest.readers import NFIELDS, ROW
from cilink.ingest.reasons import Flag, Reason
from cilink.schemas import polars_schema

#: longest cell cilink stages; no identity or event value is longer, and a megabyte "name" is a
#: broken export (or an attack), not a person
MAX_TEXT = 1000
FLAGS_COL = "_cilink_flags"
RAW = "_raw__"
_EARLIEST = dt.date(1900, 1, 1)
#: HUD-coded housing integers where 8/9/99 mean "no information"
_HUD_DQ_FIELDS = ("relationship_to_hoh", "destination")


@dataclass(frozen=True)
class Rules:
    """What a batch is checked against: its domain, its partner's dates and codes, and today's date."""

    domain: str
    dates: DateParser
    today: dt.date
    race_codes: dict[str, str] = field(default_factory=dict)


@dataclass
class Checked:
    """A batch after validation.

    ``accepted``: standardized rows (domain fields + ``_cilink_row`` + ``_cilink_flags``).
    ``quarantine``: one row per (source row, reason): ``_cilink_row``, ``source_person_id``, ``column``
    (as the partner names it), ``field``, ``value`` (raw text), ``reason``, ``detail``.
    """

    accepted: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    quarantined: int
    quarantine_by_reason: dict[str, int]
    flags_by_field: dict[str, dict[str, int]]

    @property
    def accepted_rows(self) -> int:
        return self.accepted.height


def issue_name(fld: str, code: str) -> str:
    return f"{ISSUE_PREFIX}{fld}__{code}"


def _parse_issue(name: str) -> tuple[str, str]:
    fld, code = name.removeprefix(ISSUE_PREFIX).split("__", 1)
    return fld, code


class _Plan:
    """Collects value expressions, issue masks (OR-ed per field and code) and intermediate columns.

    ``mat(field)`` gives the field's materializer (see standardize.Mat): its i-th intermediate column is
    computed in stage i, so an intermediate may use earlier ones of the same field.
    """

    def __init__(self) -> None:
        self.values: dict[str, pl.Expr] = {}
        self.issues: dict[tuple[str, str], pl.Expr] = {}
        self.stages: list[list[pl.Expr]] = []
        self._counts: dict[str, int] = {}

    def mat(self, fld: str) -> std.Mat:
        def materialize(expr: pl.Expr) -> pl.Expr:
            i = self._counts.get(fld, 0)
            self._counts[fld] = i + 1
            if len(self.stages) <= i:
                self.stages.append([])
            name = f"__m_{fld}_{i}"
            self.stages[i].append(expr.alias(name))
            return pl.col(name)

        return materialize

    def issue(self, fld: str, code: str, mask: pl.Expr) -> None:
        mask = mask.fill_null(False)
        key = (fld, code)
        self.issues[key] = self.issues[key] | mask if key in self.issues else mask


def _date_checks(plan: _Plan, spec: FieldSpec, raw: pl.Expr, rules: Rules) -> None:
    parsed = plan.mat(spec.name)(rules.dates.parse(raw))
    unparseable = raw.is_not_null() & parsed.is_null()
    plan.values[spec.name] = parsed
    if spec.name == "dob":
        # a birth date is an identifier: one that can be repaired still links the person (design §4)
        repaired = plan.mat("dob")(pl.when(unparseable).then(rules.dates.repair(raw)))
        dob = pl.coalesce(parsed, repaired)
        plan.values["dob"] = dob
        plan.issue("dob", Flag.DOB_REPAIRED, repaired.is_not_null())
        plan.issue("dob", Flag.DATE_UNPARSEABLE, unparseable & repaired.is_null())
        plan.issue("dob", Flag.DOB_IMPOSSIBLE, (dob > rules.today) | (dob < _EARLIEST))
        return
    if spec.required:
        plan.issue(spec.name, Reason.MISSING_REQUIRED, raw.is_null())
        plan.issue(spec.name, Reason.UNPARSEABLE_DATE, unparseable)
    else:
        plan.issue(spec.name, Flag.DATE_UNPARSEABLE, unparseable)
    plan.issue(spec.name, Reason.FUTURE_DATE, parsed > rules.today)
    plan.issue(spec.name, Reason.DATE_BEFORE_1900, parsed < _EARLIEST)


def _bounded(plan: _Plan, spec: FieldSpec, value: pl.Expr, bad: pl.Expr) -> None:
    if spec.ge is not None:
        bad = bad | (value < spec.ge)
    if spec.le is not None:
        bad = bad | (value > spec.le)
    plan.values[spec.name] = value
    plan.issue(spec.name, Reason.INVALID_VALUE, bad)


def _identity_or_generic(plan: _Plan, spec: FieldSpec, raw: pl.Expr, rules: Rules) -> None:
    """Identity fields by name (internals.md's standardized forms); other fields by their kind."""
    n = spec.name
    mat = plan.mat(n)
    if n == "source_person_id":
        plan.values[n] = std.text(raw)
        plan.issue(n, Reason.MISSING_SOURCE_PERSON_ID, plan.values[n].is_null())
    elif n == "last_name":
        last, sfx = std.split_suffix(mat(std.name(raw)), mat)
        plan.values[n] = last
        plan.values["__last_suffix"] = sfx  # "Smith Jr." → smith + JR; merged with name_suffix below
    elif n in ("first_name", "middle_name"):
        plan.values[n] = std.name(raw)
    elif n == "name_suffix":
        value, bad = std.suffix(raw, mat)
        plan.values[n] = value
        plan.issue(n, Flag.CODE_UNMAPPED, bad)
    elif n == "ssn":
        value, last4, invalid, masked = std.ssn(raw, mat)
        plan.values[n] = value
        plan.values["__ssn_last4"] = last4
        plan.issue(n, Flag.SSN_INVALID, invalid)
        plan.issue(n, Flag.SSN_MASKED, masked)
    elif n == "shared_id":
        plan.values[n] = std.shared_id(raw)
    elif n == "ssn_last4":
        value, bad = std.ssn_last4(raw, mat)
        plan.values[n] = value
        plan.issue(n, Flag.SSN_INVALID, bad)
    elif n == "zip5":
        value, bad = std.zip5(raw, mat)
        plan.values[n] = value
        plan.issue(n, Flag.ZIP_INVALID, bad)
    elif n == "phone":
        value, bad = std.phone(raw, mat)
        plan.values[n] = value
        plan.issue(n, Flag.PHONE_INVALID, bad)
    elif n == "email":
        value, bad = std.email(raw, mat)
        plan.values[n] = value
        plan.issue(n, Flag.EMAIL_INVALID, bad)
    elif n in ("street", "unit", "city"):
        plan.values[n] = std.address_line(raw)
    elif n == "state":
        value, bad = std.state(raw, mat)
        plan.values[n] = value
        plan.issue(n, Flag.CODE_UNMAPPED, bad)
    elif n == "sex":
        value, bad = std.sex(raw, mat)
        plan.values[n] = value
        plan.issue(n, Flag.CODE_UNMAPPED, bad)
    elif spec.kind == Kind.CODE_LIST:
        value, bad = std.race_ethnicity(raw, rules.race_codes, mat)
        plan.values[n] = value
        plan.issue(n, Flag.CODE_UNMAPPED, bad)
    elif spec.kind == Kind.CODE:
        value, bad = (std.grade_level(raw, spec.allowed, mat) if n == "grade_level"
                      else std.code(raw, spec.allowed, mat=mat))
        plan.values[n] = value
        plan.issue(n, Flag.CODE_UNMAPPED, bad)
    elif spec.kind == Kind.DATE:
        _date_checks(plan, spec, raw, rules)
    elif spec.kind == Kind.INT:
        value, bad = std.integer(raw, mat)
        _bounded(plan, spec, value, bad)
    elif spec.kind == Kind.FLOAT:
        value, bad = std.number(raw, mat)
        _bounded(plan, spec, value, bad)
    elif spec.kind == Kind.BOOL:
        value, bad = std.boolean(raw, mat)
        plan.values[n] = value
        plan.issue(n, Reason.INVALID_VALUE, bad)
    else:
        value = mat(std.school_year(raw) if n == "school_year" else std.text(raw))
        plan.values[n] = value
        if spec.pattern:
            plan.issue(n, Reason.INVALID_VALUE, value.is_not_null() & ~value.str.contains(spec.pattern))
    if spec.required and n != "source_person_id" and spec.kind != Kind.DATE:
        plan.issue(n, Reason.MISSING_REQUIRED, plan.values[n].is_null())


def _field_columns(frame: pl.DataFrame, f: str, spec: FieldSpec, rules: Rules) -> pl.DataFrame:
    """One field's standardized value(s) and issue columns, row-aligned with ``frame``.

    Computed once per distinct raw value and joined back: names, dates, codes and addresses repeat a
    lot, and regex/Unicode work dominates ingest time (a million rows hold a few thousand first names).
    """
    raw_name = f"{RAW}{f}"
    plan = _Plan()
    raw = pl.col(raw_name)
    plan.issue(f, Reason.INVALID_VALUE, raw.str.len_chars() > MAX_TEXT)
    _identity_or_generic(plan, spec, raw, rules)
    outputs = [*[v.alias(k) for k, v in plan.values.items()],
               *[m.alias(issue_name(fld, c)) for (fld, c), m in plan.issues.items()]]
    keys = frame.select(pl.col(raw_name).unique())
    source = keys if keys.height < frame.height else frame.select(raw)  # all distinct: skip the join
    lf = source.lazy()
    for stage in plan.stages:
        lf = lf.with_columns(stage)
    computed = lf.select(raw, *outputs).collect()
    if source is not keys:
        return computed.drop(raw_name)
    return frame.select(raw).join(computed, on=raw_name, how="left", nulls_equal=True,
                                  maintain_order="left").drop(raw_name)


def standardize_frame(mapped: Mapped, rules: Rules) -> pl.LazyFrame:
    """Standardized values and issue columns for a mapped batch (lazy; nothing is filtered yet)."""
    specs = field_specs(rules.domain)
    present = [f for f in specs if f in mapped.frame.columns]
    frame = mapped.frame.rename({f: f"{RAW}{f}" for f in present})
    # each field is its own query over its distinct values: two at a time keep both cores busy (one query
    # alone mostly runs on one: a few thousand distinct names are too few to split)
    parts = parallel.run_all(*[functools.partial(_field_columns, frame, f, specs[f], rules) for f in present],
                             at_once=parallel.workers())
    frame = pl.concat([frame, *parts], how="horizontal")
    missing = [pl.lit(True).alias(issue_name(f, Reason.MISSING_REQUIRED))
               for f in specs if f not in present and specs[f].required]
    lf = frame.lazy().with_columns(missing) if missing else frame.lazy()

    # cross-field rules, on the values computed above ------------------------------------------------
    cross: list[pl.Expr] = []
    if "last_name" in present:
        sfx = pl.col("__last_suffix")
        cross.append((pl.coalesce("name_suffix", sfx) if "name_suffix" in present else sfx).alias("name_suffix"))
    if "ssn" in present:
        given = [pl.col("ssn_last4")] if "ssn_last4" in present else []
        cross.append(pl.coalesce(pl.col("__ssn_last4"), *given).alias("ssn_last4"))
    if "entry_date" in present and "exit_date" in present:
        cross.append((pl.col("exit_date") < pl.col("entry_date")).fill_null(False)
                     .alias(issue_name("exit_date", Reason.EXIT_BEFORE_ENTRY)))
    if rules.domain == "housing" and "destination" in present:
        code = pl.col("destination")
        derived = destination_category(code)
        cross.append(pl.coalesce("destination_category", derived).alias("destination_category")
                     if "destination_category" in present else derived.alias("destination_category"))
        cross.append((code.is_not_null() & derived.is_null()).alias(issue_name("destination", Flag.CODE_UNMAPPED)))
    if cross:
        lf = lf.with_columns(cross)
    nulls = [(pl.when(is_dq_code(pl.col(f))).then(None).otherwise(pl.col(f))).alias(f)
             for f in _HUD_DQ_FIELDS if rules.domain == "housing" and f in present]
    if nulls:
        lf = lf.with_columns(nulls)

    # a flag nulls its field's value (the accept-with-flag outcome of design §4)
    names = lf.collect_schema().names()
    flagged: dict[str, list[str]] = {}
    for col in names:
        if col.startswith(ISSUE_PREFIX):
            f, c = _parse_issue(col)
            if c in Flag.__members__.values() and f in specs and c not in (Flag.SSN_MASKED, Flag.DOB_REPAIRED):
                flagged.setdefault(f, []).append(col)
    lf = lf.with_columns(
        pl.when(pl.any_horizontal(cols)).then(None).otherwise(pl.col(f)).alias(f) for f, cols in flagged.items()
    )
    schema = polars_schema(rules.domain, with_meta=False)
    return lf.with_columns(
        *[pl.col(f).cast(schema[f]) if f in names else pl.lit(None, dtype=schema[f]).alias(f) for f in specs]
    )


def _detail(spec: FieldSpec | None, code: str, rules: Rules) -> str | None:
    """A short, value-free explanation for the partner of what a field must look like."""
    if code in (Reason.UNPARSEABLE_DATE, Flag.DATE_UNPARSEABLE):
        return f"expected a date like {rules.dates.fmt}"
    if code == Reason.FUTURE_DATE:
        return "date is after the day of ingest"
    if code == Reason.DATE_BEFORE_1900:
        return "date is before 1900"
    if code == Reason.EXIT_BEFORE_ENTRY:
        return "exit date is before the entry date"
    if code == Reason.INVALID_VALUE and spec is not None:
        what = {Kind.INT: "a whole number", Kind.FLOAT: "a number", Kind.BOOL: "yes/no"}.get(spec.kind, "text")
        if spec.pattern:
            what = f"text matching {spec.pattern}"
        rng = ""
        if spec.ge is not None or spec.le is not None:
            rng = f" from {spec.ge:g}" if spec.ge is not None else ""
            rng += f" to {spec.le:g}" if spec.le is not None else ""
        return f"must be {what}{rng}, at most {MAX_TEXT} characters"
    return None


def _flag_lists(df: pl.DataFrame, flag_cols: list[str]) -> pl.Series:
    """``_cilink_flags`` per row: sorted, distinct flag codes (empty list when none).

    Building lists row by row is slow in polars; instead each row's set of flags is packed into a
    bitmask, the few distinct masks are turned into lists, and a join spreads them back.
    """
    if not flag_cols:
        return pl.Series(FLAGS_COL, [[]] * df.height, dtype=pl.List(pl.String))
    bits = pl.sum_horizontal(pl.col(c).cast(pl.UInt64) * (1 << i) for i, c in enumerate(flag_cols))
    masks = df.select(bits.alias("__mask"))
    lookup = pl.DataFrame(
        {"__mask": m, FLAGS_COL: sorted({_parse_issue(c)[1] for i, c in enumerate(flag_cols) if m >> i & 1})}
        for m in masks["__mask"].unique().to_list()
    ) if masks.height else pl.DataFrame(schema={"__mask": pl.UInt64, FLAGS_COL: pl.List(pl.String)})
    lookup = lookup.with_columns(pl.col("__mask").cast(pl.UInt64), pl.col(FLAGS_COL).cast(pl.List(pl.String)))
    return masks.join(lookup, on="__mask", how="left", maintain_order="left")[FLAGS_COL]


def check(mapped: Mapped, rules: Rules) -> Checked:
    """Standardize and validate a mapped batch; split it into accepted rows and the quarantine table.

    Invariant: every input row is in exactly one of ``accepted`` or the set of quarantined rows.
    A ragged row (wrong field count) is quarantined for that reason alone: its other cells are
    shifted, so checking them would only add noise.
    """
    specs = field_specs(rules.domain)
    df = standardize_frame(mapped, rules).collect()
    ragged = pl.col(NFIELDS) != mapped.expected_fields
    issue_cols = [c for c in df.columns if c.startswith(ISSUE_PREFIX)]
    reason_cols = [c for c in issue_cols if _parse_issue(c)[1] in Reason.__members__.values()]
    flag_cols = [c for c in issue_cols if _parse_issue(c)[1] in Flag.__members__.values()]
    quarantined = ragged | pl.any_horizontal(reason_cols) if reason_cols else ragged
    df = df.with_columns(quarantined.alias("__q"), ragged.alias("__ragged"))

    accepted_df = df.filter(~pl.col("__q"))
    accepted = accepted_df.select(*specs, pl.col(ROW)).with_columns(_flag_lists(accepted_df, flag_cols))
    if mapped.passthrough is not None:  # encoded files: their encodings go with the accepted rows
        accepted = accepted.join(mapped.passthrough, on=ROW, how="left", maintain_order="left")

    spid = pl.col(f"{RAW}source_person_id") if f"{RAW}source_person_id" in df.columns \
        else pl.lit(None, dtype=pl.String)
    parts = []
    for c in reason_cols:
        f, code = _parse_issue(c)
        value = pl.col(f"{RAW}{f}") if f"{RAW}{f}" in df.columns else pl.lit(None, dtype=pl.String)
        parts.append(df.filter(pl.col(c) & ~pl.col("__ragged")).select(
            pl.col(ROW), spid.alias("source_person_id"),
            pl.lit(mapped.source_columns.get(f, f)).alias("column"), pl.lit(f).alias("field"),
            value.alias("value"), pl.lit(code).alias("reason"),
            pl.lit(_detail(specs.get(f), code, rules), dtype=pl.String).alias("detail"),
        ))
    parts.append(df.filter(pl.col("__ragged")).select(
        pl.col(ROW), spid.alias("source_person_id"), pl.lit(None, dtype=pl.String).alias("column"),
        pl.lit(None, dtype=pl.String).alias("field"), pl.lit(None, dtype=pl.String).alias("value"),
        pl.lit(Reason.RAGGED_ROW.value).alias("reason"),
        pl.format("found {} fields, expected {}", pl.col(NFIELDS), pl.lit(mapped.expected_fields)).alias("detail"),
    ))
    quarantine = pl.concat(parts, how="vertical_relaxed").with_columns(
        pl.when(pl.col("value").str.len_chars() > MAX_TEXT)
        .then(pl.col("value").str.slice(0, MAX_TEXT) + "…").otherwise(pl.col("value")).alias("value")
    ).sort(ROW, "reason", "field", nulls_last=True)

    by_reason = quarantine.group_by("reason").agg(pl.col(ROW).n_unique().alias("n"))
    flag_counts: dict[str, dict[str, int]] = {}
    if flag_cols:
        sums = accepted_df.select(pl.col(flag_cols).sum()).row(0, named=True)
        for c, n in sums.items():
            if n:
                f, code = _parse_issue(c)
                flag_counts.setdefault(f, {})[code] = int(n)
    return Checked(
        accepted=accepted,
        quarantine=quarantine,
        rows_in=df.height,
        quarantined=int(df["__q"].sum()),
        quarantine_by_reason={r: int(n) for r, n in sorted(by_reason.iter_rows())},
        flags_by_field=dict(sorted(flag_counts.items())),
    )
