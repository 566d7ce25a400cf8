"""Published attacks on Bloom-filter encodings, run as an attacker runs them (see docs/encodings.md).

Every attack here takes only what an attacker holds: the filters of one field as the encoded file stores them,
the file's metadata (``m``, ``k``, ``blip`` are written in clear), its clear ``birth_year`` column and a public
frequency list — never the secret, the hash functions or the plaintext. Each returns one guess per record
(None: no guess); the caller scores the guesses against the truth it knows (a test, or ``cilink encode
--audit`` at the partner's site, where the plaintext is at hand).

- ``count_attack``: identical filters counted and aligned, most frequent first, with the public ranking.
- ``cluster_attack``: filters clustered at Dice ≥ 0.8 (the clusters of one name under BLIP noise), then
  cluster sizes aligned with the public frequencies within classes of the same estimated bigram count
  (Kuzu et al. 2011; the attack of issue 19 that BLIP alone did not stop).
- ``pattern_attack``: the largest aligned clusters are taken as known names, every bigram's bit positions
  are mined from them (positions set in nearly all their filters holding the bigram, and in few without it;
  Christen et al. 2017/2018), and then *every* filter is decoded to the public name whose bigrams its set
  positions best explain — including names too rare to cluster.
- ``graph_attack``: a similarity graph of the largest clusters (consensus filters, Dice) is matched with the
  public names' bigram-similarity graph on node features — frequency, bigram count, degree at several
  similarity levels, mean similarity of the nearest neighbours — all taken as percentiles within their own
  graph, so the attacker needs no calibration of Dice to bigram similarity (Vidanage et al. 2019/2020).
- ``known_pairs_attack``: bigram positions learned from filters whose plaintext the attacker knows (the hub
  from encoded records linked to its plaintext partners), then the other filters decoded.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import polars as pl

#: Dice at or above which two filters are taken as the same value (equal values under BLIP keep 0.83–1.0)
CLUSTER_DICE = 0.8
#: clusters the pattern attack takes as known names (the largest ones, whose alignment is most reliable)
PATTERN_SEEDS = 40
#: nodes of each graph in the graph attack
GRAPH_NODES = 600
_PAD = "_"


@dataclass(frozen=True)
class Public:
    """A public frequency list: values, most frequent first, and their shares."""

    values: tuple[str, ...]
    shares: np.ndarray


@cache
def public_names(field: str) -> Public:
    """The public name-frequency list shipped with cilink (``data/public_names.csv``: SSA first names,
    US Census surnames; see benchmarks/public_names.py for the source) for ``first_name`` or ``last_name``."""
    text = resources.files("cilink.encoding").joinpath("data/public_names.csv").read_text(encoding="utf-8")
    rows = [r for r in csv.DictReader(text.splitlines()) if r["field"] == field]
    rows.sort(key=lambda r: -float(r["share"]))
    return Public(tuple(r["value"] for r in rows), np.array([float(r["share"]) for r in rows]))


def unpack(filters: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(bits as an ``(n, m)`` bool matrix, mask of rows that have a filter) of a Binary column."""
    present = filters.is_not_null().to_numpy()
    nbytes = next((len(b) for b in filters.drop_nulls().head(1)), 1)
    out = np.zeros((len(filters), nbytes), dtype=np.uint8)
    if present.any():
        out[present] = np.frombuffer(b"".join(filters.drop_nulls().to_list()), dtype=np.uint8).reshape(-1, nbytes)
    return np.unpackbits(out, axis=1).astype(bool), present


def bigrams(value: str) -> set[str]:
    padded = _PAD + value + _PAD
    return {padded[i:i + 2] for i in range(len(padded) - 1)}


def estimated_bigrams(popcounts: np.ndarray, m: int, k: int, blip: float) -> np.ndarray:
    """Distinct bigrams a filter holds, from its bits set: BLIP's expected flips removed, then the Bloom
    filter fill ``m(1 - (1 - 1/m)^(k·b))`` inverted."""
    ones = np.clip((popcounts - m * blip) / max(1 - 2 * blip, 1e-9), 0, m - 1)
    return np.log1p(-ones / m) / (k * np.log1p(-1 / m))


