"""Section 2 — synthetic scale: `cilink demo` populations through ingest → link → export, and the peers.

For each population size (people; the demo's three partners hold about 0.74 linkable records per person):

1. ``cilink demo DIR --people N --seed S --generate-only`` writes the partner exports and the truth file
   (cached under ``<work>/demo/``; regenerated when the generator's source changes).
2. cilink's stages run as the CLI commands a data manager types, each in its own measured child:
   ``cilink ingest`` per partner file, ``cilink link``, ``cilink export``. The pipeline row sums their wall
   times and takes the largest peak; the link row is the link stage alone.
3. The peers (``benchmarks.peers``) link the same staged records: one record per (partner,
   source_person_id), built by cilink's record builder before the timing starts.
4. Every crosswalk is scored against the demo truth by ``cilink.link.evaluate`` (pairwise F1).

The linked workspace is kept for sections 3 and 4 (``benchmarks.new_records``, ``benchmarks.backends``), which
work on copies of it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import Measurement, Runner, SetupError
from benchmarks.peers import PEERS, VARIANTS
from benchmarks.results import CILINK, Row, human

ROOT = Path(__file__).resolve().parents[1]
DEMO_SOURCE = ROOT / "src" / "cilink" / "demo"
ENCODING_SOURCE = ROOT / "src" / "cilink" / "encoding"
DEMO_ENCODING_STEP = ROOT / "src" / "cilink" / "operate" / "demo.py"
#: the "export complete" marker suffix (``cilink.operate.inbox.DONE``; not imported: the orchestrator stays small)
DONE = ".done"


def dataset_name(people: int) -> str:
    return f"demo {human(people)} people"


@dataclass
class ScaleRun:
    """A size's linked workspace and what section 3 needs to know about it."""

    people: int
    seed: int
    workspace: Path | None
    records: int | None
    rows: list[Row]


def _generator_fingerprint(encoded: bool = False) -> str:
    """sha256 of the demo generator's source (a cached demo from other code is regenerated); with ``encoded``
    also of the encoder and of the demo's encoding step, which write the encoded partners' files."""
    if not DEMO_SOURCE.is_dir():
        return "unknown"
    sources = sorted(DEMO_SOURCE.rglob("*.py"))
    if encoded:
        sources += [*sorted(ENCODING_SOURCE.rglob("*.py")), DEMO_ENCODING_STEP]
    digest = hashlib.sha256()
    for f in sources:
        digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:16]


