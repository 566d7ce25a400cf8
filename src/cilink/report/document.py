"""`cilink report`: gather the sections, suppress small cells once for all of them, draw, write one HTML file.

The page holds aggregates only — counts, shares, model parameters — with every count of 1 to
``[export] min_cell`` − 1 withheld, directly or by subtraction (``cilink.disclosure.suppression``), so the data
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
from cilink.config import IndicatorSettings
from cilink.disclosure.noisy_counts import NoisyRelease
from cilink.disclosure.suppression import EARLIER, Cells, Protection, Published
from cilink.errors import WorkspaceError
from cilink.export.open import Release
from cilink.indicators.compute import Progress, indicator_table, register_indicators
from cilink.indicators.definitions import indicator_definitions
from cilink.ledger import Ledger
from cilink.releases import find_release
from cilink.report import charts, history, noisy, sections
from cilink.report.html import NOISY, Block, Section, render_page
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
    #: the noisy counts, when the page's counts of persons are differentially private (None: exact)
    noisy: NoisyRelease | None = None

    def snapshot(self, release_id: str) -> Published:
        """What this page (and the indicators with it) publishes, for ``cilink.report.history``.

        A noisy page printed no exact count of persons: the next release is checked against none of them
        (its noisy counts cannot be subtracted to a small count; taken as exact, they would only make the next
        release withhold counts that give nothing away)."""
        if self.noisy is not None:
            public = frozenset(self.cells.public)
            return self.cells.snapshot(Protection(suppressed=public, values=self.cells.values, public=public),
                                       release_id)
        return self.cells.snapshot(self.protection, release_id)


def _table(t: sections.Table, shown: pl.DataFrame, drop: tuple[str, ...] = (), *,
           noisy_release: NoisyRelease | None = None) -> list[Block]:
    counts = tuple(t.counts) if not t.exact else ()
    marked = counts if noisy_release is not None and t.name in noisy.NOISY_TABLES else ()
    blocks = [Block("h3", t.title), Block("table", frame=shown.drop([c for c in drop if c in shown.columns]),
                                          counts=counts, noisy=marked)]
    return blocks + ([Block("p", t.note)] if t.note else [])


def _indicator_display(table: pl.DataFrame, noisy_counts: bool = False) -> pl.DataFrame:
    """The indicator table as printed: a median has no numerator ("n/a"), a withheld count is "*", a noisy
    one is marked "≈"."""
    count = pl.col("numerator").cast(pl.Int64)
    numerator = (pl.when(pl.col("statistic") == "median").then(pl.lit("n/a"))
                 .when(pl.col("numerator").is_null()).then(pl.lit("*"))
                 .otherwise(pl.format(f"{NOISY}{{}}", count) if noisy_counts else count.cast(pl.String)))
    return table.with_columns(numerator.alias("numerator")).drop("title", "unit", "suppressed", "noisy", strict=False)


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
                   progress: Progress | None = None, dp_epsilon: float | None = None,
                   dp_max_units: int = 4) -> ComposedReport:
    """Count every section and the indicators into one registry, suppress once, and render the page.

    ``detail``: the full-detail release the indicators are computed from (None: no indicators section);
    ``earlier``: what the latest aggregate release published (its printed counts are known to readers);
    ``heading``: the first line under the title (e.g. when and by what it was made);
    ``dp_epsilon``: print the counts of persons as noisy counts with this ε for the page (an aggregate audience's
    ``dp_epsilon``; ``cilink.report.noisy``, ``cilink.indicators.noisy``) instead of suppressing exact ones;
    ``dp_max_units``: the most units of one person an indicator counts then.
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
    # suppression protects counts of people: rows, files and scored pairs are printed as they are (their
    # relations are kept in a registry of their own, which is never protected)
    rows_cells = Cells(min_cell=min_cell)
    batches, quarantine = sections.ingest_reconciliation(ctx, rows_cells)
    completeness, flags = sections.field_quality(ctx, rows_cells)
    model = sections.model_parameters(ctx)
    hist, decisions = sections.match_weights(ctx, rows_cells)
    review = sections.review(ctx, rows_cells, decisions)
    for t in (batches, quarantine, completeness, flags, hist, decisions, review):
        t.exact = True
    sizes, overlap, partner_persons = sections.clusters_and_overlap(ctx, cells)
    people = sections.people_summary(ctx, cells)
    bias = sections.linkage_bias(ctx, cells)
    step("report: indicators", 2)
    definitions = indicator_definitions(cfg)
    ind_rows = register_indicators(detail, definitions, cells) if detail is not None else None
    noisy_release = None
    if dp_epsilon is not None:
        step("report: noisy counts (differential privacy)", 3)
        noisy_release = _noisy_release(ctx, detail, definitions, ind_rows or [], dp_epsilon, dp_max_units, min_cell)
        # the noisy counts replace the exact ones: no complementary suppression over exact values (the pattern
        # of what it withholds would itself depend on the exact counts)
        protection = noisy_release.protection()
    else:
        step("report: small-cell suppression", 3)
        protection = cells.protect()
    shown = {t.name: t.shown(protection) for t in (batches, quarantine, completeness, flags, hist, decisions,
                                                   review, sizes, overlap, partner_persons, bias, people)}
    ind_table = indicator_table(ind_rows, protection, min_cell) if ind_rows is not None else None
    if ind_table is not None and noisy_release is not None:
        ind_table = ind_table.with_columns((pl.col("statistic") == "share").alias("noisy"))
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
        Section("summary", "Summary", "What came in, how many people it describes, and how the partners overlap.",
                _summary(ctx, shown, people, overlap, partner_persons, chart("overlap"), noisy_release)),
        Section("changes", "What changed", "Since the last report and the last aggregate release.",
                _changes(ws, ctx, earlier, protection, [people, partner_persons, overlap], noisy_release)),
        Section("indicators", "Shared measures", "Indicators computed from the linked data of the active batches "
                "(`cilink indicators` writes them as CSV and Parquet).",
                [*chart("indicators"),
                 Block("table", frame=_indicator_display(ind_table, noisy_release is not None),
                       counts=("denominator",), noisy=("denominator",) if noisy_release is not None else ()),
                 Block("p", f"value: % for shares, USD for medians. Definitions: {definitions_at}.")]
                if ind_table is not None else [Block("p", "No linked persons yet: run `cilink link`.")]),
        Section("bias", "Linked vs. unlinked records", "Do the people who link differ from those who do not?",
                chart("linkage_bias") + _table(bias, shown["bias"], noisy_release=noisy_release)),
        Section("ingest", "Ingest reconciliation", "Every row each partner sent, accounted for.",
                _table(batches, shown["batches"]) + _table(quarantine, shown["quarantine"]), appendix=True),
        Section("quality", "Field completeness and data quality", "How complete and valid each partner's identity "
                "fields are: linkage can only use what is there.",
                [Block("h3", "Staged rows per partner"), Block("table", frame=rows_wide),
                 *chart("completeness"),
                 Block("h3", completeness.title), Block("table", frame=comp_wide), Block("p", completeness.note),
                 Block("h3", flags.title), Block("table", frame=flags_wide),
                 Block("p", "ssn_masked: only the last four digits were sent (kept as ssn_last4). dob_repaired: a "
                       "birth date with look-alike characters or day and month exchanged, repaired and kept.")],
                appendix=True),
        Section("persons", "Records per person", "How many records each linked person has.",
                chart("cluster_sizes") + _table(sizes, shown["cluster_sizes"], noisy_release=noisy_release),
                appendix=True),
        Section("model", "Linkage model", "The trained Fellegi–Sunter model: how much each kind of agreement "
                "counts towards a match.",
                (chart("model_weights") + _table(model, model.frame)) if model is not None
                else [Block("p", "No trained model in the current link generation.")], appendix=True),
        Section("weights", "Match weights, threshold and review", "How scored pairs fall around the link threshold.",
                chart("match_weights") + _table(hist, shown["histogram"]) + _table(decisions, shown["decisions"])
                + _table(review, shown["review"]), appendix=True),
    ]
    state_run = ctx.generation.name if ctx.generation else "none"
    meta = [f"{heading} · link generation {state_run}"
            + (f" · checked against aggregate release {earlier.release_id}" if earlier is not None else ""),
            f"Counts of people from 1 to {min_cell - 1} are shown as {'*'}, and so are other counts of people "
            "from which one could be worked out, each of them needed (complementary suppression, also together with "
            f"the previous aggregate release): {_hidden_share(cells, protection)}. Counts of rows, files and pairs "
            "are not counts of people and are shown as they are. – : not available."]
    if noisy_release is not None:
        meta[1] = (f"{noisy_release.footnote()}. Every count of people on this page is noisy: it differs from the "
                   "exact count by a random amount (the manifest gives each table's noise scale), so that no one "
                   f"person's presence can be told from it. Noisy counts below {min_cell} are shown as *, and "
                   "shares and charts are computed from the noisy counts; medians are not released. Counts of "
                   "rows, files and pairs are not counts of people and are shown as they are. – : not available.")
    summary = ("Aggregates only: no names, dates of birth, SSNs or source ids, and no count small enough to point "
               "at a person. Safe to share with partners.")
    step("report: writing", 5)
    page = render_page(f"{cfg.project.name}: linkage report", meta, summary, page_sections)
    return ComposedReport(page=page, cells=cells, protection=protection, indicators=ind_table, charts=sorted(figs),
                          tables=sum(1 for sec in page_sections for b in sec.blocks if b.kind == "table"),
                          notes=ctx.notes, earlier=earlier.release_id if earlier is not None else None,
                          noisy=noisy_release)


