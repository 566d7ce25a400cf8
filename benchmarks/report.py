"""Results as Markdown tables (printed, and written into README.md between the bench markers) and a chart.

Ratios are cilink ÷ peer on the same machine in the same run — below 1 means cilink is faster or smaller —
so they stay meaningful where absolute numbers do not. A peer that hit a limit gets a bound ("< 0.5").
The DuckDB vs Spark table (section 4) compares cilink with itself, so its ratios are Spark ÷ DuckDB — above 1
means Spark is slower or larger — and a Spark run that hit a limit gets a lower bound ("> 20").
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks.backends import DUCKDB_TOOL, is_spark_tool
from benchmarks.measure import Limits
from benchmarks.results import CILINK, Row, human

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
PACKAGES = ("cilink", "splink", "duckdb", "polars", "recordlinkage", "pandas", "numpy", "pyspark")
CHART = Path("docs/img/bench.png")


# --- context -------------------------------------------------------------------------------------------------


def machine() -> str:
    """CPU, cores, memory, OS — one line."""
    import psutil

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = psutil.virtual_memory().total / 1e9
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GB RAM, {platform.system()} {platform.release()}"


def versions() -> str:
    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return ", ".join([f"Python {platform.python_version()}", *(f"{p} {v(p)}" for p in PACKAGES), _java()])


def _java() -> str:
    """``java -version``'s first line, shortened ("Java 17.0.15"), or "Java not found"."""
    import re
    import subprocess

    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return "Java not found"
    found = re.search(r'version "([^"]+)"', out)
    return f"Java {found.group(1)}" if found else "Java not found"


def run_record(command: str, started: dt.datetime, minutes: float, load: float, keys: list[str]) -> dict[str, Any]:
    """One run of the harness as the results' meta file keeps it; ``keys`` name the rows it measured."""
    return {"command": command, "date": f"{started:%Y-%m-%d %H:%M} UTC", "minutes": round(minutes, 1),
            "load": round(load, 1), "rows": len(keys), "keys": sorted(set(keys))}


def add_run(runs: list[dict[str, Any]], run: dict[str, Any]) -> list[dict[str, Any]]:
    """``runs`` and then ``run``, without the earlier runs none of whose rows are left in the results: a run
    whose every row ``run`` (or a run after it) re-measured no longer describes any figure in the table.
    Runs recorded without their rows' keys are kept, as are runs with rows still standing."""
    later: set[str] = set(run.get("keys", []))
    kept: list[dict[str, Any]] = []
    for earlier in reversed(runs):
        keys = earlier.get("keys")
        if keys is None or not set(keys) <= later:
            kept.append(earlier)
        later |= set(keys or [])
    return [*reversed(kept), run]


def header(meta: dict[str, Any], compare: str = "compare the ratios") -> str:
    """Machine, versions, date(s) and limits of the results, Markdown; ``compare`` says what to read instead of
    the noisy seconds."""
    runs = meta["runs"]
    said = [f"`{r['command']}` on {r['date']} ({r['minutes']:.0f} min, load average {r['load']:.1f} at start)"
            for r in runs]
    if len(said) > 1:
        said = [said[0]] + [f"{s}, which re-measured {r['rows']} rows" for s, r in zip(said[1:], runs[1:],
                                                                                    strict=True)]
    return "\n".join([
        f"Measured by {'; then '.join(said)}. The machine was shared with other jobs, so seconds are noisy: "
        f"{compare}.  ",
        f"Machine: {meta['machine']}.  ",
        f"Versions: {meta['versions']}.  ",
        f"Limits: {meta['timeout_s']:g} s and {meta['memory_gb']:g} GB RSS per step; each tool and each cilink "
        "stage ran in its own child process.",
    ])


# --- numbers -------------------------------------------------------------------------------------------------