def _dice_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    af, bf = a.astype(np.float32), b.astype(np.float32)
    inter = af @ bf.T
    total = af.sum(axis=1)[:, None] + bf.sum(axis=1)[None, :]
    return np.divide(2 * inter, total, out=np.zeros_like(inter), where=total > 0)


def _align(sizes: np.ndarray, counts: np.ndarray, public: Public) -> list[str | None]:
    """Assign to each group (largest first) the most frequent unused public value with the same bigram count
    (one off when none is left)."""
    lengths = np.array([len(bigrams(v)) for v in public.values])
    used = np.zeros(len(public.values), dtype=bool)
    out: list[str | None] = [None] * len(sizes)
    for g in np.argsort(-sizes, kind="stable"):
        for tol in (0, 1):
            free = np.flatnonzero(~used & (np.abs(lengths - counts[g]) <= tol))
            if free.size:
                used[free[0]] = True
                out[g] = public.values[free[0]]
                break
    return out


def count_attack(bits: np.ndarray, present: np.ndarray, public: Public) -> list[str | None]:
    """Identical filters counted; the most frequent aligned with the most frequent public values."""
    rows = np.flatnonzero(present)
    packed = np.packbits(bits[rows], axis=1)
    _, inverse, sizes = np.unique(packed, axis=0, return_inverse=True, return_counts=True)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    out: list[str | None] = [None] * len(present)
    for r, g in zip(rows, inverse.reshape(-1), strict=True):
        if sizes[g] > 1 and rank[g] < len(public.values):
            out[r] = public.values[rank[g]]
    return out


def clusters(bits: np.ndarray, present: np.ndarray, threshold: float = CLUSTER_DICE, seed: int = 0) -> np.ndarray:
    """Cluster label per row (−1 without a filter): rows joined when their Dice ≥ ``threshold``, candidates
    from MinHash bands (8 bands × 4 rows catch a Jaccard-0.8 pair with probability 0.98), each compared with
    its band bucket's first member; clusters are the connected components."""
    n, m = bits.shape
    rows = np.flatnonzero(present & bits.any(axis=1))
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rng = np.random.default_rng(seed)
    sub = bits[rows]
    pops = sub.sum(axis=1)
    for _band in range(8):
        key = np.zeros(rows.size, dtype=np.int64)
        for _ in range(4):
            rank = rng.permutation(m).astype(np.int16)
            mins = np.empty(rows.size, dtype=np.int64)
            for lo in range(0, rows.size, 8192):  # bounded memory: a block is 8192 × m ranks
                mins[lo:lo + 8192] = np.where(sub[lo:lo + 8192], rank[None, :], np.int16(m - 1)).min(axis=1)
            key = key * m + mins
        order = np.argsort(key, kind="stable")
        starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
        leaders = np.repeat(order[starts], np.diff(np.r_[starts, order.size]))
        others = order
        pick = leaders != others
        lead, other = leaders[pick], others[pick]
        inter = (sub[lead] & sub[other]).sum(axis=1)
        ok = 2 * inter >= threshold * (pops[lead] + pops[other])
        for a, b in zip(rows[lead[ok]], rows[other[ok]], strict=True):
            ra, rb = find(int(a)), find(int(b))
            if ra != rb:
                parent[rb] = ra
    labels = np.full(n, -1, dtype=np.int64)
    labels[rows] = [find(int(r)) for r in rows]
    return labels