def _noisy_release(ctx: sections.Context, detail: Release | None, definitions: list[IndicatorSettings],
                   rows: list[Any], epsilon: float, max_units: int, min_cell: int) -> NoisyRelease:
    """The page's counts of persons as noisy counts: ε split evenly over the report's and the indicators' queries."""
    from cilink.indicators.noisy import noisy_indicator_counts, noisy_queries

    queries = len(noisy.QUERIES) + (len(noisy_queries(definitions)) if detail is not None else 0)
    values, spent = noisy.noisy_report_counts(ctx, epsilon / queries)
    if detail is not None:
        ind_values, ind_spent = noisy_indicator_counts(detail, definitions, rows, epsilon=epsilon / queries,
                                                       max_units=max_units)
        values.update(ind_values)
        spent += ind_spent
    return NoisyRelease(epsilon=epsilon, queries=queries, min_cell=min_cell, values=values, spent=spent)


def _hidden_share(cells: Cells, protection: Protection) -> str:
    """How many of the printable counts of people are withheld, and how many of those only as complements."""
    own = [k for k in cells.public if k not in cells.fixed and _own_cell(k)]
    hidden = [k for k in own if k in protection.suppressed]
    small = sum(1 for k in hidden if 0 < cells.values[k] < cells.min_cell)
    share = f"{100 * len(hidden) / len(own):.0f}%" if own else "0%"
    return f"{len(hidden)} of {len(own)} counts withheld ({share}; {small} small, {len(hidden) - small} complementary)"


