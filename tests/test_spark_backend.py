"""The Spark backend gives the same pairs, clusters and person IDs as DuckDB (same data, same model).

Needs pyspark (the ``spark`` extra) and Java 17+: skipped without them, marked ``spark`` so CI can select
or deselect it (``pytest -m spark``). The missing-pyspark test runs everywhere.
"""

from __future__ import annotations

import importlib.util
import shutil
import textwrap
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cilink.config import EngineSettings, LinkSettings
from cilink.ledger import Ledger
from cilink.link import engine
from cilink.link.comparisons import link_spec
from cilink.link.linkage import current_records, link_workspace
from cilink.link.outputs import read_crosswalk, read_pairs
from cilink.link.records import KEY_COLUMNS
from cilink.operate.demo import run_demo
from cilink.operate.inbox import run_inbox
from cilink.workspace import Workspace, init_workspace

HAS_SPARK = importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None


def _use_local_spark(root: Path) -> None:
    cfg = root / "cilink.toml"
    text = cfg.read_text(encoding="utf-8")
    assert "[engine]" not in text  # the demo's config leaves the engine at its defaults (DuckDB)
    cfg.write_text(text + '\n[engine]\nspark_master = "local[2]"\n', encoding="utf-8")


def _outputs(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    link_dir = Workspace.open(root).link_dir
    crosswalk = read_crosswalk(link_dir)
    assert crosswalk is not None
    crosswalk = crosswalk.sort("record_id")
    pairs = read_pairs(link_dir).sort("record_id_l", "record_id_r")
    return crosswalk, pairs


@pytest.mark.spark
@pytest.mark.skipif(not HAS_SPARK, reason="needs pyspark (pip install 'cilink[spark]') and Java 17+")
def test_spark_links_like_duckdb(tmp_path: Path) -> None:
    """On Spark local[2], with the model trained on DuckDB: the same pairs, crosswalk and person IDs."""
    root = run_demo(tmp_path / "duck", people=300, seed=7, pipeline=False).workspace
    _use_local_spark(root)
    assert run_inbox(Workspace.open(root), link=False).exit_code == 0
    first = link_workspace(Workspace.open(root))  # trains the model on DuckDB, issues person IDs
    assert first.trained and first.links > 0
    spark_root = tmp_path / "spark"
    shutil.copytree(root, spark_root, symlinks=True)

    duck = link_workspace(Workspace.open(root), full=True)
    spark = link_workspace(Workspace.open(spark_root), full=True, backend="spark")
    assert not spark.trained  # the DuckDB-trained model, reused
    assert (spark.candidate_pairs, spark.links, spark.review_queue, spark.persons) == (
        duck.candidate_pairs, duck.links, duck.review_queue, duck.persons)
    duck_cw, duck_pairs = _outputs(root)
    spark_cw, spark_pairs = _outputs(spark_root)
    assert_frame_equal(spark_cw, duck_cw)  # same clusters, same person IDs
    assert_frame_equal(spark_pairs.drop("match_weight", "match_probability", pl.selectors.starts_with("w_")),
                       duck_pairs.drop("match_weight", "match_probability", pl.selectors.starts_with("w_")))
    assert_frame_equal(spark_pairs, duck_pairs, abs_tol=1e-6, rel_tol=1e-9)  # weights up to float noise

    # incremental scoring (new records against the others) returns the same frame on both backends
    ws = Workspace.open(spark_root)
    spec = link_spec(ws.config.link)
    with Ledger(ws.ledger_path) as ledger:
        records = current_records(ws, ledger.active_batches(), list(dict.fromkeys([*KEY_COLUMNS, *spec.columns])),
                                  None).all
    model = engine.load_model(ws.link_dir)
    assert model is not None
    new_ids = records["record_id"].sort().gather_every(10)
    on = {b: engine.score_new(model, records, new_ids, spec, min_weight=-10.0,
                              engine=ws.config.engine.model_copy(update={"backend": b}))
          for b in ("duckdb", "spark")}
    assert on["spark"].candidates == on["duckdb"].candidates
    assert_frame_equal(on["spark"].pairs, on["duckdb"].pairs, abs_tol=1e-6, rel_tol=1e-9)


def test_missing_pyspark_exits_2_with_install_command(tmp_path: Path, cli) -> None:
    init_workspace(tmp_path / "ws")
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys

        class _HidePyspark:
            def find_spec(self, name, path=None, target=None):
                if name == "pyspark" or name.startswith("pyspark."):
                    raise ImportError("No module named 'pyspark' (hidden by the test)")
                return None

        sys.meta_path.insert(0, _HidePyspark())
    """))
    r = cli("link", "--backend", "spark", cwd=tmp_path / "ws", env={"PYTHONPATH": str(hide)})
    assert r.returncode == 2, r.stderr
    assert "pip install 'cilink[spark]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_backend_for_chooses_the_backend_and_only_duckdb_replays_compiled_sql() -> None:
    """``[engine] backend`` picks one Backend; DuckDB's hands tables to Splink and back as polars, and only
    it replays compiled scoring SQL (on Spark ``compile_scoring`` compiles nothing). Runs without Spark."""
    duck = engine.backend_for(EngineSettings(backend="duckdb"))
    spark = engine.backend_for(EngineSettings(backend="spark"))
    assert isinstance(duck, engine.DuckDBBackend) and duck.name == "duckdb" and duck.replays_compiled_sql
    assert isinstance(spark, engine.SparkBackend) and spark.name == "spark" and not spark.replays_compiled_sql
    db = duck.db_api()
    frame = pl.DataFrame({"record_id_l": ["a", "b", "c"], "record_id_r": ["b", "c", "c"]})
    sdf = duck.register(db, frame, "pairs")
    with duck.recording(db) as statements:
        back = duck.predictions(db, sdf, ["record_id_l"], pl.col("record_id_l") != pl.col("record_id_r"))
    assert back.to_dicts() == [{"record_id_l": "a", "record_id_r": "b"}, {"record_id_l": "b", "record_id_r": "c"}]
    assert any("pairs" in sql for sql in statements)  # DuckDB records the SQL Splink ran to read it back
    with spark.recording(None) as nothing:
        assert nothing == []  # Spark records nothing: Splink runs there as usual
    model = engine.Model(settings={"comparisons": [], "probability_two_random_records_match": 0.01})
    spec = link_spec(LinkSettings())
    assert not engine.compile_scoring(model, spec, pl.DataFrame(), engine=EngineSettings(backend="spark"))
    assert model.scoring_sql is None
