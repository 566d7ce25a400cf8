"""Linking partners that send encodings (`cilink encode`): the project's encoding plan, the hub's encodings
of plaintext records, and blocking keys that work on encodings.

A project links encodings only when some active batch is encoded (``encoding_plan`` returns None otherwise,
and nothing here runs: plaintext projects link exactly as before). Then every linkable record gets
``enc_<field>`` columns for the compared fields: an encoded partner's come from its file; a plaintext
partner's are computed here with the partners' secret (the hub's copy, ``cilink.encoding.hub``), the same
code and the scheme the encoded files name. The hub does **not** apply BLIP noise to its own encodings:
noise protects a file that leaves its owner against frequency counting, while these encodings stay in the
restricted zone beside the plaintext they come from — noise there would protect nothing, cost accuracy
(one-sided noise keeps the Dice of equal values near 0.95 instead of 0.91) and make a record's encoding
depend on more than its values (incremental and full runs must agree).

Blocking: an encoded record has no plaintext name or birth date, so MinHash LSH keys over the filters' set
bits stand in for the plaintext rules (``LSH``): a band key is the first set bit under ``rows`` seeded random
permutations of the bit positions, so two filters share a band with probability ≈ Jaccard(bits)^rows. Equal
values (Jaccard ≈ 0.9 with noise on one side) share one of ``bands`` bands almost surely; unrelated ones
rarely. Bit sampling (Hamming LSH) was not used: filters are ~10 % ones, so sampled bits are mostly zeros
that agree for any two records. The birth-date keys include the clear birth year, because unrelated dates
share many bigrams ("_1", "19", …).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from cilink.encoding.bloom import SaltPermutations, to_series
from cilink.encoding.bloom import mix64 as _mix
from cilink.encoding.encode import field_filters
from cilink.encoding.hub import differences, encoded_batches, hub_secret
from cilink.encoding.scheme import BIRTH_YEAR, ENC_PREFIX, Scheme, key_fingerprint
from cilink.errors import ConfigError
from cilink.link.names import alias_neighbours

if TYPE_CHECKING:
    from cilink.ledger import Batch
    from cilink.workspace import Workspace

#: fields compared through their encodings (Dice levels in ``cilink.link.comparisons``)
COMPARED_FIELDS = ("first_name", "last_name", "dob", "ssn", "ssn_last4", "email")
ENCODED_COLUMNS = tuple(ENC_PREFIX + f for f in COMPARED_FIELDS)
#: "y" on records with a plaintext name or birth date, null on encoded ones (training rules use it)
PLAINTEXT_MARK = "_cilink_plaintext"
#: a plaintext record's encodings of the other first names it is an alias of (``names.alias_neighbours``),
#: salted as its own first name; null on encoded records and where the hub has no secret
NICKNAMES = "_cilink_enc_first_nicknames"
#: rows of filter bits set per band are decoded a block at a time (memory: block × m)
_BLOCK = 50_000


@dataclass(frozen=True)
class LshFamily:
    """MinHash band keys over the OR of some fields' filters: ``bands`` keys of ``rows`` min-hashes each."""

    name: str
    fields: tuple[str, ...]
    bands: int
    rows: int
    with_birth_year: bool = False
    #: first and last name swapped (``SWAPPED``): a plaintext record's keys are those of its swapped names'
    #: encodings, an encoded record's those of its own, both under the ``name`` family's permutations — so a
    #: plaintext John Smith shares a band with an encoded Smith John, with no rule across two columns
    swapped: bool = False

    @property
    def permutation_name(self) -> str:
        """Whose seeded permutations the band keys use (a swapped family's must equal the unswapped one's)."""
        return "name" if self.swapped else self.name

    def column(self, band: int) -> str:
        return f"_cilink_lsh_{self.name}_{band}"

    def short(self, band: int) -> str:
        return f"{self.name}_lsh_{band}"