def _own_cell(k: object) -> bool:
    return not (isinstance(k, tuple) and k and (k[0] == EARLIER or isinstance(k[0], tuple)))


def _shown_text(value: int | None, noisy_count: bool = False) -> str:
    return "*" if value is None else f"{NOISY if noisy_count else ''}{value:,}"


def _summary(ctx: sections.Context, shown: dict[str, pl.DataFrame], people: sections.Table,
             overlap: sections.Table, partner_persons: sections.Table, overlap_chart: list[Block],
             noisy_release: NoisyRelease | None = None) -> list[Block]:
    """The summary: records in, people linked, the partner overlap — what a partner's director reads."""
    active = [b for b in ctx.batches if b.status == "active"]
    partners = sorted(p.id for p in ctx.cfg.partners)
    records_in = pl.DataFrame(
        [{"partner": p, "files": sum(1 for b in active if b.partner == p),
          "rows received": sum(b.rows_in for b in active if b.partner == p),
          "accepted": sum(b.accepted for b in active if b.partner == p),
          "set aside": sum(b.quarantined for b in active if b.partner == p)} for p in partners],
        schema={"partner": pl.String, "files": pl.Int64, "rows received": pl.Int64, "accepted": pl.Int64,
                "set aside": pl.Int64})
    counts = dict(shown["people"].iter_rows())
    linked_records = ctx.crosswalk.height if ctx.crosswalk is not None else 0
    dp = noisy_release is not None
    lead = (f"<b>{int(records_in['rows received'].sum()):,}</b> rows came in from {len(partners)} partners "
            f"({int(records_in['set aside'].sum()):,} set aside for the partner to correct), giving "
            f"<b>{linked_records:,}</b> records. They describe "
            f"<b>{_shown_text(counts.get(sections.SUMMARY_PEOPLE[0]), dp)}</b> people, "
            f"<b>{_shown_text(counts.get(sections.SUMMARY_PEOPLE[1]), dp)}</b> of them known to more than one partner.")
    return [Block("lead", lead),
            Block("h3", "Records in per partner (active files)"), Block("table", frame=records_in),
            Block("p", "set aside: rows quarantined with a reason, sent back to the partner (see the appendix)."),
            *_table(people, shown["people"], noisy_release=noisy_release), *overlap_chart,
            *_table(overlap, shown["overlap"], noisy_release=noisy_release),
            *_table(partner_persons, shown["partner_persons"], noisy_release=noisy_release),
            *([Block("p", noisy_release.footnote() + ": persons per partner and the people above are sums of the "
                     "noisy overlap counts.")] if noisy_release is not None else [])]


