"""The report's aggregates, section by section: small polars frames of counts read from the workspace.

Each section function reads what ingest and link left in the workspace (restricted), reduces it to counts,
registers every count it will print — and the relations between them — in one shared
``cilink.disclosure.suppression.Cells``, and returns ``Table`` objects holding the exact counts. Suppression is
decided once for the whole report (``Table.shown``), because counts in different sections are related (the
persons of a partner in the overlap table are the linked plus unlinked persons in the bias table; a
partner's staged rows are its batches' accepted rows) and a cell hidden in one table must not be
recoverable from another. Counts of persons, staged rows and scored pairs are also registered with the
units they count (``Cells.units``: internal ids, never printed), so the report's person counts relate to the
indicators' and to an earlier aggregate release's. No value of an identifier column ever leaves a section:
only counts, and labels from cilink's own vocabulary (partner ids, field names, reason and flag codes, model
level labels).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cilink.config import CilinkConfig
from cilink.disclosure.suppression import Cells, Key, Protection
from cilink.ledger import Batch, Ledger
from cilink.link import review_ledger
from cilink.link.outputs import read_crosswalk, read_pairs
from cilink.staging import staged_records
from cilink.workspace import Workspace

#: Identity fields whose completeness the report shows (the ones linkage uses).
QUALITY_FIELDS = ("first_name", "last_name", "dob", "sex", "ssn", "ssn_last4", "street", "zip5", "phone", "email",
                  "race_ethnicity")
#: Data-quality flag → the field it nulls (cilink.ingest.reasons.Flag).
FLAG_FIELDS = {"ssn_invalid": "ssn", "ssn_masked": "ssn", "dob_impossible": "dob", "zip_invalid": "zip5",
               "phone_invalid": "phone", "email_invalid": "email"}
AGE_BANDS = ((0, 4, "0-4"), (5, 17, "5-17"), (18, 24, "18-24"), (25, 44, "25-44"), (45, 64, "45-64"),
             (65, 200, "65+"))
DECISIONS = ("link", "review", "must_link", "cannot_link")
REGIONS = ("at or above the link threshold", "review band", "reviewer-added (not scored)")
CLUSTER_SIZES = ("1", "2", "3", "4", "5+")
#: how much the overlap table's counts are worth keeping (``Cells.add``): more than any other count
OVERLAP_KEEP = 3
#: Unit spaces of the report's counts (``Cells.units``); persons are shared with the indicators.
PERSONS_SPACE = "persons"
ROWS_SPACE = "staged_rows"
PAIRS_SPACE = "pairs"


@dataclass
class Table:
    """One printed table: label columns, count columns (exact), and how each count is keyed in ``Cells``."""

    name: str
    title: str
    frame: pl.DataFrame
    labels: list[str]
    counts: list[str]
    note: str = ""
    #: adds derived columns (shares …) to the shown frame; null counts make null shares
    derive: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    #: count columns not subject to suppression (e.g. model parameters are not counts of people)
    exact: bool = False
    #: the labels that identify a row's counts (default: all of ``labels``); a batch's counts keep their key
    #: when its status changes, so that an earlier release's printed counts are recognised as the same
    key_labels: list[str] | None = None

    def key(self, row: tuple[Any, ...], column: str) -> Key:
        if self.key_labels is not None:
            row = tuple(v for label, v in zip(self.labels, row, strict=True) if label in self.key_labels)
        return (self.name, *row, column)

    def row_keys(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.frame.select(self.labels).iter_rows()]

    def register(self, cells: Cells) -> None:
        if self.exact:
            return
        for row, values in zip(self.row_keys(), self.frame.select(self.counts).iter_rows(), strict=True):
            for col, v in zip(self.counts, values, strict=True):
                cells.add(self.key(row, col), int(v))

    def shown(self, protection: Protection) -> pl.DataFrame:
        """The frame as printed: withheld counts are null."""
        if self.exact:
            out = self.frame
        else:
            cols: dict[str, list[int | None]] = {c: [] for c in self.counts}
            for row in self.row_keys():
                for c in self.counts:
                    cols[c].append(protection.shown(self.key(row, c)))
            out = self.frame.with_columns(pl.Series(c, v, dtype=pl.Int64) for c, v in cols.items())
        return self.derive(out) if self.derive else out


@dataclass
class Context:
    """What the sections read, loaded once (restricted data: stays in this process)."""

    ws: Workspace
    cfg: CilinkConfig
    generation: Path | None
    batches: list[Batch]
    staged: dict[str, pl.DataFrame]  # per partner: active staged rows (only the columns the report counts)
    crosswalk: pl.DataFrame | None
    pairs: pl.DataFrame | None
    queue: pl.DataFrame | None
    reviewer_decisions: list[tuple[str, str, str]]
    link_threshold: float
    review_floor: float
    as_of: dt.date | None
    notes: list[str] = field(default_factory=list)
    _person_units: pl.DataFrame | None = None

    def person_units(self) -> pl.DataFrame:
        """person_id → ``_id``, the person's id in the persons unit space (the detail's person_key)."""
        if self._person_units is None:
            from cilink.export.detail import detail_person_keys

            ids = (self.crosswalk.get_column("person_id").unique().sort() if self.crosswalk is not None
                   else pl.Series("person_id", [], dtype=pl.String))
            self._person_units = pl.DataFrame({"person_id": ids, "_id": detail_person_keys(ids)})
        return self._person_units


def load_context(ws: Workspace) -> Context:
    """Read the workspace once: ledger batches, staged rows of the active batches, one link generation."""
    from cilink.generations import current_generation

    cfg = ws.config
    with Ledger(ws.ledger_path) as ledger:
        batches = ledger.batches()
        decisions = review_ledger.standing_rows(ledger.conn)  # what the next link obeys
    wanted = [*QUALITY_FIELDS, "source_person_id", "middle_name", "_cilink_flags", "entry_date", "exit_date",
              "_cilink_batch_id", "_cilink_row"]
    staged = {}
    for p in cfg.partners:
        lf = staged_records(ws, p.id)
        names = lf.collect_schema().names()
        staged[p.id] = lf.select([c for c in wanted if c in names]).with_columns(
            pl.col("source_person_id").cast(pl.String)).collect()
    gen = current_generation(ws)
    gen = gen.resolve() if gen is not None else None  # one generation throughout, even if a link run publishes

    def read(name: str) -> pl.DataFrame | None:
        return pl.read_parquet(gen / name) if gen is not None and (gen / name).is_file() else None

    dates = [d for f in staged.values() for c in ("entry_date", "exit_date") if c in f.columns
             for d in [f.get_column(c).max()] if d is not None]
    return Context(
        ws=ws, cfg=cfg, generation=gen, batches=batches, staged=staged,
        crosswalk=read_crosswalk(gen) if gen is not None else None,
        pairs=read_pairs(gen) if gen is not None else None, queue=read("review_queue.parquet"),
        reviewer_decisions=decisions,  # type: ignore[arg-type]
        link_threshold=cfg.link.link_threshold, review_floor=cfg.link.link_threshold - cfg.link.review_band,
        as_of=max(dates) if dates else None)  # type: ignore[type-var]


# --- ingest ---------------------------------------------------------------------------------------------------


def ingest_reconciliation(ctx: Context, cells: Cells) -> list[Table]:
    """Rows in = accepted + quarantined, per partner and batch; quarantine reasons per batch."""
    rows = [{"partner": b.partner, "batch": b.batch_id, "file": b.file_name, "ingested": b.created_at[:10],
             "status": b.status, "rows_in": b.rows_in, "accepted": b.accepted, "quarantined": b.quarantined,
             "balanced": "yes" if b.rows_in == b.accepted + b.quarantined else "NO"} for b in ctx.batches]
    schema = {"partner": pl.String, "batch": pl.String, "file": pl.String, "ingested": pl.String,
              "status": pl.String, "rows_in": pl.Int64, "accepted": pl.Int64, "quarantined": pl.Int64,
              "balanced": pl.String}
    batches = Table("batches", "Ingest reconciliation per partner and batch", pl.DataFrame(rows, schema=schema),
                    ["partner", "batch", "file", "ingested", "status", "balanced"],
                    ["rows_in", "accepted", "quarantined"], key_labels=["partner", "batch"],
                    note="Every input row is accounted for: rows in = accepted + quarantined. 'balanced' is "
                         "checked on the exact counts, also where a count is withheld. Only active batches "
                         "count towards the linked data; snapshot mode supersedes a partner's earlier files.")
    batches.register(cells)
    for r in batches.row_keys():
        cells.add(batches.key(r, "accepted"), cells.values[batches.key(r, "accepted")], keep=1)
        if r[5] == "yes":
            cells.total(batches.key(r, "rows_in"), [batches.key(r, "accepted"), batches.key(r, "quarantined")])
    reasons = [{"partner": b.partner, "batch": b.batch_id, "reason": reason, "rows": n}
               for b in ctx.batches for reason, n in sorted(b.quarantine_by_reason.items())]
    table = Table("quarantine", "Quarantined rows by reason",
                  pl.DataFrame(reasons, schema={"partner": pl.String, "batch": pl.String, "reason": pl.String,
                                                "rows": pl.Int64}),
                  ["partner", "batch", "reason"], ["rows"],
                  note="Reason codes as in the quarantine files sent back to each partner.")
    table.register(cells)
    for b, r in zip(ctx.batches, batches.row_keys(), strict=True):
        parts = [table.key((b.partner, b.batch_id, reason), "rows") for reason in b.quarantine_by_reason]
        if sum(b.quarantine_by_reason.values()) == b.quarantined:  # a row with two reasons breaks the sum
            cells.total(batches.key(r, "quarantined"), parts)
    return [batches, table]


# --- data quality ---------------------------------------------------------------------------------------------


def _filled(frame: pl.DataFrame, f: str) -> pl.Expr:
    if f not in frame.columns:
        return pl.lit(False)
    col = pl.col(f)
    if frame.schema[f] == pl.List(pl.String) or isinstance(frame.schema[f], pl.List):
        return col.is_not_null() & (col.list.len() > 0)
    if frame.schema[f] == pl.String:
        return col.is_not_null() & (col.str.strip_chars() != "")
    return col.is_not_null()


def field_quality(ctx: Context, cells: Cells) -> list[Table]:
    """Per partner: staged rows, rows with each identity field filled, rows with each data-quality flag."""
    partners = [p.id for p in ctx.cfg.partners]
    comp_rows, flag_rows = [], []
    active = {}
    for p in partners:
        frame = ctx.staged[p]
        active[p] = frame.height
        filled = frame.select([_filled(frame, f).sum().alias(f) for f in QUALITY_FIELDS]).row(0, named=True)
        for f in QUALITY_FIELDS:
            comp_rows.append({"field": f, "partner": p, "rows": frame.height, "filled": int(filled[f])})
        flags = (frame.select(pl.col("_cilink_flags").explode().drop_nulls().value_counts())
                 .unnest("_cilink_flags") if "_cilink_flags" in frame.columns and frame.height else pl.DataFrame())
        counts = dict(flags.iter_rows()) if flags.height else {}
        for flag in sorted(set(counts) | set(FLAG_FIELDS)):
            flag_rows.append({"flag": flag, "partner": p, "rows": int(counts.get(flag, 0))})
    comp = Table("completeness", "Field completeness per partner (share of staged rows with a value)",
                 pl.DataFrame(comp_rows, schema={"field": pl.String, "partner": pl.String, "rows": pl.Int64,
                                                 "filled": pl.Int64}),
                 ["field", "partner"], ["rows", "filled"],
                 derive=lambda f: f.with_columns((100 * pl.col("filled") / pl.col("rows")).round(1).alias("share")),
                 note="Rows of the active batches. A flagged value (see below) was invalid and is counted as "
                      "missing. Fields a partner does not send show 0%.")
    comp.register(cells)
    for p in partners:
        # the staged rows of a partner are its active batches' accepted rows, printed above
        accepted = [("batches", b.partner, b.batch_id, "accepted")
                    for b in ctx.batches if b.partner == p and b.status == "active"]
        first = comp.key((QUALITY_FIELDS[0], p), "rows")
        if sum(b.accepted for b in ctx.batches if b.partner == p and b.status == "active") == active[p]:
            cells.total(first, accepted)
        for f in QUALITY_FIELDS:
            key = comp.key((f, p), "rows")
            cells.same(first, key)
            cells.split(key, comp.key((f, p), "filled"), ("missing", p, f))
    flags = Table("flags", "Data-quality flags per partner (rows; the value was set to null)",
                  pl.DataFrame(flag_rows, schema={"flag": pl.String, "partner": pl.String, "rows": pl.Int64}),
                  ["flag", "partner"], ["rows"])
    flags.register(cells)
    for p in partners:
        _row_units(ctx.staged[p], cells, comp, flags, p)
    for p in partners:
        frame = ctx.staged[p]
        for flag, f in FLAG_FIELDS.items():
            if "_cilink_flags" not in frame.columns or f not in frame.columns:
                continue
            flagged = pl.col("_cilink_flags").list.contains(flag)
            n_flag, n_null_flag = frame.select(flagged.sum().alias("a"),
                                               (flagged & ~_filled(frame, f)).sum().alias("b")).row(0)
            if n_flag == n_null_flag:  # every flagged row lost the value: missing = flagged + the rest
                cells.split(("missing", p, f), flags.key((flag, p), "rows"), ("missing-unflagged", p, f, flag))
    return [comp, flags]


def _row_units(frame: pl.DataFrame, cells: Cells, comp: Table, flags: Table, partner: str) -> None:
    """The staged rows each completeness and flag count of a partner counts (ids: batch and row number)."""
    if not {"_cilink_batch_id", "_cilink_row"} <= set(frame.columns) or not frame.height:
        return
    keys: list[Key] = [comp.key((QUALITY_FIELDS[0], partner), "rows")]
    cols: list[pl.Expr] = [pl.lit(True)]
    for f in QUALITY_FIELDS:
        keys.append(comp.key((f, partner), "filled"))
        cols.append(_filled(frame, f))
    has_flags = "_cilink_flags" in frame.columns
    for flag in sorted({r[0] for r in flags.row_keys() if r[1] == partner}):
        key = flags.key((flag, partner), "rows")
        expr = pl.col("_cilink_flags").list.contains(flag).fill_null(False) if has_flags else pl.lit(False)
        if frame.select(expr.sum()).item() == cells.values[key]:  # a flag twice on one row: not a row count
            keys.append(key)
            cols.append(expr)
    ids = frame.select(pl.format("{}:{}", "_cilink_batch_id", "_cilink_row")).to_series()
    cells.units(ROWS_SPACE, keys, ids, frame.select([c.alias(f"c{i}") for i, c in enumerate(cols)]))


# --- linkage ----------------------------------------------------------------------------------------------------


def model_parameters(ctx: Context) -> Table | None:
    """m, u and match weight per comparison level of the saved model (parameters, not counts of people)."""
    if ctx.generation is None or not (ctx.generation / "model.json").is_file():
        return None
    from cilink.link import engine  # imports splink: only when there is a model to show

    model = engine.load_model(ctx.generation)
    if model is None:
        return None
    rows = [{"comparison": w.comparison, "level": w.level, "m": w.m, "u": w.u, "weight": w.weight}
            for w in engine.model_weights(model)]
    return Table("model", "Model parameters: m, u and match weight (log2 m/u) per comparison level",
                 pl.DataFrame(rows, schema={"comparison": pl.String, "level": pl.String, "m": pl.Float64,
                                            "u": pl.Float64, "weight": pl.Float64}),
                 ["comparison", "level"], ["m", "u", "weight"], exact=True,
                 note="m: probability that a matching pair agrees at this level; u: that a random pair does. "
                      "Null levels (a value missing) carry no weight.")


def weight_bins(floor: float, threshold: float, top: float) -> list[float]:
    """Histogram edges one match-weight unit wide that include the review floor and the link threshold."""
    lo = min(floor, threshold)
    edges = {lo, threshold}
    x = float(int(lo)) if lo >= 0 else float(int(lo) - 1)
    while x < top + 1:
        if x > lo:
            edges.add(x)
        x += 1.0
    return sorted(edges)


def match_weights(ctx: Context, cells: Cells) -> list[Table]:
    """Histogram of scored pairs' match weights and the decisions by weight region."""
    pairs = ctx.pairs if ctx.pairs is not None else pl.DataFrame(
        schema={"match_weight": pl.Float64, "decision": pl.String, "guard": pl.String})
    scored = pairs.filter(pl.col("match_weight").is_not_null())
    top = float(scored.get_column("match_weight").max() or ctx.link_threshold)  # type: ignore[arg-type]
    edges = weight_bins(ctx.review_floor, ctx.link_threshold, top)
    # bin i holds edges[i] <= weight < edges[i + 1] (the last bin also its upper edge), vectorized
    bins = np.searchsorted(np.array(edges[1:-1]), scored.get_column("match_weight").to_numpy(), side="right")
    counts = np.bincount(bins, minlength=len(edges) - 1).tolist()
    hist = Table("histogram", "Match weights of scored pairs",
                 pl.DataFrame({"lo": edges[:-1], "hi": edges[1:], "pairs": counts},
                              schema={"lo": pl.Float64, "hi": pl.Float64, "pairs": pl.Int64}),
                 ["lo", "hi"], ["pairs"],
                 note=f"Pairs below the review floor ({ctx.review_floor:g}) are not kept. Link threshold "
                      f"{ctx.link_threshold:g}; review band [{ctx.review_floor:g}, {ctx.link_threshold:g}).")
    hist.register(cells)
    region = (pl.when(pl.col("match_weight").is_null()).then(pl.lit(REGIONS[2]))
              .when(pl.col("match_weight") >= ctx.link_threshold).then(pl.lit(REGIONS[0]))
              .otherwise(pl.lit(REGIONS[1])))
    grid = pairs.group_by(region.alias("region"), "decision").len()
    n = {(r, d): c for r, d, c in grid.iter_rows()}
    rows = [{"region": r, **{d: n.get((r, d), 0) for d in DECISIONS}} for r in REGIONS]
    dec = Table("decisions", "Pair decisions by match-weight region",
                pl.DataFrame(rows, schema={"region": pl.String, **{d: pl.Int64 for d in DECISIONS}})
                .with_columns(pl.sum_horizontal(DECISIONS).alias("total")),
                ["region"], [*DECISIONS, "total"],
                note="review: queued for clerical review (in the band, or held back by a household guard); "
                     "must_link / cannot_link: a reviewer's decision, applied as a constraint.")
    dec.register(cells)
    for r in REGIONS:
        cells.total(dec.key((r,), "total"), [dec.key((r,), d) for d in DECISIONS])
    for d in (*DECISIONS, "total"):
        cells.add(("decisions-all", d), sum(cells.values[dec.key((r,), d)] for r in REGIONS), public=False)
        cells.total(("decisions-all", d), [dec.key((r,), d) for r in REGIONS])
    for r, in_region in ((REGIONS[0], lambda lo: lo >= ctx.link_threshold),
                         (REGIONS[1], lambda lo: lo < ctx.link_threshold)):
        cells.total(dec.key((r,), "total"), [hist.key(k, "pairs") for k in hist.row_keys() if in_region(k[0])])
    if ({"record_id_l", "record_id_r"} <= set(pairs.columns) and pairs.height
            and pairs.select(_pair_id().n_unique()).item() == pairs.height):  # each pair once: counts of pairs
        hist_bin = np.full(pairs.height, -1, dtype=np.int64)
        hist_bin[np.flatnonzero(pairs.get_column("match_weight").is_not_null().to_numpy())] = bins
        units = pairs.with_columns(pl.Series("_bin", hist_bin), region.alias("_region"))
        keys: list[Key] = [hist.key(k, "pairs") for k in hist.row_keys()]
        cols = [pl.col("_bin") == i for i in range(len(keys))]
        for r in REGIONS:
            for d in DECISIONS:
                keys.append(dec.key((r,), d))
                cols.append((pl.col("_region") == r) & (pl.col("decision") == d))
            keys.append(dec.key((r,), "total"))
            cols.append((pl.col("_region") == r) & pl.col("decision").is_in(list(DECISIONS)))
        cells.units(PAIRS_SPACE, keys, units.select(_pair_id()).to_series(),
                    units.select([c.fill_null(False).alias(f"c{i}") for i, c in enumerate(cols)]))
    return [hist, dec]


