"""Release profiles and the generalizations they apply: dates to month or year, ZIP to ZIP3, birth year top-coding.

Two profiles (design §6, issue 6):

- ``safe-harbor`` (default) follows the HIPAA Safe Harbor shape (§164.514(b)(2)): geography no finer than the
  first three ZIP digits, with the 17 sparsely populated ZIP3 areas replaced by ``"000"``; ages 90 and over
  merged into one category; no date element finer than the year (``event_date_precision = "year"``, the
  default). A config may still ask for months (``event_date_precision`` or ``[export.date_precision]``);
  the plan then says so — ``describe()`` reports ``safe_harbor = false`` and a description ending in
  "not Safe Harbor" — rather than calling the release Safe Harbor.
- ``limited`` is for audiences under a data-use agreement: month-level dates and the full 5-digit ZIP (a
  HIPAA limited data set, never Safe Harbor).

Safe Harbor also requires that the releaser has no actual knowledge that what remains could identify a
person; a profile only fixes the shape of dates and geography, so the tier and the measured risk decide
what may be claimed (docs/analysts.md, "Privacy profiles").

Everything here is a polars expression, so generalizing ten million rows stays vectorized.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import polars as pl

from cilink.config import ExportSettings, ReleaseProfile

Precision = Literal["month", "year"]

#: Event date fields a release carries, and the release column stem each becomes (``entry`` → ``entry_month``).
DATE_FIELDS: dict[str, str] = {"entry_date": "entry", "exit_date": "exit", "move_in_date": "move_in"}

#: HIPAA Safe Harbor §164.514(b)(2)(i)(B): 3-digit ZIP areas with 20,000 or fewer people (2000 Census) → "000".
RESTRICTED_ZIP3: frozenset[str] = frozenset({
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884",
    "890", "893",
})

#: Ages at or above this are merged into one "90 or older" category.
TOP_CODE_AGE = 90

# USPS ZIP3 prefix ranges → state (or military/territory code). Used to generalize ZIP3 to state, which
# Safe Harbor allows; ranges not listed (unassigned prefixes) give null.
_ZIP3_STATE_RANGES: list[tuple[int, int, str]] = [
    (5, 5, "NY"), (6, 7, "PR"), (8, 8, "VI"), (9, 9, "PR"), (10, 27, "MA"), (28, 29, "RI"), (30, 38, "NH"),
    (39, 49, "ME"), (50, 54, "VT"), (55, 55, "MA"), (56, 59, "VT"), (60, 69, "CT"), (70, 89, "NJ"),
    (90, 99, "AE"), (100, 149, "NY"), (150, 196, "PA"), (197, 199, "DE"), (200, 200, "DC"), (201, 201, "VA"),
    (202, 205, "DC"), (206, 219, "MD"), (220, 246, "VA"), (247, 268, "WV"), (270, 289, "NC"), (290, 299, "SC"),
    (300, 319, "GA"), (320, 339, "FL"), (340, 340, "AA"), (341, 349, "FL"), (350, 369, "AL"), (370, 385, "TN"),
    (386, 397, "MS"), (398, 399, "GA"), (400, 427, "KY"), (430, 459, "OH"), (460, 479, "IN"), (480, 499, "MI"),
    (500, 528, "IA"), (530, 549, "WI"), (550, 567, "MN"), (569, 569, "DC"), (570, 577, "SD"), (580, 588, "ND"),
    (590, 599, "MT"), (600, 629, "IL"), (630, 658, "MO"), (660, 679, "KS"), (680, 693, "NE"), (700, 714, "LA"),
    (716, 729, "AR"), (730, 732, "OK"), (733, 733, "TX"), (734, 749, "OK"), (750, 799, "TX"), (800, 816, "CO"),
    (820, 831, "WY"), (832, 838, "ID"), (840, 847, "UT"), (850, 865, "AZ"), (870, 884, "NM"), (885, 885, "TX"),
    (889, 898, "NV"), (900, 961, "CA"), (962, 966, "AP"), (967, 968, "HI"), (969, 969, "GU"), (970, 979, "OR"),
    (980, 994, "WA"), (995, 999, "AK"),
]
ZIP3_STATE: dict[str, str] = {f"{n:03d}": st for lo, hi, st in _ZIP3_STATE_RANGES for n in range(lo, hi + 1)}


@dataclass(frozen=True)
class ReleasePlan:
    """What one release will contain, resolved from the profile and [export] settings before any data is read."""

    profile: ReleaseProfile
    date_precision: dict[str, Precision]  # per event date field
    k: int
    min_cell: int
    max_suppression: float

    @property
    def zip5(self) -> bool:
        """Whether persons carry the 5-digit ZIP (limited profile only)."""
        return self.profile == ReleaseProfile.LIMITED

    @property
    def derived_precision(self) -> Precision:
        """Precision of values derived from several dates (spells, first/last seen): the coarsest configured."""
        return "year" if "year" in self.date_precision.values() else "month"

    @property
    def period(self) -> Literal["quarter", "year"]:
        """Panel period: quarters when every event date is released at month level, else years."""
        return "quarter" if self.derived_precision == "month" else "year"

    def date_column(self, field: str) -> str:
        """Release column for an event date field: ``entry_date`` → ``entry_month`` or ``entry_year``."""
        return f"{DATE_FIELDS[field]}_{self.date_precision[field]}"

    @property
    def safe_harbor(self) -> bool:
        """Whether dates and geography follow HIPAA Safe Harbor: the safe-harbor profile with every date a year."""
        return self.profile == ReleaseProfile.SAFE_HARBOR and set(self.date_precision.values()) <= {"year"}

    @property
    def description(self) -> str:
        """The profile as a release should name it: never "safe-harbor" alone when months are released."""
        if self.profile == ReleaseProfile.LIMITED:
            return "limited (month dates and ZIP5: a limited data set under a data-use agreement, not Safe Harbor)"
        months = sorted(f for f, p in self.date_precision.items() if p == "month")
        if not months:
            return "safe-harbor (dates as years, ZIP3)"
        return f"safe-harbor (months requested: not Safe Harbor; month precision for {', '.join(months)})"

    def describe(self) -> dict[str, object]:
        """The plan as manifest.json and dictionary.json record it (``profile`` stays the configured value)."""
        return {"profile": str(self.profile), "description": self.description, "safe_harbor": self.safe_harbor,
                "date_precision": dict(sorted(self.date_precision.items())),
                "geography": "zip5" if self.zip5 else "zip3", "panel_period": self.period,
                "k": self.k, "min_cell": self.min_cell, "max_suppression": self.max_suppression}


def release_plan(settings: ExportSettings, profile: ReleaseProfile | None = None) -> ReleasePlan:
    """Resolve the profile: limited ⇒ month dates for every column; safe-harbor ⇒ as configured per column
    (years unless the config asks for months, in which case the plan is marked as not Safe Harbor).

    Example: ``release_plan(ExportSettings()).describe()["safe_harbor"]`` is ``True``.
    """
    prof = profile or settings.profile
    if prof == ReleaseProfile.LIMITED:
        precision: dict[str, Precision] = dict.fromkeys(DATE_FIELDS, "month")
    else:
        precision = {f: settings.date_precision.get(f, settings.event_date_precision) for f in DATE_FIELDS}  # type: ignore[call-overload]
    return ReleasePlan(profile=prof, date_precision=precision, k=settings.k, min_cell=settings.min_cell,
                       max_suppression=settings.max_suppression)


def generalize_date(expr: pl.Expr, precision: Precision) -> pl.Expr:
    """A date as ``"YYYY-MM"`` text (month) or an Int16 year.

    Months are text, not a Date on the 1st: a first-of-month Date would be indistinguishable from an exact
    date (and would collide with real birth dates in the privacy gate's exact-DOB check).
    """
    if precision == "year":
        return expr.dt.year().cast(pl.Int16)
    return expr.dt.strftime("%Y-%m")


#: Widest range of dates (days) formatted through a look-up table: ~550 years, a few MB of text.
_MAX_TABLE_DAYS = 200_000


def generalize_dates(dates: pl.Series, precision: Precision) -> pl.Series:
    """``generalize_date`` over a Series of millions of dates, formatting each day of their range only once.

    ``strftime`` per row dominates building the larger tables; a table of every day from the earliest to
    the latest date, formatted by ``generalize_date`` itself, is gathered instead (same text, nulls stay null).
    """
    if precision == "year" or dates.is_empty() or dates.null_count() == len(dates):
        return dates.to_frame("d").select(generalize_date(pl.col("d"), precision)).to_series().alias(dates.name)
    days = dates.cast(pl.Date).cast(pl.Int32)
    lo, hi = days.min(), days.max()
    if hi - lo > _MAX_TABLE_DAYS:  # a sentinel far outside real dates: not worth a table
        return dates.to_frame("d").select(generalize_date(pl.col("d"), precision)).to_series().alias(dates.name)
    table = pl.select(generalize_date(pl.int_range(lo, hi + 1, dtype=pl.Int32).cast(pl.Date), precision)).to_series()
    return table.gather(days - lo).alias(dates.name)


def zip3_expr(zip5: pl.Expr) -> pl.Expr:
    """First three ZIP digits, with the Safe Harbor restricted areas replaced by ``"000"``."""
    z3 = zip5.str.slice(0, 3)
    return (pl.when(z3.is_in(list(RESTRICTED_ZIP3))).then(pl.lit("000"))
            .when(z3.str.contains(r"^\d{3}$")).then(z3).otherwise(None))


def state_expr(zip5: pl.Expr) -> pl.Expr:
    """The state (USPS code) a ZIP belongs to, from its first three digits."""
    return zip5.str.slice(0, 3).replace_strict(ZIP3_STATE, default=None, return_dtype=pl.String)


def top_code_cutoff(as_of: dt.date) -> int:
    """Birth years at or before this are top-coded.

    A person born in ``as_of.year - 89`` may turn 90 within the year after the data ends, so that year is
    top-coded too: the category stays "90 or older" however late the release is read.
    """
    return as_of.year - (TOP_CODE_AGE - 1)
