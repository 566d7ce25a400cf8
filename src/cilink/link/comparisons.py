"""The linkage rules, as named constructors: blocking rules and multi-level comparisons you can print and diff.

These are cilink-level specifications — plain frozen dataclasses. ``cilink.link.engine`` turns them into
Splink objects, so the same rules run on DuckDB or Spark. ``str(spec)`` renders the whole rule set; its
``fingerprint`` tells whether a saved model was trained with the rules now in force.

Example::

    spec = LinkSpec(comparisons=(name_comparison("first_name"), dob_comparison()),
                    blocking_rules=(block_on("dob"),))
    print(spec)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from cilink.config import LinkSettings
from cilink.encoding.scheme import SCHEME_V1
from cilink.errors import ConfigError
from cilink.link.encodings import ENCODED_DERIVED, LSH

LevelKind = Literal[
    "null", "exact", "jaro_winkler", "edit_distance", "array_intersect", "swapped", "swapped_similar",
    "date_within", "either_equals", "all_of", "else", "dice", "dice_any", "dice_cross", "encoded_null",
    "keyed_apart",
]
#: level kinds that carry no evidence (Splink null levels: weight 0, no m or u to train)
NULL_KINDS = ("null", "encoded_null", "keyed_apart")
#: identity evidence (who the person is) vs household evidence (where they live; shared by the household).
#: Household comparisons get their u from pairs that share a last name (see cilink.link.engine.train), and
#: their weight is discounted by the ``address_only`` guard (cilink.link.decisions).
Role = Literal["identity", "household"]

#: Columns cilink derives on every linkable record (see cilink.link.records), usable in rules by short name.
DERIVED_COLUMNS: dict[str, str] = {
    "first_aliases": "_cilink_first_aliases",
    "last_tokens": "_cilink_last_tokens",
    "first_phonetic": "_cilink_first_phonetic",
    "last_phonetic": "_cilink_last_phonetic",
    "first_initial": "_cilink_first_initial",
    "last_initial": "_cilink_last_initial",
    #: first and last initial, sorted: equal for a record and its first/last-swapped twin
    "initials": "_cilink_initials",
    "dob_digits": "_cilink_dob_digits",
    "birth_year": "_cilink_birth_year",
    "birth_month": "_cilink_birth_month",
    "birth_day": "_cilink_birth_day",
    "birth_month_day": "_cilink_birth_month_day",
    #: the birth-date digits, null where ingest repaired the date (``cilink.ingest.dates.DateParser.repair``)
    "dob_as_written": "_cilink_dob_as_written",
    "street_key": "_cilink_street_key",
    #: first and last name, sorted: equal for a record and its first/last-swapped twin
    "name_pair": "_cilink_name_pair",
    #: the last four characters of the shared identifier (as ``ssn_last4`` is of the SSN)
    "shared_id_tail": "_cilink_shared_id_tail",
}
#: Identity fields of a linkable record that rules may use directly.
RECORD_FIELDS = (
    "first_name", "middle_name", "last_name", "name_suffix", "dob", "sex", "ssn", "ssn_last4", "street",
    "unit", "city", "state", "zip5", "phone", "email", "shared_id",
)


def column(name: str) -> str:
    """The record column behind a rule field name: identity fields as-is, derived ones by short name
    (including, in projects with encoded partners, ``cilink.link.encodings.ENCODED_DERIVED``)."""
    if name in RECORD_FIELDS or name in DERIVED_COLUMNS.values() or name in ENCODED_DERIVED.values():
        return name
    if name in DERIVED_COLUMNS:
        return DERIVED_COLUMNS[name]
    if name in ENCODED_DERIVED:
        return ENCODED_DERIVED[name]
    raise KeyError(name)


@dataclass(frozen=True)
class Level:
    """One comparison level: a predicate over the two records (``_l`` and ``_r``) of a pair."""

    kind: LevelKind
    label: str
    columns: tuple[str, ...] = ()
    threshold: float | None = None
    tf: bool = False
    parts: tuple[Level, ...] = ()
    value: str | None = None
    #: starting (m, u) for training, kept where the data cannot train the level (see ``with_priors``)
    prior_mu: tuple[float, float] | None = None
    #: keep the prior m instead of estimating it by EM (household evidence, see ``household``)
    fix_m: bool = False
    #: the values disagree outright (the ``birth_date_conflict`` guard, ``cilink.link.decisions``)
    conflict: bool = False
    #: keep the prior u instead of measuring it by random sampling (see ``encoded_ssn_comparison``); out of
    #: the repr so that plaintext rules keep their fingerprint (``LinkSpec.fingerprint`` adds it where set)
    fix_u: bool = field(default=False, repr=False)

    def __str__(self) -> str:
        extra = " [tf]" if self.tf else ""
        if self.fix_m and self.prior_mu:
            extra += f" [m fixed at {self.prior_mu[0]}]"
        if self.fix_u and self.prior_mu:
            extra += f" [u fixed at {self.prior_mu[1]}]"
        return self.label + extra


def household(levels: tuple[Level, ...]) -> tuple[Level, ...]:
    """Mark a comparison's levels as household evidence: m stays at its prior (EM does not estimate it)
    and training measures u among pairs that share a last name (``cilink.link.engine``).

    Among candidate pairs, agreement on street, zip or home phone often means "same household", not
    "same person"; estimated the usual way (u from random pairs, m by EM) it would let address agreement
    outvote first-name and birth-date disagreement, and would pull EM towards calling households matches.
    """
    return tuple(replace(lv, fix_m=lv.kind != "null") for lv in levels)


def fixed_m(comparison: Comparison, *m: float) -> Comparison:
    """``comparison`` with its non-null levels' m fixed at ``m`` (in order; EM does not estimate them)."""
    trainable = [i for i, lv in enumerate(comparison.levels) if lv.kind not in NULL_KINDS]
    levels = list(comparison.levels)
    for i, mi in zip(trainable, m, strict=True):
        u = levels[i].prior_mu[1] if levels[i].prior_mu else 0.5
        levels[i] = replace(levels[i], prior_mu=(mi, u), fix_m=True)
    return replace(comparison, levels=tuple(levels))


