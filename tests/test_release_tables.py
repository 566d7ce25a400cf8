"""Release tables on hand-made events: spells merge and outcomes, panel flags by quarter, persons' attributes."""

from __future__ import annotations

import datetime as dt

import polars as pl

from cilink.config import ExportSettings
from cilink.export.events import build_events
from cilink.export.generalize import release_plan
from cilink.export.panel import build_panel
from cilink.export.spells import build_spells
from cilink.schemas import polars_schema

D = dt.date
AS_OF = D(2025, 6, 30)
PLAN = release_plan(ExportSettings(event_date_precision="month"))  # month columns, quarterly panel
PARTNERS = ("city-schools", "coc-hmis", "workforce-board")


def _frame(domain: str, partner: str, rows: list[dict]) -> pl.DataFrame:
    schema = {k: v for k, v in polars_schema(domain, with_meta=False).items()
              if k not in ("first_name", "middle_name", "last_name", "name_suffix", "ssn", "ssn_last4", "street",
                           "unit", "city", "state", "phone", "email", "source_person_id")}
    df = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)
    return df.with_columns(pl.lit(partner).alias("partner"),
                           pl.Series("person_idx", [r.get("person_idx", 0) for r in rows], dtype=pl.Int32))


EVENTS = {
    "school": _frame("school", "city-schools", [
        {"school_year": "2023-24", "entry_date": D(2023, 8, 30), "exit_date": D(2024, 6, 14), "days_enrolled": 180,
         "days_present": 150, "grade_level": "7"},
        {"school_year": "2024-25", "entry_date": D(2024, 8, 29), "exit_date": None, "days_enrolled": 170,
         "days_present": 168, "grade_level": "8"},
    ]),
    "workforce": _frame("workforce", "workforce-board", [
        {"program": "WIOA Adult", "entry_date": D(2020, 1, 1), "exit_date": D(2020, 2, 1)},
        {"program": "WIOA Adult", "entry_date": D(2020, 2, 15), "exit_date": D(2020, 3, 1), "employed_q2": True,
         "employed_q4": False, "earnings_q2": 4321.0},
        {"program": "WIOA Adult", "entry_date": D(2023, 9, 1), "exit_date": D(2023, 11, 20), "employed_q2": True},
        {"program": "WIOA Adult", "entry_date": D(2025, 3, 1), "exit_date": None},
    ]),
    "housing": _frame("housing", "coc-hmis", [
        {"project_type": 1, "entry_date": D(2024, 1, 10), "exit_date": D(2024, 2, 1), "destination": 410,
         "destination_category": "permanent"},
    ]),
}


def test_spells_merge_short_gaps_and_read_outcomes():
    spells = build_spells(EVENTS, PLAN, PARTNERS, AS_OF)
    wf = spells.filter(pl.col("domain") == "workforce").sort("spell_seq")
    assert wf["spell_seq"].to_list() == [1, 2, 3]
    assert wf["start_month"].to_list() == ["2020-01", "2023-09", "2025-03"]
    assert wf["end_month"].to_list() == ["2020-03", "2023-11", None]
    assert wf["n_events"].to_list() == [2, 1, 1]
    assert wf["outcome"].to_list() == ["exited_employed", "exited_employed", "enrolled"]
    assert wf["ongoing"].to_list() == [False, False, True]
    school = spells.filter(pl.col("domain") == "school")
    assert school.height == 1 and school["n_events"][0] == 2  # the summer break does not end a school spell
    assert school["outcome"][0] == "enrolled" and school["end_month"][0] is None
    housing = spells.filter(pl.col("domain") == "housing").row(0, named=True)
    assert housing["program"] == "es" and housing["outcome"] == "permanent"
    assert housing["exited_to_permanent_housing"] is True