#: Chosen on `cilink demo --people 5000 --seed 1 --encoded workforce-board`: together these keep 99.7 % of
#: the true pairs with an encoded record as candidates; name 10×6 and birth date 10×8 give half the
#: candidates of 10×5 and 10×6 at the same recall (see docs/encodings.md).
#: Since issue 19 also: ``swap`` (first and last name swapped; a plaintext record's side is the hub's
#: encodings of its swapped names, ``SWAPPED``) and ``last`` (the last name alone with the birth year, for
#: a first name that differs or is missing: under cross-salting equal last names mean equal birth dates too).
LSH = (
    LshFamily("name", ("first_name", "last_name"), bands=10, rows=6),
    LshFamily("dob", ("dob",), bands=10, rows=8, with_birth_year=True),
    LshFamily("ssn", ("ssn",), bands=6, rows=4),
    LshFamily("swap", ("first_name", "last_name"), bands=10, rows=6, swapped=True),
    LshFamily("last", ("last_name",), bands=6, rows=6, with_birth_year=True),
)
#: a plaintext record's swapped names as the hub encodes them: its last name in the first name's field and
#: its first name in the last name's, salted as its names are (comparisons: "first and last name swapped")
SWAPPED = {"first_name": "_cilink_enc_first_swapped", "last_name": "_cilink_enc_last_swapped"}
#: short name (for rules) → record column, of every derived column of an encoded project
ENCODED_DERIVED: dict[str, str] = {
    "plaintext": PLAINTEXT_MARK,
    "first_nicknames_enc": NICKNAMES,
    "first_swapped_enc": SWAPPED["first_name"],
    "last_swapped_enc": SWAPPED["last_name"],
    **{fam.short(i): fam.column(i) for fam in LSH for i in range(fam.bands)},
}
ENCODED_RECORD_COLUMNS = (*ENCODED_COLUMNS, *ENCODED_DERIVED.values())


@dataclass(frozen=True)
class EncodingPlan:
    """How a project with encoded partners links: the scheme every encoded file used, its key fingerprint,
    the LSH seed, and — when plaintext partners must be encoded too — the hub's copy of the secret."""

    scheme: Scheme
    fingerprint: str
    seed: int
    secret: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def descriptor(self) -> str:
        """What the rules depend on (never the secret): part of the link spec's fingerprints."""
        s = self.scheme
        lsh = ",".join(f"{f.name}{f.bands}x{f.rows}" for f in LSH)
        return (f"{s.scheme} m={s.m} k={s.k} salt_names={s.salt_names} key={self.fingerprint} "
                f"lsh={lsh} seed={self.seed}")


def encoding_plan(ws: Workspace, batches: list[Batch], seed: int) -> EncodingPlan | None:
    """The project's encoding plan, or None when no active batch is encoded (a plaintext project).

    Raises ConfigError (exit 2) when encoded batches are not comparable with each other, or when plaintext
    partners must be encoded and the hub has no (or another) encoding secret.
    """
    metas = encoded_batches(ws, batches)
    if not metas:
        return None
    first_id, first = sorted(metas.items())[0]
    for batch_id, meta in sorted(metas.items()):
        diff = differences(first, meta)
        if diff:
            raise ConfigError(f"encoded batches {first_id} and {batch_id} are not comparable (they differ in "
                              f"{', '.join(diff)})", hint="have the partners re-encode with one secret and one "
                              "cilink version, ingest the new files, then link")
    mixed = any(b.batch_id not in metas for b in batches)
    secret = hub_secret(ws.config.project, required=mixed) if mixed else None
    if secret is not None and key_fingerprint(secret) != first["key_fingerprint"]:
        name = ws.config.project.encoding_secret_env
        raise ConfigError(f"{name} is not the secret the encoded partners used (key fingerprint "
                          f"{key_fingerprint(secret)}, theirs {first['key_fingerprint']})",
                          hint=f"set {name} to the partners' encoding secret")
    scheme = Scheme(m=int(first["m"]), k=int(first["k"]), blip=0.0, salt_names=bool(first["salt_names"]),
                    scheme=str(first["scheme"]))
    return EncodingPlan(scheme=scheme, fingerprint=str(first["key_fingerprint"]), seed=seed, secret=secret)


