"""Indicators on a hand-built release whose every value is computed by hand; small-cell suppression rules."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cilink.config import CilinkConfig, parse_config
from cilink.disclosure.suppression import Cells, determined, subtraction_attack
from cilink.errors import ConfigError
from cilink.export.open import open_release
from cilink.indicators.compute import compute_indicators
from cilink.indicators.definitions import indicator_definitions

# --- a tiny release, written by hand ---------------------------------------------------------------------------

EVENT_SCHEMA = {
    "person_key": pl.String, "partner": pl.String, "entry_month": pl.String, "exit_month": pl.String,
    "school_year": pl.String, "grade_level": pl.String, "days_enrolled": pl.Int16, "days_absent": pl.Int16,
    "chronically_absent": pl.Boolean, "graduated": pl.Boolean, "program": pl.String, "employed_q2": pl.Boolean,
    "employed_q4": pl.Boolean, "earnings_q2": pl.Int32, "credential_attained": pl.Boolean,
}


def _school(p: str, year: str, grade: str, enrolled: int | None, absent: int | None, grad: bool = False) -> dict:
    return {"person_key": p, "partner": "schools", "school_year": year, "grade_level": grade,
            "days_enrolled": enrolled, "days_absent": absent, "graduated": grad}


def _work(p: str, exit_month: str | None, q2: bool | None, q4: bool | None, earnings: int | None,
          credential: bool | None) -> dict:
    return {"person_key": p, "partner": "wb", "entry_month": "2022-01", "exit_month": exit_month,
            "program": "WIOA Adult", "employed_q2": q2, "employed_q4": q4, "earnings_q2": earnings,
            "credential_attained": credential}


def _housing_event(p: str, entry: str) -> dict:
    return {"person_key": p, "partner": "hmis", "entry_month": entry}


def _spell(p: str, program: str, start: str, end: str | None, outcome: str, seq: int = 1) -> dict:
    return {"person_key": p, "domain": "housing", "partner": "hmis", "program": program, "spell_seq": seq,
            "start_month": start, "end_month": end, "ongoing": end is None, "n_events": 1, "outcome": outcome,
            "exited_to_permanent_housing": outcome == "permanent"}


SCHOOL = [
    _school("A", "2023-24", "5", 100, 5), _school("A", "2023-24", "5", 80, 15),  # 20/180 = 11% → absent
    _school("B", "2023-24", "7", 180, 9),  # 5%
    _school("C", "2023-24", "3", 0, 0),  # no enrolled days: attendance unknown
    _school("D", "2022-23", "8", 170, 20),  # 11.8% → absent
    # E, F, G: no attendance reported (not in the attendance measure), only grades and graduation
    *[_school("E", f"{2020 + i}-{21 + i}", str(9 + i), None, None, grad=i == 3) for i in range(4)],  # on time
    *[_school("F", f"{2020 + i}-{21 + i}", str(min(9 + i, 12)), None, None, grad=i == 4) for i in range(5)],  # late
    _school("G", "2022-23", "9", None, None),  # cohort 2025-26: not over yet
]
WORKFORCE = [
    _work("H", "2023-03", True, True, 5000, True),
    _work("I", "2023-07", False, None, 0, False),
    _work("J", "2023-11", True, False, 7000, None),
    _work("K", None, None, None, None, None),  # still enrolled: not an exit
]
HOUSING_EVENTS = [_housing_event("H", "2022-01"), _housing_event("J", "2024-02"), _housing_event("B", "2023-10")]
SPELLS = [
    _spell("L", "es", "2022-01", "2022-06", "permanent"), _spell("L", "es", "2022-10", "2023-02", "homeless", 2),
    _spell("M", "rrh", "2022-03", "2022-09", "permanent"), _spell("M", "so", "2023-06", None, "enrolled"),
    _spell("N", "th", "2023-01", "2023-05", "temporary"),
    _spell("O", "es", "2024-09", "2025-01", "permanent"),
]


def write_release(root: Path) -> Path:
    """A release directory with just the columns the indicator units read (as_of 2025-06)."""
    root.mkdir(parents=True)
    for domain, rows in (("school", SCHOOL), ("workforce", WORKFORCE), ("housing", HOUSING_EVENTS)):
        part = root / "events" / f"domain={domain}"
        part.mkdir(parents=True)
        pl.DataFrame(rows, schema=EVENT_SCHEMA).write_parquet(part / "part-0.parquet")
    pl.DataFrame(SPELLS).write_parquet(root / "spells.parquet")
    people = sorted({r["person_key"] for r in [*SCHOOL, *WORKFORCE, *HOUSING_EVENTS, *SPELLS]})
    pl.DataFrame({"person_key": people, "sex": ["F"] * len(people), "race_ethnicity": ["white"] * len(people),
                  "birth_year": [None] * len(people), "partners": [["x"]] * len(people),
                  "domains": [["school"]] * len(people)},
                 schema_overrides={"birth_year": pl.Int16}).write_parquet(root / "persons.parquet")
    # panel: B was in an HMIS project during 2023-24 (from the housing event above)
    panel = [{"person_key": p, "school_year": sy, "year": int(sy[:4]), "in_hmis": p == "B" and sy == "2023-24",
              "in_workforce_program": False} for p in ("A", "B", "C") for sy in ("2023-24",)]
    pl.DataFrame(panel).write_parquet(root / "panel.parquet")
    (root / "manifest.json").write_text(json.dumps({"release_id": "hand", "as_of": "2025-06"}))
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return open_release(write_release(tmp_path_factory.mktemp("rel") / "hand"))


def _values(table: pl.DataFrame) -> dict[tuple[str, str, str, str], tuple[int | None, int | None, float | None]]:
    return {(i, p, b, g): (n, d, v) for i, p, b, g, n, d, v in table.select(
        "indicator", "period", "breakdown", "group", "numerator", "denominator", "value").iter_rows()}


HAND = {  # (indicator, period, breakdown, group): (numerator, denominator, value) — worked out in the comments above
    ("school_attendance", "2023-24", "all", "all"): (1, 2, 50.0),  # A absent (over the year), B not; C unknown
    ("school_attendance", "2022-23", "all", "all"): (0, 1, 0.0),
    ("school_attendance_by_housing", "2023-24", "hmis_enrolled", "true"): (1, 1, 100.0),
    ("school_attendance_by_housing", "2023-24", "hmis_enrolled", "false"): (0, 1, 0.0),
    ("on_time_graduation", "2023-24", "all", "all"): (1, 2, 50.0),  # E on time, F a year late; G not due yet
    ("employment_q2", "2023", "all", "all"): (2, 3, 66.7),
    ("employment_q4", "2023", "all", "all"): (1, 2, 50.0),
    ("median_earnings_q2", "2023", "all", "all"): (None, 2, 6000.0),  # median of 5000 and 7000
    ("credential_attainment", "2023", "all", "all"): (1, 2, 50.0),
    ("employment_q2_by_housing_history", "2023", "housing_history", "true"): (1, 1, 100.0),  # H
    ("employment_q2_by_housing_history", "2023", "housing_history", "false"): (1, 2, 50.0),  # I, J (after exit)
    ("exits_to_permanent_housing", "2022", "all", "all"): (2, 2, 100.0),
    ("exits_to_permanent_housing", "2023", "all", "all"): (0, 2, 0.0),
    ("exits_to_permanent_housing", "2025", "all", "all"): (1, 1, 100.0),
    ("housing_stability_6m", "2022", "all", "all"): (1, 2, 50.0),  # L back in 4 months, M after 9
    ("housing_stability_12m", "2022", "all", "all"): (0, 2, 0.0),
    ("housing_stability_24m", "2022", "all", "all"): (0, 2, 0.0),
}


def test_indicators_match_the_hand_computation(release):
    table, _ = compute_indicators(release, indicator_definitions(CilinkConfig()), min_cell=1)
    got = _values(table)
    for key, want in HAND.items():
        assert got[key] == want, key
    # no period appears where the population is empty (O's 2025 exit is not followed for 6 months yet)
    assert ("housing_stability_6m", "2025", "all", "all") not in got
    assert not table.get_column("suppressed").any()


def test_small_cells_are_suppressed_with_their_complements(release):
    table, _ = compute_indicators(release, indicator_definitions(CilinkConfig()), min_cell=11)
    shown = [v for v in table.select(pl.concat_list("numerator", "denominator").explode()).to_series().to_list()
             if v is not None]
    assert all(v == 0 or v >= 11 for v in shown)
    assert table.filter(pl.col("denominator").is_null()).height > 0
    assert table.filter(pl.col("value").is_not_null()).height == 0  # every rate here rests on a small count


def test_project_indicators_override_and_extend():
    cfg = parse_config("""
