"""Linkable records: one per (partner, source_person_id), built from that partner's staged rows.

Each identity field takes its most recent non-null value (batches in ingest order, then entry date, then
source row). Known variants are kept where they help: every first name seen (as nickname/alias sets) and
every last-name token seen (hyphenated, double and maiden names). Derived columns (``_cilink_*``) feed the
blocking rules and comparisons in ``cilink.link.comparisons``. In a project with encoded partners the records
also carry encodings and their blocking keys (``cilink.link.encodings``, ``ENCODED_RECORD_COLUMNS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from cilink.encoding.scheme import BIRTH_YEAR
from cilink.ingest.reasons import Flag
from cilink.ingest.validate import FLAGS_COL
from cilink.link.addresses import street_key
from cilink.link.encodings import (
    ENCODED_COLUMNS,
    ENCODED_RECORD_COLUMNS,
    NICKNAMES,
    PLAINTEXT_MARK,
    SWAPPED,
    EncodingPlan,
    add_encodings,
)
from cilink.link.names import alias_series, phonetic_series
from cilink.link.placeholders import placeholder

#: Identity fields of a linkable record, in order (design §4).
IDENTITY_FIELDS = (
    "first_name", "middle_name", "last_name", "name_suffix", "dob", "sex", "ssn", "ssn_last4", "street",
    "unit", "city", "state", "zip5", "phone", "email", "shared_id",
)
KEY_COLUMNS = ("record_id", "partner", "source_person_id")
DERIVED = (
    "_cilink_first_aliases", "_cilink_last_tokens", "_cilink_first_phonetic", "_cilink_last_phonetic",
    "_cilink_first_initial", "_cilink_last_initial", "_cilink_initials", "_cilink_dob_digits",
    "_cilink_birth_year", "_cilink_birth_month", "_cilink_birth_day", "_cilink_birth_month_day",
    "_cilink_dob_as_written", "_cilink_street_key",
    "_cilink_name_pair", "_cilink_shared_id_tail", "_cilink_name_placeholder",
)
RECORD_COLUMNS = (*KEY_COLUMNS, *IDENTITY_FIELDS, *DERIVED)

_IDENTITY_DTYPES: dict[str, pl.DataType] = {f: pl.String() for f in IDENTITY_FIELDS}
_IDENTITY_DTYPES["dob"] = pl.Date()


def record_id(partner: pl.Expr, source_person_id: pl.Expr) -> pl.Expr:
    """``"<partner>:<source_person_id>"`` — the key of a linkable record."""
    return pl.concat_str([partner, pl.lit(":"), source_person_id])


def with_record_keys(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``partner`` and ``source_person_id`` taken back from its ``record_id`` (partner ids are
    slugs, so the first ``:`` separates the two)."""
    parts = pl.col("record_id").str.splitn(":", 2)
    return frame.with_columns(parts.struct.field("field_0").alias("partner"),
                              parts.struct.field("field_1").alias("source_person_id"))


def empty_records() -> pl.DataFrame:
    """A frame with every column a linkable record can have (those of encoded projects last) and no rows."""
    schema: dict[str, pl.DataType] = {c: pl.String() for c in KEY_COLUMNS}
    schema.update(_IDENTITY_DTYPES)
    schema.update({c: pl.String() for c in DERIVED})
    schema["_cilink_first_aliases"] = pl.List(pl.String())
    schema["_cilink_last_tokens"] = pl.List(pl.String())
    schema["_cilink_name_placeholder"] = pl.Boolean()
    schema.update({c: pl.Binary() for c in ENCODED_COLUMNS})
    schema[NICKNAMES] = pl.List(pl.Binary())
    schema.update({c: pl.Binary() for c in SWAPPED.values()})
    schema.update({c: pl.Int64() for c in ENCODED_RECORD_COLUMNS if c not in schema})
    schema[PLAINTEXT_MARK] = pl.String()
    return pl.DataFrame(schema=schema)


