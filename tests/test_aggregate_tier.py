"""The `aggregate` tier: tables only, and no count of 1–10 persons recoverable by subtraction — within a file,
across files, or across two consecutive releases — as an attacker holding both releases would try it."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cilink.export.detail import detail_person_keys, detailed_release
from cilink.export.release import export_release
from cilink.generations import new_link_generation
from cilink.indicators.compute import compute_indicators
from cilink.indicators.definitions import indicator_definitions
from cilink.indicators.units import UNIT_ID, UNIT_PERIOD, UNITS
from cilink.ledger import Batch, Ledger, now_utc
from cilink.link.outputs import write_crosswalk
from cilink.report import history, sections
from cilink.schemas import SCHEMA_VERSION, polars_schema
from cilink.workspace import Workspace
from tests.conftest import TEST_SECRET, run_cli
from tests.release_fixtures import PARTNERS, make_persons, make_staged, staged_frame, write_fixture

FUNDERS = "funders"
AGGREGATE_AUDIENCE = f"""
[[export.audiences]]
id = "{FUNDERS}"
tier = "aggregate"
secret_env = "FUNDERS_SECRET"
"""
MIN_CELL = 11
N_PERSONS = 400


# --- two consecutive releases -----------------------------------------------------------------------------------


def _restage(ws: Workspace, persons: pl.DataFrame, events: dict[str, pl.DataFrame], crosswalk: pl.DataFrame,
             batch: int) -> pl.DataFrame:
    """A new snapshot batch per partner (superseding the last) and a new link generation, as ingest and link
    would leave them; persons keep their source ids and person_ids. Returns the new crosswalk."""
    identity = persons.drop("ssn_last4") if "ssn_last4" not in polars_schema("school") else persons
    parts = []
    for domain, rows in events.items():
        partner = PARTNERS[domain]
        known = crosswalk.filter(pl.col("partner") == partner).select("person_id", "source_person_id")
        new = rows.select("person_id").unique().join(known, on="person_id", how="anti").sort("person_id")
        ids = pl.concat([known, new.with_columns(pl.format("N{}-{}", pl.lit(batch), pl.int_range(pl.len()))
                                                 .alias("source_person_id"))])
        batch_id = f"{partner}-{batch:04d}"
        frame = staged_frame(rows, identity, ids, domain, partner, batch_id)
        path = ws.staged_dir(partner) / f"{batch_id}.parquet"
        frame.write_parquet(path)
        with Ledger(ws.ledger_path) as ledger:
            ledger.add_batch(Batch(
                batch_id=batch_id, partner=partner, file_name=f"{domain}-{batch}.csv",
                sha256=hashlib.sha256(batch_id.encode()).hexdigest(), size_bytes=0, rows_in=frame.height,
                accepted=frame.height, quarantined=0, quarantine_by_reason={}, flags_by_field={},
                schema_version=SCHEMA_VERSION, mode="snapshot", status="active",
                staged_path=path.relative_to(ws.root).as_posix(), quarantine_path=None, created_at=now_utc()),
                supersede_earlier=True)
        used = frame.select("source_person_id").unique()
        parts.append(ids.join(used, on="source_person_id").select(
            pl.lit(partner).alias("partner"), "source_person_id",
            pl.format("{}:{}", pl.lit(partner), "source_person_id").alias("record_id"), "person_id"))
    out = pl.concat(parts)
    with new_link_generation(ws) as gen:
        write_crosswalk(gen.link_dir, out)
    return out


@dataclass
class Count:
    """A count a reader finds in a release's files, with the population it counts (restricted truth)."""

    where: str  # release / file / meaning
    value: int | None  # None: withheld
    population: frozenset[tuple[str, str]]