[[indicators]]
id = "school_attendance"
by = ["grade_level"]

[[indicators]]
id = "employment_q4"
enabled = false

[[indicators]]
id = "young_exiters_employed"
title = "Young adults employed after exit"
unit = "workforce_exit"
population = "employed_q2 IS NOT NULL AND age_at_exit < 25"
numerator = "employed_q2"
""")
    defs = {d.id: d for d in indicator_definitions(cfg)}
    assert defs["school_attendance"].by == ["grade_level"]
    assert defs["school_attendance"].numerator == "NOT chronically_absent"  # the rest is the default's
    assert "employment_q4" not in defs
    assert defs["young_exiters_employed"].unit == "workforce_exit"


def test_config_errors_name_the_indicator_key(release):
    with pytest.raises(ConfigError) as e:
        parse_config('[[indicators]]\nid = "x"\nunit = "school_year"\nnumerator = "a ==="\n')
    assert "indicators[x].numerator" in str(e.value)
    cfg = parse_config('[[indicators]]\nid = "x"\nunit = "school_year"\nnumerator = "no_such_column"\n')
    with pytest.raises(ConfigError) as e:
        compute_indicators(release, indicator_definitions(cfg), min_cell=1)
    assert "indicators[x].numerator" in str(e.value) and "no_such_column" in str(e.value)


# --- complementary suppression on crafted tables ---------------------------------------------------------------


def _two_way(table: list[list[int]], min_cell: int = 11) -> Cells:
    """A table with row, column and grand totals, every count printable."""
    cells = Cells(min_cell=min_cell)
    rows, cols = len(table), len(table[0])
    for i, j in itertools.product(range(rows), range(cols)):
        cells.add(("c", i, j), table[i][j])
    for i in range(rows):
        cells.add(("row", i), sum(table[i]))
        cells.total(("row", i), [("c", i, j) for j in range(cols)])
    for j in range(cols):
        cells.add(("col", j), sum(table[i][j] for i in range(rows)))
        cells.total(("col", j), [("c", i, j) for i in range(rows)])
    cells.add("all", sum(map(sum, table)))
    cells.total("all", [("row", i) for i in range(rows)])
    cells.total("all", [("col", j) for j in range(cols)])
    return cells


def _assert_protected(cells: Cells) -> None:
    protection = cells.protect()
    published = protection.published()
    # directly: no printed count of 1 … min_cell − 1
    assert not [k for k, v in published.items() if 0 < v < cells.min_cell]
    # by subtraction, relation after relation, as a reader with a calculator would
    recovered = subtraction_attack(published, cells.relations)
    assert not [k for k, v in recovered.items() if 0 < v < cells.min_cell], recovered
    # and by any combination of the relations (linear algebra over the unknown cells)
    keys = list(cells.values)
    unknown = [k for k in keys if k not in published]
    a = np.array([[rel.get(k, 0) for k in unknown] for rel in cells.relations], dtype=float)
    fixed = determined(a)
    assert not [k for k, f in zip(unknown, fixed, strict=True) if f and cells.sensitive(k)]
    if cells.targets:  # nested differences: the check above does not see what those complements protect
        return
    # and no more than needed: printing any one withheld count that is not small would give a small one away
    for extra in [k for k in protection.suppressed if not cells.sensitive(k)]:
        rest = [k for k in unknown if k != extra]
        b = np.array([[rel.get(k, 0) for k in rest] for rel in cells.relations], dtype=float)
        assert any(f and cells.sensitive(k) for k, f in zip(rest, determined(b), strict=True)), (
            f"{extra} ({cells.values[extra]}) is withheld but protects nothing")


@pytest.mark.parametrize("table", [
    [[20, 3, 30], [15, 40, 25], [12, 14, 50]],  # one small cell
    [[5, 40], [60, 70]],  # 2 × 2: the whole inner table must go
    [[1, 2, 3], [50, 60, 70], [80, 90, 100]],  # a small row whose total is small too
    [[0, 7, 30, 44], [25, 0, 31, 12], [9, 33, 0, 41]],  # zeros are printed, small cells are not
    # one complement chosen early is made unnecessary by a later one (the greedy choice alone withholds one more)
    [[51, 6, 0, 6], [25, 71, 34, 42], [0, 0, 16, 42], [80, 0, 2, 48]],
    [[17, 3, 0, 38], [10, 59, 15, 0], [74, 3, 61, 4], [67, 0, 57, 6]],
])
def test_complementary_suppression_two_way(table):
    _assert_protected(_two_way(table))


def test_hidden_complement_of_a_rate_is_protected():
    # 3 of 200 students chronically absent: printing 197 and 200 would give the 3 away
    cells = Cells(min_cell=11)
    cells.add("den", 200)
    cells.add("num", 197)
    cells.split("den", "num", "absent")
    protection = cells.protect()
    assert protection.suppressed & {"den", "num"}
    _assert_protected(cells)


def test_atoms_of_overlapping_populations():
    # two indicators over the same units: the difference of printed counts is a count of people too
    units = pl.DataFrame({"pop_a": [True] * 40 + [False] * 20, "pop_b": [True] * 34 + [False] * 26,
                          "num_a": [True] * 30 + [False] * 30})
    cells = Cells(min_cell=11)
    keys = ["pop_a", "pop_b", "num_a"]
    for k in keys:
        cells.add(k, int(units.get_column(k).sum()))
    cells.atoms("u", keys, units.select(keys))
    _assert_protected(cells)  # pop_a − pop_b = 6 and pop_b − num_a = 4 must stay hidden
    assert cells.protect().suppressed


def test_relations_must_hold():
    cells = Cells(min_cell=11)
    cells.add("a", 5)
    cells.add("b", 6)
    with pytest.raises(ValueError):
        cells.total("a", ["b"])


# --- across releases --------------------------------------------------------------------------------------------


def _units_release(group: list[str], rest: list[str], earlier=None, release_id: str = "r"):
    """A release printing three counts of persons (total = group + rest), related through their ids."""
    ids = group + rest
    frame = pl.DataFrame({"_id": ids, "total": [True] * len(ids),
                          "group": [i in group for i in ids], "rest": [i in rest for i in ids]})
    cells = Cells(min_cell=11)
    keys = ["total", "group", "rest"]
    for k in keys:
        cells.add(k, int(frame.get_column(k).sum()))
    cells.units("persons", keys, frame.get_column("_id"), frame.select(keys))
    if earlier is not None:
        cells.earlier(earlier)
    protection = cells.protect()
    return protection, cells.snapshot(protection, release_id)


def test_a_later_release_cannot_be_subtracted_from_an_earlier_one():
    group, rest = [f"p{i}" for i in range(25)], [f"q{i}" for i in range(15)]
    first, state1 = _units_release(group, rest, release_id="r1")
    assert first.published() == {"total": 40, "group": 25, "rest": 15}
    # three persons join the group: printed as they are, 43 − 40 and 28 − 25 would give them away
    newcomers = ["n1", "n2", "n3"]
    alone, _ = _units_release(group + newcomers, rest)
    assert alone.published() == {"total": 43, "group": 28, "rest": 15}
    second, state2 = _units_release(group + newcomers, rest, earlier=state1, release_id="r2")
    shown = {k: v for k, v in second.published().items() if isinstance(k, str)}
    assert "total" not in shown and "group" not in shown and shown.get("rest") == 15
    # nothing changes before the third release: the first release's counts are still known, and the second's
    # state carries them, so 43 − 40 stays out of reach
    third, state3 = _units_release(group + newcomers, rest, earlier=state2, release_id="r3")
    shown = {k: v for k, v in third.published().items() if isinstance(k, str)}
    assert "total" not in shown and "group" not in shown
    carried = {k[1] for k in state3.cells if isinstance(k, tuple)}
    assert carried == {"r1"}  # r2's withheld total and group are the same populations as r3's: not piled up
    # the persons who left are a count too: a release without them is checked against them
    later, _ = _units_release(group[3:], rest, earlier=state1, release_id="r4")
    shown = {k: v for k, v in later.published().items() if isinstance(k, str)}
    assert "total" not in shown and "group" not in shown


def test_suppression_state_is_kept_only_once_its_release_is_published(tmp_path):
    import types

    from cilink.report import history

    ws = types.SimpleNamespace(restricted=tmp_path / ".cilink", releases_dir=tmp_path / "releases")
    _, state = _units_release([f"p{i}" for i in range(25)], [f"q{i}" for i in range(15)], release_id="r1")
    history.stage(ws, state, "funders")  # type: ignore[arg-type]
    assert history.latest(ws) is None  # staged, but its release was never published
    (ws.releases_dir / "r1").mkdir(parents=True)
    (ws.releases_dir / "r1" / "manifest.json").write_text("{}")
    kept = history.latest(ws)  # e.g. a crash between publishing and commit: committed now
    assert kept is not None and kept.release_id == "r1"
    assert dict(kept.cells) == dict(state.cells) and kept.printed == state.printed
    assert kept.relations == state.relations
    assert {s: k for s, (k, _) in kept.members.items()} == {s: k for s, (k, _) in state.members.items()}
    assert history.commit(ws, "r1")  # export's own commit afterwards is a no-op
