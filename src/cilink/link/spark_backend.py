"""Spark for the Splink adapter: the session, and Parquet in and out of it.

Reached only through ``cilink.link.engine`` (style rule 5): this module and ``engine`` are the only ones that
import splink, and this is the only one that imports pyspark. Tables cross the driver boundary as Parquet
files in a scratch directory under ``[engine] checkpoint_dir`` (a temporary directory when unset): cilink
writes the linkable records there with polars and Spark reads them; Spark writes the scored pairs there and
cilink reads back, with polars, only the columns and rows it keeps — the pair table is never collected
through the driver. On a cluster, ``checkpoint_dir`` must be storage the driver and every executor see
(a shared mount), as Splink also checkpoints its intermediate tables there.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from cilink.config import EngineSettings
from cilink.errors import ConfigError

INSTALL_HINT = "pip install 'cilink[spark]' (pyspark 4.x, needs Java 17+), or set [engine] backend = \"duckdb\""

_scratch_dirs: list[Path] = []


def require_pyspark() -> None:
    """Raise a ConfigError (exit 2) with the install command when pyspark cannot be imported."""
    try:
        import pyspark  # noqa: F401
        from splink import SparkAPI  # noqa: F401
    except ImportError as e:
        raise ConfigError("engine.backend = 'spark' but pyspark is not installed", hint=INSTALL_HINT) from e


def _cleanup() -> None:
    for d in _scratch_dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def session(engine: EngineSettings) -> Any:
    """The process's SparkSession for ``engine`` (created once; Spark allows one per JVM)."""
    require_pyspark()
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    builder = SparkSession.builder.master(engine.spark_master).appName("cilink")
    # Splink's similarity functions (jaro_winkler, damerau_levenshtein …) are Scala UDFs in a jar it ships
    conf = {"spark.jars": similarity_jar_location(), "spark.ui.showConsoleProgress": "false"}
    if engine.spark_master.startswith("local"):
        # Spark's default of 200 shuffle partitions is sized for clusters: on a local master it turns every
        # small stage into 200 tasks; two per core keeps both cores busy
        partitions = str(2 * _local_cores(engine.spark_master))
        conf["spark.sql.shuffle.partitions"] = partitions
        conf["spark.default.parallelism"] = partitions
    conf.update(engine.spark_conf)
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _local_cores(master: str) -> int:
    m = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    cores = m.group(1) if m else None  # local = one core, local[N], local[*] = all of them
    if cores == "*":
        return os.cpu_count() or 1
    return int(cores) if cores else 1


def db_api(engine: EngineSettings) -> Any:
    """A Splink ``SparkAPI`` whose intermediate tables and cilink's Parquet exchange live in a fresh scratch
    directory under ``engine.checkpoint_dir`` (removed when the process exits)."""
    from splink import SparkAPI

    spark = session(engine)
    base = Path(engine.checkpoint_dir) if engine.checkpoint_dir is not None else Path(tempfile.gettempdir())
    scratch = base / f"cilink-spark-{uuid.uuid4().hex[:12]}"
    scratch.mkdir(parents=True, exist_ok=True)
    _scratch_dirs.append(scratch)
    spark.sparkContext.setCheckpointDir(str(scratch / "checkpoints"))
    # Splink materialises its intermediate tables as Parquet under the checkpoint directory (measured
    # faster than persist() even on a local master, and it survives a lost executor on a cluster)
    api = SparkAPI(spark_session=spark, break_lineage_method="parquet")
    api.cilink_scratch = scratch  # type: ignore[attr-defined]
    return api


def is_spark(db: Any) -> bool:
    """Whether ``db`` is a Splink SparkAPI (without importing pyspark when it is not)."""
    return type(db).__name__ == "SparkAPI"


def register(db: Any, frame: pl.DataFrame, name: str) -> Any:
    """Register ``frame`` with Splink as a Spark table read from Parquet (written by polars)."""
    path = db.cilink_scratch / "inputs" / f"{name}-{uuid.uuid4().hex[:8]}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    db.spark.catalog.dropTempView(name)  # the session outlives a run: the last run's table of that name
    return db.register(db.spark.read.parquet(str(path)), dataset_display_name=name)


def read_back(db: Any, sdf: Any, columns: list[str], where: pl.Expr | None = None) -> pl.DataFrame:
    """A Splink output table written by Spark as Parquet and read by polars: only ``columns`` (those
    present), only rows matching ``where``."""
    spark_df = sdf.as_spark_dataframe()
    keep = [c for c in columns if c in spark_df.columns]
    path = db.cilink_scratch / "outputs" / f"{sdf.templated_name}-{uuid.uuid4().hex[:8]}"
    spark_df.select(*keep).write.mode("overwrite").parquet(str(path))
    files = sorted(path.glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema={c: pl.String for c in keep})
    lazy = pl.scan_parquet(files)
    if where is not None:
        lazy = lazy.filter(where)
    return lazy.select(keep).collect()
