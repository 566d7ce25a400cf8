"""The link stage (issue 5): rules, records, guards, stable IDs, incremental ≡ full, determinism, review, CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from cilink import parallel
from cilink.config import LinkSettings
from cilink.errors import ConfigError, InputRejected, UsageError
from cilink.ledger import Ledger
from cilink.link import engine
from cilink.link.clusters import cluster_records
from cilink.link.comparisons import block_on, link_spec, name_comparison
from cilink.link.decisions import (
    GUARD_ADDRESS,
    GUARD_BIRTH_DATE,
    GUARD_FIRST_NAME,
    Thresholds,
    decide,
    latest_decisions,
)
from cilink.link.evaluate import evaluate
from cilink.link.linkage import link_workspace
from cilink.link.names import alias_neighbours, aliases
from cilink.link.outputs import read_crosswalk, read_pairs
from cilink.link.person_ids import IdEvent, assign_person_ids
from cilink.link.records import build_records
from cilink.link.review import read_decisions
from cilink.workspace import Workspace
from tests.conftest import run_cli
from tests.link_synth import new_workspace, partner_records, population, stage_batch, staged_frame, truth_of

# --- names, rules, records -----------------------------------------------------------------------------------


def test_nickname_aliases_come_from_the_nicknames_package() -> None:
    def same(a: str, b: str) -> bool:
        return bool(set(aliases(a)) & set(aliases(b)))

    assert same("robert", "bob") and same("bob", "rob") and same("elizabeth", "liz") and same("liz", "beth")
    assert not same("robert", "william"), "two formal names must not match through a shared nickname (bill)"
    assert "luis" in aliases("luis angel")
    # the names the hub encodes for a plaintext first name (encoded nicknames, issue 19) are exactly its aliases
    names = ["robert", "bob", "rob", "william", "bill", "elizabeth", "liz", "beth", "katherine", "kay", "kathy",
             "jacob", "jay", "jennifer", "jenn", "michelle", "shelly", "manuel", "manny", "ann", "li"]
    for a in names:
        assert {b for b in names if b in alias_neighbours(aliases(a))} == {b for b in names if same(a, b)}, a


def test_rules_are_printable_and_overridable() -> None:
    spec = link_spec(LinkSettings())
    text = str(spec)
    assert "nickname or alias" in text and "day and month swapped" in text and "dob & ssn" not in text
    assert "first_name & last_name" in text
    custom = link_spec(LinkSettings(comparisons=["first_name", "dob"], blocking_rules=[["dob"], ["last_name", "zip5"]]))
    assert [c.name for c in custom.comparisons] == ["first_name", "dob"]
    assert [str(r) for r in custom.blocking_rules] == ["dob", "last_name & zip5"]
    assert custom.fingerprint != spec.fingerprint
    with pytest.raises(ConfigError) as e:
        link_spec(LinkSettings(comparisons=["first_name", "shoe_size"], blocking_rules=[["dob", "nope"]]))
    assert "link.comparisons" in e.value.message and "link.blocking_rules[0]" in e.value.message
    assert str(name_comparison("first_name")).startswith("first_name (identity)")
    assert block_on("birth_year").columns == ("_cilink_birth_year",)


def test_records_take_the_latest_values_and_keep_name_variants() -> None:
    rows = pl.DataFrame({
        "source_person_id": ["1", "1", "2"], "first_name": ["robert", "bob", "ann"],
        "last_name": ["smith", "smith jones", "lee"], "dob": [dt.date(1990, 5, 4), None, dt.date(2001, 1, 1)],
        "ssn": [None, "123456789", None], "zip5": ["01040", "01013", None],
    })
    frames = [staged_frame(rows[:1], "p", "b1"), staged_frame(rows[1:], "p", "b2")]
    recs = build_records(pl.concat(frames), {"b1": 0, "b2": 1}).to_dicts()
    r1 = recs[0]
    assert r1["record_id"] == "p:1" and r1["first_name"] == "bob" and r1["zip5"] == "01013"
    assert r1["dob"] == dt.date(1990, 5, 4), "a missing value does not overwrite an earlier one"
    assert r1["ssn_last4"] == "6789" and r1["_cilink_birth_month_day"] == "0504"
    assert {"bob", "robert"} <= set(r1["_cilink_first_aliases"])
    assert {"smith", "jones"} <= set(r1["_cilink_last_tokens"])


# --- decisions, clusters, IDs, evaluation ----------------------------------------------------------------


def _pairs(rows: list[tuple[str, str, float, dict[str, float]]]) -> pl.DataFrame:
    cols = ["w_first_name", "w_last_name", "w_dob", "w_ssn", "w_email", "w_street", "w_zip5", "w_phone"]
    return pl.DataFrame([{"record_id_l": a, "record_id_r": b, "match_weight": w, "match_probability": 0.9,
                          **{c: parts.get(c, 0.0) for c in cols}} for a, b, w, parts in rows])


def test_a_first_last_swap_with_another_birth_date_is_still_a_candidate_pair() -> None:
    """FEBRL-style: names swapped, the birth date a day off, no SSN or address to block on."""
    rows = pl.DataFrame({"source_person_id": ["1", "2", "3"], "first_name": ["john", "smith", None],
                         "last_name": ["smith", "john", "smith"],
                         "dob": [dt.date(1990, 5, 4), dt.date(1990, 5, 5), dt.date(1990, 5, 5)],
                         "ssn": [None, None, None]}, schema_overrides={"ssn": pl.String})
    recs = build_records(staged_frame(rows, "p", "b1"), {"b1": 0})
    assert recs["_cilink_name_pair"].to_list() == ["john|smith", "john|smith", None]

    def blocked(rules: tuple) -> bool:
        a, b = recs.row(0, named=True), recs.row(1, named=True)
        return any(all(a[c] is not None and a[c] == b[c] for c in r.columns) for r in rules)

    rules = link_spec(LinkSettings()).blocking_rules
    assert blocked(rules)
    assert not blocked(tuple(r for r in rules if "_cilink_name_pair" not in r.columns)), "only the new rule pairs it"


def test_guards_hold_back_address_only_and_twin_links() -> None:
    pairs = _pairs([
        ("a:1", "b:1", 9.0, {"w_first_name": 8.0}),
        ("a:2", "b:2", 4.2, {"w_first_name": 1.0, "w_street": 2.0, "w_zip5": 0.5, "w_phone": 2.0}),
        ("a:3", "b:3", 7.0, {"w_first_name": -7.0}),  # twins: same last name and birth date
        ("a:4", "b:4", 7.0, {"w_first_name": -7.0, "w_ssn": 12.0}),  # an SSN vouches for it
        ("a:5", "b:5", 1.0, {}),
    ])
    reviewed = latest_decisions([("b:5", "a:5", "match"), ("a:1", "b:1", "match"), ("b:1", "a:1", "non_match")])
    d = decide(pairs, Thresholds(4.0, 4.0), reviewed, ["street", "zip5", "phone"])
    got = {(r["record_id_l"], r["decision"], r["guard"]) for r in d.to_dicts()}
    assert ("a:1", "cannot_link", None) in got, "the latest reviewer decision wins"
    assert ("a:2", "review", GUARD_ADDRESS) in got
    assert ("a:3", "review", GUARD_FIRST_NAME) in got
    assert ("a:4", "link", None) in got
    assert ("a:5", "must_link", None) in got


def test_birth_date_conflict_holds_namesakes_unless_an_ssn_vouches() -> None:
    """A father and his namesake son agree on names and ZIP and disagree on birth date outright."""
    pairs = _pairs([
        ("a:1", "b:1", 6.0, {"w_first_name": 9.0, "w_last_name": 8.0, "w_dob": -5.2}),  # "all other"
        ("a:2", "b:2", 6.0, {"w_first_name": 9.0, "w_last_name": 8.0, "w_dob": -3.7}),  # "same year"
        ("a:3", "b:3", 9.0, {"w_first_name": 9.0, "w_dob": -5.2, "w_ssn": 12.0}),  # an SSN vouches
        ("a:4", "b:4", 6.0, {"w_first_name": 9.0, "w_last_name": 8.0, "w_dob": -0.7}),  # two digits off
    ])
    def decisions(households: bool, conflict: float | None) -> dict[str, tuple[str, str | None]]:
        d = decide(pairs, Thresholds(4.0, 4.0), latest_decisions([]), [], households, dob_conflict=conflict)
        return {r["record_id_l"]: (r["decision"], r["guard"]) for r in d.to_dicts()}

    assert decisions(True, -3.7) == {"a:1": ("review", GUARD_BIRTH_DATE), "a:2": ("review", GUARD_BIRTH_DATE),
                                     "a:3": ("link", None), "a:4": ("link", None)}
    assert set(decisions(False, -3.7).values()) == {("link", None)}, "without households: a typo, not a namesake"
    assert set(decisions(True, None).values()) == {("link", None)}, "a model without conflict levels: no guard"


def test_without_households_address_needs_one_personal_agreement() -> None:
    """Where the model found no households (FEBRL-like data), an address vouches for a pair that also agrees
    on something personal, and a first-name typo no longer looks like a twin; address alone still never links."""
    pairs = _pairs([
        ("a:1", "b:1", 6.0, {"w_first_name": 1.5, "w_street": 6.0, "w_zip5": 2.0}),  # weak name + address
        ("a:2", "b:2", 5.0, {"w_first_name": -2.0, "w_street": 6.0, "w_zip5": 2.0}),  # address alone
        ("a:3", "b:3", 7.0, {"w_first_name": -7.0, "w_street": 6.0}),  # first-name typo, same surname/DOB
    ]).with_columns(pl.Series("w_sex", [0.0, 1.0, 0.0]), pl.Series("w_last_name", [0.0, -1.0, 8.0]))
    household = ["street", "zip5", "phone"]
    absent = {r["record_id_l"]: (r["decision"], r["guard"])
              for r in decide(pairs, Thresholds(4.0, 4.0), latest_decisions([]), household, False).to_dicts()}
    assert absent == {"a:1": ("link", None), "a:2": ("review", GUARD_ADDRESS), "a:3": ("link", None)}
    present = {r["record_id_l"]: (r["decision"], r["guard"])
               for r in decide(pairs, Thresholds(4.0, 4.0), latest_decisions([]), household, True).to_dicts()}
    assert present == {"a:1": ("review", GUARD_ADDRESS), "a:2": ("review", GUARD_ADDRESS),
                       "a:3": ("review", GUARD_FIRST_NAME)}


def test_clusters_refuse_ssn_chains_and_reviewer_distinct_records() -> None:
    ids = ["a:1", "a:2", "b:1", "c:1", "c:2"]
    edges = pl.DataFrame({"record_id_l": ["a:1", "a:1", "a:2", "b:1"], "record_id_r": ["b:1", "c:1", "c:2", "c:2"],
                          "match_weight": [9.0, 8.0, 7.0, 6.0]})
    ssn = {"b:1": "123456789", "c:1": "987654321"}  # b:1 and c:1 are different people; a:1 has no SSN
    cannot = pl.DataFrame({"record_id_l": ["a:2"], "record_id_r": ["b:1"]})
    c = cluster_records(ids, edges, cannot_link=cannot, ssn=ssn)
    cluster = dict(c.clusters.select("record_id", "cluster").iter_rows())
    assert cluster["a:1"] == cluster["b:1"] != cluster["c:1"], "the weaker edge into an SSN conflict is refused"
    assert cluster["a:2"] != cluster["b:1"], "a reviewer's non-match holds through other records"
    assert set(c.refused["reason"]) == {"ssn_conflict", "reviewer_distinct"}
    # a direct link between two SSNs one typo apart, or between conflicting SSNs, is allowed
    direct = cluster_records(["x:1", "y:1"], pl.DataFrame({"record_id_l": ["x:1"], "record_id_r": ["y:1"],
                                                           "match_weight": [12.0]}),
                             ssn={"x:1": "123456789", "y:1": "555443333"})
    assert direct.clusters["cluster"].n_unique() == 1 and direct.refused.height == 0


def test_person_ids_are_stable_and_merges_keep_the_oldest() -> None:
    prev = pl.DataFrame({"record_id": ["a", "b", "c", "d", "e", "f"],
                         "person_id": ["P1", "P2", "P3", "P3", "P3", "P4"]})
    clusters = pl.DataFrame({"record_id": ["a", "b", "c", "d", "e", "g"],
                             "cluster": ["a", "a", "c", "c", "e", "g"]})  # P1+P2 merge; P3 splits; f gone; g new
    out = assign_person_ids(clusters, prev, issue_order={"P2": 0, "P1": 1, "P3": 2, "P4": 3}, rng=random.Random(1))
    pid = dict(out.person_ids.iter_rows())
    assert pid["a"] == pid["b"] == "P2", "the oldest ID survives a merge"
    assert pid["c"] == pid["d"] == "P3" and pid["e"] not in {"P1", "P2", "P3", "P4"}, "the largest part keeps it"
    events = set(out.events)
    assert IdEvent("merge", "P2", "P1") in events and IdEvent("split", "P3", pid["e"]) in events
    assert IdEvent("retire", "P4") in events and IdEvent("new", pid["g"]) in events
    again = assign_person_ids(clusters, prev, issue_order={"P2": 0, "P1": 1, "P3": 2, "P4": 3}, rng=random.Random(1))
    assert again.person_ids.equals(out.person_ids), "same inputs and seed, same IDs"


def test_evaluate_counts_pairs_and_cluster_errors() -> None:
    ids = {"partner": ["a"] * 5, "source_person_id": list("12345")}
    cw = pl.DataFrame({**ids, "person_id": ["X", "X", "X", "Y", "Z"]})
    truth = pl.DataFrame({**ids, "true_id": ["1", "1", "2", "3", "3"]})
    e = evaluate(cw, truth)
    assert (e.predicted_pairs, e.true_pairs, e.correct_pairs) == (3, 2, 1)
    assert (e.over_merged, e.split) == (1, 1) and e.precision == pytest.approx(1 / 3)


# --- workspaces ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _module_secret(module_secret: None) -> None:
    """Module-scoped workspaces below are linked with the test secret."""


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    return population(700, seed=11)


@pytest.fixture(scope="module")
def batches(people: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {
        "a": partner_records(people.sample(fraction=0.55, seed=1), "a", seed=1, ssn=False),
        "b": partner_records(people.sample(fraction=0.45, seed=2), "b", seed=2),
        "c": partner_records(people.sample(fraction=0.3, seed=3), "c", seed=3),
        "a2": partner_records(people.sample(fraction=0.1, seed=4), "a", seed=4, ssn=False, id_prefix="A2-"),
    }


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory, batches: dict[str, pl.DataFrame]) -> Path:
    """A model trained once on partners a and b (copied into workspaces to keep the tests fast)."""
    ws = new_workspace(tmp_path_factory.mktemp("model") / "ws", ["a", "b", "c"])
    stage_batch(ws, "a", batches["a"])
    stage_batch(ws, "b", batches["b"])
    result = link_workspace(ws)
    assert result.trained
    return ws.link_dir


def test_the_model_measures_whether_records_come_in_households(
    trained_model: Path, tmp_path: Path, batches: dict[str, pl.DataFrame]
) -> None:
    """Families share surname and address in the synthetic population; with addresses dealt out at random
    (FEBRL-like data) the same-surname lift is gone and the model says so."""
    meta = engine.load_model(trained_model).meta  # type: ignore[union-attr]
    assert meta["households_present"] is True and meta["household_lift"]["street"] > engine.HOUSEHOLD_LIFT
    people = population(900, seed=5)
    dealt = people.with_columns(people.select("street", "zip5", "phone").sample(fraction=1.0, shuffle=True, seed=9))
    ws = new_workspace(tmp_path / "ws", ["a", "b"])
    stage_batch(ws, "a", partner_records(dealt, "a", seed=1))
    stage_batch(ws, "b", partner_records(dealt.sample(fraction=0.5, seed=2), "b", seed=2))
    link_workspace(ws)
    meta = engine.load_model(ws.link_dir).meta  # type: ignore[union-attr]
    assert meta["households_present"] is False and meta["household_lift"]["street"] < engine.HOUSEHOLD_LIFT


def test_household_u_counts_shared_addresses_over_all_records_not_a_sample(trained_model: Path) -> None:
    """A sample of records keeps a pair only if it keeps both of its records, so a household's few pairs all
    but vanish from it; the exact-address share is counted over all records instead."""
    from cilink.link.engine.backend import DuckDBBackend
    from cilink.link.engine.training import _household_u
    from cilink.link.outputs import read_records

    records = read_records(trained_model)
    spec = link_spec(LinkSettings())
    backend = DuckDBBackend()
    whole = _household_u(backend, backend.db_api(), records, spec, max_pairs=1e12, seed=42)
    tiny = _household_u(backend, backend.db_api(), records, spec, max_pairs=60, seed=42)  # ~1% of the pairs
    # every same-surname pair, formed by Splink, agrees with the counts from group sizes
    assert whole["street"][0] > 0.05 and whole["zip5"][0] > 0.05
    for comp in ("street", "zip5"):
        assert tiny[comp][0] == pytest.approx(whole[comp][0], rel=1e-9), comp
        assert sum(tiny[comp]) == pytest.approx(1.0, rel=1e-3)  # (an unseen level counts once)


def test_the_household_lift_compares_with_all_random_pairs_not_a_sample_that_saw_no_shared_street(
    trained_model: Path,
) -> None:
    """At scale a sample of random pairs holds no pair sharing a street (one in 930,000 at 3M people), so its
    u stays at the prior; the lift's denominator is counted from the street keys' value counts instead, and
    a model trained on a sample of only 50 random pairs still finds the households."""
    from cilink.config import EngineSettings
    from cilink.link.engine.backend import DuckDBBackend
    from cilink.link.engine.training import _household_u
    from cilink.link.outputs import read_records

    records = read_records(trained_model)
    spec = link_spec(LinkSettings())
    model = engine.train(records, spec, seed=42, max_pairs_u=50, max_pairs_em=5e5, engine=EngineSettings())
    keys = records.get_column("_cilink_street_key").drop_nulls()
    n = keys.len()
    agree = sum(c * (c - 1) for c in keys.value_counts()["count"].to_list())  # ordered pairs, by hand
    backend = DuckDBBackend()
    among_surname = _household_u(backend, backend.db_api(), records, spec, max_pairs=50, seed=42)["street"][0]
    assert model.meta["households_present"] is True
    assert model.meta["household_lift"]["street"] == pytest.approx(among_surname / (agree / (n * (n - 1))), rel=1e-2)


def test_training_rule_pairs_counted_from_group_sizes_equal_splinks_join(trained_model: Path) -> None:
    """Each training rule's pair count (agree on its fields, not on its apart ones) from group sizes by
    inclusion and exclusion is the count Splink gets by joining the records."""
    from cilink.link.engine.backend import DuckDBBackend
    from cilink.link.engine.training import _pairs_on, _rule_pairs, _training_rule
    from cilink.link.outputs import read_records

    records = read_records(trained_model)
    spec = link_spec(LinkSettings())
    backend = DuckDBBackend()
    sdf = backend.register(backend.db_api(), records, "records")
    counts = {str(rule): (_rule_pairs(records, rule), _pairs_on(sdf, _training_rule(rule)))
              for rule in spec.training_rules}
    assert all(mine == splinks for mine, splinks in counts.values()), counts
    assert sum(mine for mine, _ in counts.values() if mine) > 100  # the rules do pair records here


def seed_model(ws: Workspace, model_dir: Path) -> None:
    """Give a fresh workspace an already-trained model (as if `cilink link` had trained it)."""
    from cilink.generations import new_link_generation

    with new_link_generation(ws) as gen:
        for name in (engine.MODEL_FILE, engine.MODEL_META_FILE, engine.MODEL_TF_FILE):
            shutil.copy(model_dir / name, gen.link_dir / name)


def crosswalk(ws: Workspace) -> dict[str, str]:
    linked = read_crosswalk(ws.link_dir, ["record_id", "person_id"])
    assert linked is not None
    return dict(linked.iter_rows())


def partition(ws: Workspace) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for rid, pid in crosswalk(ws).items():
        groups.setdefault(pid, set()).add(rid)
    return {frozenset(g) for g in groups.values()}


def id_history(ws: Workspace) -> list[tuple[str, str, str | None]]:
    with Ledger(ws.ledger_path) as ledger:
        return [tuple(r) for r in ledger.conn.execute(
            "SELECT event, person_id, other_person_id FROM id_history ORDER BY seq")]


def _bridge_records() -> dict[str, pl.DataFrame]:
    """One person A knows without birth date and B knows without last name: only C's record joins them."""
    dob = dt.date(1981, 3, 14)
    base = {"sex": "M", "street": None, "zip5": "01040", "phone": None, "true_id": "BRIDGE"}
    mk = lambda **kw: pl.DataFrame([{**base, **kw}], schema=partner_records(population(1), "x", seed=1).schema)  # noqa: E731
    return {
        "a": mk(source_person_id="A-BRIDGE", first_name="zebulon", last_name="quixote", dob=None, ssn=None),
        "b": mk(source_person_id="B-BRIDGE", first_name="zebulon", last_name=None, dob=dob, ssn="212459876"),
        "c": mk(source_person_id="C-BRIDGE", first_name="zebulon", last_name="quixote", dob=dob, ssn="212459876"),
    }


