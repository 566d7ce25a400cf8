"""Golden files: the pairs and clusters of a fixed 20-person fixture, checked in under tests/golden/.

A change that moves a single weight, decision or cluster shows up here as a diff a reviewer can read. When
the change is intended, regenerate with ``CILINK_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py``
and commit the new files with the change that explains them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from cilink.link.linkage import link_workspace
from cilink.link.outputs import read_crosswalk, read_pairs
from tests.link_synth import new_workspace, partner_records, population, stage_batch

GOLDEN = Path(__file__).parent / "golden"


def _check(name: str, value: object) -> None:
    path = GOLDEN / name
    text = json.dumps(value, indent=1, sort_keys=True) + "\n"
    if os.environ.get("CILINK_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with CILINK_UPDATE_GOLDEN=1 once and commit it"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text), (
        f"{name} differs from the golden file; if the change is intended, regenerate (see the module docstring)")


def test_pairs_and_clusters_of_the_20_person_fixture(tmp_path: Path) -> None:
    people = population(20, seed=20)
    ws = new_workspace(tmp_path / "ws", ["a", "b"])
    stage_batch(ws, "a", partner_records(people, "a", seed=1))
    stage_batch(ws, "b", partner_records(people.sample(n=14, seed=2), "b", seed=2))
    link_workspace(ws)
    pairs = read_pairs(ws.link_dir)
    assert pairs is not None
    _check("pairs-20.json", [
        {"left": a, "right": b, "decision": d, "guard": g, "weight": round(w, 2)}
        for a, b, d, g, w in pairs.sort("record_id_l", "record_id_r")
        .select("record_id_l", "record_id_r", "decision", "guard", "match_weight").iter_rows()])
    crosswalk = read_crosswalk(ws.link_dir, ["record_id", "person_id"])
    assert crosswalk is not None
    # person ids are random by design: a cluster is named by its smallest record id
    clusters = crosswalk.with_columns(pl.col("record_id").min().over("person_id").alias("cluster"))
    _check("clusters-20.json", dict(clusters.select("record_id", "cluster").sort("record_id").iter_rows()))


def test_release_dictionary_of_the_20_person_fixture(tmp_path: Path) -> None:
    from cilink.export import export_release
    from tests.release_fixtures import build_release_workspace

    fx = build_release_workspace(tmp_path / "ws", n_persons=20, seed=20)
    export_release(fx.ws, release_id="golden")
    dictionary = json.loads((fx.ws.root / "releases" / "golden" / "dictionary.json").read_text(encoding="utf-8"))
    _check("dictionary-20.json", dictionary)
