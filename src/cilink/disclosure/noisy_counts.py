"""Differentially private counts of persons for aggregate releases, with OpenDP.

An ``aggregate`` audience with ``dp_epsilon`` (``cilink.config.Audience``) gets the counts of persons of its
release as noisy counts instead of exact ones with complementary suppression. Each table (the report's partner
overlap, its persons by records, its linked-vs-unlinked table, each share indicator) is one *query*: the
exact data are one label per row a person adds to the table, and OpenDP releases the count of each label with
discrete Laplace noise (``count_by_categories`` then ``laplace``: OpenDP's secure sampler, not noise drawn
here). The privacy unit is one person: a query is told how many rows one person adds to it at most
(``contributions``), which OpenDP turns into the sensitivity, and so the noise scale, for the ε it is given.

The release's ε is split evenly over its queries (basic sequential composition of pure DP: the ε of the
queries add up to the release's). What readers see is post-processing of the noisy counts — sums of them
(persons per partner from the overlap), shares from noisy numerators and denominators, and withholding a
noisy count below ``min_cell`` — which costs no privacy.

OpenDP's polars integration would run these queries on LazyFrames, but opendp 0.16's polars plugin refuses
any polars but 1.36.1 (it deserialises the plan with its own polars); cilink counts with polars and hands
OpenDP the labels, which keeps the same guarantee with OpenDP's core measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cilink.disclosure.suppression import Protection
from cilink.errors import ConfigError

#: How the noise is made (manifest, dictionary).
MECHANISM = ("OpenDP count_by_categories + discrete Laplace (pure ε-differential privacy; OpenDP's secure "
             "noise, which cannot be seeded)")
#: The confidence level of ``NoisyQuery.accuracy``: |noise| ≤ accuracy with probability 1 − ALPHA.
ALPHA = 0.05


@dataclass(frozen=True)
class NoisyQuery:
    """One table released with noise: what it spent and how noisy its counts are (no data: settings only)."""

    name: str
    epsilon: float
    #: the discrete Laplace scale OpenDP chose for ``epsilon`` and the bound
    scale: float
    #: with 95% probability a noisy count is within this of the exact one
    accuracy_95: float
    #: the contribution bound in words (ints would read as counts in an aggregate manifest)
    bound: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _opendp() -> Any:
    """opendp.prelude with the contrib features enabled, or a ConfigError saying how to install it."""
    try:
        import opendp.prelude as dp
    except ImportError as e:
        raise ConfigError("an audience sets dp_epsilon, but OpenDP is not installed",
                          hint="pip install 'cilink[dp]' (opendp>=0.16,<0.17), or remove dp_epsilon") from e
    # count_by_categories and the Laplace mechanism are in OpenDP's "contrib" (community-vetted) set
    dp.enable_features("contrib")
    return dp


def opendp_version() -> str:
    """The installed OpenDP version (manifest)."""
    from importlib.metadata import version

    _opendp()
    return version("opendp")


def noisy_counts(name: str, labels: Sequence[str], categories: Sequence[str], *, contributions: int,
                 epsilon: float, bound: str) -> tuple[dict[str, int], NoisyQuery]:
    """Release the count of each category among ``labels`` with ε-DP noise (OpenDP).

    ``labels``: one per row a person adds (labels outside ``categories`` are not counted); ``contributions``:
    the most rows one person adds — the caller guarantees it (by construction or by truncating). The categories
    are taken as public (they are cilink's vocabulary, or the periods and groups the table prints).
    Example: ``noisy_counts("overlap", ["a", "a + b"], ["a", "b", "a + b"], contributions=1, epsilon=0.5,
    bound="one row per person")``
    """
    if contributions < 1:
        raise ValueError("contributions must be at least 1")
    dp = _opendp()
    context = dp.Context.compositor(
        data=list(labels), privacy_unit=dp.unit_of(contributions=contributions),
        privacy_loss=dp.loss_of(epsilon=epsilon), split_evenly_over=1,
        # given, not inferred: an empty table is still a vector of strings
        domain=dp.vector_domain(dp.atom_domain(T=str)))
    query = context.query().count_by_categories(categories=list(categories), null_category=False).laplace()
    scale = float(query.param())
    released = query.release()
    accuracy = float(dp.discrete_laplacian_scale_to_accuracy(scale, ALPHA))
    counts = {c: int(v) for c, v in zip(categories, released, strict=True)}
    return counts, NoisyQuery(name=name, epsilon=epsilon, scale=scale, accuracy_95=round(accuracy, 2), bound=bound)


@dataclass
class NoisyRelease:
    """The noisy counts of one release, keyed like the ``cilink.disclosure.suppression.Cells`` they replace."""

    epsilon: float
    queries: int
    min_cell: int
    values: dict[Any, int]
    spent: list[NoisyQuery]

    @property
    def per_query(self) -> float:
        """ε of each query: the release's ε split evenly."""
        return self.epsilon / self.queries

    def shown(self, key: Any) -> int | None:
        """The noisy count to print, or None: not a noisy count, or below min_cell (withheld)."""
        v = self.values.get(key)
        return v if v is not None and v >= self.min_cell else None

    def footnote(self) -> str:
        """The words under every noisy figure."""
        return (f"≈ noisy (differential privacy, ε = {self.epsilon:g} for this release, split evenly over "
                f"{self.queries} tables: ε = {self.per_query:.3g} each)")

    def manifest(self) -> dict[str, Any]:
        """The manifest's ``differential_privacy`` block (settings and scales only, no counts)."""
        return {
            "epsilon": float(self.epsilon), "epsilon_per_table": float(self.per_query),
            "composition": "basic sequential composition: the tables' ε add up to the release's ε; n releases "
                           "to the same audience spend n × ε",
            "privacy_unit": "one person (all of their records, at every partner)",
            "mechanism": MECHANISM, "opendp": opendp_version(),
            "small_counts": f"noisy counts below {self.min_cell} are withheld (decided on the noisy value)",
            "tables": [q.to_dict() for q in self.spent],
        }

    def protection(self) -> Protection:
        """The noisy counts as a ``Protection``: what the report's tables print (withheld: below min_cell)."""
        return Protection(suppressed=frozenset(k for k, v in self.values.items() if v < self.min_cell),
                          values=dict(self.values), public=frozenset(self.values))
