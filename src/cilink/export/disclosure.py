"""Disclosure control of the whole released record: generalization, local suppression, risk, partner attack.

The unit of risk is a person's *whole record* as a recipient gets it: every attribute of every table of the
deidentified tier, a person's rows of a row table taken together as one value (cilink.export.measures).
Two persons are in the same equivalence class when their whole records are equal, a suppressed or
unreleased value counting as a value of its own (stricter than sdcMicro's "missing matches anything",
which under-counts what an attacker who knows the true value can rule out). A person's re-identification
risk is 1 / their class size, as sdcMicro's individual risk with the population equal to the data (an
administrative register, no sampling); the mean risk is then exactly the number of classes / persons.

How the release is made safe (``protect``), as ARX and sdcMicro do, in two steps:

1. *global recoding* by top-down specialization: from every attribute "not released", repeatedly the most
   valuable step to a finer level (attributes the data manager ranks higher are worth more), kept while the
   persons in classes smaller than k fit the suppression budget and the expected classes the mean-risk bound;
2. *local suppression*: persons still in classes smaller than k lose their least valued attributes one at a
   time until their class reaches k; persons left alone after all are withheld from the record-level tables.

Then the gate measures what was released (``cilink.export.record_risk``), and runs each contributing partner as
an attacker (``partner_attack``): the partner matches every attribute it supplied, in release form, against
the release; the share of its clients it singles out (exactly one candidate) must stay below the bound.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from cilink.export.measures import (
    ATTRIBUTES,
    BY_NAME,
    DEFAULT_PRIORITIES,
    DOMAINS,
    DTYPES,
    Attribute,
    Measures,
    partner_view,
    row_level_columns,
)

#: Code of a locally suppressed value (distinct from every hash of a real value with overwhelming probability).
SUPPRESSED = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class Targets:
    """What the gate must reach (from [export]); ``pinned`` fixes attributes at levels, ``exempt`` leaves
    attributes declared non-identifying (with a reason) out of the risk model."""

    k: int = 5
    max_risk: float = 0.2
    mean_risk: float = 0.05
    max_suppression: float = 0.05
    partner_single_out: float = 0.01
    priorities: tuple[str, ...] = DEFAULT_PRIORITIES
    pinned: dict[str, int] = field(default_factory=dict)
    exempt: frozenset[str] = frozenset()


@dataclass
class Protected:
    """Levels chosen, values suppressed and persons withheld; what the release tables are built from."""

    levels: dict[str, int]
    suppressed: dict[str, np.ndarray]  # attribute → persons whose value is suppressed
    withheld: np.ndarray  # persons left out of every record-level table
    steps: list[str]
    search: _Search | None = None  # the search's codes, reused by the partner attack

    def level_name(self, attr: Attribute) -> str:
        return attr.levels[self.levels[attr.name]]


class Codes:
    """One 64-bit code per person for each attribute at each level (cached): equal values, equal codes.

    Codes are those of ``view_codes``, a function of the release values alone, so codes computed from
    different frames — the release's and a partner's own view — agree on equal values.
    """

    def __init__(self, measures: Measures) -> None:
        self.m = measures
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._dense: dict[str, tuple[pl.Series, np.ndarray]] = {}
        idx = measures.person.get_column("person_idx").to_numpy()
        self._in_order = bool((idx == np.arange(len(idx))).all())  # row i is person i, as build_measures makes it

    def __call__(self, attr: Attribute, level: int) -> np.ndarray:
        key = (attr.name, level)
        if key not in self._cache:
            if level == attr.top:
                self._cache[key] = np.zeros(self.m.n, np.uint64)
            elif attr.rows:  # every level in one pass over the rows: hashing the rows is most of the cost
                self._cache.update(self._row_codes(attr))
            elif attr.name in _DISTINCT_RAW:
                raw = _DISTINCT_RAW[attr.name]
                if raw not in self._dense:
                    self._dense[raw] = dense_codes(self.m.person.get_column(raw))
                distinct, inverse = self._dense[raw]
                codes = self._distinct_codes(attr, level, distinct)[inverse]
                self._cache[key] = codes if self._in_order else _scatter(self.m.person.get_column("person_idx"),
                                                                         codes, self.m.n)
            else:
                self._cache[key] = view_codes(attr, self.m.view(attr, level), self.m.n)
        return self._cache[key]

    def take(self, attr: Attribute, level: int) -> np.ndarray:
        """``self(attr, level)``, no longer cached: the caller may overwrite it (the search mixes it in place)."""
        codes = self(attr, level)
        del self._cache[(attr.name, level)]
        return codes

    def _distinct_codes(self, attr: Attribute, level: int, distinct: pl.Series) -> np.ndarray:
        """The codes of ``attr``'s view of each distinct raw value (the view of a person depends on it alone)."""
        frame = pl.DataFrame({"person_idx": pl.int_range(len(distinct), dtype=pl.Int32, eager=True),
                              distinct.name: distinct})
        return view_codes(attr, self.m.view(attr, level, person=frame), len(distinct))

    def of(self, attr: Attribute, level: int, persons: pl.Series, *, person: pl.DataFrame | None = None,
           rows: pl.DataFrame | None = None) -> np.ndarray:
        """Codes of ``attr`` at ``level`` computed from other raw data (``person`` or ``rows``, as in
        ``Measures.view``: a partner's own view of its clients), one per entry of ``persons``."""
        n = max(self.m.n, int(persons.max()) + 1 if len(persons) else 0)  # type: ignore[operator]
        if attr.rows:
            assert rows is not None
            idx, codes = row_codes(attr, level, rows)
            return _scatter(idx, codes, n)[persons.to_numpy()]
        assert person is not None
        if attr.name in _DISTINCT_RAW:
            distinct, inverse = dense_codes(person.get_column(_DISTINCT_RAW[attr.name]))
            codes = self._distinct_codes(attr, level, distinct)[inverse]
            return _scatter(person.get_column("person_idx"), codes, n)[persons.to_numpy()]
        return view_codes(attr, self.m.view(attr, level, person=person), n, persons=persons)

    def _row_codes(self, attr: Attribute) -> dict[tuple[str, int], np.ndarray]:
        """Codes of row table ``attr`` at every level below "not released", equal to ``view_codes`` of each
        level's view."""
        out = {}
        for level, (idx, codes) in enumerate(row_codes_all(attr, self.m.rows[attr.name])):
            out[(attr.name, level)] = _scatter(idx, codes, self.m.n)
        return out


