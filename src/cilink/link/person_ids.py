"""Stable person IDs: random opaque IDs that survive relinking, with every merge and split recorded.

Rules (design §5):
- a person keeps their ID across runs: each earlier ID *claims* the new cluster holding most of its
  records (ties: the cluster with the smaller key);
- merge: a cluster claimed by several IDs keeps the oldest (first issued) and the others are retired
  (``merge`` event: person_id = survivor, other_person_id = retired);
- split: a cluster holding records of an ID that claimed another cluster gets a new ID, or the ID of its
  own claimant (``split`` event: person_id = the ID that lost records, other_person_id = where they went);
- an ID whose records are all gone is retired (``retire``); brand-new clusters get ``new`` IDs.

New IDs come from a random generator seeded with the linkage secret, ``[link] seed`` and the number of IDs
issued before, taking clusters in a canonical order: the same inputs give the same IDs, yet an ID is never
computed from anything that identifies the person.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


@dataclass(frozen=True)
class IdEvent:
    """One line of the ID history (ledger table ``id_history``)."""

    event: str  # new | merge | split | retire
    person_id: str
    other_person_id: str | None = None


@dataclass
class Assignment:
    """record_id → person_id for every record, and the ID-history events of this run."""

    person_ids: pl.DataFrame
    events: list[IdEvent]

    def event_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.event for e in self.events).items()))


def _new_id(rng: random.Random) -> str:
    n = rng.getrandbits(60)
    return "P" + "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in range(11, -1, -1))


def id_generator(secret: bytes, seed: int, issued: int) -> random.Random:
    """The generator of new IDs for a run: keyed by the secret, the configured seed and the issue count."""
    key = hmac.new(secret, f"cilink-person-ids:{seed}:{issued}".encode(), hashlib.sha256).digest()
    return random.Random(int.from_bytes(key, "big"))


def assign_person_ids(
    clusters: pl.DataFrame,
    previous: pl.DataFrame | None,
    *,
    issue_order: Callable[[list[str]], dict[str, int]] | dict[str, int],
    rng: random.Random,
    taken: Callable[[list[str]], set[str]] | set[str] | None = None,
) -> Assignment:
    """Give every cluster a person ID, keeping earlier IDs stable.

    ``clusters``: record_id, cluster. ``previous``: record_id, person_id from the last run (or None).
    ``issue_order``: person_id → when it was issued (smaller is older), or a function answering that for
    the IDs asked. ``taken``: IDs ever issued (or a function telling which of the given IDs were), never
    reused. Example: ``assign_person_ids(c, prev, issue_order={}, rng=random.Random(1))``.
    """
    order_of = issue_order if callable(issue_order) else (lambda ids, d=issue_order: {i: d[i] for i in ids if i in d})
    prev = (previous.select("record_id", "person_id") if previous is not None
            else pl.DataFrame(schema={"record_id": pl.String, "person_id": pl.String}))
    joined = clusters.select("record_id", "cluster").join(prev, on="record_id", how="left")

    # each earlier ID claims the cluster holding most of its records (ties: the smaller cluster key)
    parts = joined.filter(pl.col("person_id").is_not_null()).group_by("person_id", "cluster").len()
    claims = (parts.sort(["person_id", "len", "cluster"], descending=[False, True, False])
              .group_by("person_id", maintain_order=True).first().select("person_id", "cluster"))
    contested = claims.filter(pl.len().over("cluster") > 1)
    ranks = order_of(sorted(contested["person_id"].to_list())) if contested.height else {}
    ranked = claims.with_columns(
        pl.col("person_id").replace_strict(ranks, default=1 << 62, return_dtype=pl.Int64).alias("_rank"))
    winners = (ranked.sort(["cluster", "_rank", "person_id"])
               .group_by("cluster", maintain_order=True)
               .agg(pl.col("person_id").first().alias("winner"), pl.col("person_id").slice(1).alias("losers")))
    # whole frames, not Python dicts and sets: a first link at 1M people gives 560,000 clusters their IDs
    claimed = winners.select("cluster", pl.col("winner").alias("person_id"))
    unclaimed = (joined.select("cluster").unique().join(claimed, on="cluster", how="anti")
                 .sort("cluster")["cluster"])
    fresh: list[str] = []
    if unclaimed.len():
        seen: set[str] = set()
        while len(fresh) < unclaimed.len():
            batch = [_new_id(rng) for _ in range(unclaimed.len() - len(fresh))]
            used = taken(batch) if callable(taken) else (taken or set()) & set(batch)
            for pid in batch:
                if pid not in used and pid not in seen:
                    fresh.append(pid)
                    seen.add(pid)
    issued = pl.DataFrame({"cluster": unclaimed, "person_id": pl.Series(fresh, dtype=pl.String)})
    final = pl.concat([claimed, issued])

    had_old = parts.select("cluster").unique()
    events = [IdEvent("new", pid) for pid in issued.join(had_old, on="cluster", how="anti",
                                                         maintain_order="left")["person_id"]]
    merges = winners.select("winner", "losers").explode("losers").drop_nulls("losers")
    events += [IdEvent("merge", winner, loser) for winner, loser in merges.iter_rows()]
    moved = (parts.join(claims.rename({"cluster": "_claimed"}), on="person_id")
             .filter(pl.col("cluster") != pl.col("_claimed")).sort("cluster", "person_id")
             .join(final.rename({"person_id": "_to"}), on="cluster", how="left", maintain_order="left"))
    events += [IdEvent("split", pid, to) for pid, to in moved.select("person_id", "_to").iter_rows()]
    retired = (prev.select(pl.col("person_id").drop_nulls().unique())
               .join(claims, on="person_id", how="anti").sort("person_id"))
    events += [IdEvent("retire", pid) for pid in retired["person_id"]]
    person_ids = clusters.select("record_id", "cluster").join(final, on="cluster", how="left",
                                                             maintain_order="left").select("record_id", "person_id")
    return Assignment(person_ids=person_ids, events=_order(events))


def _order(events: list[IdEvent]) -> list[IdEvent]:
    """Events grouped by kind; within a kind in the order they arose (clusters in canonical order), so the
    ledger's sequence of ``new`` events is the order in which IDs were issued."""
    rank = {"new": 0, "split": 1, "merge": 2, "retire": 3}
    return sorted(events, key=lambda e: rank[e.event])
