"""Encode 1,000,000 standardized records (10 identifier fields) and report the time (target ≤ 2 min, 2 cores).

Run: ``.venv/bin/python -m benchmarks.encode_1m [--rows N]``. Records are synthetic but shaped like the
demo's: names from a few thousand distinct values, distinct SSNs/phones/e-mails, birth dates over 80 years.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import numpy as np
import polars as pl

from cilink.encoding.encode import encode_frame
from cilink.encoding.scheme import Scheme


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    frame = records(args.rows)
    t0 = time.perf_counter()
    out = encode_frame(frame, Scheme(), b"benchmark-secret-0123456789", seed=b"bench")
    secs = time.perf_counter() - t0
    print(json.dumps({"rows": out.height, "fields": len(Scheme().fields), "seconds": round(secs, 1)}))


if __name__ == "__main__":
    main()
