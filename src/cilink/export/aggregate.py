"""The ``aggregate`` tier: tables only — the shared measures and the report — for partners, funders and the public.

``stage_aggregate`` writes into the staging directory (``releases/<release_id>/`` once published):

- ``indicators.csv`` (formula-safe) and ``indicators.parquet``: every indicator per period and breakdown group;
- ``report.html``: the linkage report with the same indicators (``cilink.report.document.compose_report``);
- ``dictionary.json``: what each column and indicator means and the suppression rule — no counts;
- ``README.md``; ``manifest.json`` (written by export): what the release was made from — no counts.

No file holds a record of a person, and every count is protected as one disclosure surface: the report's
sections and the indicators are registered in one ``Cells`` registry, related through the units they count
(persons, school years, exits, staged rows, pairs), and suppressed together with what the previous
aggregate release of the workspace printed (``cilink.report.history``), so no count of 1 to min_cell − 1
can be worked out by subtracting counts within a file, across files, or across two consecutive releases.
The manifest and dictionary carry no counts at all (the manifest of the other tiers prints batch row counts;
here they are only in the report, under the same suppression). The counts come from the full-detail data in
the restricted zone (``cilink.export.detail``).

The state the next release is checked against is staged beside the release and made final by
``commit_aggregate_state`` once the release is published.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cilink import __version__, atomic
from cilink.config import config_hash
from cilink.export import privacy_gate as gate
from cilink.export.detail import detailed_release
from cilink.export.manifest import dumps
from cilink.export.person_keys import DEFAULT_AUDIENCE
from cilink.export.restricted_values import collect_restricted_values
from cilink.indicators.compute import COLUMNS, definitions_document
from cilink.indicators.definitions import indicator_definitions
from cilink.ingest.quarantine import neutralize_formulas
from cilink.ledger import Ledger
from cilink.report import history, sections
from cilink.report.document import compose_report
from cilink.workspace import Workspace

if TYPE_CHECKING:
    from cilink.export.release import StageContext

FORMAT = "cilink-aggregate-release/1"
INDICATORS_CSV, INDICATORS_PARQUET, REPORT, DICTIONARY, README = (
    "indicators.csv", "indicators.parquet", "report.html", "dictionary.json", "README.md")

#: What each file of an aggregate release holds (manifest ``contents``, README).
CONTENTS = {
    INDICATORS_CSV: "the shared measures: one row per indicator, period and breakdown group (formula-safe CSV)",
    INDICATORS_PARQUET: "the same table as Parquet",
    REPORT: "the linkage report: ingest reconciliation, data quality, linkage model, overlap between partners, "
            "linked vs. unlinked records, and the shared measures (self-contained HTML, works offline)",
    DICTIONARY: "what every column and indicator means, and the suppression rule",
    README: "this release in words",
}

#: indicators.csv columns.
COLUMN_MEANINGS = {
    "indicator": "indicator id (see indicators below)", "title": "indicator title",
    "statistic": "share (numerator / denominator, in %) or median:<column>",
    "unit": "what is counted: school_year, graduation_cohort, workforce_exit, housing_exit, person, panel",
    "period": "the period of the row (school year, cohort, exit year …; 'all' when the unit has none)",
    "breakdown": "the breakdown column ('all': no breakdown)", "group": "the breakdown value ('all')",
    "numerator": "units meeting the measure (empty: withheld, or a median)",
    "denominator": "units in the population (empty: withheld)",
    "value": "% for shares, USD for medians (empty: withheld, because a count it rests on is)",
    "suppressed": "true when a count of the row is withheld",
}


def suppression_rule(min_cell: int) -> str:
    """The rule in words (dictionary, README, manifest)."""
    return (f"Counts of 1 to {min_cell - 1} are withheld, and so is any further count from which a withheld one "
            "could be worked out — by subtracting or adding counts in the same table, in another table or file "
            "of this release, or in the previous aggregate release. Zeros are printed. A share or median whose "
            "counts are withheld is withheld too.")


def stage_aggregate(ctx: StageContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write an aggregate release's files into ``ctx.tmp`` (a ``cilink.export.release.StageContext``).

    Returns the manifest (without its file list) and the audit inputs; raises PrivacyGateRefused (exit 5)
    if a document would carry an identifier. The state for the next release is staged as pending
    (``commit_aggregate_state`` makes it final).
    """
    ws = ctx.ws
    cfg = ws.config
    min_cell = ctx.plan.min_cell
    rid, tmp = ctx.release_id, ctx.tmp
    aud = cfg.export.audience(ctx.audience) if ctx.audience != DEFAULT_AUDIENCE else None
    rctx = sections.load_context(ws)
    if rctx.generation is None or rctx.crosswalk is None:
        from cilink.errors import WorkspaceError

        raise WorkspaceError("nothing to export: the workspace has not been linked yet",
                             hint="ingest partner files and run `cilink link` first")
    earlier = history.latest(ws)
    batches = sorted((b for b in rctx.batches if b.status == "active"), key=lambda b: (b.partner, b.batch_id))
    inputs = {"config_sha256": config_hash(ws.config_path), "batches": [b.batch_id for b in batches],
              "audience": ctx.audience, "release_id": rid,
              "checked_against": earlier.release_id if earlier is not None else None,
              # the audit log says what each noisy release spent (n releases to one audience: n × ε)
              **({"dp_epsilon": aud.dp_epsilon} if aud is not None and aud.dp_epsilon is not None else {})}
    ctx.log.event("start_aggregate", checked_against=inputs["checked_against"])
    with detailed_release(ws, ctx.log) as detail:
        ctx.clock.lap("detail")
        as_of = str(detail.manifest.get("as_of") or "")
        composed = compose_report(ws, rctx, detail, earlier=earlier, heading=f"Aggregate release {rid}",
                                  definitions_at=f"{DICTIONARY} (indicators)",
                                  dp_epsilon=aud.dp_epsilon if aud is not None else None,
                                  dp_max_units=aud.dp_max_units if aud is not None else 4)
    ctx.clock.lap("aggregates")
    table = composed.indicators
    assert table is not None  # detailed_release raised if nobody is linked
    definitions = indicator_definitions(cfg)
    dictionary = build_dictionary(rid, min_cell, definitions_document(definitions, rid, min_cell))
    noisy = composed.noisy
    if noisy is not None:
        dictionary["noisy_counts"] = noisy_counts_note(noisy.footnote(), min_cell)
        dictionary["files"][INDICATORS_CSV]["columns"]["noisy"] = {"type": "Boolean", "meaning": NOISY_COLUMN}
    partners = {p.id: str(p.domain) for p in cfg.partners}
    manifest = {
        "format": FORMAT, "release_id": rid, "audience": ctx.audience, "cilink_version": __version__,
        "config_sha256": inputs["config_sha256"], "as_of": as_of,
        **({"partner": aud.partner} if aud is not None and aud.partner else {}),
        "contents": {f: CONTENTS[f] for f in (INDICATORS_CSV, INDICATORS_PARQUET, REPORT, DICTIONARY, README)},
        "disclosure_control": {
            "min_cell": min_cell, "rule": suppression_rule(min_cell) if noisy is None else noisy_rule(min_cell),
            "record_level_data": "none: tables of counts, shares and medians only",
            "checked_against": inputs["checked_against"],
        },
        **({"differential_privacy": {**noisy.manifest(), "noisy": NOISY_FIGURES, "not_noisy": NOT_NOISY}}
           if noisy is not None else {}),
        "inputs": {"batches": [{"batch_id": b.batch_id, "partner": b.partner, "domain": partners.get(b.partner),
                                "sha256": b.sha256} for b in batches]},
        "link": {"generation": rctx.generation.name, "link_threshold": cfg.link.link_threshold,
                 "review_band": cfg.link.review_band},
    }
    readme = render_readme(manifest, cfg.project.name)
    # the documents carry vocabulary and hashes only: prove it (identifier values and shapes; no counts at all)
    rv = collect_restricted_values(ws, rctx.crosswalk)
    labels = {"files": sorted({b.file_name for b in rctx.batches}), "readme": readme.splitlines()}
    failures = []
    for name, doc in ((DICTIONARY, dictionary), ("manifest.json", manifest), (REPORT, labels)):
        failures += gate.check_metadata(name, doc, rv, min_cell=min_cell, is_aggregate=lambda path: True)
    if failures:
        from cilink.export.release import _refuse

        _refuse(ws, failures, ctx.log, inputs)
    ctx.clock.lap("gate_metadata")
    atomic.write_parquet(tmp / INDICATORS_PARQUET, table)
    (tmp / INDICATORS_CSV).write_text(neutralize_formulas(table).write_csv(), encoding="utf-8")
    (tmp / REPORT).write_text(composed.page, encoding="utf-8")
    (tmp / DICTIONARY).write_text(dumps(dictionary), encoding="utf-8")
    (tmp / README).write_text(readme, encoding="utf-8")
    history.stage(ws, composed.snapshot(rid), ctx.audience)
    ctx.clock.lap("write")
    ctx.log.event("aggregate_staged", rows=table.height, suppressed_cells=len(composed.protection.suppressed))
    return manifest, inputs