def test_person_ids_survive_a_new_partner_with_a_merge_and_a_split(
    tmp_path: Path, batches: dict[str, pl.DataFrame], trained_model: Path
) -> None:
    ws = new_workspace(tmp_path / "ws", ["a", "b", "c"])
    seed_model(ws, trained_model)
    bridge = _bridge_records()
    stage_batch(ws, "a", pl.concat([batches["a"], bridge["a"]]))
    stage_batch(ws, "b", pl.concat([batches["b"], bridge["b"]]))
    first = link_workspace(ws)
    assert not first.trained and first.mode == "full" and first.id_events == {"new": first.persons}
    before = crosswalk(ws)
    assert before["a:A-BRIDGE"] != before["b:B-BRIDGE"], "A and B alone cannot tell they are one person"

    # a reviewer says two linked records of one person are different people: the next run splits them
    pairs = read_pairs(ws.link_dir).filter(pl.col("decision") == "link")
    split_l, split_r = pairs.filter(pl.col("record_id_l").str.starts_with("a:")
                                    & pl.col("record_id_r").str.starts_with("b:")).row(0)[:2]
    review_file = tmp_path / "decided.csv"
    pl.DataFrame({"record_id_l": [split_l], "record_id_r": [split_r], "decision": ["non_match"]}).write_csv(review_file)
    assert run_cli("-w", ws.root, "review", "import", review_file).returncode == 0

    stage_batch(ws, "c", pl.concat([batches["c"], bridge["c"]]))
    second = link_workspace(ws)
    assert second.mode == "incremental" and second.cannot_link == 1
    after = crosswalk(ws)
    survivor, merged_from = before["a:A-BRIDGE"], before["b:B-BRIDGE"]  # a's cluster sorts (and was issued) first
    assert after["a:A-BRIDGE"] == after["b:B-BRIDGE"] == after["c:C-BRIDGE"] == survivor
    assert after[split_l] != after[split_r]
    assert (after[split_l] == before[split_l]) != (after[split_r] == before[split_r]), "one side keeps the ID"
    new_side = split_l if after[split_l] != before[split_l] else split_r
    history = id_history(ws)
    assert ("merge", survivor, merged_from) in history
    assert ("split", before[split_l], after[new_side]) in history
    merged_into = {other: pid for event, pid, other in history if event == "merge"}
    for rid, pid in before.items():
        if rid != new_side:
            assert after[rid] == merged_into.get(pid, pid), "everyone else keeps their person_id (or the survivor's)"
    assert second.id_events["merge"] >= 1 and second.id_events["split"] >= 1


