"""What encoded partners cost in accuracy: the demo linked all plaintext, with the workforce board encoded, and
with every partner encoded (`make bench-encoded`; issue 19).

    python -m benchmarks.encoded                       # 100,000 people, seed 1: benchmarks/results/encoded.csv
                                                       #   and the README table between the encoded-bench markers
    python -m benchmarks.encoded --people 5000         # another size: CSV under --work, README untouched
    python -m benchmarks.encoded --render-only         # redraw the README table from the committed CSV

For each setting:

1. ``cilink demo DIR --people N --seed S --generate-only [--encoded PARTNER …]`` writes the partner exports and
   the truth file, the encoded partners' exports replaced by their `cilink encode` output under
   the benchmark's own ``CILINK_ENCODING_SECRET`` (cached under ``<work>/demo/``, as in ``benchmarks.scale``).
2. ``cilink ingest`` per partner file and ``cilink link`` run as the hub would, each in its own measured child
   (``benchmarks.measure``: wall seconds, peak RSS). A mixed project's hub holds the encoding secret (it encodes
   its plaintext partners); an all-encoded hub does not, so those children run without it.
3. ``cilink evaluate TRUTH --json`` scores the crosswalk (``cilink.link.evaluate``: pairwise precision, recall,
   F1 and over-merged persons).

The orchestrator imports only the standard library and psutil, like ``python -m benchmarks``: children's
peak memory would otherwise include its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.measure import Limits, Measurement, Runner, SetupError
from benchmarks.results import CILINK, Row, human, key, load_meta, read_csv, save_meta, write_csv
from benchmarks.scale import demo_workspace, inbox_files, score

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- encoded-bench:start -->", "<!-- encoded-bench:end -->"
DEFAULT_PEOPLE, DEFAULT_SEED = 100_000, 1
SECRET = "benchmark-secret-not-for-production"
ENCODING_ENV = "CILINK_ENCODING_SECRET"
ENCODING_SECRET = "benchmark-encoding-secret-not-for-production"
#: the demo's partners (``cilink.demo.PARTNER_IDS``, not imported: that would load polars here)
PARTNERS = ("holyoke-schools", "workforce-board", "coc-hmis")
#: issue 19's acceptance bar for a project with one encoded partner, measured at 5,000 people
BAR_F1, BAR_PEOPLE = 0.02, 5_000
EVALUATE_KEYS = ("precision", "recall", "f1", "over_merged")


@dataclass(frozen=True)
class Setting:
    """Which demo partners send `cilink encode` output, and whether the hub holds the encoding secret."""

    name: str
    label: str
    encoded: tuple[str, ...]
    hub_has_secret: bool
    note: str = ""


SETTINGS = (
    Setting("plaintext", "all plaintext", (), hub_has_secret=False),
    # the hub encodes the two plaintext partners itself, so it needs the partners' secret
    Setting("workforce-encoded", "workforce board encoded", ("workforce-board",), hub_has_secret=True),
    Setting("all-encoded", "all three partners encoded", PARTNERS, hub_has_secret=False,
            note="all-encoded mode: no encoding secret at the hub"),
)


@dataclass
class EncodedRow(Row):
    """A ``Row`` of one setting: ``wall_s`` is ingest + link (``ingest_s`` + ``link_s``, child wall times),
    ``work_s`` link's own timing, ``peak_mb`` the largest child peak; accuracy from `cilink evaluate`."""

    setting: str = ""
    encoded: str = ""  # encoded partners, "+"-separated
    ingest_s: float | None = None
    link_s: float | None = None
    candidate_pairs: int | None = None
    over_merged: int | None = None


def dataset_name(people: int, seed: int) -> str:
    return f"demo {human(people)} people, seed {seed}"