def demo_workspace(runner: Runner, people: int, seed: int, work: Path, *, encoded: tuple[str, ...] = (),
                   run: str | None = None) -> Path:
    """A fresh copy of the generated demo workspace for ``people``/``seed`` (generated once, then cached).

    ``encoded``: partners whose export the demo replaces by `cilink encode` output (``cilink demo --encoded``;
    ``runner.env`` must then hold the encoding secret). The copy is ``<work>/runs/<run>/ws`` (default
    ``scale-<people>``). Example: ``demo_workspace(runner, 5000, 1, Path("bench-out"), encoded=("workforce-board",))``
    """
    tag = f"people-{people}-seed-{seed}" + (f"-encoded-{'+'.join(encoded)}" if encoded else "")
    cached = work / "demo" / tag
    marker = cached / ".bench-generator"
    fingerprint = _generator_fingerprint(encoded=bool(encoded))
    if not (marker.is_file() and marker.read_text() == fingerprint and fingerprint != "unknown"):
        shutil.rmtree(cached, ignore_errors=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        argv = runner.python("-m", "cilink", "demo", str(cached), "--people", str(people), "--seed", str(seed),
                             "--generate-only", *(arg for p in encoded for arg in ("--encoded", p)))
        runner.setup(f"demo-{tag.removeprefix('people-')}" if encoded else f"demo-{people}", argv)
        marker.write_text(fingerprint)
    target = work / "runs" / (run or f"scale-{people}") / "ws"
    shutil.rmtree(target.parent, ignore_errors=True)
    target.parent.mkdir(parents=True)
    shutil.copytree(cached, target, symlinks=True, ignore=shutil.ignore_patterns(".bench-generator"))
    return target


def inbox_files(ws: Path) -> list[tuple[str, Path]]:
    """(partner, export file) for every export the demo dropped in the inbox — not the ``.done`` markers it
    writes beside them for `cilink run` (an empty marker given to `cilink ingest` is rejected, exit 3)."""
    return [(d.name, f) for d in sorted((ws / "inbox").iterdir()) if d.is_dir()
            for f in sorted(d.iterdir()) if f.is_file() and not f.name.endswith(DONE) and not f.name.startswith(".")]


def score(runner: Runner, name: str, argv: list[str],
          keys: tuple[str, ...] = ("precision", "recall", "f1")) -> dict[str, float]:
    """``keys`` (default precision, recall and F1) of what a scoring child printed, e.g. `cilink evaluate
    --json` ({} if it failed: the row then has no accuracy)."""
    try:
        payload = runner.setup(name, argv)
    except SetupError as e:
        print(f"  scoring failed: {e}", flush=True)
        return {}
    return {k: payload[k] for k in keys}


def run_scale(runner: Runner, people: int, *, seed: int, work: Path, peers: tuple[str, ...] = PEERS) -> ScaleRun:
    """Rows for one population size: cilink pipeline and link, each peer's link; keeps the workspace."""
    label = human(people)
    print(f"Scale: {dataset_name(people)}", flush=True)
    base = {"section": "scale", "dataset": dataset_name(people), "size": people}
    try:
        ws = demo_workspace(runner, people, seed, work)
    except SetupError as e:
        return ScaleRun(people, seed, None, None, [Row(**base, records=None, tool=CILINK, task="pipeline",
                                                       status="error", note=f"setup failed: {e}")])
    truth = ws / ".cilink" / "truth.csv"
    stages: list[tuple[str, Measurement]] = []
    for partner, export in inbox_files(ws):
        stages.append(("ingest", runner.step(f"scale-{label}-ingest-{partner}",
                                             runner.cilink(ws, "ingest", partner, str(export), "--json"),
                                             label=f"cilink ingest {partner}")))
    if all(m.ok for _, m in stages):
        stages.append(("link", runner.step(f"scale-{label}-link", runner.cilink(ws, "link", "--json"),
                                           label="cilink link")))
    if all(m.ok for _, m in stages):
        stages.append(("export", runner.step(f"scale-{label}-export",
                                             runner.cilink(ws, "export", "--release-id", "bench", "--json"),
                                             label="cilink export")))
    print_phases(stages)
    link_m = next((m for stage, m in stages if stage == "link"), None)
    records = link_m.payload.get("records") if link_m and link_m.ok else None
    accuracy = score(runner, f"scale-{label}-score-cilink", runner.cilink(ws, "evaluate", str(truth), "--json")) \
        if link_m and link_m.ok else {}
    rows = [_pipeline_row(base, stages, records, accuracy)]
    if link_m is not None:
        rows.append(Row.measured(link_m, **base, records=records, tool=CILINK, task="link", **accuracy,
                                 work_s=link_m.payload.get("seconds")))
    rows += _peer_rows(runner, ws, truth, base, label, peers)
    return ScaleRun(people, seed, ws if link_m and link_m.ok else None, records, rows)


def print_phases(stages: list[tuple[str, Measurement]]) -> None:
    """Wall time, CPU time and cores busy of each pipeline step, and of each phase the step reports in its
    ``timings`` (cilink link and export time their own phases: ``<phase>_s`` and ``<phase>_cpu_s``)."""
    print(f"  {'phase':<34} {'wall s':>8} {'CPU s':>8} {'cores busy':>11}", flush=True)
    for stage, m in stages:
        if not m.ok:
            continue
        print(f"  {stage:<34} {m.wall_s:8.1f} {m.cpu_s:8.1f} {m.cores_busy:11.2f}")
        timings = m.payload.get("timings") or {}
        for key, wall in timings.items():
            phase = key.removesuffix("_s")
            cpu = timings.get(f"{phase}_cpu_s")
            if key.endswith(("_cpu_s", "_sys_s")) or cpu is None or wall < 0.05:
                continue
            print(f"    {stage} · {phase:<25} {wall:8.1f} {cpu:8.1f} {cpu / wall:11.2f}")
    print(flush=True)


def _pipeline_row(base: dict, stages: list[tuple[str, Measurement]], records: int | None,
                  accuracy: dict[str, float]) -> Row:
    failed = next((m for _, m in stages if not m.ok), None)
    if failed is not None:
        stage = next(s for s, m in stages if m is failed)
        return Row(**base, records=records, tool=CILINK, task="pipeline", status=failed.status,
                   note=f"{stage}: {failed.describe()}")
    totals: dict[str, float] = {}
    for stage, m in stages:
        totals[stage] = totals.get(stage, 0.0) + m.wall_s
    breakdown = ", ".join(f"{stage} {s:.0f} s" for stage, s in totals.items())
    return Row(**base, records=records, tool=CILINK, task="pipeline", status="ok",
               wall_s=round(sum(totals.values()), 2), peak_mb=max(m.peak_mb for _, m in stages),
               note=breakdown, **accuracy)


def _peer_rows(runner: Runner, ws: Path, truth: Path, base: dict, label: str, peers: tuple[str, ...]) -> list[Row]:
    if not peers:
        return []
    out = ws.parent / "peers"
    records_file = out / "records.parquet"
    try:
        records = runner.setup(f"scale-{label}-peer-records",
                               runner.python("-m", "benchmarks.peers", "records", str(ws), str(records_file)))
    except SetupError as e:
        return [Row(**base, records=None, tool=v, task="link", status="error", note=f"setup failed: {e}")
                for p in peers for v in VARIANTS[p]]
    rows = []
    for peer in peers:
        m = runner.step(f"scale-{label}-{peer}", runner.python("-m", "benchmarks.peers", "link", peer,
                                                               str(records_file), str(out)), label=peer)
        for variant in VARIANTS[peer]:
            accuracy = score(runner, f"scale-{label}-score-{variant}",
                              runner.python("-m", "benchmarks.peers", "score", str(out / f"{variant}.parquet"),
                                            str(truth))) if m.ok else {}
            rows.append(Row.measured(m, **base, records=records.get("records"), tool=variant, task="link",
                                     work_s=m.payload.get("work_s"), **accuracy))
    return rows
