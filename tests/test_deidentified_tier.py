"""The deidentified tier on the demo, attacked as a contributing partner would attack it.

Each attack here is written from what the attacker holds: the school district's own raw export (the CSV it
sent, as it sits in its outbox) and the release files (Parquet tables, manifest.json, dictionary.json). It
never imports cilink's disclosure code. The same attack against the research tier (full event detail)
singles out most students, which shows the attack is strong enough to fail if the gate were loosened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

SECRET = "test-secret-deidentified-tier"
RESEARCH = """
[[export.audiences]]
id = "university"
tier = "research"
secret_env = "CILINK_SECRET"
recipient = "Example University evaluation team"
agreement = "DUA-2026-07"
purpose = "program evaluation"
expires = 2099-12-31

[[export.audiences]]
id = "analysts-b"
secret_env = "CILINK_SECRET_B"
"""


def cilink(ws: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CILINK_SECRET": SECRET, "CILINK_SECRET_B": SECRET + "-b"}
    cmd = [sys.executable, "-m", "cilink", *(["-w", str(ws)] if ws else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


@pytest.fixture(scope="module")
def demo5k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("demo5k") / "ws"
    done = cilink(None, "demo", str(ws), "--people", "5000", "--seed", "1")
    assert done.returncode == 0, done.stderr
    with open(ws / "cilink.toml", "a", encoding="utf-8") as fh:
        fh.write(RESEARCH)
    return ws


def only_release(ws: Path, name: str | None = None) -> Path:
    releases = sorted(p for p in (ws / "releases").iterdir() if p.is_dir())
    return ws / "releases" / name if name else releases[0]


# --- the attacker: the school district ---------------------------------------------------------------

def district_export(ws: Path) -> pl.DataFrame:
    """The district's own export, as it sent it."""
    return pl.read_csv(ws / ".cilink" / "inbox" / "holyoke-schools" / "processed" / "holyoke-schools.csv",
                       infer_schema=False)


def _grade_band(g: pl.Expr) -> pl.Expr:
    n = g.cast(pl.Int32, strict=False)
    return (pl.when(g.is_in(["PK", "K"])).then(pl.lit("PK-K")).when(n <= 5).then(pl.lit("1-5"))
            .when(n <= 8).then(pl.lit("6-8")).otherwise(pl.lit("9-12")))


def _year_of(written: pl.Expr, start: int) -> pl.Expr:
    """The birth year in a partner's own date text, read as its staff would read a mistyped one (O for 0)."""
    return written.str.replace_many(["O", "o", "l", "I"], ["0", "0", "1", "1"]).str.slice(start, 4).cast(pl.Int32)


