"""The share indicators' counts as noisy counts (differential privacy) for an aggregate audience with ``dp_epsilon``.

One OpenDP query per share indicator (``cilink.disclosure.noisy_counts``): each unit of its population (a
student's school year, an exit …) is one row per breakdown it is counted in (the "all" row and each ``by``
column), labelled with its period, breakdown group and whether it meets the numerator. The noisy counts of
"meets" and "does not meet" give the numerator and, summed, the denominator — a share never has a numerator
above its denominator. A person has many units (school years, exits), so each indicator counts at most
``dp_max_units`` of them per person, the most recent; that bounds what one person changes at
``dp_max_units × (1 + len(by))`` rows (a grade-9 cohort and a person are one unit per person by construction:
``1 + len(by)`` rows). Medians are not released as noisy values: a noisy release withholds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from cilink.config import IndicatorSettings
from cilink.disclosure.noisy_counts import NoisyQuery, noisy_counts
from cilink.export.open import Release
from cilink.indicators.compute import ALL, _condition, _Row
from cilink.indicators.units import UNIT_ID, UNIT_PERIOD, UNITS

_SEP = "\x1f"
#: Units of which a person has one by construction (their grade-9 cohort; the person): no truncation needed.
ONE_PER_PERSON = frozenset({"graduation_cohort", "person"})


def noisy_queries(definitions: Sequence[IndicatorSettings]) -> list[IndicatorSettings]:
    """The indicators a noisy release spends ε on: the shares (medians are withheld)."""
    return [d for d in definitions if d.statistic == "share" and d.unit is not None and d.numerator]


def noisy_indicator_counts(release: Release, definitions: Sequence[IndicatorSettings], rows: Sequence[_Row], *,
                           epsilon: float, max_units: int) -> tuple[dict[Any, int], list[NoisyQuery]]:
    """Noisy numerators and denominators keyed like the rows' cells (``_Row.num``, ``_Row.den``); each share
    indicator is one query spending ``epsilon``."""
    shares = noisy_queries(definitions)
    frames = {u: UNITS[u](release).collect() for u in sorted({d.unit for d in shares if d.unit})}
    values: dict[Any, int] = {}
    spent = []
    for d in shares:
        assert d.unit is not None and d.numerator is not None
        period_col = d.period or UNIT_PERIOD[d.unit]
        period = pl.col("_cilink_period")
        members = frames[d.unit].filter(_condition(d.population)).with_columns(
            (pl.col(period_col).cast(pl.String) if period_col else pl.lit(ALL)).alias("_cilink_period"))
        # the most recent units of each person (ties by unit id, so the choice does not depend on row order)
        members = (members.sort(["_cilink_period", UNIT_ID], descending=[True, False], nulls_last=True)
                   .filter(pl.int_range(pl.len()).over("person_key") < (1 if d.unit in ONE_PER_PERSON else max_units)))
        meets = pl.when(_condition(d.numerator)).then(pl.lit("in")).otherwise(pl.lit("out"))
        labels: list[str] = []
        for breakdown in (ALL, *d.by):
            group = pl.lit(ALL) if breakdown == ALL else pl.col(breakdown).cast(pl.String).str.to_lowercase()
            labels += (members.select(pl.concat_str([period, pl.lit(breakdown), group, meets], separator=_SEP))
                       .to_series().drop_nulls().to_list())
        own = [r for r in rows if r.definition.id == d.id]
        cells = {r.den: (r.period, r.breakdown, r.group.lower()) for r in own}
        categories = [_SEP.join((*where, m)) for where in dict.fromkeys(cells.values()) for m in ("in", "out")]
        units = 1 if d.unit in ONE_PER_PERSON else max_units
        rows_per_unit = "one row" if not d.by else f"{1 + len(d.by)} rows (all, and one per breakdown)"
        counts, q = noisy_counts(
            f"indicator: {d.id}", labels, categories, contributions=units * (1 + len(d.by)), epsilon=epsilon,
            bound=(f"one unit per person, in {rows_per_unit}" if units == 1 else
                   f"at most {units} units per person (the most recent), each in {rows_per_unit}"))
        spent.append(q)
        for r in own:
            where = _SEP.join((r.period, r.breakdown, r.group.lower()))
            n_in, n_out = counts[f"{where}{_SEP}in"], counts[f"{where}{_SEP}out"]
            # two indicators of the same population share the denominator's cell: the first one's stands
            den = values.setdefault(r.den, n_in + n_out)
            if r.num is not None:
                values.setdefault(r.num, max(0, min(n_in, den)))
    return values, spent