def _groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct labels, group index per row — −1 without, size per group)."""
    valid = labels >= 0
    uniq, inverse, sizes = np.unique(labels[valid], return_inverse=True, return_counts=True)
    index = np.full(labels.shape, -1, dtype=np.int64)
    index[valid] = inverse
    return uniq, index, sizes


def _consensus(bits: np.ndarray, index: np.ndarray, groups: int) -> np.ndarray:
    """Majority bit pattern of each group (removes most BLIP noise from a cluster of equal values)."""
    sums = np.zeros((groups, bits.shape[1]), dtype=np.float32)
    valid = index >= 0
    np.add.at(sums, index[valid], bits[valid].astype(np.float32))
    sizes = np.bincount(index[valid], minlength=groups).astype(np.float32)
    return sums * 2 > sizes[:, None]


def cluster_attack(bits: np.ndarray, present: np.ndarray, public: Public, *, k: int, blip: float,
                   labels: np.ndarray | None = None) -> list[str | None]:
    """Clusters of Dice ≥ 0.8 aligned, largest first, with the public frequencies of the same bigram count."""
    labels = clusters(bits, present) if labels is None else labels
    _, index, sizes = _groups(labels)
    if sizes.size == 0:
        return [None] * len(present)
    pops = np.bincount(index[index >= 0], weights=bits[index >= 0].sum(axis=1), minlength=sizes.size) / sizes
    counts = np.rint(estimated_bigrams(pops, bits.shape[1], k, blip)).astype(int)
    names = _align(sizes.astype(float), counts, public)
    return [names[g] if g >= 0 and sizes[g] > 1 else None for g in index]


def learn_positions(bits: np.ndarray, values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(bigrams, their bit positions as a ``(bigrams, m)`` bool matrix) mined from filters of known values:
    a bigram's positions are set in ≥ 85 % of the filters whose value holds it and in ≤ 50 % of the rest."""
    vocab = sorted({g for v in values for g in bigrams(v)})
    if not vocab or len(values) < 2:
        return [], np.zeros((0, bits.shape[1]), dtype=bool)
    col = {g: i for i, g in enumerate(vocab)}
    has = np.zeros((len(values), len(vocab)), dtype=np.float32)
    for r, v in enumerate(values):
        has[r, [col[g] for g in bigrams(v)]] = 1
    x = bits.astype(np.float32)
    n_with = has.sum(axis=0)
    keep = (n_with >= 2) & (n_with < len(values))
    with_q = (has.T @ x) / np.maximum(n_with, 1)[:, None]
    without_q = ((1 - has).T @ x) / np.maximum(len(values) - n_with, 1)[:, None]
    pos = (with_q >= 0.85) & (without_q <= 0.5)
    keep &= pos.sum(axis=1) >= 3
    return [g for g, kept in zip(vocab, keep, strict=True) if kept], pos[keep]


def decode(bits: np.ndarray, present: np.ndarray, learned: tuple[list[str], np.ndarray],
           vocabulary: Sequence[str], *, groups: np.ndarray | None = None,
           group_vocabulary: dict[int, Sequence[str]] | None = None, min_score: float = 0.8) -> list[str | None]:
    """Each filter decoded to the vocabulary value whose bigrams best match the learned bigrams it holds
    (≥ 80 % of a bigram's positions set), by Dice over learned bigrams; ties go to the earlier value (a
    vocabulary ordered most frequent first). With ``groups``, a row's candidates are
    ``group_vocabulary[group]`` instead (e.g. the dates of its clear birth year)."""
    grams, pos = learned
    out: list[str | None] = [None] * len(present)
    if not grams:
        return out
    col = {g: i for i, g in enumerate(grams)}
    size = np.maximum(pos.sum(axis=1), 1).astype(np.float32)
    pos_t = pos.T.astype(np.float32)
    held = np.zeros((len(present), len(grams)), dtype=bool)
    for lo in range(0, len(present), 8192):
        held[lo:lo + 8192] = (bits[lo:lo + 8192].astype(np.float32) @ pos_t) / size >= 0.8

    def best(rows: np.ndarray, cands: Sequence[str]) -> None:
        if not len(cands) or not rows.size:
            return
        v = np.zeros((len(cands), len(grams)), dtype=np.float32)
        for i, value in enumerate(cands):
            v[i, [col[g] for g in bigrams(value) if g in col]] = 1
        for lo in range(0, rows.size, 5000):
            block = rows[lo:lo + 5000]
            h = held[block].astype(np.float32)
            score = 2 * (h @ v.T) / np.maximum(h.sum(axis=1)[:, None] + v.sum(axis=1)[None, :], 1)
            score -= np.arange(len(cands), dtype=np.float32)[None, :] * 1e-7
            top = score.argmax(axis=1)
            good = score[np.arange(block.size), top] >= min_score
            for r, t in zip(block[good], top[good], strict=True):
                out[r] = cands[t]

    rows = np.flatnonzero(present)
    if groups is None or group_vocabulary is None:
        best(rows, list(vocabulary))
    else:
        for g in np.unique(groups[rows]):
            best(rows[groups[rows] == g], list(group_vocabulary.get(int(g), ())))
    return out


