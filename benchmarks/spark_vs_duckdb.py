"""DuckDB vs Spark on the same demo population and the same model: wall time, peak memory, F1.

The harness's section 4 on its own (``python -m benchmarks`` runs it too, at 100k and 1M people, and puts
its rows in the README table): section 2 (``benchmarks.scale``, without the peers) generates the demo,
ingests it, trains the model with a first ``cilink link`` on DuckDB and exports; then ``benchmarks.backends``
copies that workspace twice and measures ``cilink link --full`` on DuckDB in one copy and ``cilink link
--full --backend spark`` in the other (same records, same saved model), each in its own child process under
``benchmarks.measure`` (wall time of the whole command, peak RSS of the process tree — for Spark that
includes the JVM). Accuracy is ``cilink evaluate`` against the demo's truth file.

    python -m benchmarks.spark_vs_duckdb --people 100000 --master 'local[2]'
    python -m benchmarks.spark_vs_duckdb --people 100000 1000000 --json bench-out/spark.json

Needs the ``spark`` and ``bench`` extras (pyspark 4.x, psutil) and Java 17+; without them the Spark rows
say why they were not run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.backends import DRIVER_MEMORY, MASTER, run_backends
from benchmarks.measure import Limits, Runner
from benchmarks.results import Row
from benchmarks.scale import run_scale

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-not-for-production"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, nargs="+", default=[100_000])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--master", default=MASTER)
    p.add_argument("--driver-memory", default=DRIVER_MEMORY)
    p.add_argument("--work", type=Path, default=ROOT / "bench-out" / "spark-vs-duckdb")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--memory-gb", type=float, default=16)
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args(argv)
    limits = Limits(args.timeout, args.memory_gb)
    work = args.work.resolve()
    env = {**os.environ, "CILINK_SECRET": os.environ.get("CILINK_SECRET", SECRET), "NO_COLOR": "1",
           "PYTHONPATH": str(ROOT)}
    runner = Runner(limits, work / "logs", env, ROOT)
    rows: list[Row] = []
    raw: list[dict[str, Any]] = []
    for people in args.people:
        scale = run_scale(runner, people, seed=args.seed, work=work, peers=())
        result = run_backends(runner, scale, master=args.master, driver_memory=args.driver_memory)
        rows += result.rows
        train = next((r for r in scale.rows if r.task == "link"), None)
        raw.append({"people": people, "records": scale.records, "master": args.master,
                    "train_s": train.wall_s if train else None, **result.details})
    print()
    print(report.spark_table(rows, limits))
    print()
    print(report.spark_summary(rows, limits))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
