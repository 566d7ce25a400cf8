"""Clustering with guards (cilink.link.clusters), checked against its specification on random graphs.

The specification, from the module docstring: ``component`` is the connected component over links and
must-links (named by its smallest record id); ``cluster`` refines it; no cluster holds a reviewer's
cannot-link pair, nor (must-links aside) two records whose SSNs conflict unless those two are directly
linked; a component free of conflicts is one cluster; the result does not depend on input order.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from cilink.link.clusters import cluster_records, components, ssn_conflict
from cilink.link.decisions import Thresholds
from cilink.link.persons import Context, _cluster

IDS = [f"{p}:{i}" for p in ("a", "b", "c") for i in range(6)]
SSNS = ["123456789", "123456788", "987654321", "555443333"]
pairs = st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(IDS)), max_size=30)


def _frame(rows: list[tuple[str, str]], weights: list[float] | None = None) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema={"record_id_l": pl.String, "record_id_r": pl.String}, orient="row")
    return frame.with_columns(pl.Series("match_weight", weights, dtype=pl.Float64)) if weights is not None else frame


def _naive_components(ids: list[str], edges: list[tuple[str, str]]) -> dict[str, str]:
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    out: dict[str, str] = {}
    for start in sorted(ids):
        if start in out:
            continue
        seen, stack = {start}, [start]
        while stack:
            for nxt in neighbours[stack.pop()] - seen:
                seen.add(nxt)
                stack.append(nxt)
        for r in seen:
            out[r] = min(seen)
    return out


@settings(max_examples=150, deadline=None)
@given(links=pairs, must=st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(IDS)), max_size=3),
       cannot=st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(IDS)), max_size=3),
       ssn=st.dictionaries(st.sampled_from(IDS), st.sampled_from(SSNS), max_size=12), seed=st.integers(0, 99))
def test_clusters_meet_their_specification(links, must, cannot, ssn, seed):
    rng = random.Random(seed)
    weights = [float(rng.randint(5, 9)) for _ in links]
    got = cluster_records(IDS, _frame(links, weights), must_link=_frame(must), cannot_link=_frame(cannot), ssn=ssn)
    rows = {r: (cl, comp) for r, cl, comp in got.clusters.iter_rows()}
    assert sorted(rows) == sorted(IDS)
    expected = _naive_components(IDS, [(a, b) for a, b in [*links, *must] if a != b])
    assert {r: comp for r, (_, comp) in rows.items()} == expected
    members: dict[str, list[str]] = defaultdict(list)
    for r, (cl, comp) in rows.items():
        assert expected[cl] == comp  # clusters refine components, and are named by a member
        members[cl].append(r)
    assert all(cl == min(m) for cl, m in members.items())
    direct = {frozenset(p) for p in [*links, *must]}
    cannot_set = {frozenset(p) for p in cannot if p[0] != p[1]}
    for m in members.values():
        for i, a in enumerate(m):
            for b in m[i + 1:]:
                assert frozenset((a, b)) not in cannot_set or frozenset((a, b)) in {frozenset(p) for p in must}
                # (a reviewer's must-links are taken as they are, SSNs unchecked)
                if not must and a in ssn and b in ssn and frozenset((a, b)) not in direct:
                    assert not ssn_conflict(ssn[a], ssn[b]), (a, b)
    # a component without any conflict or cannot-link inside is one cluster
    for comp in set(expected.values()):
        recs = [r for r in IDS if expected[r] == comp]
        clean = not any(frozenset((a, b)) in cannot_set for a in recs for b in recs) and not any(
            a in ssn and b in ssn and ssn_conflict(ssn[a], ssn[b]) for a in recs for b in recs)
        if clean:
            assert len({rows[r][0] for r in recs}) == 1
    # input order does not matter
    order = list(range(len(links)))
    rng.shuffle(order)
    again = cluster_records(list(reversed(IDS)), _frame([links[i] for i in order], [weights[i] for i in order]),
                            must_link=_frame(must), cannot_link=_frame(cannot),
                            ssn=pl.DataFrame({"record_id": list(ssn), "ssn": list(ssn.values())},
                                             schema={"record_id": pl.String, "ssn": pl.String}))
    assert again.clusters.equals(got.clusters)
    assert again.refused.sort(pl.all()).equals(got.refused.sort(pl.all()))


def test_components_of_a_long_chain_and_isolated_nodes():
    n = 10_000
    a = list(range(0, n - 2, 1))
    b = [x + 1 for x in a]  # 0 … n-2 in one chain; n-1 alone
    root = components(n, np.array(a[::-1]), np.array(b[::-1]))
    assert (root[: n - 1] == 0).all() and root[n - 1] == n - 1


def test_the_ssn_guard_tolerates_what_the_ssn_comparison_calls_two_edits():
    edges = pl.DataFrame({"record_id_l": ["a:1", "a:1"], "record_id_r": ["b:1", "c:1"], "match_weight": [9.0, 8.0]})
    two = cluster_records(["a:1", "b:1", "c:1"], edges, ssn={"b:1": "123456789", "c:1": "213456798"})
    assert two.clusters["cluster"].n_unique() == 1 and two.refused.is_empty()  # a swap and a typo: one person
    three = cluster_records(["a:1", "b:1", "c:1"], edges, ssn={"b:1": "123456789", "c:1": "213456700"})
    assert three.clusters["cluster"].n_unique() == 2 and three.refused["reason"].to_list() == ["ssn_conflict"]


def test_the_ssn_guard_applies_only_where_the_data_come_in_households():
    decided = pl.DataFrame({"record_id_l": ["a:1", "a:1"], "record_id_r": ["b:1", "c:1"], "match_weight": [9.0, 8.0],
                            "decision": ["link", "link"], "guard": [None, None]},
                           schema_overrides={"guard": pl.String})
    ssn = pl.DataFrame({"record_id": ["a:1", "b:1", "c:1"], "ssn": [None, "123456789", "987654321"]})

    def clusters(households: bool) -> int:
        ctx = Context(thresholds=Thresholds(4.0, 4.0), reviewed=decided.clear(), household=[],
                      households_present=households, ssn=ssn, nameless=pl.Series([], dtype=pl.String),
                      dob_conflict=None, issue_order=lambda ids: {}, taken=lambda ids: set(), rng=random.Random(1))
        found, _ = _cluster(pl.Series(["a:1", "b:1", "c:1"]), decided, ctx)
        return found["cluster"].n_unique()

    assert clusters(True) == 2  # families: the weaker link into a different SSN is refused
    assert clusters(False) == 1  # no families (FEBRL-like): differing SSNs are noise, the chain stands
