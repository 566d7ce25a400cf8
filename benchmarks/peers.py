"""The peers on cilink's synthetic populations: plain Splink 5 and the classic recordlinkage toolkit.

Both get the same input as cilink's link stage — the records cilink staged and standardized at ingest,
collapsed to one record per (partner, source_person_id) by cilink's own record builder — so the comparison
is about linkage, not about reading and cleaning partner exports. They see only the plain identity fields
(no nickname sets, phonetic codes or other columns cilink derives for itself).

- **splink**: a standard Splink 5 dedupe model as the Splink tutorials write it: NameComparison on first
  and last name (term-frequency adjusted), DateOfBirthComparison, Damerau–Levenshtein on SSN, exact sex,
  zip, phone, EmailComparison and Levenshtein on street; blocking on first+last name, date of birth and
  SSN; prior from deterministic rules, u by random sampling (the same 2M-pair budget as cilink), m by EM
  on two rules; pairs at match probability ≥ 0.9, clustered at 0.9.
- **recordlinkage**: the classic recipe: the same three blocks, Jaro–Winkler ≥ 0.85 on names, Levenshtein
  ≥ 0.85 on street, exact agreement on the rest, then two classifiers on the same features: the
  unsupervised ECM (``recordlinkage-ecm``) and the toolkit tutorial's threshold rule, more than 3 of the
  9 fields agree (``recordlinkage-rule``); persons are connected components of the links. One run, so
  both share its time and memory.

Each variant writes a crosswalk (partner, source_person_id, person_id) that ``cilink.link.evaluate`` scores
against the demo truth, exactly as ``cilink evaluate`` scores cilink's own crosswalk.

    python -m benchmarks.peers records WORKSPACE OUT.parquet        # build the shared input (not timed)
    python -m benchmarks.peers link {splink,recordlinkage} RECORDS.parquet OUT_DIR   # OUT_DIR/<variant>.parquet
    python -m benchmarks.peers score CROSSWALK.parquet TRUTH.csv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

PEERS = ("splink", "recordlinkage")
#: what each peer run reports: one crosswalk per variant
VARIANTS = {"splink": ("splink",), "recordlinkage": ("recordlinkage-ecm", "recordlinkage-rule")}
#: identity fields the peers compare (cilink's standardized values)
FIELDS = ("first_name", "last_name", "dob", "sex", "ssn", "street", "zip5", "phone", "email")
MAX_PAIRS_U = 2e6  # plain Splink's u-sampling budget (Splink's tutorials use 1e6)
THRESHOLD = 0.9


def build_peer_records(workspace: Path) -> Any:
    """One record per (partner, source_person_id) from the workspace's active staged batches (polars)."""
    import polars as pl

    from cilink.ledger import Ledger
    from cilink.link.records import build_records
    from cilink.staging import staged_records
    from cilink.workspace import Workspace

    ws = Workspace.open(workspace)
    with Ledger(ws.ledger_path) as ledger:
        batches = ledger.active_batches()
    order = {b.batch_id: i for i, b in enumerate(batches)}
    frames = [build_records(staged_records(ws, p), order) for p in sorted({b.partner for b in batches})]
    return pl.concat(frames).select(
        "record_id", "partner", "source_person_id",
        *[pl.col(f).dt.strftime("%Y-%m-%d") if f == "dob" else pl.col(f) for f in FIELDS],
    )


def link_splink(records: Any) -> dict[str, Any]:
    """Plain Splink 5 (DuckDB): train, predict at p ≥ 0.9, cluster at 0.9; {variant: (record_id, cluster)}."""
    import logging

    import polars as pl
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    logging.getLogger("splink").setLevel(logging.ERROR)
    db = DuckDBAPI()
    sdf = db.register(records.to_arrow(), dataset_display_name="records")
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_id",
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=True, datetime_format="%Y-%m-%d"),
            cl.DamerauLevenshteinAtThresholds("ssn", [1, 2]),
            cl.ExactMatch("sex"),
            cl.ExactMatch("zip5").configure(term_frequency_adjustments=True),
            cl.LevenshteinAtThresholds("street", [2]),
            cl.ExactMatch("phone"),
            cl.EmailComparison("email"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "last_name"), block_on("dob"), block_on("ssn"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker([sdf], settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "last_name", "dob"), block_on("ssn", "dob")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=MAX_PAIRS_U, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("first_name", "last_name"))
    pred = linker.inference.predict(threshold_match_probability=THRESHOLD)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, THRESHOLD)
    out = pl.from_arrow(clusters.as_pyarrow_table())
    return {"splink": out.select(pl.col("record_id"), pl.col("cluster_id").cast(pl.String).alias("cluster"))}


