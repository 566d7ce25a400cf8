"""One pydantic model per domain: the single source of truth for fields, polars dtypes and JSON Schema."""

from __future__ import annotations

import datetime as dt
import types
import typing
from enum import Enum
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel

from cilink.schemas.housing import HousingRecord
from cilink.schemas.identity import IdentityRecord, RaceEthnicity
from cilink.schemas.school import SchoolRecord
from cilink.schemas.workforce import WorkforceRecord

SCHEMA_VERSION = 1

DOMAIN_MODELS: dict[str, type[IdentityRecord]] = {
    "school": SchoolRecord,
    "workforce": WorkforceRecord,
    "housing": HousingRecord,
}

#: Columns cilink adds to staged records; one reserved prefix.
META_PREFIX = "_cilink_"
META_COLUMNS: dict[str, pl.DataType] = {
    "_cilink_partner": pl.String(),
    "_cilink_batch_id": pl.String(),
    "_cilink_row": pl.Int64(),
    "_cilink_flags": pl.List(pl.String()),
}

__all__ = [
    "DOMAIN_MODELS",
    "META_COLUMNS",
    "SCHEMA_VERSION",
    "IdentityRecord",
    "RaceEthnicity",
    "domain_fields",
    "domain_model",
    "json_schema",
    "pii_fields",
    "polars_schema",
    "required_fields",
]


def domain_model(domain: str) -> type[IdentityRecord]:
    """The pydantic model for a domain (school, workforce, housing)."""
    try:
        return DOMAIN_MODELS[str(domain)]
    except KeyError:
        raise KeyError(f"unknown domain {domain!r}; known: {', '.join(DOMAIN_MODELS)}") from None


def domain_fields(domain: str) -> list[str]:
    """Canonical field names of a domain, identity fields first."""
    return list(domain_model(domain).model_fields)


def _extra(model: type[BaseModel], name: str) -> dict[str, Any]:
    extra = model.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def required_fields(domain: str) -> list[str]:
    """Fields a source row must have (missing or unparseable ⇒ quarantine)."""
    model = domain_model(domain)
    return [n for n in model.model_fields if _extra(model, n).get("required_in_source")]


def pii_fields(domain: str | None = None) -> list[str]:
    """Fields that identify a person and must never appear in a release."""
    model = domain_model(domain) if domain else IdentityRecord
    return [n for n in model.model_fields if _extra(model, n).get("pii")]


def _polars_dtype(annotation: Any) -> pl.DataType:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _polars_dtype(args[0])
    if origin is list:
        return pl.List(_polars_dtype(typing.get_args(annotation)[0]))
    if origin is Literal:
        values = typing.get_args(annotation)
        return pl.Int64() if all(isinstance(v, int) for v in values) else pl.String()
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return pl.String()
    mapping: dict[Any, pl.DataType] = {
        str: pl.String(),
        int: pl.Int64(),
        float: pl.Float64(),
        bool: pl.Boolean(),
        dt.date: pl.Date(),
    }
    if annotation in mapping:
        return mapping[annotation]
    raise TypeError(f"no polars dtype for {annotation!r}")


def polars_schema(domain: str, *, with_meta: bool = True) -> pl.Schema:
    """Polars schema of staged records for a domain, derived from its model (plus cilink meta columns)."""
    model = domain_model(domain)
    cols: dict[str, pl.DataType] = {n: _polars_dtype(f.annotation) for n, f in model.model_fields.items()}
    if with_meta:
        cols.update(META_COLUMNS)
    return pl.Schema(cols)


def json_schema(domain: str) -> dict[str, Any]:
    """JSON Schema of one staged record of a domain (written to schemas/<domain>.json)."""
    schema = domain_model(domain).model_json_schema()
    schema["$id"] = f"https://cilink.invalid/schemas/{domain}.json"
    schema["x-cilink-schema-version"] = SCHEMA_VERSION
    return schema