def with_priors(levels: tuple[Level, ...], *mu: tuple[float, float]) -> tuple[Level, ...]:
    """Give the non-null levels of a comparison, in order, starting values (m, u) for training.

    Training replaces them wherever the data allow (u by sampling, m by EM); a level the data never reach
    (say, no masked SSNs yet) keeps its prior instead of a guess. The priors are this model trained on
    the synthetic demo population (`cilink demo --people 5000 --seed 1`), rounded.
    """
    trainable = [i for i, lv in enumerate(levels) if lv.kind not in NULL_KINDS]
    if len(trainable) != len(mu):
        raise ValueError(f"{len(mu)} priors for {len(trainable)} levels")
    out = list(levels)
    for i, (m, u) in zip(trainable, mu, strict=True):
        out[i] = replace(out[i], prior_mu=(m, u))
    return tuple(out)


def null(*columns: str, label: str | None = None) -> Level:
    """Either side is missing any of ``columns`` (no evidence either way)."""
    return Level("null", label or f"{' or '.join(columns)} missing", tuple(columns))


def exact(col: str, *, tf: bool = False, label: str | None = None) -> Level:
    """Same value; ``tf`` adjusts the weight by how common the value is (term frequency)."""
    return Level("exact", label or f"{col} exact", (col,), tf=tf)


def jaro_winkler(col: str, threshold: float, label: str | None = None) -> Level:
    """Jaro–Winkler similarity at or above ``threshold``."""
    return Level("jaro_winkler", label or f"{col} Jaro-Winkler >= {threshold}", (col,), threshold)


def edit_distance(col: str, distance: int, label: str | None = None) -> Level:
    """Damerau–Levenshtein distance (a transposition counts as one edit) at most ``distance`` (1 or 2); for
    strings of one length, two edits also means at most four positions differ
    (``cilink.link.engine.settings.edits_sql``)."""
    return Level("edit_distance", label or f"{col} within {distance} edit(s)", (col,), float(distance))


def array_intersect(col: str, label: str, min_shared: int = 1) -> Level:
    """The two list columns share at least ``min_shared`` values."""
    return Level("array_intersect", label, (col,), float(min_shared))


def swapped(col_a: str, col_b: str, label: str) -> Level:
    """``col_a`` of one record equals ``col_b`` of the other and vice versa."""
    return Level("swapped", label, (col_a, col_b))


def swapped_similar(col_a: str, col_b: str, threshold: float, label: str) -> Level:
    """Like ``swapped`` but with Jaro–Winkler similarity ≥ ``threshold`` in both directions (swap + typo)."""
    return Level("swapped_similar", label, (col_a, col_b), threshold)


def date_within(col: str, days: int, label: str | None = None) -> Level:
    """Dates at most ``days`` apart (a day's typo across a month boundary)."""
    return Level("date_within", label or f"{col} within {days} days", (col,), float(days))


def either_equals(col: str, value: str, label: str | None = None) -> Level:
    """Either record has ``value`` in ``col`` (e.g. a 1 January placeholder birth date)."""
    return Level("either_equals", label or f"{col} = {value} on either side", (col,), value=value)


def all_of(*levels: Level, label: str) -> Level:
    """Every one of ``levels`` holds."""
    return Level("all_of", label, parts=tuple(levels))


def dice(col: str, threshold: float, label: str | None = None, tf_column: str | None = None) -> Level:
    """Dice coefficient ``2·|A∧B| / (|A|+|B|)`` of two Bloom-filter encodings at or above ``threshold``.
    ``tf_column``: adjust the weight by the term frequency of that plaintext column — the value of the pair's
    plaintext record (an encoded record has none), which an agreeing encoding says the other record shares."""
    return Level("dice", label or f"{col} Dice >= {threshold}", (col,) if tf_column is None else (col, tf_column),
                 threshold, tf=tf_column is not None)


