"""Benchmark: 1,000 new records linked incrementally against ~200,000 linked records, vs `cilink link --full`.

1. A demo workspace of ~270,000 synthetic people (``cilink.demo``: school CSV, workforce XLSX, HMIS zip;
   ≈ 200,000 linkable records) is ingested and linked once (this trains the model). Cached in ``--out``.
2. A fourth partner sends 1,000 records (700 people the other partners know, 300 new ones, with the demo's
   identifier noise), ingested into two copies of that workspace.
3. In separate child processes (so each peak RSS is its own): copy A runs the default incremental
   ``link_workspace(ws)``; copy B runs ``link_workspace(ws, full=True)`` (same model, everything rescored).
4. The two crosswalks must put records into the same persons.

Reported: wall time of the link call (not interpreter start-up), peak RSS, and the speed-up.

    python benchmarks/incremental.py [--people 270000] [--new 1000] [--out bench-out/incremental] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: `benchmarks` is then importable
from benchmarks.child_memory import peak_rss_mb  # noqa: E402

SECRET = "incremental-benchmark-secret"
NEW_PARTNER = """
[[partners]]
id = "new-partner"
domain = "workforce"
format = "csv"
date_format = "%Y-%m-%d"
mode = "append"
[partners.columns]
source_person_id = "ID"
first_name = "First"
last_name = "Last"
dob = "DOB"
sex = "Sex"
ssn = "SSN"
street = "Street"
zip5 = "Zip"
phone = "Phone"
program = "Program"
entry_date = "Entry"
"""


def _ingest_inbox(ws: Any) -> None:
    from cilink.ingest.batches import ingest_file

    for partner in ws.config.partners:
        inbox = ws.inbox_dir(partner.id)
        for f in sorted(p for p in inbox.iterdir() if p.is_file()) if inbox.is_dir() else []:
            ingest_file(ws, partner.id, f)


def build_base(base: Path, people: int, seed: int) -> dict[str, Any]:
    """Generate, ingest and link (training the model) the big workspace once."""
    from cilink.demo import generate_demo
    from cilink.link.linkage import link_workspace
    from cilink.workspace import Workspace, ensure_layout

    shutil.rmtree(base, ignore_errors=True)
    generate_demo(base, people=people, seed=seed)
    ensure_layout(base)
    ws = Workspace.open(base)
    _ingest_inbox(ws)
    started = time.perf_counter()
    result = link_workspace(ws)
    return {"records": result.records, "persons": result.persons, "seconds_first_link": time.perf_counter() - started}


def write_new_partner(base: Path, people: int, seed: int, n_new: int, out_csv: Path) -> None:
    """``n_new`` records from a fourth partner: 70 % people already in the data, 30 % nobody has seen."""
    import polars as pl

    from cilink.demo.noise import NoiseProfile, apply_noise, with_household_ssn
    from cilink.demo.population import generate_population

    population = with_household_ssn(generate_population(people, seed))
    known = set(pl.read_csv(base / ".cilink" / "truth.csv", infer_schema=False)["true_id"].to_list())
    rng = random.Random(f"new-partner:{seed}")
    seen = population.filter(pl.col("true_id").is_in(sorted(known)))
    unseen = population.filter(~pl.col("true_id").is_in(sorted(known)))
    n_known = int(n_new * 0.7)
    chosen = pl.concat([seen.sample(n_known, seed=seed), unseen.sample(n_new - n_known, seed=seed)])
    noisy = apply_noise(chosen, NoiseProfile(), rng)
    frame = noisy.select(
        pl.format("NP{}", pl.int_range(1, pl.len() + 1)).alias("ID"),
        pl.col("first_name").alias("First"), pl.col("last_name").alias("Last"),
        pl.col("dob").dt.strftime("%Y-%m-%d").alias("DOB"), pl.col("sex").alias("Sex"), pl.col("ssn").alias("SSN"),
        pl.col("street").alias("Street"), pl.col("zip5").alias("Zip"), pl.col("phone").alias("Phone"),
        pl.lit("Adult").alias("Program"), pl.lit("2025-03-01").alias("Entry"),
    )
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(out_csv)


def prepare_copy(base: Path, target: Path, new_csv: Path) -> None:
    from cilink.ingest.batches import ingest_file
    from cilink.workspace import Workspace

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(base, target, symlinks=True)
    config = target / "cilink.toml"
    config.write_text(config.read_text() + NEW_PARTNER)
    ingest_file(Workspace.open(target), "new-partner", new_csv)


def base_is_current(base: Path) -> bool:
    """Whether the cached base's link files are in this cilink's formats (an earlier version's make the next
    run a full relink, which would be measured as the incremental run)."""
    from cilink.link.outputs import load_previous
    from cilink.workspace import Workspace

    return load_previous(Workspace.open(base).link_dir).complete


def child(mode: str, ws_path: str) -> dict[str, Any]:
    from cilink.link.linkage import link_workspace
    from cilink.workspace import Workspace

    ws = Workspace.open(ws_path)
    started = time.perf_counter()
    result = link_workspace(ws, full=(mode != "incremental"))
    seconds = time.perf_counter() - started
    if mode == "incremental" and result.mode != "incremental":
        raise SystemExit(f"the incremental run relinked in full ({ws_path}); rerun with --rebuild")
    return {"mode": result.mode, "seconds": round(seconds, 3), "records": result.records,
            "records_scored": result.records_scored, "records_reclustered": result.records_reclustered,
            "candidate_pairs": result.candidate_pairs, "links": result.links, "persons": result.persons,
            "peak_rss_mb": peak_rss_mb(),
            "phases": {k.removesuffix("_s"): v for k, v in result.timings.items()
                       if k.endswith("_s") and not k.endswith(("_cpu_s", "_sys_s"))}}


def partition(ws_path: Path) -> set[frozenset[str]]:

    from cilink.link.outputs import read_crosswalk
    from cilink.workspace import Workspace

    cw = read_crosswalk(Workspace.open(ws_path).link_dir)
    assert cw is not None
    return {frozenset(g) for g in cw.group_by("person_id").agg("record_id")["record_id"].to_list()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=270_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "incremental")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached base workspace")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode (alternating); medians reported")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "WS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("CILINK_SECRET", SECRET)
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    base = args.out / f"base-{args.people}-{args.seed}"
    meta_file = base.with_suffix(".json")
    if args.rebuild or not meta_file.is_file():
        print(f"building the base workspace ({args.people} people) …", flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        meta_file.write_text(json.dumps(build_base(base, args.people, args.seed)))
    meta = json.loads(meta_file.read_text())
    if not base_is_current(base):
        print("the cached base was linked by an earlier cilink: relinking it once to bring its files up to date",
              flush=True)
        subprocess.run([sys.executable, __file__, "--child", "upgrade", str(base)], check=True, capture_output=True)
    new_csv = args.out / "new-partner.csv"
    write_new_partner(base, args.people, args.seed, args.new, new_csv)
    runs: dict[str, list[dict[str, Any]]] = {"incremental": [], "full": []}
    for _ in range(args.repeat):
        for mode in ("incremental", "full"):
            target = args.out / f"ws-{mode}"
            prepare_copy(base, target, new_csv)
            proc = subprocess.run([sys.executable, __file__, "--child", mode, str(target)], capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                sys.exit(f"{mode} run failed:\n{proc.stderr}")
            runs[mode].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    same = partition(args.out / "ws-incremental") == partition(args.out / "ws-full")
    median = {m: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2] for m, rs in runs.items()}
    inc, full = median["incremental"], median["full"]
    print(f"Base: {meta['records']} linked records ({meta['persons']} persons; first link with training "
          f"{meta['seconds_first_link']:.1f} s). New: {args.new} records from a fourth partner.")
    print(f"{'run':<13}{'median s':>9}{'all runs (s)':>22}{'scored':>9}{'reclustered':>13}{'candidates':>12}"
          f"{'peak RSS MB':>13}")
    for mode, r in median.items():
        every = " ".join(f"{x['seconds']:.2f}" for x in runs[mode])
        print(f"{mode:<13}{r['seconds']:>9.2f} {every:>21}{r['records_scored']:>9}{r['records_reclustered']:>13}"
              f"{r['candidate_pairs']:>12}{r['peak_rss_mb']:>13}")
    for mode, r in median.items():
        print(f"{mode} phases (s): " + ", ".join(f"{k} {v:.3f}" for k, v in r["phases"].items()))
    print(f"speed-up (median full / median incremental): {full['seconds'] / inc['seconds']:.1f}x; "
          f"same persons: {same}")


if __name__ == "__main__":
    main()