def _pair_id(left: str = "record_id_l", right: str = "record_id_r") -> pl.Expr:
    """A pair's id whichever way round it was stored."""
    lo = pl.min_horizontal(pl.col(left).cast(pl.String), pl.col(right).cast(pl.String))
    hi = pl.max_horizontal(pl.col(left).cast(pl.String), pl.col(right).cast(pl.String))
    return pl.format("{}|{}", lo, hi).alias("_id")


def review(ctx: Context, cells: Cells, decisions: Table) -> Table:
    """The review queue by why a pair is in it, and reviewers' decisions recorded in the ledger."""
    queue = ctx.queue if ctx.queue is not None else pl.DataFrame(schema={"guard": pl.String})
    reason = pl.col("guard").fill_null("review band") if "guard" in queue.columns else pl.lit("review band")
    by = dict(queue.group_by(reason.alias("r")).len().iter_rows())
    latest: dict[tuple[str, str], str] = {}
    for a, b, d in ctx.reviewer_decisions:
        latest[(min(a, b), max(a, b))] = d
    rows = [{"item": "queued: review band", "pairs": by.get("review band", 0)},
            {"item": "queued: held by the address-only guard", "pairs": by.get("address_only", 0)},
            {"item": "queued: held by the first-name guard", "pairs": by.get("first_name_conflict", 0)},
            {"item": "queued: held by the birth-date guard", "pairs": by.get("birth_date_conflict", 0)},
            {"item": "decisions recorded: match", "pairs": sum(1 for d in latest.values() if d == "match")},
            {"item": "decisions recorded: non-match", "pairs": sum(1 for d in latest.values() if d == "non_match")}]
    table = Table("review", "Review queue and reviewers' decisions",
                  pl.DataFrame(rows, schema={"item": pl.String, "pairs": pl.Int64}), ["item"], ["pairs"],
                  note="Decisions recorded: the decision per pair the next link obeys (a reviewer's latest; none "
                       "where two reviewers disagree and nobody has adjudicated). Reviewers are not named.")
    table.register(cells)
    if {"record_id_l", "record_id_r"} <= set(queue.columns) and queue.height:
        guard = reason.alias("_r")
        items = {"queued: review band": "review band", "queued: held by the address-only guard": "address_only",
                 "queued: held by the first-name guard": "first_name_conflict",
                 "queued: held by the birth-date guard": "birth_date_conflict"}
        units = queue.select(_pair_id(), guard).unique("_id", keep="first")
        if units.height == queue.height:  # each queued pair once: the items count pairs
            cells.units(PAIRS_SPACE, [table.key((item,), "pairs") for item in items], units.get_column("_id"),
                        units.select([(pl.col("_r") == g).alias(f"c{i}") for i, g in enumerate(items.values())]))
    queued = [table.key((r["item"],), "pairs") for r in rows[:3]]
    cells.add(("queue", "total"), sum(r["pairs"] for r in rows[:3]), public=False)
    cells.total(("queue", "total"), queued)
    if cells.values[("queue", "total")] == cells.values[("decisions-all", "review")]:
        cells.same(("queue", "total"), ("decisions-all", "review"))
    return table