#: Person attributes whose view of a person is a function of one raw column with few distinct values: their
#: codes are computed on the distinct values and gathered (recoding a million ZIPs or race texts per level
#: cost more than the whole search).
_DISTINCT_RAW = {"age": "_birth_year", "race_ethnicity": "_race", "geography": "_zip5", "domains": "_dm"}


def dense_codes(values: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """The distinct values of ``values`` (null, if any, last) and each row's position among them."""
    distinct = values.drop_nulls().unique().sort()
    if values.dtype == pl.String:
        inverse = values.cast(pl.Enum(distinct)).to_physical()
    else:  # the position among the sorted distinct values, by binary search
        inverse = distinct.search_sorted(values)
    inverse = inverse.cast(pl.Int64).fill_null(len(distinct)).to_numpy(writable=True)
    if values.null_count():
        inverse[values.is_null().to_numpy()] = len(distinct)  # the binary search places nulls anywhere
        distinct = distinct.extend(pl.Series(values.name, [None], dtype=values.dtype))
    return distinct.alias(values.name), inverse


def _scatter(idx: pl.Series | np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Codes placed at positions ``idx`` of an array of ``n`` zeros (persons without a value get 0)."""
    out = np.zeros(n, np.uint64)
    out[idx.to_numpy() if isinstance(idx, pl.Series) else idx] = codes
    return out


def _person_sums(idx: np.ndarray, hashes: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each person's wrapping sum of their rows' hashes (a hash of the multiset); the persons, in order.

    Rows in person order (as every row table is built) are summed by one pass over runs, others grouped.
    """
    if not len(idx):
        return idx, hashes
    if len(idx) > 1 and not (idx[1:] >= idx[:-1]).all():
        frame = pl.DataFrame({"person_idx": idx, **{f"h{i}": h for i, h in enumerate(hashes)}})
        per = frame.group_by("person_idx").agg(pl.exclude("person_idx").sum())  # UInt64 sums wrap
        return per.get_column("person_idx").to_numpy(), [per.get_column(f"h{i}").to_numpy() for i in
                                                         range(len(hashes))]
    starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
    return idx[starts], [np.add.reduceat(h, starts) for h in hashes]


#: Odd multipliers, one per column of a row table (``_row_hash``).
_COLUMN_FACTORS = tuple((2 * j + 1) * 0x9E3779B97F4A7C15 % 2**64 | 1 for j in range(8))


@functools.cache
def _null_hash() -> int:
    """What polars' ``hash()`` gives a null (the same for every dtype)."""
    return int(pl.Series([None], dtype=pl.String).hash()[0])


def _row_hash(attr: Attribute, kept: tuple[str, ...]) -> pl.Expr:
    """One 64-bit hash per row of row table ``attr`` with only the ``kept`` columns (the others null): the hash
    of the wrapping sum of its columns' hashes, each times its column's odd factor. Each column is hashed once
    for every level, which costs a fraction of a struct hash per level of millions of rows."""
    terms = [(pl.col(c).cast(DTYPES[c]).hash() if c in kept else pl.lit(_null_hash(), dtype=pl.UInt64))
             * pl.lit(factor, dtype=pl.UInt64) for c, factor in zip(attr.columns, _COLUMN_FACTORS, strict=False)]
    return functools.reduce(operator.add, terms).hash()  # UInt64 products and sums wrap


def _multiset_codes(idx: np.ndarray, row_hashes: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The persons with rows and, per list entry, their code: the hash of the sum of their rows' hashes."""
    persons, sums = _person_sums(idx, row_hashes)
    return persons, [pl.Series(s, dtype=pl.UInt64).hash().to_numpy() for s in sums]


def row_codes_all(attr: Attribute, rows: pl.DataFrame, levels: range | None = None
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per level (default: every level below "not released"), the persons with rows and their codes, as
    ``view_codes`` of the level's view: each column hashed once, a level's row hash mixed from the columns it
    keeps (the others are null), a person's code the hash of the wrapping sum of their rows' hashes."""
    levels = range(attr.top) if levels is None else levels
    hashed = rows.select("person_idx", *[_row_hash(attr, row_level_columns(attr, lv)).alias(f"h{lv}")
                                         for lv in levels])
    persons, codes = _multiset_codes(hashed.get_column("person_idx").to_numpy(),
                                     [hashed.get_column(f"h{lv}").to_numpy() for lv in levels])
    return [(persons, c) for c in codes]


def row_codes(attr: Attribute, level: int, rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``row_codes_all`` at one level."""
    return row_codes_all(attr, rows, range(level, level + 1))[0]


def view_codes(attr: Attribute, view: pl.DataFrame, n: int, persons: pl.Series | None = None) -> np.ndarray:
    """Codes of a view: one per person_idx 0 … n − 1 (or per ``persons``, in that order); 0 without rows.

    A person attribute's code is the struct hash of the person's values; a row table's, a hash of the multiset
    of the person's rows (``row_codes_all``), so codes from different frames agree on equal values.
    """
    if attr.rows:
        hashed = view.select("person_idx", _row_hash(attr, attr.columns).alias("_h"))
        idx, (codes,) = _multiset_codes(hashed.get_column("person_idx").to_numpy(),
                                        [hashed.get_column("_h").to_numpy()])
    else:
        per = view.select("person_idx", pl.struct(list(attr.columns)).hash().alias("_c"))
        idx, codes = per.get_column("person_idx").to_numpy(), per.get_column("_c").to_numpy()
    if persons is None:
        return _scatter(idx, codes, n)
    out = _scatter(idx, codes, max(n, int(idx.max()) + 1 if len(idx) else 0))
    return out[persons.to_numpy()]


def combine(columns: list[np.ndarray], n: int) -> np.ndarray:
    """One 64-bit signature per person from several code columns (FNV-style mixing)."""
    h = np.full(n, np.uint64(0xCBF29CE484222325), np.uint64)
    with np.errstate(over="ignore"):
        for c in columns:
            h ^= c
            h *= _MIX
            h ^= h >> np.uint64(29)
    return h


def class_sizes(signature: np.ndarray) -> np.ndarray:
    """Size of each person's equivalence class (a hash group-by: several times faster than sorting)."""
    if not len(signature):
        return np.zeros(0, np.int64)
    frame = pl.DataFrame({"s": signature})
    return frame.select(pl.len().over("s")).to_series().to_numpy().astype(np.int64)


def in_small_classes(signature: np.ndarray, k: int) -> np.ndarray:
    """Whether each person's class is smaller than ``k`` (``class_sizes(signature) < k``): the classes are
    counted, and the few small ones looked up — cheaper than spreading every size back over the persons."""
    if not len(signature):
        return np.zeros(0, bool)
    small = pl.DataFrame({"s": signature}).lazy().group_by("s").len().filter(pl.col("len") < k).collect()
    return pl.Series(signature).is_in(small.get_column("s").implode()).to_numpy()


def class_counts(signature: np.ndarray) -> np.ndarray:
    """Size of every equivalence class (one entry per class, in no particular order)."""
    if not len(signature):
        return np.zeros(0, np.int64)
    # counts alone, without the classes' keys: about half the cost of a group-by, once per step tried
    return pl.Series(signature).unique_counts().to_numpy().astype(np.int64)


def _mixed(codes: np.ndarray, salt: np.uint64, *, in_place: bool = False) -> np.ndarray:
    """A 64-bit finalizer (splitmix64) of code ^ salt: parts of different attributes look independent. It is a
    bijection, so mixed codes are equal exactly when the codes are.

    In place (on ``codes`` itself, or on one copy), a block at a time with one small scratch array: each
    temporary of a million codes is 8 MB of fresh pages, and faulting them in cost more than the arithmetic.
    """
    out = codes if in_place else codes.copy()
    tmp = np.empty(min(len(out), _BLOCK), np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, len(out), _BLOCK):
            z = out[start:start + _BLOCK]
            t = tmp[:len(z)]
            z ^= salt
            for shift, factor in ((30, np.uint64(0xBF58476D1CE4E5B9)), (27, np.uint64(0x94D049BB133111EB))):
                np.right_shift(z, np.uint64(shift), out=t)
                z ^= t
                z *= factor
            np.right_shift(z, np.uint64(31), out=t)
            z ^= t
    return out


#: Codes mixed per block (``_mixed``): 512 KB, which stays in cache between the steps.
_BLOCK = 1 << 16


def weights(priorities: tuple[str, ...]) -> dict[str, float]:
    """Utility weight of each attribute: each is worth twice the next in priority order, so the search gives up
    everything below an attribute before it coarsens that attribute (unless that barely helps)."""
    order = list(dict.fromkeys([*priorities, *DEFAULT_PRIORITIES]))
    return {name: float(2 ** (len(order) - i)) for i, name in enumerate(order)}


#: Share of an attribute's information lost at each level (default: even steps). Age bands lose little at 5
#: years (most analyses use 5- or 10-year age groups), much more beyond.
LOSS: dict[str, tuple[float, ...]] = {"age": (0.0, 0.05, 0.6, 0.85, 1.0)}


class _Search:
    """The persons' codes, mixed per attribute so a signature is a sum of parts, and the targets' tests."""

    def __init__(self, measures: Measures, targets: Targets) -> None:
        self.m, self.t = measures, targets
        self.codes = Codes(measures)
        self.n = measures.n
        self.attrs = [a for a in ATTRIBUTES if a.name not in targets.exempt]
        self.w = weights(targets.priorities)
        self.budget = max(targets.max_suppression * self.n, 1e-9)
        self.classes_allowed = targets.mean_risk * self.n
        self._parts: dict[tuple[str, int], np.ndarray] = {}
        self._salt = {a.name: np.uint64((i + 1) * 0x9E3779B97F4A7C15 % 2**64) for i, a in enumerate(ATTRIBUTES)}
        self._suppressed_part = {a: _mixed(np.array([SUPPRESSED]), salt)[0] for a, salt in self._salt.items()}

    def part(self, a: Attribute, level: int) -> np.ndarray:
        """``a``'s codes at ``level``, mixed with the attribute's position: signatures are sums of parts, so a
        step changes one term (two passes over the persons) instead of mixing every column again."""
        key = (a.name, level)
        if key not in self._parts:  # the codes are mixed in place: one array per attribute and level, not two
            self._parts[key] = _mixed(self.codes.take(a, level), self._salt[a.name], in_place=True)
        return self._parts[key]

    def mix(self, a: Attribute, codes: np.ndarray) -> np.ndarray:
        """Other codes of ``a`` (a partner's own view) mixed as ``part`` mixes the release's."""
        return _mixed(codes, self._salt[a.name])

    def signature(self, levels: dict[str, int], suppressed: dict[str, np.ndarray] | None = None) -> np.ndarray:
        sig = np.zeros(self.n, np.uint64)
        with np.errstate(over="ignore"):
            for a in self.attrs:
                part = self.part(a, levels[a.name])
                sig += part
                if suppressed is not None and a.name in suppressed and suppressed[a.name].any():
                    # the few suppressed persons' part swapped for the suppressed code (wrapping arithmetic)
                    who = np.flatnonzero(suppressed[a.name])
                    sig[who] += self._suppressed_part[a.name] - part[who]
        return sig

    def violation(self, signature: np.ndarray) -> float:
        """How far the classes of ``signature`` are from the targets before local suppression (0: within them):
        persons in classes smaller than k beyond the suppression budget, and the classes expected after
        suppression beyond the mean-risk bound."""
        counts = class_counts(signature)
        small_classes = counts < self.t.k
        s = float(counts[small_classes].sum())
        expected = float((~small_classes).sum()) + s / self.t.k
        return max(s / self.budget - 1, 0.0) + max(expected / max(self.classes_allowed, 1e-9) - 1, 0.0)

    def suppress(self, levels: dict[str, int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Local suppression: persons in small classes lose their least valued attribute, one per round."""
        order = sorted((a for a in self.attrs if levels[a.name] < a.top), key=lambda a: self.w[a.name])
        suppressed = {a.name: np.zeros(self.n, bool) for a in order}
        count = np.zeros(self.n, np.int64)
        small = np.zeros(self.n, bool)
        sig = self.signature(levels)
        for _ in range(len(order) + 1):
            small = in_small_classes(sig, self.t.k)
            if not small.any():
                break
            for j, a in enumerate(order):
                new = small & (count == j) & ~suppressed[a.name]
                suppressed[a.name] |= new
                # the signature kept up to date for the newly suppressed persons alone (``signature`` with
                # ``suppressed``, without a pass over everyone per attribute and round)
                who = np.flatnonzero(new)
                with np.errstate(over="ignore"):
                    sig[who] += self._suppressed_part[a.name] - self.part(a, levels[a.name])[who]
            count[small] += 1
            if (count > 0).sum() > self.budget:  # over the budget already: no need to go on
                break
        return suppressed, small

    def acceptable(self, levels: dict[str, int], suppressed: dict[str, np.ndarray], withheld: np.ndarray) -> bool:
        touched = withheld.copy()
        for s in suppressed.values():
            touched |= s
        kept = ~withheld
        sizes = class_sizes(self.signature(levels, suppressed)[kept]) if kept.any() else np.zeros(0)
        classes = float((1.0 / sizes).sum()) if len(sizes) else 0.0
        return (touched.sum() <= self.t.max_suppression * self.n and (not len(sizes) or (
            sizes.min() >= self.t.k and 1 / sizes.min() <= self.t.max_risk + 1e-12
            and classes / self.n <= self.t.mean_risk + 1e-12)))

    def next_step(self, a: Attribute, level: int) -> tuple[float, int]:
        """The most valuable specialization of ``a`` from ``level``: the finer level with the largest utility
        gained per level (the upper concave hull of the loss curve, so a cheap step that opens a valuable one
        — age 20-year → 10-year → 5-year — is taken as one), and that gain per level."""
        loss = LOSS.get(a.name) or tuple(i / a.top for i in range(a.top + 1))
        best = max(range(level), key=lambda f: ((loss[level] - loss[f]) / (level - f), -f))
        return self.w[a.name] * (loss[level] - loss[best]) / (level - best), best


class Unreachable(Exception):
    """No generalization within the pinned levels and the suppression budget meets the targets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def protect(measures: Measures, targets: Targets) -> Protected:
    """Choose levels (global recoding) and suppress (locally) until the targets hold; Unreachable otherwise.

    Top-down specialization (as Fung, Wang and Yu's TDS): start with every attribute not released (one class)
    and repeatedly take the most valuable step to a finer level of one attribute (``_Search.next_step``, known
    before any data is looked at) if the targets still hold after it. Finer levels only split classes, so a
    step that fails now fails at every later point: the attribute is then final. Each step costs one pass
    over the persons; the whole search at most one pass per level of the hierarchies.
    """
    search = _Search(measures, targets)
    levels = {a.name: targets.pinned.get(a.name, a.top if a in search.attrs else 0) for a in ATTRIBUTES}
    sig = search.signature(levels)
    if search.violation(sig) > 0:
        raise _unreachable(targets)
    final = set(targets.pinned)
    taken: list[tuple[Attribute, int, np.ndarray]] = []  # (attribute, level before, signature before)
    steps: list[str] = []
    while True:
        open_ = [(search.next_step(a, levels[a.name]), -i, a) for i, a in enumerate(search.attrs)
                 if a.name not in final and levels[a.name] > 0]
        if not open_:
            break
        (_gain, target), _i, a = max(open_, key=lambda o: (o[0][0], o[1]))
        now = levels[a.name]
        for level in range(target, now):  # the finest feasible level between the target and now
            with np.errstate(over="ignore"):
                cand = sig - search.part(a, now) + search.part(a, level)
            if search.violation(cand) == 0:
                taken.append((a, now, sig))
                levels[a.name], sig = level, cand
                steps.append(f"{a.name} ← {a.levels[level]}")
                break
        if levels[a.name] != target:  # something finer failed: it fails at every later point too
            final.add(a.name)
    while True:
        suppressed, withheld = search.suppress(levels)
        if search.acceptable(levels, suppressed, withheld):
            return Protected(levels=levels, suppressed=suppressed, withheld=withheld, steps=steps,
                             search=search)
        if not taken:  # the before-suppression estimate was too hopeful even at the coarsest levels
            raise _unreachable(targets)
        a, before, sig = taken.pop()
        levels[a.name] = before
        steps.append(f"{a.name} → {a.levels[before]} (after local suppression the targets did not hold)")


def _unreachable(targets: Targets) -> Unreachable:
    pinned = ", ".join(f"{k} = {BY_NAME[k].levels[v]!r}" for k, v in sorted(targets.pinned.items()))
    return Unreachable("even with every attribute generalized as far as allowed"
                       + (f" ({pinned} pinned)" if pinned else "") + ", the whole-record targets "
                       f"(k = {targets.k}, mean risk ≤ {targets.mean_risk}, suppression ≤ "
                       f"{targets.max_suppression:.0%} of persons) cannot be met")


# --- the contributing partner as attacker --------------------------------------------------------------

def prepare_attacks(protected: Protected) -> None:
    """Compute (once) the search's codes of every released attribute at its chosen level, so partner attacks
    may run side by side: after this they only read the search."""
    if protected.search is None:
        return
    for a in ATTRIBUTES:
        if protected.levels[a.name] < a.top:
            protected.search.part(a, protected.levels[a.name])


def partner_attack(measures: Measures, protected: Protected, events: dict[str, pl.DataFrame], partner: str,
                   domain: str, as_of: dt.date, partners: tuple[str, ...]) -> dict[str, float | int]:
    """Share of ``partner``'s clients it singles out by matching every attribute it supplied.

    The partner computes, from its own records, each released attribute it knows in release form (at the
    levels the manifest states) and looks for release persons that agree on all of them — a suppressed or
    unreleased value agrees with anything. A client with exactly one candidate is singled out. Attributes
    declared non-identifying are included: the partner knows them all the same.
    """
    clients, source = partner_view(measures, events, partner, domain, as_of, partners)
    kept = ~protected.withheld
    # compared mixed, as the search holds them (mixing is a bijection: equal exactly when the codes are)
    search = protected.search or _Search(measures, Targets())
    own = clients.to_numpy()
    rel_cols: list[np.ndarray] = []
    wild_cols: list[np.ndarray] = []
    know_cols: list[np.ndarray] = []
    for a in ATTRIBUTES:
        level = protected.levels[a.name]
        if level == a.top:
            continue
        known = source(a)
        if known is None:
            continue
        rel_cols.append(search.part(a, level))
        sup = protected.suppressed.get(a.name)
        wild_cols.append(sup if sup is not None else np.zeros(measures.n, bool))
        if known.get("rows") is measures.rows.get(a.name):  # all of the table's rows: the release's codes
            know_cols.append(rel_cols[-1][own])
        else:
            know_cols.append(search.mix(a, search.codes.of(a, level, clients, **known)))
    dm = measures.person.get_column("_dm").to_numpy()
    in_domain = ((dm >> DOMAINS.index(domain)) & 1) == 1
    domains_sup = protected.suppressed.get("domains")
    if protected.levels["domains"] == BY_NAME["domains"].top:
        in_domain = np.ones(measures.n, bool)
    elif domains_sup is not None:
        in_domain |= domains_sup
    candidates = kept & in_domain
    m = len(clients)
    counts = np.zeros(m, np.int64)
    if rel_cols:
        wild = np.stack(wild_cols, axis=1)[candidates]
        rel = np.stack(rel_cols, axis=1)[candidates]
        kn = np.stack(know_cols, axis=1)
        # which attributes each candidate has suppressed, as one integer (np.unique on rows sorts slowly)
        which = wild.astype(np.int64) @ (np.int64(1) << np.arange(len(rel_cols), dtype=np.int64))
        for pattern in pl.Series(which).unique().sort():  # a hash de-duplication: sorting a million is slower
            used = [j for j in range(len(rel_cols)) if not (int(pattern) >> j) & 1]
            sel = which == pattern
            rk = combine([rel[sel, j] for j in used], int(sel.sum()))
            ck = combine([kn[:, j] for j in used], m)
            # candidates per key, counted and looked up by hash (sorting and binary search cost more)
            per_key = pl.DataFrame({"k": rk}).group_by("k").len()
            hit = pl.DataFrame({"k": ck}).join(per_key, on="k", how="left", maintain_order="left")
            counts += hit.get_column("len").fill_null(0).to_numpy()
    else:
        counts += int(candidates.sum())
    single = int((counts == 1).sum())
    return {"clients": m, "singled_out": single, "share": round(single / m, 4) if m else 0.0,
            "attributes_matched": len(rel_cols)}
