"""`make bench-encoded` (benchmarks/encoded.py): the harness at a tiny size, its CSV and its README table."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from benchmarks import encoded

ROOT = Path(__file__).resolve().parents[1]


def test_harness_measures_the_three_settings_and_renders_them_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)  # never the real README
    before = readme.read_text()
    real_readme = (ROOT / "README.md").stat().st_mtime_ns
    work = tmp_path / "work"

    rows = encoded.main(["--people", "300", "--seed", "1", "--work", str(work), "--out", str(tmp_path),
                         "--readme", str(readme)])

    with (tmp_path / "encoded.csv").open(newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["setting"] for r in written] == [s.label for s in encoded.SETTINGS]
    assert [r["encoded"] for r in written] == ["", "workforce-board", "holyoke-schools+workforce-board+coc-hmis"]
    for r in written:
        assert r["status"] == "ok", r
        assert 0 < float(r["f1"]) <= 1 and 0 < float(r["precision"]) <= 1 and 0 < float(r["recall"]) <= 1
        assert int(r["over_merged"]) >= 0 and int(r["records"]) > 100 and int(r["candidate_pairs"]) > 0
        assert float(r["wall_s"]) == pytest.approx(float(r["ingest_s"]) + float(r["link_s"]), abs=0.02)
        assert float(r["peak_mb"]) > 0
    assert (tmp_path / "encoded.meta.json").is_file()
    # the encoded settings really linked `cilink encode` files: the demo replaced those partners' exports
    mixed = work / "runs" / "encoded-workforce-encoded-300" / "ws"
    assert [p.name for p in (mixed / "inbox" / "workforce-board").glob("*.parquet")] == \
        ["workforce-board.encoded.parquet"]
    assert not list((work / "runs" / "encoded-plaintext-300" / "ws" / "inbox").rglob("*.encoded.parquet"))
    assert len(list((work / "runs" / "encoded-all-encoded-300" / "ws" / "inbox").rglob("*.encoded.parquet"))) == 3

    # the table replaced only what is between the markers
    text = readme.read_text()
    head, rest = text.split(encoded.START)
    inside, tail = rest.split(encoded.END)
    assert head == before.split(encoded.START)[0] and tail == before.split(encoded.END)[1]
    lines = [ln for ln in inside.splitlines() if ln.startswith("| ")]
    assert "F1 vs all plaintext" in lines[0]
    assert [ln.split(" | ")[0].removeprefix("| ") for ln in lines[1:]] == [s.label for s in encoded.SETTINGS]
    assert f"{rows[1].f1 - rows[0].f1:+.4f}" in lines[2] and f"{rows[2].f1 - rows[0].f1:+.4f}" in lines[3]
    assert "within 0.02 F1 of all-plaintext at 5,000 people" in inside
    assert (ROOT / "README.md").stat().st_mtime_ns == real_readme

    # --render-only redraws the same table from the CSV, here into a README without the markers yet
    bare = tmp_path / "bare.md"
    bare.write_text("# x\n")
    again = encoded.main(["--render-only", "--out", str(tmp_path), "--readme", str(bare)])
    assert [(r.setting, r.f1, r.over_merged) for r in again] == [(r.setting, r.f1, r.over_merged) for r in rows]
    assert encoded.table(rows) in bare.read_text() and bare.read_text().startswith("# x\n")