def commit_aggregate_state(ws: Workspace, audience: str, release_id: str) -> bool:
    """Make the staged suppression state of a published aggregate release final (export calls it right after
    publishing; ``cilink.report.history.latest`` also commits a state whose release exists, after a crash).

    Returns False if there was no state to commit (the release was not an aggregate one).
    Example: ``commit_aggregate_state(ws, "funders", "2026-q3")``
    """
    done = history.commit(ws, release_id)
    if done:
        with Ledger(ws.ledger_path) as ledger:
            ledger.audit("export", "aggregate_state", "ok", inputs={"audience": audience, "release_id": release_id})
    return done


#: What a noisy release (an audience with dp_epsilon) prints as noisy counts, and what it prints exactly.
NOISY_FIGURES = [
    "report.html: partner overlap, persons per partner, people linked / known to two or more partners / to one "
    "(sums of the noisy overlap), persons by records per person, linked vs. unlinked persons per partner "
    "(and their shares), the 'now' column of 'what changed'",
    "indicators.csv/.parquet and report.html: numerator and denominator of every share indicator (and its value)",
]
NOT_NOISY = [
    "counts of rows, files and scored pairs in report.html (ingest reconciliation, field completeness, data-quality "
    "flags, match weights, review): exact, as in every report — not counts of persons, and not covered by ε",
    "median indicators: withheld (not released as noisy values)",
    "which periods and breakdown groups have a row: taken from the data, not protected by ε",
]
NOISY_COLUMN = "true: numerator, denominator and value rest on noisy counts (differential privacy; see the manifest)"