def dice_any(candidates: str, col: str, threshold: float, label: str) -> Level:
    """One record's encoding ``col`` has a Dice ≥ ``threshold`` with any of the other record's encodings in
    the list column ``candidates`` (the hub's encodings of a plaintext record's nicknames)."""
    return Level("dice_any", label, (candidates, col), threshold)


def dice_cross(col_a: str, col_b: str, threshold: float, label: str) -> Level:
    """``col_a`` of one record and ``col_b`` of the other have a Dice ≥ ``threshold``, either way round (a
    plaintext record's swapped names, ``cilink.link.encodings.SWAPPED``, against an encoded record's names)."""
    return Level("dice_cross", label, (col_a, col_b), threshold)


def encoded_null(plain: str, enc: str, label: str | None = None) -> Level:
    """No encoded evidence: both records have the plaintext ``plain`` (its own comparison decides), or either
    lacks the encoding ``enc``."""
    return Level("encoded_null", label or f"{enc} not compared (both plaintext, or missing)", (plain, enc))


def keyed_apart(salt: str, sibling: str | None, label: str) -> Level:
    """No evidence: the encodings were keyed by different salts (cross-salted schemes), so their Dice says
    nothing about the values. Taken to be so when the salting field's encodings ``salt`` do not agree
    (Dice < ``SALT_AGREES``, or one record lacks it while the other has it) and neither does ``sibling``, a
    field salted by the same value (Dice < ``SIBLING_AGREES``: an agreeing sibling shows the salts are equal).
    Inside ``all_of`` it is a plain condition (``encoded_dob_comparison``)."""
    return Level("keyed_apart", label, (salt,) if sibling is None else (salt, sibling), SALT_AGREES)


#: a salting field's encodings this similar are taken to be of one value, so fields it salts are comparable
SALT_AGREES = 0.85
#: a sibling field (salted by the same value) this similar shows the two records' salts are equal
SIBLING_AGREES = 0.5


def else_level() -> Level:
    """Anything else: the values disagree."""
    return Level("else", "all other")


@dataclass(frozen=True)
class Comparison:
    """A multi-level comparison of one aspect of two records; levels from most to least specific."""

    name: str
    levels: tuple[Level, ...]
    role: Role = "identity"
    description: str = ""

    def __str__(self) -> str:
        head = f"{self.name} ({self.role}){': ' + self.description if self.description else ''}"
        return "\n".join([head, *(f"  {i}. {lvl}" for i, lvl in enumerate(self.levels))])


@dataclass(frozen=True)
class BlockingRule:
    """Candidate pairs: records that agree exactly on every one of ``fields`` (short or column names) —
    and, if ``apart`` is given, do not agree on those (a training rule's way to leave households out)."""

    fields: tuple[str, ...]
    apart: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column(f) for f in self.fields)

    def __str__(self) -> str:
        return " & ".join(self.fields) + "".join(f", {a} not shared" for a in self.apart)


def block_on(*fields: str, apart: tuple[str, ...] = ()) -> BlockingRule:
    """Blocking rule on exact agreement of ``fields``. Example: ``block_on("last_name", "zip5")``."""
    for f in (*fields, *apart):
        column(f)  # raises KeyError for an unknown field
    return BlockingRule(tuple(fields), tuple(apart))


# --- comparisons ---------------------------------------------------------------------------------------------


def name_comparison(col: str) -> Comparison:
    """First or last name: exact (term-frequency adjusted), first/last swapped, Jaro–Winkler bands, and
    for first names nickname/alias equivalence (Robert≈Bob, Liz≈Beth), for last names a shared surname
    (hyphenated, double or maiden names)."""
    if col == "first_name":
        other, variant = "last_name", array_intersect(column("first_aliases"), "nickname or alias")
    elif col == "last_name":
        other, variant = "first_name", array_intersect(column("last_tokens"), "shares a surname")
    else:
        raise ValueError(f"name_comparison: unknown name column {col!r} (first_name or last_name)")
    levels = (
        null(col),
        exact(col, tf=True),
        swapped(col, other, "first and last name swapped"),
        swapped_similar(col, other, 0.88, "first and last name swapped, close spelling"),
        jaro_winkler(col, 0.94),
        variant,
        jaro_winkler(col, 0.85),
        else_level(),
    )
    variant_mu = (0.04, 0.002) if col == "first_name" else (0.025, 0.0001)
    levels = with_priors(levels, (0.9, 0.003), (0.007, 1e-6), (0.001, 1e-6), (0.014, 0.0005), variant_mu,
                         (0.015, 0.002), (0.02, 0.99))
    return Comparison(col, levels, description="names standardized: lower-case ASCII letters")


