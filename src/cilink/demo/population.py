"""A synthetic population of people living in households: the ground truth behind the demo partner exports.

Everything here is invented. Names are sampled from faker's name lists (drawn once into weighted pools, then
sampled with one ``random.Random``), so a million people take seconds, and the same seed gives the same
people. Households are what makes linkage hard, so they are modelled with care: parents and children share
last name, street address, zip and home phone; twins share a birth date; a son may carry his father's name
with a JR suffix; married women have a maiden name; some households moved during the data window.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

import polars as pl
from faker import Faker
from faker.providers.person.en_US import Provider as EnglishNames
from faker.providers.person.es_ES import Provider as SpainNames
from faker.providers.person.es_MX import Provider as MexicoNames

from cilink.schemas.identity import RaceEthnicity

#: "Today" in the synthetic world: the last day of the data window every partner export covers.
REFERENCE_DATE = dt.date(2025, 6, 30)
#: First day of the data window (partners report activity from here to REFERENCE_DATE).
WINDOW_START = dt.date(2021, 7, 1)
STATE = "MA"

#: (city, zip5, share of households). Western-Massachusetts zips: most start with a zero that Excel drops.
ZIP_AREAS: tuple[tuple[str, str, float], ...] = (
    ("Holyoke", "01040", 0.56),
    ("Chicopee", "01013", 0.05),
    ("Chicopee", "01020", 0.05),
    ("Springfield", "01105", 0.04),
    ("Springfield", "01107", 0.04),
    ("Springfield", "01109", 0.03),
    ("West Springfield", "01089", 0.04),
    ("South Hadley", "01075", 0.04),
    ("Easthampton", "01027", 0.03),
    ("Northampton", "01060", 0.03),
    ("Westfield", "01085", 0.03),
    ("Granby", "01033", 0.03),
    ("Agawam", "01001", 0.03),
)

#: Household race/ethnicity mix (a Holyoke-like city: about half Hispanic, mostly Puerto Rican).
_RACE_MIX: tuple[tuple[tuple[RaceEthnicity, ...], float], ...] = (
    ((RaceEthnicity.HISPANIC,), 0.44),
    ((RaceEthnicity.HISPANIC, RaceEthnicity.WHITE), 0.04),
    ((RaceEthnicity.HISPANIC, RaceEthnicity.BLACK), 0.02),
    ((RaceEthnicity.WHITE,), 0.37),
    ((RaceEthnicity.BLACK,), 0.06),
    ((RaceEthnicity.BLACK, RaceEthnicity.WHITE), 0.015),
    ((RaceEthnicity.ASIAN,), 0.025),
    ((RaceEthnicity.AIAN,), 0.008),
    ((RaceEthnicity.AIAN, RaceEthnicity.WHITE), 0.005),
    ((RaceEthnicity.MENA,), 0.01),
    ((RaceEthnicity.NHPI,), 0.004),
)

# Very common surnames and given names in Holyoke's Puerto Rican community, weighted above the long tail.
_COMMON_ES_LAST = (
    "Rivera", "Rodríguez", "Santiago", "Torres", "Cruz", "Ortiz", "Colón", "Díaz", "Pérez", "González",
    "Martínez", "López", "Hernández", "Ramos", "Vázquez", "Morales", "Sánchez", "Figueroa", "Reyes",
    "Meléndez", "Vélez", "Maldonado", "Nieves", "Soto", "Rosario", "Negrón", "Burgos", "Feliciano",
)
_COMMON_ES_MALE = ("José", "Luis", "Carlos", "Juan", "Ángel", "Miguel", "Jesús", "Jorge", "Luis Ángel", "Josué")
_COMMON_ES_FEMALE = ("María", "Carmen", "Ana", "Yesenia", "Jessica", "Nilsa", "Yolanda", "Marisol", "Glenda")

_STREET_SUFFIXES: tuple[tuple[str, float], ...] = (
    ("Street", 0.45), ("Avenue", 0.18), ("Road", 0.1), ("Drive", 0.07), ("Lane", 0.05), ("Court", 0.04),
    ("Place", 0.04), ("Terrace", 0.03), ("Way", 0.02), ("Boulevard", 0.02),
)
_STREET_WORDS = (
    "Maple", "Elm", "Oak", "Pine", "Chestnut", "Walnut", "Cedar", "Birch", "Spruce", "Willow", "High",
    "Main", "Pleasant", "Park", "Lincoln", "Washington", "Jackson", "Franklin", "Sargeant", "Appleton",
    "Dwight", "Hampden", "Canal", "Race", "Cabot", "Suffolk", "Essex", "Lyman", "Mosher", "Beech",
    "Nonotuck", "Northampton", "Homestead", "Cherry", "Lower Westfield", "Bridge", "Mill", "River",
    "Prospect", "Summer", "Spring", "Church", "School", "Center", "Union", "Water", "Front", "Hillside",
)
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")


@dataclass(frozen=True)
class WeightedPool:
    """Values with cumulative weights, sampled with one uniform draw and a bisection."""

    values: tuple[str, ...]
    cum_weights: tuple[float, ...]

    @classmethod
    def of(cls, weighted: dict[str, float]) -> WeightedPool:
        """Pool from a {value: weight} mapping (insertion order is kept, so the pool is deterministic)."""
        return cls(tuple(weighted), tuple(accumulate(weighted.values())))

    def draw(self, rng: random.Random) -> str:
        """One value, with probability proportional to its weight."""
        i = bisect_right(self.cum_weights, rng.random() * self.cum_weights[-1])
        return self.values[min(i, len(self.values) - 1)]


@dataclass(frozen=True)
class NamePools:
    """Everything sampled from faker, drawn once per population."""

    first_female_en: WeightedPool
    first_male_en: WeightedPool
    first_female_es: WeightedPool
    first_male_es: WeightedPool
    last_en: WeightedPool
    last_es: WeightedPool
    streets_by_zip: dict[str, tuple[str, ...]]


def _zipf(names: tuple[str, ...], common: tuple[str, ...], rng: random.Random) -> dict[str, float]:
    """Zipf-like weights for a name list without frequencies: the common names first, the rest shuffled."""
    rest = sorted(set(names) - set(common))
    rng.shuffle(rest)
    ordered = list(dict.fromkeys(common)) + rest
    return {name: 1.0 / (rank + 8) for rank, name in enumerate(ordered)}


def build_name_pools(seed: int, people: int) -> NamePools:
    """Draw the name and street pools for a population of ``people`` (street pools grow with the city).

    Example: ``build_name_pools(1, 5000).last_es.draw(random.Random(1))`` → e.g. ``'Rivera'``.
    """
    rng = random.Random(f"name-pools:{seed}")
    fake = Faker("en_US")
    fake.seed_instance(seed)
    es_male = tuple(MexicoNames.first_names_male) + tuple(SpainNames.first_names_male)
    es_female = tuple(MexicoNames.first_names_female) + tuple(SpainNames.first_names_female)
    es_last = tuple(MexicoNames.last_names) + tuple(SpainNames.last_names)

    # Streets: words from faker's surname list and local-sounding names, a few hundred per 10,000 people.
    words = list(_STREET_WORDS) + [fake.last_name() for _ in range(400)]
    words = list(dict.fromkeys(words))
    suffixes = WeightedPool.of(dict(_STREET_SUFFIXES))
    n_streets = max(300, people // 40)
    streets_by_zip: dict[str, tuple[str, ...]] = {}
    for _city, zip5, share in ZIP_AREAS:
        k = max(20, int(n_streets * share))
        names = {f"{rng.choice(words)} {suffixes.draw(rng)}" for _ in range(k)}
        streets_by_zip[zip5] = tuple(sorted(names))
    return NamePools(
        first_female_en=WeightedPool.of(dict(EnglishNames.first_names_female)),
        first_male_en=WeightedPool.of(dict(EnglishNames.first_names_male)),
        first_female_es=WeightedPool.of(_zipf(es_female, _COMMON_ES_FEMALE, rng)),
        first_male_es=WeightedPool.of(_zipf(es_male, _COMMON_ES_MALE, rng)),
        last_en=WeightedPool.of(dict(EnglishNames.last_names)),
        last_es=WeightedPool.of(_zipf(es_last, _COMMON_ES_LAST, rng)),
        streets_by_zip=streets_by_zip,
    )


def ascii_fold(text: str) -> str:
    """Drop accents (José → Jose), as many partner systems do."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


