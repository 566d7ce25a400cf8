"""Clusters of records (one per person): connected components of linked pairs, with over-merge guards.

Edges are the pairs decided ``link`` plus reviewers' ``match`` decisions (must-link). Two guards can keep a
component from forming in full:

- *reviewer distinct* — a reviewer's ``non_match`` decision (cannot-link) holds transitively: the two
  records never end up in one cluster, even through other records;
- *conflicting SSNs* — a cluster never holds two records whose valid SSNs are more than two edits apart,
  unless those two records are themselves linked: the model saw the SSN disagreement and still linked
  them (a household member's SSN copied onto a record), but a chain of other records never may.

Components free of both are taken whole (found vectorised, ``components``); only the few with a conflict
go through Python, rebuilt greedily: must-links first, as the reviewer decided them (SSNs unchecked), then
links by falling match weight (ties by record ids), skipping any edge that would join two clusters in
conflict. The result depends only on the set of edges and constraints, never on input order,
so an incremental run and a full run on the same pairs give the same clusters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import jellyfish
import numpy as np
import polars as pl

from cilink.link.comparisons import SSN_EDITS

REASON_REVIEWER = "reviewer_distinct"
REASON_SSN = "ssn_conflict"


@dataclass
class Clustering:
    """``clusters``: record_id → cluster (the smallest record_id in it) and component (the smallest
    record_id of its connected component before the guards — what an incremental run must recluster when
    anything in it changes); ``refused``: link edges a guard kept apart (record_id_l, record_id_r, reason)."""

    clusters: pl.DataFrame
    refused: pl.DataFrame


class _UnionFind:
    """Union-find over the few records of troubled components (ints); a root is its set's smallest member."""

    def __init__(self, members: Iterable[int]) -> None:
        self.parent = {int(i): int(i) for i in members}

    def find(self, x: int) -> int:
        """``x``'s root (a record outside the troubled components is its own: it never joins them)."""
        parent = self.parent
        if x not in parent:
            return x
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        return ra


