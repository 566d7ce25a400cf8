"""The report's charts: matplotlib (Agg, no fonts or anything else from the network) rendered to inline SVG.

Charts are drawn from the *shown* tables only — a withheld count is never drawn as a bar (its height would
give it away): it is marked ``*`` instead. Text stays text in the SVG (``svg.fonttype = none``: small files,
the reader's own sans-serif font), coordinates are rounded to two decimals, and ids are fixed, so the same
data gives the same bytes.
"""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")  # headless, and before pyplot: a report is written from cron as often as by hand

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.figure import Figure

BLUE, ORANGE, GREY, LIGHT = "#1f5f99", "#d9742b", "#8a8a8a", "#d9d9d9"
_RC = {"svg.fonttype": "none", "text.parse_math": False, "svg.hashsalt": "cilink", "font.family": "sans-serif",
       "font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 10,
       "axes.titleweight": "bold"}
_FLOAT = re.compile(r"(\d+\.\d{3,})")


def to_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, scalable, rounded coordinates)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = _FLOAT.sub(lambda m: f"{float(m.group(1)):.2f}", text)
    # keep the natural size, never scaled: on a narrow window the figure scrolls (cilink.report.html), so
    # its text stays at least 8 pt = 10.7 px on a phone (a chart shrunk to 390 px had ~3 px text)
    return re.sub(r'<svg([^>]*?) width="([\d.]+)pt"', r'<svg\1 class="chart" width="\2pt"', text, count=1)


def _figure(width: float, height: float) -> tuple[Figure, plt.Axes]:
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def _mark_suppressed(ax: plt.Axes, xs: list[float], y: float = 0.0, horizontal: bool = False) -> None:
    for x in xs:
        if horizontal:
            ax.annotate("*", (y, x), xytext=(2, -3), textcoords="offset points", color=GREY, fontsize=10)
        else:
            ax.annotate("*", (x, y), xytext=(-3, 2), textcoords="offset points", color=GREY, fontsize=10)


def weight_histogram(hist: pl.DataFrame, floor: float, threshold: float) -> str:
    """Scored pairs per match-weight bin; the review band shaded, the link threshold a line."""
    with plt.rc_context(_RC):
        fig, ax = _figure(8, 3.2)
        lo, hi, n = hist["lo"].to_list(), hist["hi"].to_list(), hist["pairs"].to_list()
        shown = [(a, b - a, c) for a, b, c in zip(lo, hi, n, strict=True) if c is not None]
        colors = [BLUE if a >= threshold else ORANGE for a, _, _ in shown]
        ax.bar([a for a, _, _ in shown], [c for _, _, c in shown], width=[w for _, w, _ in shown], align="edge",
               color=colors, edgecolor="white", linewidth=0.5)
        ax.axvspan(floor, threshold, color=ORANGE, alpha=0.10, label=f"review band [{floor:g}, {threshold:g})")
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"link threshold {threshold:g}")
        _mark_suppressed(ax, [(a + b) / 2 for a, b, c in zip(lo, hi, n, strict=True) if c is None])
        ax.set_xlabel("match weight (log2 odds)")
        ax.set_ylabel("pairs")
        ax.set_title("Match weights of scored pairs")
        ax.legend(frameon=False, loc="upper left")
        return to_svg(fig)


def completeness_heatmap(comp: pl.DataFrame, fields: list[str], partners: list[str]) -> str:
    """Share of rows with a value, field × partner."""
    with plt.rc_context(_RC):
        fig, ax = _figure(1.6 + 1.5 * len(partners), 0.32 * len(fields) + 1.0)
        grid = [[None] * len(partners) for _ in fields]
        for f, p, s in comp.select("field", "partner", "share").iter_rows():
            grid[fields.index(f)][partners.index(p)] = s
        data = [[(v if v is not None else float("nan")) for v in row] for row in grid]
        # vector cells (pcolormesh), not a raster image: crisp at any zoom, nothing embedded as data: URI
        ax.pcolormesh(data, cmap="Blues", vmin=0, vmax=100, edgecolors="white", linewidth=1)
        ax.set_xlim(0, len(partners))
        ax.set_ylim(len(fields), 0)
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(j + 0.5, i + 0.5, "*" if v is None else f"{v:.0f}%", ha="center", va="center", fontsize=8,
                        color="white" if v is not None and v > 60 else "black")
        ax.set_xticks([j + 0.5 for j in range(len(partners))], partners)
        ax.set_yticks([i + 0.5 for i in range(len(fields))], fields)
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        ax.set_title("Field completeness (% of staged rows)")
        return to_svg(fig)


