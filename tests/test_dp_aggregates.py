"""Noisy counts (differential privacy, OpenDP) for an aggregate audience with ``dp_epsilon``.

OpenDP's noise is secure and cannot be seeded: these tests assert properties (bounds in units of the noise
scale the manifest states, markings, budgets), never exact numbers.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cilink.disclosure.noisy_counts import noisy_counts
from cilink.disclosure.suppression import Cells
from cilink.export.detail import detailed_release
from cilink.export.release import export_release
from cilink.indicators.compute import register_indicators
from cilink.indicators.definitions import indicator_definitions
from cilink.indicators.noisy import noisy_queries
from cilink.ledger import Ledger
from cilink.report.noisy import QUERIES
from tests.conftest import TEST_SECRET, run_cli
from tests.release_fixtures import PARTNERS, build_release_workspace, fixture_config

EPSILON = 10.0
#: the fixture's people have at most 6 school years (and fewer exits): no unit is truncated away
MAX_UNITS = 6
MIN_CELL = 11
AUDIENCES = f"""
[[export.audiences]]
id = "funders"
tier = "aggregate"
secret_env = "FUNDERS_SECRET"

[[export.audiences]]
id = "public"
tier = "aggregate"
secret_env = "PUBLIC_SECRET"
dp_epsilon = {EPSILON}
dp_max_units = {MAX_UNITS}
"""
#: P(|discrete Laplace(s)| > 15 s) < 1e-6: a noisy count (or a sum of two) further off than this is a bug
BOUND = 15


def _config_check(tmp_path: Path, audience: str, export: str = "") -> tuple[int, str]:
    path = tmp_path / "cilink.toml"
    text = fixture_config(audience, research=False)
    if export:
        text = text.replace("[export]\n", f"[export]\n{export}\n")
    path.write_text(text, encoding="utf-8")
    done = run_cli("config", "check", path)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(("audience", "export"), [
    ('tier = "deidentified"\ndp_epsilon = 1.0', ""),  # record-level tier
    ("dp_epsilon = 1.0", ""),  # no tier: [export].tier, deidentified by default
    ('tier = "aggregate"\ndp_epsilon = 0', ""),  # ε must be > 0
    ('tier = "aggregate"\ndp_epsilon = -1.5', ""),
    ('tier = "aggregate"\ndp_max_units = 3', ""),  # dp_max_units without dp_epsilon
])
def test_dp_settings_are_validated_naming_the_key(tmp_path, audience, export):
    code, out = _config_check(tmp_path, f'[[export.audiences]]\nid = "public"\nsecret_env = "PUBLIC_SECRET"\n'
                                        f"{audience}\n", export)
    assert code == 2, out
    assert "audiences[public]" in out and re.search(r"dp_(epsilon|max_units)", out), out


@pytest.mark.parametrize(("audience", "export"), [
    ('tier = "aggregate"\ndp_epsilon = 1.0', ""),
    ("dp_epsilon = 0.5\ndp_max_units = 2", 'tier = "aggregate"'),  # the audience receives [export].tier
    ('tier = "aggregate"', ""),  # exact counts, as before
])
def test_dp_settings_accepted_on_the_aggregate_tier(tmp_path, audience, export):
    code, out = _config_check(tmp_path, f'[[export.audiences]]\nid = "public"\nsecret_env = "PUBLIC_SECRET"\n'
                                        f"{audience}\n", export)
    assert code == 0, out


def test_noisy_counts_scale_follows_the_contribution_bound():
    # OpenDP's discrete Laplace on counts: scale = (rows one person adds) / ε
    labels = ["a"] * 300 + ["b"] * 200 + ["not a category"] * 50
    for contributions, epsilon in ((1, 1.0), (3, 1.0), (3, 0.5)):
        counts, q = noisy_counts("t", labels, ["a", "b", "c"], contributions=contributions, epsilon=epsilon,
                                 bound="test")
        assert q.scale == pytest.approx(contributions / epsilon, rel=1e-6)
        assert q.epsilon == epsilon and q.accuracy_95 > q.scale
        assert set(counts) == {"a", "b", "c"}  # labels outside the categories are not counted
        for cat, exact in (("a", 300), ("b", 200), ("c", 0)):
            assert abs(counts[cat] - exact) <= BOUND * q.scale


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory):
    """One workspace, one exact aggregate release and one noisy one; the exact counts they stand for."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", TEST_SECRET)
        mp.setenv("FUNDERS_SECRET", "funders-secret-not-for-production")
        mp.setenv("PUBLIC_SECRET", "public-secret-not-for-production")
        fx = build_release_workspace(tmp_path_factory.mktemp("dp") / "ws", n_persons=400, seed=3,
                                     export_extra=AUDIENCES)
        exact = export_release(fx.ws, audience="funders", release_id="2026-q1-funders")
        noisy = export_release(fx.ws, audience="public", release_id="2026-q1-public")
        # the next exact release, on the same data, after the noisy one
        again = export_release(fx.ws, audience="funders", release_id="2026-q2-funders")
        cells = Cells(min_cell=MIN_CELL)
        defs = indicator_definitions(fx.ws.config)
        with detailed_release(fx.ws) as detail:
            rows = register_indicators(detail, defs, cells)
        truth = {(r.definition.id, r.period, r.breakdown, r.group): (
            cells.values[r.num] if r.num else None, cells.values[r.den]) for r in rows}
    return fx, exact.path, noisy.path, truth, defs, again.path