def noisy_rule(min_cell: int) -> str:
    """The small-count rule of a noisy release, in words."""
    return (f"Counts of persons are noisy (differential privacy). A noisy count below {min_cell} is withheld — "
            "decided on the noisy value, so withholding reveals nothing beyond the noisy count itself; no "
            "complementary suppression is needed, since subtracting noisy counts gives a noisy difference.")


def noisy_counts_note(footnote: str, min_cell: int) -> dict[str, Any]:
    """dictionary.json's ``noisy_counts`` entry."""
    return {"marked_as": "≈ (report.html); column noisy (indicators.csv)", "meaning": footnote,
            "rule": noisy_rule(min_cell), "noisy": NOISY_FIGURES, "not_noisy": NOT_NOISY}


def build_dictionary(release_id: str, min_cell: int, definitions: dict[str, Any]) -> dict[str, Any]:
    """dictionary.json of an aggregate release: columns, indicators and units — meanings only, no counts."""
    return {
        "format": FORMAT, "release_id": release_id, "tier": "aggregate",
        "files": {INDICATORS_CSV: {"columns": {c: {"type": str(t), "meaning": COLUMN_MEANINGS[c]}
                                               for c, t in COLUMNS.items()}},
                  INDICATORS_PARQUET: {"columns": "as indicators.csv"},
                  REPORT: CONTENTS[REPORT]},
        "suppression": {"min_cell": min_cell, "rule": suppression_rule(min_cell), "withheld_shown_as": "empty "
                        "(indicators.csv), * (report.html)"},
        "computed_from": definitions["computed_from"],
        "indicators": definitions["indicators"],
        "units": definitions["units"],
    }


def _noisy_readme(manifest: dict[str, Any]) -> str:
    dp = manifest.get("differential_privacy")
    if dp is None:
        return ""
    return f"""
## Noisy counts (differential privacy)

The counts of persons in this release are noisy: OpenDP added random noise to each (ε = {dp["epsilon"]:g} for
the whole release, split evenly over its tables; `manifest.json` gives each table's noise scale and the
margin within which 95% of its noisy counts lie). Noisy figures are marked ≈ in `report.html` and by the
column `noisy` in `indicators.csv`. The guarantee: whether any one person is in the data changes the chance of
any output by at most a factor e^ε. Every further release to this audience spends another ε (n releases: n × ε).
"""


def render_readme(manifest: dict[str, Any], project: str) -> str:
    """README.md of an aggregate release (no counts)."""
    dc = manifest["disclosure_control"]
    earlier = (f"It was checked against the previous aggregate release, `{dc['checked_against']}`: nothing in it can "
               "be subtracted from what that release printed." if dc["checked_against"] else
               "It is the workspace's first aggregate release.")
    files = "\n".join(f"- `{f}`: {what}" for f, what in manifest["contents"].items())
    return f"""# {project}: aggregate release {manifest["release_id"]}

Tables only — shared measures and the linkage report — for partners, funders and the public. There is no
record of any person in this release: no person_key, no row per person or per event.

Data as of {manifest["as_of"] or "–"} (the latest event month in the linked data).

## Files

{files}
- `manifest.json`: what the release was made from (batches by hash, configuration hash, cilink version) and
  the sha256 of every file.

## Small counts

{dc["rule"]} {earlier}
{_noisy_readme(manifest)}
The manifest and the dictionary contain no counts at all; rows received and quarantined per batch are in the
report, under the same rule.
"""
