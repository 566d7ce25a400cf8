"""`cilink report` and `cilink indicators` on a demo workspace: renders in headless Chromium without errors,
carries no identifier of the staged data, and never prints a small cell, directly or by subtraction."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cilink.disclosure.suppression import Cells, subtraction_attack
from cilink.errors import WorkspaceError
from cilink.export.release import export_release
from cilink.indicators.compute import write_indicators
from cilink.operate.demo import run_demo
from cilink.operate.inbox import run_inbox
from cilink.report import sections
from cilink.report.document import CHARTS, build_report
from cilink.staging import staged_records
from cilink.workspace import Workspace
from tests.conftest import TEST_SECRET

ARTIFACTS = Path(__file__).parent / "artifacts"
SRC = Path(__file__).parents[1] / "src" / "cilink"


AGGREGATE_RELEASE = "demo-q1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """An 800-person demo workspace, linked, with one aggregate release for its partners (the report and the
    indicators are computed from the restricted full-detail data, and checked against that release)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", TEST_SECRET)
        root = tmp_path_factory.mktemp("demo") / "ws"
        run_demo(root, people=800, seed=2, pipeline=False)
        with (root / "cilink.toml").open("a", encoding="utf-8") as fh:
            fh.write('\n[export]\nmax_suppression = 0.5\n\n[[export.audiences]]\nid = "partners"\n'
                     'tier = "aggregate"\nsecret_env = "CILINK_SECRET"\n')
        ws = Workspace.open(root)
        result = run_inbox(ws, export=False)
        assert result.exit_code == 0, result.errors
        export_release(ws, audience="partners", release_id=AGGREGATE_RELEASE)
        return ws


