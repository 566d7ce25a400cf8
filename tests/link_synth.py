"""A small synthetic population and staged-like partner batches for the link tests (all invented).

Households share last name, street, zip and phone; some children are twins (same birth date); some
records carry a nickname, a one-letter typo, a day/month swap or no SSN. ``stage_batch`` writes a batch
the way ingest does (Parquet under .cilink/staged + a ledger row), following docs/internals.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from pathlib import Path

import polars as pl

from cilink.ledger import Batch, Ledger, now_utc
from cilink.schemas import SCHEMA_VERSION, polars_schema
from cilink.staging import staged_batch_path
from cilink.workspace import Workspace, init_workspace

FIRST_F = ["mary", "elizabeth", "jennifer", "maria", "carmen", "susan", "linda", "ana", "jessica", "sarah",
           "karen", "nancy", "lisa", "betty", "sandra", "ashley", "kimberly", "emily", "donna", "michelle",
           "yolanda", "marisol", "glenda", "nilsa", "yesenia", "rosa", "gloria", "teresa", "sofia", "isabel"]
FIRST_M = ["robert", "william", "james", "john", "michael", "david", "richard", "joseph", "thomas", "charles",
           "jose", "luis", "carlos", "juan", "angel", "miguel", "jesus", "jorge", "daniel", "matthew",
           "anthony", "mark", "steven", "paul", "andrew", "joshua", "kenneth", "kevin", "brian", "george"]
NICK = {"robert": "bob", "william": "bill", "elizabeth": "liz", "james": "jim", "michael": "mike",
        "richard": "rick", "joseph": "joe", "thomas": "tom", "jennifer": "jen", "susan": "sue",
        "charles": "chuck", "anthony": "tony", "kimberly": "kim", "daniel": "dan", "david": "dave"}
LAST = ["smith", "johnson", "rivera", "rodriguez", "santiago", "torres", "cruz", "ortiz", "colon", "diaz",
        "perez", "gonzalez", "martinez", "lopez", "brown", "jones", "garcia", "miller", "davis", "wilson",
        "anderson", "taylor", "thomas", "moore", "jackson", "martin", "lee", "thompson", "white", "harris",
        "clark", "lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott", "hill"]
STREETS = ["MAPLE ST", "ELM ST", "OAK AVE", "PINE RD", "HIGH ST", "MAIN ST", "PARK AVE", "CANAL ST",
           "BEECH ST", "CHESTNUT ST", "DWIGHT ST", "HAMPDEN ST", "LYMAN ST", "MOSHER ST", "RACE ST"]
ZIPS = ["01040", "01013", "01020", "01105", "01089"]


def population(n: int, seed: int = 1) -> pl.DataFrame:
    """``n`` invented people in households: true_id, names, dob, sex, ssn, street, zip5, phone."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    household = 0
    while len(rows) < n:
        household += 1
        last = rng.choice(LAST)
        street = f"{rng.randint(1, 999)} {rng.choice(STREETS)}"
        zip5, phone = rng.choice(ZIPS), f"413{rng.randint(2000000, 9999999)}"
        adults = [("M", rng.randint(1960, 1995)), ("F", rng.randint(1960, 1995))][: rng.choice((1, 2, 2))]
        kids = rng.choice((0, 1, 2, 3))
        twin = kids >= 2 and rng.random() < 0.15
        members = [(sex, dt.date(y, rng.randint(1, 12), rng.randint(1, 28))) for sex, y in adults]
        base_kid = dt.date(rng.randint(2006, 2018), rng.randint(1, 12), rng.randint(1, 28))
        for k in range(kids):
            dob = base_kid if (twin and k < 2) else dt.date(rng.randint(2006, 2018), rng.randint(1, 12),
                                                             rng.randint(1, 28))
            members.append((rng.choice("FM"), dob))
        used: set[str] = set()
        for sex, dob in members:
            pool = FIRST_F if sex == "F" else FIRST_M
            first = rng.choice([f for f in pool if f not in used])
            used.add(first)
            rows.append({"true_id": f"T{len(rows) + 1:06d}", "first_name": first, "last_name": last,
                         "dob": dob, "sex": sex, "ssn": f"{rng.randint(100, 665)}{rng.randint(10, 99)}"
                         f"{rng.randint(1000, 9999)}", "street": street, "zip5": zip5, "phone": phone})
    return pl.DataFrame(rows[:n])


def _typo(s: str, rng: random.Random) -> str:
    i = rng.randint(1, len(s) - 1)
    return s[:i] + s[i + 1:] if len(s) > 3 else s


