"""DuckDB vs Spark on the same demo population and the same model: wall time, peak memory, F1.

Generates a demo workspace (``cilink demo --generate-only``), ingests it, trains the model with a first
``cilink link`` on DuckDB, copies the workspace, then measures ``cilink link --full`` on DuckDB in one copy
and ``cilink link --full --backend spark`` in the other (same records, same saved model), each in its own
child process under ``benchmarks.measure`` (wall time of the whole command, peak RSS of the process tree —
for Spark that includes the JVM). Accuracy is ``cilink evaluate`` against the demo's truth file.

    python -m benchmarks.spark_vs_duckdb --people 100000 --master 'local[2]'
    python -m benchmarks.spark_vs_duckdb --people 100000 1000000 --json bench-out/spark.json

Needs the ``spark`` and ``bench`` extras (pyspark 4.x, psutil) and Java 17+.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import Limits, Measurement, run

SECRET = "bench-secret-not-for-production"


def _env() -> dict[str, str]:
    return {**os.environ, "CILINK_SECRET": os.environ.get("CILINK_SECRET", SECRET), "NO_COLOR": "1"}


def _cilink(ws: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cilink", "-w", str(ws), *args]


def _step(name: str, argv: list[str], limits: Limits, logs: Path) -> Measurement:
    m = run(argv, limits, log_dir=logs, name=name, env=_env())
    print(f"  {name}: {m.wall_s:.1f} s, {m.peak_mb:,.0f} MB {m.describe()}", flush=True)
    if not m.ok:
        raise SystemExit(f"{name} failed: {m.error} (see {logs / name}.err)")
    return m


def _engine_conf(ws: Path, master: str, driver_memory: str) -> None:
    cfg = ws / "cilink.toml"
    text = cfg.read_text(encoding="utf-8")
    if "[engine]" in text:
        raise SystemExit(f"{cfg} already has an [engine] section; use a fresh demo workspace")
    cfg.write_text(text + f'\n[engine]\nspark_master = "{master}"\n'
                   f'spark_conf = {{ "spark.driver.memory" = "{driver_memory}" }}\n'
                   f'checkpoint_dir = "{ws.parent / "spark-scratch"}"\n', encoding="utf-8")


def compare(people: int, *, seed: int, master: str, driver_memory: str, work: Path, limits: Limits) -> dict[str, Any]:
    """One population size: setup, then DuckDB and Spark full relinks with the same model; returns the row."""
    base = work / f"people-{people}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    logs = base / "logs"
    duck, spark = base / "duckdb", base / "spark"
    print(f"{people:,} demo people", flush=True)
    _step("demo", [sys.executable, "-m", "cilink", "demo", str(duck), "--people", str(people), "--seed", str(seed),
                   "--generate-only"], limits, logs)
    _engine_conf(duck, master, driver_memory)
    _step("ingest", [sys.executable, "-c", "from cilink.operate.inbox import run_inbox; "
                     "from cilink.workspace import Workspace; import sys; "
                     f"sys.exit(run_inbox(Workspace.open({str(duck)!r}), link=False).exit_code)"], limits, logs)
    train = _step("train-duckdb", _cilink(duck, "link", "--json"), limits, logs)
    shutil.copytree(duck, spark, symlinks=True)
    row: dict[str, Any] = {"people": people, "records": train.payload.get("records"), "master": master,
                           "train_s": round(train.wall_s, 1)}
    for backend, ws in (("duckdb", duck), ("spark", spark)):
        m = _step(f"link-{backend}", _cilink(ws, "link", "--full", "--backend", backend, "--json"), limits, logs)
        e = _step(f"evaluate-{backend}", _cilink(ws, "evaluate", str(ws / ".cilink" / "truth.csv"), "--json"),
                  limits, logs)
        row[backend] = {"wall_s": round(m.wall_s, 1), "link_s": m.payload.get("seconds"),
                        "peak_mb": round(m.peak_mb), "candidate_pairs": m.payload.get("candidate_pairs"),
                        "links": m.payload.get("links"), "persons": m.payload.get("persons"),
                        "precision": e.payload.get("precision"), "recall": e.payload.get("recall"),
                        "f1": e.payload.get("f1")}
    same = all(row["duckdb"][k] == row["spark"][k] for k in ("candidate_pairs", "links", "persons", "f1"))
    row["same_result"] = same
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, nargs="+", default=[100_000])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--driver-memory", default="6g")
    p.add_argument("--work", type=Path, default=Path("bench-out/spark-vs-duckdb"))
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--memory-gb", type=float, default=16)
    p.add_argument("--json", type=Path, help="also write the rows to this file")
    args = p.parse_args(argv)
    limits = Limits(args.timeout, args.memory_gb)
    rows = [compare(n, seed=args.seed, master=args.master, driver_memory=args.driver_memory, work=args.work.resolve(),
                    limits=limits) for n in args.people]
    print("\n| people | backend | wall s | link s | peak MB | candidate pairs | persons | F1 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for b in ("duckdb", "spark"):
            x = r[b]
            print(f"| {r['people']:,} | {b if b == 'duckdb' else 'spark ' + r['master']} | {x['wall_s']} | "
                  f"{x['link_s']} | {x['peak_mb']:,} | {x['candidate_pairs']:,} | {x['persons']:,} | {x['f1']:.4f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