def build_records(staged: pl.LazyFrame | pl.DataFrame, batch_order: Mapping[str, int],
                  encoding: EncodingPlan | None = None, placeholder_names: Iterable[str] = ()) -> pl.DataFrame:
    """Collapse staged rows into linkable records (sorted by ``record_id``).

    ``batch_order`` ranks batch ids by ingest time (older first); it decides which value is most recent.
    ``encoding``: the project's plan when some partner is encoded (adds ``ENCODED_RECORD_COLUMNS``).
    Placeholder names ("Baby Boy", "Unknown", "FNU": ``cilink.link.placeholders``, plus
    ``placeholder_names``) count as missing; a record that had one is flagged ``_cilink_name_placeholder``.
    Example: ``build_records(staged_records(ws), {b.batch_id: i for i, b in enumerate(batches)})``
    """
    lf = staged.lazy()
    names = lf.collect_schema().names()
    when = pl.col("entry_date") if "entry_date" in names else pl.lit(None, dtype=pl.Date)
    present = [f for f in IDENTITY_FIELDS if f in names]
    carried = [c for c in (*ENCODED_COLUMNS, BIRTH_YEAR) if c in names] if encoding is not None else []
    extra = tuple(placeholder_names)
    named = [f for f in ("first_name", "middle_name", "last_name") if f in present]
    flagged = [placeholder(f, extra).alias(f"_ph_{f}") for f in named]
    lf = lf.with_columns(*flagged).with_columns(
        *[pl.when(pl.col(f"_ph_{f}")).then(None).otherwise(pl.col(f)).alias(f) for f in named])
    repaired = (pl.col(FLAGS_COL).list.contains(Flag.DOB_REPAIRED.value).fill_null(False)
                if FLAGS_COL in names else pl.lit(False))
    lf = lf.select(
        pl.col("_cilink_partner").alias("partner"),
        pl.col("source_person_id"),
        repaired.alias("_dob_repaired"),
        (pl.any_horizontal(*[pl.col(f"_ph_{f}") for f in named]) if named else pl.lit(False)).alias("_ph"),
        *[pl.col(f).cast(_IDENTITY_DTYPES[f]) for f in present],
        *[pl.col(c) for c in carried],
        *[pl.lit(None, dtype=_IDENTITY_DTYPES[f]).alias(f) for f in IDENTITY_FIELDS if f not in present],
        pl.col("_cilink_batch_id").replace_strict(dict(batch_order), default=-1, return_dtype=pl.Int64).alias("_ord"),
        when.alias("_when"),
        pl.col("_cilink_row").alias("_row"),
    ).filter(pl.col("source_person_id").is_not_null() & (pl.col("source_person_id") != ""))
    grouped = (
        lf.sort(["partner", "source_person_id", "_ord", "_when", "_row"], nulls_last=False)
        .group_by(["partner", "source_person_id"], maintain_order=True)
        .agg(
            *[pl.col(f).drop_nulls().last() for f in (*IDENTITY_FIELDS, *carried)],
            pl.col("first_name").drop_nulls().unique(maintain_order=True).alias("_first_variants"),
            pl.col("last_name").drop_nulls().unique(maintain_order=True).alias("_last_variants"),
            pl.col("_ph").any().alias("_cilink_name_placeholder"),
            # whether the birth date kept (the latest) is one ingest repaired
            pl.col("_dob_repaired").filter(pl.col("dob").is_not_null()).last().fill_null(False),
        )
        .collect()
    )
    return _derive(grouped, encoding)