# --- persons ------------------------------------------------------------------------------------------------


def _combo_label(combo: tuple[str, ...]) -> str:
    return " + ".join(combo)


def clusters_and_overlap(ctx: Context, cells: Cells) -> list[Table]:
    """Persons by records per person, and by the combination of partners holding their records."""
    partners = sorted(p.id for p in ctx.cfg.partners)
    cw = ctx.crosswalk if ctx.crosswalk is not None else pl.DataFrame(
        schema={"partner": pl.String, "person_id": pl.String})
    per = cw.group_by("person_id").agg(pl.len().alias("records"), pl.col("partner").unique().sort().alias("ps"))
    size = pl.when(pl.col("records") >= 5).then(pl.lit("5+")).otherwise(pl.col("records").cast(pl.String))
    by_size = dict(per.group_by(size.alias("s")).len().iter_rows())
    sizes = Table("cluster_sizes", "Persons by number of linked records",
                  pl.DataFrame({"records": list(CLUSTER_SIZES), "persons": [by_size.get(s, 0) for s in CLUSTER_SIZES]}),
                  ["records"], ["persons"],
                  note="A person's records: one per partner and source id. More than one within a partner "
                       "means the partner holds duplicates (common in HMIS).")
    sizes.register(cells)
    combos = [c for k in range(1, len(partners) + 1) for c in itertools.combinations(partners, k)]
    by_combo = {tuple(ps): n for ps, n in per.group_by("ps").len().iter_rows()}
    overlap = Table("overlap", "Partner overlap: persons by the combination of partners holding their records",
                    pl.DataFrame({"partners": [_combo_label(c) for c in combos],
                                  "n_partners": [len(c) for c in combos],
                                  "persons": [by_combo.get(c, 0) for c in combos]},
                                 schema={"partners": pl.String, "n_partners": pl.Int64, "persons": pl.Int64}),
                    ["partners", "n_partners"], ["persons"])
    overlap.register(cells)
    for c in combos:
        # the overlap is what the report is read for: complements are taken elsewhere first
        cells.add(overlap.key((_combo_label(c), len(c)), "persons"), by_combo.get(c, 0), keep=OVERLAP_KEEP)
    totals = Table("partner_persons", "Persons per partner",
                   pl.DataFrame({"partner": partners,
                                 "persons": [sum(n for c, n in by_combo.items() if p in c) for p in partners]},
                                schema={"partner": pl.String, "persons": pl.Int64}), ["partner"], ["persons"])
    totals.register(cells)
    cells.add(("persons", "total"), per.height)
    cells.total(("persons", "total"), [sizes.key(k, "persons") for k in sizes.row_keys()])
    cells.total(("persons", "total"), [overlap.key(k, "persons") for k in overlap.row_keys()])
    for p in partners:
        cells.total(totals.key((p,), "persons"),
                    [overlap.key((_combo_label(c), len(c)), "persons") for c in combos if p in c])
    if per.height:
        units = per.join(ctx.person_units(), on="person_id", how="left").with_columns(
            size.alias("_size"), pl.col("ps").list.join(" + ").alias("_combo"))
        keys: list[Key] = [("persons", "total")]
        cols: list[pl.Expr] = [pl.lit(True)]
        keys += [sizes.key((s,), "persons") for s in CLUSTER_SIZES]
        cols += [pl.col("_size") == s for s in CLUSTER_SIZES]
        keys += [overlap.key((_combo_label(c), len(c)), "persons") for c in combos]
        cols += [pl.col("_combo") == _combo_label(c) for c in combos]
        keys += [totals.key((p,), "persons") for p in partners]
        cols += [pl.col("ps").list.contains(p) for p in partners]
        cells.units(PERSONS_SPACE, keys, units.get_column("_id"),
                    units.select([c.alias(f"c{i}") for i, c in enumerate(cols)]))
    return [sizes, overlap, totals]


