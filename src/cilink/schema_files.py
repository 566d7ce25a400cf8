"""The generated JSON Schema documents in schemas/: one per domain and one for cilink.toml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cilink.config import CilinkConfig
from cilink.schemas import DOMAIN_MODELS, json_schema

SCHEMA_NAMES = [*DOMAIN_MODELS, "config"]


def schema_document(name: str) -> dict[str, Any]:
    """JSON Schema for a domain's staged records, or for cilink.toml when ``name == "config"``."""
    if name == "config":
        doc = CilinkConfig.model_json_schema()
        doc["$id"] = "https://cilink.invalid/schemas/config.json"
        return doc
    if name not in DOMAIN_MODELS:
        raise KeyError(f"unknown schema {name!r}")
    return json_schema(name)


def write_schema_files(directory: Path) -> list[Path]:
    """Regenerate schemas/*.json (run by `python -m cilink.schema_files`)."""
    paths = []
    for name in SCHEMA_NAMES:
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema_document(name), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    write_schema_files(Path(__file__).resolve().parents[2] / "schemas")
