"""`cilink report`: gather the sections, suppress small cells once for all of them, draw, write one HTML file.

The page holds aggregates only — counts, shares, model parameters — with every count of 1 to
``[export] min_cell`` − 1 withheld, directly or by subtraction (``cilink.report.suppression``), so the data
manager can send it to partners. The shared measures (indicators) are a section of it, computed from the
full-detail data in the restricted zone (``cilink.export.detail``) and suppressed together with the other
sections, in one registry: a count in one section cannot be subtracted from one in another. What the latest
``aggregate`` release published is taken as known (``cilink.report.history``), so the report cannot be
subtracted from it either; ``compose_report`` is also what that tier puts in its releases.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cilink import atomic
from cilink.errors import WorkspaceError
from cilink.export.open import Release
from cilink.indicators.compute import Progress, indicator_table, register_indicators
from cilink.indicators.definitions import indicator_definitions
from cilink.ledger import Ledger
from cilink.report import charts, history, sections
from cilink.report.html import Block, Section, render_page
from cilink.report.suppression import EARLIER, Cells, Protection, Published
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
    #: the aggregate release whose published counts the report was checked against (None: none yet)
    release_id: str | None
    bytes: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass
class ComposedReport:
    """The page and what decided it: the shared registry of counts, its protection, the indicator table."""

    page: str
    cells: Cells
    protection: Protection
    indicators: pl.DataFrame | None
    charts: list[str]
    tables: int
    notes: list[str]
    earlier: str | None

    def snapshot(self, release_id: str) -> Published:
        """What this page (and the indicators with it) publishes, for ``cilink.report.history``."""
        return self.cells.snapshot(self.protection, release_id)


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
    target = out or ws.root / "report.html"
    if ws.restricted in target.resolve().parents:
        raise WorkspaceError("the report is for partners: it does not belong in the restricted zone",
                             hint="write it somewhere else, e.g. --out report.html")
    if progress:
        progress("report: reading the workspace", 0, 6)
    ctx = sections.load_context(ws)
    if ctx.generation is None or ctx.crosswalk is None:
        raise WorkspaceError("the workspace has not been linked yet", hint="run `cilink link` (or `cilink run`) first")
    earlier = history.latest(ws)
    with _detail(ws, ctx) as detail:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        composed = compose_report(ws, ctx, detail, earlier=earlier, progress=progress,
                                  heading=f"Generated {stamp} by cilink")
    atomic.write_text(target, composed.page)
    with Ledger(ws.ledger_path) as ledger:
        ledger.audit("report", "report", "ok", inputs={"checked_against": composed.earlier},
                     details={"bytes": len(composed.page.encode()),
                              "suppressed_cells": len(composed.protection.suppressed)})
    return ReportResult(path=target, charts=composed.charts, tables=composed.tables,
                        suppressed_cells=len(composed.protection.suppressed), release_id=composed.earlier,
                        bytes=len(composed.page.encode()), notes=composed.notes)


def _detail(ws: Workspace, ctx: sections.Context) -> Any:
    """The full-detail release, or nothing when no person is linked yet."""
    import contextlib

    from cilink.export.detail import detailed_release

    if ctx.crosswalk is None or not ctx.crosswalk.height:
        return contextlib.nullcontext(None)
    return detailed_release(ws)


def compose_report(ws: Workspace, ctx: sections.Context, detail: Release | None, *, earlier: Published | None,
                   heading: str, definitions_at: str = "indicators/<name>/definitions.json",
                   progress: Progress | None = None) -> ComposedReport:
    """Count every section and the indicators into one registry, suppress once, and render the page.

    ``detail``: the full-detail release the indicators are computed from (None: no indicators section);
    ``earlier``: what the latest aggregate release published (its printed counts are known to readers);
    ``heading``: the first line under the title (e.g. when and by what it was made).
    """
    steps = 6

    def step(text: str, i: int) -> None:
        if progress:
            progress(text, i, steps)

    cfg = ws.config
    min_cell = cfg.export.min_cell
    cells = Cells(min_cell=min_cell)
    if earlier is not None:
        cells.earlier(earlier)
    step("report: counting", 1)
    batches, quarantine = sections.ingest_reconciliation(ctx, cells)
    completeness, flags = sections.field_quality(ctx, cells)
    model = sections.model_parameters(ctx)
    hist, decisions = sections.match_weights(ctx, cells)
    review = sections.review(ctx, cells, decisions)
    sizes, overlap, partner_persons = sections.clusters_and_overlap(ctx, cells)
    bias = sections.linkage_bias(ctx, cells)
    step("report: indicators", 2)
    ind_rows = register_indicators(detail, indicator_definitions(cfg), cells) if detail is not None else None
    step("report: small-cell suppression", 3)
    protection = cells.protect()
    shown = {t.name: t.shown(protection) for t in (batches, quarantine, completeness, flags, hist, decisions,
                                                   review, sizes, overlap, partner_persons, bias)}
    ind_table = indicator_table(ind_rows, protection, min_cell) if ind_rows is not None else None
    own = {k: v for k, v in protection.published().items() if not (isinstance(k, tuple) and k[:1] == (EARLIER,))}
    if any(0 < v < min_cell for v in own.values()):
        # protect() guarantees this never happens; if a bug ever broke that, print nothing rather than a small cell
        raise AssertionError("a small cell survived suppression; the report was not written")

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
        Section("indicators", "Shared measures", "Indicators computed from the linked data of the active batches "
                "(`cilink indicators` writes them as CSV and Parquet).",
                [*chart("indicators"),
                 Block("table", frame=_indicator_display(ind_table), counts=("denominator",)),
                 Block("p", f"value: % for shares, USD for medians. Definitions: {definitions_at}.")]
                if ind_table is not None else [Block("p", "No linked persons yet: run `cilink link`.")]),
    ]
    state_run = ctx.generation.name if ctx.generation else "none"
    meta = [f"{heading} · link generation {state_run}"
            + (f" · checked against aggregate release {earlier.release_id}" if earlier is not None else ""),
            f"Counts of 1 to {min_cell - 1} are shown as {'*'}, and so are counts from which one could "
            "be worked out (complementary suppression), also together with the previous aggregate release. "
            "– : not available."]
    summary = ("Aggregates only: no names, dates of birth, SSNs or source ids, and no count small enough to point "
               "at a person. Safe to share with partners.")
    step("report: writing", 5)
    page = render_page(f"{cfg.project.name}: linkage report", meta, summary, page_sections)
    return ComposedReport(page=page, cells=cells, protection=protection, indicators=ind_table, charts=sorted(figs),
                          tables=sum(1 for sec in page_sections for b in sec.blocks if b.kind == "table"),
                          notes=ctx.notes, earlier=earlier.release_id if earlier is not None else None)