SUMMARY_PEOPLE = ("people linked", "known to two or more partners", "known to one partner only")


def people_summary(ctx: Context, cells: Cells) -> Table:
    """The summary's people: everyone linked, those known to more than one partner, those known to one.

    Call after ``clusters_and_overlap``: the rows are sums of its overlap cells (and related to them)."""
    partners = sorted(p.id for p in ctx.cfg.partners)
    cw = ctx.crosswalk if ctx.crosswalk is not None else pl.DataFrame(
        schema={"partner": pl.String, "person_id": pl.String})
    per = cw.group_by("person_id").agg(pl.col("partner").n_unique().alias("k"))
    values = [per.height, per.filter(pl.col("k") > 1).height, per.filter(pl.col("k") == 1).height]
    table = Table("people", "People in the linked data", pl.DataFrame(
        {"": list(SUMMARY_PEOPLE), "persons": values}, schema={"": pl.String, "persons": pl.Int64}),
        [""], ["persons"])
    table.register(cells)
    keys = [table.key((item,), "persons") for item in SUMMARY_PEOPLE]
    for key in keys:
        cells.add(key, cells.values[key], keep=OVERLAP_KEEP)
    combos = [c for k in range(1, len(partners) + 1) for c in itertools.combinations(partners, k)]
    cells.same(keys[0], ("persons", "total"))
    cells.total(keys[1], [("overlap", _combo_label(c), len(c), "persons") for c in combos if len(c) > 1])
    cells.total(keys[2], [("overlap", _combo_label(c), len(c), "persons") for c in combos if len(c) == 1])
    if per.height:
        units = per.join(ctx.person_units(), on="person_id", how="left")
        cells.units(PERSONS_SPACE, keys, units.get_column("_id"),
                    units.select(pl.lit(True).alias("c0"), (pl.col("k") > 1).alias("c1"),
                                 (pl.col("k") == 1).alias("c2")))
    return table


