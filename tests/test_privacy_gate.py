"""The privacy gate refuses leaks (exit 5, nothing written), and real releases hold no identifier."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cilink.errors import PrivacyGateRefused
from cilink.export import export_release
from cilink.export.columns import ColumnSpec
from cilink.export.generalize import RESTRICTED_ZIP3, generalize_date, top_code_cutoff, zip3_expr
from cilink.export.kanonymity import KAnonymityUnreachable, anonymize, min_class_size
from cilink.export.privacy_gate import Candidates, GateRule, check_metadata, check_values, lookup_failures
from cilink.export.restricted_values import RestrictedValues
from cilink.ledger import Ledger
from tests.release_fixtures import RESEARCH, build_release_workspace, make_persons, make_staged, write_fixture

SECRET = "test-secret-not-for-production"


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", SECRET)
        return build_release_workspace(tmp_path_factory.mktemp("gate"), n_persons=500, seed=21)


def _nothing_written(ws) -> None:
    assert list(ws.releases_dir.iterdir()) == [], "a refused export must leave releases/ untouched"
    assert not list(ws.restricted.rglob(".*.tmp")), "and no staging directory behind"


def _rules(exc: pytest.ExceptionInfo[PrivacyGateRefused]) -> set[str]:
    return {line.split(": ")[-1].split(" (")[0] for line in exc.value.failures}


def test_gate_refuses_a_mapped_name_column(fixture):
    names = fixture.staged["school"].get_column("first_name")

    def add_first_name(table: str, df: pl.DataFrame) -> pl.DataFrame:
        if table != "events":
            return df
        return df.with_columns(pl.Series("first_name", names.sample(df.height, with_replacement=True, seed=1)))

    with pytest.raises(PrivacyGateRefused) as exc:
        export_release(fixture.ws, audience=RESEARCH, release_id="leak-name", tamper=add_first_name)
    assert exc.value.exit_code == 5
    assert {"pii_column_name", "undocumented_column", "name_value"} <= _rules(exc)
    assert all("events: column 'first_name'" in f for f in exc.value.failures)
    for value in names.unique().to_list():  # the message names the column and the rule, never a value
        assert not re.search(rf"\b{re.escape(value)}\b", str(exc.value))
    _nothing_written(fixture.ws)
    with Ledger(fixture.ws.ledger_path) as ledger:
        refused = [e for e in ledger.audit_entries() if e["command"] == "export" and e["outcome"] == "refused"]
    assert refused and "name_value" in json.dumps(refused[-1]["details"])


def test_gate_refuses_names_under_an_innocent_column_name(fixture):
    last = fixture.staged["housing"].get_column("last_name")

    def add_note(table: str, df: pl.DataFrame) -> pl.DataFrame:
        if table != "spells.parquet":
            return df
        return df.with_columns(pl.Series("note", last.sample(df.height, with_replacement=True, seed=2)))

    with pytest.raises(PrivacyGateRefused) as exc:
        export_release(fixture.ws, audience=RESEARCH, release_id="leak-note", tamper=add_note)
    assert "name_value" in _rules(exc)
    _nothing_written(fixture.ws)


def test_gate_refuses_a_partner_id_in_a_documented_events_column(fixture):
    """A school's student id leaking through school_id (a documented, free-text column)."""
    ids = fixture.staged["school"].get_column("source_person_id")

    def leak(table: str, df: pl.DataFrame) -> pl.DataFrame:
        if table != "events":
            return df
        return df.with_columns(pl.when(pl.col("domain") == "school")
                               .then(pl.Series(ids.sample(df.height, with_replacement=True, seed=3)))
                               .otherwise(pl.col("school_id")).alias("school_id"))

    with pytest.raises(PrivacyGateRefused) as exc:
        export_release(fixture.ws, audience=RESEARCH, release_id="leak-id", tamper=leak)
    assert exc.value.failures and all("column 'school_id': source_id_value" in f for f in exc.value.failures)
    _nothing_written(fixture.ws)


def test_gate_refuses_person_id_as_key(fixture):
    pids = fixture.crosswalk.get_column("person_id").unique().sort()

    def swap(table: str, df: pl.DataFrame) -> pl.DataFrame:
        if table != "persons.parquet":
            return df
        return df.with_columns(pl.Series("person_key", pids.head(df.height)))

    with pytest.raises(PrivacyGateRefused) as exc:
        export_release(fixture.ws, audience=RESEARCH, release_id="leak-pid", tamper=swap)
    assert {"source_id_value", "value_outside_pattern"} <= _rules(exc)
    _nothing_written(fixture.ws)