def partner_records(people: pl.DataFrame, partner: str, *, seed: int, ssn: bool = True,
                    noise: float = 1.0, id_prefix: str | None = None) -> pl.DataFrame:
    """One noisy record per person row (staged-like identity columns + true_id + source_person_id)."""
    rng = random.Random(f"{partner}:{seed}")
    out = []
    for i, p in enumerate(people.iter_rows(named=True)):
        first, last, dob = p["first_name"], p["last_name"], p["dob"]
        r = rng.random
        if first in NICK and r() < 0.15 * noise:
            first = NICK[first]
        if r() < 0.03 * noise:
            first = _typo(first, rng)
        if r() < 0.03 * noise:
            last = _typo(last, rng)
        if r() < 0.02 * noise and dob.day <= 12 and dob.day != dob.month:
            dob = dob.replace(month=dob.day, day=dob.month)
        out.append({
            "source_person_id": f"{id_prefix or partner[:1].upper()}{i + 1:05d}",
            "true_id": p["true_id"], "first_name": first, "last_name": last, "dob": dob, "sex": p["sex"],
            "ssn": p["ssn"] if ssn and r() < 0.9 else None, "street": p["street"],
            "zip5": p["zip5"], "phone": p["phone"] if r() < 0.7 else None,
        })
    return pl.DataFrame(out, schema={"source_person_id": pl.String, "true_id": pl.String,
                                     "first_name": pl.String, "last_name": pl.String, "dob": pl.Date,
                                     "sex": pl.String, "ssn": pl.String, "street": pl.String,
                                     "zip5": pl.String, "phone": pl.String})


def staged_frame(records: pl.DataFrame, partner: str, batch_id: str, domain: str = "workforce") -> pl.DataFrame:
    """Shape partner records as staged rows of ``domain`` (docs/internals.md)."""
    schema = polars_schema(domain)
    frame = records.with_columns(
        pl.lit(partner).alias("_cilink_partner"), pl.lit(batch_id).alias("_cilink_batch_id"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_cilink_row"),
        (pl.col("_cilink_flags") if "_cilink_flags" in records.columns
         else pl.lit([], dtype=pl.List(pl.String))).alias("_cilink_flags"),
        pl.col("ssn").str.slice(5, 4).alias("ssn_last4"),
    )
    if "entry_date" in schema and "entry_date" not in frame.columns:
        frame = frame.with_columns(pl.lit(dt.date(2024, 1, 1)).alias("entry_date"))
    return frame.select(
        pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c) for c, t in schema.items()
    )


def stage_batch(ws: Workspace, partner: str, records: pl.DataFrame, *, mode: str = "append",
                domain: str = "workforce") -> str:
    """Write ``records`` as one staged batch of ``partner`` and record it in the ledger; returns its id."""
    digest = hashlib.sha256(records.drop("_cilink_flags", strict=False).write_csv().encode()
                            + str(records.get_column("_cilink_flags").to_list() if "_cilink_flags" in records.columns
                                  else "").encode()).hexdigest()
    batch_id = f"{partner}-{digest[:12]}"
    path = staged_batch_path(ws, partner, batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = staged_frame(records.drop("true_id", strict=False), partner, batch_id, domain)
    frame.write_parquet(path)
    batch = Batch(batch_id=batch_id, partner=partner, file_name=f"{partner}.csv", sha256=digest,
                  size_bytes=0, rows_in=frame.height, accepted=frame.height, quarantined=0,
                  quarantine_by_reason={}, flags_by_field={}, schema_version=SCHEMA_VERSION, mode=mode,
                  status="active", staged_path=str(path.relative_to(ws.root)), quarantine_path=None,
                  created_at=now_utc())
    with Ledger(ws.ledger_path) as ledger:
        ledger.add_batch(batch, supersede_earlier=(mode == "snapshot"))
    return batch_id


def new_workspace(root: Path, partners: list[str], *, link_extra: str = "") -> Workspace:
    """A workspace with workforce-domain partners and a fast test training setup."""
    blocks = "".join(
        f'[[partners]]\nid = "{p}"\ndomain = "workforce"\nformat = "csv"\nmode = "append"\n'
        f'[partners.columns]\nsource_person_id = "ID"\n\n' for p in partners
    )
    text = f'[project]\nname = "link tests"\n\n{blocks}[link]\nseed = 7\nmax_pairs_u = 200000\n{link_extra}\n'
    return init_workspace(root, config_text=text)


def truth_of(*frames: tuple[str, pl.DataFrame]) -> pl.DataFrame:
    """partner, source_person_id, true_id for partner record frames."""
    return pl.concat([f.select(pl.lit(p).alias("partner"), "source_person_id", "true_id") for p, f in frames])