def test_panel_flags_by_quarter():
    panel = build_panel(EVENTS, PLAN, AS_OF)
    rows = {r["period"]: r for r in panel.iter_rows(named=True)}
    assert min(rows) == "2020Q1" and max(rows) == "2025Q2"
    assert len(rows) == (2025 - 2020) * 4 + 2  # dense: gap quarters included
    assert rows["2021Q2"]["in_workforce_program"] is False and rows["2021Q2"]["in_school"] is False
    # 30 of 180 days missed: chronically absent through the 2023-24 school year; 2 of 170 in 2024-25: not
    assert rows["2023Q4"]["in_school"] and rows["2023Q4"]["chronically_absent"] is True
    assert rows["2024Q4"]["chronically_absent"] is False
    assert rows["2021Q1"]["chronically_absent"] is None
    assert rows["2023Q4"]["school_year"] == "2023-24" and rows["2024Q1"]["school_year"] == "2023-24"
    # HMIS emergency shelter in 2024Q1, exited to permanent housing that quarter
    assert rows["2024Q1"]["in_hmis"] and rows["2024Q1"]["in_hmis_es"] and not rows["2024Q1"]["in_hmis_rrh"]
    assert rows["2024Q1"]["exited_to_permanent_housing"] and not rows["2024Q2"]["exited_to_permanent_housing"]
    # workforce exits 2020Q1 (employed Q2 yes, Q4 no) and 2023Q4 (employed Q2 yes)
    assert rows["2020Q3"]["employed_q2_after_exit"] is True
    assert rows["2021Q1"]["employed_q4_after_exit"] is False
    assert rows["2024Q2"]["employed_q2_after_exit"] is True
    assert rows["2024Q3"]["employed_q2_after_exit"] is None


def test_events_generalize_and_derive():
    school = build_events("school", EVENTS["school"], PLAN, PARTNERS)
    assert school["entry_month"].to_list() == ["2023-08", "2024-08"]
    assert school["days_absent"].to_list() == [30, 2]
    assert school["chronically_absent"].to_list() == [True, False]
    wf = build_events("workforce", EVENTS["workforce"], PLAN, PARTNERS)
    assert wf["earnings_q2"].drop_nulls().to_list() == [4300]
    assert "entry_date" not in wf.columns


def test_generalize_dates_matches_generalize_date():
    from cilink.export.generalize import generalize_date, generalize_dates

    days = pl.Series("d", [D(2020, 1, 31), None, D(1901, 12, 1), D(2024, 2, 29), D(2025, 6, 30)])
    far = pl.Series("d", [0, 300_000], dtype=pl.Int32).cast(pl.Date)  # too wide a range for a look-up table
    for dates in (days, far, days.clear()):
        for precision in ("month", "year"):
            expected = dates.to_frame().select(generalize_date(pl.col("d"), precision)).to_series()
            assert generalize_dates(dates, precision).equals(expected)


def test_builders_do_not_depend_on_person_grouping():
    # load_sources hands rows over grouped by person; any other order must give the same tables
    import numpy as np

    rng = np.random.default_rng(1)
    people = {d: pl.concat([df.with_columns(pl.lit(p, dtype=pl.Int32).alias("person_idx")) for p in range(4)])
              for d, df in EVENTS.items()}
    shuffled = {d: df.sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1000))) for d, df in people.items()}
    assert build_spells(people, PLAN, PARTNERS, AS_OF).equals(build_spells(shuffled, PLAN, PARTNERS, AS_OF))
    assert build_panel(people, PLAN, AS_OF).equals(build_panel(shuffled, PLAN, AS_OF))
    for d in EVENTS:
        assert build_events(d, people[d], PLAN, PARTNERS).equals(build_events(d, shuffled[d], PLAN, PARTNERS))


def test_gate_distinct_values_are_exact():
    from cilink.export.privacy_gate import _distinct, distinct_values, union_distinct

    keys = pl.Series([f"{i:032x}" for i in range(0, 60_000, 7)])
    runs = pl.concat([keys, keys.head(500), keys.tail(800)])  # three sorted runs, like spells
    panel_like = pl.Series(["2020Q1", "2020Q2", "2021Q3"] * 1_000_000)
    for values in (keys, runs, runs.reverse(), runs.sample(fraction=1.0, shuffle=True, seed=3), panel_like,
                   pl.Series([3, 3, None, 1, 2, 2], dtype=pl.Int16)):
        expected = set(values.drop_nulls().to_list())
        for got in (_distinct(values), distinct_values(values), union_distinct([values, values.head(10)])):
            assert sorted(got.to_list()) == sorted(expected)
