"""Small-cell suppression shared by the report and the indicators: primary and complementary.

Every count cilink publishes is registered here as a *cell* with a key, together with the linear relations
that hold between cells by construction (a total is the sum of its parts; a denominator is its numerator
plus the people who do not meet it; the same count printed in two tables is one cell). Some cells are
*hidden* from the start: counts nobody prints but anybody can work out from the printed ones, such as
"denominator − numerator", or the atoms of overlapping populations (``atoms``).

``Cells.protect()`` then decides what may be printed:

- primary suppression: every cell of 1 … ``min_cell`` − 1 (printed or hidden) is sensitive; printed
  sensitive cells are withheld;
- complementary suppression: while the printed cells still determine a sensitive cell — exactly, through
  any combination of the relations (checked with linear algebra, not just row by row) — one more printed
  cell taking part in that derivation is withheld, the smallest one first, so totals survive where they can;
  then every complement that a later one made unnecessary is printed again (``_Solver._irredundant``), so
  each complement left is needed: printing it alone would give a small count away.

Zero is not a small cell (an empty category discloses nothing about a person), so zeros stay printed unless
needed as a complement. The check is exact for the relations registered; whoever adds a printed number adds
its relations too (more relations only ever mean more suppression, never less).

Counts over *units* (persons, a student's school year, a program exit, a staged row, a scored pair) can be
registered with the ids of the units they count (``units``): every count over the same kind of unit — in
any table of any file — is then related through the atoms of that unit space, so a count in the report and
one in the indicators that describe nested populations cannot be subtracted either. The ids are stable
across releases (internal person ids, not release keys), which is what makes differencing between two
releases checkable: ``earlier`` loads what the previous release published (``Published``, kept in the
restricted zone by ``cilink.report.history``). Its printed cells are *fixed* — public for good, never
withheld now — and its cells share atoms with this release's through the units that stayed, entered or
left, so "this month minus last month" is a subtraction like any other. Each state carries every earlier
printed or small count forward (``snapshot``), so a release is checked against all earlier ones.

The linear algebra runs over the *atoms* (and the cells no atom defines), not over every count: a printed
count is one equation over its atoms, a withheld one a combination that must stay undetermined. However many
tables describe the same persons, the systems stay as small as the printed counts and the distinct atoms.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

Key = Hashable

#: Label printed in place of a withheld count.
SUPPRESSED = "*"

#: First element of the keys ``Cells`` makes itself for unit spaces (atoms, differences) and for the cells of
#: an earlier release: not part of what a release publishes, so never persisted as its own.
UNITS = "_units"
EARLIER = "_earlier"


@dataclass(frozen=True)
class Published:
    """What one release published, for the next one (restricted: unit ids are internal).

    ``cells``: every count the release registered (printed or not) with its value; ``printed``: the ones it
    printed; ``relations``: the linear relations among them (besides those of the unit spaces);
    ``members``: per unit space, the cells whose units are known and a frame with ``_id`` and one Boolean
    column ``k<i>`` per cell (``keys[i]``) — whether the unit was counted in it.
    """

    release_id: str
    cells: Mapping[Key, int]
    printed: frozenset[Key]
    relations: list[dict[Key, int]]
    members: Mapping[str, tuple[list[Key], pl.DataFrame]]


@dataclass(frozen=True)
class Protection:
    """The outcome of ``Cells.protect``: which printable cells are withheld."""

    suppressed: frozenset[Key]
    values: Mapping[Key, int]
    public: frozenset[Key]

    def shown(self, key: Key) -> int | None:
        """The count to print for ``key``, or None when it is withheld (or was never printable)."""
        if key not in self.public or key in self.suppressed:
            return None
        return self.values[key]

    def published(self) -> dict[Key, int]:
        """Every printable cell that survived, with its value (what a reader of the outputs can see)."""
        return {k: self.values[k] for k in self.public if k not in self.suppressed}


@dataclass
class Cells:
    """A registry of counts and the relations between them (see the module docstring).

    Example::

        cells = Cells(min_cell=11)
        cells.add(("q", "total"), 40); cells.add(("q", "a"), 3); cells.add(("q", "b"), 37)
        cells.total(("q", "total"), [("q", "a"), ("q", "b")])
        cells.protect().suppressed   # {("q", "a"), ("q", "b")}: b would give a away
    """

    min_cell: int
    values: dict[Key, int] = field(default_factory=dict)
    public: set[Key] = field(default_factory=set)
    relations: list[dict[Key, int]] = field(default_factory=list)
    keep: dict[Key, int] = field(default_factory=dict)
    #: printed by an earlier release: known to every reader, so never withheld (and never a complement)
    fixed: set[Key] = field(default_factory=set)
    #: per unit space: the keys (in order) and the membership frames registered with ``units``
    spaces: dict[str, tuple[dict[Key, int], list[pl.DataFrame]]] = field(default_factory=dict)
    #: counts defined as sums of atoms (``atoms``), one list of atoms per unit space they were counted in
    definitions: dict[Key, list[list[Key]]] = field(default_factory=dict)
    #: sensitive differences (a, b, a − b) of nested counts: withheld until no combination gives them away
    targets: list[tuple[Key, Key, int]] = field(default_factory=list)
    _defining: set[int] = field(default_factory=set)
    _earlier: Published | None = None
    _linked: bool = False
    _old_members: dict[str, tuple[list[Key], pl.DataFrame]] = field(default_factory=dict)

    def add(self, key: Key, value: int, *, public: bool = True, keep: int = 0) -> Key:
        """Register a count; registering the same key twice must give the same value (it is one cell).

        ``keep`` ranks how much a printed count is worth keeping: complementary suppression withholds
        cells of lower ``keep`` first (then the smallest), e.g. to keep the accepted rows that other tables
        build on rather than the rows received.
        """
        value = int(value)
        if value < 0:
            raise ValueError(f"cell {key!r} is negative ({value}); counts never are")
        old = self.values.get(key)
        if old is not None and old != value:
            raise ValueError(f"cell {key!r} registered with two values ({old} and {value})")
        self.values[key] = value
        if public:
            self.public.add(key)
        if keep:
            self.keep[key] = max(keep, self.keep.get(key, 0))
        return key

    def relation(self, coefficients: Mapping[Key, int]) -> None:
        """Register Σ coefficient × cell = 0 (every key must be registered first)."""
        terms = {k: c for k, c in coefficients.items() if c}
        missing = [k for k in terms if k not in self.values]
        if missing:
            raise KeyError(f"relation names unregistered cell(s) {missing[:3]!r}")
        total = sum(c * self.values[k] for k, c in terms.items())
        if total != 0:
            raise ValueError(f"relation does not hold on the data (off by {total}): {sorted(map(str, terms))[:4]}")
        if terms:
            self.relations.append(terms)

    def total(self, total: Key, parts: Iterable[Key]) -> None:
        """Register total = Σ parts."""
        coeffs: dict[Key, int] = {total: 1}
        for p in parts:
            coeffs[p] = coeffs.get(p, 0) - 1
        self.relation(coeffs)

    def same(self, a: Key, b: Key) -> None:
        """The same count appears under two keys (e.g. in two tables)."""
        if a != b:
            self.relation({a: 1, b: -1})

    def split(self, whole: Key, part: Key, rest: Key) -> None:
        """Register a hidden ``rest`` = whole − part (e.g. the people a rate's numerator leaves out)."""
        self.add(rest, self.values[whole] - self.values[part], public=False)
        self.total(whole, [part, rest])

    def atoms(self, prefix: Key, keys: list[Key], membership: pl.DataFrame) -> None:
        """Relate the printed counts ``keys`` through the atoms of the units they count.

        ``membership`` has one row per unit (person, exit, school year …) and one Boolean column per key, in
        the same order: whether the unit is counted in that cell. Units with the same pattern form an *atom*
        (a hidden cell); each key's count is the sum of its atoms. For each pair of keys where one's units
        contain the other's and the difference is a small count, that difference is a sensitive count too
        (``targets``) — the usual "subtract the numerator from the denominator" attack. Every key must
        already be registered with the count ``membership`` gives it.
        """
        if not keys:
            return
        cols = [f"c{i}" for i in range(len(keys))]
        frame = membership.rename(dict(zip(membership.columns, cols, strict=True))).with_columns(
            [pl.col(c).fill_null(False) for c in cols])
        groups = frame.group_by(cols).len().filter(pl.any_horizontal(cols)).sort(cols)
        member = groups.select(cols).to_numpy().astype(bool)  # atoms × keys
        counts = groups.get_column("len").to_list()
        atom_keys = []
        for a, n in enumerate(counts):
            pattern = tuple(int(x) for x in member[a])
            atom_keys.append(self.add((prefix, "atom", pattern), n, public=False))
        for i, key in enumerate(keys):
            parts = [atom_keys[a] for a in np.flatnonzero(member[:, i])]
            self.total(key, parts)
            self._defining.add(len(self.relations) - 1)
            self.definitions.setdefault(key, []).append(parts)
        # nested pairs: the difference of two printed counts is a count of people too
        values = np.array([self.values[k] for k in keys], dtype=np.int64)
        gap = values[:, None] - values[None, :]  # [i, j]: keys[i] − keys[j]
        for i, j in np.argwhere((gap > 0) & (gap < self.min_cell) & (values[None, :] > 0)):
            # j's atoms all in i's (an empty cell is nested in everything and tells nothing: values > 0)
            if not (member[:, j] & ~member[:, i]).any():
                self.targets.append((keys[int(i)], keys[int(j)], int(gap[i, j])))

    def units(self, space: str, keys: list[Key], ids: pl.Series, membership: pl.DataFrame) -> None:
        """Relate the counts ``keys`` through the units they count, identified by ``ids``.

        ``membership`` has one row per unit (``ids``, unique, stable across releases: e.g. the internal
        person id) and one Boolean column per key, in order. Every count registered in the same ``space``
        — by any table, in any call — is related to every other through the atoms of that space (built
        once, by ``protect``; see ``atoms``), and so are an earlier release's counts of that space. Every
        key must already be registered with the count ``membership`` gives it.
        """
        if not keys:
            return
        index, parts = self.spaces.setdefault(space, ({}, []))
        names = []
        for k in keys:
            names.append(f"k{index.setdefault(k, len(index))}")
        cols = membership.columns
        frame = membership.select([pl.col(c).fill_null(False).cast(pl.Boolean).alias(n)
                                   for c, n in zip(cols, names, strict=True)])
        parts.append(frame.with_columns(pl.Series("_id", ids, dtype=pl.String)))
        self._linked = False

    def earlier(self, published: Published) -> None:
        """Take an earlier release's published cells into account (see the module docstring)."""
        self._earlier = published
        self._linked = False

    def _space_frame(self, space: str) -> tuple[list[Key], pl.DataFrame]:
        """The merged membership of a space: one row per unit id, one column per key (k0 …)."""
        index, parts = self.spaces[space]
        keys = list(index)
        frame = (pl.concat(parts, how="diagonal").group_by("_id")
                 .agg([pl.col(f"k{i}").fill_null(False).any() for i in range(len(keys))]))
        return keys, frame

    def _link(self) -> None:
        """Register the earlier release's cells, then the atoms of every unit space (once, before protect)."""
        if self._linked:
            return
        self._linked = True
        own_members = {k for index, _ in self.spaces.values() for k in index}
        frames: dict[str, list[tuple[list[Key], pl.DataFrame]]] = {}
        for space in self.spaces:
            frames.setdefault(space, []).append(self._space_frame(space))
        e = self._earlier
        self._old_members = {}
        if e is not None:
            def old(k: Key) -> Key:  # a cell that release carried from an earlier one keeps its name
                return k if _is_earlier(k) else (EARLIER, e.release_id, k)

            old_members = {k for keys, _ in e.members.values() for k in keys}
            for k, v in e.cells.items():
                printed = k in e.printed
                self.add(old(k), v, public=printed)
                if printed:
                    self.fixed.add(old(k))
            for rel in e.relations:
                self.relation({old(k): c for k, c in rel.items()})
            # a count whose units are not known (e.g. a batch's rows): the same key with the same value is
            # the same count (batch counts never change), so printing it now must not undo last time
            for k, v in e.cells.items():
                base = k[2] if _is_earlier(k) else k
                if k not in old_members and base not in own_members and self.values.get(base) == v:
                    self.same(old(k), base)
            for space, (keys, frame) in e.members.items():
                self._old_members[space] = ([old(k) for k in keys], frame)
                frames.setdefault(space, []).append(self._old_members[space])
        for space, parts in frames.items():
            keys, merged = _merge(parts)
            self.atoms((UNITS, space), keys, merged.select([f"k{i}" for i in range(len(keys))]))

    def snapshot(self, protection: Protection, release_id: str) -> Published:
        """What this release published, to be kept for the next one (``cilink.report.history``).

        Besides its own cells, it carries every earlier cell that was printed (public for good) or is a
        small count (to stay withheld), so a release is checked against all that came before it, not only
        the last one. A carried cell whose units are those of a cell kept anyway (the same population,
        printed at least as much) is dropped: unchanged counts do not pile up release after release.
        """
        self._link()
        printed_now = protection.published()
        carried = {k for k in self.values if _is_earlier(k) and (k in self.fixed or self.sensitive(k))}
        keep = {k for k in self.values if _own(k)} | carried
        printed = {k for k in keep if k in printed_now or k in self.fixed}
        members: dict[str, tuple[list[Key], pl.DataFrame]] = {}
        for space in set(self.spaces) | set(self._old_members):
            parts = [self._space_frame(space)] if space in self.spaces else []
            if space in self._old_members:
                old_keys, old_frame = self._old_members[space]
                wanted = [i for i, k in enumerate(old_keys) if k in carried]
                parts.append(([old_keys[i] for i in wanted],
                              old_frame.select("_id", *[pl.col(f"k{i}").alias(f"k{n}") for n, i in enumerate(wanted)])))
            keys, frame = _merge(parts)
            if not keys:
                continue
            # one of each population: fingerprint = (count, sum of the units' hashes)
            prints = frame.select([pl.struct(pl.col(f"k{i}").sum().alias("n"),
                                             pl.col("_id").hash(seed=7).filter(pl.col(f"k{i}")).sum().alias("h"))
                                   .alias(f"k{i}") for i in range(len(keys))]).row(0)
            best: dict[tuple[object, ...], Key] = {}
            for k, fp in zip(keys, prints, strict=True):
                sig = (fp["n"], fp["h"], self.values[k])
                rank = (k in printed, not _is_earlier(k))
                if sig not in best or rank > (best[sig] in printed, not _is_earlier(best[sig])):
                    best[sig] = k
            kept = set(best.values())
            drop = {k for k in keys if k in carried and k not in kept}
            keep -= drop
            cols = [i for i, k in enumerate(keys) if k not in drop]
            members[space] = ([keys[i] for i in cols],
                              frame.select("_id", *[pl.col(f"k{i}").alias(f"k{n}") for n, i in enumerate(cols)])
                              .filter(pl.any_horizontal([pl.col(f"k{n}") for n in range(len(cols))]))
                              if cols else frame.select("_id").clear())
        # a carried cell dropped as a duplicate in one space may be the one kept in another space merged before it
        # (a count in two spaces, e.g. persons and school years): it stays, as the other space lists it — keeping
        # a cell only ever means more suppression (seen after a noisy release, which prints none of its own cells)
        keep |= {k for keys, _ in members.values() for k in keys}
        cells = {k: self.values[k] for k in self.values if k in keep}
        relations = [r for i, r in enumerate(self.relations) if i not in self._defining and all(k in keep for k in r)]
        return Published(release_id=release_id, cells=cells, printed=frozenset(printed & keep), relations=relations,
                         members=members)

    def sensitive(self, key: Key) -> bool:
        """A count of 1 … min_cell − 1."""
        return 0 < self.values[key] < self.min_cell

    def protect(self) -> Protection:
        """Primary then complementary suppression; returns the printable cells that must be withheld.

        Cells printed by an earlier release (``fixed``) stay known: never withheld, never chosen as a
        complement; the cells of this release are withheld until they determine no small count of either.
        """
        self._link()
        with _one_blas_thread():
            hidden = _Solver(self).solve()
        suppressed = frozenset(k for k in hidden if k in self.public)
        return Protection(suppressed=suppressed, values=dict(self.values), public=frozenset(self.public))


@functools.cache
def _openblas() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """OpenBLAS's get/set thread count, if numpy's LAPACK is an OpenBLAS loaded in this process (Linux)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return None
    libs = sorted({line.split()[-1] for line in maps.read_text().splitlines() if "openblas" in line.lower()
                   and line.split()[-1].startswith("/")})
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, put in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                         ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                         ("openblas_get_num_threads", "openblas_set_num_threads")):
            if hasattr(lib, get) and hasattr(lib, put):
                getter, setter = getattr(lib, get), getattr(lib, put)
                getter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                return getter, setter
    return None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run the solver's many small SVDs on one BLAS thread: on a busy two-core host, OpenBLAS's threads
    contended with polars' and with each other, and the same 250 × 220 SVD took 10 ms or 1.4 s."""
    blas = _openblas()
    if blas is None:
        yield
        return
    get, put = blas
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)