def _changes(ws: Workspace, ctx: sections.Context, earlier: Published | None, protection: Protection,
             tables: list[sections.Table], noisy_release: NoisyRelease | None = None) -> list[Block]:
    """Files received since the last report, and the people counts then and now (against the last aggregate
    release: the one this report's suppression is checked against, so the two together give nothing away)."""
    with Ledger(ws.ledger_path) as ledger:
        reports = [e["at"] for e in ledger.audit_entries() if e["action"] == "report"]
    released = find_release(ws, earlier.release_id) if earlier is not None else None
    blocks: list[Block] = []
    since = reports[-1] if reports else None
    if since is None:
        blocks.append(Block("p", "This is the first report of this workspace."))
    else:
        new = [b for b in ctx.batches if b.created_at > since]
        by_partner = ", ".join(f"{p}: {sum(1 for b in new if b.partner == p)}"
                               for p in sorted({b.partner for b in new}))
        blocks.append(Block("p", f"Since the last report ({since[:10]}): {len(new)} file(s) received"
                            + (f" ({by_partner})." if new else ".")))
    if earlier is None:
        blocks.append(Block("p", "No aggregate release yet to compare the counts of people with "
                            "(`cilink export` to an aggregate audience makes one)."))
        return blocks
    rows = []
    for t in tables:
        for row in t.row_keys():
            for c in t.counts:
                k = t.key(row, c)
                then = earlier.cells.get(k) if k in earlier.printed else None
                rows.append({"count": f"{t.title}: {' + '.join(str(v) for v in row if not isinstance(v, int))}",
                             "then": then, "now": protection.shown(k)})
    frame = pl.DataFrame(rows, schema={"count": pl.String, "then": pl.Int64, "now": pl.Int64})
    when = f", {released.created_at[:10]}" if released else ""
    return [*blocks, Block("h3", f"People then (aggregate release {earlier.release_id}{when}) and now"),
            Block("table", frame=frame, counts=("then", "now"), noisy=("now",) if noisy_release is not None else ()),
            Block("p", "Both columns are suppressed together: no difference between them is a small count."
                  if noisy_release is None else f"now: {noisy_release.footnote()}; then: as that release printed "
                  "it (* where it printed noisy counts or withheld them).")]
