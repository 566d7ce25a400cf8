"""Synthetic restricted-zone fixtures for export tests and benchmarks: staged batches + ledger rows + crosswalk.

Builds what ingest and link would leave behind (docs/internals.md) without running them: a workspace with a
school, a workforce and a housing partner, one staged Parquet batch per partner matching
``cilink.schemas.polars_schema(domain)``, registered with ``Ledger.add_batch``, and a crosswalk published as
a link generation. Generation is vectorized (numpy + polars), so the same builder makes 300 persons for a
unit test and a million for ``benchmarks/export_1m.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from cilink import atomic
from cilink.generations import new_link_generation
from cilink.ledger import Batch, Ledger, now_utc
from cilink.link.outputs import write_crosswalk
from cilink.schemas import SCHEMA_VERSION, polars_schema
from cilink.workspace import Workspace, init_workspace

PARTNERS = {"school": "city-schools", "workforce": "workforce-board", "housing": "coc-hmis"}

CONFIG = """\
[project]
name = "Fixture City Cradle-to-Career"
secret_env = "CILINK_SECRET"

[[partners]]
id = "city-schools"
domain = "school"
format = "csv"
[partners.columns]
source_person_id = "StudentID"

[[partners]]
id = "workforce-board"
domain = "workforce"
format = "csv"
[partners.columns]
source_person_id = "ParticipantID"

[[partners]]
id = "coc-hmis"
domain = "housing"
format = "hmis-csv"