def dob_comparison() -> Comparison:
    """Date of birth: exact, day/month transposed, one digit off, within a month, same year where one date
    is 1 January (partial dates are recorded so), same day and month, same year.

    A date ingest repaired (``dob_repaired``) is not trusted as an exact agreement: two equal dates, one of
    them repaired, meet at "one digit off" — the repair was a guess about a typing mistake of that size.
    """
    return Comparison(
        "dob",
        with_priors((
            null("dob"),
            exact(column("dob_as_written"), label="dob exact"),
            all_of(
                swapped(column("birth_month"), column("birth_day"), "month and day swapped"),
                exact(column("birth_year")),
                label="day and month swapped",
            ),
            edit_distance(column("dob_digits"), 1, label="one digit off"),
            date_within("dob", 31, label="within a month"),
            edit_distance(column("dob_digits"), 2, label="two digits off"),
            all_of(
                exact(column("birth_year")),
                either_equals(column("birth_month_day"), "0101"),
                label="same year, one a 1 January (partial) date",
            ),
            exact(column("birth_month_day"), label="same day and month, other year"),
            replace(exact(column("birth_year"), label="same year"), conflict=True),
            replace(else_level(), conflict=True),
        ), (0.92, 0.0002), (0.007, 2e-5), (0.02, 0.0016), (0.003, 0.003), (0.005, 0.01), (0.02, 0.0004),
            (0.002, 0.002), (0.001, 0.016), (0.03, 0.97)),
    )


#: SSNs this many edits apart may still be one person's: the SSN comparison's last agreeing level, and the
#: cluster guard's tolerance (cilink.link.clusters.ssn_conflict), so the guard never refuses what the model
#: scores as similar
SSN_EDITS = 2


def ssn_comparison() -> Comparison:
    """SSN: exact, one edit (typo or transposed digits), same last four digits (masked SSNs)."""
    return Comparison(
        "ssn",
        with_priors((
            null("ssn_last4", label="ssn missing"),
            exact("ssn", label="ssn exact"),
            edit_distance("ssn", 1, label="ssn one edit"),
            exact("ssn_last4", label="same last four digits"),
            edit_distance("ssn", SSN_EDITS, label="ssn two edits"),
            else_level(),
        ), (0.86, 1e-5), (0.013, 1e-6), (0.1, 1e-4), (0.005, 1e-5), (0.02, 0.9999)),
    )


def shared_id_comparison() -> Comparison:
    """An identifier the partners share that is not an SSN (a statewide student id): exact, one edit, same
    last four characters, two edits, else — the SSN's levels, as ids are typed like SSNs. Null for every pair
    where no partner sends one, so it changes nothing there."""
    return Comparison(
        "shared_id",
        with_priors((
            null("shared_id"),
            exact("shared_id", label="shared id exact"),
            edit_distance("shared_id", 1, label="shared id one edit"),
            exact(column("shared_id_tail"), label="same last four characters"),
            edit_distance("shared_id", 2, label="shared id two edits"),
            else_level(),
        ), (0.86, 1e-5), (0.013, 1e-6), (0.1, 1e-4), (0.005, 1e-5), (0.02, 0.9999)),
    )


def sex_comparison() -> Comparison:
    """Sex: agree or not."""
    return Comparison("sex", with_priors((null("sex"), exact("sex"), else_level()), (0.98, 0.5), (0.02, 0.5)))


def email_comparison() -> Comparison:
    """E-mail: exact or not (personal addresses; household members rarely share one)."""
    return Comparison("email", with_priors((null("email"), exact("email"), else_level()), (0.8, 1e-5),
                                           (0.2, 0.99999)))


def zip_comparison() -> Comparison:
    """ZIP code (household evidence: the whole household shares it)."""
    return Comparison(
        "zip5", household(with_priors((null("zip5"), exact("zip5"), else_level()), (0.8, 0.55), (0.2, 0.45))),
        role="household",
    )


def street_comparison() -> Comparison:
    """Street address (household evidence), compared on its key (USPS suffixes, no unit — see
    cilink.link.addresses): same, or a close spelling. People move, so m is fixed at 0.6 for the same."""
    key = column("street_key")
    return Comparison(
        "street",
        household(with_priors((null(key, label="street missing"), exact(key, label="same street address"),
                               jaro_winkler(key, 0.92, label="street address, close spelling"), else_level()),
                              (0.6, 0.15), (0.05, 0.025), (0.35, 0.825))),
        role="household",
    )


def phone_comparison() -> Comparison:
    """Phone (household evidence: home phones are shared)."""
    return Comparison(
        "phone",
        household(with_priors((null("phone"), exact("phone"), else_level()), (0.5, 0.125), (0.5, 0.875))),
        role="household",
    )


