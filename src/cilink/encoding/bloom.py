"""Keyed field-level Bloom filters over character bigrams, built column-at-a-time with numpy.

A value (say the first name ``ann``) is padded (``_ann_``), split into bigrams (``_a an nn n_``) and every
bigram sets ``k`` bits of an ``m``-bit filter. The bit positions come from HMAC-SHA256 under the partners'
shared encoding secret, over ``field | salt | bigram``: without the secret nobody can compute a filter, and the
same bigram sets different bits in different fields. Two filters are compared by their Dice coefficient
``2·|A∧B| / (|A|+|B|)``, which tracks the share of bigrams two values have in common.

Speed: HMAC runs once per distinct (field, salt, bigram) token and bits are set once per distinct
(value, salt) pair; everything else is numpy over whole columns (see benchmarks/encode_1m.py).

Salting by another field (the default scheme, ``permute=True``): a bigram's positions are computed once per
(field, bigram) and then sent through a keyed random permutation of ``[0, m)`` chosen by the salt —
HMAC-SHA256(secret, ``field | salt``) seeds it. Under two salts the same bigram lands on unrelated
positions, exactly as if the salt were part of each bigram's key, but HMAC runs once per distinct bigram and
once per distinct salt instead of once per (value, salt, bigram): the salt makes nearly every (value, salt)
pair distinct, and per-token HMAC was 7× slower (benchmarks/encode_1m.py).

Hardening (``blip``): after building, each filter's bits are flipped at random with probability ``f``
(BLIP, randomized response). Identical values then no longer give identical filters, which defeats
counting-based frequency attacks; see docs/encodings.md for why and what it costs.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import polars as pl
import pyarrow as pa

#: padding character around values before splitting them into bigrams
PAD = "_"
#: rows encoded per numpy block (bounds memory: a block is rows × m bytes while being built)
BLOCK = 100_000


def bigram_positions(secret: bytes, tokens: list[str], m: int, k: int) -> np.ndarray:
    """``k`` bit positions in ``[0, m)`` for each token: an ``(len(tokens), k)`` uint16 array.

    Positions are 16-bit slices of HMAC-SHA256(secret, token) (more digests with a counter when k > 16);
    ``m`` must divide 65536 so the reduction is unbiased.
    """
    if 65536 % m:
        raise ValueError("m must divide 65536 (e.g. 512, 1024, 2048)")
    out = np.empty((len(tokens), k), dtype=np.uint16)
    rounds = -(-k // 16)
    for i, tok in enumerate(tokens):
        raw = tok.encode("utf-8")
        digest = b"".join(hmac.new(secret, bytes([r]) + raw, hashlib.sha256).digest() for r in range(rounds))
        out[i] = np.frombuffer(digest, dtype="<u2")[:k]
    return out % m


def _bigrams(values: pl.Series) -> pl.DataFrame:
    """(value index, bigram) for every bigram of every padded value (vectorized over lengths)."""
    padded = (PAD + values + PAD).alias("v")
    frame = pl.DataFrame({"i": np.arange(len(values), dtype=np.int64), "v": padded})
    frame = frame.with_columns(pl.col("v").str.len_chars().alias("n"))
    longest = int(frame["n"].max() or 0)
    parts = [
        frame.filter(pl.col("n") >= start + 2).select("i", pl.col("v").str.slice(start, 2).alias("g"))
        for start in range(max(longest - 1, 0))
    ]
    return pl.concat(parts) if parts else pl.DataFrame(schema={"i": pl.Int64, "g": pl.String})


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 that spreads every input bit over the output."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class SaltPermutations:
    """Keyed random permutations of ``[0, m)``, one per salt value, computed once and shared by every field
    a record's salt salts (the fields' bigram positions already differ by field key): the permutation of
    salt ``s`` orders ``mix64(key ^ mix64(j + 1))`` over ``j``, ``key`` from HMAC-SHA256(secret, ``salt|s``).
    It depends on the secret and the salt only, so the partner and the hub compute it independently."""

    def __init__(self, secret: bytes, m: int) -> None:
        self.secret, self.m = secret, m
        self._rows: dict[str, int] = {}
        self._table = np.empty((0, m), dtype=np.int16)

    def rows(self, salts: list[str]) -> np.ndarray:
        """Row index in ``table`` of each salt's permutation (computing the missing ones)."""
        new = [s for s in dict.fromkeys(salts) if s not in self._rows]
        if new:
            keys = np.array([int.from_bytes(hmac.new(self.secret, b"salt|" + s.encode(), hashlib.sha256)
                                            .digest()[:8], "little") for s in new], dtype=np.uint64)
            j = mix64(np.arange(1, self.m + 1, dtype=np.uint64))
            block = np.empty((len(new), self.m), dtype=np.int16)
            for lo in range(0, len(new), 4096):
                block[lo:lo + 4096] = np.argsort(mix64(keys[lo:lo + 4096, None] ^ j[None, :]), axis=1)
            first = self._table.shape[0]
            self._table = np.concatenate([self._table, block])
            self._rows.update({s: first + i for i, s in enumerate(new)})
        return np.array([self._rows[s] for s in salts], dtype=np.int64)

    @property
    def table(self) -> np.ndarray:
        return self._table