def _merge(parts: list[tuple[list[Key], pl.DataFrame]]) -> tuple[list[Key], pl.DataFrame]:
    """Membership frames (``_id`` + ``k<i>`` per key) of one space as one: keys in order, one row per unit."""
    keys: list[Key] = []
    renamed = []
    for part_keys, frame in parts:
        base = len(keys)
        keys += part_keys
        renamed.append(frame.rename({f"k{i}": f"k{base + i}" for i in range(len(part_keys))}))
    if len(renamed) == 1:
        return keys, renamed[0]
    merged = (pl.concat(renamed, how="diagonal").group_by("_id", maintain_order=True)
              .agg([pl.col(f"k{i}").fill_null(False).any() for i in range(len(keys))]))
    return keys, merged


def _is_earlier(k: Key) -> bool:
    return isinstance(k, tuple) and len(k) == 3 and k[0] == EARLIER


def _own(k: Key) -> bool:
    """A cell of this release itself (not an atom, nor an earlier release's cell)."""
    if not isinstance(k, tuple) or not k:
        return True
    head = k[0]
    return head != EARLIER and not (isinstance(head, tuple) and head[:1] == (UNITS,))


def determined(matrix: np.ndarray, slack: float = 1e-6) -> np.ndarray:
    """For A·x = b with unknowns x (columns of ``matrix``): which unknowns the equations fix exactly.

    x_j is fixed iff the unit vector e_j lies in the row space of A, i.e. its projection onto the row
    space (spanned by the leading right singular vectors) has length 1. ``slack`` absorbs rounding; the
    default errs towards "fixed", which only ever means more suppression.
    """
    if matrix.shape[1] == 0:
        return np.zeros(0, dtype=bool)
    if matrix.shape[0] == 0:
        return np.zeros(matrix.shape[1], dtype=bool)
    _, s, vt = np.linalg.svd(matrix, full_matrices=False)
    tol = max(matrix.shape) * np.finfo(float).eps * (s[0] if len(s) else 1.0) * 100
    rank = int((s > tol).sum())
    return (vt[:rank] ** 2).sum(axis=0) > 1 - slack


