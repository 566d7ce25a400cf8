"""Benchmark: `cilink ingest` of a 1,000,000-row school CSV on 2 cores.

Target: ≤ 20 s wall time and ≤ 4 GB peak RSS for the ingest itself. The CSV (~175 MB, realistic mess:
accents, suffixes, zips that lost their leading zero, masked and placeholder SSNs, a few bad dates and
exits before entry) is generated first with numpy/polars and cached; the ingest then runs in a child process
pinned to 2 CPUs with POLARS_MAX_THREADS=2, so its peak RSS is measured alone (``RUSAGE_CHILDREN``).

    python benchmarks/ingest_1m.py [--rows 1000000] [--out bench-out/ingest_1m] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[project]
name = "ingest benchmark"

[[partners]]
id = "schools"
domain = "school"
format = "csv"
date_format = "%m/%d/%Y"
[partners.columns]
source_person_id = "StudentID"
first_name = "First Name"
middle_name = "Middle Name"
last_name = "Last Name"
dob = "Birth Date"
sex = "Gender"
ssn = "SSN"
street = "Street"
city = "City"
state = "State"
zip5 = "Zip"
phone = "Phone"
email = "Email"
race_ethnicity = "Race"
school_year = "School Year"
school_id = "School"
grade_level = "Grade"
entry_date = "Entry Date"
exit_date = "Exit Date"
days_enrolled = "Days Enrolled"
days_present = "Days Present"
[partners.codes.sex]
"Male" = "M"
"Female" = "F"
"""

FIRST = ["José", "María", "Zoë", "Ann-Marie", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofía", "Aiden",
         "Chloé", "Nguyen", "Kwame", "Aaliyah", "Siobhán", "François", "Ethan", "Mia", "Lucas"]
LAST = ["García", "Smith", "O'Brien", "Rivera Jr.", "Nguyen", "Johnson", "Müller", "Lee III", "Santos",
        "Brown", "Pérez-López", "Kim", "Walsh", "Davis Sr", "Ortiz", "Clark", "Lopez", "Wilson", "Martin"]


