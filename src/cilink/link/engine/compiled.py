"""The model's incremental scoring SQL, compiled once by Splink and replayed on DuckDB by later runs.

Scoring a thousand new records against their neighbours takes DuckDB about 0.2 s; building a Splink linker
for it (settings parsed with sqlglot, the SQL pipeline generated statement by statement) takes longer than
that, on every run. The SQL depends only on the model's parameters, the comparison rules, the Splink version
and the columns scored — not on the data — so ``cilink.link.engine`` records the statements Splink runs for
``predict_between`` once per model (on empty tables), saves them beside the model, and replays them on a
plain DuckDB database with the same table names. Only the trained parameters and the tables cross; what
runs is still Splink's SQL, which is why a replayed and a Splink-run scoring give identical pairs (tested).

A cache whose key no longer matches (retrained model, changed rules, another Splink, other columns) is
ignored and recompiled; a replay that fails falls back to Splink. DuckDB only: Spark runs Splink as usual.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from cilink import atomic, parallel

SCORING_SQL_FILE = "model_scoring_sql.json"
#: Splink asks DuckDB for column names with these; they read metadata only and are not replayed
_METADATA_QUERY = "SELECT column_name FROM information_schema.columns"


def cache_key(settings: dict[str, Any], spec_fingerprint: str, splink_version: str, schema: pl.Schema,
              tf_columns: list[str]) -> str:
    """What the compiled SQL depends on, hashed."""
    payload = json.dumps({"settings": settings, "spec": spec_fingerprint, "splink": splink_version,
                          "columns": [[n, str(t)] for n, t in schema.items()], "tf": sorted(tf_columns)},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load(directory: Path) -> dict[str, Any] | None:
    """The compiled scoring SQL saved in ``directory`` (None if there is none or it is unreadable)."""
    path = directory / SCORING_SQL_FILE
    try:
        compiled = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return compiled if isinstance(compiled, dict) and isinstance(compiled.get("statements"), list) else None


def save(compiled: dict[str, Any], directory: Path) -> None:
    """Write the compiled SQL beside the model (restricted zone: it holds the model's weights, no records)."""
    atomic.write_text(directory / SCORING_SQL_FILE, json.dumps(compiled, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def recording(db_api: Any) -> Iterator[list[str]]:
    """Record the SQL statements a Splink DuckDB API runs inside the block (an empty list when this Splink
    version does not route them through ``_execute_sql_against_backend``: then nothing is cached)."""
    statements: list[str] = []
    run: Callable[..., Any] | None = getattr(db_api, "_execute_sql_against_backend", None)
    if run is None:
        yield statements
        return

    def record(sql: str, *args: Any, **kwargs: Any) -> Any:
        if not sql.lstrip().startswith(_METADATA_QUERY):
            statements.append(sql)
        return run(sql, *args, **kwargs)

    db_api._execute_sql_against_backend = record
    try:
        yield statements
    finally:
        del db_api._execute_sql_against_backend


def blocked_table(statements: list[str]) -> str | None:
    """The table the recorded blocking statement creates (Splink's candidate pairs), if there is one."""
    for sql in statements:
        if m := _BLOCKED.match(sql):
            return m.group(1)
    return None


def replay(statements: list[str], tables: dict[str, pl.DataFrame], blocked: pl.DataFrame | None = None,
           parts: int = 1) -> pl.DataFrame | None:
    """Run recorded statements on DuckDB with ``tables`` in place (by the names the SQL uses): the last
    statement's result, as polars — or None if the SQL does not fit the tables (the caller then lets Splink
    score).

    ``blocked``: the candidate pairs (``match_key``, ``join_key_l``, ``join_key_r``) when the caller has
    blocked already, exactly as the recorded blocking statement would (``cilink.link.engine`` does, and a
    test holds the two equal): that statement is skipped and the pairs stand in for its table, cut into
    ``parts`` slices scored side by side, each on its own cursor and thread (see ``_shared_database``).
    """
    name = blocked_table(statements)
    if blocked is None or name is None:
        return _replay_one(statements, tables)
    scoring = [sql for sql in statements if not _BLOCKED.match(sql) and not _METADATA.match(sql)
               and sql.strip() != f"DROP TABLE IF EXISTS {name}"]  # Splink's metadata look-ups go unused
    parts = max(1, min(parts, blocked.height // _MIN_SLICE))
    step = max(1, -(-blocked.height // parts))
    slices = [{**tables, name: blocked.slice(i, step)} for i in range(0, max(blocked.height, 1), step)]
    results = parallel.run_all(*(functools.partial(_replay_one, scoring, t) for t in slices))
    if any(r is None for r in results):
        return None
    return pl.concat(results, how="vertical_relaxed")  # type: ignore[arg-type]


_BLOCKED = re.compile(r"\s*CREATE TABLE (__splink__blocked_id_pairs_\w+) AS\b")
_METADATA = re.compile(r"\s*PRAGMA table_info\(", re.IGNORECASE)
#: the fewest candidate pairs worth a cursor and thread of their own
_MIN_SLICE = 2000

_database: duckdb.DuckDBPyConnection | None = None
_database_lock = threading.Lock()
_schemas = itertools.count()


def warm_up() -> None:
    """Open the process's scoring database on a worker thread, while the caller reads its records: opening
    a DuckDB database and its first string-similarity call cost tens of milliseconds."""
    parallel.background(_shared_database)


def _shared_database() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB database for every replay in this process. Slices run on cursors of it (a
    cursor costs microseconds, a database milliseconds) with one thread each: a few thousand pairs fit one
    DuckDB row group, so slicing, not DuckDB's own threads, is what puts a second core to work."""
    global _database
    with _database_lock:
        if _database is None:
            con = duckdb.connect(config={"threads": 1})
            con.execute("SET enable_progress_bar = false")
            con.execute("SELECT jaro_winkler_similarity('ann', 'anne'), damerau_levenshtein('ab', 'ba')").fetchall()
            _database = con
        return _database


def _replay_one(statements: list[str], tables: dict[str, pl.DataFrame]) -> pl.DataFrame | None:
    # each replay gets its own cursor and schema: the statements' table names are the same in every slice,
    # and the tables registered here are views private to the cursor
    con = _shared_database().cursor()
    schema = f"replay_{next(_schemas)}"
    try:
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(f"USE {schema}")
        for name, frame in tables.items():
            # newest Arrow layout: polars' own string views, handed to DuckDB without a copy
            con.register(name, frame.to_arrow(compat_level=pl.CompatLevel.newest()))
        for sql in statements[:-1]:
            con.execute(sql)
        return pl.from_arrow(con.sql(statements[-1]).to_arrow_table())  # type: ignore[return-value]
    except duckdb.Error:
        return None
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP SCHEMA {schema} CASCADE")
        con.close()