def run_setting(runner: Runner, setting: Setting, people: int, seed: int, work: Path) -> EncodedRow:
    """Generate, ingest, link and score one setting (a failed step gives a row with its status and reason)."""
    print(f"Encoded: {setting.label}, {dataset_name(people, seed)}", flush=True)
    base: dict[str, Any] = {"section": "encoded", "dataset": dataset_name(people, seed), "size": people,
                            "tool": CILINK, "task": "ingest + link", "setting": setting.label,
                            "encoded": "+".join(setting.encoded)}
    # the partners encode with the benchmark's own secret, never one from the environment: the BLIP noise is
    # keyed by the secret, so another secret gives other filters and slightly other figures.
    # The hub's children get it only where the hub really holds it.
    partners_env = {**runner.env, ENCODING_ENV: ENCODING_SECRET}
    hub_env = dict(partners_env) if setting.hub_has_secret else {k: v for k, v in runner.env.items()
                                                                 if k != ENCODING_ENV}
    try:
        ws = demo_workspace(dataclasses.replace(runner, env=partners_env), people, seed, work,
                            encoded=setting.encoded, run=f"encoded-{setting.name}-{people}")
    except SetupError as e:
        return EncodedRow(**base, records=None, status="error", note=f"setup failed: {e}")
    hub = dataclasses.replace(runner, env=hub_env)
    label = f"encoded-{setting.name}-{human(people)}"
    ingests: list[Measurement] = []
    for partner, export in inbox_files(ws):
        ingests.append(hub.step(f"{label}-ingest-{partner}", hub.cilink(ws, "ingest", partner, str(export), "--json"),
                                label=f"cilink ingest {partner}"))
        if not ingests[-1].ok:
            return EncodedRow.measured(ingests[-1], **base, records=None, note=f"ingest {partner}")
    link = hub.step(f"{label}-link", hub.cilink(ws, "link", "--json"), label="cilink link")
    if not link.ok:
        return EncodedRow.measured(link, **base, records=None, note="link")
    accuracy = score(hub, f"{label}-evaluate", hub.cilink(ws, "evaluate", str(ws / ".cilink" / "truth.csv"),
                                                          "--json"), keys=EVALUATE_KEYS)
    if not accuracy:
        return EncodedRow(**base, records=link.payload.get("records"), status="error", note="cilink evaluate failed")
    ingest_s = round(sum(m.wall_s for m in ingests), 2)
    return EncodedRow(**base, records=link.payload.get("records"), status="ok",
                      wall_s=round(ingest_s + link.wall_s, 2), work_s=link.payload.get("seconds"),
                      peak_mb=max(m.peak_mb for m in [*ingests, link]), ingest_s=ingest_s, link_s=link.wall_s,
                      candidate_pairs=link.payload.get("candidate_pairs"), note=setting.note, **accuracy)


def run_encoded(runner: Runner, people: int, seed: int, work: Path) -> list[EncodedRow]:
    """One row per setting in ``SETTINGS``, in that order."""
    return [run_setting(runner, s, people, seed, work) for s in SETTINGS]


# --- rendering -----------------------------------------------------------------------------------------------


