"""Issue 10: keyed Bloom-filter encodings — no plaintext in the file, keys that do not cross, hardening
(the attacks of issue 19 are in tests/test_encoding_attacks.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cilink.encoding.bloom import dice, encode_values
from cilink.encoding.encode import encode_export, encode_frame, read_metadata
from cilink.encoding.scheme import SCHEME_V1, Scheme, key_fingerprint
from cilink.operate.demo import run_demo

SECRET = b"partners-shared-secret-0123456789"
OTHER = b"another-secret-entirely-9876543210"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_demo(tmp_path_factory.mktemp("enc") / "ws", people=600, seed=5, pipeline=False).workspace


def test_encoded_file_holds_no_plaintext_identifiers(demo: Path, tmp_path: Path) -> None:
    export = demo / "inbox" / "holyoke-schools" / "holyoke-schools.csv"
    out = tmp_path / "schools.enc.parquet"
    res = encode_export(demo / "cilink.toml", export, out, partner_id="holyoke-schools", secret=SECRET)
    assert res.encoded > 0 and res.rows_in == res.encoded + res.quarantined
    enc = pl.read_parquet(out)
    for col in ("first_name", "last_name", "dob", "ssn", "street", "phone", "email"):
        assert col not in enc.columns
    assert enc["enc_first_name"].dtype == pl.Binary and enc["enc_first_name"].drop_nulls()[0].__len__() == 128
    meta = read_metadata(out)
    assert meta is not None and meta["key_fingerprint"] == key_fingerprint(SECRET)
    assert SECRET.decode() not in out.read_bytes().decode("latin-1")
    # no plaintext name, birth date or SSN of the export appears anywhere in the file's bytes
    raw = pl.read_csv(export, infer_schema=False)
    blob = out.read_bytes().lower()
    names = [n.lower() for n in raw["Last Name"].drop_nulls().unique().to_list() if len(n) >= 5]
    assert names and not [n for n in names if n.encode() in blob]
    dobs = [d for d in raw["Birth Date"].drop_nulls().unique().to_list()][:200]
    assert dobs and not [d for d in dobs if d.encode() in blob or d.replace("-", "").encode() in blob]


def test_encoded_file_holds_no_ssn(demo: Path, tmp_path: Path) -> None:
    from cilink.config import load_config
    from cilink.ingest.batches import read_export, validate_batch

    partner = load_config(demo / "cilink.toml").partner("workforce-board")
    export = demo / "inbox" / "workforce-board" / "workforce-board.xlsx"
    out = tmp_path / "wf.enc.parquet"
    encode_export(demo / "cilink.toml", export, out, partner_id="workforce-board", secret=SECRET)
    staged = validate_batch(read_export(export, partner)[1], partner, "workforce").accepted
    ssns = staged["ssn"].drop_nulls().unique().to_list()
    blob = out.read_bytes()
    dashed = [f"{x[:3]}-{x[3:5]}-{x[5:]}" for x in ssns]
    assert len(ssns) > 20 and not [x for x in ssns + dashed if x.encode() in blob]
    assert pl.read_parquet(out)["enc_ssn"].drop_nulls().len() == len(staged["ssn"].drop_nulls())


def test_same_secret_links_other_secret_does_not() -> None:
    names = pl.Series(["katherine", "catherine", "jonathan", "maria", "mohammed", "li"] * 20)
    a = encode_values(names, None, secret=SECRET, field="first_name", m=1024, k=15)
    b = encode_values(names, None, secret=SECRET, field="first_name", m=1024, k=15)
    c = encode_values(names, None, secret=OTHER, field="first_name", m=1024, k=15)
    assert a.to_list() == b.to_list()
    assert dice(a[0], a[1]) > 0.7  # katherine ~ catherine under the same key
    same = [dice(x, y) for x, y in zip(a, b, strict=True)]
    cross = [dice(x, y) for x, y in zip(a, c, strict=True)]
    assert min(same) == 1.0
    # under another key, identical names look like random filters (Dice of unrelated filters ~ 0.1)
    assert max(cross) < 0.35 and float(np.mean(cross)) < 0.2
    assert key_fingerprint(SECRET) != key_fingerprint(OTHER)


def _population(n: int, seed: int) -> tuple[pl.DataFrame, list[str]]:
    """Records with Zipf-distributed first names, and the attacker's public-like ranked name list."""
    rng = np.random.default_rng(seed)
    pool = [f"{a}{b}{c}" for a in ("jo", "ma", "an", "li", "sa", "ke", "da", "ro") for b in ("se", "ri", "na")
            for c in ("h", "a", "")][:60]
    weights = 1 / np.arange(1, len(pool) + 1) ** 1.1
    weights /= weights.sum()
    first = rng.choice(pool, size=n, p=weights)
    dob = [dt.date(1960, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 20000, size=n)]
    # the public list: same population, different sample (e.g. a census or voter name list)
    public = pl.Series(rng.choice(pool, size=50_000, p=weights)).value_counts(sort=True).to_series(0)
    return pl.DataFrame({"first_name": first, "dob": dob}), public.to_list()


def frequency_attack(encoded: pl.Series, truth: pl.Series, public_ranking: list[str]) -> float:
    """Share of records re-identified by matching encodings, most frequent first, to the public ranking."""
    counts = pl.DataFrame({"e": encoded}).group_by("e").len().sort(["len", "e"], descending=[True, False])
    guess = dict(zip(counts["e"].to_list(), public_ranking, strict=False))
    hits = sum(1 for e, t in zip(encoded.to_list(), truth.to_list(), strict=True) if guess.get(e) == t)
    return hits / len(truth)


def attack_rates(n: int = 5000, seed: int = 11) -> dict[str, float]:
    """Re-identified share under the old scheme without hardening, with BLIP, with birth-year salting; and
    under the default (cross-salted) scheme without BLIP."""
    people, public = _population(n, seed)
    out = {}
    v1 = SCHEME_V1
    for label, scheme in (("unhardened", Scheme(blip=0.0, scheme=v1)), ("blip", Scheme(blip=0.01, scheme=v1)),
                          ("salted", Scheme(blip=0.0, salt_names=True, scheme=v1)),
                          ("blip+salted", Scheme(blip=0.01, salt_names=True, scheme=v1)),
                          ("cross-salted", Scheme(blip=0.0))):
        enc = encode_frame(people, Scheme(**{**scheme.__dict__, "fields": ("first_name",)}), SECRET, seed=b"t")
        out[label] = frequency_attack(enc["enc_first_name"], people["first_name"], public)
    return out


def test_hardening_lowers_frequency_attack() -> None:
    rates = attack_rates()
    assert rates["unhardened"] > 0.5
    assert rates["blip"] < 0.05
    assert rates["salted"] < rates["unhardened"] / 2
    assert rates["blip+salted"] <= rates["blip"] + 0.01
    assert rates["cross-salted"] < 0.01  # salted by the birth date: equal names no longer give equal filters