def district_view(raw: pl.DataFrame, manifest: dict) -> pl.DataFrame:
    """Each student as the release would show them, computed by the district from its own data and the
    levels the manifest publishes; None where the district cannot compute an attribute."""
    levels = manifest["anonymization"]["generalization"]
    enrolled = pl.col("Days Enrolled").cast(pl.Int32)
    absent = enrolled - pl.col("Days Present").cast(pl.Int32)
    years = (raw.group_by("StudentID", "School Year").agg(
        pl.col("Grade").first(), enrolled.sum().alias("enrolled"), absent.sum().alias("absent"),
        (pl.col("Graduated") == "Y").any().alias("graduated")))
    years = years.with_columns((pl.col("absent") / pl.col("enrolled") >= 0.10).alias("chronic"))
    students = raw.group_by("StudentID").agg(pl.col("Birth Date").last(), pl.col("Gender").last())
    per = years.group_by("StudentID").agg(pl.col("chronic").any().alias("chronic_any"),
                                          pl.col("graduated").any().alias("graduated_any"),
                                          pl.concat_str([pl.col("School Year"), _grade_band(pl.col("Grade")),
                                                         pl.col("chronic").cast(pl.String)], separator="/")
                                          .sort().str.join("|").alias("rows"))
    out = students.join(per, on="StudentID")
    width = {"1-year": 1, "5-year": 5, "10-year": 10, "20-year": 20}.get(levels["age"])
    year = _year_of(pl.col("Birth Date"), 0)
    return out.select(
        "StudentID",
        ((year // width) * width).alias("age") if width else pl.lit(None, dtype=pl.Int32).alias("age"),
        (pl.col("Gender").replace({"Female": "F", "Male": "M", "Non-binary": "X"}) if levels["sex"] != "not released"
         else pl.lit(None, dtype=pl.String)).alias("sex"),
        (pl.col("chronic_any") if levels["school_outcomes"] != "not released" else pl.lit(None)).alias("chronic"),
        (pl.col("rows") if levels["school_years"] == "year, grade band, chronic absence" else pl.lit(None))
        .alias("rows"),
    )


def release_view(release: Path) -> pl.DataFrame:
    """The release persons who could be the district's students, in the same form."""
    persons = pl.read_parquet(release / "persons.parquet")
    years = pl.read_parquet(release / "school_years.parquet")
    rows = years.group_by("person_key").agg(pl.concat_str([
        pl.col("school_year"), pl.col("grade_band"), pl.col("chronically_absent").cast(pl.String)], separator="/")
        .sort().str.join("|").alias("rows"))
    return persons.filter(pl.col("domains").list.contains("school").fill_null(True)).join(
        rows, on="person_key", how="left").select(
        "person_key", pl.col("birth_year_min").cast(pl.Int32).alias("age"), "sex",
        pl.col("chronically_absent_any").alias("chronic"), "rows")


def singled_out(clients: pl.DataFrame, release: pl.DataFrame) -> float:
    """Share of clients with exactly one compatible release person (a null on either side matches all)."""
    pairs = clients.join(release, how="cross", suffix="_r")
    ok = pl.lit(True)
    for c in ("age", "sex", "chronic", "rows"):
        ok = ok & (pl.col(c).is_null() | pl.col(f"{c}_r").is_null() | (pl.col(c) == pl.col(f"{c}_r")))
    counts = pairs.filter(ok).group_by("StudentID").len()
    return counts.filter(pl.col("len") == 1).height / clients.height


def test_school_district_cannot_single_out_its_students(demo5k: Path) -> None:
    release = only_release(demo5k)
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["tier"] == "deidentified"
    clients = district_view(district_export(demo5k), manifest)
    share = singled_out(clients, release_view(release))
    assert share <= 0.01, f"the district singles out {share:.1%} of its students"
    # the gate's own figure for this partner, in the manifest, agrees that it is below the bound
    assert manifest["risk"]["partner_attack"]["holyoke-schools"]["share"] <= 0.01


def test_the_same_attack_breaks_the_research_tier(demo5k: Path) -> None:
    """Full detail (what the release copied verbatim before tiers): the district finds most students."""
    done = cilink(demo5k, "export", "--audience", "university", "--release-id", "research-1")
    assert done.returncode == 0, done.stderr
    release = only_release(demo5k, "research-1")
    raw = district_export(demo5k)
    mine = raw.group_by("StudentID").agg(pl.concat_str(["School Year", "Grade", "Days Enrolled", "Days Present"],
                                                       separator="/").sort().str.join("|").alias("sig"))
    events = pl.read_parquet(release / "events" / "domain=school")
    theirs = events.group_by("person_key").agg(pl.concat_str(
        ["school_year", "grade_level", "days_enrolled", "days_present"], separator="/").sort().str.join("|")
        .alias("sig"))
    unique = theirs.group_by("sig").len().filter(pl.col("len") == 1)
    found = mine.join(unique, on="sig").height / mine.height
    assert found > 0.5, f"research-tier attack found only {found:.1%}"
    manifest = json.loads((release / "manifest.json").read_text())
    assert "not de-identified" in manifest["label"]


def whole_records(release: Path) -> pl.DataFrame:
    """Each person's whole record as an analyst would join it: persons row + every row of every table."""
    persons = pl.read_parquet(release / "persons.parquet")
    rec = persons.select("person_key", pl.concat_str([
        (pl.col(c).list.join(",") if isinstance(persons.schema[c], pl.List) else pl.col(c)).cast(pl.String)
        .fill_null("~") for c in persons.columns if c != "person_key"], separator=";").alias("r"))
    for name in ("school_years", "workforce_spells", "housing_spells"):
        t = pl.read_parquet(release / f"{name}.parquet")
        rows = t.group_by("person_key").agg(pl.concat_str([pl.col(c).cast(pl.String).fill_null("~")
                                                           for c in t.columns if c != "person_key"], separator=";")
                                            .sort().str.join("|").alias(name))
        rec = rec.join(rows, on="person_key", how="left").with_columns(pl.col(name).fill_null(""))
    return rec.select("person_key", pl.concat_str(pl.all().exclude("person_key"), separator="#").alias("record"))


def test_whole_record_k_and_age_band_on_the_5000_demo(demo5k: Path) -> None:
    release = only_release(demo5k)
    sizes = whole_records(release).group_by("record").len().get_column("len")
    assert sizes.min() >= 5
    assert sizes.len() / sizes.sum() <= 0.05  # mean individual risk = classes / persons
    persons = pl.read_parquet(release / "persons.parquet")
    band = persons.select(((pl.col("birth_year_max") - pl.col("birth_year_min") <= 4)
                           | pl.col("age_90_plus").fill_null(False)).fill_null(False).mean()).item()
    assert band >= 0.90


def test_age_band_on_the_2000_demo(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cilink(None, "demo", str(ws), "--people", "2000", "--seed", "1").returncode == 0
    persons = pl.read_parquet(only_release(ws) / "persons.parquet")
    band = persons.select(((pl.col("birth_year_max") - pl.col("birth_year_min") <= 4)
                           | pl.col("age_90_plus").fill_null(False)).fill_null(False).mean()).item()
    assert band >= 0.90
    sizes = whole_records(only_release(ws)).group_by("record").len().get_column("len")
    assert sizes.min() >= 5


def test_two_audiences_content_match_is_reported_and_true(demo5k: Path) -> None:
    done = cilink(demo5k, "export", "--audience", "analysts-b", "--release-id", "b-1")
    assert done.returncode == 0, done.stderr
    a, b = only_release(demo5k), only_release(demo5k, "b-1")
    reported = json.loads((b / "manifest.json").read_text())["risk"]["content_match_with_other_audiences"]
    assert set(reported) == {"default"}
    ka, kb = whole_records(a), whole_records(b)
    assert set(ka.get_column("person_key")).isdisjoint(kb.get_column("person_key"))  # different keys
    ua = ka.group_by("record").len().filter(pl.col("len") == 1)
    ub = kb.group_by("record").len().filter(pl.col("len") == 1)
    matched = ua.join(ub, on="record").height / kb.height
    assert reported["default"]["persons_matched_1_to_1_share"] == pytest.approx(matched)


def _config_with(ws: Path, extra: str) -> str:
    original = (ws / "cilink.toml").read_text()
    text = original.replace("[export]\n", "[export]\n" + extra, 1) if "[export]\n" in original else (
        original + "\n[export]\n" + extra)
    (ws / "cilink.toml").write_text(text)
    return original


def test_refuses_non_identifying_without_reason_and_pinned_detail(demo5k: Path) -> None:
    before = sorted(p.name for p in (demo5k / "releases").iterdir())
    for extra, rule in (('[export.non_identifying]\nschool_years = ""\n', "non_identifying_without_reason"),
                        ('[export.generalization]\nschool_years = "year, grade band, attendance band, chronic '
                         'absence, graduation"\nage = "1-year"\n', "whole_record_k_anonymity")):
        original = _config_with(demo5k, extra)
        try:
            done = cilink(demo5k, "export", "--release-id", "loosened")
        finally:
            (demo5k / "cilink.toml").write_text(original)
        assert done.returncode == 5, done.stdout + done.stderr
        assert rule in done.stderr
        assert sorted(p.name for p in (demo5k / "releases").iterdir()) == before  # nothing written


def test_non_identifying_with_reason_is_recorded(demo5k: Path) -> None:
    original = _config_with(demo5k, '[export.non_identifying]\nhmis_while_in_school = "reviewed by the privacy '
                            'officer: a binary flag shared by hundreds"\n')
    try:
        done = cilink(demo5k, "export", "--release-id", "declared")
    finally:
        (demo5k / "cilink.toml").write_text(original)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((only_release(demo5k, "declared") / "manifest.json").read_text())
    assert "hmis_while_in_school" in manifest["anonymization"]["non_identifying"]
    # the partner still knows what it sent: the attack figures are still measured and within the bound
    assert all(a["share"] <= 0.01 for a in manifest["risk"]["partner_attack"].values())


def test_readme_example_runs_on_the_release(demo5k: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The worked question of the release README (and docs/analysts.md) runs on a real release."""
    from cilink.export.deidentified import EXAMPLE

    release = only_release(demo5k)
    readme = (release / "README.md").read_text()
    assert EXAMPLE.format(path=f"releases/{release.name}") in readme
    docs = (Path(__file__).parents[1] / "docs" / "analysts.md").read_text()
    assert 'both.group_by("hmis_while_in_school")' in docs
    exec(EXAMPLE.format(path=str(release)), {})  # our own documented example
    out = capsys.readouterr().out
    assert "hmis_while_in_school" in out and "chronically_absent" in out


def test_partner_attack_refuses_what_k_on_declared_attributes_would_miss(demo5k: Path) -> None:
    """Declaring the school history non-identifying takes it out of k, not out of the district's hands."""
    before = sorted(p.name for p in (demo5k / "releases").iterdir())
    original = _config_with(demo5k, '[export.non_identifying]\nschool_years = "claimed harmless"\n')
    try:
        done = cilink(demo5k, "export", "--release-id", "declared-history")
    finally:
        (demo5k / "cilink.toml").write_text(original)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "partner holyoke-schools" in done.stderr and "partner_single_out" in done.stderr
    assert "whole_record_k_anonymity" not in done.stderr  # k holds on what the model was told to count
    assert sorted(p.name for p in (demo5k / "releases").iterdir()) == before


def test_gate_measures_the_tables_as_written(demo5k: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table changed after protection (the tamper hook) is caught on the written content."""
    from cilink.errors import PrivacyGateRefused
    from cilink.export.release import export_release
    from cilink.workspace import Workspace

    def tamper(name: str, frame: pl.DataFrame) -> pl.DataFrame:
        if name != "persons.parquet":
            return frame
        return frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(1901, dtype=pl.Int16))
                                  .otherwise(pl.col("birth_year_min")).alias("birth_year_min"))

    monkeypatch.setenv("CILINK_SECRET", SECRET)
    with pytest.raises(PrivacyGateRefused) as refused:
        export_release(Workspace.open(demo5k), release_id="tampered", tamper=tamper)
    assert "whole_record_k_anonymity" in str(refused.value)
    assert not (demo5k / "releases" / "tampered").exists()


# --- the attackers: the workforce board and the HMIS provider ---------------------------------------------

def workforce_clients(ws: Path) -> pl.DataFrame:
    """The board's participants as it exported them: id, birth year, sex."""
    raw = pl.read_excel(ws / ".cilink" / "inbox" / "workforce-board" / "processed" / "workforce-board.xlsx",
                        sheet_name="Participants", infer_schema_length=0)
    return raw.group_by("Participant ID").agg(pl.col("DOB").last(), pl.col("Sex").last()).select(
        pl.col("Participant ID").alias("client"), _year_of(pl.col("DOB"), 6).alias("year"),
        pl.col("Sex").replace({"Female": "F", "Male": "M"}).alias("sex"))


def hmis_clients(ws: Path) -> pl.DataFrame:
    """The HMIS provider's clients from its own Client.csv (FY2026 Sex: 0 female, 1 male)."""
    import io
    import zipfile

    with zipfile.ZipFile(ws / ".cilink" / "inbox" / "coc-hmis" / "processed" / "hmis-export.zip") as z:
        raw = pl.read_csv(io.BytesIO(z.read("Client.csv")), infer_schema=False)
    return raw.select(pl.col("PersonalID").alias("client"), _year_of(pl.col("DOB"), 0).alias("year"),
                      pl.col("Sex").replace_strict({"0": "F", "1": "M"}, default=None)
                      .alias("sex"))


@pytest.mark.parametrize(("partner", "domain", "clients_of"), [
    ("workforce-board", "workforce", workforce_clients), ("coc-hmis", "housing", hmis_clients)])
def test_workforce_and_hmis_cannot_single_out_their_clients(demo5k: Path, partner: str, domain: str,
                                                          clients_of: object) -> None:
    release = only_release(demo5k)
    manifest = json.loads((release / "manifest.json").read_text())
    levels = manifest["anonymization"]["generalization"]
    width = {"1-year": 1, "5-year": 5, "10-year": 10, "20-year": 20}.get(levels["age"])
    clients = clients_of(demo5k)  # type: ignore[operator]
    mine = clients.select("client", ((pl.col("year") // width) * width if width else pl.lit(None, dtype=pl.Int32))
                          .alias("age"), (pl.col("sex") if levels["sex"] != "not released" else pl.lit(None))
                          .alias("sex"))
    persons = pl.read_parquet(release / "persons.parquet")
    theirs = persons.filter(pl.col("domains").list.contains(domain).fill_null(True)).select(
        pl.col("birth_year_min").cast(pl.Int32).alias("age"), "sex")
    pairs = mine.join(theirs, how="cross", suffix="_r")
    ok = pl.lit(True)
    for c in ("age", "sex"):
        ok = ok & (pl.col(c).is_null() | pl.col(f"{c}_r").is_null() | (pl.col(c) == pl.col(f"{c}_r")))
    counts = pairs.filter(ok).group_by("client").len()
    share = counts.filter(pl.col("len") == 1).height / mine.height
    assert share <= 0.01, f"{partner} singles out {share:.1%} of its clients"
    assert manifest["risk"]["partner_attack"][partner]["share"] <= 0.01


def test_priorities_keep_what_the_data_manager_ranks_first(demo5k: Path) -> None:
    default = json.loads((only_release(demo5k) / "manifest.json").read_text())["anonymization"]["generalization"]
    original = _config_with(demo5k, 'priorities = ["geography"]\n')
    try:
        done = cilink(demo5k, "export", "--release-id", "geography-first")
    finally:
        (demo5k / "cilink.toml").write_text(original)
    assert done.returncode == 0, done.stderr
    release = only_release(demo5k, "geography-first")
    chosen = json.loads((release / "manifest.json").read_text())["anonymization"]["generalization"]
    levels = ["zip3", "state", "not released"]
    assert levels.index(chosen["geography"]) < levels.index(default["geography"])
    assert whole_records(release).group_by("record").len().get_column("len").min() >= 5


def test_status_names_the_last_release_tier(demo5k: Path) -> None:
    done = cilink(demo5k, "status", "--json")
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout)["last_release"]
    manifest = json.loads((only_release(demo5k, last["release_id"]) / "manifest.json").read_text())
    assert last["tier"] == manifest["tier"]
    assert last["audience"] == manifest["audience"]
