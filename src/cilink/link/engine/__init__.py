"""The Splink adapter — the only package that imports splink, duckdb or pyspark (style rule 5; ruff holds it).

It turns cilink rule specs (``cilink.link.comparisons``) into Splink settings (``settings``), trains the
Fellegi–Sunter model (``training``: prior from deterministic rules, u by seeded random sampling, m by EM),
scores pairs — all of them, or new records against their neighbours and within themselves (``scoring``,
replaying Splink's SQL compiled once per model: ``compiled``) — and saves and loads the model
(``model_io``). Tables go in and come out as polars frames; the SQL backend (embedded DuckDB by default,
Spark for scale-out) is one ``Backend`` chosen by ``backend_for`` from ``[engine] backend`` (``backend``).

Term frequencies are part of the model: they are computed from the training records and frozen with it, so
an incremental run and a full run score any pair identically. Values first seen after training get no
term-frequency adjustment (the level's average weight) until ``cilink link --retrain``.

Use it as ``from cilink.link import engine`` and ``engine.train(...)``, ``engine.score_new(...)``.
"""

from __future__ import annotations

from cilink.config import EngineSettings
from cilink.link.engine.backend import Backend, DuckDBBackend, SparkBackend, backend_for
from cilink.link.engine.model_io import (
    MODEL_FILE,
    MODEL_META_FILE,
    MODEL_TF_FILE,
    LevelWeight,
    LinkEngineError,
    Model,
    load_model,
    model_weights,
    save_model,
)
from cilink.link.engine.scoring import (
    Scored,
    compile_scoring,
    pairs_schema,
    prepare_scoring,
    save_scoring_sql,
    score_all,
    score_new,
    tf_lookup,
)
from cilink.link.engine.settings import UNIQUE_ID
from cilink.link.engine.training import HOUSEHOLD_LIFT, M_FLOOR, MIN_EM_PAIRS, U_FLOOR, train


def check_backend(engine: EngineSettings) -> None:
    """Fail fast (ConfigError, exit 2, with the install command) if the chosen backend cannot run here."""
    backend_for(engine).check()


__all__ = [
    "HOUSEHOLD_LIFT",
    "MIN_EM_PAIRS",
    "MODEL_FILE",
    "MODEL_META_FILE",
    "MODEL_TF_FILE",
    "M_FLOOR",
    "UNIQUE_ID",
    "U_FLOOR",
    "Backend",
    "DuckDBBackend",
    "LevelWeight",
    "LinkEngineError",
    "Model",
    "Scored",
    "SparkBackend",
    "backend_for",
    "check_backend",
    "compile_scoring",
    "load_model",
    "model_weights",
    "pairs_schema",
    "prepare_scoring",
    "save_model",
    "save_scoring_sql",
    "score_all",
    "score_new",
    "tf_lookup",
    "train",
]