def _truth_indicators(ws: Workspace) -> dict[tuple[str, str, str, str, str], frozenset[tuple[str, str]]]:
    """Every indicator count's population: (indicator, period, breakdown, group, "numerator"|"denominator") →
    its units — as persons where nobody is in the count twice, else as units of its kind."""
    out = {}
    defs = indicator_definitions(ws.config)
    with detailed_release(ws) as detail:
        frames = {u: UNITS[u](detail).collect() for u in {d.unit for d in defs if d.unit}}
    for d in defs:
        assert d.unit is not None
        f = frames[d.unit]
        period_col = d.period or UNIT_PERIOD[d.unit]
        pop = pl.sql_expr(d.population).fill_null(False).cast(pl.Boolean)
        if d.statistic == "median":
            pop = pop & pl.col(d.value).is_not_null()
        members = f.filter(pop)
        periods = members.get_column(period_col).cast(pl.String).unique().drop_nulls().to_list() if period_col else []
        groups = [("all", "all")] + [(b, str(v).lower()) for b in d.by
                                     for v in members.get_column(b).drop_nulls().unique().to_list()]
        for period, (b, g) in itertools.product(periods or ["all"], groups):
            sel = members
            if period_col:
                sel = sel.filter(pl.col(period_col).cast(pl.String) == period)
            if b != "all":
                sel = sel.filter(pl.col(b).cast(pl.String).str.to_lowercase() == g)
            counts = {"denominator": sel}
            if d.numerator:
                counts["numerator"] = sel.filter(pl.sql_expr(d.numerator).fill_null(False).cast(pl.Boolean))
            for what, units in counts.items():
                people = units.get_column("person_key")
                pop_set = (frozenset(("person", k) for k in people.to_list()) if people.n_unique() == units.height
                           else frozenset((d.unit, k) for k in units.get_column(UNIT_ID).to_list()))
                out[(d.id, period, b, g, what)] = pop_set
    return out


def _truth_report(ws: Workspace) -> dict[tuple[str, ...], frozenset[tuple[str, str]]]:
    """The populations of the report's person tables, from the crosswalk and staged records."""
    ctx = sections.load_context(ws)
    assert ctx.crosswalk is not None
    cw = ctx.crosswalk.with_columns(detail_person_keys(ctx.crosswalk.get_column("person_id")).alias("key"))
    per = cw.group_by("key").agg(pl.len().alias("n"), pl.col("partner").unique().sort().alias("ps"))
    out: dict[tuple[str, ...], frozenset[tuple[str, str]]] = {}

    def persons(frame: pl.DataFrame) -> frozenset[tuple[str, str]]:
        return frozenset(("person", k) for k in frame.get_column("key").to_list())

    partners = sorted(p.id for p in ws.config.partners)
    for k in range(1, len(partners) + 1):
        for combo in itertools.combinations(partners, k):
            out[("overlap", " + ".join(combo))] = persons(per.filter(pl.col("ps").list.join(" + ") ==
                                                                     " + ".join(combo)))
    for p in partners:
        out[("partner", p)] = persons(per.filter(pl.col("ps").list.contains(p)))
    for size in sections.CLUSTER_SIZES:
        cond = pl.col("n") >= 5 if size == "5+" else pl.col("n") == int(size)
        out[("records", size)] = persons(per.filter(cond))
    keys = cw.select("person_id", "key").unique()
    for p, people in sections.bias_persons(ctx).items():
        people = people.join(keys, on="person_id")
        for status in ("linked", "unlinked"):
            mine = people.filter(pl.col("status") == status)
            out[("bias", p, "all", "persons", status)] = persons(mine)
            for var, values in sections.BIAS_VALUES.items():
                for v in values:
                    out[("bias", p, var, v, status)] = persons(mine.filter(pl.col(var) == v))
    return out


