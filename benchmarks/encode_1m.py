"""Encode 1,000,000 standardized records (10 identifier fields) and report the time (target ≤ 2 min, 2 cores).

Run: ``.venv/bin/python -m benchmarks.encode_1m [--rows N]``. Records are synthetic but shaped like the
demo's: names from a few thousand distinct values, distinct SSNs/phones/e-mails, birth dates over 80 years.

``--audit [--scheme v1]``: also time `cilink encode --audit` (``cilink.encoding.audit``) on the encoded
records, with first and last names drawn from the public frequency list itself — the attacker's best case,
a list that is exactly the population's distribution — and print the re-identified shares.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import numpy as np
import polars as pl

from cilink.encoding import attacks
from cilink.encoding.audit import audit_frame
from cilink.encoding.encode import encode_frame
from cilink.encoding.scheme import SCHEME_V1, Scheme


def records(n: int, seed: int = 1) -> pl.DataFrame:
    """n synthetic standardized records."""
    rng = np.random.default_rng(seed)
    syl = np.array(["an", "be", "ca", "do", "el", "fa", "gi", "ho", "is", "jo", "ka", "lu", "ma", "ne", "or", "pe"])
    def names(parts: int, distinct: int) -> np.ndarray:
        pool = np.array(["".join(rng.choice(syl, parts)) for _ in range(distinct)])
        return pool[rng.zipf(1.3, n) % distinct]
    digits = lambda width: pl.Series(rng.integers(0, 10**width, n)).cast(pl.String).str.zfill(width)  # noqa: E731
    return pl.DataFrame({
        "source_person_id": pl.Series(np.arange(n)).cast(pl.String),
        "first_name": names(3, 3000), "middle_name": names(3, 3000), "last_name": names(4, 8000),
        "dob": pl.Series(rng.integers(0, 29000, n)).cast(pl.Int32).cast(pl.Date)
        + (dt.date(1940, 1, 1) - dt.date(1970, 1, 1)),
        "ssn": digits(9), "ssn_last4": digits(4),
        "street": pl.Series(rng.integers(1, 3000, n)).cast(pl.String) + " " + names(3, 2000) + " ST",
        "zip5": pl.Series(rng.integers(1000, 1100, n)).cast(pl.String).str.zfill(5),
        "phone": "413" + digits(7), "email": names(3, 50000) + "@example.org",
    })


def with_public_names(frame: pl.DataFrame, seed: int = 2) -> pl.DataFrame:
    """``frame`` with first and last names drawn from the shipped public frequency list's shares."""
    rng = np.random.default_rng(seed)
    drawn = {}
    for field in ("first_name", "last_name"):
        public = attacks.public_names(field)
        drawn[field] = np.array(public.values)[rng.choice(len(public.values), frame.height,
                                                           p=public.shares / public.shares.sum())]
    return frame.with_columns(pl.Series("first_name", drawn["first_name"]), pl.Series("last_name", drawn["last_name"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--audit", action="store_true", help="time the encoding audit too")
    ap.add_argument("--scheme", choices=("v2", "v1"), default="v2")
    args = ap.parse_args()
    frame = records(args.rows)
    scheme = Scheme(scheme=SCHEME_V1) if args.scheme == "v1" else Scheme()
    if args.audit:
        frame = with_public_names(frame)
    t0 = time.perf_counter()
    out = encode_frame(frame, scheme, b"benchmark-secret-0123456789", seed=b"bench")
    secs = time.perf_counter() - t0
    result: dict[str, object] = {"rows": out.height, "fields": len(scheme.fields), "scheme": scheme.scheme,
                                 "seconds": round(secs, 1)}
    if args.audit:
        audited = audit_frame(out, frame, scheme)
        result["audit"] = audited.to_dict()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
