"""Section 4 — DuckDB vs Spark: `cilink link --full` on each backend, same records, same saved model.

The base is section 2's linked workspace of each size (records ingested, model trained by the first
``cilink link``). It is copied twice — the base itself is never touched, so section 3 and any later step see
it as section 2 left it — and both copies get the same ``[engine]`` settings: ``spark_master`` (default
``local[2]``), ``spark.driver.memory`` (default 6g) and a ``checkpoint_dir`` under the run's working files.
Then, each in its own measured child: ``cilink link --full --backend duckdb --json`` in one copy and
``cilink link --full --backend spark --json`` in the other (wall time of the whole command, JVM start
included; peak RSS of the process tree, JVM included), and ``cilink evaluate`` against the demo truth in
each. The Spark row notes whether its candidate pairs, links, persons and F1 equal DuckDB's.

A Spark run that cannot happen (no pyspark, no Java) or fails (error, timeout, out of memory) is a failure
row with the reason; the harness carries on.

The harness runs this section at 100k people and up (``MIN_PEOPLE``) unless ``--sizes`` names the sizes;
``python -m benchmarks.spark_vs_duckdb`` runs it standalone.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement, Runner
from benchmarks.results import Row, human
from benchmarks.scale import ScaleRun, dataset_name, score

SECTION = "spark"
TASK = "relink --full"
DUCKDB_TOOL = "cilink (DuckDB)"
MIN_PEOPLE = 100_000
MASTER = "local[2]"
DRIVER_MEMORY = "6g"
#: what must come out the same on both backends (the ``cilink link --json`` and ``evaluate`` fields)
SAME = ("candidate_pairs", "links", "persons", "f1")


def spark_tool(master: str) -> str:
    return f"cilink (Spark {master})"


def is_spark_tool(tool: str) -> bool:
    return tool.startswith("cilink (Spark")


@dataclass
class Relink:
    """One size's two rows, and what each backend's link and evaluate printed (for the standalone JSON)."""

    rows: list[Row]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


def spark_missing() -> str:
    """Why Spark cannot run here ('' if pyspark and Java are there). Checked without importing pyspark."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark not installed (pip install 'cilink[spark]')"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and (Path(java_home) / "bin" / "java").is_file()):
        return "no Java (Spark needs Java 17+ on PATH or in JAVA_HOME)"
    return ""


def engine_conf(ws: Path, master: str, driver_memory: str, checkpoint_dir: Path) -> None:
    """Append the ``[engine]`` section (backend stays duckdb; the run picks it with ``--backend``)."""
    cfg = ws / "cilink.toml"
    text = cfg.read_text(encoding="utf-8")
    if "[engine]" in text:
        raise ValueError(f"{cfg} already has an [engine] section")
    cfg.write_text(text + f'\n[engine]\nspark_master = "{master}"\n'
                   f'spark_conf = {{ "spark.driver.memory" = "{driver_memory}" }}\n'
                   f'checkpoint_dir = "{checkpoint_dir}"\n', encoding="utf-8")


def run_backends(runner: Runner, base: ScaleRun, *, master: str = MASTER,
                 driver_memory: str = DRIVER_MEMORY) -> Relink:
    """DuckDB and Spark rows for one size; the workspace copies are removed afterwards (logs stay)."""
    label = human(base.people)
    print(f"DuckDB vs Spark {master}: cilink link --full on {dataset_name(base.people)}", flush=True)
    common = {"section": SECTION, "dataset": dataset_name(base.people), "size": base.people,
              "records": base.records, "task": TASK}
    tools = {"duckdb": DUCKDB_TOOL, "spark": spark_tool(master)}
    if base.workspace is None:
        return Relink([Row(**common, tool=t, status="error", note="no linked base workspace (see the scale rows)")
                       for t in tools.values()])
    out = base.workspace.parent / "backends"
    shutil.rmtree(out, ignore_errors=True)
    scratch = out / "spark-scratch"
    try:
        for backend in tools:
            shutil.copytree(base.workspace, out / backend, symlinks=True)
            engine_conf(out / backend, master, driver_memory, scratch)
    except (OSError, ValueError) as e:
        shutil.rmtree(out, ignore_errors=True)
        return Relink([Row(**common, tool=t, status="error", note=f"setup failed: {e}") for t in tools.values()])
    result = Relink([])
    missing = spark_missing()
    for backend, tool in tools.items():
        if backend == "spark" and missing:
            print(f"  {'cilink link --full --backend spark':<48} skipped: {missing}", flush=True)
            result.rows.append(Row(**common, tool=tool, status="error", note=f"not run: {missing}"))
            continue
        ws = out / backend
        m = runner.step(f"spark-{label}-link-{backend}",
                        runner.cilink(ws, "link", "--full", "--backend", backend, "--json"),
                        label=f"cilink link --full --backend {backend}")
        if m.ok and "persons" not in m.payload:
            m.status, m.error = "error", "no link summary printed"
        accuracy = score(runner, f"spark-{label}-score-{backend}",
                         runner.cilink(ws, "evaluate", str(ws / ".cilink" / "truth.csv"), "--json")) if m.ok else {}
        result.details[backend] = {**_summary(m), **accuracy}
        result.rows.append(Row.measured(m, **common, tool=tool, work_s=m.payload.get("seconds"),
                                        note=_note(m), **accuracy))
    duck, spark = result.details.get("duckdb"), result.details.get("spark")
    if duck and spark and all(r.ok for r in result.rows):
        same = all(duck.get(k) == spark.get(k) for k in SAME)
        result.rows[1].note += f"; same pairs, links, persons and F1 as DuckDB: {'yes' if same else '**NO**'}"
    shutil.rmtree(out, ignore_errors=True)
    return result


def _summary(m: Measurement) -> dict[str, Any]:
    p = m.payload
    return {"status": m.status, "wall_s": m.wall_s if m.ok else None, "peak_mb": m.peak_mb if m.ok else None,
            "link_s": p.get("seconds"), "candidate_pairs": p.get("candidate_pairs"), "links": p.get("links"),
            "persons": p.get("persons"), "error": m.describe()}


def _note(m: Measurement) -> str:
    p = m.payload
    if not m.ok or "candidate_pairs" not in p:
        return ""
    return f"{p['candidate_pairs']:,} candidate pairs, {p['links']:,} links, {p['persons']:,} persons"
