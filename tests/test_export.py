"""`cilink export` of the research tier (full event detail) end to end on synthetic restricted data: layout,
readers, dictionary, reproducibility, keys, and what the release says about itself."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

import cilink
from cilink.errors import UsageError, WorkspaceError
from cilink.export import export_release
from cilink.export.person_keys import KEY_HEX_CHARS, audience_key
from cilink.export.readme import EXAMPLE
from cilink.ledger import Ledger
from tests.release_fixtures import RESEARCH, build_release_workspace

TABLES = ["persons.parquet", "spells.parquet", "panel.parquet"]


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", "test-secret-not-for-production")
        return build_release_workspace(tmp_path_factory.mktemp("ws"), n_persons=600, seed=3)


@pytest.fixture(scope="module")
def release(fixture):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", "test-secret-not-for-production")
        return export_release(fixture.ws, audience=RESEARCH, release_id="base")


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_release_layout(release):
    files = _files(release.path)
    assert files == sorted([
        "DICTIONARY.md", "README.md", "dictionary.json", "manifest.json", "panel.parquet", "persons.parquet",
        "spells.parquet", "events/domain=housing/part-0.parquet", "events/domain=school/part-0.parquet",
        "events/domain=workforce/part-0.parquet"])
    manifest = json.loads((release.path / "manifest.json").read_text())
    assert set(manifest["files"]) == set(files) - {"manifest.json"}
    for rel, meta in manifest["files"].items():
        assert hashlib.sha256((release.path / rel).read_bytes()).hexdigest() == meta["sha256"]
    for key in ("release_id", "cilink_version", "config_sha256", "profile", "inputs", "row_counts", "link",
                "link_model", "anonymization", "as_of"):
        assert key in manifest
    assert manifest["release_id"] == "base"
    assert len(manifest["inputs"]["batches"]) == 3
    assert manifest["anonymization"]["achieved_k"] >= 5


def test_dictionary_documents_every_column(release):
    dictionary = json.loads((release.path / "dictionary.json").read_text())
    documented = {t["table"]: {c["name"]: c["type"] for c in t["columns"]} for t in dictionary["tables"]}
    for name in TABLES:
        schema = pq.read_schema(release.path / name)
        assert set(schema.names) == set(documented[name]), name
    for part in (release.path / "events").glob("domain=*/*.parquet"):
        schema = pq.read_schema(part)
        assert set(schema.names) | {"domain"} == set(documented["events"])
    # types as documented, checked through polars
    for name in TABLES:
        for col, dtype in pl.read_parquet_schema(release.path / name).items():
            from cilink.export.dictionary import dtype_name

            assert dtype_name(dtype) == documented[name][col], (name, col)
    md = (release.path / "DICTIONARY.md").read_text()
    for cols in documented.values():
        for col in cols:
            assert f"`{col}`" in md


def test_loads_in_polars_pandas_duckdb(release):
    root = release.path
    rows = json.loads((root / "manifest.json").read_text())["row_counts"]
    for name in TABLES:
        assert pl.read_parquet(root / name).height == rows[name]
        assert len(pd.read_parquet(root / name)) == rows[name]
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{root / name}')").fetchall()[0][0] == rows[name]
    ev_pl = pl.scan_parquet(root / "events", hive_partitioning=True).collect()
    ev_pd = pd.read_parquet(root / "events")
    ev_db = duckdb.sql(f"SELECT domain, count(*) FROM read_parquet('{root}/events/*/*.parquet', "
                       "hive_partitioning = true) GROUP BY domain ORDER BY domain").fetchall()
    assert ev_pl.height == len(ev_pd) == rows["events"] == sum(n for _, n in ev_db)
    assert [d for d, _ in ev_db] == ["housing", "school", "workforce"]
    assert set(ev_pd["domain"].astype(str)) == {"housing", "school", "workforce"}
    persons_pd = pd.read_parquet(root / "persons.parquet")
    assert persons_pd["person_key"].is_unique
    # joins across tables work in DuckDB without cilink
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{root}/panel.parquet') p JOIN "
                   f"read_parquet('{root}/persons.parquet') USING (person_key)").fetchall()[0][0]
    assert n == rows["panel.parquet"]


def test_open_release_and_readme_example(release):
    r = cilink.open_release(release.path, verify=True)
    persons, events, _spells, panel = r
    assert isinstance(persons, pl.LazyFrame)
    assert events.collect_schema()["domain"] == pl.String
    assert panel.select(pl.len()).collect().item() == release.rows["panel.parquet"]
    readme = (release.path / "README.md").read_text()
    assert EXAMPLE.format(path="releases/base") in readme
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(EXAMPLE.format(path=release.path), {})
    assert "chronically_absent" in out.getvalue()


def test_open_release_verify_detects_tampering(fixture, tmp_path):
    r = export_release(fixture.ws, audience=RESEARCH, release_id="tampered")
    with open(r.path / "spells.parquet", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(WorkspaceError):
        cilink.open_release(r.path, verify=True)


def test_reproducible_byte_for_byte(tmp_path):
    a = build_release_workspace(tmp_path / "a", n_persons=500, seed=5)
    b = build_release_workspace(tmp_path / "b", n_persons=500, seed=5)
    ra = export_release(a.ws, audience=RESEARCH, release_id="same")
    rb = export_release(b.ws, audience=RESEARCH, release_id="same")
    for rel in _files(ra.path):
        assert (ra.path / rel).read_bytes() == (rb.path / rel).read_bytes(), rel
    # a different release id changes only the files that name it
    rc = export_release(a.ws, audience=RESEARCH, release_id="other")
    changed = [rel for rel in _files(ra.path) if (ra.path / rel).read_bytes() != (rc.path / rel).read_bytes()]
    assert changed == ["README.md", "manifest.json"]


def test_release_ids_never_overwritten(fixture, release):
    with pytest.raises(UsageError):
        export_release(fixture.ws, audience=RESEARCH, release_id="base")
    with pytest.raises(UsageError):
        export_release(fixture.ws, audience=RESEARCH, release_id="../escape")


def test_person_key_is_hmac_of_person_id_and_stable(fixture, release):
    later = export_release(fixture.ws, audience=RESEARCH, release_id="later")
    keys_a = pl.read_parquet(release.path / "persons.parquet").get_column("person_key")
    keys_b = pl.read_parquet(later.path / "persons.parquet").get_column("person_key")
    assert keys_a.to_list() == keys_b.to_list()
    key = audience_key(fixture.ws, RESEARCH)
    expected = sorted(hmac.new(key, pid.encode(), hashlib.sha256).hexdigest()[:KEY_HEX_CHARS]
                      for pid in fixture.crosswalk.get_column("person_id").unique())
    assert sorted(keys_a.to_list()) == expected
    with Ledger(fixture.ws.ledger_path) as ledger:
        rows = ledger.conn.execute("SELECT release_id FROM releases").fetchall()
        audit = [e for e in ledger.audit_entries() if e["command"] == "export"]
    assert {"base", "later"} <= {r[0] for r in rows}
    assert any(e["outcome"] == "ok" for e in audit)


def test_audience_gets_its_own_keys_and_profile(tmp_path, monkeypatch):
    fx = build_release_workspace(tmp_path / "ws", n_persons=900, seed=7, export_extra=(
        '[[export.audiences]]\nid = "dua-university"\nsecret_env = "DUA_SECRET"\nprofile = "limited"\n'
        'tier = "research"\nrecipient = "A University"\nagreement = "DUA-7"\npurpose = "a study"\n'
        'expires = 2099-01-01\n'))
    with pytest.raises(Exception, match="DUA_SECRET"):
        export_release(fx.ws, audience="dua-university", release_id="x")
    monkeypatch.setenv("DUA_SECRET", "another-secret-for-the-dua-audience")
    limited = export_release(fx.ws, audience="dua-university", release_id="dua")
    other = export_release(fx.ws, audience=RESEARCH, release_id="other")  # safe-harbor profile, own keys
    p_lim = pl.read_parquet(limited.path / "persons.parquet")
    p_def = pl.read_parquet(other.path / "persons.parquet")
    assert "zip5" in p_lim.columns and "zip5" not in p_def.columns
    assert set(p_lim["person_key"]).isdisjoint(set(p_def["person_key"]))
    assert limited.profile == "limited"
    with pytest.raises(Exception, match="unknown audience"):
        export_release(fx.ws, audience="nobody")


def test_year_precision_gives_years_and_a_yearly_panel(tmp_path):
    fx = build_release_workspace(tmp_path / "ws", n_persons=500, seed=9,
                                 export_extra='event_date_precision = "year"\n')
    r = export_release(fx.ws, audience=RESEARCH, release_id="y")
    ev = pl.scan_parquet(r.path / "events", hive_partitioning=True).collect()
    assert ev.schema["entry_year"] == pl.Int16 and "entry_month" not in ev.columns
    panel = pl.read_parquet(r.path / "panel.parquet")
    assert panel["quarter"].null_count() == panel.height
    assert panel["period"].str.contains(r"^\d{4}$").all()
    assert "first_seen_year" in pl.read_parquet_schema(r.path / "persons.parquet")


def test_stale_crosswalk_is_a_workspace_error(tmp_path):
    fx = build_release_workspace(tmp_path / "ws", n_persons=200, seed=11)
    from cilink.generations import new_link_generation
    from cilink.link.outputs import write_crosswalk

    with new_link_generation(fx.ws) as gen:
        write_crosswalk(gen.link_dir, fx.crosswalk.head(10))
    with pytest.raises(WorkspaceError, match="out of date"):
        export_release(fx.ws, audience=RESEARCH)
    assert not any((fx.ws.releases_dir).iterdir())


def test_cli_export_json(fixture, cli):
    res = cli("-w", fixture.ws.root, "export", "--audience", RESEARCH, "--release-id", "cli-json", "--json",
              env={"CILINK_SECRET": "test-secret-not-for-production"})
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["release_id"] == "cli-json" and doc["rows"]["persons.parquet"] == 600


def test_analyst_docs_carry_the_same_example():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "analysts.md").read_text()
    assert EXAMPLE.format(path="releases/2026-11-23T120000Z") in docs
