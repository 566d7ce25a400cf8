"""The deidentified gate's search (cilink.export.disclosure.protect) on a synthetic register.

These are tests of the search itself, not attacks (tests/test_deidentified_tier.py attacks the release from
the attacker's files): the levels it picks meet the targets, no attribute could be released one level
finer without breaking them, and the codes the search and the partner attack compare are the codes of the
release views.
"""

from __future__ import annotations

import polars as pl
import pytest

from cilink.export.deidentified import release_tables, targets_from
from cilink.export.disclosure import Codes, Targets, _Search, dense_codes, protect, view_codes
from cilink.export.generalize import top_code_cutoff
from cilink.export.measures import ATTRIBUTES, Measures, build_measures
from cilink.export.person_keys import person_keys
from cilink.export.record_risk import record_risk
from cilink.export.sources import as_of_date, load_sources
from tests.release_fixtures import build_release_workspace


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory) -> tuple[Measures, Targets, object]:
    fx = build_release_workspace(tmp_path_factory.mktemp("search") / "ws", n_persons=3000, seed=11)
    ws = fx.ws
    sources = load_sources(ws, lambda ids: person_keys(ids, b"k" * 32))
    as_of = as_of_date(sources.events)
    partners = tuple(sorted(p.id for p in ws.config.partners))
    measures = build_measures(sources.events, sources.n_persons, as_of, partners, top_code_cutoff(as_of))
    targets, failures = targets_from(ws.config.export)
    assert not failures
    return measures, targets, sources


def test_row_table_codes_are_the_codes_of_their_views(register: tuple[Measures, Targets, object]) -> None:
    measures, _, _ = register
    codes = Codes(measures)
    for attr in (a for a in ATTRIBUTES if a.rows):
        for level in range(attr.top):
            expected = view_codes(attr, measures.view(attr, level), measures.n)
            assert (codes(attr, level) == expected).all(), (attr.name, level)
            assert (expected != 0).sum() > 100, (attr.name, level)  # the fixture has rows of every table
        assert not codes(attr, attr.top).any()


def test_person_codes_are_the_codes_of_their_views(register: tuple[Measures, Targets, object]) -> None:
    """Codes computed once per distinct raw value and gathered are the codes of the full views."""
    measures, _, _ = register
    codes = Codes(measures)
    for attr in (a for a in ATTRIBUTES if not a.rows):
        for level in range(attr.top):
            expected = view_codes(attr, measures.view(attr, level), measures.n)
            assert (codes(attr, level) == expected).all(), (attr.name, level)


def test_dense_codes_keep_nulls_apart() -> None:
    for values in (pl.Series("v", [1990, None, 1985, 1990, None], dtype=pl.Int32),
                   pl.Series("v", ["b", None, "a", "b", None])):
        distinct, inverse = dense_codes(values)
        assert distinct.gather(inverse).equals(values, check_names=False)
        assert distinct.null_count() == 1 and distinct.len() == 3


def test_search_meets_the_targets_on_the_written_tables(register: tuple[Measures, Targets, object]) -> None:
    measures, targets, sources = register
    protected = protect(measures, targets)
    tables = release_tables(measures, protected, sources.person_keys)
    risk = record_risk(tables)["joined_record"]
    assert risk["min_class_size"] >= targets.k
    assert risk["equivalence_classes"] / risk["persons"] <= targets.mean_risk
    assert sum(lvl < a.top for a in ATTRIBUTES for lvl in [protected.levels[a.name]]) >= 3  # not all withheld


def test_no_attribute_could_be_released_finer(register: tuple[Measures, Targets, object]) -> None:
    """The search stops where it must: one level finer on any attribute breaks the targets."""
    measures, targets, _ = register
    protected = protect(measures, targets)
    search = _Search(measures, targets)
    assert search.acceptable(protected.levels, protected.suppressed, protected.withheld)
    for attr in ATTRIBUTES:
        level = protected.levels[attr.name]
        if level == 0:
            continue
        finer = {**protected.levels, attr.name: level - 1}
        suppressed, withheld = search.suppress(finer)
        assert not search.acceptable(finer, suppressed, withheld), attr.name


def test_pinned_levels_are_kept_and_priorities_steer_the_search(register: tuple[Measures, Targets, object]) -> None:
    measures, targets, _ = register
    pinned = Targets(k=targets.k, pinned={"geography": 1})  # state
    protected = protect(measures, pinned)
    assert protected.levels["geography"] == 1
    # ranking geography first keeps it at least as fine as the default ranking does
    ranked = protect(measures, Targets(k=targets.k, priorities=("geography",)))
    default = protect(measures, Targets(k=targets.k))
    assert ranked.levels["geography"] <= default.levels["geography"]


def test_a_partners_latest_values_are_those_of_a_stable_sort() -> None:
    """``_latest`` (no text sorted) gives what sorting by person and time, then taking each column's last
    non-null value, gives — for rows in or out of order, with null times and null values."""
    import numpy as np

    from cilink.export.measures import _latest, _order_key

    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(0, 40))
        person = rng.integers(0, 6, n).astype(np.int32)
        if trial % 2:
            person.sort()

        def nulls(values: pl.Series, share: float) -> pl.Series:
            kept = pl.Series(rng.random(len(values)) >= share)
            return pl.select(pl.when(kept).then(values)).to_series().alias(values.name)

        frame = pl.DataFrame([pl.Series("person_idx", person), nulls(pl.Series("_t", rng.integers(0, 4, n)), 0.2),
                              nulls(pl.Series("a", [f"s{i}" for i in rng.integers(0, 4, n)]), 0.4 * (trial % 3 > 0)),
                              nulls(pl.Series("b", rng.integers(0, 3, n).astype(np.int32)), 0.5)])
        expected = (frame.sort("person_idx", "_t", nulls_last=False, maintain_order=True)
                    .group_by("person_idx", maintain_order=True).agg(pl.col("a", "b").drop_nulls().last()))
        assert _latest(frame.select("person_idx", "a", "b"), _order_key(frame)).equals(expected), trial


def test_small_classes_are_those_of_the_class_sizes() -> None:
    import numpy as np

    from cilink.export.disclosure import class_sizes, in_small_classes

    rng = np.random.default_rng(1)
    for n in (0, 1, 50, 5000):
        signature = rng.integers(0, max(n // 4, 1), n).astype(np.uint64)
        for k in (1, 2, 5):
            assert (in_small_classes(signature, k) == (class_sizes(signature) < k)).all()