def _tables(manifest: dict) -> dict[str, dict]:
    return {t["name"]: t for t in manifest["differential_privacy"]["tables"]}


def test_manifest_records_epsilon_split_and_noise_scales(releases):
    fx, _, noisy, _, defs, _ = releases
    with Ledger(fx.ws.ledger_path) as ledger:
        spent = {e["inputs"].get("release_id"): e["inputs"].get("dp_epsilon") for e in ledger.audit_entries()
                 if e["action"] == "export" and e["outcome"] == "ok"}
    assert spent == {"2026-q1-funders": None, "2026-q1-public": EPSILON, "2026-q2-funders": None}  # the audit log
    manifest = json.loads((noisy / "manifest.json").read_text())
    dp = manifest["differential_privacy"]
    assert dp["epsilon"] == EPSILON
    tables = _tables(manifest)
    # the report's three queries and one per share indicator; medians spend nothing (they are withheld)
    assert set(tables) == set(QUERIES) | {f"indicator: {d.id}" for d in noisy_queries(defs)}
    assert sum(t["epsilon"] for t in tables.values()) == pytest.approx(EPSILON)
    assert dp["epsilon_per_table"] == pytest.approx(EPSILON / len(tables))
    per = EPSILON / len(tables)
    # scale = rows one person adds / ε of the table: the bound the manifest states in words
    assert tables["report: partner overlap"]["scale"] == pytest.approx(1 / per, rel=1e-6)
    assert tables["indicator: school_attendance"]["scale"] == pytest.approx(MAX_UNITS / per, rel=1e-6)
    assert tables["indicator: school_attendance_by_housing"]["scale"] == pytest.approx(2 * MAX_UNITS / per, rel=1e-6)
    assert tables["indicator: on_time_graduation"]["scale"] == pytest.approx(1 / per, rel=1e-6)  # one per person
    assert tables["report: linked vs. unlinked"]["scale"] == pytest.approx(6 * len(PARTNERS) / per, rel=1e-6)
    assert manifest["disclosure_control"]["rule"].startswith("Counts of persons are noisy")
    readme = (noisy / "README.md").read_text()
    assert "Noisy counts (differential privacy)" in readme and "n × ε" in readme
    assert "noisy_counts" in json.loads((noisy / "dictionary.json").read_text())