@pytest.mark.parametrize("compact", [False, True], ids=["changes-file", "compacting"])
def test_incremental_batches_give_the_same_clusters_as_full(
    tmp_path: Path, batches: dict[str, pl.DataFrame], trained_model: Path, compact: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Incremental runs write only the crosswalk rows and pairs they change (beside the crosswalk and the
    pairs, folded into them once they outgrow a share of them — at once here when ``compact``), and count
    persons from the last run's counts; a full run on the same data gives the same crosswalk, pairs (with
    the same decisions) and counts."""
    from cilink.link import outputs

    if compact:
        monkeypatch.setattr(outputs, "COMPACT_MIN_ROWS", 0)
        monkeypatch.setattr(outputs, "COMPACT_SHARE", 0.0)
    ws = new_workspace(tmp_path / "ws", ["a", "b", "c"])
    seed_model(ws, trained_model)
    results = []
    steps = [(n, batches[n], "append") for n in ("a", "b", "c", "a2")]
    steps.append(("b", batches["b"].head(batches["b"].height // 2), "snapshot"))
    for name, frame, mode in steps:
        stage_batch(ws, name[0], frame, mode=mode)
        results.append(link_workspace(ws))
        for changes in (outputs.CROSSWALK_CHANGES_FILE, outputs.PAIRS_CHANGES_FILE):
            assert (ws.link_dir / changes).is_file() == (results[-1].mode == "incremental" and not compact)
    assert [r.mode for r in results] == ["full"] + ["incremental"] * 4
    assert results[-1].records_removed > 0, "b's snapshot of half its people: the other half are gone"
    timings = results[-1].timings  # wall and CPU seconds per phase, for the run log and the benchmarks
    for phase in ("records", "score", "persons", "write", "publish"):
        assert timings[f"{phase}_s"] >= 0 and timings[f"{phase}_cpu_s"] >= 0
    # the run's seconds are taken before the generation is published and the ledger row written
    before_publish = [k for k in timings if k.endswith("_s") and not k.endswith(("cpu_s", "sys_s"))
                      and k not in ("publish_s", "ledger_s")]
    assert sum(timings[k] for k in before_publish) <= results[-1].seconds + 0.05
    incremental, ids = partition(ws), crosswalk(ws)
    pairs_inc = read_pairs(ws.link_dir)
    full = link_workspace(ws, full=True)
    assert full.mode == "full" and full.id_events == {}
    assert not (ws.link_dir / outputs.CROSSWALK_CHANGES_FILE).exists()
    assert not (ws.link_dir / outputs.PAIRS_CHANGES_FILE).exists()
    assert partition(ws) == incremental
    assert crosswalk(ws) == ids
    assert (full.persons, full.clusters_by_partners) == (results[-1].persons, results[-1].clusters_by_partners)
    linked = read_crosswalk(ws.link_dir)
    assert linked is not None and linked.height == full.records == linked["record_id"].n_unique()
    pairs_full = read_pairs(ws.link_dir)
    key = ["record_id_l", "record_id_r"]
    assert pairs_inc.select(key).is_unique().all(), "a pair the changes replace is not read twice"
    same = [*key, "decision", "guard", "match_weight"]
    assert pairs_full.select(same).equals(pairs_inc.select(same).sort(key))


def test_compiled_scoring_sql_scores_exactly_as_splink(
    tmp_path: Path, batches: dict[str, pl.DataFrame], trained_model: Path
) -> None:
    """Incremental runs replay the scoring SQL Splink compiled for the model; it gives Splink's own pairs,
    and a cache that does not fit the model (another model's key) or fails to run falls back to Splink."""
    from cilink.link.engine import compiled as compiled_scoring
    from cilink.link.outputs import read_records

    ws = new_workspace(tmp_path / "ws", ["a", "b"])
    stage_batch(ws, "a", batches["a"])
    stage_batch(ws, "b", batches["b"])
    seed_model(ws, trained_model)
    link_workspace(ws)  # compiles the SQL beside the model
    model = engine.load_model(ws.link_dir)
    assert model is not None and model.scoring_sql and (ws.link_dir / compiled_scoring.SCORING_SQL_FILE).is_file()
    records = read_records(ws.link_dir)
    assert records is not None
    new_ids = records.filter(pl.col("partner") == "b")["record_id"].head(40)
    spec = link_spec(ws.config.link)
    kw = {"min_weight": 0.0, "engine": ws.config.engine}
    replayed = engine.score_new(model, records, new_ids, spec, **kw)
    stale = engine.Model(model.settings, model.tf_tables, model.meta,
                         {**model.scoring_sql, "key": "another-model", "statements": ["select broken"]})
    by_splink = engine.score_new(engine.Model(model.settings, model.tf_tables, model.meta), records, new_ids, spec,
                                 **kw)
    assert replayed.pairs.height > 0 and replayed.candidates == by_splink.candidates
    assert replayed.pairs.equals(by_splink.pairs)
    assert engine.score_new(stale, records, new_ids, spec, **kw).pairs.equals(by_splink.pairs)
    broken = engine.Model(model.settings, model.tf_tables, model.meta,
                          {**model.scoring_sql, "statements": ["select * from no_such_table"]})
    assert engine.score_new(broken, records, new_ids, spec, **kw).pairs.equals(by_splink.pairs)


def test_sliced_replay_and_polars_blocking_score_as_splink(
    tmp_path: Path, batches: dict[str, pl.DataFrame], trained_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Incremental scoring blocks the new records itself (hashed neighbours, then the first matching rule of
    each pair, as Splink's blocking SQL does) and scores the candidate pairs in slices on parallel
    connections: the pairs are Splink's own however many slices there are."""
    from cilink.link.engine import compiled as compiled_scoring
    from cilink.link.outputs import read_records

    ws = new_workspace(tmp_path / "ws", ["a", "b", "c"])
    for p in ("a", "b", "c"):
        stage_batch(ws, p, batches[p])
    seed_model(ws, trained_model)
    link_workspace(ws)
    model = engine.load_model(ws.link_dir)
    records = read_records(ws.link_dir)
    assert model is not None and model.scoring_sql and records is not None
    new_ids = records.filter(pl.col("partner") == "c")["record_id"]
    spec = link_spec(ws.config.link)
    kw = {"min_weight": 0.0, "engine": ws.config.engine}
    by_splink = engine.score_new(engine.Model(model.settings, model.tf_tables, model.meta), records, new_ids, spec,
                                 **kw)
    monkeypatch.setattr(compiled_scoring, "_MIN_SLICE", 50)
    statements = model.scoring_sql["statements"]
    assert compiled_scoring.blocked_table(statements) is not None
    runs = []
    real = compiled_scoring._replay_one

    def counted(*args: object) -> object:
        runs.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(compiled_scoring, "_replay_one", counted)
    for parts in (1, 3):
        monkeypatch.setattr(parallel, "workers", lambda n=parts: n)
        runs.clear()
        sliced = engine.score_new(model, records, new_ids, spec, **kw)
        assert len(runs) == parts, "one DuckDB connection per slice"
        assert sliced.candidates == by_splink.candidates > 3 * 50
        assert sliced.pairs.equals(by_splink.pairs)


def test_records_and_crosswalks_of_earlier_versions_make_one_full_relink(
    tmp_path: Path, batches: dict[str, pl.DataFrame], trained_model: Path
) -> None:
    """Earlier cilink wrote records, pairs and crosswalk as Parquet and labelled components by record id:
    they stay readable; the next run relinks fully (same persons), writes Arrow, drops the old files, and the
    run after is incremental."""
    from cilink.link.outputs import COMPONENT, CROSSWALK_FILE, EARLIER_FILES, read_records, record_partners

    ws = new_workspace(tmp_path / "ws", ["a", "b"])
    stage_batch(ws, "a", batches["a"])
    stage_batch(ws, "b", batches["b"])
    seed_model(ws, trained_model)
    first = link_workspace(ws)
    before = crosswalk(ws)
    link_dir = ws.link_dir
    pairs = read_pairs(link_dir)
    for f in [*link_dir.glob("*.arrow")]:  # as an earlier version left them: Parquet
        frame = pl.read_ipc(f)
        if f.name == CROSSWALK_FILE:  # with components labelled by record id
            frame = frame.with_columns(pl.col("record_id").alias(COMPONENT))
        frame.write_parquet(f.with_suffix(".parquet"))
        f.unlink()
    assert record_partners(link_dir) == [] and read_records(link_dir) is None
    assert crosswalk(ws) == before and read_pairs(link_dir).equals(pairs), "still readable, by export and report"
    again = link_workspace(ws)
    assert again.mode == "full" and again.persons == first.persons and crosswalk(ws) == before
    assert not list(ws.link_dir.glob("records-*.parquet"))
    assert not [f for f in EARLIER_FILES.values() if (ws.link_dir / f).exists()]
    assert record_partners(ws.link_dir) == ["a", "b"] and read_pairs(ws.link_dir).equals(pairs)
    assert pl.read_ipc_schema(ws.link_dir / CROSSWALK_FILE)[COMPONENT] == pl.UInt64
    stage_batch(ws, "b", batches["b"].head(5))
    assert link_workspace(ws).mode == "incremental"


def test_two_full_runs_on_the_same_data_are_identical(tmp_path: Path, batches: dict[str, pl.DataFrame]) -> None:
    outputs = []
    for name in ("one", "two"):
        ws = new_workspace(tmp_path / name, ["a", "b", "c"])
        for p in ("a", "b", "c"):
            stage_batch(ws, p, batches[p])
        result = link_workspace(ws, full=True)
        assert result.trained
        outputs.append((ws.link_dir / engine.MODEL_FILE).read_text())
        outputs.append(read_pairs(ws.link_dir))
        outputs.append(read_crosswalk(ws.link_dir))
    model_1, pairs_1, cw_1, model_2, pairs_2, cw_2 = outputs
    assert model_1 == model_2
    assert pairs_1.equals(pairs_2)
    assert cw_1.equals(cw_2), "same pairs, clusters and person IDs"
    assert cw_1["person_id"].str.contains(r"^P[0-9A-Z]{12}$").all()
    assert not cw_1["person_id"].is_in(cw_1["source_person_id"].implode()).any()


def test_a_repaired_birth_date_agrees_one_level_below_exact(
    tmp_path: Path, batches: dict[str, pl.DataFrame], trained_model: Path
) -> None:
    """Ingest's repaired birth dates (flag ``dob_repaired``) still block and link, at "one digit off"."""
    from cilink.link.outputs import read_pairs
    from cilink.link.workbench import _level_labels, level_of

    a, b = batches["a"], batches["b"]
    repaired = b.join(a, on=["true_id", "dob"], how="semi").head(15)["source_person_id"]
    b = b.with_columns(pl.when(pl.col("source_person_id").is_in(repaired.implode())).then(
        pl.lit(["dob_repaired"])).otherwise(pl.lit([], dtype=pl.List(pl.String))).alias("_cilink_flags"))
    ws = new_workspace(tmp_path / "ws", ["a", "b"])
    seed_model(ws, trained_model)
    stage_batch(ws, "a", a)
    stage_batch(ws, "b", b)
    link_workspace(ws)
    levels = _level_labels(engine.load_model(ws.link_dir))["dob"]
    pairs = read_pairs(ws.link_dir)
    assert pairs is not None
    same_dob = (a.join(b, on=["true_id", "dob"], suffix="_b")
                .select(pl.format("a:{}", "source_person_id").alias("record_id_l"),
                        pl.format("b:{}", "source_person_id_b").alias("record_id_r"),
                        pl.col("source_person_id_b").is_in(repaired.implode()).alias("repaired")))
    scored = same_dob.join(pairs, on=["record_id_l", "record_id_r"])
    by_kind = {r: {level_of(levels, w) for w in scored.filter(pl.col("repaired") == r)["w_dob"]}
               for r in (True, False)}
    assert scored.filter("repaired").height == 15, "repaired dates still make candidate pairs"
    assert by_kind == {True: {"one digit off"}, False: {"dob exact"}}


def test_a_tiny_workspace_still_links(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws", ["a", "b"])
    few = population(6, seed=5)
    stage_batch(ws, "a", partner_records(few, "a", seed=1, noise=0))
    stage_batch(ws, "b", partner_records(few, "b", seed=2, noise=0))
    result = link_workspace(ws)
    assert result.trained and result.records == 12
    meta = json.loads((ws.link_dir / engine.MODEL_META_FILE).read_text())
    assert any("skipped" in note for note in meta["training"])
    assert result.persons <= 8


# --- CLI: link, review, crosswalk, evaluate --------------------------------------------------------------------


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory, batches: dict[str, pl.DataFrame], trained_model: Path) -> Path:
    root = tmp_path_factory.mktemp("cli") / "ws"
    ws = new_workspace(root, ["a", "b", "c"])
    seed_model(ws, trained_model)
    formula = batches["b"].head(3).with_columns(pl.Series("source_person_id", ["=HYPERLINK(1)", "+1", "@x"]))
    stage_batch(ws, "a", batches["a"])
    stage_batch(ws, "b", pl.concat([batches["b"].slice(3), formula]))
    truth_of(("a", batches["a"]), ("b", pl.concat([batches["b"].slice(3), formula]))).write_csv(root / "truth.csv")
    return root


def test_link_cli_prints_the_summary_and_model(linked: Path) -> None:
    out = run_cli("-w", linked, "link", "--show-model")
    assert out.returncode == 0, out.stderr
    assert "nickname or alias" in out.stdout and "persons in 2 partner(s)" in out.stdout
    assert "candidate pairs" in out.stdout and "review queue" in out.stdout
    js = json.loads(run_cli("-w", linked, "link", "--json").stdout)
    assert js["mode"] == "incremental" and js["records_scored"] == 0


def test_evaluate_cli(linked: Path) -> None:
    run_cli("-w", linked, "link")
    out = run_cli("-w", linked, "evaluate", linked / "truth.csv", "--json")
    assert out.returncode == 0, out.stderr
    e = json.loads(out.stdout)
    assert e["precision"] >= 0.98 and e["f1"] >= 0.97 and e["missing_from_truth"] == 0
    assert "F1" in run_cli("-w", linked, "evaluate", linked / "truth.csv").stdout
    assert run_cli("-w", linked, "evaluate", linked / "nope.csv").returncode == 3


def test_review_export_is_formula_safe_and_import_is_all_or_nothing(linked: Path, tmp_path: Path) -> None:
    run_cli("-w", linked, "link")
    queue_file = tmp_path / "review.csv"
    out = run_cli("-w", linked, "review", "export", queue_file)
    assert out.returncode == 0, out.stderr
    assert oct(queue_file.stat().st_mode & 0o777) == "0o600"
    queue = pl.read_csv(queue_file, infer_schema=False)
    assert queue.height > 0 and {"first_name_l", "first_name_r", "dob_l", "dob_r", "decision"} <= set(queue.columns)
    assert not queue.select(pl.all().str.contains(r"^[=+@\-]").any()).row(0).__contains__(True)
    assert not queue["ssn_l"].drop_nulls().str.contains(r"^\d{9}$").any(), "SSNs are masked"
    bad = queue.with_columns(pl.when(pl.col("pair") == "1").then(pl.lit("maybe")).otherwise(pl.lit("match"))
                             .alias("decision"))
    bad.write_csv(tmp_path / "bad.csv")
    out = run_cli("-w", linked, "review", "import", tmp_path / "bad.csv")
    assert out.returncode == 3 and "rows 2" in out.stderr
    ws = Workspace.open(linked)
    with Ledger(ws.ledger_path) as ledger:
        assert ledger.conn.execute("SELECT count(*) FROM review_decisions").fetchone()[0] == 0
    good = queue.with_columns(pl.lit("non_match").alias("decision"))
    good.write_csv(tmp_path / "good.csv")
    assert run_cli("-w", linked, "review", "import", tmp_path / "good.csv").returncode == 0
    js = json.loads(run_cli("-w", linked, "link", "--json").stdout)
    assert js["cannot_link"] == queue.height and js["review_queue"] == 0


def test_read_decisions_unescapes_formula_guarded_ids(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    pl.DataFrame({"record_id_l": ["'=x:1"], "record_id_r": ["b:2"], "decision": ["Same"]}).write_csv(f)
    rows, undecided = read_decisions(f, {"=x:1", "b:2"})
    assert rows.row(0) == ("=x:1", "b:2", "match") and undecided == 0
    with pytest.raises(InputRejected):
        read_decisions(f, {"b:2"})


def test_crosswalk_export_is_restricted(linked: Path, tmp_path: Path) -> None:
    run_cli("-w", linked, "link")
    target = tmp_path / "cw.csv"
    out = run_cli("-w", linked, "crosswalk", "export", target)
    assert out.returncode == 0, out.stderr
    cw = pl.read_csv(target, infer_schema=False)
    assert cw.columns == ["partner", "source_person_id", "person_id"]
    assert "'=HYPERLINK(1)" in cw["source_person_id"].to_list()
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    refused = run_cli("-w", linked, "crosswalk", "export", linked / "releases" / "cw.csv")
    assert refused.returncode == 2 and not (linked / "releases" / "cw.csv").exists()
    ws = Workspace.open(linked)
    with Ledger(ws.ledger_path) as ledger:
        assert any(e["action"] == "crosswalk_export" for e in ledger.audit_entries())


def test_link_logs_and_audit_carry_no_identifiers(linked: Path) -> None:
    run_cli("-w", linked, "link", "--full")
    ws = Workspace.open(linked)
    from cilink.link.outputs import read_records

    names = set(read_records(ws.link_dir)["last_name"].drop_nulls().to_list())
    text = "".join(p.read_text() for p in ws.logs_dir.glob("*.jsonl"))
    conn = sqlite3.connect(ws.ledger_path)
    text += json.dumps(conn.execute("SELECT * FROM audit").fetchall())
    conn.close()
    assert not [n for n in names if f'"{n}"' in text or f" {n} " in text]
    assert not (os.stat(ws.link_dir).st_mode & 0o077), "link outputs stay in the restricted zone"


def test_missing_data_and_bad_targets_are_clear_errors(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws", ["a"])
    out = run_cli("-w", ws.root, "link")
    assert out.returncode == 2 and "nothing to link" in out.stderr
    assert run_cli("-w", ws.root, "review", "export", tmp_path / "q.csv").returncode == 2
    with pytest.raises(UsageError):
        from cilink.link.restricted_csv import check_target

        check_target(ws, ws.releases_dir / "x.csv")


def test_demo_data_links_with_high_precision_and_recall(tmp_path: Path) -> None:
    """End to end on the demo generator's partner exports (the demo's own truth file scores it)."""
    from cilink.demo import generate_demo
    from cilink.ingest.batches import ingest_file
    from cilink.workspace import ensure_layout

    root = tmp_path / "demo"
    generate_demo(root, people=1500, seed=1)
    ensure_layout(root)
    ws = Workspace.open(root)
    for partner in ws.config.partners:
        for f in sorted(ws.inbox_dir(partner.id).iterdir()):
            ingest_file(ws, partner.id, f)
    assert run_cli("-w", root, "link").returncode == 0
    out = run_cli("-w", root, "evaluate", root / ".cilink" / "truth.csv", "--json")
    assert out.returncode == 0, out.stderr
    e = json.loads(out.stdout)
    assert e["precision"] >= 0.98 and e["f1"] >= 0.97, e
    assert e["missing_from_crosswalk"] == 0


def test_a_single_record_gets_a_person_id(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws", ["a"])
    stage_batch(ws, "a", partner_records(population(1, seed=2), "a", seed=1))
    result = link_workspace(ws)
    assert result.records == 1 and result.persons == 1 and result.candidate_pairs == 0
    assert len(crosswalk(ws)) == 1
