"""The report's counts of persons as noisy counts (differential privacy) for an aggregate audience with ``dp_epsilon``.

Three queries, each one OpenDP release (``cilink.disclosure.noisy_counts``) keyed like the cells of
``cilink.report.sections`` it replaces, so the tables, the summary and the "what changed" table print the
noisy values unchanged:

- partner overlap: one row per person (the combination of partners holding their records); persons per partner
  and the summary's people are *sums* of these noisy counts (post-processing, no further ε);
- persons by records per person: one row per person;
- linked vs. unlinked persons per partner: per partner holding the person's records, one row for the "all"
  line and one per characteristic — ``(1 + characteristics) × partners`` rows per person at most.

Every other count of persons the report prints comes from these; counts of rows, files and scored pairs are
printed exactly, as in every report (they are not counts of persons, and not covered by ε).
"""

from __future__ import annotations

import itertools
from typing import Any

import polars as pl

from cilink.disclosure.noisy_counts import NoisyQuery, noisy_counts
from cilink.report import sections

#: The report's noisy queries (the release's ε is split over these and the share indicators).
QUERIES = ("report: partner overlap", "report: persons by records per person", "report: linked vs. unlinked")
#: The report's tables whose person counts are noisy (their count columns are marked).
NOISY_TABLES = ("overlap", "partner_persons", "people", "cluster_sizes", "bias")


def noisy_report_counts(ctx: sections.Context, epsilon: float) -> tuple[dict[Any, int], list[NoisyQuery]]:
    """The noisy person counts of the report (keys as in ``sections``), each query spending ``epsilon``."""
    partners = sorted(p.id for p in ctx.cfg.partners)
    cw = ctx.crosswalk if ctx.crosswalk is not None else pl.DataFrame(
        schema={"partner": pl.String, "person_id": pl.String})
    per = cw.group_by("person_id").agg(pl.len().alias("records"), pl.col("partner").unique().sort().alias("ps"))
    values: dict[Any, int] = {}
    spent = []
    combos = [c for k in range(1, len(partners) + 1) for c in itertools.combinations(partners, k)]
    labels = [sections._combo_label(c) for c in combos]
    labelled = list(zip(combos, labels, strict=True))
    overlap, q = noisy_counts(QUERIES[0], per.get_column("ps").list.join(" + ").to_list(), labels,
                              contributions=1, epsilon=epsilon,
                              bound="one row per person: the combination of partners holding their records")
    spent.append(q)
    for c, label in labelled:
        values[("overlap", label, len(c), "persons")] = overlap[label]
    # post-processing of the overlap: consistent with it, and free
    for p in partners:
        values[("partner_persons", p, "persons")] = sum(overlap[lab] for c, lab in labelled if p in c)
    people = dict(zip(sections.SUMMARY_PEOPLE, (
        sum(overlap.values()), sum(overlap[lab] for c, lab in labelled if len(c) > 1),
        sum(overlap[lab] for c, lab in labelled if len(c) == 1)), strict=True))
    for item, v in people.items():
        values[("people", item, "persons")] = v
    size = pl.when(pl.col("records") >= 5).then(pl.lit("5+")).otherwise(pl.col("records").cast(pl.String))
    sizes, q = noisy_counts(QUERIES[1], per.select(size).to_series().to_list(), list(sections.CLUSTER_SIZES),
                            contributions=1, epsilon=epsilon, bound="one row per person: their number of records")
    spent.append(q)
    for s, v in sizes.items():
        values[("cluster_sizes", s, "persons")] = v
    bias_labels: list[str] = []
    categories: list[tuple[str, str, str, str]] = []
    for p, frame in sections.bias_persons(ctx).items():
        bias_labels += frame.select(pl.format("{}\x1fall\x1fpersons\x1f{}", pl.lit(p), "status")).to_series().to_list()
        categories += [(p, "all", "persons", s) for s in ("linked", "unlinked")]
        for var, vals in sections.BIAS_VALUES.items():
            bias_labels += frame.select(pl.format("{}\x1f{}\x1f{}\x1f{}", pl.lit(p), pl.lit(var), pl.col(var),
                                                  "status")).to_series().drop_nulls().to_list()
            categories += [(p, var, v, s) for v in vals for s in ("linked", "unlinked")]
    # a person is one row per partner holding their records, and each row is counted once per characteristic
    per_person = (1 + len(sections.BIAS_VALUES)) * max(len(partners), 1)
    bias, q = noisy_counts(QUERIES[2], bias_labels, ["\x1f".join(c) for c in categories],
                           contributions=per_person, epsilon=epsilon,
                           bound=f"at most {1 + len(sections.BIAS_VALUES)} rows per partner holding the person's "
                                 f"records (one per characteristic and the 'all' line), {len(partners)} partners")
    spent.append(q)
    for c in categories:
        values[("bias", *c)] = bias["\x1f".join(c)]
    return values, spent
