"""The SQL backends Splink runs on, behind one ``Backend`` protocol: embedded DuckDB, or Spark for scale-out.

Modelled on Splink's own ``DatabaseAPI``: what differs between backends is how a Splink database API is made,
how a polars table reaches it, how its scored pairs come back as polars, and whether the scoring SQL it
compiles can be replayed (``cilink.link.engine.compiled``, DuckDB only). The SQL dialect is the Splink API's
own (``db.sql_dialect``). ``backend_for(EngineSettings)`` is the one place ``[engine] backend`` is read.

Spark: tables cross the driver boundary as Parquet files in a scratch directory under
``[engine] checkpoint_dir`` (a temporary directory when unset): cilink writes the linkable records there with
polars and Spark reads them; Spark writes the scored pairs there and cilink reads back, with polars, only the
columns and rows it keeps — the pair table is never collected through the driver. On a cluster,
``checkpoint_dir`` must be storage the driver and every executor see (a shared mount), as Splink also
checkpoints its intermediate tables there. This module is the only one that imports pyspark.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import polars as pl
import pyarrow  # noqa: F401  (imported up front: Splink needs it for every table it registers)

from cilink.config import EngineSettings
from cilink.errors import ConfigError
from cilink.link.engine import compiled

INSTALL_HINT = "pip install 'cilink[spark]' (pyspark 4.x, needs Java 17+), or set [engine] backend = \"duckdb\""


class Backend(Protocol):
    """What cilink needs from a SQL backend for Splink (one implementation per ``[engine] backend``)."""

    #: the ``[engine] backend`` value
    name: str
    #: whether Splink's scoring SQL, recorded once per model, can be replayed without Splink
    replays_compiled_sql: bool

    def check(self) -> None:
        """Fail fast (ConfigError, exit 2, with the install command) if this backend cannot run here."""
        ...

    def db_api(self) -> Any:
        """A fresh Splink database API (``DuckDBAPI``, ``SparkAPI``)."""
        ...

    def register(self, db: Any, frame: pl.DataFrame, name: str) -> Any:
        """``frame`` registered with ``db`` as the table ``name``; returns Splink's SplinkDataFrame."""
        ...

    def predictions(self, db: Any, sdf: Any, columns: list[str], where: pl.Expr | None = None) -> pl.DataFrame:
        """Splink's scored pairs ``sdf`` as polars: at least ``columns`` (those present), only rows matching
        ``where``."""
        ...

    def recording(self, db: Any) -> AbstractContextManager[list[str]]:
        """Record the SQL ``db`` runs inside the block (an empty list where it cannot be replayed)."""
        ...

    def release(self, db: Any) -> None:
        """Free what ``db`` holds now that its results are in polars (the caller no longer uses it)."""
        ...


def backend_for(engine: EngineSettings) -> Backend:
    """The backend ``[engine] backend`` names — the one place the backend is chosen.

    Example: ``backend_for(EngineSettings()).name == "duckdb"``
    """
    if engine.backend == "duckdb":
        return DuckDBBackend()
    if engine.backend == "spark":
        return SparkBackend(engine)
    raise ConfigError(f"unknown engine.backend {engine.backend!r}", hint="use duckdb or spark")


@contextlib.contextmanager
def quiet_splink() -> Iterator[None]:
    """Keep Splink's own log lines (progress, SQL) out of cilink's output; errors still raise."""
    logger = logging.getLogger("splink")
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        yield
    finally:
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def to_polars(sdf: Any) -> pl.DataFrame:
    """A (small) Splink result table as polars, through Arrow where the backend offers it."""
    if hasattr(sdf, "as_pyarrow_table"):
        try:
            return pl.from_arrow(sdf.as_pyarrow_table())  # type: ignore[return-value]
        except NotImplementedError:
            pass
    return pl.from_pandas(sdf.as_pandas_dataframe())


# --- DuckDB ------------------------------------------------------------------------------------------------


