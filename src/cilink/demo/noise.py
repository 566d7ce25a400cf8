"""Realistic identifier noise: how one true person ends up spelled, dated and addressed in a partner's records.

Each partner record of a person is drawn from the true identity through a ``NoiseProfile``: typos (one
edit), nicknames (Robert → Bob, from the ``nicknames`` package), a married woman recorded under her maiden
name, day and month of birth swapped or one part off, first and last name swapped, the household's old
address, a household member's SSN, dropped accents and missing fields — and, as the file is written, a
birth date garbled in its text (``written_birth_date``). Rates are modest — most records are
clean — so a good linker can reach a pairwise F1 of about 0.97 or better.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType

import polars as pl
from nicknames import NickNamer

from cilink.demo.population import REFERENCE_DATE, ascii_fold

#: Identity columns a noisy record carries (same names as the population's).
IDENTITY_COLUMNS = (
    "first_name", "middle_name", "last_name", "suffix", "dob", "sex", "ssn", "street", "unit", "city",
    "zip5", "home_phone", "phone", "email",
)

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    """Letters next to each letter on a QWERTY keyboard (the commonest substitution typos)."""
    out: dict[str, str] = {}
    for r, row in enumerate(_ROWS):
        for c, ch in enumerate(row):
            near = [row[c - 1]] if c > 0 else []
            near += [row[c + 1]] if c + 1 < len(row) else []
            for other in (r - 1, r + 1):
                if 0 <= other < len(_ROWS):
                    near += [_ROWS[other][k] for k in (c - 1, c, c + 1) if 0 <= k < len(_ROWS[other])]
            out[ch] = "".join(near)
    return out


_NEAR = _neighbours()


@dataclass(frozen=True)
class NoiseProfile:
    """Probabilities (per partner record) of each kind of identifier noise.

    ``missing`` maps identity columns to the chance the partner left them blank. ``old_address`` applies
    only to people whose household moved; ``maiden_name`` only to married women who changed their name.
    """

    typo_first: float = 0.015
    typo_last: float = 0.015
    nickname: float = 0.04
    middle_initial: float = 0.2
    maiden_name: float = 0.3
    hyphenated: float = 0.25
    name_swap: float = 0.004
    dob_swap: float = 0.008
    dob_typo: float = 0.006
    old_address: float = 0.5
    ssn_typo: float = 0.006
    ssn_household: float = 0.01
    strip_accents: float = 0.0
    #: the birth date garbled in the file's text (``written_birth_date``): applied when the record is written
    dob_garbled: float = 0.0
    missing: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


#: A profile with no noise at all (useful in tests and for the "true" view of a person).
CLEAN = NoiseProfile(
    typo_first=0, typo_last=0, nickname=0, middle_initial=0, maiden_name=0, hyphenated=0, name_swap=0,
    dob_swap=0, dob_typo=0, old_address=0, ssn_typo=0, ssn_household=0,
)


@cache
def _nickname_table() -> NickNamer:
    return NickNamer()


@cache
def nicknames_for(name: str) -> tuple[str, ...]:
    """Usable nicknames of a given name, title-cased and sorted (sets are unordered; output must not be).

    Example: ``"Bob" in nicknames_for("Robert")`` → ``True``.
    """
    found = _nickname_table().nicknames_of(ascii_fold(name))
    return tuple(sorted(n.title() for n in found if len(n) >= 3 and n != name.lower()))


def typo(text: str, rng: random.Random) -> str:
    """One edit to ``text`` (substitute a neighbouring key, delete, double or transpose a letter).

    The first letter is left alone: people rarely mistype it, and blocking on initials stays realistic.
    """
    if len(text) < 3:
        return text
    i = 1 + int(rng.random() * (len(text) - 1))
    ch = text[i]
    op = rng.random()
    if op < 0.35 and ch.lower() in _NEAR:
        sub = rng.choice(_NEAR[ch.lower()])
        return text[:i] + (sub.upper() if ch.isupper() else sub) + text[i + 1:]
    if op < 0.6:
        return text[:i] + text[i + 1:]
    if op < 0.8:
        return text[:i] + ch + text[i:]
    if i + 1 < len(text):
        return text[:i] + text[i + 1] + ch + text[i + 2:]
    return text[:i - 1] + ch + text[i - 1]


def _dob_typo(dob: dt.date, rng: random.Random) -> dt.date:
    """Birth date one part off: day ±1, year ±1 or a mistyped decade (never in the future: that would be an
    impossible date, which the demo plants only on purpose)."""
    kind = rng.random()
    if kind < 0.45:
        return min(dob + dt.timedelta(days=rng.choice((-1, 1))), REFERENCE_DATE)
    delta = rng.choice((-1, 1)) if kind < 0.8 else rng.choice((-10, 10))
    if dob.year + delta > REFERENCE_DATE.year - 1:
        delta = -abs(delta)
    try:
        return dob.replace(year=dob.year + delta)
    except ValueError:  # 29 February
        return dob.replace(year=dob.year + delta, day=28)


def written_birth_date(dob: dt.date | None, fmt: str, rate: float, rng: random.Random) -> str | None:
    """``dob`` as a partner writes it in ``fmt``; with chance ``rate`` garbled the way typed and scanned dates
    are: day and month exchanged where that makes the month impossible (over 12), a letter O or l for the
    digit, or a digit too many (which no repair can undo). ``rng`` should be the writer's own, so the rest
    of the demo draws the same with or without garbling."""
    if dob is None:
        return None
    text = dob.strftime(fmt)
    if not rate or rng.random() >= rate:
        return text
    kind = rng.random()
    if kind < 0.45 and dob.day > 12 and "%m" in fmt and "%d" in fmt:
        return dob.strftime(fmt.replace("%m", "\0").replace("%d", "%m").replace("\0", "%d"))
    spots = [i for i, ch in enumerate(text) if ch in "01"]
    if kind < 0.85 and spots:
        i = spots[int(rng.random() * len(spots))]
        return text[:i] + {"0": "O", "1": "l"}[text[i]] + text[i + 1:]
    return text + text[-1]


def _ssn_typo(ssn: str, rng: random.Random) -> str:
    """One digit changed, or two neighbouring digits transposed."""
    i = int(rng.random() * 8)
    if rng.random() < 0.5 and ssn[i] != ssn[i + 1]:
        return ssn[:i] + ssn[i + 1] + ssn[i] + ssn[i + 2:]
    digit = str((int(ssn[i]) + 1 + int(rng.random() * 9)) % 10)
    return ssn[:i] + digit + ssn[i + 1:]


def with_household_ssn(people: pl.DataFrame) -> pl.DataFrame:
    """Add ``household_ssn``: the SSN of another member of the same household (null when living alone).

    Partners sometimes record a household member's SSN for a person (a parent's on a child's form).
    """
    nxt = pl.col("ssn").shift(-1).over("household_id")
    prev = pl.col("ssn").shift(1).over("household_id")
    return people.with_columns(pl.coalesce(nxt, prev).alias("household_ssn"))


def apply_noise(people: pl.DataFrame, profile: NoiseProfile, rng: random.Random) -> pl.DataFrame:
    """One noisy partner record per input row, drawn from the true identity with ``profile``'s rates.

    ``people`` holds population rows (see ``generate_population``; the same person may appear several times,
    e.g. a duplicate HMIS client, and gets independent noise each time) plus ``household_ssn`` from
    ``with_household_ssn``. Returns the same rows with the ``IDENTITY_COLUMNS`` replaced and a boolean
    ``old_address`` telling whether the household's earlier address was used.

    Example: ``apply_noise(with_household_ssn(pop), NoiseProfile(), random.Random(1))``.
    """
    cols = {c: people.get_column(c).to_list() for c in (*IDENTITY_COLUMNS, "maiden_name", "household_ssn",
                                                          "prev_street", "prev_unit", "prev_city", "prev_zip5")}
    n = people.height
    p = profile
    rand = rng.random
    out: dict[str, list[object]] = {c: list(cols[c]) for c in IDENTITY_COLUMNS}
    old_address = [False] * n
    first, middle, last = out["first_name"], out["middle_name"], out["last_name"]
    dob, ssn = out["dob"], out["ssn"]
    for i in range(n):
        f, m, la = first[i], middle[i], last[i]
        maiden = cols["maiden_name"][i]
        if maiden is not None and rand() < p.maiden_name:
            la = f"{maiden}-{la}" if rand() < p.hyphenated else maiden
        if rand() < p.nickname:
            nicks = nicknames_for(f)  # type: ignore[arg-type]
            if nicks:
                f = nicks[int(rand() * len(nicks))]
        if rand() < p.typo_first:
            f = typo(f, rng)  # type: ignore[arg-type]
        if rand() < p.typo_last:
            la = typo(la, rng)  # type: ignore[arg-type]
        if m is not None and rand() < p.middle_initial:
            m = m[0]
        if p.strip_accents and rand() < p.strip_accents:
            f, la = ascii_fold(f), ascii_fold(la)  # type: ignore[arg-type]
            m = ascii_fold(m) if m is not None else None
        if rand() < p.name_swap:
            f, la = la, f
        first[i], middle[i], last[i] = f, m, la
        d = dob[i]
        if d is not None:
            if rand() < p.dob_swap and d.day <= 12 and d.day != d.month:  # type: ignore[union-attr]
                swapped = d.replace(month=d.day, day=d.month)  # type: ignore[union-attr]
                dob[i] = swapped if swapped <= REFERENCE_DATE else d
            elif rand() < p.dob_typo:
                dob[i] = _dob_typo(d, rng)  # type: ignore[arg-type]
        s = ssn[i]
        if s is not None:
            if rand() < p.ssn_household and cols["household_ssn"][i] is not None:
                ssn[i] = cols["household_ssn"][i]
            elif rand() < p.ssn_typo:
                ssn[i] = _ssn_typo(s, rng)  # type: ignore[arg-type]
        if cols["prev_street"][i] is not None and rand() < p.old_address:
            old_address[i] = True
            for key in ("street", "unit", "city", "zip5"):
                out[key][i] = cols[f"prev_{key}"][i]
        for key, rate in p.missing.items():
            if rand() < rate:
                out[key][i] = None
    replaced = pl.DataFrame(
        {**out, "old_address": old_address},
        schema={**{c: pl.String for c in IDENTITY_COLUMNS}, "dob": pl.Date, "old_address": pl.Boolean},
    )
    return people.drop([c for c in (*IDENTITY_COLUMNS, "old_address") if c in people.columns]).hstack(replaced)
