"""The benchmark harness's record of its runs: a run whose every row later runs re-measured is dropped."""

from __future__ import annotations

import datetime as dt

from benchmarks import report

WHEN = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def test_a_run_all_of_whose_rows_were_re_measured_leaves_the_header() -> None:
    full = {"command": "python -m benchmarks", "date": "2026-11-24 07:10 UTC", "minutes": 23.3, "load": 0.8,
            "rows": 28}  # recorded before runs kept their rows' keys: always kept
    one_m = report.run_record("--sizes 1000000 --merge", WHEN, 4.0, 0.1,
                              ["scale|1M|cilink|link", "scale|1M|splink|link"])
    other = report.run_record("--sections febrl4 --merge", WHEN, 1.0, 0.1, ["febrl4|FEBRL4|cilink|link"])
    runs = report.add_run([full], one_m)
    runs = report.add_run(runs, other)
    assert runs == [full, one_m, other]  # nothing re-measured yet
    again = report.run_record("--sizes 1000000 --merge", WHEN, 4.0, 0.1,
                              ["scale|1M|cilink|link", "scale|1M|splink|link", "incremental|1M|cilink|link"])
    runs = report.add_run(runs, again)
    assert runs == [full, other, again]
    assert again["rows"] == 3
    header = report.header({"runs": runs, "machine": "m", "versions": "v", "timeout_s": 1, "memory_gb": 1})
    assert header.count("--sizes 1000000") == 1 and "which re-measured 3 rows" in header
