"""Name equivalence for linkage: nickname alias sets (from the `nicknames` package) and phonetic codes.

Two first names are *aliases* when their alias sets intersect. A name's alias set is the name itself plus
its formal forms: Bob → {bob, robert}, Liz → {liz, elizabeth}, Beth → {beth, elizabeth, bethena}; so
Robert≈Bob and Liz≈Beth, while two formal names (Robert, William) never match through a shared nickname
(Bill). The package lists some relations in both directions, so the *formal* side of a relation is taken to
be the longer name (ties: the package's own direction).
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import jellyfish
import polars as pl
from nicknames import name_triplets


@cache
def _formal_forms() -> dict[str, frozenset[str]]:
    """nickname → the formal names it stands for."""
    formal: dict[str, set[str]] = defaultdict(set)
    for t in name_triplets():
        if t.relationship != "has_nickname":
            continue
        a, b = t.name1.strip().lower(), t.name2.strip().lower()
        if not a or not b or a == b:
            continue
        longer, shorter = (b, a) if len(b) > len(a) else (a, b)
        formal[shorter].add(longer)
    return {k: frozenset(v) for k, v in formal.items()}


def aliases(name: str | None) -> list[str]:
    """The alias set of a standardized first name: itself, its first token and their formal forms (sorted).

    Example: ``aliases("bob")`` → ``['bob', 'robert']``; ``aliases("luis angel")`` also holds ``'luis'``.
    """
    if not name:
        return []
    forms = _formal_forms()
    tokens = {name}
    if " " in name:
        tokens.add(name.split(" ", 1)[0])
    out = set(tokens)
    for t in tokens:
        out |= forms.get(t, frozenset())
    return sorted(out)


@cache
def _nicknames() -> dict[str, frozenset[str]]:
    """formal name → the nicknames that stand for it (the inverse of ``_formal_forms``)."""
    out: dict[str, set[str]] = defaultdict(set)
    for nickname, formal in _formal_forms().items():
        for f in formal:
            out[f].add(nickname)
    return {k: frozenset(v) for k, v in out.items()}


def alias_neighbours(alias_set: list[str] | None) -> list[str]:
    """Every name whose alias set meets ``alias_set`` (an ``aliases`` result) — the names a first name with
    that alias set is an alias of: the set itself and the nicknames of its names (sorted). The hub encodes
    these for a plaintext record to meet an encoded nickname (``cilink.link.encodings``).

    Example: ``alias_neighbours(aliases("katherine"))`` holds ``'kay'`` and ``'kathy'``.
    """
    if not alias_set:
        return []
    nicknames = _nicknames()
    out = set(alias_set)
    for name in alias_set:
        out |= nicknames.get(name, frozenset())
    return sorted(out)


def phonetic(name: str | None) -> str | None:
    """Metaphone code of a standardized name (spaces ignored), for blocking; None for empty names."""
    if not name:
        return None
    code = jellyfish.metaphone(name.replace(" ", ""))
    return code or None


def formal_phonetic(name: str | None) -> str | None:
    """Metaphone code of a first name's formal form (the alphabetically first, for a nickname with several;
    the name itself otherwise): ``bob`` and ``robert`` → ``RBRT``; ``kay`` and ``katherine`` → ``K0RN``.
    Equal across the usual nicknames and most one-letter typos — what the encoder's salts need."""
    if not name:
        return None
    forms = _formal_forms().get(name)
    return phonetic(min(forms) if forms else name)


def _map_unique(values: pl.Series, fn, dtype: pl.DataType) -> pl.Series:  # type: ignore[no-untyped-def]
    """Apply a Python function once per distinct value (names repeat a lot) and broadcast back."""
    uniq = values.unique().drop_nulls()
    lookup = pl.DataFrame(
        {"_k": uniq, "_v": pl.Series([fn(v) for v in uniq.to_list()], dtype=dtype)},
        schema={"_k": values.dtype, "_v": dtype},
    )
    return values.to_frame("_k").join(lookup, on="_k", how="left", maintain_order="left")["_v"]


def alias_series(first_names: pl.Series) -> pl.Series:
    """Alias sets (list[str]) for a column of standardized first names."""
    # built flat (name, alias) and grouped: polars makes list columns from nested Python lists slowly
    names_, forms = [], []
    for name in first_names.unique().drop_nulls().to_list():
        for alias in aliases(name):
            names_.append(name)
            forms.append(alias)
    lookup = (pl.DataFrame({"_k": names_, "_v": forms}, schema={"_k": first_names.dtype, "_v": pl.String})
              .group_by("_k", maintain_order=True).agg("_v"))
    return first_names.to_frame("_k").join(lookup, on="_k", how="left", maintain_order="left")["_v"]


def phonetic_series(names: pl.Series, *, formal: bool = False) -> pl.Series:
    """Metaphone codes for a column of standardized names (``formal``: of their formal forms,
    ``formal_phonetic``)."""
    return _map_unique(names, formal_phonetic if formal else phonetic, pl.String())
