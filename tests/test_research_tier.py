"""The research tier says what it is: pseudonymised personal data for a named recipient under a data-use
agreement, with its measured risk; the safe-harbor profile is Safe Harbor or says it is not (issue 18)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cilink.config import ExportSettings, ReleaseProfile
from cilink.errors import ConfigError
from cilink.export import export_release
from cilink.export.generalize import release_plan
from cilink.export.labels import tier_label
from cilink.export.record_risk import RecordRisk, class_figures, record_risk
from cilink.ledger import Ledger
from tests.release_fixtures import RESEARCH, build_release_workspace, fixture_config

SECRET = "test-secret-not-for-production"
LABEL = "pseudonymised personal data — not de-identified"
AGREEMENT = {"recipient": "Fixture State University, School of Public Health", "agreement": "DUA-FIXTURE-0001",
             "purpose": "evaluation of the cradle-to-career programmes (test fixture)", "expires": "2099-12-31"}
EXPIRED = ('[[export.audiences]]\nid = "old-study"\ntier = "research"\nsecret_env = "CILINK_SECRET"\n'
           'recipient = "A Past Study"\nagreement = "DUA-2019-7"\npurpose = "a finished study"\n'
           'expires = 2020-06-30\n')


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", SECRET)
        return build_release_workspace(tmp_path_factory.mktemp("research"), n_persons=600, seed=13,
                                       export_extra=EXPIRED)


@pytest.fixture(scope="module")
def release(fixture):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", SECRET)
        return export_release(fixture.ws, audience=RESEARCH, release_id="study")


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


# --- configuration -------------------------------------------------------------------------------------------

def test_research_audience_without_agreement_is_a_config_error(tmp_path, cli):
    ws = tmp_path / "ws"
    assert cli("init", ws).returncode == 0
    (ws / "cilink.toml").write_text(fixture_config(
        '[[export.audiences]]\nid = "uni"\ntier = "research"\nsecret_env = "UNI_SECRET"\nrecipient = "A University"\n',
        research=False))
    res = cli("-w", ws, "config", "check")
    assert res.returncode == 2, res.stderr
    assert "Error:" in res.stderr
    for key in ("agreement", "purpose", "expires"):
        assert key in res.stderr, key
    assert "recipient," not in res.stderr.split("needs", 1)[-1].split("(")[0], "recipient was given"
    # the same audience with the agreement complete passes
    (ws / "cilink.toml").write_text(fixture_config(
        '[[export.audiences]]\nid = "uni"\ntier = "research"\nsecret_env = "UNI_SECRET"\nrecipient = "A University"\n'
        'agreement = "DUA-1"\npurpose = "a study"\nexpires = 2099-01-01\n', research=False))
    assert cli("-w", ws, "config", "check").returncode == 0


def test_research_is_not_a_default_tier():
    with pytest.raises(ValueError, match="named audience"):
        ExportSettings(tier="research")


def test_an_expired_agreement_refuses_the_export(fixture, cli):
    res = cli("-w", fixture.ws.root, "export", "--audience", "old-study", "--release-id", "too-late",
              env={"CILINK_SECRET": SECRET})
    assert res.returncode == 2, res.stderr
    assert "expired" in res.stderr and "2020-06-30" in res.stderr
    assert not (fixture.ws.releases_dir / "too-late").exists()
    with pytest.raises(ConfigError):
        export_release(fixture.ws, audience="old-study", release_id="too-late")


# --- what the release says about itself ---------------------------------------------------------------------

def test_manifest_names_the_tier_label_and_agreement(release):
    m = _manifest(release.path)
    assert m["tier"] == "research" and m["label"] == LABEL == tier_label("research")
    assert m["data_use_agreement"] == AGREEMENT
    risk = m["risk"]
    assert risk["tables"] == ["persons.parquet", "events", "spells.parquet", "panel.parquet"]
    for part in ("joined_record", "persons_table"):
        f = risk[part]
        assert f["persons"] == m["row_counts"]["persons.parquet"]
        assert 0 < f["share_unique"] <= 1 and f["min_class_size"] >= 1
        assert f["mean_individual_risk"] == round(f["equivalence_classes"] / f["persons"], 4)
    # the joined record is at least as identifying as the persons table alone
    assert risk["joined_record"]["share_unique"] >= risk["persons_table"]["share_unique"]


def test_readme_says_not_de_identified_and_states_the_figures(release):
    readme = (release.path / "README.md").read_text()
    head = "\n".join(readme.splitlines()[:6])
    assert "Pseudonymised personal data — not de-identified" in head
    for value in AGREEMENT.values():
        assert value in readme
    risk = _manifest(release.path)["risk"]
    assert f"{100 * risk['joined_record']['share_unique']:.1f}%" in readme
    assert str(risk["persons_table"]["mean_individual_risk"]) in readme
    assert "De-identified longitudinal dataset" not in readme
    assert not re.search(r"k-anonymity[^.\n]*protect", readme, re.I)
    assert "does not stop two releases being matched" in readme  # no "cannot be joined" claim


def test_dictionary_says_not_de_identified(release):
    d = json.loads((release.path / "dictionary.json").read_text())
    assert d["tier"] == "research" and d["label"] == LABEL
    assert d["data_use_agreement"] == AGREEMENT
    assert d["risk"] == _manifest(release.path)["risk"]
    assert LABEL in d["notes"][0]
    md = (release.path / "DICTIONARY.md").read_text()
    assert "Pseudonymised personal data — not de-identified" in md.splitlines()[2]
    for value in AGREEMENT.values():
        assert value in md


def test_audit_log_names_the_recipient(fixture, release):
    with Ledger(fixture.ws.ledger_path) as ledger:
        rows = [e for e in ledger.audit_entries() if e["command"] == "export" and e["outcome"] == "ok"
                and e["details"].get("release_id") == "study"]
        (release_row,) = ledger.conn.execute("SELECT audience FROM releases WHERE release_id = 'study'").fetchone()
    assert len(rows) == 1 and release_row == RESEARCH
    entry = rows[0]
    assert entry["inputs"]["recipient"] == AGREEMENT["recipient"] == entry["details"]["recipient"]
    assert entry["inputs"]["agreement"] == AGREEMENT["agreement"]
    assert entry["inputs"]["tier"] == "research"


# --- the risk figures are what an analyst would count from the files ----------------------------------------

def _records_from_files(root: Path) -> Counter:
    """Each person's whole record, rebuilt from the release files alone (as any recipient could)."""
    tables = {"persons": pl.read_parquet(root / "persons.parquet"),
              "events": pl.read_parquet(root / "events", hive_partitioning=True),
              "spells": pl.read_parquet(root / "spells.parquet"), "panel": pl.read_parquet(root / "panel.parquet")}
    rows: dict[str, dict[str, Counter]] = {}  # a person's rows of each table, repeats counted
    for name, df in tables.items():
        cols = [c for c in df.columns if c != "person_key"]
        for key, *values in df.select("person_key", *cols).iter_rows():
            rows.setdefault(key, {}).setdefault(name, Counter())[tuple(
                tuple(v) if isinstance(v, list) else v for v in values)] += 1
    return Counter(tuple(frozenset(rec.get(t, Counter()).items()) for t in tables) for rec in rows.values())