class _Tables(HTMLParser):
    """The report's tables as a reader sees them: (heading before it, header, rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[str], list[list[str]]]] = []
        self._h3 = ""
        self._text: list[str] | None = None
        self._row: list[str] | None = None
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append((self._h3, [], []))
            self._h3 = ""  # a table without a heading of its own (the indicators) is not the one before
        elif tag in ("h3", "td", "th"):
            self._in, self._text = tag, []
        elif tag == "tr":
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in and self._text is not None:
            text = "".join(self._text).strip()
            if tag == "h3":
                self._h3 = text
            elif self._row is not None:
                self._row.append(text)
            self._in, self._text = None, None
        elif tag == "tr" and self._row is not None and self.tables:
            _, header, rows = self.tables[-1]
            (rows.append(self._row) if header else header.extend(self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _number(text: str) -> int | None:
    return None if text == "*" else int(text.replace(",", ""))


def read_counts(release: Path, truth_ind: dict, truth_rep: dict, label: str) -> list[Count]:
    """Every count of persons in an aggregate release's files, read from the files only (truth attached)."""
    out: list[Count] = []
    ind = pl.read_csv(release / "indicators.csv", infer_schema_length=0)
    for r in ind.iter_rows(named=True):
        for what in ("numerator", "denominator"):
            if r["statistic"] != "share" and what == "numerator":
                continue
            value = int(r[what]) if r[what] else None
            key = (r["indicator"], r["period"], r["breakdown"], r["group"], what)
            out.append(Count(f"{label}/indicators.csv/{'/'.join(key)}", value, truth_ind[key]))
    if not (release / "report.html").is_file():
        return out
    parser = _Tables()
    parser.feed((release / "report.html").read_text(encoding="utf-8"))
    tables = {h: (head, rows) for h, head, rows in parser.tables}
    for title, kind, label_col in (
            ("Partner overlap: persons by the combination of partners holding their records", "overlap", "partners"),
            ("Persons per partner", "partner", "partner"), ("Persons by number of linked records", "records",
                                                              "records")):
        head, rows = tables[title]
        at = {h: i for i, h in enumerate(head)}
        out += [Count(f"{label}/report/{kind}/{r[at[label_col]]}", _number(r[at["persons"]]),
                      truth_rep[(kind, r[at[label_col]])]) for r in rows]
    head, rows = tables["Linked vs. unlinked persons per partner: record characteristics"]
    at = {h: i for i, h in enumerate(head)}
    for r in rows:
        p, var, v = r[at["partner"]], r[at["characteristic"]], r[at["value"]]
        for status in ("linked", "unlinked"):
            out.append(Count(f"{label}/report/bias/{p}/{var}/{v}/{status}", _number(r[at[status]]),
                             truth_rep[("bias", p, var, v, status)]))
    # the report repeats the indicators: the same numbers as indicators.csv
    shown = [rows for h, head, rows in parser.tables if head[:2] == ["indicator", "statistic"]]
    assert shown and len(shown[0]) == ind.height
    return out