class DuckDBBackend:
    """Embedded, in-process DuckDB (the default): tables are handed over as Arrow, without a copy."""

    name = "duckdb"
    replays_compiled_sql = True

    def check(self) -> None:
        """Nothing to check: DuckDB is a dependency of cilink."""

    def db_api(self) -> Any:
        """A fresh in-memory Splink ``DuckDBAPI`` without DuckDB's progress bar (cilink renders its own)."""
        from splink import DuckDBAPI

        db = DuckDBAPI()
        db.duckdb_con.execute("SET enable_progress_bar = false")
        return db

    def register(self, db: Any, frame: pl.DataFrame, name: str) -> Any:
        """``frame`` handed to DuckDB as an Arrow table named ``name``."""
        return db.register(frame.to_arrow(), dataset_display_name=name)

    def predictions(self, db: Any, sdf: Any, columns: list[str], where: pl.Expr | None = None) -> pl.DataFrame:
        """Every column of the in-process result (``columns`` is for backends that pay per column)."""
        pred = to_polars(sdf)
        return pred if where is None else pred.filter(where)

    def recording(self, db: Any) -> AbstractContextManager[list[str]]:
        """The statements Splink's DuckDB API runs (``cilink.link.engine.compiled.recording``)."""
        return compiled.recording(db)

    def release(self, db: Any) -> None:
        """Close the in-process database now rather than whenever the garbage collector gets to the linker
        holding it: its tables are the largest allocation of a link (the candidate pairs with every
        record's columns) and the clustering that comes next would otherwise stack on top of them."""
        db.duckdb_con.close()


# --- Spark -------------------------------------------------------------------------------------------------

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


class SparkBackend:
    """Spark (``pip install 'cilink[spark]'``): tables in and out as Parquet in a scratch directory."""

    name = "spark"
    #: Spark runs Splink as usual: its SQL is not recorded
    replays_compiled_sql = False

    def __init__(self, engine: EngineSettings) -> None:
        self.engine = engine

    def check(self) -> None:
        """pyspark (and Splink's SparkAPI) must be importable."""
        require_pyspark()

    def db_api(self) -> Any:
        """A Splink ``SparkAPI`` whose intermediate tables and cilink's Parquet exchange live in a fresh scratch
        directory under ``engine.checkpoint_dir`` (removed when the process exits)."""
        from splink import SparkAPI

        spark = session(self.engine)
        base = Path(self.engine.checkpoint_dir) if self.engine.checkpoint_dir is not None \
            else Path(tempfile.gettempdir())
        scratch = base / f"cilink-spark-{uuid.uuid4().hex[:12]}"
        scratch.mkdir(parents=True, exist_ok=True)
        _scratch_dirs.append(scratch)
        spark.sparkContext.setCheckpointDir(str(scratch / "checkpoints"))
        # Splink materialises its intermediate tables as Parquet under the checkpoint directory (measured
        # faster than persist() even on a local master, and it survives a lost executor on a cluster)
        api = SparkAPI(spark_session=spark, break_lineage_method="parquet")
        api.cilink_scratch = scratch  # type: ignore[attr-defined]
        return api

    def register(self, db: Any, frame: pl.DataFrame, name: str) -> Any:
        """Register ``frame`` with Splink as a Spark table read from Parquet (written by polars): Spark reads
        the records from Parquet, not through the driver."""
        path = db.cilink_scratch / "inputs" / f"{name}-{uuid.uuid4().hex[:8]}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)
        db.spark.catalog.dropTempView(name)  # the session outlives a run: the last run's table of that name
        return db.register(db.spark.read.parquet(str(path)), dataset_display_name=name)

    def predictions(self, db: Any, sdf: Any, columns: list[str], where: pl.Expr | None = None) -> pl.DataFrame:
        """A Splink output table written by Spark as Parquet and read by polars: only ``columns`` (those
        present), only rows matching ``where`` — never collected through the driver."""
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

    def recording(self, db: Any) -> AbstractContextManager[list[str]]:
        """Nothing is recorded on Spark (see ``replays_compiled_sql``)."""
        return contextlib.nullcontext([])

    def release(self, db: Any) -> None:
        """Nothing to free here: the session is the process's, and its scratch files go at exit."""
