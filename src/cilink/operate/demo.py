"""`cilink demo`: a synthetic workspace taken through the whole pipeline, exactly as cron would run it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cilink.errors import UsageError
from cilink.operate.inbox import RunResult, run_inbox
from cilink.workspace import Workspace, ensure_layout


@dataclass
class DemoResult:
    """Where the demo put things, and the run that processed them."""

    workspace: Path
    people: int
    seed: int
    run: RunResult | None
    truth: Path


def run_demo(directory: Path, *, people: int = 2000, seed: int = 1, pipeline: bool = True) -> DemoResult:
    """Generate synthetic partner exports into a new workspace and run ingest → link → export on them.

    ``pipeline=False`` only writes the workspace and exports (for benchmarks and tutorials).
    Example: ``run_demo(Path("demo-ws"), people=5000, seed=1)``
    """
    from cilink.demo import generate_demo

    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} exists and is not empty", hint="choose a new directory or remove it first")
    if people < 10:
        raise UsageError("--people must be at least 10")
    files = generate_demo(directory, people=people, seed=seed)
    ensure_layout(directory)
    ws = Workspace.open(directory)
    for p in ws.config.partners:
        ws.inbox_dir(p.id).mkdir(parents=True, exist_ok=True)
    run = run_inbox(ws) if pipeline else None
    return DemoResult(workspace=directory, people=people, seed=seed, run=run, truth=files.truth)