def _num(x: float | None, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def _gb(mb: float | None) -> str:
    return "" if mb is None else f"{mb / 1024:.2f}"


def _ratio(cilink: float | None, peer: Row, attr: str, limit: float | None) -> str:
    """cilink ÷ peer, or a bound when the peer hit ``limit`` (it would have taken/used more)."""
    value = getattr(peer, attr)
    if cilink is None:
        return "n/a"
    if peer.ok and value:
        return f"{cilink / value:.2f}"
    if not peer.ok and limit:
        return f"< {cilink / limit:.2f}"
    return "n/a"


def _limit_for(row: Row, limits: Limits, attr: str) -> float | None:
    if attr == "wall_s" and row.status == "timeout":
        return limits.timeout_s
    if attr == "peak_mb" and row.status == "oom":
        return limits.memory_gb * 1e9 / 2**20
    return None


def _status(r: Row) -> str:
    note = r.note.replace("|", "\\|")  # an error message must not break the Markdown table
    return note if r.ok else f"**{note}**"


# --- tables --------------------------------------------------------------------------------------------------


def markdown_table(head: list[str], body: Iterable[list[str]]) -> str:
    """A Markdown table of ``head`` and the ``body`` rows of cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _against_cilink(rows: list[Row], limits: Limits, head: list[str],
                    cells: Callable[[Row, str, str], list[str]]) -> str:
    body = []
    for r in rows:
        ref = next((c for c in rows if c.tool == CILINK and c.task == "link" and c.dataset == r.dataset), None)
        if r.tool == CILINK:
            t = m = "—"
        else:
            t = _ratio(ref.wall_s if ref and ref.ok else None, r, "wall_s", _limit_for(r, limits, "wall_s"))
            m = _ratio(ref.peak_mb if ref and ref.ok else None, r, "peak_mb", _limit_for(r, limits, "peak_mb"))
        body.append(cells(r, t, m))
    return markdown_table(head, body)


def febrl4_table(rows: list[Row], limits: Limits) -> str:
    rows = [r for r in rows if r.section == "febrl4"]
    return _against_cilink(
        rows, limits,
        ["tool", "precision", "recall", "F1", "wall s", "peak GB", "time: cilink ÷ tool", "memory: cilink ÷ tool",
         "note"],
        lambda r, t, m: [r.tool, _num(r.precision, ".4f"), _num(r.recall, ".4f"), _num(r.f1, ".4f"),
                         _num(r.wall_s, ".1f"), _gb(r.peak_mb), t, m, _status(r)],
    )


def scale_table(rows: list[Row], limits: Limits) -> str:
    rows = [r for r in rows if r.section == "scale"]
    order = {CILINK: 0}
    rows = sorted(rows, key=lambda r: (r.size, order.get(r.tool, 1), r.task != "pipeline", r.tool))
    return _against_cilink(
        rows, limits,
        ["people", "records", "tool", "task", "precision", "recall", "F1", "wall s", "peak GB",
         "time: cilink ÷ tool", "memory: cilink ÷ tool", "note"],
        lambda r, t, m: [f"{r.size:,}", _num(r.records, ","), r.tool,
                         "ingest → link → export" if r.task == "pipeline" else r.task,
                         _num(r.precision, ".4f"), _num(r.recall, ".4f"), _num(r.f1, ".4f"), _num(r.wall_s, ".1f"),
                         _gb(r.peak_mb), t, m, _status(r)],
    )


def incremental_table(rows: list[Row], limits: Limits) -> str:
    inc_rows = [r for r in rows if r.section == "incremental"]
    body = []
    for r in sorted(inc_rows, key=lambda r: (r.size, r.task != "incremental")):
        full = next((f for f in inc_rows if f.size == r.size and f.task == "full"), None)
        splink = next((s for s in rows if s.section == "scale" and s.size == r.size and s.tool == "splink"), None)
        speedup = vs_splink = ""
        if r.task == "incremental" and r.ok:
            if full is not None and full.ok:
                speedup = f"{r.wall_s / full.wall_s:.2f}"
            if splink is not None:
                vs_splink = _ratio(r.wall_s, splink, "wall_s", _limit_for(splink, limits, "wall_s"))
        body.append([f"{r.size:,}", _num(r.records, ","),
                     "incremental `cilink link`" if r.task == "incremental" else "`cilink link --full`",
                     _num(r.wall_s, ".1f"), _gb(r.peak_mb), speedup, vs_splink, _status(r)])
    return markdown_table(["people", "linked records", "run", "wall s", "peak GB", "time: incremental ÷ full",
                   "time: incremental ÷ Splink relinking all", "note"], body)


def _over(spark: Row, duck: Row | None, attr: str, limit: float | None) -> str:
    """Spark ÷ DuckDB, or a lower bound when Spark hit ``limit`` (it would have taken/used more)."""
    base = getattr(duck, attr) if duck is not None and duck.ok else None
    if not base:
        return "n/a"
    if spark.ok and getattr(spark, attr) is not None:
        return f"{getattr(spark, attr) / base:.2f}"
    if limit:
        return f"> {limit / base:.2f}"
    return "n/a"


def spark_table(rows: list[Row], limits: Limits) -> str:
    """Section 4: `cilink link --full` on DuckDB and on Spark, same records and model; Spark ÷ DuckDB."""
    rows = sorted((r for r in rows if r.section == "spark"), key=lambda r: (r.size, r.tool != DUCKDB_TOOL, r.tool))
    body = []
    for r in rows:
        duck = next((d for d in rows if d.size == r.size and d.tool == DUCKDB_TOOL), None)
        if r.tool == DUCKDB_TOOL:
            t = m = "—"
        else:
            t = _over(r, duck, "wall_s", _limit_for(r, limits, "wall_s"))
            m = _over(r, duck, "peak_mb", _limit_for(r, limits, "peak_mb"))
        body.append([f"{r.size:,}", _num(r.records, ","), r.tool, _num(r.precision, ".4f"),
                     _num(r.recall, ".4f"), _num(r.f1, ".4f"), _num(r.wall_s, ".1f"), _num(r.work_s, ".1f"),
                     _gb(r.peak_mb), t, m, _status(r)])
    return markdown_table(["people", "records", "backend", "precision", "recall", "F1", "wall s", "link s",
                   "peak GB", "time: Spark ÷ DuckDB", "memory: Spark ÷ DuckDB", "note"], body)


def spark_summary(rows: list[Row], limits: Limits) -> str:
    """Where (if anywhere) Spark paid off here: its time and memory ratios by size, the trend, and a verdict."""
    spark_rows = [r for r in rows if r.section == "spark"]
    lines = []
    for tool in sorted({r.tool for r in spark_rows if is_spark_tool(r.tool)}):
        seen: list[tuple[int, str, str]] = []  # (people, time ratio, memory ratio)
        for r in sorted((r for r in spark_rows if r.tool == tool), key=lambda r: r.size):
            duck = next((d for d in spark_rows if d.size == r.size and d.tool == DUCKDB_TOOL), None)
            t = _over(r, duck, "wall_s", _limit_for(r, limits, "wall_s"))
            if t != "n/a":
                seen.append((r.size, t, _over(r, duck, "peak_mb", _limit_for(r, limits, "peak_mb"))))
        if not seen:
            continue
        times = ", ".join(f"{t} at {human(n)}" for n, t, _ in seen)
        mems = ", ".join(f"{m} at {human(n)}" for n, _, m in seen)
        lines.append(f"- {tool} ÷ DuckDB: wall time {times} people; peak memory {mems} people.")
        exact = [(n, float(t)) for n, t, _ in seen if not t.startswith(">")]
        faster = [human(n) for n, t in exact if t < 1]
        if len(exact) > 1 and exact[0][1] != exact[-1][1]:
            trend = "narrowed" if exact[-1][1] < exact[0][1] else "widened"
            lines.append(f"- The time gap {trend} from {exact[0][1]:.2f} at {human(exact[0][0])} to "
                         f"{exact[-1][1]:.2f} at {human(exact[-1][0])} people.")
        if faster:
            lines.append(f"- Spark was faster than DuckDB at {', '.join(faster)} people on this machine.")
        else:
            lines.append("- DuckDB was faster at every size measured here: on one machine Spark pays for starting a "
                         "JVM and for writing every Splink step to Parquet, and has nothing to distribute over. "
                         "Spark is for candidate pairs that outgrow one machine, on a cluster (not measured here) — "
                         "see docs/scaling.md, “When to switch”.")
    return "\n".join(lines)


def accuracy_summary(rows: list[Row]) -> str:
    """One line per accuracy dataset: cilink's F1 against the best peer's (a failed run has no F1)."""
    lines = []
    datasets = dict.fromkeys(r.dataset for r in rows if r.section in ("febrl4", "scale"))
    for dataset in datasets:
        mine = next((r for r in rows if r.dataset == dataset and r.tool == CILINK and r.task == "link"), None)
        peers = [r for r in rows if r.section in ("febrl4", "scale") and r.dataset == dataset and r.tool != CILINK
                 and r.f1 is not None]
        if mine is None or mine.f1 is None or not peers:
            continue
        best = max(peers, key=lambda r: r.f1 or 0.0)
        verdict = "≥" if mine.f1 >= (best.f1 or 0.0) else "**<**"
        lines.append(f"- {dataset}: cilink F1 {mine.f1:.4f} {verdict} best peer {best.tool} {best.f1:.4f}")
    return "\n".join(lines)


def tables(rows: list[Row], limits: Limits) -> str:
    """The sections' tables (those with rows), the Spark verdict and the accuracy summary, Markdown."""
    parts = []
    if any(r.section == "febrl4" for r in rows):
        parts += ["**1. FEBRL4** (5,000 + 5,000 records, 5,000 true links; pairwise scores against the true links; "
                  "for cilink, the links it makes automatically — pairs held in its review queue count as not "
                  "linked)", "", febrl4_table(rows, limits), ""]
    if any(r.section == "scale" for r in rows):
        parts += ["**2. Synthetic scale** (`cilink demo` populations; pairwise scores against the demo truth, "
                  "cilink's review queue counting as not linked; the peers link the records cilink staged)", "",
                  scale_table(rows, limits), ""]
    if any(r.section == "incremental" for r in rows):
        parts += ["**3. Incremental** (1,000 new records from a fourth partner into the linked workspace)", "",
                  incremental_table(rows, limits), ""]
    if any(r.section == "spark" for r in rows):
        parts += ["**4. DuckDB vs Spark** (`cilink link --full` on section 2's workspace, same records and saved "
                  "model, on each backend; wall time includes interpreter and JVM start, peak memory the process "
                  "tree with the JVM)", "", spark_table(rows, limits), ""]
        verdict = spark_summary(rows, limits)
        if verdict:
            parts += [verdict, ""]
    summary = accuracy_summary(rows)
    if summary:
        parts += ["**Accuracy: cilink against the best peer on each dataset**", "", summary, ""]
    return "\n".join(parts).rstrip() + "\n"


# --- README and chart -------------------------------------------------------------------------------------------


def write_readme(readme: Path, block: str, *, start: str = START, end: str = END,
                 heading: str = "Benchmarks") -> None:
    """Replace what is between the ``start`` and ``end`` markers (default: the bench markers), adding a
    ``heading`` section with them at the end if they are missing."""
    text = readme.read_text()
    if start not in text or end not in text:
        text = text.rstrip() + f"\n\n## {heading}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{block.strip()}\n{end}{tail}")