def test_risk_figures_match_a_count_from_the_release_files(release):
    classes = _records_from_files(release.path)
    joined = _manifest(release.path)["risk"]["joined_record"]
    n = sum(classes.values())
    assert joined["persons"] == n
    assert joined["equivalence_classes"] == len(classes)
    assert joined["share_unique"] == round(sum(1 for c in classes.values() if c == 1) / n, 4)
    assert joined["min_class_size"] == min(classes.values())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["F", "M", None]), st.integers(0, 2)), min_size=1, max_size=25),
       st.lists(st.tuples(st.integers(0, 24), st.sampled_from(["a", "b", None]), st.integers(0, 1)), max_size=60),
       st.integers(1, 3))
def test_record_risk_matches_a_naive_count(persons, events, parts):
    """Property: parts in any split, repeated rows and nulls give the figures of a by-hand count of
    multisets (a row repeated is a different record from the row once)."""
    people = pl.DataFrame({"person_key": [f"p{i}" for i in range(len(persons))],
                           "sex": [s for s, _ in persons], "band": [b for _, b in persons]},
                          schema={"person_key": pl.String, "sex": pl.String, "band": pl.Int64})
    ev = pl.DataFrame([(f"p{i % len(persons)}", x, d) for i, x, d in events],
                      schema={"person_key": pl.String, "code": pl.String, "domain": pl.Int64}, orient="row")
    risk = RecordRisk()
    risk.add("persons.parquet", people)
    for p in range(parts):  # parts split by domain, as the events table is staged
        risk.add("events", ev.filter(pl.col("domain") % parts == p))
    got = risk.figures()
    assert got == record_risk({"persons.parquet": people, "events": ev})
    rows: dict[str, Counter] = {k: Counter() for k in people.get_column("person_key")}
    for k, x, d in ev.iter_rows():
        rows[k][(x, d)] += 1
    record = {k: (s, b, frozenset(rows[k].items())) for k, s, b in people.iter_rows()}
    sizes = Counter(record.values())
    n = len(record)
    assert got["joined_record"]["equivalence_classes"] == len(sizes)
    assert got["joined_record"]["share_unique"] == round(sum(1 for c in sizes.values() if c == 1) / n, 4)
    assert got["joined_record"]["min_class_size"] == min(sizes.values())
    alone = Counter((s, b) for s, b, _ in record.values())
    assert got["persons_table"]["equivalence_classes"] == len(alone)


