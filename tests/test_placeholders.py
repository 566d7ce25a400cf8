"""Placeholder names ("Baby Boy", "Unknown", "FNU") count as missing, and a nameless record is not linked
to one of two twins it cannot tell apart (issue 20)."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from cilink.link.decisions import GUARD_NAMELESS, Thresholds, nameless_ambiguous
from cilink.link.evaluate import evaluate_workspace
from cilink.link.linkage import link_workspace
from cilink.link.outputs import read_pairs, read_records
from cilink.link.records import build_records
from cilink.link.review import import_decisions
from cilink.workspace import Workspace
from tests.link_synth import new_workspace, partner_records, population, stage_batch, staged_frame

PLACEHOLDERS = ["baby boy", "baby girl", "child", "unknown", "fnu", "infant", "son", "daughter"]


def test_records_null_placeholders_and_keep_a_real_name_given_earlier() -> None:
    people = population(6, seed=3)
    recs = partner_records(people, "h", seed=1, noise=0)
    first = recs["first_name"].to_list()
    first[0], first[2] = "baby boy", "Mister"
    last = recs["last_name"].to_list()
    last[1] = "doe"
    recs = recs.with_columns(pl.Series("first_name", first), pl.Series("last_name", last))
    earlier = partner_records(people.head(1), "h", seed=1, noise=0)  # the same client, named, a batch before
    staged = pl.concat([staged_frame(earlier.drop("true_id"), "h", "b1"),
                        staged_frame(recs.drop("true_id"), "h", "b2")])
    out = build_records(staged, {"b1": 0, "b2": 1}, placeholder_names=["Mister"]).sort("source_person_id")
    first, last, flag = out["first_name"].to_list(), out["last_name"].to_list(), out["_cilink_name_placeholder"]
    assert first[0] == people["first_name"][0]  # the placeholder came later, yet the real name stands
    assert last[1] is None and first[2] is None  # "doe" built in, "Mister" from the config
    assert flag.to_list()[:3] == [True, True, True] and not any(flag.to_list()[3:])


def _pairs(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"record_id_l": pl.String, "record_id_r": pl.String,
                                      "match_weight": pl.Float64}, orient="row")


def test_a_nameless_record_is_held_only_when_one_partner_offers_two_candidates() -> None:
    t = Thresholds(link=4.0, band=4.0)
    pairs = _pairs([("h:1", "s:1", 9.0), ("h:1", "s:2", 8.0),  # twins at the school
                    ("h:2", "s:3", 9.0), ("h:2", "w:7", 8.0),  # one person at two partners
                    ("h:3", "s:4", 9.0), ("h:3", "s:5", 2.0)])  # the second candidate is below the threshold
    held = nameless_ambiguous(pairs, t, pl.Series(["h:1", "h:2", "h:3"]))
    assert held.rows() == [("h:1", "s:1"), ("h:1", "s:2")]
    assert nameless_ambiguous(pairs, t, pl.Series([], dtype=pl.String)).is_empty()
    # ambiguous at the school: its candidate elsewhere waits too; two nameless records wait; an SSN decides
    more = _pairs([("h:1", "s:1", 9.0), ("h:1", "s:2", 8.0), ("h:1", "w:1", 9.0), ("h:4", "h:5", 9.0),
                   ("h:6", "s:8", 9.0), ("h:6", "s:9", 9.0)]).with_columns(
        pl.Series("w_ssn", [0.0, 0.0, 0.0, 0.0, 12.0, -5.0]))
    held = nameless_ambiguous(more, t, pl.Series(["h:1", "h:4", "h:5", "h:6"]))
    assert held.rows() == [("h:1", "s:1"), ("h:1", "s:2"), ("h:1", "w:1"), ("h:4", "h:5"), ("h:6", "s:9")]


@pytest.fixture(scope="module", autouse=True)
def _module_secret(module_secret: None) -> None:
    """Module-scoped workspaces below are linked with the test secret."""


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory):
    """A school (names as given) and an HMIS provider that wrote a placeholder for some children's first name."""
    people = population(700, seed=21)
    rng = random.Random(5)
    kids = people.filter(pl.col("dob").dt.year() >= 2006)
    school = partner_records(kids, "s", seed=1)
    hmis = partner_records(kids.sample(fraction=0.6, seed=3), "h", seed=2)
    hmis = hmis.with_columns(pl.Series("first_name", [rng.choice(PLACEHOLDERS) if rng.random() < 0.35 else f
                                                      for f in hmis["first_name"]]))
    ws = new_workspace(tmp_path_factory.mktemp("placeholders") / "ws", ["s", "h"])
    stage_batch(ws, "s", school)
    stage_batch(ws, "h", hmis)
    link_workspace(ws)
    truth = {f"{p}:{r}": t for p, f in (("s", school), ("h", hmis)) for r, t in f.select("source_person_id",
                                                                                          "true_id").iter_rows()}
    twins = set(kids.filter(pl.len().over("last_name", "dob", "street") > 1)["true_id"])
    return ws, hmis, truth, twins