def chart(rows: list[Row], path: Path, limits: Limits) -> None:
    """Wall time and peak memory vs population size, log–log; a failed run is an × at the limit it hit."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [
        ("cilink ingest → link → export", lambda r: r.section == "scale" and r.tool == CILINK and r.task == "pipeline",
         "C0", "-"),
        ("cilink link (first run: trains the model)",
         lambda r: r.section == "scale" and r.tool == CILINK and r.task == "link", "C0", "--"),
        ("cilink link --full, +1,000 records (saved model)",
         lambda r: r.section == "incremental" and r.task == "full", "C2", "--"),
        ("cilink link, +1,000 records (incremental)", lambda r: r.section == "incremental" and r.task == "incremental",
         "C2", ":"),
        ("Splink 5 (plain)", lambda r: r.section == "scale" and r.tool == "splink", "C1", "-"),
        ("recordlinkage", lambda r: r.section == "scale" and r.tool == "recordlinkage-ecm", "C3", "-"),
    ]
    for i, tool in enumerate(sorted({r.tool for r in rows if r.section == "spark" and is_spark_tool(r.tool)})):
        series.append((f"{tool.removeprefix('cilink (').removesuffix(')')}: cilink link --full (saved model)",
                       lambda r, tool=tool: r.section == "spark" and r.tool == tool, f"C{4 + i}", "-."))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, attr, unit, scale, limit in (
        (axes[0], "wall_s", "wall time (s)", 1.0, limits.timeout_s),
        (axes[1], "peak_mb", "peak memory (GB)", 1 / 1024, limits.memory_gb * 1e9 / 2**30),
    ):
        for name, pick, color, style in series:
            pts = sorted((r for r in rows if pick(r)), key=lambda r: r.size)
            ok = [(r.size, getattr(r, attr) * scale) for r in pts if r.ok and getattr(r, attr) is not None]
            if ok:
                ax.plot(*zip(*ok, strict=True), marker="o", color=color, linestyle=style, label=name)
            failed = [r for r in pts if not r.ok and r.status in ("timeout", "oom")]
            for r in failed:
                ax.scatter([r.size], [limit], marker="x", s=70, color=color)
                ax.annotate(r.status, (r.size, limit), textcoords="offset points", xytext=(4, -12), fontsize=8,
                            color=color)
        ax.axhline(limit, color="grey", linewidth=0.8, linestyle=(0, (2, 3)))
        ax.set_xscale("log")
        ax.set_yscale("log")
        sizes = sorted({r.size for r in rows if r.section in ("scale", "incremental", "spark")})
        ax.set_xticks(sizes, [human(n) for n in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("synthetic population (people)")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.25)
    axes[0].set_title("Wall time (dotted line: time limit)")
    axes[1].set_title("Peak resident memory (dotted line: memory limit)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
