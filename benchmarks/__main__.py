"""`python -m benchmarks`: cilink against recordlinkage and plain Splink 5, on this machine, in one run.

    python -m benchmarks                  # full: FEBRL4; 10k, 100k, 1M people; incremental at each size;
                                          #   DuckDB vs Spark local[2] at 100k and 1M
    python -m benchmarks --quick          # FEBRL4, 10k people, 10k incremental (a few minutes; no Spark)
    python -m benchmarks --sizes 10000,100000 --sections scale    # partial: printed only
    python -m benchmarks --sizes 10000 --sections scale,spark --peers ''   # Spark smoke test at 10k
    python -m benchmarks --quick --merge  # re-measure the quick rows inside the full results, redraw README
    python -m benchmarks --render-only    # redraw README table and chart from the last results CSV

Sections: febrl4 (1), scale (2), incremental (3), spark (4: ``cilink link --full`` on DuckDB and on Spark
``--spark-master``, same records and model, at sizes of 100k people and up — or at every size ``--sizes``
names; needs the ``spark`` extra and Java 17+, else its rows say why not). --quick leaves spark out unless
--sections names it.

Writes ``benchmarks/results/bench.csv`` and beside it ``bench.meta.json`` (machine, versions, dates,
limits), prints the tables, and writes them into README.md between the bench markers, with the chart at
docs/img/bench.png. A --quick or partial run (--sizes, --sections, --peers) only prints them, its CSV going
to ``bench-out/bench/``, unless --merge puts its rows into the results.
Working files (generated demos, workspaces, child logs) go to ``bench-out/`` (``--work``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.accuracy import run_febrl4
from benchmarks.backends import DRIVER_MEMORY, MASTER, MIN_PEOPLE, run_backends
from benchmarks.measure import Limits, Runner
from benchmarks.new_records import run_new_records
from benchmarks.peers import PEERS
from benchmarks.results import Row, human, key, load_meta, merge, read_csv, save_meta, write_csv
from benchmarks.scale import run_scale

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("febrl4", "scale", "incremental", "spark")
QUICK_SECTIONS = ("febrl4", "scale", "incremental")
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000,)
SECRET = "benchmark-secret-not-for-production"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="FEBRL4 + 10k people + 10k incremental")
    p.add_argument("--sizes", help="population sizes, comma-separated (default 10000,100000,1000000)")
    p.add_argument("--sections",
                   help=f"any of {','.join(SECTIONS)} (default: all; with --quick: {','.join(QUICK_SECTIONS)})")
    p.add_argument("--peers", default=",".join(PEERS), help="peers to run at scale ('' for none)")
    p.add_argument("--spark-master", default=MASTER, help=f"Spark master of the spark section (default {MASTER})")
    p.add_argument("--spark-driver-memory", default=DRIVER_MEMORY,
                   help=f"spark.driver.memory of the spark section (default {DRIVER_MEMORY})")
    p.add_argument("--seed", type=int, default=1, help="demo population seed")
    p.add_argument("--timeout", type=float, default=1800, help="wall-clock limit per step, seconds")
    p.add_argument("--memory-gb", type=float, default=16, help="RSS limit per step, GB")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results CSV directory")
    p.add_argument("--work", type=Path, default=ROOT / "bench-out" / "bench", help="working files")
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                   help="write README.md and the chart (default: for a full run or --merge)")
    p.add_argument("--merge", action="store_true",
                   help="replace the re-measured rows in bench.csv, keep the others (e.g. --quick --merge)")
    p.add_argument("--render-only", action="store_true", help="only redraw README and chart from the CSV")
    return p.parse_args()


def main() -> None:
    args = _args()
    limits = Limits(args.timeout, args.memory_gb)
    sections = set(args.sections.split(",")) if args.sections else set(QUICK_SECTIONS if args.quick else SECTIONS)
    if sections - set(SECTIONS):
        sys.exit(f"unknown section(s) {','.join(sorted(sections - set(SECTIONS)))}; choose from {','.join(SECTIONS)}")
    # only a full run (or --merge) replaces the committed results; a quick or partial run is a smoke test
    # whose CSV stays with the working files
    full = not (args.quick or args.sizes or sections != set(SECTIONS) or args.peers != ",".join(PEERS))
    if full or args.merge:
        csv_path = args.out / "bench.csv"
    else:
        csv_path = args.work / ("bench-quick.csv" if args.quick else "bench-partial.csv")
    meta_path = csv_path.with_suffix(".meta.json")
    write_readme = args.readme if args.readme is not None else csv_path.name == "bench.csv"
    if args.render_only:
        _render(read_csv(csv_path), load_meta(meta_path))
        return
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    # Spark's fixed start-up cost dominates small populations: a full run compares the backends from 100k
    # people up; --sizes (or --quick --sections …,spark) is taken as asked, e.g. for a 10k smoke test
    spark_sizes = sizes if args.sizes or args.quick else tuple(n for n in sizes if n >= MIN_PEOPLE)
    peers = tuple(p for p in args.peers.split(",") if p)
    earlier = read_csv(csv_path) if args.merge and csv_path.is_file() else []
    meta = load_meta(meta_path) if args.merge else {"runs": []}
    measured_with = (meta.get("timeout_s"), meta.get("memory_gb"))
    if args.merge and None not in measured_with and measured_with != (limits.timeout_s, limits.memory_gb):
        print(f"warning: merging into results measured with other limits ({meta['timeout_s']:g} s, "
              f"{meta['memory_gb']:g} GB)", file=sys.stderr)
    started, t0, load = dt.datetime.now(dt.UTC), time.perf_counter(), os.getloadavg()[0]
    env = {**os.environ, "CILINK_SECRET": os.environ.get("CILINK_SECRET", SECRET), "PYTHONPATH": str(ROOT)}
    runner = Runner(limits, args.work / "logs", env, ROOT)
    spark_at = f" (spark at {', '.join(human(n) for n in spark_sizes) or 'none'})" if "spark" in sections else ""
    print(f"Benchmarks: sections {','.join(s for s in SECTIONS if s in sections)}; sizes {sizes}{spark_at}; "
          f"{limits}; child logs in {runner.log_dir}", flush=True)

    rows: list[Row] = []
    if "febrl4" in sections:
        rows += run_febrl4(runner)
        write_csv(merge(earlier, rows), csv_path)
    if sections & {"scale", "incremental", "spark"}:
        for people in sizes:
            spark = "spark" in sections and people in spark_sizes
            if not (sections & {"scale", "incremental"} or spark):
                continue
            scale = run_scale(runner, people, seed=args.seed, work=args.work,
                              peers=peers if "scale" in sections else ())
            if "scale" in sections:
                rows += scale.rows
            if "incremental" in sections:
                rows += run_new_records(runner, scale)
            if spark:
                rows += run_backends(runner, scale, master=args.spark_master,
                                     driver_memory=args.spark_driver_memory).rows
            write_csv(merge(earlier, rows), csv_path)  # after every size: a long run leaves partial results

    command = " ".join(["python -m benchmarks", *map(shlex.quote, sys.argv[1:])])
    run = report.run_record(command, started, (time.perf_counter() - t0) / 60, load, ["|".join(key(r)) for r in rows])
    meta["runs"] = report.add_run(meta["runs"], run)
    meta.update(timeout_s=limits.timeout_s, memory_gb=limits.memory_gb, machine=report.machine(),
                versions=report.versions())
    save_meta(meta_path, meta)
    all_rows = merge(earlier, rows)
    print()
    print(report.header(meta))
    print()
    print(report.tables(all_rows, limits))
    print(f"Results: {csv_path.relative_to(ROOT) if csv_path.is_relative_to(ROOT) else csv_path}")
    if write_readme:
        _render(all_rows, meta)


def _render(rows: list[Row], meta: dict[str, Any]) -> None:
    limits = Limits(meta["timeout_s"], meta["memory_gb"])
    report.chart(rows, ROOT / report.CHART, limits)
    block = "\n\n".join([report.header(meta), report.tables(rows, limits).strip(),
                          f"![Wall time and peak memory vs population size]({report.CHART.as_posix()})"])
    report.write_readme(ROOT / "README.md", block)
    print(f"Wrote README.md (between the bench markers) and {report.CHART}", file=sys.stderr)


if __name__ == "__main__":
    main()