def test_cli_exits_5_when_k_cannot_be_reached_without_suppression(tmp_path, cli):
    """Suppression disallowed: unique persons (sex X, age outliers) cannot be fixed by generalization."""
    rng = np.random.default_rng(4)
    persons = make_persons(500, rng).with_columns(  # one person with sex X: unique at every generalization
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("X")).otherwise(pl.col("sex")).alias("sex"))
    fx = write_fixture(tmp_path / "ws", persons, make_staged(persons, rng), seed=4,
                       export_extra="max_suppression = 0\n")
    res = cli("-w", fx.ws.root, "export", "--audience", RESEARCH, "--release-id", "strict",
             env={"CILINK_SECRET": SECRET})
    assert res.returncode == 5, res.stderr
    assert "k_anonymity" in res.stderr and "persons.parquet" in res.stderr
    assert "Error: privacy gate refused" in res.stderr
    _nothing_written(fx.ws)
    names = set(fx.persons["first_name"]) | set(fx.persons["last_name"])
    assert not names & set(re.findall(r"[a-z]+", res.stderr.lower()))
    # with the default suppression limit the same data is released
    ok = cli("-w", fx.ws.root, "export", "--audience", RESEARCH, "--release-id", "lenient",
             env={"CILINK_SECRET": SECRET})
    assert ok.returncode == 5  # config still says 0: nothing changes without a config change
    (fx.ws.root / "cilink.toml").write_text((fx.ws.root / "cilink.toml").read_text()
                                            .replace("max_suppression = 0", "max_suppression = 0.05"))
    ok = cli("-w", fx.ws.root, "export", "--audience", RESEARCH, "--release-id", "lenient",
             env={"CILINK_SECRET": SECRET})
    assert ok.returncode == 0, ok.stderr


# --- a realistic release holds none of the staged identifiers ---------------------------------------------

def _identifiers(fx) -> dict[str, set[str]]:
    staged = pl.concat([df.select("first_name", "middle_name", "last_name", "ssn", "dob", "street", "phone",
                                  "email", "source_person_id") for df in fx.staged.values()])
    dob = staged["dob"].drop_nulls()
    hs = fx.staged["housing"]
    return {
        "name": set(staged["first_name"]) | set(staged["last_name"]) | set(staged["middle_name"]),
        "ssn": set(staged["ssn"].drop_nulls()),
        "dob": set(dob.dt.strftime("%Y-%m-%d")) | set(dob.dt.strftime("%m/%d/%Y")) | set(dob.dt.strftime("%Y%m%d")),
        "street": set(staged["street"].drop_nulls()),
        "phone": set(staged["phone"].drop_nulls()),
        "email": set(staged["email"].drop_nulls()),
        "source_id": set(staged["source_person_id"]) | set(hs["enrollment_id"]) | set(hs["household_id"])
        | set(fx.crosswalk["record_id"]) | set(fx.crosswalk["person_id"]),
    }


def _cells(path: Path) -> set[str]:
    table = pq.read_table(path)
    out: set[str] = set()
    for col in table.columns:
        s = pl.from_arrow(col)
        if isinstance(s.dtype, pl.List):
            s = s.explode()
        out |= {str(v) for v in s.drop_nulls().unique().to_list()}
    return out


def test_no_identifier_in_any_file_of_a_release(tmp_path):
    fx = build_release_workspace(tmp_path / "ws", n_persons=1500, seed=8)
    r = export_release(fx.ws, audience=RESEARCH, release_id="scan")
    ids = _identifiers(fx)
    everything = set().union(*ids.values())
    files = sorted(p for p in r.path.rglob("*") if p.is_file())
    assert len(files) == 10
    def contains_any(haystack: list[str], needles: set[str]) -> bool:
        # Aho-Corasick over all needles at once (polars), so scanning every file stays fast
        return bool(pl.Series(haystack, dtype=pl.String).str.contains_any(sorted(needles)).any())

    long_ids = {kind: {v for v in ids[kind] if len(v) >= 6} for kind in ("ssn", "dob", "source_id", "phone",
                                                                         "email", "street")}
    for f in files:
        if f.suffix == ".parquet":
            cells = _cells(f)
            assert not cells & everything, (f.name, sorted(cells & everything)[:3])
            # no cell even contains an SSN, DOB, source id, phone or e-mail
            for kind in ("ssn", "dob", "source_id", "phone", "email"):
                assert not contains_any(sorted(cells), long_ids[kind]), (f.name, kind)
        else:
            text = f.read_text()
            for kind in ("ssn", "dob", "source_id", "phone", "email", "street"):
                assert not contains_any([text], long_ids[kind]), (f.name, kind)
            words = set(re.findall(r"[a-z]+", text.lower()))
            assert not words & ids["name"], (f.name, sorted(words & ids["name"])[:3])
        # and the raw bytes (compressed or not) carry none of the longer identifiers
        raw = f.read_bytes().decode("latin-1")
        for kind in ("ssn", "source_id", "email"):
            assert not contains_any([raw], {v for v in ids[kind] if len(v) >= 9}), (f.name, kind)


