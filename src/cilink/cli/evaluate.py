"""`cilink evaluate TRUTH`: linkage accuracy against a labelled file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output


def evaluate(
    truth: Annotated[Path, typer.Argument(help="CSV/Parquet with partner, source_person_id, true_id")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Pairwise precision, recall and F1 of the current links, and over-merged / split persons."""
    from cilink.link.evaluate import evaluate_workspace

    e = evaluate_workspace(output.open_workspace(), truth)
    if json_out:
        output.emit_json(e.to_dict())
        return
    output.table("Linkage accuracy (pairwise)", ["measure", "value"], [
        ["precision", round(e.precision, 4)], ["recall", round(e.recall, 4)], ["F1", round(e.f1, 4)],
        ["true pairs", e.true_pairs], ["predicted pairs", e.predicted_pairs], ["correct pairs", e.correct_pairs],
    ])
    output.table("Clusters", ["measure", "count"], [
        ["records compared", e.records], ["persons (cilink)", e.persons], ["persons (truth)", e.true_persons],
        ["over-merged persons (hold >1 true person)", e.over_merged],
        ["split true persons (spread over >1 person_id)", e.split],
        ["records missing from truth", e.missing_from_truth],
        ["truth records not linked", e.missing_from_crosswalk],
    ])


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