def _age_band(age: pl.Expr) -> pl.Expr:
    out = pl.when(age.is_null()).then(pl.lit("unknown"))
    for lo, hi, label in AGE_BANDS:
        out = out.when((age >= lo) & (age <= hi)).then(pl.lit(label))
    return out.otherwise(pl.lit("unknown"))


#: The characteristics the linked-vs-unlinked table compares, and their values.
BIAS_VALUES: dict[str, list[str]] = {
    "age band": [b[2] for b in AGE_BANDS] + ["unknown"], "sex": ["female", "male", "another sex", "unknown"],
    **{v: ["recorded", "missing"] for v in ("SSN", "race/ethnicity", "ZIP")}}


def bias_persons(ctx: Context) -> dict[str, pl.DataFrame]:
    """Per partner, one row per person of its records (restricted: ``person_id``): ``status`` (linked to
    another partner or not) and each characteristic of ``BIAS_VALUES``, by the partner's own records."""
    cw = ctx.crosswalk if ctx.crosswalk is not None else pl.DataFrame(
        schema={"partner": pl.String, "source_person_id": pl.String, "person_id": pl.String})
    n_partners = cw.group_by("person_id").agg(pl.col("partner").n_unique().alias("_np"))
    ref = ctx.as_of or dt.date.today()
    out = {}
    for p in sorted(p.id for p in ctx.cfg.partners):
        frame = ctx.staged[p]
        recs = frame.select(
            "source_person_id",
            (pl.col("dob") if "dob" in frame.columns else pl.lit(None, dtype=pl.Date)).alias("dob"),
            (pl.col("sex") if "sex" in frame.columns else pl.lit(None, dtype=pl.String)).alias("sex"),
            _filled(frame, "ssn").alias("ssn"), _filled(frame, "race_ethnicity").alias("race"),
            _filled(frame, "zip5").alias("zip"))
        people = (recs.join(cw.filter(pl.col("partner") == p).select("source_person_id", "person_id"),
                            on="source_person_id", how="inner")
                  .group_by("person_id").agg(pl.col("dob").drop_nulls().first(), pl.col("sex").drop_nulls().first(),
                                             pl.col("ssn").any(), pl.col("race").any(), pl.col("zip").any())
                  .join(n_partners, on="person_id", how="left"))
        age = (pl.lit(ref.year) - pl.col("dob").dt.year()
               - ((pl.col("dob").dt.month() * 100 + pl.col("dob").dt.day()) > ref.month * 100 + ref.day).cast(pl.Int32))
        out[p] = people.select(
            "person_id",
            pl.when(pl.col("_np") > 1).then(pl.lit("linked")).otherwise(pl.lit("unlinked")).alias("status"),
            _age_band(age).alias("age band"),
            pl.col("sex").fill_null("unknown").replace({"F": "female", "M": "male", "X": "another sex"}).alias("sex"),
            pl.when(pl.col("ssn")).then(pl.lit("recorded")).otherwise(pl.lit("missing")).alias("SSN"),
            pl.when(pl.col("race")).then(pl.lit("recorded")).otherwise(pl.lit("missing")).alias("race/ethnicity"),
            pl.when(pl.col("zip")).then(pl.lit("recorded")).otherwise(pl.lit("missing")).alias("ZIP"))
    return out


