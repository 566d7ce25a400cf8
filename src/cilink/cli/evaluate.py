"""`cilink evaluate TRUTH`: linkage accuracy against a labelled file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cilink.cli import output
from cilink.cli.options import JsonFlag


def evaluate(
    truth: Annotated[Path, typer.Argument(help="CSV/Parquet with partner, source_person_id, true_id")],
    json_out: JsonFlag = False,
) -> None:
    """Pairwise precision, recall and F1 of the current links, over-merged / split persons, the F1 a perfect
    reviewer would reach, and per partner pair how many true pairs blocking, scoring and linking reach."""
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
        ["true persons exactly one cilink person", f"{e.exact_persons_share:.1%}"],
        ["F1 if a perfect reviewer decided the queue",
         "-" if e.perfect_review_f1 is None else round(e.perfect_review_f1, 4)],
    ])
    if e.by_partner_pair:
        output.table("True pairs by partner pair", ["partners", "true pairs", "blocked", "scored", "linked"], [
            [f"{r['partner_a']} × {r['partner_b']}", r["true_pairs"], f"{r['blocked_share']:.1%}",
             f"{r['scored_share']:.1%}", f"{r['linked_share']:.1%}"] for r in e.by_partner_pair])


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