# --- comparisons of encodings (projects with encoded partners, docs/encodings.md) -------------------------
#
# Each applies only to pairs where a record lacks the plaintext and both have the encoding (the plaintext
# comparison of the same name is null for exactly those pairs), so no pair counts the same evidence twice
# and plaintext pairs score as in a plaintext project. Thresholds: equal values keep a Dice of 0.89-1.0
# under the encoders' BLIP noise, a one-character typo ~0.7-0.8, unrelated values < 0.5 (demo measurements).
# There are no encoded household comparisons: their u must be measured among same-surname pairs, which the
# hub cannot form from encodings, and address agreement is what makes household false links.

_ENCODED = "Dice of keyed Bloom-filter encodings, where a record has no plaintext"
# Priors: this model trained on `cilink demo --people 5000 --seed 1 --encoded workforce-board`, rounded (e-mail:
# the plaintext e-mail's, as only the workforce board has e-mail addresses there).


def encoded_name_comparison(col: str, cross_salted: bool = False) -> Comparison:
    """First or last name by the Dice of their encodings: same name (up to noise), close spelling, some
    shared bigrams. For v1 files no nickname, swap or term-frequency levels: two encodings cannot tell those.

    ``cross_salted`` (v2/v3 files, names salted by the birth date) adds what the pair's plaintext side can:
    the agreement's term frequency is that of the plaintext record's name; first and last name swapped (the
    hub's encodings of a plaintext record's swapped names, ``dice_cross``); a first name also meets the hub's
    encodings of a plaintext record's nicknames (``dice_any``: Kay ≈ Katherine, as in plaintext). Where the
    birth dates' encodings differ and the other name's do not agree either, the names were keyed by different
    salts and their Dice is of unrelated filters — no evidence (``keyed_apart``), not a disagreement. Scored as
    a disagreement, a wrong or partial birth date counted three times (birth date, first and last name: −6.6 on
    top of the birth date's own weight) and a pair agreeing on its SSN could not link."""
    enc = "enc_" + col
    sibling = "enc_last_name" if col == "first_name" else "enc_first_name"
    apart = (keyed_apart("enc_dob", sibling, f"{col} encodings keyed apart (birth dates differ): not compared"),)
    nickname = (dice_any(column("first_nicknames_enc"), enc, 0.85, "nickname or alias (encodings, Dice >= 0.85)"),)
    nicknames = cross_salted and col == "first_name"
    swap = (all_of(dice_cross(column("first_swapped_enc"), "enc_first_name", 0.85, "first name as last"),
                   dice_cross(column("last_swapped_enc"), "enc_last_name", 0.85, "last name as first"),
                   label="first and last name swapped (encodings)"),)
    levels = (
        encoded_null(col, enc),
        dice(enc, 0.85, f"{col} encodings agree (Dice >= 0.85)", tf_column=col if cross_salted else None),
        *(swap if cross_salted else ()),
        dice(enc, 0.7, f"{col} encodings close (Dice >= 0.7)"),
        *(nickname if nicknames else ()),
        dice(enc, 0.5, f"{col} encodings similar (Dice >= 0.5)"),
        *(apart if cross_salted else ()),
        else_level(),
    )
    # priors: v1 (every name under one salt), so their u is the chance that two people's names meet a level
    # when the salts are equal — under cross-salting, what a level's u must be and what random sampling cannot
    # measure: random pairs with equal salts (birth dates) are mostly the same person. The nickname level's
    # is the plaintext nickname level's.
    agree, *rest = (((0.9, 0.0024), (0.01, 0.0006), *(((0.04, 0.002),) if nicknames else ()), (0.05, 0.005),
                     (0.035, 0.99)) if col == "first_name" else ((0.86, 0.0032), (0.02, 0.00035), (0.047, 0.0031),
                                                                 (0.07, 0.99)))
    # swapped: the plaintext "first and last name swapped" level's
    mu = (agree, *(((0.007, 1e-6),) if cross_salted else ()), *rest)
    levels = with_priors(levels, *mu)
    if cross_salted:
        levels = tuple(replace(lv, fix_u=lv.kind not in NULL_KINDS) for lv in levels)
    return Comparison(f"{col}_enc", levels, description=_ENCODED)


