"""manifest.json: what a release is and what it was made from, with the sha256 of every file.

Everything in it is an input (release id, cilink version, config hash, profile, batches, link model) or a
property of the files; no wall-clock time, so re-exporting the same inputs with the same ``--release-id``
gives byte-identical releases. The creation time is kept in the ledger's ``releases`` table instead.
Counts taken from the restricted zone (batch rows, link pairs) are published with cells below
``min_cell`` suppressed (null).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cilink import __version__
from cilink.config import CilinkConfig
from cilink.export.dictionary import FORMAT, suppress_small
from cilink.export.sources import SourceData, file_sha256

MANIFEST = "manifest.json"

#: Manifest sections holding counts from the restricted zone; the gate checks them for small cells.
#: (Settings such as the seed live in ``link_model`` so that they are not mistaken for counts.)
AGGREGATE_SECTIONS = ("inputs.", "link.")


def link_counts(sources: SourceData, min_cell: int) -> dict[str, Any]:
    """What linkage produced, as counts: records, persons, scored pairs by decision."""
    cw = sources.crosswalk
    out: dict[str, Any] = {
        "records": suppress_small(cw.height, min_cell) if cw is not None else None,
        "persons": suppress_small(cw.get_column("person_id").n_unique(), min_cell) if cw is not None else None,
    }
    pairs = sources.pairs
    if pairs is not None and "decision" in pairs.columns:
        counts = pairs.group_by("decision").len()
        out["pairs_by_decision"] = {str(d): suppress_small(int(n), min_cell)
                                    for d, n in sorted(counts.iter_rows(), key=lambda r: str(r[0]))}
    return out


def link_model(sources: SourceData, cfg: CilinkConfig) -> dict[str, Any]:
    """The link model summary: settings and hashes, no identifiers and no model internals."""
    out: dict[str, Any] = {
        "crosswalk_sha256": sources.crosswalk_sha256, "link_threshold": cfg.link.link_threshold,
        "review_band": cfg.link.review_band, "seed": cfg.link.seed, "backend": cfg.engine.backend,
    }
    if sources.model_path is not None:
        out["model_sha256"] = file_sha256(sources.model_path)
        try:
            model = json.loads(sources.model_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            model = {}
        comparisons = model.get("comparisons") if isinstance(model, dict) else None
        if isinstance(comparisons, list):
            # only the names of the comparisons: levels' SQL may quote literal values
            out["comparisons"] = sorted(str(c.get("output_column_name")) for c in comparisons
                                        if isinstance(c, dict) and c.get("output_column_name"))
        if isinstance(model, dict) and isinstance(model.get("link_type"), str):
            out["link_type"] = model["link_type"]
    return out


def input_batches(sources: SourceData, min_cell: int) -> list[dict[str, Any]]:
    """The active batches the release was built from (ids, partner, file hash, row counts)."""
    return [{"batch_id": b.batch_id, "partner": b.partner, "domain": domain, "sha256": b.sha256,
             "rows_in": suppress_small(b.rows_in, min_cell), "accepted": suppress_small(b.accepted, min_cell),
             "quarantined": suppress_small(b.quarantined, min_cell)}
            for b, domain in sorted(sources.batches, key=lambda x: (x[0].partner, x[0].batch_id))]


def build_manifest(*, release_id: str, audience: str, config_sha256: str, plan: dict[str, Any], as_of: str,
                   anonymization: dict[str, Any], sources: SourceData, cfg: CilinkConfig,
                   rows: dict[str, int], gate_rules: list[str]) -> dict[str, Any]:
    """The manifest without its file list (added by ``add_files`` once the files exist)."""
    min_cell = int(plan["min_cell"])  # type: ignore[call-overload]
    return {
        "format": FORMAT,
        "release_id": release_id,
        "cilink_version": __version__,
        "config_sha256": config_sha256,
        "profile": plan,
        "audience": audience,
        "as_of": as_of,
        "person_key": {"algorithm": "HMAC-SHA256 of the internal person id, truncated to 128 bits (hex)",
                       "audience": audience},
        "anonymization": anonymization,
        "privacy_gate": {"passed": True, "rules": gate_rules},
        "row_counts": rows,
        "inputs": {"batches": input_batches(sources, min_cell)},
        "link": link_counts(sources, min_cell),
        "link_model": link_model(sources, cfg),
    }


def add_files(manifest: dict[str, Any], root: Path) -> dict[str, Any]:
    """Record the sha256 and size of every file under ``root`` (except the manifest itself)."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == MANIFEST:
            continue
        files[rel] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    return {**manifest, "files": files}


def dumps(doc: dict[str, Any]) -> str:
    """Canonical JSON (sorted keys, fixed indent, trailing newline) so equal content gives equal bytes."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
