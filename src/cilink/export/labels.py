"""What a release says about itself: its tier's label and, for the research tier, the data-use agreement.

One wording for manifest.json, README.md and the dictionary, so the three cannot drift apart. A release
that is not de-identified says so in its first lines, names who may hold it and until when, and states its
measured risk instead of claiming a protection (issue 18, point 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cilink.config import ReleaseTier

#: The label each tier carries in its manifest, README and dictionary.
TIER_LABELS: dict[str, str] = {
    ReleaseTier.AGGREGATE: "aggregate tables only — no record-level data",
    ReleaseTier.DEIDENTIFIED: "de-identified person-level data — passed the privacy gate on the whole released "
    "record",
    ReleaseTier.RESEARCH: "pseudonymised personal data — not de-identified",
}

#: The agreement fields, in the order a release names them (config.RESEARCH_KEYS).
AGREEMENT_FIELDS = (("recipient", "Recipient"), ("agreement", "Data-use agreement"), ("purpose", "Purpose"),
                    ("expires", "Expires"))


def tier_label(tier: str) -> str:
    """The label of a tier (``"research"`` → "pseudonymised personal data — not de-identified")."""
    return TIER_LABELS[ReleaseTier(tier)]


def release_header(tier: str, agreement: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest keys naming a release's tier: ``tier``, ``label`` and (research) ``data_use_agreement``.

    Example: ``manifest.update(release_header("research", {"recipient": …, "agreement": …, …}))``
    """
    out: dict[str, Any] = {"tier": str(ReleaseTier(tier)), "label": tier_label(tier)}
    if agreement:
        out["data_use_agreement"] = {k: str(agreement[k]) for k, _ in AGREEMENT_FIELDS if agreement.get(k)}
    return out


def tier_of(manifest: Mapping[str, Any]) -> str:
    """The tier a manifest declares; a manifest from before tiers carried full detail, i.e. research."""
    return str(manifest.get("tier") or ReleaseTier.RESEARCH)


def agreement_lines(manifest: Mapping[str, Any]) -> list[str]:
    """``Recipient: …`` lines of the manifest's data-use agreement (empty without one)."""
    dua = manifest.get("data_use_agreement") or {}
    return [f"{title}: {dua[k]}" for k, title in AGREEMENT_FIELDS if dua.get(k)]


def percent(x: float | None) -> str:
    """A share as a percentage with one decimal ("–" for none)."""
    return "–" if x is None else f"{100 * x:.1f}%"


def risk_table(risk: Mapping[str, Any]) -> str:
    """The manifest's ``risk`` figures as a Markdown table (joined record, persons table)."""
    rows = [("everything released, joined on `person_key`", risk["joined_record"]),
            ("`persons.parquet` alone", risk["persons_table"])]
    lines = ["| record | persons | unique | smallest class | mean individual risk | largest individual risk |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {what} | {f['persons']} | {percent(f['share_unique'])} | {f['min_class_size']} | "
              f"{f['mean_individual_risk']} | {f['max_individual_risk']} |" for what, f in rows]
    return "\n".join(lines)


__all__ = ["TIER_LABELS", "agreement_lines", "percent", "release_header", "risk_table", "tier_label", "tier_of"]
