"""What each canonical field is, read from the domain's pydantic model (the single source of truth).

The model's annotations and constraints (type, ``Literal`` values, ``ge``/``le``, ``pattern``,
``required_in_source``) become a FieldSpec; standardize.py and validate.py turn specs into polars
expressions. Nothing here repeats a dtype or a bound that the model already states.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt

from cilink.schemas import domain_model, required_fields


class Kind(StrEnum):
    TEXT = "text"
    DATE = "date"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CODE = "code"          # closed set of strings (Literal or Enum)
    CODE_LIST = "code_list"


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field: its kind, whether the source must give it, and its constraints."""

    name: str
    kind: Kind
    required: bool
    allowed: tuple[str, ...] = ()
    ge: float | None = None
    le: float | None = None
    pattern: str | None = None


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def _kind(annotation: Any) -> tuple[Kind, tuple[str, ...]]:
    a = _unwrap(annotation)
    origin = typing.get_origin(a)
    if origin is list:
        inner, allowed = _kind(typing.get_args(a)[0])
        return (Kind.CODE_LIST if inner == Kind.CODE else Kind.TEXT), allowed
    if origin is Literal:
        return Kind.CODE, tuple(str(v) for v in typing.get_args(a))
    if isinstance(a, type) and issubclass(a, Enum):
        return Kind.CODE, tuple(str(m.value) for m in a)
    simple = {str: Kind.TEXT, int: Kind.INT, float: Kind.FLOAT, bool: Kind.BOOL, dt.date: Kind.DATE}
    if a in simple:
        return simple[a], ()
    raise TypeError(f"no ingest kind for {a!r}")


def field_specs(domain: str) -> dict[str, FieldSpec]:
    """FieldSpecs of every field of a domain's model, in model order."""
    model = domain_model(domain)
    required = set(required_fields(domain))
    specs = {}
    for name, info in model.model_fields.items():
        kind, allowed = _kind(info.annotation)
        ge = le = pattern = None
        for m in info.metadata:
            if isinstance(m, Ge | Gt):
                ge = float(m.ge if isinstance(m, Ge) else m.gt)  # type: ignore[arg-type]
            elif isinstance(m, Le | Lt):
                le = float(m.le if isinstance(m, Le) else m.lt)  # type: ignore[arg-type]
            elif getattr(m, "pattern", None):
                pattern = m.pattern
        specs[name] = FieldSpec(name, kind, name in required, allowed, ge, le, pattern)
    return specs