@pytest.fixture(scope="module")
def outputs(demo: Workspace, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", TEST_SECRET)
        report = build_report(demo, tmp_path_factory.mktemp("out") / "report.html")
        indicators = write_indicators(demo)
    assert sorted(report.charts) == sorted(CHARTS)
    assert indicators.path is not None
    return report.path, indicators.path


# --- renders in a browser ---------------------------------------------------------------------------------------

_PROBE = """<script>
window.__errs = [];
window.addEventListener('error', e => __errs.push('error: ' + (e.message || (e.target && e.target.tagName))), true);
document.addEventListener('securitypolicyviolation', e => __errs.push('csp: ' + e.violatedDirective));
const _ce = console.error; console.error = (...a) => { __errs.push('console: ' + a.join(' ')); _ce(...a); };
window.addEventListener('load', () => {
  const drawn = [...document.querySelectorAll('figure[data-chart]')].filter(f => {
    const s = f.querySelector('svg'); if (!s) return false;
    const r = s.getBoundingClientRect();
    return r.width > 150 && r.height > 80 && s.querySelectorAll('path, rect, text').length > 5;
  }).map(f => f.dataset.chart);
  document.body.setAttribute('data-drawn', drawn.join(','));
  document.body.setAttribute('data-errors', __errs.join(' | ') || 'none');
});
</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _run_chromium(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "HOME": str(tmp)})


def test_report_renders_in_headless_chromium(request, tmp_path):
    binary = _chromium()
    if binary is None:  # checked before the demo workspace is built
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    report, _ = request.getfixturevalue("outputs")
    html = report.read_text(encoding="utf-8")
    # a copy with a probe that records script errors, CSP violations and console errors into the DOM
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
                     .replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    dom = _run_chromium(binary, tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stderr[-2000:]
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-errors") == "none", attrs
    assert sorted(attrs["data-drawn"].split(",")) == sorted(CHARTS)
    # the report as shipped: screenshot kept as an artifact, and Chromium logs no page errors
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    run = _run_chromium(binary, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 50_000, run.stderr[-2000:]
    page_errors = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln or "Refused" in ln]
    assert not page_errors, page_errors
    print(f"report screenshot: {shot}")


def test_report_is_self_contained(outputs):
    html = outputs[0].read_text(encoding="utf-8")
    assert "<script" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing fetched, nothing linked off the page
    assert html.count("<svg") == len(CHARTS)


# --- no identifiers ---------------------------------------------------------------------------------------------


def _identifiers(ws: Workspace) -> dict[str, set[str]]:
    names: set[str] = set()
    full: set[str] = set()
    ssn: set[str] = set()
    dob: set[str] = set()
    ids: set[str] = set()
    for p in ws.config.partners:
        f = staged_records(ws, p.id).collect()
        for c in ("first_name", "middle_name", "last_name"):
            for v in f.get_column(c).drop_nulls().unique().to_list():
                names |= {t for t in v.split() if len(t) >= 2}
        full |= {f"{a} {b}" for a, b in f.select("first_name", "last_name").drop_nulls().iter_rows()}
        ssn |= set(f.get_column("ssn").drop_nulls().to_list())
        for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"):
            dob |= set(f.get_column("dob").drop_nulls().dt.strftime(fmt).to_list())
        for c in ("source_person_id", "enrollment_id", "household_id"):
            if c in f.columns:
                ids |= {str(v).lower() for v in f.get_column(c).drop_nulls().to_list() if len(str(v)) >= 4}
    return {"name": names, "full_name": full, "ssn": ssn, "dob": dob, "source_id": ids}


def _cilink_vocabulary(ws: Workspace) -> set[str]:
    """Words cilink itself writes: its source code (templates, labels, codes) and the workspace config."""
    text = " ".join(p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")) + ws.config_path.read_text()
    return set(re.findall(r"[a-z]+", text.lower()))


def _texts(report: Path, indicators: Path) -> dict[str, str]:
    out = {"report.html": report.read_text(encoding="utf-8")}
    for f in sorted(p for p in indicators.iterdir() if p.name != "report.html"):
        if f.suffix == ".parquet":
            frame = pl.read_parquet(f)
            out[f.name] = " ".join(str(v) for c in frame.columns for v in frame.get_column(c).to_list())
        else:
            out[f.name] = f.read_text(encoding="utf-8")
    return out


def test_no_identifier_in_report_or_indicators(demo, outputs):
    _assert_no_identifiers(demo, _texts(*outputs))


def test_no_identifier_and_no_small_count_in_the_aggregate_release(demo):
    release = demo.releases_dir / AGGREGATE_RELEASE
    texts = _texts(release / "report.html", release)
    assert sorted(texts) == ["README.md", "dictionary.json", "indicators.csv", "indicators.parquet", "manifest.json",
                             "report.html"]
    _assert_no_identifiers(demo, texts)
    printed = [int(c.replace(",", "")) for c in re.findall(r'<td class="n c">([\d,]+)</td>', texts["report.html"])]
    assert printed and all(n == 0 or n >= 11 for n in printed)
    table = pl.read_parquet(release / "indicators.parquet")
    assert all(v == 0 or v >= 11 for c in ("numerator", "denominator") for v in table.get_column(c).drop_nulls())


def _assert_no_identifiers(demo: Workspace, texts: dict[str, str]) -> None:
    ids = _identifiers(demo)
    assert all(ids.values()), {k: len(v) for k, v in ids.items()}  # the scan has something to look for
    vocabulary = _cilink_vocabulary(demo)
    for name, text in texts.items():
        low = text.lower()
        tokens = set(re.findall(r"[a-z0-9]+", low))
        # SSNs and dates of birth anywhere (chart coordinates are rounded to 2 decimals, so no long digit runs)
        assert not [s for s in ids["ssn"] if s in text], name
        assert not [d for d in ids["dob"] if d in text], name
        # source ids as whole tokens (an id can't hide in a longer token such as a chart's element id)
        plain = {i for i in ids["source_id"] if i.isalnum()}
        assert not tokens & plain, (name, sorted(tokens & plain)[:3])
        assert not [i for i in ids["source_id"] - plain if i in low], name
        # names: no full name, and no name word that cilink does not itself use (e.g. "day", "cross")
        assert not [n for n in ids["full_name"] if n in low], name
        words = set(re.findall(r"[a-z]+", low))
        assert not (words & ids["name"]) - vocabulary, (name, sorted((words & ids["name"]) - vocabulary)[:5])


# --- no small cell, directly or by subtraction ----------------------------------------------------------------


def test_report_never_prints_a_small_cell(demo, outputs):
    # the same sections the report is built from, with their relations
    ctx = sections.load_context(demo)
    cells = Cells(min_cell=demo.config.export.min_cell)
    # the counts of people (rows, files and pairs are printed as they are)
    sections.clusters_and_overlap(ctx, cells)
    sections.people_summary(ctx, cells)
    sections.linkage_bias(ctx, cells)
    protection = cells.protect()
    published = protection.published()
    assert not [k for k, v in published.items() if 0 < v < cells.min_cell]
    recovered = subtraction_attack(published, cells.relations)
    assert not [k for k, v in recovered.items() if 0 < v < cells.min_cell]
    assert protection.suppressed  # the demo has small cells, so the test exercises suppression
    # and the page shows exactly the published counts: every number in a count cell is ≥ min_cell or 0
    html = outputs[0].read_text(encoding="utf-8")
    printed = [int(c.replace(",", "")) for c in re.findall(r'<td class="n c">([\d,]+)</td>', html)]
    assert printed and all(n == 0 or n >= cells.min_cell for n in printed)


def test_indicator_outputs(demo, outputs):
    _, folder = outputs
    assert folder == demo.root / "indicators" / folder.name
    table = pl.read_parquet(folder / "indicators.parquet")
    csv = pl.read_csv(folder / "indicators.csv")
    assert table.height == csv.height > 0
    counts = [v for c in ("numerator", "denominator") for v in table.get_column(c).drop_nulls().to_list()]
    assert all(v == 0 or v >= 11 for v in counts)
    definitions = json.loads((folder / "definitions.json").read_text())
    assert set(table.get_column("indicator").to_list()) <= {d["id"] for d in definitions["indicators"]}
    for d in definitions["indicators"]:
        assert {"population", "numerator", "period", "unit"} <= set(d)
    # named for the release they accompany (the latest), never written into it
    assert folder.name == AGGREGATE_RELEASE
    assert not (demo.releases_dir / folder.name / "indicators").exists()
    assert definitions["computed_from"].startswith("the linked data")


def test_cli_json(demo, tmp_path, capsys):
    # in-process (typer's runner would do too): a subprocess per command costs seconds of imports
    from cilink.cli import app

    out = tmp_path / "r.html"
    for args in (["report", "--out", str(out), "--json"], ["indicators", "--json"]):
        with pytest.raises(SystemExit) as done:
            app(["-w", str(demo.root), *args])
        assert done.value.code == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["path"] == (str(out) if args[0] == "report" else str(demo.root / "indicators" /
                                                                              summary["release_id"]))
    assert out.is_file()
    with pytest.raises(WorkspaceError, match="not found"):  # exit 2 through the CLI's one error handler
        write_indicators(demo, "no-such-release")


# --- the report for its readers: summary first, the overlap shown wherever it can be, readable on a phone ------


class _Tables(HTMLParser):
    """The page's tables as a reader sees them: heading before each → (header, rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        self.headings: list[str] = []
        self._h: str | None = None
        self._text: list[str] | None = None
        self._row: list[str] | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "h3"):
            self._h, self._text = tag, []
        elif tag == "table":
            self.tables[self.headings[-1]] = ([], [])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell, self._text = tag, []

    def handle_endtag(self, tag):
        if tag == self._h and self._text is not None:
            self.headings.append("".join(self._text).strip())
            self._h, self._text = None, None
        elif tag == self._cell and self._text is not None and self._row is not None:
            self._row.append("".join(self._text).strip())
            self._cell, self._text = None, None
        elif tag == "tr" and self._row is not None:
            header, rows = self.tables[self.headings[-1]]
            (rows.append(self._row) if header else header.extend(self._row))
            self._row = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