def ssn_conflict(a: str, b: str) -> bool:
    """Two SSNs belong to different people: they differ by more than ``SSN_EDITS`` edits (typos, swapped
    digits and a misread digit or two are one person's)."""
    return a != b and jellyfish.damerau_levenshtein_distance(a, b) > SSN_EDITS


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` nodes over edges (a, b): each node's root, its component's smallest node.

    Vectorised (a million records in well under a second): every edge hooks the larger of its two roots
    under the smaller, then pointers are jumped until each points at a root; repeated until no edge joins
    two roots. The smallest-node root is what a union-find that always keeps the smaller root gives.
    """
    parent = np.arange(n, dtype=np.int64)
    while len(a):
        pa, pb = parent[a], parent[b]
        apart = pa != pb
        if not apart.any():
            break
        lo, hi = np.minimum(pa, pb)[apart], np.maximum(pa, pb)[apart]
        np.minimum.at(parent, hi, lo)
        while True:
            jumped = parent[parent]
            if (jumped == parent).all():
                break
            parent = jumped
    return parent


def _positions(ids: pl.Series, values: pl.Series) -> pl.Series:
    """Position of each value in the sorted, unique ``ids`` (null where it is not one of them); a hash join,
    faster than a binary search of strings in arbitrary order."""
    table = pl.DataFrame({"_v": ids}).with_row_index("_i")
    found = pl.DataFrame({"_v": values}).join(table, on="_v", how="left", maintain_order="left")
    return found.get_column("_i").cast(pl.Int64).alias(values.name)


def _index(ids: pl.Series, frame: pl.DataFrame, *extra: str) -> pl.DataFrame:
    """Pairs of ``frame`` as (a, b) positions in the sorted ``ids``, a < b; pairs naming an unknown record,
    or a record and itself, are dropped."""
    out = frame.select(_positions(ids, frame["record_id_l"].cast(pl.String)).alias("l"),
                       _positions(ids, frame["record_id_r"].cast(pl.String)).alias("r"), *extra)
    return out.filter(pl.col("l").is_not_null() & pl.col("r").is_not_null() & (pl.col("l") != pl.col("r"))).select(
        pl.min_horizontal("l", "r").alias("a"), pl.max_horizontal("l", "r").alias("b"), *extra)


def cluster_records(
    record_ids: list[str] | pl.Series,
    edges: pl.DataFrame,
    *,
    must_link: pl.DataFrame | None = None,
    cannot_link: pl.DataFrame | None = None,
    ssn: Mapping[str, str] | pl.DataFrame | None = None,
) -> Clustering:
    """Cluster ``record_ids`` over ``edges`` (record_id_l, record_id_r, match_weight).

    ``must_link`` / ``cannot_link``: reviewer decisions (record_id_l, record_id_r); ``ssn``: record_id → SSN
    for records with a valid one (a mapping, or a frame of record_id, ssn). Example:
    ``cluster_records(ids, links, ssn={"a:1": "123456789"})``.
    """
    ids = pl.Series("record_id", record_ids, dtype=pl.String).unique().sort()
    n = len(ids)
    empty_pairs = pl.DataFrame(schema={"record_id_l": pl.String, "record_id_r": pl.String})
    must = sorted(set(_index(ids, must_link if must_link is not None else empty_pairs).iter_rows()))
    cannot = sorted(set(_index(ids, cannot_link if cannot_link is not None else empty_pairs).iter_rows()))
    links = _index(ids, edges, "match_weight")

    # 1. plain connected components
    ends = [np.array([p[i] for p in must], dtype=np.int64) for i in (0, 1)]
    root = components(n, np.concatenate([ends[0], links["a"].to_numpy()]),
                      np.concatenate([ends[1], links["b"].to_numpy()]))
    component = ids.gather(root)

    # 2. components holding a conflict are rebuilt greedily
    if isinstance(ssn, pl.DataFrame):
        ssn_frame = ssn.select(pl.col("record_id").cast(pl.String), pl.col("ssn").cast(pl.String))
    else:
        ssn_frame = pl.DataFrame({"record_id": list((ssn or {}).keys()), "ssn": list((ssn or {}).values())},
                                 schema={"record_id": pl.String, "ssn": pl.String})
    ssn_frame = (ssn_frame.select(_positions(ids, ssn_frame["record_id"]).alias("i"), "ssn")
                 .filter(pl.col("i").is_not_null() & pl.col("ssn").is_not_null() & (pl.col("ssn") != ""))
                 .unique("i", keep="last", maintain_order=True))
    ssn_frame = ssn_frame.with_columns(pl.Series("root", root[ssn_frame["i"].to_numpy()], dtype=pl.Int64))
    # only a component with two different SSNs can hold a conflict: check those (few) one by one
    suspects = set(ssn_frame.group_by("root").agg(pl.col("ssn").n_unique().alias("k"))
                   .filter(pl.col("k") > 1).get_column("root").to_list())
    troubled_of_cannot = {int(root[a]) for a, b in cannot if root[a] == root[b]}
    candidates = suspects | troubled_of_cannot
    refused: list[tuple[str, str, str]] = []
    cluster = root.copy()
    if candidates:
        in_candidates = np.isin(root, np.fromiter(candidates, np.int64, len(candidates)))
        sub = links.filter(pl.Series(in_candidates[links["a"].to_numpy()]))
        edge_rows = sorted((-w, a, b) for a, b, w in sub.select("a", "b", "match_weight").iter_rows())
        direct = {(a, b) for _, a, b in edge_rows} | set(must)
        ssn_idx = dict(ssn_frame.filter(pl.col("root").is_in(list(suspects))).select("i", "ssn").iter_rows())
        by_root: dict[int, list[int]] = defaultdict(list)
        for i in ssn_idx:
            by_root[int(root[i])].append(i)
        troubled = {r for r, members in by_root.items() if _conflicts(members, members, ssn_idx, direct)}
        troubled |= troubled_of_cannot
        if troubled:
            members = np.flatnonzero(np.isin(root, np.fromiter(troubled, np.int64, len(troubled))))
            old_root = {int(i): int(root[i]) for i in members}
            fresh, refused_idx = _rebuild(members, old_root, troubled, must, cannot, edge_rows, ssn_idx, direct)
            for i in members:
                cluster[i] = fresh.find(int(i))
            refused = [(ids[a], ids[b], why) for a, b, why in refused_idx]

    clusters = pl.DataFrame({"record_id": ids, "cluster": ids.gather(cluster), "component": component})
    refused_frame = pl.DataFrame(refused, schema={"record_id_l": pl.String, "record_id_r": pl.String,
                                                  "reason": pl.String}, orient="row")
    return Clustering(clusters, refused_frame)


def _conflicts(xs: list[int], ys: list[int], ssn_idx: dict[int, str], direct: set[tuple[int, int]]) -> bool:
    """Some record in ``xs`` and some in ``ys`` carry conflicting SSNs and are not directly linked."""
    for a in xs:
        for b in ys:
            if a < b and (a, b) not in direct and ssn_conflict(ssn_idx[a], ssn_idx[b]):
                return True
            if b < a and (b, a) not in direct and ssn_conflict(ssn_idx[a], ssn_idx[b]):
                return True
    return False


def _rebuild(
    members: np.ndarray,
    old_root: dict[int, int],
    troubled: set[int],
    must: list[tuple[int, int]],
    cannot: list[tuple[int, int]],
    edge_rows: list[tuple[float, int, int]],
    ssn_idx: dict[int, str],
    direct: set[tuple[int, int]],
) -> tuple[_UnionFind, list[tuple[int, int, str]]]:
    """Greedy constrained clustering inside the troubled components (``members``: their records)."""
    fresh = _UnionFind(members)
    group_enemies: dict[int, set[int]] = defaultdict(set)
    for a, b in cannot:
        if old_root.get(a) in troubled:
            group_enemies[a].add(b)
            group_enemies[b].add(a)
    group_ssn: dict[int, list[int]] = {i: [i] for i in ssn_idx if old_root.get(i) in troubled}
    refused: list[tuple[int, int, str]] = []

    def try_join(a: int, b: int, *, check_ssn: bool) -> str | None:
        ra, rb = fresh.find(a), fresh.find(b)
        if ra == rb:
            return None
        ea, eb = group_enemies.get(ra, set()), group_enemies.get(rb, set())
        if any(fresh.find(x) == rb for x in ea) or any(fresh.find(x) == ra for x in eb):
            return REASON_REVIEWER
        sa, sb = group_ssn.get(ra, []), group_ssn.get(rb, [])
        if check_ssn and sa and sb and _conflicts(sa, sb, ssn_idx, direct):
            return REASON_SSN
        root = fresh.union(ra, rb)
        group_enemies[root] = ea | eb
        group_ssn[root] = sa + sb
        return None

    for a, b in must:
        if old_root.get(a) in troubled and (why := try_join(a, b, check_ssn=False)):
            refused.append((a, b, why))
    for _, a, b in edge_rows:
        if old_root.get(a) in troubled and (why := try_join(a, b, check_ssn=True)):
            refused.append((a, b, why))
    return fresh, refused
