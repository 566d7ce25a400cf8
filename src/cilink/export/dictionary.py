"""The release's data dictionary: dictionary.json for programs and DICTIONARY.md for people.

Rendered from the column specs (cilink.export.columns) and the tables as built, so it documents exactly the
columns present. Closed-vocabulary columns list their values with counts; counts below ``min_cell`` are
shown as suppressed (null), as every aggregate cilink publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from cilink.config import ReleaseTier
from cilink.export.columns import EVENTS, PANEL, PERSONS, SPELLS, ColumnSpec
from cilink.export.generalize import ReleasePlan
from cilink.export.labels import agreement_lines, risk_table, tier_label, tier_of

FORMAT = "cilink-release/1"

TABLE_INFO: dict[str, dict[str, Any]] = {
    PERSONS: {"path": "persons.parquet", "grain": "one row per person", "key": ["person_key"]},
    EVENTS: {"path": "events/domain=<domain>/part-0.parquet", "grain": "one row per domain event "
             "(school enrollment year, workforce program participation, HMIS project enrollment)",
             "key": None, "partitioning": "hive: domain"},
    SPELLS: {"path": "spells.parquet", "grain": "one row per program spell",
             "key": ["person_key", "domain", "partner", "program", "spell_seq"]},
    PANEL: {"path": "panel.parquet", "grain": "one row per person and period, from the person's first to "
            "last observed period", "key": ["person_key", "period"]},
}


def dtype_name(dtype: pl.DataType) -> str:
    """A reader-neutral type name (Arrow/Parquet vocabulary)."""
    if isinstance(dtype, pl.List):
        return f"list<{dtype_name(dtype.inner)}>"
    names = {pl.String: "string", pl.Boolean: "boolean", pl.Int8: "int8", pl.Int16: "int16", pl.Int32: "int32",
             pl.Int64: "int64", pl.Float64: "double", pl.Date: "date"}
    for t, n in names.items():
        if dtype == t:
            return n
    return str(dtype).lower()


def suppress_small(n: int, min_cell: int) -> int | None:
    """A count as published: None (suppressed) when 0 < n < min_cell."""
    return None if 0 < n < min_cell else n


def raw_counts(frame: pl.DataFrame, specs: list[ColumnSpec]) -> dict[str, dict[str, int]]:
    """Counts per value of the closed-vocabulary columns of one table (or one part of it)."""
    out: dict[str, dict[str, int]] = {}
    for s in specs:
        if s.vocabulary is None or s.name not in frame.columns:
            continue
        values = frame.get_column(s.name)
        if isinstance(values.dtype, pl.List):
            values = values.explode()
        out[s.name] = {str(v): int(n) for v, n in values.drop_nulls().value_counts().iter_rows()}
    return out


def merge_counts(into: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    for col, counts in more.items():
        target = into.setdefault(col, {})
        for v, n in counts.items():
            target[v] = target.get(v, 0) + n
    return into


def table_entry(name: str, specs: list[ColumnSpec], rows: int, counts: dict[str, dict[str, int]],
                min_cell: int) -> dict[str, Any]:
    """One table of dictionary.json: every column with type, meaning, allowed values, counts, sources."""
    info: dict[str, Any] = {"table": name, **TABLE_INFO[name], "rows": rows}
    columns = []
    for s in specs:
        col: dict[str, Any] = {"name": s.name, "type": dtype_name(s.dtype), "description": s.description,
                               "source_fields": list(s.source)}
        if s.vocabulary is not None:
            col["allowed_values"] = list(s.vocabulary)
            present = counts.get(s.name, {})
            order = list(s.vocabulary) + sorted(v for v in present if v not in s.vocabulary)
            col["value_counts"] = {v: suppress_small(present[v], min_cell) for v in order if v in present}
        if s.separator:
            col["separator"] = s.separator
        if s.pattern:
            col["pattern"] = s.pattern
        if s.value_range:
            col["range"] = list(s.value_range)
        columns.append(col)
    info["columns"] = columns
    return info


def build_dictionary(tables: list[dict[str, Any]], plan: ReleasePlan,
                     manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """dictionary.json from the table entries (in release order).

    The tier, its label, the data-use agreement (research) and the risk figures are taken from ``manifest``
    (its ``tier``, ``label``, ``data_use_agreement`` and ``risk`` keys); without one the dictionary claims
    nothing beyond its columns.
    Example: ``build_dictionary(entries, plan, manifest)["label"]``
    """
    header: dict[str, Any] = {}
    notes = []
    if manifest is not None:
        tier = tier_of(manifest)
        label = manifest.get("label") or tier_label(tier)
        header = {"tier": tier, "label": label}
        if manifest.get("data_use_agreement"):
            header["data_use_agreement"] = dict(manifest["data_use_agreement"])
        if manifest.get("risk"):
            header["risk"] = manifest["risk"]
        notes.append(f"This release is {label}." + ("" if tier != ReleaseTier.RESEARCH else
                     " Use it only as its data-use agreement allows: " + "; ".join(agreement_lines(manifest)) + "."))
    notes += [
        "Dates are released as months (YYYY-MM text) or years (integers); no exact date leaves cilink. "
        f"Profile: {plan.description}.",
        f"value_counts below {plan.min_cell} are suppressed (null).",
        "person_key joins all tables; it is stable across releases for the same audience. Other audiences get "
        "other keys, which does not stop two releases being matched on their content.",
    ]
    return {"format": FORMAT, **header, "profile": plan.describe(), "notes": notes, "tables": tables}


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(dictionary: dict[str, Any]) -> str:
    """DICTIONARY.md: the same content as dictionary.json, as tables."""
    lines = ["# Data dictionary", ""]
    if dictionary.get("label"):
        label = dictionary["label"]
        lines += [f"**{label[0].upper() + label[1:]}** (tier `{dictionary['tier']}`).", ""]
    dua = dictionary.get("data_use_agreement") or {}
    lines += [f"- {line}" for line in agreement_lines(dictionary)] + ([""] if dua else [])
    if dictionary.get("risk"):
        lines += ["Re-identification risk measured on this release (every released column a quasi-identifier):",
                  "", risk_table(dictionary["risk"]), ""]
    lines += [f"Release format `{dictionary['format']}`, profile `{dictionary['profile']['profile']}`"
              + (f" — {dictionary['profile']['description']}" if "description" in dictionary["profile"] else "")
              + ".", ""]
    lines += [f"- {n}" for n in dictionary["notes"]] + [""]
    for t in dictionary["tables"]:
        lines += [f"## `{t['path']}`", "", f"{t['grain'].capitalize()}; {t['rows']} rows."
                  + (f" Key: {', '.join(t['key'])}." if t.get("key") else "")
                  + (f" Partitioned ({t['partitioning']})." if t.get("partitioning") else ""), "",
                  "| column | type | meaning | values | source fields |", "|---|---|---|---|---|"]
        for c in t["columns"]:
            if "value_counts" in c:
                values = ", ".join(f"`{v}` ({'<' + str(dictionary['profile']['min_cell']) if n is None else n})"
                                   for v, n in c["value_counts"].items())
                values = values or ", ".join(f"`{v}`" for v in c["allowed_values"])
            elif "allowed_values" in c:
                values = ", ".join(f"`{v}`" for v in c["allowed_values"])
            elif "range" in c:
                values = f"{c['range'][0]}–{c['range'][1]}"
            elif "pattern" in c:
                values = f"`{c['pattern']}`"
            else:
                values = ""
            lines.append("| " + " | ".join(_md_cell(x) for x in (
                f"`{c['name']}`", c["type"], c["description"], values, ", ".join(c["source_fields"]))) + " |")
        lines.append("")
    return "\n".join(lines)