def add_encodings(records: pl.DataFrame, plan: EncodingPlan) -> pl.DataFrame:
    """Give linkable records the columns an encoded project links on: ``enc_<field>`` (an encoded partner's
    own; the hub's encodings for plaintext records), the clear birth year in ``_cilink_birth_year``, the
    plaintext mark and the LSH band keys."""
    out = records.with_columns(
        *[pl.lit(None, dtype=pl.Binary).alias(c) for c in ENCODED_COLUMNS if c not in records.columns],
        pl.lit(None, dtype=pl.List(pl.Binary)).alias(NICKNAMES),
        *[pl.lit(None, dtype=pl.Binary).alias(c) for c in SWAPPED.values()],
    )
    plaintext = out.select(pl.any_horizontal(pl.col("first_name", "last_name", "dob").is_not_null())).to_series()
    if plan.secret is not None and plaintext.any():
        hub = []
        permutations = SaltPermutations(plan.secret, plan.scheme.m)
        for f in COMPARED_FIELDS:
            filters, mask = field_filters(out, plan.scheme, plan.secret, f, permutations)
            hub.append(pl.coalesce(pl.col(ENC_PREFIX + f), to_series(ENC_PREFIX + f, filters, mask)))
        for f, other in (("first_name", "last_name"), ("last_name", "first_name")):
            swapped = out.select(pl.col(other).alias(f), "dob")
            filters, mask = field_filters(swapped, plan.scheme, plan.secret, f, permutations)
            hub.append(to_series(SWAPPED[f], filters, mask))
        out = out.with_columns(*hub, _nickname_filters(out, plan, permutations))
    if BIRTH_YEAR in out.columns:
        clear_year = pl.col(BIRTH_YEAR).cast(pl.String).str.zfill(4)
        out = out.with_columns(pl.coalesce("_cilink_birth_year", clear_year).alias("_cilink_birth_year"))
    out = out.with_columns(pl.when(plaintext).then(pl.lit("y")).otherwise(None).alias(PLAINTEXT_MARK))
    years = out["_cilink_birth_year"].cast(pl.Int64, strict=False).fill_null(0).to_numpy()
    bands = []
    for fam in LSH:
        filters, present = _union(out, fam.fields, plan.scheme.m // 8)
        if fam.swapped:  # plaintext records: the union of their swapped names' encodings
            theirs, has = _union(out, fam.fields, plan.scheme.m // 8, columns=SWAPPED)
            mark = plaintext.to_numpy()
            filters[mark], present[mark] = theirs[mark], has[mark]
        if fam.with_birth_year:
            present = present & (years > 0)
        salt = years if fam.with_birth_year else None
        for band, key in enumerate(minhash_bands(filters, present, fam, plan.seed, salt)):
            bands.append(pl.Series(fam.column(band), pa.array(key, mask=~present), dtype=pl.Int64))
    return out.with_columns(bands)


def _nickname_filters(records: pl.DataFrame, plan: EncodingPlan, permutations: SaltPermutations) -> pl.Series:
    """``NICKNAMES`` of plaintext records: the hub's encodings of every other name its first names are aliases
    of, each salted as the record's own first name (by its birth date), so an encoded Kay meets the
    plaintext Katherine as an encoded Katherine would (``comparisons.dice_any``).

    Not a dictionary attack on the partner's file: the hub encodes names of its own plaintext records under
    their own salts, and compares them only with the candidate pairs' filters, as it compares the record's
    first name; what a pair's level shows — "that encoded name is an alias of this plaintext one" — is what the
    plaintext nickname level shows of two plaintext records."""
    assert plan.secret is not None
    rows = records.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), "dob", "first_name",
                          pl.col("_cilink_first_aliases").alias("_alias")).filter(pl.col("first_name").is_not_null())
    rows = rows.explode("_alias").filter(pl.col("_alias").is_not_null())
    # neighbours per distinct alias (names repeat a lot), then once per record and name
    distinct = rows["_alias"].unique().to_list()
    lookup = pl.DataFrame([(a, n) for a in distinct for n in alias_neighbours([a])], orient="row",
                          schema={"_alias": pl.String, "_names": pl.String})
    rows = (rows.join(lookup, on="_alias").filter(pl.col("_names") != pl.col("first_name"))
            .unique(["_row", "_names"]).sort("_row", "_names"))
    if rows.height == 0:
        return pl.Series(NICKNAMES, [None] * records.height, dtype=pl.List(pl.Binary))
    filters, mask = field_filters(rows.select(pl.col("_names").alias("first_name"), "dob"), plan.scheme,
                                  plan.secret, "first_name", permutations)
    lists = (rows.select("_row").with_columns(to_series("_f", filters, mask)).group_by("_row").agg("_f"))
    return (pl.DataFrame({"_row": pl.int_range(records.height, dtype=pl.UInt32, eager=True)})
            .join(lists, on="_row", how="left", maintain_order="left")["_f"].alias(NICKNAMES))


