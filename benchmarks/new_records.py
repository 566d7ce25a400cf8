"""Section 3 — 1,000 new records into an already linked workspace: incremental `cilink link` vs `--full`.

The base is section 2's linked workspace of each size (model trained, everything linked and exported).
``benchmarks/incremental.py`` supplies the rest: a fourth partner's 1,000 records (70 % people the other
partners know, 30 % new, with the demo's identifier noise) ingested into two copies of the base; then, each
in its own measured child, copy A runs the default incremental link and copy B ``link --full`` (same
model, everything rescored). The two crosswalks must put records into the same persons.

    python -m benchmarks.new_records prepare BASE PEOPLE SEED NEW OUT_DIR    # (not timed)
    python -m benchmarks.new_records compare WS_A WS_B
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from benchmarks.measure import Runner, SetupError
from benchmarks.results import CILINK, Row, human
from benchmarks.scale import ScaleRun, dataset_name

SCRIPT = Path(__file__).with_name("incremental.py")
MODES = ("incremental", "full")


def run_new_records(runner: Runner, base: ScaleRun, new: int = 1000) -> list[Row]:
    """Two rows (incremental, full) for one size; the workspace copies are removed afterwards."""
    label = human(base.people)
    print(f"Incremental: {new:,} new records into {dataset_name(base.people)}", flush=True)
    common = {"section": "incremental", "dataset": dataset_name(base.people), "size": base.people,
              "records": base.records, "tool": CILINK}
    if base.workspace is None:
        return [Row(**common, task=mode, status="error", note="no linked base workspace (see the scale rows)")
                for mode in MODES]
    out = base.workspace.parent / "new-records"
    try:
        runner.setup(f"incremental-{label}-prepare",
                     runner.python("-m", "benchmarks.new_records", "prepare", str(base.workspace), str(base.people),
                                   str(base.seed), str(new), str(out)))
    except SetupError as e:
        return [Row(**common, task=mode, status="error", note=f"setup failed: {e}") for mode in MODES]
    rows = []
    for mode in MODES:
        m = runner.step(f"incremental-{label}-{mode}",
                        runner.python(str(SCRIPT), "--child", mode, str(out / f"ws-{mode}")),
                        label=f"cilink link{' --full' if mode == 'full' else ''} (+{new:,} records)")
        p = m.payload
        note = f"{new:,} new records"
        if "records_scored" in p and "candidate_pairs" in p:
            note += f"; {p['records_scored']:,} records scored, {p['candidate_pairs']:,} candidate pairs"
        rows.append(Row.measured(m, **common, task=mode, work_s=p.get("seconds"), note=note))
    if all(r.ok for r in rows):
        try:
            same = runner.setup(f"incremental-{label}-compare",
                                runner.python("-m", "benchmarks.new_records", "compare",
                                              *(str(out / f"ws-{mode}") for mode in MODES)))["same_persons"]
            rows[0].note += f"; same persons as --full: {'yes' if same else 'NO'}"
        except SetupError as e:
            rows[0].note += f"; comparison failed: {e}"
    shutil.rmtree(out, ignore_errors=True)
    return rows


def prepare(base: Path, people: int, seed: int, new: int, out: Path) -> None:
    """The new partner's CSV, and two copies of ``base`` with it ingested (``out/ws-incremental``, ``out/ws-full``)."""
    from benchmarks.incremental import prepare_copy, write_new_partner

    out.mkdir(parents=True, exist_ok=True)
    csv = out / "new-partner.csv"
    write_new_partner(base, people, seed, new, csv)
    for mode in MODES:
        prepare_copy(base, out / f"ws-{mode}", csv)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.new_records", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("base", type=Path)
    p.add_argument("people", type=int)
    p.add_argument("seed", type=int)
    p.add_argument("new", type=int)
    p.add_argument("out", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.base, args.people, args.seed, args.new, args.out)
        print(json.dumps({"prepared": str(args.out)}))
    else:
        from benchmarks.incremental import partition

        print(json.dumps({"same_persons": partition(args.a) == partition(args.b)}))


if __name__ == "__main__":
    main()
