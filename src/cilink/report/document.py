"""`cilink report`: gather the sections, suppress small cells once for all of them, draw, write one HTML file.

The page holds aggregates only — counts, shares, model parameters — with every count of 1 to
``[export] min_cell`` − 1 withheld, directly or by subtraction (``cilink.report.suppression``), so the data
manager can send it to partners. The latest release's indicators are a section of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cilink import atomic
from cilink.errors import WorkspaceError
from cilink.indicators.compute import Progress, compute_indicators
from cilink.indicators.definitions import indicator_definitions
from cilink.ledger import Ledger
from cilink.report import charts, sections
from cilink.report.html import Block, Section, render_page
from cilink.report.suppression import Cells
from cilink.workspace import Workspace

#: Every chart the report draws (tests check each one renders).
CHARTS = ("completeness", "model_weights", "match_weights", "cluster_sizes", "overlap", "linkage_bias", "indicators")


@dataclass
class ReportResult:
    """Where the report went and what it holds (counts of things, never data)."""

    path: Path
    charts: list[str]
    tables: int
    suppressed_cells: int
    release_id: str | None
    bytes: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def _latest_release(ws: Workspace) -> Path | None:
    with Ledger(ws.ledger_path) as ledger:
        last = ledger.last_release()
    if last is None:
        return None
    path = ws.root / last["path"]
    return path if (path / "manifest.json").is_file() else None


def _table(t: sections.Table, shown: pl.DataFrame, drop: tuple[str, ...] = ()) -> list[Block]:
    blocks = [Block("h3", t.title), Block("table", frame=shown.drop([c for c in drop if c in shown.columns]),
                                          counts=tuple(t.counts) if not t.exact else ())]
    return blocks + ([Block("p", t.note)] if t.note else [])


def _indicator_display(table: pl.DataFrame) -> pl.DataFrame:
    """The indicator table as printed: a median has no numerator ("n/a"), a withheld count is "*"."""
    numerator = (pl.when(pl.col("statistic") == "median").then(pl.lit("n/a"))
                 .when(pl.col("numerator").is_null()).then(pl.lit("*"))
                 .otherwise(pl.col("numerator").cast(pl.String)))
    return table.with_columns(numerator.alias("numerator")).drop("title", "unit", "suppressed")


def build_report(ws: Workspace, out: Path | None = None, progress: Progress | None = None) -> ReportResult:
    """Write the partner report (default ``<workspace>/report.html``); returns what it wrote.

    Example: ``build_report(Workspace.open("ws"), Path("report.html")).charts``
    """
    steps = 6

    def step(text: str, i: int) -> None:
        if progress:
            progress(text, i, steps)

    cfg = ws.config
    target = out or ws.root / "report.html"
    if ws.restricted in target.resolve().parents:
        raise WorkspaceError("the report is for partners: it does not belong in the restricted zone",
                             hint="write it somewhere else, e.g. --out report.html")
    step("report: reading the workspace", 0)
    ctx = sections.load_context(ws)
    if ctx.generation is None or ctx.crosswalk is None:
        raise WorkspaceError("the workspace has not been linked yet", hint="run `cilink link` (or `cilink run`) first")
    cells = Cells(min_cell=cfg.export.min_cell)
    step("report: counting", 1)
    batches, quarantine = sections.ingest_reconciliation(ctx, cells)
    completeness, flags = sections.field_quality(ctx, cells)
    model = sections.model_parameters(ctx)
    hist, decisions = sections.match_weights(ctx, cells)
    review = sections.review(ctx, cells, decisions)
    sizes, overlap, partner_persons = sections.clusters_and_overlap(ctx, cells)
    bias = sections.linkage_bias(ctx, cells)
    step("report: small-cell suppression", 2)
    protection = cells.protect()
    shown = {t.name: t.shown(protection) for t in (batches, quarantine, completeness, flags, hist, decisions,
                                                   review, sizes, overlap, partner_persons, bias)}
    if any(0 < v < cfg.export.min_cell for v in protection.published().values()):
        # protect() guarantees this never happens; if a bug ever broke that, print nothing rather than a small cell
        raise AssertionError("a small cell survived suppression; the report was not written")

    step("report: indicators", 3)
    release = _latest_release(ws)
    ind_table = None
    if release is not None:
        from cilink.export.open import open_release

        ind_table, ind_protection = compute_indicators(open_release(release), indicator_definitions(cfg),
                                                       cfg.export.min_cell)
    step("report: charts", 4)
    partners = sorted(p.id for p in cfg.partners)
    fields = list(sections.QUALITY_FIELDS)
    figs = {
        "completeness": charts.completeness_heatmap(shown["completeness"], fields, partners),
        "match_weights": charts.weight_histogram(shown["histogram"], ctx.review_floor, ctx.link_threshold),
        "cluster_sizes": charts.bar_counts(shown["cluster_sizes"], "records", "persons",
                                           "Persons by number of linked records", "records per person"),
        "overlap": charts.overlap_upset(shown["overlap"], partners),
        "linkage_bias": charts.bias_panels(shown["bias"], partners),
    }
    if model is not None:
        figs["model_weights"] = charts.model_weights(model.frame)
    if ind_table is not None:
        figs["indicators"] = charts.indicator_bars(ind_table)

    def chart(name: str) -> list[Block]:
        return [Block("chart", name=name, chart=figs[name])] if name in figs else [
            Block("p", f"No {name.replace('_', ' ')} chart: nothing to draw yet.")]

    comp_wide = shown["completeness"].pivot("partner", index="field", values="share").select("field", *partners)
    flags_wide = shown["flags"].pivot("partner", index="flag", values="rows").select("flag", *partners)
    rows_wide = (shown["completeness"].filter(pl.col("field") == fields[0]).select("partner", "rows"))
    page_sections = [
        Section("ingest", "Ingest reconciliation", "Every row each partner sent, accounted for.",
                _table(batches, shown["batches"]) + _table(quarantine, shown["quarantine"])),
        Section("quality", "Field completeness and data quality", "How complete and valid each partner's identity "
                "fields are: linkage can only use what is there.",
                [Block("h3", "Staged rows per partner"), Block("table", frame=rows_wide, counts=("rows",)),
                 *chart("completeness"),
                 Block("h3", completeness.title), Block("table", frame=comp_wide), Block("p", completeness.note),
                 Block("h3", flags.title), Block("table", frame=flags_wide, counts=tuple(partners)),
                 Block("p", "ssn_masked: only the last four digits were sent (kept as ssn_last4).")]),
        Section("model", "Linkage model", "The trained Fellegi–Sunter model: how much each kind of agreement "
                "counts towards a match.",
                (chart("model_weights") + _table(model, model.frame)) if model is not None
                else [Block("p", "No trained model in the current link generation.")]),
        Section("weights", "Match weights, threshold and review", "How scored pairs fall around the link threshold.",
                chart("match_weights") + _table(hist, shown["histogram"]) + _table(decisions, shown["decisions"])
                + _table(review, shown["review"])),
        Section("persons", "Persons, cluster sizes and partner overlap", "How many people appear in which "
                "combinations of partners — what linked data adds.",
                chart("overlap") + _table(overlap, shown["overlap"]) + _table(partner_persons, shown["partner_persons"])
                + chart("cluster_sizes") + _table(sizes, shown["cluster_sizes"])),
        Section("bias", "Linked vs. unlinked records", "Do the people who link differ from those who do not?",
                chart("linkage_bias") + _table(bias, shown["bias"])),
        Section("indicators", "Shared measures", "Indicators computed from the latest release (`cilink indicators` "
                "writes them as CSV and Parquet).",
                [*chart("indicators"),
                 Block("table", frame=_indicator_display(ind_table), counts=("denominator",)),
                 Block("p", "value: % for shares, USD for medians. Definitions: "
                            "indicators/<release_id>/definitions.json.")]
                if ind_table is not None else [Block("p", "No release yet: run `cilink export`.")]),
    ]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    state_run = (ctx.generation.name if ctx.generation else "none")
    meta = [f"Generated {stamp} by cilink · link generation {state_run} · release "
            f"{release.name if release else 'none'}",
            f"Counts of 1 to {cfg.export.min_cell - 1} are shown as {'*'}, and so are counts from which one could "
            "be worked out (complementary suppression). – : not available."]
    summary = ("Aggregates only: no names, dates of birth, SSNs or source ids, and no count small enough to point "
               "at a person. Safe to share with partners.")
    step("report: writing", 5)
    page = render_page(f"{cfg.project.name}: linkage report", meta, summary, page_sections)
    atomic.write_text(target, page)
    with Ledger(ws.ledger_path) as ledger:
        ledger.audit("report", "report", "ok", inputs={"release_id": release.name if release else None},
                     details={"bytes": len(page.encode()), "suppressed_cells": len(protection.suppressed)})
    suppressed = len(protection.suppressed) + (len(ind_protection.suppressed) if ind_table is not None else 0)
    return ReportResult(path=target, charts=sorted(figs), tables=sum(1 for s in page_sections for b in s.blocks
                                                                     if b.kind == "table"),
                        suppressed_cells=suppressed, release_id=release.name if release else None,
                        bytes=len(page.encode()), notes=ctx.notes)