def _num(x: float | None, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def _delta(row: EncodedRow, plain: EncodedRow | None) -> str:
    """F1 minus the all-plaintext F1 of the same run ("—" for the plaintext row itself)."""
    if plain is None or row is plain:
        return "—"
    if row.f1 is None or plain.f1 is None:
        return "n/a"
    return f"{row.f1 - plain.f1:+.4f}"


def table(rows: Sequence[EncodedRow]) -> str:
    """The settings' accuracy, cost and difference from all-plaintext as a Markdown table."""
    plain = next((r for r in rows if not r.encoded), None)
    body = [[r.setting, r.encoded.replace("+", ", ") or "—", _num(r.records, ","), _num(r.precision, ".4f"),
             _num(r.recall, ".4f"), _num(r.f1, ".4f"), _delta(r, plain), _num(r.over_merged, ","),
             _num(r.candidate_pairs, ","), _num(r.ingest_s, ".1f"), _num(r.link_s, ".1f"),
             _num(None if r.peak_mb is None else r.peak_mb / 1024, ".2f"),
             r.note if r.ok else f"**{r.status}: {r.note}**"] for r in rows]
    return report.markdown_table(["setting", "encoded partners", "records", "precision", "recall", "F1",
                          "F1 vs all plaintext", "over-merged persons", "candidate pairs", "ingest s", "link s",
                          "peak GB", "note"], body)


def bar_line(rows: Sequence[EncodedRow]) -> str:
    """What the bar is, and where each encoded setting of this run stands against it."""
    plain = next((r for r in rows if not r.encoded), None)
    said = []
    for r in rows:
        if r is plain or plain is None or r.f1 is None or plain.f1 is None:
            continue
        d = r.f1 - plain.f1
        # the bar is for one encoded partner; all-encoded mode is reported, not judged
        verdict = f" ({'within' if d >= -BAR_F1 else 'outside'} {BAR_F1:g})" if "+" not in r.encoded else ""
        said.append(f"{r.setting} {d:+.4f}{verdict}")
    sizes = sorted({r.size for r in rows})
    at = ", ".join(f"{n:,}" for n in sizes)
    return (f"**The bar** (issue 19): a project with one encoded partner links within {BAR_F1:g} F1 of "
            f"all-plaintext at {BAR_PEOPLE:,} people (`tests/test_encoding_link.py` checks it there). "
            f"F1 vs all plaintext at {at} people: {'; '.join(said) or 'n/a'}. All-encoded mode has no bar: "
            "every partner loses nickname, swap, term-frequency and address evidence (docs/encodings.md).")


def block(rows: Sequence[EncodedRow], meta: dict[str, Any]) -> str:
    """The Markdown written between the encoded-bench markers: how it was measured, the table, the bar."""
    # the F1 figures do not depend on the machine's load: the same demo and secret give the same links
    return "\n\n".join([report.header(meta, compare="compare the accuracy columns, which do not vary"),
                         table(rows), bar_line(rows)])


def write_readme(readme: Path, rows: Sequence[EncodedRow], meta: dict[str, Any]) -> None:
    """Put ``block(rows, meta)`` between the encoded-bench markers of ``readme`` (added at the end if missing)."""
    report.write_readme(readme, block(rows, meta), start=START, end=END, heading="Encoded partners: F1 cost")


# --- command line --------------------------------------------------------------------------------------------


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.encoded", description=__doc__.splitlines()[0])
    p.add_argument("--people", type=int, default=DEFAULT_PEOPLE, help=f"demo population (default {DEFAULT_PEOPLE})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"demo seed (default {DEFAULT_SEED})")
    p.add_argument("--work", type=Path, default=ROOT / "bench-out" / "encoded",
                   help="working files: demos, workspaces, child logs")
    p.add_argument("--out", type=Path, help="directory of encoded.csv (default: benchmarks/results for the "
                                            "default population and seed, else --work)")
    p.add_argument("--readme", type=Path, help="README to write the table into (default: README.md for the default "
                                               "population and seed, else none)")
    p.add_argument("--no-readme", action="store_true", help="write no README")
    p.add_argument("--timeout", type=float, default=1800, help="wall-clock limit per step, seconds")
    p.add_argument("--memory-gb", type=float, default=16, help="RSS limit per step, GB")
    p.add_argument("--render-only", action="store_true", help="only redraw the README table from the CSV")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[EncodedRow]:
    """Run every setting, write ``encoded.csv`` (+ ``encoded.meta.json``) and the README table; returns the rows.

    Example: ``main(["--people", "300", "--work", "/tmp/w", "--out", "/tmp/w", "--readme", "/tmp/README.md"])``
    """
    args = _args(argv)
    # only the documented run (100k people, seed 1) replaces the committed results and README by default
    default_run = (args.people, args.seed) == (DEFAULT_PEOPLE, DEFAULT_SEED)
    csv_path = (args.out or (ROOT / "benchmarks" / "results" if default_run else args.work)) / "encoded.csv"
    meta_path = csv_path.with_suffix(".meta.json")
    readme = None if args.no_readme else args.readme or (ROOT / "README.md" if default_run else None)
    if args.render_only:
        rows = [r for r in read_csv(csv_path, EncodedRow) if isinstance(r, EncodedRow)]
        if readme is not None:
            write_readme(readme, rows, load_meta(meta_path))
        return rows
    limits = Limits(args.timeout, args.memory_gb)
    env = {**os.environ, "CILINK_SECRET": os.environ.get("CILINK_SECRET", SECRET), "PYTHONPATH": str(ROOT)}
    runner = Runner(limits, args.work / "logs", env, ROOT)
    started, t0, load = dt.datetime.now(dt.UTC), time.perf_counter(), os.getloadavg()[0]
    print(f"Encoded benchmark: {dataset_name(args.people, args.seed)}; {limits}; child logs in {runner.log_dir}",
          flush=True)
    rows = run_encoded(runner, args.people, args.seed, args.work)
    write_csv(rows, csv_path, EncodedRow)
    command = " ".join(["python -m benchmarks.encoded", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    measured = ["|".join(key(r)) for r in rows]
    meta = {"runs": [report.run_record(command, started, (time.perf_counter() - t0) / 60, load, measured)],
            "timeout_s": limits.timeout_s, "memory_gb": limits.memory_gb, "machine": report.machine(),
            "versions": report.versions()}
    save_meta(meta_path, meta)
    print()
    print(table(rows))
    print()
    print(bar_line(rows))
    print(f"Results: {csv_path}")
    if readme is not None:
        write_readme(readme, rows, meta)
        print(f"Wrote {readme} (between the encoded-bench markers)", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