def _attack(counts: list[Count]) -> list[str]:
    """Everything an attacker with both releases recovers: subtracting any two printed counts (within a file,
    across files, across the releases) whose populations are nested, and — knowing which populations overlap —
    solving the printed counts for a withheld count, or for the persons in exactly some cells, exactly."""
    found = []
    shown = [c for c in counts if c.value is not None]
    found += [f"printed {c.where} = {c.value}" for c in shown if 0 < c.value < MIN_CELL]
    for a, b in itertools.permutations(shown, 2):
        if b.population < a.population and 0 < len(a.population - b.population) < MIN_CELL:
            assert a.value - b.value == len(a.population - b.population)  # the truth is what the files say
            found.append(f"{a.where} − {b.where} = {a.value - b.value}")
    # linear algebra over the atoms of all counts (withheld ones included: their meaning is printed)
    universe = sorted(set().union(*(c.population for c in counts)))
    col = {u: i for i, u in enumerate(universe)}
    member = np.zeros((len(counts), len(universe)), dtype=bool)
    for i, c in enumerate(counts):
        member[i, [col[u] for u in c.population]] = True
    patterns, atom_of = np.unique(member.T, axis=0, return_inverse=True)
    atoms = np.zeros((len(counts), len(patterns)))
    for i in range(len(counts)):
        atoms[i] = np.bincount(atom_of.ravel(), weights=member[i], minlength=len(patterns)) > 0
    sizes = np.bincount(atom_of.ravel(), minlength=len(patterns))
    printed = atoms[[i for i, c in enumerate(counts) if c.value is not None]]
    _, s, vt = np.linalg.svd(printed, full_matrices=False)
    basis = vt[: int((s > 1e-9 * s[0]).sum())]

    def fixed(v: np.ndarray) -> bool:
        return bool(np.linalg.norm(v - (v @ basis.T) @ basis) < 1e-6 * max(1.0, np.linalg.norm(v)))

    for i, c in enumerate(counts):
        if c.value is None and 0 < len(c.population) < MIN_CELL and fixed(atoms[i]):
            found.append(f"withheld {c.where} = {len(c.population)} worked out")
    for a in np.flatnonzero((sizes > 0) & (sizes < MIN_CELL)):
        if fixed(np.eye(len(patterns))[a]):
            found.append(f"the {sizes[a]} persons in exactly {np.flatnonzero(patterns[a]).size} of the counts")
    # and sums: the persons of two such groups together, a count no table prints (say, those in exactly one
    # of two overlapping counts), worked out although neither group is
    small = np.flatnonzero((sizes > 0) & (sizes < MIN_CELL))
    for a, b in itertools.combinations(small, 2):
        if sizes[a] + sizes[b] < MIN_CELL and not fixed(np.eye(len(patterns))[a]):
            v = np.eye(len(patterns))[a] + np.eye(len(patterns))[b]
            if fixed(v):
                found.append(f"the {sizes[a] + sizes[b]} persons of two groups of counts together")
    return found


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory: pytest.TempPathFactory):
    """An aggregate release, then — after 4 people entered the HMIS data and 3 left — the next one; plus the
    indicators the next one would have printed without remembering the first (to prove the attack has teeth)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", TEST_SECRET)
        mp.setenv("FUNDERS_SECRET", "funders-secret-not-for-production")
        rng = np.random.default_rng(7)
        persons = make_persons(N_PERSONS, rng)
        events = make_staged(persons, rng)
        fx = write_fixture(tmp_path_factory.mktemp("agg") / "ws", persons, events, seed=7,
                           export_extra=AGGREGATE_AUDIENCE)
        ws = fx.ws
        r1 = export_release(ws, audience=FUNDERS, release_id="2026-q1")
        truth1 = _truth_indicators(ws), _truth_report(ws)
        # between the releases: 3 people leave the data, 4 new ones arrive in HMIS only
        housing_only = (events["housing"].select("person_id").unique()
                        .join(events["school"].select("person_id"), on="person_id", how="anti")
                        .join(events["workforce"].select("person_id"), on="person_id", how="anti")
                        .sort("person_id"))
        gone = housing_only.head(3).get_column("person_id")
        template = housing_only.slice(3, 4).get_column("person_id")
        newcomers = make_persons(4, np.random.default_rng(99))
        rows = pl.concat([events["housing"].filter(pl.col("person_id") == t).with_columns(pl.lit(n).alias("person_id"))
                          for t, n in zip(template, newcomers.get_column("person_id"), strict=True)])
        events2 = {d: f.filter(~pl.col("person_id").is_in(gone.implode())) for d, f in events.items()}
        events2["housing"] = pl.concat([events2["housing"], rows])
        persons2 = pl.concat([persons.filter(~pl.col("person_id").is_in(gone.implode())), newcomers])
        _restage(ws, persons2, events2, fx.crosswalk, batch=2)
        ws = Workspace.open(ws.root)
        # the indicators the second release would print if it forgot the first
        naive = tmp_path_factory.mktemp("naive")
        with detailed_release(ws) as detail:
            table, _ = compute_indicators(detail, indicator_definitions(ws.config), MIN_CELL)
        table.write_csv(naive / "indicators.csv")
        r2 = export_release(ws, audience=FUNDERS, release_id="2026-q2")
        truth2 = _truth_indicators(ws), _truth_report(ws)
    return ws, (r1.path, truth1), (r2.path, truth2), naive


def test_no_small_count_recoverable_across_files_and_releases(two_releases):
    ws, (r1, truth1), (r2, truth2), naive = two_releases
    first = read_counts(r1, *truth1, label="2026-q1")
    second = read_counts(r2, *truth2, label="2026-q2")
    assert sum(c.value is None for c in first) and sum(c.value is not None for c in first) > 50  # both kinds
    # each release on its own, and both together
    assert _attack(first) == []
    assert _attack(second) == []
    assert _attack(first + second) == []
    # without the first release's state, the second's indicators would give the newcomers (or leavers) away
    forgetful = read_counts(naive, *truth2, label="naive")
    assert _attack(first + forgetful), "the attack finds nothing even without cross-release protection"
    # the second release says what it was checked against, and the state of both is kept, restricted
    manifest = json.loads((r2 / "manifest.json").read_text())
    assert manifest["tier"] == "aggregate"
    assert manifest["disclosure_control"]["checked_against"] == "2026-q1"
    latest = history.latest(ws)
    assert latest is not None and latest.release_id == "2026-q2"
    assert (history.aggregates_dir(ws) / "2026-q1" / history.STATE).is_file()


def _ints(doc: object, path: str = "") -> list[tuple[str, int]]:
    if isinstance(doc, dict):
        return [x for k, v in doc.items() for x in _ints(v, f"{path}.{k}")]
    if isinstance(doc, list):
        return [x for i, v in enumerate(doc) for x in _ints(v, f"{path}[{i}]")]
    return [(path, doc)] if isinstance(doc, int) and not isinstance(doc, bool) else []


def test_aggregate_release_has_no_record_level_data_and_no_counts_in_its_documents(two_releases):
    _, (r1, _), (r2, _), _ = two_releases
    for release in (r1, r2):
        files = sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file())
        assert files == ["README.md", "dictionary.json", "indicators.csv", "indicators.parquet", "manifest.json",
                         "report.html"]
        for parquet in release.rglob("*.parquet"):
            columns = pl.read_parquet_schema(parquet)
            assert "person_key" not in columns and UNIT_ID not in columns
        text = " ".join(p.read_text(encoding="utf-8") for p in release.iterdir() if p.suffix != ".parquet")
        assert "person_key\"" not in text and not re.search(r"\b[0-9a-f]{32}\b", text)  # no person key values
        # manifest and dictionary: meanings, hashes and settings — no count (no rows in/accepted/quarantined, no
        # persons per value) that could complete a subtraction
        manifest = json.loads((release / "manifest.json").read_text())
        dictionary = json.loads((release / "dictionary.json").read_text())
        counts = [(p, v) for p, v in _ints(manifest) + _ints(dictionary)
                  if not p.endswith((".bytes", ".min_cell"))]
        assert counts == [], counts
        assert "row_counts" not in manifest and "value_counts" not in json.dumps(dictionary)
        for b in manifest["inputs"]["batches"]:
            assert set(b) == {"batch_id", "partner", "domain", "sha256"}


def test_a_partner_audience_may_only_receive_the_aggregate_tier(tmp_path):
    from tests.release_fixtures import fixture_config

    config = fixture_config("""
[[export.audiences]]
id = "schools-dashboard"
tier = "deidentified"
partner = "city-schools"
secret_env = "SCHOOLS_SECRET"
""")
    path = tmp_path / "cilink.toml"
    path.write_text(config, encoding="utf-8")
    done = run_cli("config", "check", path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "partner" in done.stderr and "aggregate" in done.stderr
    path.write_text(config.replace('tier = "deidentified"', 'tier = "aggregate"'), encoding="utf-8")
    done = run_cli("config", "check", path)
    assert done.returncode == 0, done.stdout + done.stderr