def test_a_repeated_row_is_a_different_record():
    people = pl.DataFrame({"person_key": ["a", "b", "c"], "sex": ["F", "F", "F"]})
    ev = pl.DataFrame({"person_key": ["a", "b", "b", "c", "c"], "code": ["x", "x", "x", "x", "x"]})
    joined = record_risk({"persons.parquet": people, "events": ev})["joined_record"]
    assert joined["equivalence_classes"] == 2  # a (one x) alone; b and c (two x each) together
    assert joined["share_unique"] == round(1 / 3, 4)
    # a non-identifying column is left out; a table left without columns drops out, row counts and all
    assert record_risk({"persons.parquet": people, "events": ev}, exclude=frozenset({"code"}))[
        "joined_record"]["equivalence_classes"] == 1


def test_class_figures_of_an_empty_population():
    assert class_figures(pl.Series([], dtype=pl.UInt64))["share_unique"] is None


# --- Safe Harbor means years ---------------------------------------------------------------------------------

def _month_columns(root: Path) -> list[str]:
    """Columns named for months or holding month or quarter text (a school year "2023-24" is a year span)."""
    found = []
    for f in sorted(root.rglob("*.parquet")):
        df = pl.read_parquet(f).drop("school_year", strict=False)
        found += [f"{f.name}:{c}" for c in df.columns if c.endswith("_month")]
        found += [f"{f.name}:{c}" for c, t in df.schema.items() if t == pl.String
                  and df.get_column(c).drop_nulls().str.contains(r"^\d{4}-\d{2}$").any()]
        found += [f"{f.name}:{c}" for c, t in df.schema.items() if t == pl.String
                  and df.get_column(c).drop_nulls().str.contains(r"^\d{4}Q[1-4]$").any()]
    return found


def test_safe_harbor_default_release_has_no_month_precision(release):
    m = _manifest(release.path)
    assert m["profile"]["profile"] == "safe-harbor" and m["profile"]["safe_harbor"] is True
    assert set(m["profile"]["date_precision"].values()) == {"year"} and m["profile"]["panel_period"] == "year"
    assert _month_columns(release.path) == []
    assert "not Safe Harbor" not in (release.path / "README.md").read_text()


def test_months_under_safe_harbor_say_it_is_not_safe_harbor(tmp_path, monkeypatch):
    monkeypatch.setenv("CILINK_SECRET", SECRET)
    fx = build_release_workspace(tmp_path / "ws", n_persons=400, seed=17,
                                 export_extra='event_date_precision = "month"\n')
    r = export_release(fx.ws, audience=RESEARCH, release_id="months")
    m = _manifest(r.path)
    assert m["profile"]["profile"] == "safe-harbor" and m["profile"]["safe_harbor"] is False
    assert "months requested: not Safe Harbor" in m["profile"]["description"]
    assert "not the Safe Harbor shape" in (r.path / "README.md").read_text()
    assert "not Safe Harbor" in (r.path / "DICTIONARY.md").read_text()
    dictionary = json.loads((r.path / "dictionary.json").read_text())
    assert dictionary["profile"]["safe_harbor"] is False
    events = next(t for t in dictionary["tables"] if t["table"] == "events")
    assert {"entry_month", "exit_month", "move_in_month"} <= {c["name"] for c in events["columns"]}
    assert _month_columns(r.path)  # the months the config asked for are there, and labelled


@pytest.mark.parametrize(("settings_kw", "profile", "safe"), [
    ({}, None, True),
    ({"event_date_precision": "month"}, None, False),
    ({"date_precision": {"exit_date": "month"}}, None, False),
    ({}, ReleaseProfile.LIMITED, False),
])
def test_plan_description(settings_kw, profile, safe):
    plan = release_plan(ExportSettings(**settings_kw), profile)
    d = plan.describe()
    assert d["safe_harbor"] is safe and plan.safe_harbor is safe
    assert ("not Safe Harbor" in d["description"]) is not safe
    assert d["profile"] == str(profile or ReleaseProfile.SAFE_HARBOR)



@pytest.mark.parametrize("order", [["a", "a", "b"], ["a", "b", "a"]])
def test_record_risk_refuses_a_population_key_twice(order: list[str]) -> None:
    """Two population rows with one key hash (a collision, or a key repeated) are never measured as one person,
    whether the rows are adjacent (summed as one run) or not."""
    risk = RecordRisk()
    risk.add("persons.parquet", pl.DataFrame({"person_key": order, "sex": ["F", "M", "F"]}))
    with pytest.raises(RuntimeError, match="64-bit hash"):
        risk.figures()