OVERLAP = "Partner overlap: persons by the combination of partners holding their records"


@pytest.fixture(scope="module")
def readers_report(demo_2000: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the README's 2,000-person demo."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILINK_SECRET", TEST_SECRET)
        return build_report(Workspace.open(demo_2000), tmp_path_factory.mktemp("readers") / "report.html").path


def test_summary_first_internals_in_the_appendix(readers_report):
    parser = _Tables()
    parser.feed(readers_report.read_text(encoding="utf-8"))
    h2 = [h for h in parser.headings if h in {"Summary", "What changed", "Shared measures"} or
          h.startswith("Appendix: ")]
    assert h2[:3] == ["Summary", "What changed", "Shared measures"]
    assert "Appendix: Linkage model" in h2 and "Appendix: Ingest reconciliation" in h2
    assert parser.headings.index(OVERLAP) < parser.headings.index("What changed")
    # counts of rows are not counts of people: a partner's own rows are printed, and so is DOB completeness
    header, rows = parser.tables["Records in per partner (active files)"]
    assert header == ["partner", "files", "rows received", "accepted", "set aside"]
    assert {r[0]: r[2:] for r in rows}["workforce-board"] == ["508", "506", "2"]
    header, rows = parser.tables["Ingest reconciliation per partner and batch"]
    assert "*" not in {c for r in rows for c in r}
    header, rows = parser.tables["Field completeness per partner (share of staged rows with a value)"]
    assert not {"*", "–"} & {c for r in rows if r[0] == "dob" for c in r}


def test_overlap_shows_every_cell_that_need_not_be_hidden(demo_2000, readers_report):
    """From the page alone, as a reader would: the overlap cells, the persons per partner and the people
    summary, related as everybody knows they are (a partner's persons are the combinations holding it).
    No withheld combination can be solved for, and each withheld one of 11 or more is needed: printing it
    would let a small one be solved for."""
    parser = _Tables()
    parser.feed(readers_report.read_text(encoding="utf-8"))
    _, rows = parser.tables[OVERLAP]
    combos = [r[0] for r in rows]
    printed = {r[0]: None if r[2] == "*" else int(r[2].replace(",", "")) for r in rows}
    _, per_partner = parser.tables["Persons per partner"]
    _, people = parser.tables["People in the linked data"]
    # the equations a reader can write: unknowns are the 7 combination counts
    equations: list[tuple[list[float], int]] = []
    for partner, n in per_partner:
        if n != "*":
            equations.append(([float(partner in c.split(" + ")) for c in combos], int(n.replace(",", ""))))
    sums = {"people linked": lambda c: True, "known to two or more partners": lambda c: " + " in c,
            "known to one partner only": lambda c: " + " not in c}
    for item, n in people:
        if n != "*":
            equations.append(([float(sums[item](c)) for c in combos], int(n.replace(",", ""))))
    truth_cw = read_crosswalk_of(demo_2000)
    truth = dict(truth_cw.group_by("ps").len().iter_rows())

    def solvable(shown: set[str]) -> set[str]:
        rows_ = [a for a, _ in equations] + [[float(c == s) for c in combos] for s in shown]
        _, sv, vt = np.linalg.svd(np.array(rows_), full_matrices=False)
        basis = vt[: int((sv > 1e-9 * sv[0]).sum())]
        out = set()
        for j, c in enumerate(combos):
            e = np.eye(len(combos))[j]
            if c not in shown and np.linalg.norm(e - (e @ basis.T) @ basis) < 1e-6:
                out.add(c)
        return out

    shown = {c for c, v in printed.items() if v is not None}
    assert all(v == truth.get(c, 0) for c, v in printed.items() if v is not None)
    assert all(v == 0 or v >= 11 for v in printed.values() if v is not None)
    assert solvable(shown) == set(), "a withheld overlap cell can be worked out from the page"
    hidden = [c for c in combos if printed[c] is None]
    assert [truth[c] for c in hidden if truth[c] < 11], "the demo has a small overlap cell"
    for c in hidden:
        if truth[c] >= 11:
            leaked = solvable(shown | {c})
            assert any(0 < truth.get(x, 0) < 11 for x in leaked), f"{c} ({truth[c]}) need not be hidden"
    # on the README's demo: the cells of 91, 141 and 192/350/282 persons are shown; one small cell and one
    # complement are withheld
    assert sorted(printed[c] for c in shown) == [91, 141, 192, 282, 350]
    assert len(hidden) == 2
    meta = re.search(r"(\d+) of (\d+) counts withheld \((\d+)%; (\d+) small, (\d+) complementary\)",
                     readers_report.read_text(encoding="utf-8"))
    assert meta, "the page says how much it withholds"
    # the figures README.md and docs/indicators.md quote
    assert tuple(int(g) for g in meta.groups()) == (61, 231, 26, 30, 31), meta.group(0)


def read_crosswalk_of(root: Path) -> pl.DataFrame:
    """Restricted truth for the test: each person's partners, joined as the report labels them."""
    from cilink.link.outputs import read_crosswalk

    ws = Workspace.open(root)
    cw = read_crosswalk(ws.link_dir)
    return cw.group_by("person_id").agg(pl.col("partner").unique().sort().str.join(" + ").alias("ps"))


_PHONE_PROBE = """() => {
  const doc = document.documentElement;
  let smallest = 1e9, texts = 0;
  for (const t of document.querySelectorAll('figure svg text')) {
    const size = parseFloat(getComputedStyle(t).fontSize);
    const m = t.getScreenCTM();  // rotated labels too: the scale is the length of the first column
    const scale = m ? Math.hypot(m.a, m.b) : 1;
    smallest = Math.min(smallest, size * scale); texts++;
  }
  const wide = [...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().width > innerWidth)
    .filter(t => getComputedStyle(t.parentElement).overflowX !== 'auto').length;
  return {scrollWidth: doc.scrollWidth, width: innerWidth, smallest, texts, unscrolled: wide};
}"""


def test_report_reads_at_390_px_and_1280_px(readers_report):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, headless=True, args=["--no-sandbox"])
        try:
            for width in (390, 1280):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(readers_report.as_uri())
                m = page.evaluate(_PHONE_PROBE)
                assert m["scrollWidth"] <= width, f"the page scrolls sideways at {width} px: {m}"
                assert m["unscrolled"] == 0, m
                assert m["texts"] > 100 and m["smallest"] >= 10, f"chart text below 10 px at {width} px: {m}"
                page.screenshot(path=str(ARTIFACTS / f"report-{width}.png"), full_page=False)
                page.close()
        finally:
            browser.close()


def test_what_changed_compares_with_the_last_aggregate_release(outputs):
    parser = _Tables()
    parser.feed(outputs[0].read_text(encoding="utf-8"))
    heading = next(h for h in parser.headings if h.startswith("People then (aggregate release"))
    assert AGGREGATE_RELEASE in heading
    header, rows = parser.tables[heading]
    assert header == ["count", "then", "now"] and len(rows) >= 10
    # nothing came in since that release: every count printed then is printed the same now
    assert all(then == now for _, then, now in rows if then != "*")
    assert any(then != "*" for _, then, _ in rows)