Vector = dict[int, float]


@dataclass
class _Row:
    """One equation over the unknowns: a printed count (``key``) or a relation (its printed cells ``known``)."""

    terms: Vector
    key: Key | None = None
    known: dict[Key, float] = field(default_factory=dict)


class _Solver:
    """Complementary suppression over the *base* unknowns: atoms and the cells no atom defines.

    A count defined by atoms is not an unknown of its own: printed, it is one equation over its atoms;
    withheld, it is a linear function of them that must stay undetermined if small. This keeps the
    equations as few as the printed counts and the unknowns as few as the atoms, however many counts
    describe the same persons — the SVD that decides what is determined stays small.
    """

    def __init__(self, cells: Cells) -> None:
        self.cells = cells
        defs = cells.definitions
        self.base = [k for k in cells.values if k not in defs]
        self.index = {k: i for i, k in enumerate(self.base)}
        self.expr: dict[Key, Vector] = {}
        for k in cells.values:
            if k in defs:
                self.expr[k] = {self.index[a]: 1.0 for a in defs[k][0]}
            else:
                self.expr[k] = {self.index[k]: 1.0}
        self.relations: list[tuple[Vector, dict[Key, float]]] = []
        for i, rel in enumerate(cells.relations):
            if i in cells._defining:
                continue
            terms: Vector = {}
            plain = {}
            for k, c in rel.items():
                for b, v in self.expr[k].items():
                    terms[b] = terms.get(b, 0.0) + c * v
                if k not in defs:
                    plain[k] = float(c)
            terms = {b: v for b, v in terms.items() if v}
            if terms:
                self.relations.append((terms, plain))
        for k, parts in defs.items():  # counted in two unit spaces: both sums of atoms are the count
            for other in parts[1:]:
                terms = dict(self.expr[k])
                for a in other:
                    terms[self.index[a]] = terms.get(self.index[a], 0.0) - 1.0
                terms = {b: v for b, v in terms.items() if v}
                if terms:
                    self.relations.append((terms, {}))
        fixed = cells.fixed
        self.targets: list[tuple[Vector, tuple[Key, ...]]] = [
            (self.expr[k], (k,)) for k in cells.values if k not in fixed and cells.sensitive(k)]
        for a, b, _ in cells.targets:
            if a in fixed and b in fixed:  # both printed before: that release answered for it
                continue
            t = dict(self.expr[a])
            for i, v in self.expr[b].items():
                t[i] = t.get(i, 0.0) - v
            self.targets.append(({i: v for i, v in t.items() if v}, (a, b)))

    def _rows(self, hidden: set[Key]) -> list[_Row]:
        rows = [_Row(self.expr[k], key=k) for k in self.cells.values
                if k not in hidden and k in self.cells.definitions and self.expr[k]]
        for terms, plain in self.relations:
            known = {k: c for k, c in plain.items() if k not in hidden}
            rest = {b: v for b, v in terms.items() if self.base[b] in hidden}
            if rest:
                rows.append(_Row(rest, known=known))
        return rows

    def _check(self, hidden: set[Key], slack: float, with_weights: bool
               ) -> tuple[list[int], list[dict[Key, float]], Callable[[list[Vector], float], np.ndarray]]:
        """Which targets the printed counts determine (and, per leak, the printed counts taking part)."""
        rows = self._rows(hidden)
        unknown = sorted({b for r in rows for b in r.terms} | {b for t, _ in self.targets for b in t})
        col = {b: i for i, b in enumerate(unknown)}
        parent = list(range(len(unknown)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for r in rows:
            first = find(col[next(iter(r.terms))])
            for b in r.terms:
                parent[find(col[b])] = first
        roots = np.array([find(i) for i in range(len(unknown))], dtype=np.int64)
        comps: dict[int, list[int]] = {}
        for i, root in enumerate(roots.tolist()):
            comps.setdefault(root, []).append(i)
        localpos = np.zeros(len(unknown), dtype=np.int64)
        for members in comps.values():
            localpos[members] = np.arange(len(members))
        row_comp: dict[int, list[int]] = {}
        for n, r in enumerate(rows):
            row_comp.setdefault(int(roots[col[next(iter(r.terms))]]), []).append(n)
        # per component: the row space of its equations. Unknowns whose columns are equal (atoms that differ
        # only in withheld counts) cannot be told apart: a vector is in the row space iff it is the same on
        # each such group and its group values are in the row space of the merged columns — exact, and far
        # fewer columns than atoms.
        solved: dict[int, tuple[np.ndarray, np.ndarray | None, np.ndarray, int]] = {}
        for root, members in comps.items():
            rn = row_comp.get(root, [])
            a = np.zeros((len(rn), len(members)))
            for i, n in enumerate(rn):
                for b, v in rows[n].terms.items():
                    a[i, localpos[col[b]]] = v
            merged, group = np.unique(a, axis=1, return_inverse=True)
            group = group.ravel()
            if not rn:
                solved[root] = (np.zeros((0, merged.shape[1])), None, group, merged.shape[1])
                continue
            u, s, vt = np.linalg.svd(merged, full_matrices=False)
            tol = max(merged.shape) * np.finfo(float).eps * (s[0] if len(s) else 1.0) * 100
            rank = int((s > tol).sum())
            pinv = (vt[:rank].T / s[:rank]) @ u[:, :rank].T if with_weights else None
            solved[root] = (vt[:rank], pinv, group, merged.shape[1])

        def reduce(vectors: list[Vector]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
            """Per component: (vector indices, their values on the merged columns, same within each group)."""
            entries: dict[int, list[tuple[int, int, float]]] = {}
            for n, t in enumerate(vectors):
                for b, v in t.items():
                    c = col[b]
                    entries.setdefault(int(roots[c]), []).append((n, int(localpos[c]), v))
            out = {}
            for root, es in entries.items():
                ids = sorted({n for n, _, _ in es})
                at = {n: i for i, n in enumerate(ids)}
                group, size = solved[root][2], solved[root][3]
                full = np.zeros((len(ids), len(group)))
                for n, j, v in es:
                    full[at[n], j] = v
                reduced = np.zeros((len(ids), size))
                reduced[:, group] = full
                same = np.abs(reduced[:, group] - full).max(axis=1) <= 1e-9
                out[root] = (np.array(ids, dtype=np.int64), reduced, same)
            return out

        def fixed(vectors: list[Vector], slack: float = slack) -> np.ndarray:
            """Whether the printed counts determine each vector (an empty vector determines nothing)."""
            result = np.array([bool(t) for t in vectors], dtype=bool)
            for root, (ids, reduced, same) in reduce(vectors).items():
                basis = solved[root][0]
                resid = reduced - (reduced @ basis.T) @ basis if len(basis) else reduced
                norm = (reduced ** 2).sum(axis=1)
                result[ids] &= same & ((resid ** 2).sum(axis=1) <= slack * np.maximum(norm, 1e-300))
            return result

        vectors = [t for t, _ in self.targets]
        leaks = np.flatnonzero(fixed(vectors)).tolist()
        weights: list[dict[Key, float]] = []
        if with_weights and leaks:
            per_leak: list[dict[Key, float]] = [{} for _ in leaks]
            for root, (ids, reduced, _) in reduce([vectors[n] for n in leaks]).items():
                pinv = solved[root][1]
                if pinv is None:
                    continue
                y = reduced @ pinv
                rn = row_comp.get(root, [])
                for i, n in enumerate(ids.tolist()):
                    w = per_leak[n]
                    for j in np.flatnonzero(np.abs(y[i]) >= 1e-9).tolist():
                        r = rows[rn[j]]
                        if r.key is not None:
                            w[r.key] = w.get(r.key, 0.0) + y[i, j]
                        for k, c in r.known.items():
                            w[k] = w.get(k, 0.0) + y[i, j] * c
            weights = per_leak
        return leaks, weights, fixed

    def solve(self) -> set[Key]:
        cells = self.cells
        hidden = {k for k in cells.values
                  if k not in cells.fixed and (k not in cells.public or cells.sensitive(k))}
        while True:
            leaks, weights, fixed = self._check(hidden, 1e-6, with_weights=True)
            if not leaks:
                # a withheld count the printed ones determine anyway protects nothing: print it after all
                # (strictly determined only, and undone if a check finds it would expose anything)
                candidates = [k for k in hidden if k in cells.public and not cells.sensitive(k)]
                back = {k for k, f in zip(candidates, fixed([self.expr[k] for k in candidates], 1e-9), strict=True)
                        if f}
                if back and not self._check(hidden - back, 1e-6, with_weights=False)[0]:
                    hidden -= back
                return self._irredundant(hidden)
            # one complement per leak and round (a leak whose derivation already lost one of its main cells this
            # round waits for the next check), so a large system needs a few rounds, not one per withheld cell
            chosen: set[Key] = set()
            for w in weights:
                taking_part = [k for k, v in w.items() if abs(v) > 1e-9 and k not in hidden
                               and k not in cells.fixed]
                if not taking_part:
                    continue
                # the least-norm derivation spreads over every alternative route (a total summed over each of
                # its breakdowns); withholding a cell of one route leaves the others. Choose among the cells
                # the routes share — the heaviest weights — and among those the least valued, then smallest
                # non-zero printed count (totals are large and worth keeping).
                heaviest = max(abs(w[k]) for k in taking_part)
                core = [k for k in taking_part if abs(w[k]) >= 0.5 * heaviest]
                if chosen.intersection(core):
                    continue
                chosen.add(min(core, key=lambda k: (cells.values[k] == 0, cells.keep.get(k, 0), cells.values[k],
                                                    str(k))))
            if not chosen:  # only earlier releases' cells take part: withhold every cell of this release
                hidden |= {k for k in cells.values if k not in cells.fixed}
                return hidden
            hidden |= chosen

    def _irredundant(self, hidden: set[Key]) -> set[Key]:
        """``hidden`` less every complement that protects nothing on its own any more: printed after all.

        Complements are chosen one leak at a time, so a later one can cover the leak an earlier one was chosen
        for. Each complement, the most valuable first, is tried printed; it stays printed when the others then
        still determine no small count. Every complement left is needed: printing any one of them alone would
        give a small count away (the fewest, in that sense, that the greedy choice allows).
        """
        cells = self.cells
        complements = sorted((k for k in hidden if k in cells.public and not cells.sensitive(k)
                              and k not in cells.fixed),
                             key=lambda k: (-cells.keep.get(k, 0), -cells.values[k], str(k)))
        for k in complements:
            if not self._check(hidden - {k}, 1e-6, with_weights=False)[0]:
                hidden = hidden - {k}
        return hidden


def subtraction_attack(published: Mapping[Key, int], relations: list[dict[Key, int]]) -> dict[Key, int]:
    """What a reader recovers by repeated subtraction: any relation with one unknown left gives it away.

    Independent of ``protect`` (no linear algebra), for tests and audits: returns every cell (printed or
    not) whose value follows, relation by relation, from the printed ones.
    """
    known = dict(published)
    progress = True
    while progress:
        progress = False
        for rel in relations:
            unknown = [k for k in rel if k not in known]
            if len(unknown) == 1:
                k = unknown[0]
                rest = sum(c * known[j] for j, c in rel.items() if j != k)
                known[k] = -rest // rel[k]
                progress = True
    return {k: v for k, v in known.items() if k not in published}