def linkage_bias(ctx: Context, cells: Cells) -> Table:
    """Per partner: characteristics of persons linked to another partner vs. not (reveals linkage bias)."""
    partners = sorted(p.id for p in ctx.cfg.partners)
    ref = ctx.as_of or dt.date.today()
    rows = []
    members: dict[str, tuple[pl.DataFrame, dict[str, list[str]]]] = {}
    for p, people in bias_persons(ctx).items():
        rows.append({"partner": p, "characteristic": "all", "value": "persons",
                     "linked": people.filter(pl.col("status") == "linked").height,
                     "unlinked": people.filter(pl.col("status") == "unlinked").height})
        values = BIAS_VALUES
        members[p] = (people, values)
        for var, vals in values.items():
            counts = {(s, v): n for s, v, n in people.group_by("status", var).len().iter_rows()}
            for v in vals:
                rows.append({"partner": p, "characteristic": var, "value": v,
                             "linked": counts.get(("linked", v), 0), "unlinked": counts.get(("unlinked", v), 0)})

    def shares(f: pl.DataFrame) -> pl.DataFrame:
        # shares of the printed persons row: a withheld count (or total) makes its share unknown
        tot = f.filter(pl.col("characteristic") == "all").select(
            "partner", pl.col("linked").alias("_nl"), pl.col("unlinked").alias("_nu"))
        g = f.join(tot, on="partner", how="left", maintain_order="left")
        return g.with_columns(
            (100 * pl.col("linked") / pl.col("_nl")).round(1).alias("linked %"),
            (100 * pl.col("unlinked") / pl.col("_nu")).round(1).alias("unlinked %"),
        ).with_columns((pl.col("linked %") - pl.col("unlinked %")).round(1).alias("difference")).drop("_nl", "_nu")

    table = Table("bias", "Linked vs. unlinked persons per partner: record characteristics",
                  pl.DataFrame(rows, schema={"partner": pl.String, "characteristic": pl.String, "value": pl.String,
                                             "linked": pl.Int64, "unlinked": pl.Int64}),
                  ["partner", "characteristic", "value"], ["linked", "unlinked"], derive=shares,
                  note="Persons of each partner (by the partner's own records), split by whether they were linked "
                       "to at least one other partner. Large differences mean linkage works less well for some "
                       "groups (e.g. records without an SSN), which can bias cross-system measures. Ages at "
                       f"{ref.year}-{ref.month:02d}, the latest event month in the data.")
    table.register(cells)
    combos = [c for k in range(1, len(partners) + 1) for c in itertools.combinations(partners, k)]
    for p in partners:
        n = {s: table.key((p, "all", "persons"), s) for s in ("linked", "unlinked")}
        for key in n.values():  # the denominators of every share: worth keeping
            cells.add(key, cells.values[key], keep=1)
        cells.same(n["unlinked"], ("overlap", p, 1, "persons"))
        cells.total(n["linked"], [("overlap", _combo_label(c), len(c), "persons")
                                  for c in combos if p in c and len(c) > 1])
        for var in {r["characteristic"] for r in rows if r["partner"] == p} - {"all"}:
            for status in ("linked", "unlinked"):
                cells.total(n[status], [table.key((p, r["characteristic"], r["value"]), status)
                                        for r in rows if r["partner"] == p and r["characteristic"] == var])
        people, values = members[p]
        if people.height:
            units = people.join(ctx.person_units(), on="person_id", how="left")
            keys: list[Key] = []
            cols: list[pl.Expr] = []
            for status in ("linked", "unlinked"):
                keys.append(n[status])
                cols.append(pl.col("status") == status)
                for var, vals in values.items():
                    for v in vals:
                        keys.append(table.key((p, var, v), status))
                        cols.append((pl.col("status") == status) & (pl.col(var) == v))
            cells.units(PERSONS_SPACE, keys, units.get_column("_id"),
                        units.select([c.fill_null(False).alias(f"c{i}") for i, c in enumerate(cols)]))
    return table