class _Builder:
    """Accumulates people column by column while households are drawn."""

    COLUMNS = (
        "true_id", "household_id", "relationship", "first_name", "middle_name", "last_name", "suffix",
        "maiden_name", "dob", "sex", "ssn", "street", "unit", "city", "state", "zip5", "home_phone", "phone",
        "email", "race_ethnicity", "prev_street", "prev_unit", "prev_city", "prev_zip5",
    )

    def __init__(self, rng: random.Random, pools: NamePools) -> None:
        self.rng = rng
        self.pools = pools
        self.cols: dict[str, list[object]] = {c: [] for c in self.COLUMNS}
        self.ssns: set[str] = set()
        self.addresses: set[tuple[str, str, str, str]] = set()
        self.phones: set[str] = set()
        self.zip_pool = WeightedPool.of({z: s for _c, z, s in ZIP_AREAS})
        self.city_of = {z: c for c, z, _s in ZIP_AREAS}
        self.race_pool = [r for r, _w in _RACE_MIX]
        self.race_cum = tuple(accumulate(w for _r, w in _RACE_MIX))

    @property
    def size(self) -> int:
        return len(self.cols["true_id"])

    # -- attribute draws ---------------------------------------------------------------------------------
    def ssn(self) -> str:
        """A valid-looking SSN (area 001–899 except 666, group 01–99, serial 0001–9999), unique."""
        rand = self.rng.random
        while True:
            n = int(rand() * 899 * 99 * 9999)
            area, rest = divmod(n, 99 * 9999)
            group, serial = divmod(rest, 9999)
            if area + 1 == 666:
                continue
            value = f"{area + 1:03d}{group + 1:02d}{serial + 1:04d}"
            if value not in self.ssns:
                self.ssns.add(value)
                return value

    def phone(self) -> str:
        """A 413 (western Massachusetts) number, 10 digits, unique; never the fictional 555 exchange."""
        rand = self.rng.random
        while True:
            n = int(rand() * 800 * 10000)
            exchange, line = divmod(n, 10000)
            if exchange + 200 == 555:
                continue
            value = f"413{exchange + 200}{line:04d}"
            if value not in self.phones:
                self.phones.add(value)
                return value

    def address(self) -> tuple[str, str | None, str, str]:
        """(street, unit, city, zip5), unique per household."""
        rng = self.rng
        while True:
            zip5 = self.zip_pool.draw(rng)
            street = f"{rng.randint(1, 1999)} {rng.choice(self.pools.streets_by_zip[zip5])}"
            unit = None
            if rng.random() < 0.4:
                n = rng.randint(1, 6)
                unit = rng.choice((f"Apt {n}", f"Unit {n}", f"#{n}", f"{n}R", f"{n}L", f"Apt {n}{'AB'[n % 2]}"))
            key = (street, unit or "", zip5, "")
            if key not in self.addresses:
                self.addresses.add(key)
                return street, unit, self.city_of[zip5], zip5

    def race(self) -> tuple[RaceEthnicity, ...]:
        i = bisect_right(self.race_cum, self.rng.random() * self.race_cum[-1])
        return self.race_pool[min(i, len(self.race_pool) - 1)]

    def first_name(self, sex: str, hispanic: bool) -> str:
        p = self.pools
        if hispanic and self.rng.random() < 0.65:
            return (p.first_female_es if sex == "F" else p.first_male_es).draw(self.rng)
        return (p.first_female_en if sex == "F" else p.first_male_en).draw(self.rng)

    def last_name(self, hispanic: bool) -> str:
        if hispanic and self.rng.random() < 0.9:
            return self.pools.last_es.draw(self.rng)
        return self.pools.last_en.draw(self.rng)

    def dob(self, age: int) -> dt.date:
        return REFERENCE_DATE - dt.timedelta(days=age * 365 + age // 4 + int(self.rng.random() * 365))

    def email(self, first: str, last: str, dob: dt.date) -> str:
        rng = self.rng
        f, last_ = ascii_fold(first).lower().replace(" ", ""), ascii_fold(last).lower().replace(" ", "")
        pattern = rng.randrange(4)
        local = (
            f"{f}.{last_}",
            f"{f[:1]}{last_}{rng.randint(1, 99)}",
            f"{f}{last_}{dob.year % 100:02d}",
            f"{f}_{rng.randint(100, 999)}",
        )[pattern]
        return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"

    # -- people ------------------------------------------------------------------------------------------
    def add(self, hh: dict[str, object], *, relationship: str, first: str, middle: str | None, last: str,
            sex: str, dob: dt.date, suffix: str | None = None, maiden: str | None = None) -> dict[str, object]:
        rng = self.rng
        age = (REFERENCE_DATE - dob).days // 365
        own_cell = age >= 14 and rng.random() < (0.65 if age >= 18 else 0.4)
        race = hh["race"] if rng.random() < 0.95 else self.race()
        cols = self.cols
        row = {
            "true_id": f"T{self.size + 1:08d}",
            "first_name": first,
            "middle_name": middle,
            "dob": dob,
        }
        cols["true_id"].append(row["true_id"])
        cols["household_id"].append(hh["id"])
        cols["relationship"].append(relationship)
        cols["first_name"].append(first)
        cols["middle_name"].append(middle)
        cols["last_name"].append(last)
        cols["suffix"].append(suffix)
        cols["maiden_name"].append(maiden)
        cols["dob"].append(dob)
        cols["sex"].append(sex)
        cols["ssn"].append(self.ssn() if rng.random() < 0.985 else None)
        for key in ("street", "unit", "city", "zip5", "prev_street", "prev_unit", "prev_city", "prev_zip5"):
            cols[key].append(hh[key])
        cols["state"].append(STATE)
        cols["home_phone"].append(hh["phone"])
        cols["phone"].append(self.phone() if own_cell else hh["phone"])
        cols["email"].append(
            self.email(first, last, dob) if age >= 16 and rng.random() < (0.8 if age >= 18 else 0.4) else None
        )
        cols["race_ethnicity"].append(";".join(race))
        return row

    def middle(self, sex: str, hispanic: bool) -> str | None:
        return self.first_name(sex, hispanic) if self.rng.random() < 0.7 else None

    def household(self, number: int) -> dict[str, object]:
        street, unit, city, zip5 = self.address()
        hh: dict[str, object] = {
            "id": f"H{number:07d}", "street": street, "unit": unit, "city": city, "zip5": zip5,
            "phone": self.phone(), "race": self.race(),
            "prev_street": None, "prev_unit": None, "prev_city": None, "prev_zip5": None,
        }
        if self.rng.random() < 0.15:  # moved during the data window: partners may hold either address
            hh["prev_street"], hh["prev_unit"], hh["prev_city"], hh["prev_zip5"] = self.address()
        hh["hispanic"] = RaceEthnicity.HISPANIC in hh["race"]  # type: ignore[operator]
        return hh


def _adult_age(rng: random.Random, low: int = 18, high: int = 88) -> int:
    """Adult ages skewed toward working age."""
    while True:
        age = int(rng.triangular(low, high, 32))
        if low <= age <= high:
            return age


def _family(b: _Builder, hh: dict[str, object], *, two_parents: bool, grandparent: bool) -> None:
    rng = b.rng
    hisp = bool(hh["hispanic"])
    mother_age = rng.randint(20, 52)
    family_last = b.last_name(hisp)
    father: dict[str, object] | None = None
    if two_parents:
        father_age = max(20, mother_age + rng.randint(-3, 7))
        father = b.add(hh, relationship="head", first=b.first_name("M", hisp), middle=b.middle("M", hisp),
                       last=family_last, sex="M", dob=b.dob(father_age))
        maiden = b.last_name(hisp)
        keeps_own = rng.random() < 0.15
        mother = b.add(hh, relationship="spouse", first=b.first_name("F", hisp), middle=b.middle("F", hisp),
                       last=maiden if keeps_own else family_last, sex="F", dob=b.dob(mother_age),
                       maiden=None if keeps_own else maiden)
        head_last = family_last
        used = {father["first_name"], mother["first_name"]}
    else:
        single_sex = "F" if rng.random() < 0.82 else "M"
        head_last = family_last
        parent = b.add(hh, relationship="head", first=b.first_name(single_sex, hisp),
                       middle=b.middle(single_sex, hisp), last=family_last, sex=single_sex, dob=b.dob(mother_age))
        used = {parent["first_name"]}
    n_children = rng.choices((1, 2, 3, 4, 5), weights=(34, 35, 20, 8, 3))[0]
    oldest = min(19, mother_age - 18)
    named_after_father = False
    twin_dob: dt.date | None = None
    for _ in range(n_children):
        sex = "F" if rng.random() < 0.49 else "M"
        if twin_dob is not None:
            dob, twin_dob = twin_dob, None
        else:
            dob = b.dob(rng.randint(0, max(0, oldest)))
            if rng.random() < 0.016:  # the next child is this one's twin (about 3 % of children are twins)
                twin_dob = dob
        first, middle, suffix = b.first_name(sex, hisp), b.middle(sex, hisp), None
        for _retry in range(5):  # parents rarely give two of their children (or themselves) one name
            if first not in used:
                break
            first = b.first_name(sex, hisp)
        if father is not None and sex == "M" and not named_after_father and rng.random() < 0.07:
            first, middle, suffix = str(father["first_name"]), father["middle_name"], "JR"  # type: ignore[assignment]
            named_after_father = True
        used.add(first)
        b.add(hh, relationship="child", first=first, middle=middle, last=head_last, sex=sex, dob=dob,
              suffix=suffix)
    if grandparent:
        sex = "F" if rng.random() < 0.7 else "M"
        b.add(hh, relationship="parent", first=b.first_name(sex, hisp), middle=b.middle(sex, hisp),
              last=b.last_name(hisp), sex=sex, dob=b.dob(min(95, mother_age + rng.randint(20, 32))))


def _adults(b: _Builder, hh: dict[str, object], couple: bool) -> None:
    rng = b.rng
    hisp = bool(hh["hispanic"])
    if not couple:
        sex = "F" if rng.random() < 0.48 else "M"
        b.add(hh, relationship="head", first=b.first_name(sex, hisp), middle=b.middle(sex, hisp),
              last=b.last_name(hisp), sex=sex, dob=b.dob(_adult_age(rng)))
        return
    age = _adult_age(rng, 21, 85)
    last = b.last_name(hisp)
    b.add(hh, relationship="head", first=b.first_name("M", hisp), middle=b.middle("M", hisp), last=last,
          sex="M", dob=b.dob(age))
    maiden = b.last_name(hisp)
    married = rng.random() < 0.7
    b.add(hh, relationship="spouse", first=b.first_name("F", hisp), middle=b.middle("F", hisp),
          last=last if married else maiden, sex="F", dob=b.dob(max(18, age + rng.randint(-6, 3))),
          maiden=maiden if married else None)


def generate_population(people: int, seed: int = 1) -> pl.DataFrame:
    """Draw ``people`` synthetic people living in households, deterministically for ``seed``.

    Columns: ``true_id``, ``household_id``, ``relationship`` (head/spouse/child/parent), ``first_name``,
    ``middle_name``, ``last_name``, ``suffix``, ``maiden_name``, ``dob``, ``sex`` (F/M), ``ssn`` (9 digits,
    unique; null for a few), ``street``, ``unit``, ``city``, ``state``, ``zip5``, ``home_phone`` (shared by
    the household), ``phone`` (own cell or the home phone), ``email``, ``race_ethnicity`` (SPD-15 values,
    sometimes two) and the household's earlier address ``prev_street``/``prev_unit``/``prev_city``/
    ``prev_zip5`` (null unless it moved during the data window).

    Example: ``generate_population(1000, seed=7).height == 1000``.
    """
    if people < 1:
        raise ValueError("people must be at least 1")
    rng = random.Random(f"population:{seed}")
    b = _Builder(rng, build_name_pools(seed, people))
    number = 0
    while b.size < people:
        number += 1
        hh = b.household(number)
        kind = rng.random()
        if kind < 0.34:
            _family(b, hh, two_parents=True, grandparent=False)
        elif kind < 0.52:
            _family(b, hh, two_parents=False, grandparent=False)
        elif kind < 0.58:
            _family(b, hh, two_parents=rng.random() < 0.5, grandparent=True)
        elif kind < 0.72:
            _adults(b, hh, couple=True)
        else:
            _adults(b, hh, couple=False)
    cols = {k: v[:people] for k, v in b.cols.items()}
    schema = {c: pl.String for c in _Builder.COLUMNS}
    schema["dob"] = pl.Date
    frame = pl.DataFrame(cols, schema=schema)
    # Built as "a;b" strings: constructing a list column from a million Python lists is far slower.
    return frame.with_columns(pl.col("race_ethnicity").str.split(";"))


def age_on(dob: dt.date, day: dt.date) -> int:
    """Whole years of age on ``day``."""
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))