def encoded_dob_comparison(cross_salted: bool = False) -> Comparison:
    """Date of birth by the Dice of its encodings (same date; one digit off), then the clear birth year.

    ``cross_salted``: also "same birth year, the plaintext record's date a 1 January" — how partial dates
    are recorded (HMIS DOBDataQuality 2), the plaintext comparison's level of the same name. The hub sees
    only its own record's date, never the encoded one's; under cross-salting a partial date keys the names
    apart, so the year is all that is left of such a pair's birth date."""
    partial = (all_of(exact(column("birth_year")), either_equals(column("birth_month_day"), "0101"),
                      label="same birth year, the plaintext date a 1 January (partial)"),)
    # the birth date is salted by the first name's code: where the first names' encodings do not agree, the
    # dates' Dice may be of unrelated filters, and only the clear year is compared
    apart = (all_of(keyed_apart("enc_first_name", None, "first names differ"), exact(column("birth_year")),
                    label="same birth year, dob encodings keyed apart (first names differ)"),)
    levels = (
        encoded_null("dob", "enc_dob"),
        dice("enc_dob", 0.85, "dob encodings agree (Dice >= 0.85)"),
        dice("enc_dob", 0.7, "dob encodings close (Dice >= 0.7: one digit off)"),
        *(partial + apart if cross_salted else ()),
        exact(column("birth_year"), label="same birth year"),
        else_level(),
    )
    mu = ((0.97, 0.0002), (0.014, 0.0022), *(((0.02, 0.0007), (0.05, 0.012)) if cross_salted else ()),
          (0.015, 0.012), (0.002, 0.986))
    return Comparison("dob_enc", with_priors(levels, *mu), description=_ENCODED)


#: u of an SSN whose encodings agree, in cross-salted schemes: the plaintext "ssn exact" prior. Random
#: sampling cannot measure it there — an encoded SSN agrees only under the same surname code too, so among
#: random pairs it agrees almost only for records of one person, and the sample's rate (1.5e-4 on the
#: 5,000-person demo) was the share of true matches in the sample, capping the weight at 12.2 (plaintext 16.2)
ENCODED_SSN_U = 1e-5


def encoded_ssn_comparison(cross_salted: bool = False) -> Comparison:
    """SSN by the Dice of its encodings (same; one edit), then of the last four digits' encodings.
    ``cross_salted`` (SSNs salted by the last name's code): where the last names' encodings do not agree (a
    married or maiden name, or names keyed apart themselves) nor do the last four digits', the SSNs are
    ``keyed_apart``: no evidence. Every level's u is then fixed (the agreement's at ``ENCODED_SSN_U``, the
    others at the plaintext SSN's priors): the random pairs left to compare share a surname code and a birth
    date, mostly one person — sampled, "last four digits agree" got u 0.14 at 100,000 people."""
    levels = with_priors((
        encoded_null("ssn_last4", "enc_ssn_last4", label="ssn not compared (both plaintext, or missing)"),
        dice("enc_ssn", 0.85, "ssn encodings agree (Dice >= 0.85)"),
        dice("enc_ssn", 0.7, "ssn encodings close (Dice >= 0.7: one edit)"),
        dice("enc_ssn_last4", 0.8, "last four digits' encodings agree (Dice >= 0.8)"),
        *((keyed_apart("enc_last_name", "enc_ssn_last4",
                       "ssn encodings keyed apart (last names differ): not compared"),) if cross_salted else ()),
        else_level(),
    ), (0.88, ENCODED_SSN_U if cross_salted else 0.00016), (0.016, 1e-5), (0.092, 0.00015), (0.01, 0.9997))
    if cross_salted:
        levels = tuple(replace(lv, fix_u=lv.kind not in NULL_KINDS) for lv in levels)
    return Comparison("ssn_enc", levels, description=_ENCODED)


def encoded_email_comparison() -> Comparison:
    """E-mail by the Dice of its encodings."""
    return Comparison("email_enc", with_priors((
        encoded_null("email", "enc_email"),
        dice("enc_email", 0.85, "email encodings agree (Dice >= 0.85)"),
        else_level(),
    ), (0.8, 1e-5), (0.2, 0.99999)), description=_ENCODED)


#: The comparison of encodings standing in for each plaintext comparison (added only with encoded partners).
#: Each takes ``cross_salted`` (files of a cross-salted scheme, v2/v3).
ENCODED_COMPARISONS: dict[str, Callable[[bool], Comparison]] = {
    "first_name": lambda salted: encoded_name_comparison("first_name", salted),
    "last_name": lambda salted: encoded_name_comparison("last_name", salted),
    "dob": encoded_dob_comparison,
    "ssn": encoded_ssn_comparison,
    "email": lambda _salted: encoded_email_comparison(),
}


#: m of the cross-salted scheme's comparisons (``cilink.encoding.scheme.CROSS_SALTS``), fixed rather than
#: estimated by EM: every band EM could train on ties the salting fields together (the birth-date band needs
#: equal first names and birth dates), so EM would see almost no equal names keyed apart by a wrong or partial
#: birth date — and would punish a salted disagreement as hard as a real one. Measured on the 1,094 true pairs
#: of `cilink demo --people 5000 --seed 1 --encoded workforce-board` (all of them, blocked or not; the levels'
#: shares among the pairs where the comparison is not null — keyed-apart pairs are null), rounded; the birth
#: date's "same birth year, keyed apart" is the share of true pairs born in the same year (0.98), as that level
#: is what is left of the birth date when its Dice says nothing; its "same birth year" (first names agree,
#: dates differ), 0 of 645, is given 0.005, and the first name's "all other", 1 of 603, 0.01 (plaintext: 0.02).
CROSS_SALTED_M: dict[str, tuple[float, ...]] = {
    "first_name_enc": (0.903, 0.012, 0.012, 0.051, 0.021, 0.01),
    "last_name_enc": (0.867, 0.011, 0.015, 0.047, 0.06),
    "dob_enc": (0.901, 0.006, 0.02, 0.98, 0.005, 0.019),
    "ssn_enc": (0.862, 0.013, 0.104, 0.022),
}