def filter_matrix(values: pl.Series, salts: pl.Series | None, *, secret: bytes, field: str, m: int, k: int,
                  permute: SaltPermutations | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(filters as an ``(n, m/8)`` uint8 matrix, mask of rows that have a value) for one column.

    ``salts`` (same length, may be None): with ``permute`` (the default scheme), chooses the keyed
    permutation of the positions (``SaltPermutations``, shared across fields); without (the old scheme), is
    mixed into every bigram's key, e.g. birth year for names.
    """
    n = len(values)
    salt = salts.cast(pl.String).fill_null("") if salts is not None else pl.Series([""] * n, dtype=pl.String)
    pairs = pl.DataFrame({"v": values.cast(pl.String), "s": salt})
    pairs = pairs.with_columns(pl.when(pl.col("v") == "").then(None).otherwise(pl.col("v")).alias("v"))
    distinct = pairs.drop_nulls("v").unique(maintain_order=True).with_row_index("d")
    grams = _bigrams(distinct["v"]).join(distinct.select(pl.col("d").cast(pl.Int64).alias("i"), "s"), on="i")
    if permute is not None:
        token = pl.concat_str([pl.lit(f"v2|{field}|"), pl.col("g")])
    else:
        token = pl.concat_str([pl.lit(field + "|"), pl.col("s"), pl.lit("|"), pl.col("g")])
    grams = grams.with_columns(token.alias("t"))
    tokens = grams.select("t").unique(maintain_order=True).with_row_index("ti")
    pos = bigram_positions(secret, tokens["t"].to_list(), m, k)
    grams = grams.join(tokens, on="t", how="left").sort("i")
    tok_idx = grams["ti"].to_numpy().astype(np.int64)
    value_idx = grams["i"].to_numpy()
    if permute is not None:
        salt_values = distinct.select("s").unique(maintain_order=True).with_row_index("si")
        salt_row = permute.rows(salt_values["s"].to_list())
        perms = permute.table
        salt_of_value = salt_row[distinct.join(salt_values, on="s", how="left", maintain_order="left")["si"]
                                 .to_numpy()]

    packed = np.zeros((distinct.height, m // 8), dtype=np.uint8)
    bounds = np.searchsorted(value_idx, np.arange(0, distinct.height + BLOCK, BLOCK))
    for b in range(len(bounds) - 1):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue
        first = b * BLOCK
        rows = min(BLOCK, distinct.height - first)
        bits = np.zeros((rows, m), dtype=bool)
        cols = pos[tok_idx[lo:hi]]
        if permute is not None:  # position p of a value under salt s goes to perms[s, p]
            cols = perms[np.repeat(salt_of_value[value_idx[lo:hi]], k).reshape(-1, k), cols.astype(np.int64)]
        bits[np.repeat(value_idx[lo:hi] - first, k), cols.reshape(-1)] = True
        packed[first:first + rows] = np.packbits(bits, axis=1)

    which = pairs.join(distinct, on=["v", "s"], how="left", maintain_order="left")["d"]
    mask = which.is_not_null().to_numpy()
    out = np.zeros((n, m // 8), dtype=np.uint8)
    out[mask] = packed[which.drop_nulls().to_numpy()]
    return out, mask


def blip_matrix(filters: np.ndarray, mask: np.ndarray, f: float, rng: np.random.Generator) -> np.ndarray:
    """Flip every bit of every present filter independently with probability ``f`` (BLIP hardening).

    Draws the number of flips per filter (binomial), then their positions, so the cost is proportional
    to the flips, not to rows × m. Same position drawn twice cancels, as two independent flips would.
    """
    if f <= 0 or not mask.any():
        return filters
    m = filters.shape[1] * 8
    rows_present = np.flatnonzero(mask)
    counts = rng.binomial(m, f, size=rows_present.shape[0])
    rows = np.repeat(rows_present, counts)
    bitpos = rng.integers(0, m, size=rows.shape[0])
    out = filters.copy()
    np.bitwise_xor.at(out, (rows, bitpos // 8), np.uint8(0x80) >> (bitpos % 8).astype(np.uint8))
    return out


def to_series(name: str, filters: np.ndarray, mask: np.ndarray) -> pl.Series:
    """A Binary series of the filters (null where ``mask`` is False), built without a Python loop."""
    n, nbytes = filters.shape
    validity = pa.py_buffer(np.packbits(mask, bitorder="little").tobytes())
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(nbytes), n, [validity, pa.py_buffer(filters.tobytes())],
                                               null_count=int(n - mask.sum()))
    return pl.Series(name, arr.cast(pa.binary()))


def encode_values(values: pl.Series, salts: pl.Series | None, *, secret: bytes, field: str, m: int, k: int,
                  ) -> pl.Series:
    """Bloom filters (``m/8``-byte Binary, null where the value is null) for one column of values."""
    filters, mask = filter_matrix(values, salts, secret=secret, field=field, m=m, k=k)
    return to_series(field, filters, mask)


def popcount(filters: pl.Series) -> np.ndarray:
    """Bits set per filter (nulls count 0)."""
    nbytes = next((len(b) for b in filters if b is not None), 1)
    arr = np.frombuffer(b"".join(b or bytes(nbytes) for b in filters), dtype=np.uint8).reshape(-1, nbytes)
    return np.unpackbits(arr, axis=1).sum(axis=1)


def dice(a: bytes | None, b: bytes | None) -> float | None:
    """Dice coefficient of two filters (None when either is missing or both are empty)."""
    if a is None or b is None:
        return None
    x = int.from_bytes(a, "big")
    y = int.from_bytes(b, "big")
    total = x.bit_count() + y.bit_count()
    return 2 * (x & y).bit_count() / total if total else None