def _derive(frame: pl.DataFrame, encoding: EncodingPlan | None = None) -> pl.DataFrame:
    """Add the record key and the derived ``_cilink_*`` columns."""
    frame = frame.with_columns(
        record_id(pl.col("partner"), pl.col("source_person_id")).alias("record_id"),
        # a full SSN decides the last four; a masked one (last four only) is kept as given
        pl.coalesce(pl.col("ssn").str.slice(-4), pl.col("ssn_last4")).alias("ssn_last4"),
    )
    variants = frame.select("record_id", "_first_variants").explode("_first_variants").drop_nulls()
    variants = variants.with_columns(alias_series(variants["_first_variants"]).alias("_a"))
    first_aliases = (
        variants.explode("_a").drop_nulls("_a").group_by("record_id")
        .agg(pl.col("_a").unique().sort().alias("_cilink_first_aliases"))
    )
    last_tokens = (
        frame.select("record_id", "_last_variants").explode("_last_variants").drop_nulls()
        .with_columns(pl.concat_list(pl.col("_last_variants"), pl.col("_last_variants").str.split(" ")).alias("_t"))
        .explode("_t").filter(pl.col("_t").str.len_chars() > 1)
        .group_by("record_id").agg(pl.col("_t").unique().sort().alias("_cilink_last_tokens"))
    )
    dob = pl.col("dob")
    first_initial, last_initial = pl.col("first_name").str.slice(0, 1), pl.col("last_name").str.slice(0, 1)
    frame = (
        frame.join(first_aliases, on="record_id", how="left")
        .join(last_tokens, on="record_id", how="left")
        .with_columns(
            phonetic_series(frame["first_name"]).alias("_cilink_first_phonetic"),
            phonetic_series(frame["last_name"]).alias("_cilink_last_phonetic"),
            first_initial.alias("_cilink_first_initial"),
            last_initial.alias("_cilink_last_initial"),
            # the two initials in either order: a first/last swap (with a typo further in) agrees on it
            pl.when(first_initial.is_not_null() & last_initial.is_not_null()).then(
                pl.concat_str([pl.min_horizontal(first_initial, last_initial),
                               pl.max_horizontal(first_initial, last_initial)])).alias("_cilink_initials"),
            dob.dt.strftime("%Y%m%d").alias("_cilink_dob_digits"),
            dob.dt.strftime("%Y").alias("_cilink_birth_year"),
            dob.dt.strftime("%m").alias("_cilink_birth_month"),
            dob.dt.strftime("%d").alias("_cilink_birth_day"),
            dob.dt.strftime("%m%d").alias("_cilink_birth_month_day"),
            street_key(pl.col("street")).alias("_cilink_street_key"),
            pl.col("shared_id").str.slice(-4).alias("_cilink_shared_id_tail"),
            # first and last name in either order: a first/last swap agrees on it
            pl.when(pl.col("first_name").is_not_null() & pl.col("last_name").is_not_null()).then(
                pl.concat_str([pl.min_horizontal("first_name", "last_name"), pl.lit("|"),
                               pl.max_horizontal("first_name", "last_name")])).alias("_cilink_name_pair"),
        )
        .with_columns(pl.when(~pl.col("_dob_repaired")).then(pl.col("_cilink_dob_digits")).alias("_cilink_dob_as_written"))
    )
    if encoding is not None:
        return add_encodings(frame, encoding).select(*RECORD_COLUMNS, *ENCODED_RECORD_COLUMNS).sort("record_id")
    return frame.select(RECORD_COLUMNS).sort("record_id")


def changed_record_ids(previous: pl.DataFrame, current: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """(record ids new or changed in ``current``, record ids no longer present) compared with ``previous``."""
    cols = [*RECORD_COLUMNS, *(c for c in ENCODED_RECORD_COLUMNS if c in current.columns)]
    if any(c not in previous.columns for c in cols):  # written by another cilink version: all new
        cur_ids = current["record_id"]
        return cur_ids, previous.filter(~pl.col("record_id").is_in(cur_ids.implode()))["record_id"]
    prev = previous.select("record_id", previous.select(cols).hash_rows(seed=7).alias("_h"))
    cur = current.select("record_id", current.select(cols).hash_rows(seed=7).alias("_h"))
    joined = cur.join(prev, on="record_id", how="left", suffix="_prev")
    changed = joined.filter(pl.col("_h_prev").is_null() | (pl.col("_h") != pl.col("_h_prev")))["record_id"]
    removed = prev.join(cur, on="record_id", how="anti")["record_id"]
    return changed.sort(), removed.sort()
