"""Clusters of records (one per person): connected components of linked pairs, with over-merge guards.

Edges are the pairs decided ``link`` plus reviewers' ``match`` decisions (must-link). Two guards can keep a
component from forming in full:

- *reviewer distinct* — a reviewer's ``non_match`` decision (cannot-link) holds transitively: the two
  records never end up in one cluster, even through other records;
- *conflicting SSNs* — a cluster never holds two records whose valid SSNs are more than one edit apart,
  unless those two records are themselves linked: the model saw the SSN disagreement and still linked
  them (a household member's SSN copied onto a record), but a chain of other records never may.

Components free of both are taken whole. A component with a conflict is rebuilt greedily: must-links
first, then links by falling match weight (ties by record ids), skipping any edge that would join two
clusters in conflict. The result depends only on the set of edges and constraints, never on input order,
so an incremental run and a full run on the same pairs give the same clusters.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import jellyfish
import polars as pl

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
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
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
    """Two SSNs belong to different people: they differ by more than one edit (one edit is a typo)."""
    return a != b and jellyfish.damerau_levenshtein_distance(a, b) > 1


def cluster_records(
    record_ids: list[str],
    edges: pl.DataFrame,
    *,
    must_link: pl.DataFrame | None = None,
    cannot_link: pl.DataFrame | None = None,
    ssn: dict[str, str] | None = None,
) -> Clustering:
    """Cluster ``record_ids`` (sorted unique) over ``edges`` (record_id_l, record_id_r, match_weight).

    ``must_link`` / ``cannot_link``: reviewer decisions (record_id_l, record_id_r); ``ssn``: record_id → SSN
    for records with a valid one. Example: ``cluster_records(ids, links, ssn={"a:1": "123456789"})``.
    """
    record_ids = sorted(set(record_ids))
    index = {rid: i for i, rid in enumerate(record_ids)}
    empty_pairs = pl.DataFrame(schema={"record_id_l": pl.String, "record_id_r": pl.String})
    must_link = must_link if must_link is not None else empty_pairs
    cannot_link = cannot_link if cannot_link is not None else empty_pairs
    ssn = ssn or {}

    def pairs(frame: pl.DataFrame) -> list[tuple[int, int]]:
        out = []
        for a, b in frame.select("record_id_l", "record_id_r").iter_rows():
            if a in index and b in index and a != b:
                out.append((min(index[a], index[b]), max(index[a], index[b])))
        return sorted(set(out))

    must = pairs(must_link)
    cannot = pairs(cannot_link)
    edge_rows = [
        (-w, min(index[a], index[b]), max(index[a], index[b]))
        for a, b, w in edges.select("record_id_l", "record_id_r", "match_weight").iter_rows()
        if a in index and b in index and a != b
    ]
    edge_rows.sort()

    # 1. plain connected components
    uf = _UnionFind(len(record_ids))
    for a, b in must:
        uf.union(a, b)
    for _, a, b in edge_rows:
        uf.union(a, b)

    component = [record_ids[uf.find(i)] for i in range(len(record_ids))]

    # 2. components holding a conflict are rebuilt greedily
    direct = {(a, b) for _, a, b in edge_rows} | set(must)
    ssn_idx = {index[r]: s for r, s in ssn.items() if r in index and s}
    by_root: dict[int, list[int]] = defaultdict(list)
    for i in ssn_idx:
        by_root[uf.find(i)].append(i)
    troubled = {root for root, ids in by_root.items() if _conflicts(ids, ids, ssn_idx, direct)}
    troubled |= {uf.find(a) for a, b in cannot if uf.find(a) == uf.find(b)}
    refused: list[tuple[str, str, str]] = []
    if troubled:
        uf, refused_idx = _rebuild(uf, troubled, must, cannot, edge_rows, ssn_idx, direct)
        refused = [(record_ids[a], record_ids[b], why) for a, b, why in refused_idx]

    roots = [uf.find(i) for i in range(len(record_ids))]
    clusters = pl.DataFrame(
        {"record_id": record_ids, "cluster": [record_ids[r] for r in roots], "component": component},
        schema={"record_id": pl.String, "cluster": pl.String, "component": pl.String},
    )
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
    uf: _UnionFind,
    troubled: set[int],
    must: list[tuple[int, int]],
    cannot: list[tuple[int, int]],
    edge_rows: list[tuple[float, int, int]],
    ssn_idx: dict[int, str],
    direct: set[tuple[int, int]],
) -> tuple[_UnionFind, list[tuple[int, int, str]]]:
    """Greedy constrained clustering inside the troubled components; other components stay as they are."""
    old_root = [uf.find(i) for i in range(len(uf.parent))]
    fresh = _UnionFind(len(uf.parent))
    for i, r in enumerate(old_root):  # untroubled components keep their shape
        if r not in troubled:
            fresh.union(i, r)
    group_enemies: dict[int, set[int]] = defaultdict(set)
    for a, b in cannot:
        if old_root[a] in troubled:
            group_enemies[a].add(b)
            group_enemies[b].add(a)
    group_ssn: dict[int, list[int]] = {i: [i] for i in ssn_idx if old_root[i] in troubled}
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
        if old_root[a] in troubled and (why := try_join(a, b, check_ssn=False)):
            refused.append((a, b, why))
    for _, a, b in edge_rows:
        if old_root[a] in troubled and (why := try_join(a, b, check_ssn=True)):
            refused.append((a, b, why))
    return fresh, refused
