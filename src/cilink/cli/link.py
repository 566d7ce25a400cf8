"""`cilink link`: link staged records into persons (incremental by default)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag


class Backend(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


def link(
    full: Annotated[bool, typer.Option("--full", help="Relink from scratch (same model)")] = False,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train a new model first (implies --full)")] = False,
    show_model: Annotated[bool, typer.Option("--show-model", help="Print the model's weights table")] = False,
    json_out: JsonFlag = False,
    backend: Annotated[Backend | None, typer.Option(
        "--backend", help="Linkage engine for this run (default: [engine] backend in cilink.toml)")] = None,
) -> None:
    """Score candidate pairs, decide links and the review queue, cluster, and assign stable person IDs."""
    from cilink.link.linkage import link_workspace, model_table

    ws = output.open_workspace()
    r = link_workspace(ws, full=full, retrain=retrain, backend=backend.value if backend else None)
    if json_out:
        output.emit_json(r.to_dict())
        return
    if r.trained:
        output.line(f"Trained a new model ({r.train_reason}).")
    if r.trained or show_model:
        rows = model_table(ws)
        output.table("Model: match weight (log2 m/u) per comparison level", ["comparison", "level", "m", "u",
                     "weight"], [[w.comparison, w.level + (" [tf]" if w.tf else ""), _g(w.m), _g(w.u), w.weight]
                                 for w in rows])
    output.table(f"Link summary ({r.mode}, {r.seconds:.1f} s)", ["", "count"], [
        ["records", r.records], ["records scored this run", r.records_scored],
        ["candidate pairs scored", r.candidate_pairs], ["links", r.links],
        [f"review queue (weight {r.review_floor:g} to {r.link_threshold:g}, or held by a guard)", r.review_queue],
        ["reviewer decisions applied", r.must_link + r.cannot_link], ["persons", r.persons],
        *[[f"persons in {k} partner(s)", v] for k, v in r.clusters_by_partners.items()],
        *[[f"ID history: {k}", v] for k, v in r.id_events.items()],
    ])
    if r.review_queue:
        output.line(f"Next: cilink{output.workspace_flag()} review export review.csv    # decide the queued pairs")


def _g(x: float | None) -> str | None:
    return None if x is None else f"{x:.3g}"


def register(app: typer.Typer) -> None:
    app.command()(link)