def _union(records: pl.DataFrame, fields: tuple[str, ...], nbytes: int,
           columns: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The OR of the fields' filters (``enc_<field>``, or ``columns[field]``) as an ``(n, nbytes)`` uint8
    matrix, and which rows have any."""
    n = records.height
    acc = np.zeros((n, nbytes), dtype=np.uint8)
    present = np.zeros(n, dtype=bool)
    for f in fields:
        col = records[columns[f] if columns else ENC_PREFIX + f]
        has = col.is_not_null().to_numpy()
        if has.any():
            raw = np.frombuffer(b"".join(col.filter(col.is_not_null()).to_list()), dtype=np.uint8)
            acc[has] |= raw.reshape(-1, nbytes)
            present |= has
    return acc, present & acc.any(axis=1)


def minhash_bands(filters: np.ndarray, present: np.ndarray, fam: LshFamily, seed: int,
                  salt: np.ndarray | None = None) -> list[np.ndarray]:
    """``fam.bands`` int64 band keys per row, each a hash of ``fam.rows`` min-hashes (the smallest rank,
    under a seeded permutation of the bit positions, of the row's set bits) and of ``salt`` (e.g. the birth
    year) when given. Rows without bits get 0 (masked by the caller). Deterministic: the permutations
    depend only on ``seed`` and the family's ``permutation_name``."""
    n, nbytes = filters.shape
    m = nbytes * 8
    rng = np.random.default_rng([seed, zlib.crc32(fam.permutation_name.encode())])
    ranks = np.stack([rng.permutation(m) for _ in range(fam.bands * fam.rows)]).astype(np.uint64)  # bit → rank
    mins = np.zeros((fam.bands * fam.rows, n), dtype=np.uint64)
    for lo in range(0, n, _BLOCK):
        rows, pos = np.nonzero(np.unpackbits(filters[lo:lo + _BLOCK], axis=1))
        if rows.size == 0:
            continue
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        for h in range(fam.bands * fam.rows):
            mins[h, rows[starts] + lo] = np.minimum.reduceat(ranks[h][pos], starts)
    start = np.zeros(n, dtype=np.uint64) if salt is None else salt.astype(np.uint64)
    out = []
    for b in range(fam.bands):
        key = _mix(start + np.uint64(b + 1))
        for r in range(fam.rows):
            key = _mix(key ^ mins[b * fam.rows + r])
        out.append(np.where(present, key.view(np.int64), 0))
    return out