def test_noisy_indicators_differ_from_exact_but_stay_within_the_stated_scale(releases):
    _, _, noisy, truth, _, _ = releases
    tables = _tables(json.loads((noisy / "manifest.json").read_text()))
    table = pl.read_csv(noisy / "indicators.csv", schema_overrides={"period": pl.String, "group": pl.String})
    assert table.get_column("noisy").to_list() == (table.get_column("statistic") == "share").to_list()
    errors = []
    scale = max(t["scale"] for n, t in tables.items() if n.startswith("indicator: "))
    for r in table.filter(pl.col("statistic") == "share").iter_rows(named=True):
        num, den = truth[(r["indicator"], r["period"], r["breakdown"], r["group"])]
        for shown, exact, terms in ((r["numerator"], num, 1), (r["denominator"], den, 2)):
            if shown is None:
                continue
            assert shown >= MIN_CELL  # a noisy count below min_cell is withheld
            assert abs(shown - exact) <= BOUND * terms * scale, (r, shown, exact)
            errors.append((shown - exact) / scale)
        if r["numerator"] is not None and r["denominator"] is not None:
            assert 0 <= r["value"] <= 100 and r["numerator"] <= r["denominator"]
    assert len(errors) > 20
    assert any(e != 0 for e in errors), "no noisy count differs from the exact one"
    # the noise is of the stated size: mean |error| of a discrete Laplace(s) is about s (sums: about 1.5 s)
    assert float(np.mean(np.abs(errors))) < 3
    # medians are not released under differential privacy
    medians = table.filter(pl.col("statistic") == "median")
    assert medians.height and medians.get_column("value").null_count() == medians.height


def _noisy_cells(page: str) -> list[int]:
    return [int(v.replace(",", "")) for v in re.findall(r'<td class="n c dp">≈(-?[\d,]+)</td>', page)]


def test_report_marks_every_noisy_figure_and_overlap_stays_close(releases):
    fx, _, noisy, _, _, _ = releases
    page = (noisy / "report.html").read_text()
    assert f"noisy (differential privacy, ε = {EPSILON:g} for this release" in page
    values = _noisy_cells(page)
    assert len(values) > 20 and all(v >= MIN_CELL for v in values)
    # no unmarked count in the person tables: the overlap table's counts are all marked or withheld
    overlap = page[page.index("Partner overlap: persons"):]
    overlap = overlap[:overlap.index("</table>")]
    assert not re.search(r'<td class="n c">', overlap)
    manifest = json.loads((noisy / "manifest.json").read_text())
    scale = _tables(manifest)["report: partner overlap"]["scale"]
    per = fx.crosswalk.group_by("person_id").agg(pl.col("partner").unique().sort().alias("ps"))
    exact = {" + ".join(ps): n for ps, n in per.group_by("ps").len().iter_rows()}
    partners = sorted(PARTNERS.values())
    for k in range(1, len(partners) + 1):
        for combo in itertools.combinations(partners, k):
            label = " + ".join(combo)
            m = re.search(re.escape(f"<td>{label}</td>") + r'<td class="n">\d+</td><td class="n (?:c dp">≈(-?[\d,]+)'
                          r'|s">\*)</td>', overlap)
            assert m, label
            if m.group(1) is not None:
                assert abs(int(m.group(1).replace(",", "")) - exact.get(label, 0)) <= BOUND * scale


def test_without_dp_epsilon_the_release_is_exact_and_unmarked(releases):
    _, exact, _, _, _, _ = releases
    manifest = json.loads((exact / "manifest.json").read_text())
    assert "differential_privacy" not in manifest
    assert "noisy" not in pl.read_parquet_schema(exact / "indicators.parquet")
    page = (exact / "report.html").read_text()
    assert "≈" not in page and "differential privacy" not in page
    assert "noisy_counts" not in json.loads((exact / "dictionary.json").read_text())


def test_a_noisy_release_does_not_change_what_the_next_exact_release_prints(releases):
    # the noisy release printed no exact count of persons: the next exact release is checked against the exact
    # release before it (carried forward), and prints the same on the same data
    _, exact, _, _, _, again = releases
    manifest = json.loads((again / "manifest.json").read_text())
    assert manifest["disclosure_control"]["checked_against"] == "2026-q1-public"
    first, second = (pl.read_parquet(r / "indicators.parquet") for r in (exact, again))
    assert first.get_column("suppressed").sum() > 0
    assert first.equals(second)