def _components(ids: Any, links: Any) -> Any:
    """Persons as connected components of ``links`` (pairs of ids); every id is a node, singletons too."""
    import numpy as np
    import polars as pl
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    position = {rid: i for i, rid in enumerate(ids)}
    left = np.fromiter((position[a] for a, _ in links), dtype=np.int64, count=len(links))
    right = np.fromiter((position[b] for _, b in links), dtype=np.int64, count=len(links))
    n = len(position)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return pl.DataFrame({"record_id": list(ids), "cluster": labels.astype(str)})


def link_recordlinkage(records: Any) -> dict[str, Any]:
    """recordlinkage: blocks, string comparisons, then ECM and the threshold rule; {variant: clusters}."""
    import recordlinkage

    df = records.select("record_id", *FIELDS).to_pandas().set_index("record_id")
    indexer = recordlinkage.Index()
    indexer.block(["first_name", "last_name"])
    indexer.block("dob")
    indexer.block("ssn")
    candidates = indexer.index(df)
    compare = recordlinkage.Compare()
    compare.string("first_name", "first_name", method="jarowinkler", threshold=0.85, label="first_name")
    compare.string("last_name", "last_name", method="jarowinkler", threshold=0.85, label="last_name")
    compare.exact("dob", "dob", label="dob")
    compare.exact("ssn", "ssn", label="ssn")
    compare.exact("sex", "sex", label="sex")
    compare.exact("zip5", "zip5", label="zip5")
    compare.string("street", "street", method="levenshtein", threshold=0.85, label="street")
    compare.exact("phone", "phone", label="phone")
    compare.exact("email", "email", label="email")
    features = compare.compute(candidates, df)
    ecm_links = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
    rule_links = features.index[features.sum(axis=1) > 3]
    return {"recordlinkage-ecm": _components(df.index, ecm_links),
            "recordlinkage-rule": _components(df.index, rule_links)}


LINKERS = {"splink": link_splink, "recordlinkage": link_recordlinkage}


def link(tool: str, records_path: Path, out_dir: Path) -> dict[str, Any]:
    """Run one peer on the shared records; write ``out_dir/<variant>.parquet`` crosswalks; return timings."""
    import polars as pl

    records = pl.read_parquet(records_path)
    started = time.perf_counter()
    by_variant = LINKERS[tool](records)
    seconds = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    persons = {}
    for variant, clusters in by_variant.items():
        crosswalk = records.select("record_id", "partner", "source_person_id").join(
            clusters, on="record_id", how="left").select(
            "partner", "source_person_id", pl.coalesce("cluster", "record_id").alias("person_id"))
        crosswalk.write_parquet(out_dir / f"{variant}.parquet")
        persons[variant] = crosswalk["person_id"].n_unique()
    return {"tool": tool, "work_s": round(seconds, 2), "records": records.height, "persons": persons}


def score(crosswalk_path: Path, truth_path: Path) -> dict[str, Any]:
    """Pairwise precision/recall/F1 of a crosswalk against the demo truth (``cilink.link.evaluate``)."""
    import polars as pl

    from cilink.link.evaluate import evaluate, read_truth

    return evaluate(pl.read_parquet(crosswalk_path), read_truth(truth_path)).to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("records", help="build the peers' input from a workspace's staged records")
    p.add_argument("workspace", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("link", help="run one peer")
    p.add_argument("tool", choices=PEERS)
    p.add_argument("records", type=Path)
    p.add_argument("out_dir", type=Path)
    p = sub.add_parser("score", help="score a crosswalk against a truth file")
    p.add_argument("crosswalk", type=Path)
    p.add_argument("truth", type=Path)
    args = parser.parse_args()
    if args.command == "records":
        frame = build_peer_records(args.workspace)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(args.out)
        print(json.dumps({"records": frame.height}))
    elif args.command == "link":
        print(json.dumps(link(args.tool, args.records, args.out_dir)))
    else:
        print(json.dumps(score(args.crosswalk, args.truth)))


if __name__ == "__main__":
    main()