# --- rules in isolation -------------------------------------------------------------------------------------

def _rv(**kw: list) -> RestrictedValues:
    base = {k: pl.Series(k, kw.get(k, []), dtype=pl.String) for k in
            ("names", "ssn", "dob_text", "street", "phone", "email", "source_ids")}
    return RestrictedValues(dob=pl.Series("dob", kw.get("dob", []), dtype=pl.Date), **base)


@pytest.mark.parametrize(("values", "rule"), [
    (["123-45-6789"], GateRule.SSN_PATTERN),
    (["987654321"], GateRule.SSN_PATTERN),
    (["(413) 555-0199"], GateRule.PHONE_PATTERN),
    (["someone@example.org"], GateRule.EMAIL_PATTERN),
    (["born 2011-04-03"], GateRule.DATE_PATTERN),
    (["4/3/2011"], GateRule.DATE_PATTERN),
])
def test_identifier_shapes_in_free_text(values, rule):
    failures = check_values("events", "program", pl.Series(values), None, _rv())
    assert rule in {f.rule for f in failures}


def test_lookups_by_kind():
    rv = _rv(ssn=["234567890"], phone=["4135550199"], email=["a.b@example.org"], street=["12 MAPLE ST"],
             names=["garcia", "maria garcia"], source_ids=["S0001234", "s0001234"],
             dob=[dt.date(2011, 4, 3)], dob_text=["2011-04-03"])
    spec = ColumnSpec("program", pl.String(), "free text")
    got = {f.rule for f in check_values("events", "program", pl.Series(
        ["234-56-7890", "413.555.0199", "A.B@example.org", "12  maple st", "Garcia, Maria", "S0001234",
         "2011-04-03"]), spec, rv)}
    assert {GateRule.SSN_VALUE, GateRule.PHONE_VALUE, GateRule.EMAIL_VALUE, GateRule.STREET_VALUE,
            GateRule.SOURCE_ID_VALUE, GateRule.DOB_VALUE} <= got
    assert GateRule.NAME_VALUE in {f.rule for f in check_values("t", "c", pl.Series(["Maria Garcia"]), spec, rv)}
    ints = {f.rule for f in check_values("t", "n", pl.Series([234567890]), None, rv)}
    assert GateRule.SSN_VALUE in ints
    dates = {f.rule for f in check_values("t", "d", pl.Series([dt.date(2011, 4, 3)]), None, rv)}
    assert dates == {GateRule.DAY_PRECISION_DATE, GateRule.DOB_VALUE}


def test_id_lookups_at_scale_find_every_id_in_any_case():
    """Hundreds of thousands of ids as long as the keys are narrowed by hash before they are compared as text:
    an id typed in another case, and one equal to a key, are still found — and only those."""
    rng = np.random.default_rng(4)
    hexes = [f"{v:032x}" for v in rng.integers(0, 2**62, 120_000, dtype=np.int64)]
    keys, ids = hexes[:60_000], hexes[60_000:]
    ids += [keys[7], keys[11].upper(), keys[13][:31]]  # equal; upper-cased; one character short
    failures = lookup_failures([Candidates("persons.parquet", "person_key", "key", pl.Series("v", keys))],
                               _rv(source_ids=ids))
    assert [(f.rule, f.count) for f in failures] == [(GateRule.SOURCE_ID_VALUE, 2)]