#: Every comparison by the name used in ``[link] comparisons``.
COMPARISONS: dict[str, Callable[[], Comparison]] = {
    "first_name": lambda: name_comparison("first_name"),
    "last_name": lambda: name_comparison("last_name"),
    "dob": dob_comparison,
    "ssn": ssn_comparison,
    "shared_id": shared_id_comparison,
    "sex": sex_comparison,
    "email": email_comparison,
    "zip5": zip_comparison,
    "street": street_comparison,
    "phone": phone_comparison,
}
DEFAULT_COMPARISONS = ("first_name", "last_name", "dob", "ssn", "shared_id", "sex", "email", "zip5", "street",
                       "phone")


def default_blocking_rules() -> tuple[BlockingRule, ...]:
    """Candidate-pair rules that still work without SSN (most school records have none).

    The birth date pairs records only with a shared initial — first, last, or the two swapped: on the
    1M-person demo the bare birth date made 15.9M of 18.1M candidate pairs, and these three rules find all its
    true pairs in 2.4M but the 12 (of 202,000 links) whose names share no initial at all (docs/linkage.md).
    """
    return (
        block_on("dob", "first_initial"),
        block_on("dob", "last_initial"),
        block_on("dob", "initials"),
        block_on("ssn"),
        block_on("shared_id"),
        block_on("first_name", "last_name"),
        block_on("first_phonetic", "last_phonetic", "birth_year"),
        block_on("first_phonetic", "last_phonetic", "birth_month_day"),
        block_on("name_pair", "birth_year"),
        block_on("street_key", "zip5"),
        block_on("ssn_last4", "birth_year"),
        block_on("shared_id_tail", "birth_year"),
    )


#: raised when the SQL of a level kind changes what it matches (``cilink.link.engine.settings``): models
#: trained under another revision are retrained, and their compiled scoring SQL is recompiled. 2: edit
#: distances computed through the Hamming distance (two edits: at most four positions differ).
LEVEL_SQL_REVISION = 2


@dataclass(frozen=True)
class LinkSpec:
    """The whole rule set of a link run: comparisons, candidate-pair rules and the training plan."""

    comparisons: tuple[Comparison, ...]
    blocking_rules: tuple[BlockingRule, ...]
    #: rules whose pairs are (nearly) all true matches, to estimate the prior match probability
    deterministic_rules: tuple[BlockingRule, ...] = (
        block_on("first_name", "last_name", "dob"),
        block_on("ssn", "dob"),
        block_on("shared_id", "dob"),
    )
    #: EM training sessions; each estimates m for the comparisons not used by its rule. Pairs at the same
    #: street address are left out: household members (twins on ``dob``, a father and his namesake son on
    #: the names, a copied SSN) are the pairs EM would otherwise mistake for matches.
    training_rules: tuple[BlockingRule, ...] = (
        block_on("dob", apart=("street_key",)),
        block_on("ssn", apart=("street_key",)),
        block_on("shared_id", apart=("street_key",)),
        block_on("first_name", "last_name", apart=("street_key",)),
    )
    deterministic_recall: float = 0.8
    #: projects with encoded partners: what the encodings and their blocking keys depend on
    #: (``cilink.link.encodings.EncodingPlan.descriptor``); None in plaintext projects
    encoding: str | None = None

    def __str__(self) -> str:
        parts = ["Comparisons:"]
        parts += [str(c) for c in self.comparisons]
        parts.append("Blocking rules (candidate pairs):")
        parts += [f"  {r}" for r in self.blocking_rules]
        parts.append("Training: prior from " + "; ".join(map(str, self.deterministic_rules))
                     + f" (recall {self.deterministic_recall}); EM on " + "; ".join(map(str, self.training_rules)))
        if self.encoding:
            parts.append(f"Encodings: {self.encoding}")
        return "\n".join(parts)

    @property
    def fingerprint(self) -> str:
        """sha256 of the comparisons and training plan (a model trained under another fingerprint is stale)."""
        text = "\n".join([*(repr(c) for c in self.comparisons), *(repr(r) for r in self.training_rules),
                          *(repr(r) for r in self.deterministic_rules), str(self.deterministic_recall),
                          f"level sql {LEVEL_SQL_REVISION}"])
        if self.encoding:  # absent from plaintext projects, whose fingerprints stay as they were
            text += "\nencoding " + self.encoding
        fixed_u = [f"{c.name}.{i}" for c in self.comparisons for i, lv in enumerate(c.levels) if lv.fix_u]
        if fixed_u:  # likewise (only comparisons of encodings fix u)
            text += "\nu fixed " + ",".join(fixed_u)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def blocking_fingerprint(self) -> str:
        """sha256 of the candidate-pair rules (pairs found under other rules must be recomputed)."""
        text = repr(self.blocking_rules) + (f"\nencoding {self.encoding}" if self.encoding else "")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def columns(self) -> list[str]:
        """Record columns the rules read (the record id first)."""
        def level_columns(level: Level) -> list[str]:
            return [*level.columns, *(c for p in level.parts for c in level_columns(p))]

        cols = ["record_id"]
        for comp in self.comparisons:
            cols += [c for lv in comp.levels for c in level_columns(lv)]
        for rule in (*self.blocking_rules, *self.deterministic_rules, *self.training_rules):
            cols += list(rule.columns)
            cols += [column(a) for a in rule.apart]
        return list(dict.fromkeys(cols))

    def household_comparisons(self) -> list[str]:
        """Names of the comparisons that are household evidence (address, zip, home phone)."""
        return [c.name for c in self.comparisons if c.role == "household"]


