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
  cell taking part in that derivation is withheld, the smallest one first, so totals survive where they can.

Zero is not a small cell (an empty category discloses nothing about a person), so zeros stay printed unless
needed as a complement. The check is exact for the relations registered; whoever adds a printed number adds
its relations too (more relations only ever mean more suppression, never less).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

Key = Hashable

#: Label printed in place of a withheld count.
SUPPRESSED = "*"


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
        (a hidden cell); each key's count is the sum of its atoms, and for each pair of keys where one's
        units contain the other's, the difference is registered as a hidden cell too — the usual
        "subtract the numerator from the denominator" attack. Every key must already be registered with
        the count ``membership`` gives it.
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
            self.total(key, [atom_keys[a] for a in np.flatnonzero(member[:, i])])
        # nested pairs: the difference of two printed counts is a count of people too
        sets = [frozenset(np.flatnonzero(member[:, i]).tolist()) for i in range(len(keys))]
        for i, j in ((i, j) for i in range(len(keys)) for j in range(len(keys)) if i != j):
            if sets[j] and sets[j] < sets[i]:  # an empty cell is nested in everything and tells nothing
                diff = (prefix, "diff", i, j)
                self.add(diff, self.values[keys[i]] - self.values[keys[j]], public=False)
                self.total(keys[i], [keys[j], diff])

    def sensitive(self, key: Key) -> bool:
        """A count of 1 … min_cell − 1."""
        return 0 < self.values[key] < self.min_cell

    def protect(self) -> Protection:
        """Primary then complementary suppression; returns the printable cells that must be withheld."""
        keys = list(self.values)
        index = {k: i for i, k in enumerate(keys)}
        hidden = {i for i, k in enumerate(keys) if k not in self.public or self.sensitive(k)}
        for component in _components(len(keys), [[index[k] for k in r] for r in self.relations]):
            rels = [r for r in self.relations if index[next(iter(r))] in component]
            if rels:
                _protect_component(sorted(component), rels, index, keys, self, hidden)
        suppressed = frozenset(keys[i] for i in hidden if keys[i] in self.public)
        return Protection(suppressed=suppressed, values=dict(self.values), public=frozenset(self.public))


def _components(n: int, relations: list[list[int]]) -> list[set[int]]:
    """Cells linked by relations (union-find); each component is protected on its own."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for rel in relations:
        root = find(rel[0])
        for j in rel[1:]:
            parent[find(j)] = root
    groups: dict[int, set[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), set()).add(i)
    return [g for g in groups.values() if len(g) > 1]


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
    projection = (vt[:rank] ** 2).sum(axis=0)
    return projection > 1 - slack


def _protect_component(cols: list[int], rels: list[dict[Key, int]], index: dict[Key, int], keys: list[Key],
                       cells: Cells, hidden: set[int]) -> None:
    local = {c: i for i, c in enumerate(cols)}
    a = np.zeros((len(rels), len(cols)))
    for r, rel in enumerate(rels):
        for k, coef in rel.items():
            a[r, local[index[k]]] = coef
    values = np.array([cells.values[keys[c]] for c in cols])
    keep = [cells.keep.get(keys[c], 0) for c in cols]
    sens = np.array([0 < v < cells.min_cell for v in values])
    def leaks_of(hidden_cols: list[int]) -> tuple[list[int], np.ndarray]:
        fixed = determined(a[:, hidden_cols])
        return [hidden_cols[n] for n in np.flatnonzero(fixed) if sens[hidden_cols[n]]], fixed

    while True:
        u = [i for i, c in enumerate(cols) if c in hidden]
        leaks, _ = leaks_of(u)
        if not leaks:
            # a withheld count the printed ones determine anyway protects nothing: print it after all
            # (strictly determined only, and undone if a check finds it would expose anything)
            strict = determined(a[:, u], slack=1e-9)
            back = [u[n] for n in np.flatnonzero(strict) if keys[cols[u[n]]] in cells.public and not sens[u[n]]]
            if back and not leaks_of([i for i in u if i not in set(back)])[0]:
                hidden.difference_update(cols[i] for i in back)
            return
        # which printed cells take part in deriving the first leaked cell: y·A_U = e_j, weights y·A_P
        target = np.zeros(len(u))
        target[u.index(leaks[0])] = 1.0
        y, *_ = np.linalg.lstsq(a[:, u].T, target, rcond=None)
        weight = y @ a
        printed = [i for i in range(len(cols)) if cols[i] not in hidden and abs(weight[i]) > 1e-9]
        if not printed:  # cannot happen for a cell ≥ 1, but never loop forever: hide the whole component
            hidden.update(cols)
            return
        # the least valued, then smallest non-zero printed count first (totals are large and worth keeping)
        choice = min(printed, key=lambda i: (values[i] == 0, keep[i], values[i], i))
        hidden.add(cols[choice])


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