def model_weights(model: pl.DataFrame) -> str:
    """Match weight per comparison level (positive: evidence for a match)."""
    rows = model.filter(pl.col("weight").is_not_null() & (pl.col("comparison") != "(prior)"))
    with plt.rc_context(_RC):
        fig, ax = _figure(8, 0.2 * rows.height + 0.8)
        labels = [f"{c}: {lv}" for c, lv in rows.select("comparison", "level").iter_rows()]
        w = rows["weight"].to_list()
        ax.barh(range(len(w)), w, color=[BLUE if x >= 0 else ORANGE for x in w])
        ax.set_yticks(range(len(w)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlabel("match weight (log2 m/u)")
        ax.set_title("Model: match weight per comparison level")
        return to_svg(fig)


def bar_counts(frame: pl.DataFrame, label: str, count: str, title: str, xlabel: str) -> str:
    """A simple bar chart of counts with withheld ones marked."""
    with plt.rc_context(_RC):
        fig, ax = _figure(5, 2.6)
        labels, n = frame[label].to_list(), frame[count].to_list()
        ax.bar(range(len(n)), [v or 0 for v in n], color=BLUE)
        _mark_suppressed(ax, [i for i, v in enumerate(n) if v is None])
        ax.set_xticks(range(len(n)), labels)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("persons")
        ax.set_title(title)
        return to_svg(fig)


def overlap_upset(overlap: pl.DataFrame, partners: list[str]) -> str:
    """Persons per partner combination, as bars over a dot matrix of the combination (an UpSet plot)."""
    with plt.rc_context(_RC):
        fig, (top, dots) = plt.subplots(2, 1, figsize=(7, 3.8), sharex=True, height_ratios=[3, 1.3])
        combos = overlap["partners"].to_list()
        n = overlap["persons"].to_list()
        top.bar(range(len(n)), [v or 0 for v in n], color=BLUE)
        for i, v in enumerate(n):
            top.annotate("*" if v is None else f"{v}", (i, v or 0), xytext=(0, 2), textcoords="offset points",
                         ha="center", fontsize=8, color=GREY if v is None else "black")
        top.set_ylabel("persons")
        top.set_title("Partner overlap: persons by combination of partners")
        for i, combo in enumerate(combos):
            members = combo.split(" + ")
            ys = [partners.index(m) for m in members]
            dots.scatter([i] * len(partners), range(len(partners)), color=LIGHT, s=30, zorder=1)
            dots.scatter([i] * len(ys), ys, color="black", s=30, zorder=2)
            if len(ys) > 1:
                dots.plot([i, i], [min(ys), max(ys)], color="black", linewidth=1.5, zorder=2)
        dots.set_yticks(range(len(partners)), partners)
        dots.set_xticks([])
        dots.spines[:].set_visible(False)
        dots.invert_yaxis()
        return to_svg(fig)


def bias_panels(bias: pl.DataFrame, partners: list[str]) -> str:
    """Per partner, the share of linked vs. unlinked persons with each characteristic value."""
    with plt.rc_context(_RC):
        bias = bias.filter(pl.col("characteristic") != "all")  # the persons row is every bar's 100%
        first = bias.filter(pl.col("partner") == partners[0])
        fig, axes = plt.subplots(1, len(partners), figsize=(2.9 * len(partners) + 1.5, 0.22 * first.height + 1.2),
                                 sharey=True, squeeze=False)
        labels = [f"{c}: {v}" for c, v in first.select("characteristic", "value").iter_rows()]
        for ax, p in zip(axes[0], partners, strict=True):
            rows = bias.filter(pl.col("partner") == p)
            y = list(range(rows.height))
            lk, ul = rows["linked %"].to_list(), rows["unlinked %"].to_list()
            ax.barh([v - 0.2 for v in y], [v or 0 for v in lk], height=0.4, color=BLUE, label="linked")
            ax.barh([v + 0.2 for v in y], [v or 0 for v in ul], height=0.4, color=ORANGE, label="unlinked")
            _mark_suppressed(ax, [v - 0.2 for v, s in zip(y, lk, strict=True) if s is None], horizontal=True)
            _mark_suppressed(ax, [v + 0.2 for v, s in zip(y, ul, strict=True) if s is None], horizontal=True)
            ax.set_title(p)
            ax.set_xlim(0, 100)
            ax.set_xlabel("% of persons")
        axes[0][0].set_yticks(range(len(labels)), labels, fontsize=8)
        axes[0][0].invert_yaxis()
        axes[0][-1].legend(frameon=False, loc="lower right")
        fig.suptitle("Linked vs. unlinked persons: record characteristics", fontweight="bold", fontsize=10)
        return to_svg(fig)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def indicator_bars(ind: pl.DataFrame) -> str:
    """Each share indicator's latest shown value (overall, and per breakdown group)."""
    shares = ind.filter((pl.col("statistic") == "share") & pl.col("value").is_not_null())
    latest = shares.group_by("indicator").agg(pl.col("period").max())
    rows = shares.join(latest, on=["indicator", "period"]).sort("indicator", "breakdown", "group",
                                                                maintain_order=True)
    order = {k: i for i, k in enumerate(ind["indicator"].unique(maintain_order=True).to_list())}
    rows = rows.with_columns(pl.col("indicator").replace_strict(order, return_dtype=pl.Int32).alias("_o")).sort(
        "_o", "breakdown", "group")
    with plt.rc_context(_RC):
        fig, ax = _figure(8, 0.28 * max(rows.height, 1) + 1.0)
        # the indicator's title, not its id: the overall row of "school_attendance_by_housing" is overall
        # attendance, and was labelled as if it were the breakdown
        title = pl.col("title") if "title" in rows.columns else pl.col("indicator")
        labels = [_short(t) + f" ({p})" if b == "all" else f"    {b.replace('_', ' ')}: {g}"
                  for t, p, b, g in rows.select(title, "period", "breakdown", "group").iter_rows()]
        v = rows["value"].to_list()
        ax.barh(range(len(v)), v, color=[BLUE if b == "all" else ORANGE for b in rows["breakdown"].to_list()])
        for i, x in enumerate(v):
            ax.annotate(f"{x:.0f}%", (x, i), xytext=(3, -3), textcoords="offset points", fontsize=8)
        ax.set_yticks(range(len(v)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 110)
        ax.set_xlabel("% (latest period with a value)")
        ax.set_title("Shared measures")
        return to_svg(fig)