def pattern_attack(bits: np.ndarray, present: np.ndarray, public: Public, *, k: int, blip: float,
                   labels: np.ndarray | None = None) -> list[str | None]:
    """Bit positions of every bigram mined from the largest frequency-aligned clusters, then every filter
    decoded against the public list."""
    labels = clusters(bits, present) if labels is None else labels
    guesses = cluster_attack(bits, present, public, k=k, blip=blip, labels=labels)
    _, index, sizes = _groups(labels)
    if sizes.size == 0:
        return [None] * len(present)
    top = np.argsort(-sizes, kind="stable")[:PATTERN_SEEDS]
    seeds = np.flatnonzero(np.isin(index, top[sizes[top] > 1]))
    values = [guesses[r] for r in seeds]
    known = [(r, v) for r, v in zip(seeds, values, strict=True) if v is not None]
    if len(known) < 2:
        return [None] * len(present)
    rows = np.array([r for r, _ in known])
    learned = learn_positions(bits[rows], [v for _, v in known])
    return decode(bits, present, learned, public.values)


def _percentiles(x: np.ndarray) -> np.ndarray:
    order = np.argsort(np.argsort(x, axis=0, kind="stable"), axis=0, kind="stable")
    return order / max(len(x) - 1, 1)


def _graph_features(sim: np.ndarray, weights: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    np.fill_diagonal(sim, 0)
    top = -np.sort(-sim, axis=1)[:, :5].mean(axis=1)
    cut = np.quantile(sim[np.triu_indices_from(sim, 1)], (0.9, 0.99, 0.999)) if len(sim) > 2 else (1, 1, 1)
    degrees = [(sim >= c).sum(axis=1) for c in cut]
    raw = np.column_stack([weights, lengths, top, *degrees]).astype(np.float64)
    return _percentiles(raw)


def graph_attack(bits: np.ndarray, present: np.ndarray, public: Public, *, k: int, blip: float,
                 labels: np.ndarray | None = None, nodes: int = GRAPH_NODES) -> list[str | None]:
    """The similarity graph of the largest clusters matched with the public names' bigram-similarity graph
    on percentile node features (greedy nearest pairs first)."""
    labels = clusters(bits, present) if labels is None else labels
    _, index, sizes = _groups(labels)
    if sizes.size < 3:
        return [None] * len(present)
    top = np.argsort(-sizes, kind="stable")[:nodes]
    top = top[sizes[top] > 1] if (sizes[top] > 1).sum() >= 3 else top
    cons = _consensus(bits, index, sizes.size)[top]
    enc_len = estimated_bigrams(cons.sum(axis=1).astype(float), bits.shape[1], k, 0.0)
    enc = _graph_features(_dice_matrix(cons, cons), sizes[top].astype(float), enc_len)
    names = public.values[:len(top)]
    grams = sorted({g for v in names for g in bigrams(v)})
    col = {g: i for i, g in enumerate(grams)}
    pub_bits = np.zeros((len(names), len(grams)), dtype=bool)
    for i, v in enumerate(names):
        pub_bits[i, [col[g] for g in bigrams(v)]] = True
    pub = _graph_features(_dice_matrix(pub_bits, pub_bits), public.shares[:len(names)],
                          pub_bits.sum(axis=1).astype(float))
    dist = ((enc[:, None, :] - pub[None, :, :]) ** 2).sum(axis=2)
    match: dict[int, str] = {}
    used: set[int] = set()
    for flat in np.argsort(dist, axis=None, kind="stable"):
        e, p = divmod(int(flat), len(names))
        if e in match or p in used:
            continue
        match[e] = names[p]
        used.add(p)
        if len(match) == min(len(top), len(names)):
            break
    group_name = {int(top[e]): v for e, v in match.items()}
    return [group_name.get(int(g)) if g >= 0 else None for g in index]


def known_pairs_attack(bits: np.ndarray, present: np.ndarray, known: np.ndarray, values: Sequence[str | None],
                       vocabulary: Sequence[str], **decode_options: object) -> list[str | None]:
    """Bigram positions learned from the rows ``known`` (their plaintext ``values``), then every other row
    decoded against ``vocabulary``; known rows get no guess (the attacker knew them already)."""
    rows = np.array([r for r in known if present[r] and values[r] is not None], dtype=np.int64)
    learned = learn_positions(bits[rows], [str(values[r]) for r in rows])
    out = decode(bits, present, learned, vocabulary, **decode_options)  # type: ignore[arg-type]
    for r in known:
        out[r] = None
    return out


def salt_aware_known_pairs(bits: np.ndarray, present: np.ndarray, values: Sequence[str | None],
                           salts: Sequence[str | None], known: np.ndarray, vocabulary: Sequence[str],
                           **decode_options: object) -> list[str | None]:
    """The known-pairs attack within each salt group: records that share a salt share one permutation of the
    bit positions, and the salt *function* is public (only the secret is not), so an attacker who knows the
    plaintext of the rows ``known`` (indices) computes their salts, learns each bigram's positions per group
    and decodes the group's other rows. Upper bound: the attacker is given each unknown row's group (trying
    every group gave the same figures on the demo). Known rows, and groups with fewer than two known rows, get
    no guess."""
    is_known = np.zeros(len(present), dtype=bool)
    is_known[np.asarray(known, dtype=np.int64)] = True
    groups: dict[str | None, list[int]] = {}
    for i, s in enumerate(salts):
        if s is not None:
            groups.setdefault(s, []).append(i)
    out: list[str | None] = [None] * len(present)
    for rows in groups.values():
        taught = [r for r in rows if is_known[r] and present[r] and values[r] is not None]
        target = [r for r in rows if not is_known[r] and present[r]]
        if len(taught) < 2 or not target:  # nothing to learn from, or nobody left to decode
            continue
        learned = learn_positions(bits[taught], [str(values[r]) for r in taught])
        if not learned[0]:
            continue
        # decode the group's rows alone: a file has thousands of groups
        options = dict(decode_options)
        if isinstance(options.get("groups"), np.ndarray):
            options["groups"] = options["groups"][target]  # type: ignore[index]
        guesses = decode(bits[target], np.ones(len(target), dtype=bool), learned, vocabulary,
                         **options)  # type: ignore[arg-type]
        for r, g in zip(target, guesses, strict=True):
            out[r] = g
    return out


def dates_of_year(year: int) -> list[str]:
    """Every date of ``year`` as ``YYYYMMDD``: the birth-date candidates of a record whose year is in clear."""
    start = dt.date(year, 1, 1)
    return [(start + dt.timedelta(days=d)).strftime("%Y%m%d") for d in range((dt.date(year + 1, 1, 1) - start).days)]


def reidentified(guesses: Sequence[str | None], truth: Sequence[str | None]) -> float:
    """Share of the records with a true value whose guess is that value."""
    pairs = [(g, t) for g, t in zip(guesses, truth, strict=True) if t is not None]
    return sum(1 for g, t in pairs if g == t) / len(pairs) if pairs else 0.0