[export]
k = 5
min_cell = 11
{export_extra}
{research}"""

#: The research audience every fixture workspace has: full event detail for a named recipient under a data-use
#: agreement (``export_release(ws, audience=RESEARCH)``, ``cilink export --audience research``). It shares the
#: workspace secret's variable; its keys still differ from the default audience's (person_keys derives them with
#: the audience id as label). Its profile is [export].profile (safe-harbor: year dates unless a test asks for
#: months with ``export_extra='event_date_precision = "month"'``).
RESEARCH = "research"
RESEARCH_AUDIENCE = """
[[export.audiences]]
id = "research"
tier = "research"
secret_env = "CILINK_SECRET"
recipient = "Fixture State University, School of Public Health"
agreement = "DUA-FIXTURE-0001"
purpose = "evaluation of the cradle-to-career programmes (test fixture)"
expires = 2099-12-31
"""

# Names chosen so that none is also a word the release vocabulary uses (white, black, other, young …).
FIRST = ["maria", "jose", "emily", "liam", "sofia", "mateo", "olivia", "noah", "ava", "lucas", "mia", "ethan",
         "isabella", "diego", "amelia", "kevin", "chloe", "marcus", "nadia", "tariq", "priya", "dmitri", "leila",
         "yusuf", "aaliyah", "connor", "brianna", "xavier", "keisha", "ramon", "lucia", "hector", "ana", "omar"]
LAST = ["garcia", "rodriguez", "nguyen", "kowalski", "oconnor", "santiago", "rivera", "pereira", "haddad",
        "okafor", "lindqvist", "moreau", "delgado", "castillo", "fitzgerald", "abernathy", "vasquez", "tremblay",
        "ramirez", "ortiz", "cruz", "morales", "figueroa", "torres", "mendez", "quinones", "batista", "alvarado"]
STREETS = ["MAPLE ST", "CHESTNUT ST", "NORTHAMPTON ST", "DWIGHT ST", "PLEASANT ST", "BEECH ST", "ELM ST",
           "SARGEANT ST", "HAMPDEN ST", "RACE ST"]
ZIPS = ["01040", "01040", "01040", "01040", "01013", "01020", "01075", "01089", "01002", "01027"]
RACES = ["hispanic_latino", "white", "black_african_american", "asian", "hispanic_latino;white",
         "black_african_american;hispanic_latino", "american_indian_alaska_native", "white"]
SCHOOLS = [f"SCH{n}" for n in range(101, 111)]
PROGRAMS = ["WIOA Adult", "WIOA Youth", "Dislocated Worker"]
PROJECT_TYPES = [0, 1, 2, 3, 13, 4, 12]
DESTINATIONS = {410: "permanent", 435: "permanent", 302: "temporary", 204: "institutional", 116: "homeless",
                17: "other", 99: "unknown"}
GRADES = ["K", *[str(g) for g in range(1, 13)]]


@dataclass
class Fixture:
    """A workspace with staged data and a crosswalk, plus the ground truth the tests look for in releases."""

    ws: Workspace
    persons: pl.DataFrame  # person_id and identity fields (restricted truth)
    staged: dict[str, pl.DataFrame]  # per domain, as written
    crosswalk: pl.DataFrame


def fixture_config(export_extra: str = "", *, research: bool = True) -> str:
    """The fixture's cilink.toml: ``export_extra`` goes under [export] (keys, or tables such as audiences),
    then the research audience unless ``research=False``."""
    return CONFIG.format(export_extra=export_extra, research=RESEARCH_AUDIENCE if research else "")


def _dates(rng: np.random.Generator, start: dt.date, days: int, n: int) -> pl.Series:
    offsets = rng.integers(0, days, n)
    return pl.Series(np.datetime64(start) + offsets.astype("timedelta64[D]")).cast(pl.Date)


def make_persons(n: int, rng: np.random.Generator, *, first_year: int = 2019, last_year: int = 2024) -> pl.DataFrame:
    """Identity of ``n`` people (one row each), ages spread from children to elders."""
    birth = _dates(rng, dt.date(1928, 1, 1), (dt.date(2018, 12, 31) - dt.date(1928, 1, 1)).days, n)
    # skew towards school-age children and working-age adults, as a cradle-to-career population is
    young = rng.random(n) < 0.5
    birth = pl.select(pl.when(pl.Series(young)).then(
        _dates(rng, dt.date(last_year - 19, 1, 1), 365 * 15, n)).otherwise(birth)).to_series()
    race = np.array(RACES)[rng.integers(0, len(RACES), n)]
    return pl.DataFrame({
        "person_id": [f"{x:016x}" for x in rng.integers(0, 2**63 - 1, n)],
        "first_name": np.array(FIRST)[rng.integers(0, len(FIRST), n)],
        "middle_name": np.array(FIRST)[rng.integers(0, len(FIRST), n)],
        "last_name": np.array(LAST)[rng.integers(0, len(LAST), n)],
        "dob": birth,
        "sex": np.where(rng.random(n) < 0.004, "X", np.where(rng.random(n) < 0.5, "F", "M")),
        "ssn": [f"{a}{b:02d}{c:04d}" for a, b, c in zip(rng.integers(100, 666, n), rng.integers(1, 100, n),
                                                          rng.integers(1, 10000, n), strict=True)],
        "street": [f"{h} {s}" for h, s in zip(rng.integers(1, 400, n),
                                              np.array(STREETS)[rng.integers(0, len(STREETS), n)], strict=True)],
        "city": "holyoke",
        "state": "MA",
        "zip5": np.array(ZIPS)[rng.integers(0, len(ZIPS), n)],
        "phone": [f"413{x:07d}" for x in rng.integers(2000000, 9999999, n)],
        "race_ethnicity": pl.Series(race).str.split(";"),
    }).with_columns(
        pl.format("{}.{}{}@example.org", "first_name", "last_name", pl.int_range(pl.len())).alias("email"),
        pl.col("ssn").str.slice(5).alias("ssn_last4"),
    )


def _school(persons: pl.DataFrame, rng: np.random.Generator, first_year: int, last_year: int) -> pl.DataFrame:
    by = pl.col("dob").dt.year()
    rows = (persons.select("person_id", pl.int_ranges(pl.max_horizontal(by + 5, pl.lit(first_year)),
                                                      pl.min_horizontal(by + 18, pl.lit(last_year)) + 1)
                           .alias("y"), (pl.col("dob").dt.year()).alias("_by"))
            .explode("y").drop_nulls("y"))
    n = rows.height
    enrolled = rng.integers(150, 181, n)
    absent = np.minimum(rng.poisson(9, n), enrolled)
    grade_idx = np.clip(rows["y"].to_numpy() - rows["_by"].to_numpy() - 5, 0, 12)
    current = rows["y"].to_numpy() == last_year
    return rows.with_columns(
        pl.format("{}-{}", "y", ((pl.col("y") + 1) % 100).cast(pl.String).str.zfill(2)).alias("school_year"),
        pl.Series(np.array(SCHOOLS)[rng.integers(0, len(SCHOOLS), n)]).alias("school_id"),
        pl.Series(np.array(GRADES)[grade_idx]).alias("grade_level"),
        (pl.date(pl.col("y"), 8, 28) + pl.duration(days=pl.Series(rng.integers(0, 14, n)))).alias("entry_date"),
        pl.when(pl.Series(current)).then(None)
        .otherwise(pl.date(pl.col("y") + 1, 6, 10) + pl.duration(days=pl.Series(rng.integers(0, 14, n))))
        .alias("exit_date"),
        pl.Series(enrolled).alias("days_enrolled"),
        pl.Series(enrolled - absent).alias("days_present"),
        (pl.Series(grade_idx == 12) & ~pl.Series(current)).alias("graduated"),
    ).drop("y", "_by")


def _episodes(persons: pl.DataFrame, rng: np.random.Generator, share: float, extra: float,
              first_year: int, last_year: int) -> pl.DataFrame:
    """Persons taking part (share), each with 1 + Poisson(extra) dated episodes in the window."""
    who = persons.filter(pl.Series(rng.random(persons.height) < share)).select("person_id")
    counts = 1 + rng.poisson(extra, who.height)
    rows = who.select(pl.col("person_id").repeat_by(pl.Series(counts))).explode("person_id")
    n = rows.height
    start = dt.date(first_year, 1, 1)
    entry = _dates(rng, start, (dt.date(last_year + 1, 5, 31) - start).days, n)
    length = rng.integers(10, 300, n)
    return rows.with_columns(entry.alias("entry_date"), pl.Series(length).alias("_len"))


def _finish_exits(rows: pl.DataFrame, rng: np.random.Generator, as_of: dt.date) -> pl.DataFrame:
    exit_ = pl.col("entry_date") + pl.duration(days=pl.col("_len"))
    still = (exit_ > pl.lit(as_of)) | pl.Series(rng.random(rows.height) < 0.05)
    return rows.with_columns(pl.when(still).then(None).otherwise(exit_).alias("exit_date")).drop("_len")


def make_staged(persons: pl.DataFrame, rng: np.random.Generator, *, first_year: int = 2019,
                last_year: int = 2024, workforce_share: float = 0.35, workforce_extra: float = 0.4,
                housing_share: float = 0.25, housing_extra: float = 0.8) -> dict[str, pl.DataFrame]:
    """Domain event rows (person_id + domain fields), before identity and meta columns are attached."""
    as_of = dt.date(last_year + 1, 6, 30)
    school = _school(persons, rng, first_year, last_year)
    adults = persons.filter(pl.col("dob").dt.year() <= last_year - 16)
    wf = _finish_exits(_episodes(adults, rng, workforce_share, workforce_extra, first_year, last_year), rng, as_of)
    n = wf.height
    wf = wf.with_columns(
        pl.Series(np.array(PROGRAMS)[rng.integers(0, len(PROGRAMS), n)]).alias("program"),
        pl.when(pl.col("exit_date").is_null()).then(None).otherwise(pl.Series(rng.random(n) < 0.7))
        .alias("employed_q2"),
        pl.when(pl.col("exit_date").is_null()).then(None).otherwise(pl.Series(rng.random(n) < 0.65))
        .alias("employed_q4"),
        pl.Series(np.round(rng.uniform(0, 15000, n), 2)).alias("earnings_q2"),
        pl.Series(rng.random(n) < 0.3).alias("credential_attained"),
    )
    # everyone not in school or workforce gets at least one HMIS enrollment, so every person has an event
    in_some = pl.concat([school.select("person_id"), wf.select("person_id")]).unique()
    others = persons.join(in_some, on="person_id", how="anti")
    hs = pl.concat([
        _episodes(persons, rng, housing_share, housing_extra, first_year, last_year),
        _episodes(others, rng, 1.0, 0.0, first_year, last_year),
    ])
    hs = _finish_exits(hs, rng, as_of)
    n = hs.height
    dest_codes = np.array(list(DESTINATIONS))[rng.integers(0, len(DESTINATIONS), n)]
    hs = hs.with_columns(
        pl.Series([f"E{x:012d}" for x in rng.integers(0, 10**12, n)]).alias("enrollment_id"),
        pl.Series(np.array(PROJECT_TYPES)[rng.integers(0, len(PROJECT_TYPES), n)]).alias("project_type"),
        pl.Series([f"H{x:010d}" for x in rng.integers(0, 10**10, n)]).alias("household_id"),
        pl.Series(rng.integers(1, 3, n)).alias("relationship_to_hoh"),
        pl.when(pl.col("exit_date").is_null()).then(None).otherwise(pl.Series(dest_codes)).alias("destination"),
    ).with_columns(
        pl.col("destination").replace_strict(DESTINATIONS, default=None, return_dtype=pl.String)
        .alias("destination_category"),
        pl.when(pl.col("project_type").is_in([3, 13]))
        .then(pl.col("entry_date") + pl.duration(days=20)).alias("move_in_date"),
    )
    return {"school": school, "workforce": wf, "housing": hs}


def _source_ids(persons: pl.DataFrame, domain: str, rng: np.random.Generator) -> pl.DataFrame:
    n = persons.height
    if domain == "school":
        ids = [f"S{x:07d}" for x in rng.permutation(n) + 1000]
    elif domain == "workforce":
        ids = [f"WB-{x:06d}" for x in rng.permutation(n) + 1000]
    else:  # HMIS PersonalIDs are often 32-hex GUIDs, the same shape as a person_key
        ids = [hashlib.md5(f"hmis{x}".encode()).hexdigest() for x in rng.permutation(n)]
    return persons.select("person_id").with_columns(pl.Series("source_person_id", ids))


def staged_frame(rows: pl.DataFrame, identity: pl.DataFrame, ids: pl.DataFrame, domain: str, partner: str,
                 batch_id: str) -> pl.DataFrame:
    """One partner's staged batch as ingest leaves it: events joined to identities and source ids, with the
    reserved columns, in the domain's staged schema."""
    frame = (rows.join(identity, on="person_id", how="left").join(ids, on="person_id", how="left")
             .with_columns(pl.lit(partner).alias("_cilink_partner"), pl.lit(batch_id).alias("_cilink_batch_id"),
                           pl.int_range(1, pl.len() + 1).alias("_cilink_row"),
                           pl.lit([], dtype=pl.List(pl.String)).alias("_cilink_flags")))
    schema = polars_schema(domain)
    return frame.select([(pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
                         for c, t in schema.items()])


def write_fixture(root: Path, persons: pl.DataFrame, events: dict[str, pl.DataFrame], *, seed: int = 0,
                  export_extra: str = "", config_text: str | None = None) -> Fixture:
    """Stage ``events`` (per domain, keyed by person_id) for ``persons`` in a new workspace at ``root``."""
    rng = np.random.default_rng(seed + 1)
    ws = init_workspace(root, config_text=config_text or fixture_config(export_extra))
    staged: dict[str, pl.DataFrame] = {}
    crosswalks = []
    identity = persons.drop("ssn_last4") if "ssn_last4" not in polars_schema("school") else persons
    for domain, rows in events.items():
        partner = PARTNERS[domain]
        ids = _source_ids(persons, domain, rng)
        batch_id = f"{partner}-{seed:04d}-0001"
        frame = staged_frame(rows, identity, ids, domain, partner, batch_id)
        path = ws.staged_dir(partner) / f"{batch_id}.parquet"
        atomic.write_parquet(path, frame)
        digest = hashlib.sha256(f"{partner}{seed}{frame.height}".encode()).hexdigest()
        with Ledger(ws.ledger_path) as ledger:
            ledger.add_batch(Batch(
                batch_id=batch_id, partner=partner, file_name=f"{domain}.csv", sha256=digest, size_bytes=0,
                rows_in=frame.height, accepted=frame.height, quarantined=0, quarantine_by_reason={},
                flags_by_field={}, schema_version=SCHEMA_VERSION, mode="snapshot", status="active",
                staged_path=path.relative_to(ws.root).as_posix(), quarantine_path=None, created_at=now_utc()),
                supersede_earlier=True)
        staged[domain] = frame
        used = frame.select("source_person_id").unique()
        crosswalks.append(ids.join(used, on="source_person_id").select(
            pl.lit(partner).alias("partner"), "source_person_id",
            pl.format("{}:{}", pl.lit(partner), "source_person_id").alias("record_id"), "person_id"))
    crosswalk = pl.concat(crosswalks)
    with new_link_generation(ws) as gen:
        write_crosswalk(gen.link_dir, crosswalk)
    return Fixture(ws=Workspace.open(root), persons=persons, staged=staged, crosswalk=crosswalk)


def build_release_workspace(root: Path, *, n_persons: int = 400, seed: int = 0, export_extra: str = "",
                            **staged_kw: float) -> Fixture:
    """A ready-to-export workspace with ``n_persons`` synthetic people in three partners' data."""
    rng = np.random.default_rng(seed)
    persons = make_persons(n_persons, rng)
    events = make_staged(persons, rng, **staged_kw)  # type: ignore[arg-type]
    return write_fixture(root, persons, events, seed=seed, export_extra=export_extra)
