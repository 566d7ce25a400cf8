"""Candidate pairs for new records, blocked in pure polars exactly as Splink's blocking SQL blocks them.

An incremental run scores only new and changed records: ``neighbours`` finds the records that share a
blocking key with one of them (the only ones a new record can pair with, so the backend need not see the
others) and ``blocked_pairs`` makes the candidate pairs Splink's ``predict_between`` would, which the
compiled scoring SQL then scores in slices (``cilink.link.engine.scoring.score_new``; a test holds the
result equal to Splink's own). No splink here: plain polars over the records and the spec's blocking rules.
"""

from __future__ import annotations

import functools

import polars as pl

from cilink.link.comparisons import LinkSpec

#: the records' key (``cilink.link.records``), also Splink's unique id column
RECORD_ID = "record_id"


def neighbours(records: pl.DataFrame, new: pl.DataFrame, spec: LinkSpec) -> pl.DataFrame:
    """The records sharing a blocking key with some new record (the new ones among them) — the only
    records a new one can be paired with, so the backend need not see the others.

    Keys are compared by hash (one 64-bit hash per rule, null when a key column is null, as SQL equality
    never holds on null): a collision only adds a record the backend's exact blocking then leaves unpaired.
    """
    rules = [list(r.columns) for r in spec.blocking_rules]
    if not rules:
        return new
    mix = pl.lit(0x100000001B3, dtype=pl.UInt64)  # each column is hashed once, then the rule's hashes mixed

    def keys(frame: pl.DataFrame) -> pl.DataFrame:
        used = sorted({c for cols in rules for c in cols})
        hashes = frame.select(*(pl.col(c).hash().alias(c) for c in used),
                              *(pl.col(c).is_null().alias(f"_null_{c}") for c in used))
        return hashes.select(
            pl.when(~pl.any_horizontal(pl.col(f"_null_{c}") for c in cols))
            .then(functools.reduce(lambda key, c: key * mix + pl.col(c), cols[1:], pl.col(cols[0])))
            .alias(f"_k{i}") for i, cols in enumerate(rules))

    wanted = keys(new)
    hit = pl.any_horizontal(pl.col(f"_k{i}").is_in(wanted[f"_k{i}"].drop_nulls().implode())
                            for i in range(len(rules)))
    return records.filter(keys(records).select(hit).to_series())


def blocked_pairs(neighbours: pl.DataFrame, new: pl.DataFrame, spec: LinkSpec) -> pl.DataFrame:
    """The candidate pairs Splink's blocking SQL makes for ``predict_between(neighbours, new)``: every
    (neighbour, new) pair agreeing on all the columns of some blocking rule (nulls never agree), once, with
    the index of the first such rule as ``match_key`` — less what the caller drops from Splink's result
    anyway: each new record paired with itself, and the second order of a pair of two new records (the one
    kept has the smaller id on the left, as in a full run)."""
    hits = [
        neighbours.lazy().select(pl.col(RECORD_ID).alias("join_key_l"), *cols).drop_nulls(cols)
        .join(new.lazy().select(pl.col(RECORD_ID).alias("join_key_r"), *cols).drop_nulls(cols), on=cols)
        .select("join_key_l", "join_key_r", pl.lit(i, dtype=pl.Int32).alias("rule"))
        for i, cols in enumerate(list(r.columns) for r in spec.blocking_rules)
    ]
    schema = {"match_key": pl.String, "join_key_l": pl.String, "join_key_r": pl.String}
    if not hits:
        return pl.DataFrame(schema=schema)
    both_new = pl.col("join_key_l").is_in(new[RECORD_ID].implode())
    return (pl.concat(hits).filter(~both_new | (pl.col("join_key_l") < pl.col("join_key_r")))
            .group_by("join_key_l", "join_key_r").agg(pl.col("rule").min())
            .select(pl.col("rule").cast(pl.String).alias("match_key"), "join_key_l", "join_key_r")
            .sort("join_key_r", "join_key_l").collect())