def build_csv(path: Path, rows: int, seed: int = 2024) -> None:
    """Write the synthetic partner CSV (vectorized: numpy draws, polars string building)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    n = rows
    syll = np.array(["an", "el", "ro", "mi", "sa", "ku", "te", "lo", "vi", "da", "ne", "ri"])
    # ~20k distinct surnames and ~2k first names, as in a mid-size district
    last_pool = np.array([a.capitalize() + b + c for a in syll for b in syll for c in syll] * 12)[:20000]
    last_pool = np.concatenate([last_pool, np.array(LAST)])
    first_pool = np.concatenate([np.array([a.capitalize() + b for a in syll for b in syll] * 14)[:2000], FIRST])
    dob = np.datetime64("2005-01-01") + rng.integers(0, 365 * 15, n).astype("timedelta64[D]")
    zips = rng.choice(np.array(["01040", "01041", "01013", "01020", "02134", "10001", "60601"]), n)
    zip_lost = rng.random(n) < 0.2
    ssn = np.char.mod("%09d", rng.integers(1_001_0001, 665_99_9999, n))
    frame = pl.DataFrame({
        "StudentID": pl.Series(np.char.mod("S%07d", np.arange(n))),
        "First Name": rng.choice(first_pool, n),
        "Middle Name": rng.choice(np.array(["", "Q", "Lee", "Marie"]), n),
        "Last Name": rng.choice(last_pool, n),
        "dob": dob,
        "Gender": rng.choice(np.array(["Male", "Female", "F", "M", "X", "U"]), n),
        "ssn_raw": ssn,
        "ssn_kind": rng.random(n),
        "Street": np.char.add(np.char.mod("%d ", rng.integers(1, 999, n)),
                              rng.choice(np.array(["Main St.", "High St", "Maple Ave.", "Elm Street"]), n)),
        "City": rng.choice(np.array(["Holyoke", "Chicopee", "Springfield", "South Hadley"]), n),
        "State": rng.choice(np.array(["MA", "Massachusetts", "ma"]), n),
        "zip": zips, "zip_lost": zip_lost,
        "Phone": np.char.mod("(413) 555-%04d", rng.integers(0, 9999, n)),
        "Email": np.char.mod("Student%d@Example.org", np.arange(n)),
        "Race": rng.choice(np.array(["White", "Black or African American", "Hispanic or Latino; White", "Asian", ""]),
                           n),
        "School Year": rng.choice(np.array(["2024-25", "2024-2025"]), n),
        "School": rng.choice(np.array(["HHS", "Dean", "Peck", "Kelly"]), n),
        "Grade": rng.choice(np.array(["K", "01", "2", "3", "4", "5", "06", "7", "8", "9", "10", "11", "12"]), n),
        "Days Enrolled": rng.integers(100, 181, n),
        "Days Present": rng.integers(80, 180, n),
        "bad": rng.random(n),
    })
    ssn_col = pl.col("ssn_raw")
    frame = frame.with_columns(
        pl.col("dob").dt.strftime("%m/%d/%Y").alias("Birth Date"),
        pl.when(pl.col("ssn_kind") < 0.02).then(pl.lit("XXX-XX-") + ssn_col.str.slice(5, 4))
        .when(pl.col("ssn_kind") < 0.03).then(pl.lit("999-99-9999"))
        .when(pl.col("ssn_kind") < 0.5).then(pl.lit(""))
        .otherwise(ssn_col.str.slice(0, 3) + "-" + ssn_col.str.slice(3, 2) + "-" + ssn_col.str.slice(5, 4))
        .alias("SSN"),
        pl.when(pl.col("zip_lost")).then(pl.col("zip").str.strip_chars_start("0")).otherwise(pl.col("zip")).alias("Zip"),
        pl.when(pl.col("bad") < 0.001).then(pl.lit("N/A")).otherwise(pl.lit("08/28/2024")).alias("Entry Date"),
        pl.when(pl.col("bad") > 0.999).then(pl.lit("06/13/2023")).otherwise(pl.lit("")).alias("Exit Date"),
    )
    cols = ["StudentID", "First Name", "Middle Name", "Last Name", "Birth Date", "Gender", "SSN", "Street", "City",
            "State", "Zip", "Phone", "Email", "Race", "School Year", "School", "Grade", "Entry Date", "Exit Date",
            "Days Enrolled", "Days Present"]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.select(cols).write_csv(path)


def ingest_child(ws: Path, csv_path: Path) -> None:
    """Run inside the child: one ingest, result and timing as JSON on stdout."""
    from cilink.ingest import ingest_file
    from cilink.workspace import Workspace

    t = time.perf_counter()
    r = ingest_file(Workspace.open(ws), "schools", csv_path)
    wall = time.perf_counter() - t
    print(json.dumps({"wall_s": round(wall, 2), "rows_in": r.rows_in, "accepted": r.accepted,
                      "quarantined": r.quarantined, "quarantine_by_reason": r.quarantine_by_reason,
                      "flags_by_field": r.flags_by_field}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "ingest_1m")
    ap.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        ingest_child(Path(args.child[0]), Path(args.child[1]))
        return

    sys.path.insert(0, str(ROOT / "src"))
    csv_path = args.out / f"schools-{args.rows}.csv"
    if not csv_path.is_file():
        t = time.perf_counter()
        build_csv(csv_path, args.rows)
        print(f"generated {csv_path} ({csv_path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
    ws = args.out / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    from cilink.workspace import init_workspace

    init_workspace(ws, config_text=CONFIG)
    env = {**os.environ, "POLARS_MAX_THREADS": "2"}
    cmd = [sys.executable, __file__, "--child", str(ws), str(csv_path)]
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) > 2 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0,1", *cmd]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    total = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"ingest failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    print(f"rows in {result['rows_in']:,}: accepted {result['accepted']:,}, quarantined {result['quarantined']:,} "
          f"{result['quarantine_by_reason']}")
    print(f"flags: {result['flags_by_field']}")
    print(f"ingest wall time: {result['wall_s']:.1f} s (process incl. start-up {total:.1f} s; target ≤ 20 s)")
    print(f"peak memory (maxrss): {peak_gb:.2f} GB (target ≤ 4 GB)")
    assert result["rows_in"] == result["accepted"] + result["quarantined"]
    if not args.keep:
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