def test_a_shared_identifier_is_a_restricted_id(tmp_path):
    """A statewide student id (``shared_id``) is looked up like the partner's own ids: a release that carries
    one, in any case, is refused."""
    from cilink.export.restricted_values import collect_restricted_values
    from tests.link_synth import new_workspace, partner_records, population, stage_batch

    ws = new_workspace(tmp_path / "ws", ["a"])
    records = partner_records(population(5, seed=2), "a", seed=1).with_columns(
        pl.Series("shared_id", ["SASID1001", "SASID1002", None, "SASID1004", "SASID1005"]))
    stage_batch(ws, "a", records)
    rv = collect_restricted_values(ws, None)
    assert {"SASID1001", "SASID1005"} <= set(rv.source_ids.to_list())
    spec = ColumnSpec("program", pl.String(), "free text")
    got = {f.rule for f in check_values("events", "program", pl.Series(["sasid1002", "P-17"]), spec, rv)}
    assert got == {GateRule.SOURCE_ID_VALUE}


def test_vocabulary_columns_are_checked_by_vocabulary_not_by_name():
    """'white' is a race category and a surname: the vocabulary, not the name list, decides."""
    rv = _rv(names=["white"])
    spec = ColumnSpec("race_ethnicity", pl.String(), "", vocabulary=("white", "other"), separator=";")
    assert check_values("persons", "race_ethnicity", pl.Series(["white", "other;white"]), spec, rv) == []
    bad = check_values("persons", "race_ethnicity", pl.Series(["white;maria"]), spec, rv)
    assert {f.rule for f in bad} == {GateRule.OUTSIDE_VOCABULARY}


def test_small_cells_in_metadata():
    doc = {"inputs": {"batches": [{"rows_in": 3, "accepted": 250}]}, "profile": {"k": 5}}
    failures = check_metadata("manifest.json", doc, _rv(), min_cell=11,
                              is_aggregate=lambda p: p.startswith("inputs."))
    assert [f.rule for f in failures] == [GateRule.SMALL_CELL]


# --- generalization and k-anonymity -------------------------------------------------------------------------

def test_restricted_zip3_and_top_coding():
    zips = pl.DataFrame({"z": ["03601", "01040", "89301", "1040", None]})
    out = zips.select(zip3_expr(pl.col("z"))).to_series().to_list()
    assert out == ["000", "010", "000", "104", None]
    assert len(RESTRICTED_ZIP3) == 17
    assert top_code_cutoff(dt.date(2025, 6, 30)) == 1936
    month = pl.select(generalize_date(pl.lit(dt.date(2024, 9, 3)), "month")).item()
    year = pl.select(generalize_date(pl.lit(dt.date(2024, 9, 3)), "year")).item()
    assert (month, year) == ("2024-09", 2024)


def _qi(rows: list[tuple[int | None, str | None, str | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"_birth_year": pl.Int32, "sex": pl.String, "_race": pl.String,
                                      "_zip5": pl.String}, orient="row")


def test_anonymize_reaches_k_and_refuses_without_suppression():
    rows = [(2010 + i % 3, "F", "white", "01040") for i in range(40)] + [(1950, "X", "asian", "59001")]
    out, res = anonymize(_qi(rows), k=5, max_suppression=0.05, zip5=False, cutoff=1935)
    assert res.suppressed == 1 and out.filter(pl.col("qi_suppressed"))["sex"].to_list() == [None]
    assert min_class_size(out) >= 5
    with pytest.raises(KAnonymityUnreachable):
        anonymize(_qi(rows), k=5, max_suppression=0.0, zip5=False, cutoff=1935)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(1925, 2020)), st.sampled_from(["F", "M", "X", None]),
                          st.sampled_from(["white", "asian", "hispanic_latino;white", None]),
                          st.sampled_from(["01040", "01013", "03601", None])), min_size=1, max_size=60),
       st.integers(2, 6))
def test_min_class_size_matches_a_naive_count(rows, k):
    """Property: our polars measurement equals counting equivalence classes by hand (nulls are a value)."""
    try:
        out, _ = anonymize(_qi(rows), k=k, max_suppression=1.0, zip5=True, cutoff=1935)
    except KAnonymityUnreachable:
        return
    kept = out.filter(~pl.col("qi_suppressed"))
    cols = ["birth_year_min", "birth_year_max", "age_90_plus", "sex", "race_ethnicity", "zip5", "zip3", "state"]
    naive = Counter(tuple(r) for r in kept.select(cols).iter_rows())
    assert min_class_size(out) == (min(naive.values()) if naive else None)
    assert not naive or min(naive.values()) >= k
