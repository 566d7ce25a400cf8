"""`cilink encode --audit`: the published attacks run against the file about to be written, at the partner's
site, where the plaintext is at hand to score them (see docs/encodings.md, "Audit").

For first and last names the outsider attacks of ``cilink.encoding.attacks`` (identical filters, clusters +
frequency alignment, pattern mining, graph matching) with the public name list shipped with cilink; for
names and the birth date also a *known-pairs* attack — an attacker who knows the plaintext of half the
records (the hub, from links to plaintext partners, were the separation principle broken) decodes the other
half (against the public list and the file's own values for names, every date of the clear birth year for
birth dates), and the same attack made *salt-aware*: knowing the scheme, the attacker computes each known
record's salt and learns bit positions per salt group, which a salt shared by many records (a phonetic code)
gives away. The share of records an attack re-identifies is that attack's figure; a field's figure is its
worst attack's. Above the limit the file is not written (exit 5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from cilink.encoding import attacks
from cilink.encoding.encode import salt_series
from cilink.encoding.scheme import BIRTH_YEAR, ENC_PREFIX, Scheme
from cilink.errors import CilinkError

#: default refusal limit: the share of records any attack may re-identify in any audited field
DEFAULT_LIMIT = 0.05
#: rows of known pairs the known-pairs attack learns from (more adds nothing but time)
KNOWN_PAIRS_MAX = 20_000


class AuditRefused(CilinkError):
    """An attack re-identified more than the limit of some field's records; nothing was written (exit 5)."""

    exit_code = 5

    def __init__(self, message: str, hint: str | None = None, audit: AuditResult | None = None) -> None:
        super().__init__(message, hint)
        self.audit = audit


@dataclass
class AuditResult:
    """Re-identified share per field and attack, the limit, and the time the attacks took."""

    limit: float
    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def worst(self) -> dict[str, float]:
        """Each field's worst attack's share."""
        return {f: max(a.values()) if a else 0.0 for f, a in self.shares.items()}

    @property
    def passed(self) -> bool:
        return all(v <= self.limit for v in self.worst().values())

    def to_dict(self) -> dict[str, object]:
        return {"limit": self.limit, "passed": self.passed, "seconds": self.seconds,
                "worst": {f: round(v, 4) for f, v in self.worst().items()},
                "shares": {f: {a: round(v, 4) for a, v in s.items()} for f, s in self.shares.items()}}


def salt_values(plain: pl.DataFrame, scheme: Scheme, name: str) -> list[str | None]:
    """Each record's salt for field ``name``, computed from its standardized plaintext as the encoder computes
    it (``cilink.encoding.encode.salt_series``): what an attacker who knows the scheme and the record can."""
    salts = salt_series(plain, scheme.salt_of(name))
    return salts.to_list() if salts is not None else [None] * plain.height


def audit_frame(encoded: pl.DataFrame, plain: pl.DataFrame, scheme: Scheme, *, limit: float = DEFAULT_LIMIT,
                seed: int = 0) -> AuditResult:
    """Run the attacks on ``encoded`` (what would be written) and score them against ``plain`` (the same rows,
    standardized)."""
    start = time.perf_counter()
    out = AuditResult(limit=limit)
    rng = np.random.default_rng(seed)
    known = np.flatnonzero(rng.random(encoded.height) < 0.5)
    others = np.setdiff1d(np.arange(encoded.height), known)
    for name in ("first_name", "last_name", "dob"):
        col = ENC_PREFIX + name
        if col not in encoded.columns or name not in plain.columns:
            continue
        bits, present = attacks.unpack(encoded[col])
        if name == "dob":
            truth = plain[name].dt.strftime("%Y%m%d").to_list()
            years = (encoded[BIRTH_YEAR].fill_null(0).to_numpy() if BIRTH_YEAR in encoded.columns
                     else np.zeros(encoded.height, dtype=np.int64))
            dates = {int(y): attacks.dates_of_year(int(y)) for y in set(years) if y}
            options: dict[str, object] = {"groups": years, "group_vocabulary": dates}
            vocab: list[str] = []
            shares: dict[str, float] = {}
        else:
            truth = plain[name].cast(pl.String).to_list()
            public = attacks.public_names(name)
            labels = attacks.clusters(bits, present)
            guesses = {
                "identical filters": attacks.count_attack(bits, present, public),
                "cluster + frequency alignment": attacks.cluster_attack(bits, present, public, k=scheme.k,
                                                                        blip=scheme.blip, labels=labels),
                "pattern mining": attacks.pattern_attack(bits, present, public, k=scheme.k, blip=scheme.blip,
                                                         labels=labels),
                "graph matching": attacks.graph_attack(bits, present, public, k=scheme.k, blip=scheme.blip,
                                                       labels=labels),
            }
            shares = {a: attacks.reidentified(g, truth) for a, g in guesses.items()}
            own = plain[name].drop_nulls().value_counts(sort=True)[name].to_list()
            vocab = list(dict.fromkeys(own + list(public.values)))
            options = {}
        sample = known[:KNOWN_PAIRS_MAX]
        guesses_kp = attacks.known_pairs_attack(bits, present, sample, truth, vocab, **options)
        rest = [truth[i] for i in others]
        shares["known pairs (half the records)"] = attacks.reidentified([guesses_kp[i] for i in others], rest)
        salts = salt_values(plain, scheme, name)
        if any(s is not None for s in salts):
            guesses_sa = attacks.salt_aware_known_pairs(bits, present, truth, salts, known, vocab, **options)
            shares["salt-aware known pairs (half the records)"] = attacks.reidentified(
                [guesses_sa[i] for i in others], rest)
        out.shares[name] = shares
    out.seconds = round(time.perf_counter() - start, 1)
    return out