def with_encodings(spec: LinkSpec, encoding: str) -> LinkSpec:
    """``spec`` for a project with encoded partners: each plaintext comparison that has one gets its
    comparison of encodings (``ENCODED_COMPARISONS``), MinHash LSH keys join the blocking rules, and training
    gains rules for pairs with an encoded record.

    Training: EM on the first name band, left to pairs with an encoded record whose first and last names
    are not both in plaintext (which also keeps Splink from training the name comparisons on pairs chosen
    for their names), trains the birth date, SSN and e-mail encodings; EM on the first birth-date band,
    likewise, trains the name encodings. Plaintext pairs never enter these rules, so they do not move the
    plaintext levels. The prior gains pairs agreeing on a name band and a birth-date band.
    """
    names = [c.name for c in spec.comparisons]
    cross_salted = not encoding.startswith(SCHEME_V1)
    encoded = tuple(ENCODED_COMPARISONS[n](cross_salted) for n in names if n in ENCODED_COMPARISONS)
    if cross_salted:  # salted by each other: m fixed (see CROSS_SALTED_M)
        encoded = tuple(fixed_m(c, *CROSS_SALTED_M[c.name]) if c.name in CROSS_SALTED_M else c for c in encoded)
    name, dob = LSH[0], LSH[1]
    return replace(
        spec,
        comparisons=(*spec.comparisons, *encoded),
        blocking_rules=(*spec.blocking_rules, *(block_on(f.short(i)) for f in LSH for i in range(f.bands))),
        training_rules=(*spec.training_rules,
                        block_on(name.short(0), apart=("first_name", "last_name", "plaintext")),
                        block_on(dob.short(0), apart=("dob", "plaintext"))),
        deterministic_rules=(*spec.deterministic_rules, *(block_on(name.short(i), dob.short(i)) for i in range(4))),
        encoding=encoding,
    )


def link_spec(settings: LinkSettings, encoding: str | None = None) -> LinkSpec:
    """The rule set in force: defaults, or ``[link] comparisons`` / ``blocking_rules`` from cilink.toml;
    with ``encoding`` (a project with encoded partners: ``EncodingPlan.descriptor``) extended by
    ``with_encodings``.

    Raises ConfigError naming the key when a comparison or field name is unknown.
    """
    names = settings.comparisons if settings.comparisons is not None else list(DEFAULT_COMPARISONS)
    unknown = [n for n in names if n not in COMPARISONS]
    problems = []
    if unknown:
        problems.append(f"link.comparisons: unknown comparison(s) {unknown}; known: {', '.join(COMPARISONS)}")
    if not names:
        problems.append("link.comparisons: give at least one comparison")
    rules = default_blocking_rules()
    if settings.blocking_rules is not None:
        rules_list = []
        for i, fields in enumerate(settings.blocking_rules):
            try:
                if not fields:
                    raise KeyError("(empty rule)")
                rules_list.append(block_on(*fields))
            except KeyError as e:
                problems.append(
                    f"link.blocking_rules[{i}]: unknown field {e.args[0]!r}; use identity fields "
                    f"({', '.join(RECORD_FIELDS)}) or derived ones ({', '.join(DERIVED_COLUMNS)})"
                )
        if not settings.blocking_rules:
            problems.append("link.blocking_rules: give at least one rule, e.g. [[\"dob\"]]")
        rules = tuple(rules_list)
    if problems:
        raise ConfigError("the [link] rules in cilink.toml are invalid:\n  " + "\n  ".join(problems),
                          hint="fix the keys named above, then run `cilink config check`", problems=problems)
    comparisons = tuple(COMPARISONS[n]() for n in dict.fromkeys(names))
    spec = LinkSpec(comparisons=comparisons, blocking_rules=rules)
    return spec if encoding is None else with_encodings(spec, encoding)