def test_placeholder_children_link_and_twins_go_to_review(linked) -> None:
    ws, hmis, truth, twins = linked
    pairs = read_pairs(ws.link_dir)
    nameless = {f"h:{r}" for r, f in hmis.select("source_person_id", "first_name").iter_rows() if f in PLACEHOLDERS}
    assert len(nameless) > 40
    links = pairs.filter(pl.col("decision") == "link")
    placeholder_links = links.filter(pl.col("record_id_l").is_in(list(nameless))
                                     | pl.col("record_id_r").is_in(list(nameless)))
    right = [truth[a] == truth[b] for a, b in placeholder_links.select("record_id_l", "record_id_r").iter_rows()]
    # most nameless children are found automatically, and no link of them is wrong
    assert len(right) >= 0.7 * sum(1 for r in nameless if truth[r] not in twins)
    assert all(right)
    # a nameless twin is never linked to one twin automatically: both candidates wait for a reviewer
    held = pairs.filter(pl.col("guard") == GUARD_NAMELESS)
    assert held.height >= 2 and set(held["decision"]) == {"review"}
    for a, b in held.select("record_id_l", "record_id_r").iter_rows():
        assert truth[a] in twins or truth[b] in twins


def test_incremental_after_a_review_equals_a_full_run(linked, tmp_path: Path) -> None:
    ws, _, truth, _ = linked
    held = read_pairs(ws.link_dir).filter(pl.col("guard") == GUARD_NAMELESS)
    a, b = held.select("record_id_l", "record_id_r").row(0)
    decision = "match" if truth[a] == truth[b] else "non_match"
    review = tmp_path / "review.csv"
    pl.DataFrame({"record_id_l": [a], "record_id_r": [b], "decision": [decision]}).write_csv(review)
    import_decisions(ws, review)
    incremental = link_workspace(ws)
    assert incremental.mode == "incremental"
    after = read_pairs(ws.link_dir).sort("record_id_l", "record_id_r").select("record_id_l", "record_id_r",
                                                                              "decision", "guard")
    link_workspace(ws, full=True)
    full = read_pairs(ws.link_dir).sort("record_id_l", "record_id_r").select("record_id_l", "record_id_r",
                                                                             "decision", "guard")
    assert after.equals(full)


def test_a_new_placeholder_list_rebuilds_every_record(tmp_path: Path) -> None:
    people = population(80, seed=4)
    ws = new_workspace(tmp_path / "ws", ["s", "h"])
    stage_batch(ws, "s", partner_records(people, "s", seed=1))
    stage_batch(ws, "h", partner_records(people.head(40), "h", seed=2))
    link_workspace(ws)
    name = people["first_name"][0]
    text = (ws.root / "cilink.toml").read_text().replace("[link]\n", f'[link]\nplaceholder_names = ["{name}"]\n')
    (ws.root / "cilink.toml").write_text(text)
    again = Workspace.open(ws.root)
    link_workspace(again)  # no --full: the list alone makes the records be rebuilt
    records = read_records(again.link_dir)
    assert records is not None
    named = records.filter(pl.col("_cilink_name_placeholder"))
    assert named.height >= 2 and named["first_name"].null_count() == named.height
    assert not records["first_name"].is_in([name]).any()


def test_evaluate_reports_what_review_and_blocking_could_reach(linked, tmp_path: Path) -> None:
    ws, _, truth, _ = linked
    truth_file = tmp_path / "truth.csv"
    pl.DataFrame([(r.split(":")[0], r.split(":")[1], t) for r, t in truth.items()],
                 schema=["partner", "source_person_id", "true_id"], orient="row").write_csv(truth_file)
    e = evaluate_workspace(ws, truth_file)
    by_pair = {(r["partner_a"], r["partner_b"]): r for r in e.by_partner_pair or []}
    assert sum(r["true_pairs"] for r in by_pair.values()) == e.true_pairs
    for r in by_pair.values():  # only candidates are scored
        assert r["scored_share"] <= r["blocked_share"]
    assert ("h", "s") in by_pair and by_pair[("h", "s")]["true_pairs"] > 100
    # a perfect reviewer decides the nameless twins' pairs too: never worse than the links alone
    assert e.perfect_review_f1 is not None and e.perfect_review_f1 >= e.f1
    people = {}
    for rid, pid in read_records(ws.link_dir).select("record_id").join(
            crosswalk_of(ws), on="record_id").iter_rows():
        people.setdefault(truth[rid], set()).add(pid)
    members: dict[str, set[str]] = {}
    for rid, pid in crosswalk_of(ws).iter_rows():
        members.setdefault(pid, set()).add(truth[rid])
    exact = sum(1 for pids in people.values() if len(pids) == 1 and len(members[next(iter(pids))]) == 1)
    assert e.exact_persons_share == round(exact / len(people), 6)


def crosswalk_of(ws: Workspace) -> pl.DataFrame:
    from cilink.link.outputs import read_crosswalk

    cw = read_crosswalk(ws.link_dir, ["record_id", "person_id"])
    assert cw is not None
    return cw
