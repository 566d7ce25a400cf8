"""`cilink review serve`: the review workbench — decisions in the ledger, the gate in front of it, and a
reviewer's session in real headless Chromium (Playwright driving Debian's chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from cilink.generations import current_generation
from cilink.ledger import Ledger
from cilink.link import review_ledger
from cilink.link.linkage import link_workspace
from cilink.link.outputs import QUEUE_FILE, read_crosswalk, read_records
from cilink.link.workbench import Workbench, level_of
from cilink.workspace import Workspace
from tests.conftest import TEST_SECRET, run_cli


@pytest.fixture(scope="module")
def demo(demo_2000: Path) -> Path:
    """The 2,000-person demo, linked: its review queue holds a few pairs."""
    return demo_2000


def _copy(demo: Path, tmp_path: Path) -> Workspace:
    target = tmp_path / "ws"
    shutil.copytree(demo, target, symlinks=True)
    return Workspace.open(target)


# --- which decision stands ------------------------------------------------------------------------------------


def test_standing_decisions_disagreement_adjudication_and_undo(tmp_path: Path) -> None:
    ws_dir = tmp_path / "l"
    ws_dir.mkdir()
    pair, other = ("a:1", "b:2"), ("b:3", "a:4")
    with Ledger(ws_dir / "ledger.sqlite") as ledger:
        review_ledger.record(ledger, pair, "match", "alice")
        review_ledger.record(ledger, other, "unsure", "alice")
        assert review_ledger.standing_rows(ledger.conn) == [("a:1", "b:2", "match")]
        review_ledger.record(ledger, pair, "non_match", "bob")  # a second reviewer disagrees
        state = review_ledger.read_state(ledger.conn)
        assert state.disagreements() == {pair: {"alice": "match", "bob": "non_match"}}
        assert review_ledger.standing_rows(ledger.conn) == [], "a disagreement stands for nothing"
        review_ledger.record(ledger, pair, "match", "carol", adjudicate=True)
        assert review_ledger.standing_rows(ledger.conn) == [("a:1", "b:2", "match")]
        assert review_ledger.withdraw(ledger, "carol").decision == "match"  # undo the adjudication
        assert review_ledger.standing_rows(ledger.conn) == []
        assert review_ledger.withdraw(ledger, "alice").decision == "unsure"  # alice's latest: the unsure mark
        assert review_ledger.withdraw(ledger, "alice").decision == "match"
        assert review_ledger.standing_rows(ledger.conn) == [("a:1", "b:2", "non_match")]
        assert review_ledger.withdraw(ledger, "alice") is None
        seen = review_ledger.review_seq(ledger.conn)
        assert review_ledger.touched_since(ledger.conn, seen["decisions"], seen["marks"]) == []
        assert review_ledger.touched_since(ledger.conn, seen["decisions"], seen["marks"] - 1) == ["a:1", "b:2"]
        audit = [dict(e["details"]) | {"action": e["action"]} for e in ledger.audit_entries()]
    assert [a["action"] for a in audit] == ["review_decision"] * 3 + ["review_adjudicate"] + ["review_withdraw"] * 3
    assert {a["reviewer"] for a in audit} == {"alice", "bob", "carol"}
    assert not any("a:1" in json.dumps(a) for a in audit), "the audit names reviewers, never records"


def test_level_of_a_weight() -> None:
    levels = [(0.0, "missing", False), (8.4, "exact", True), (5.9, "close", False), (-10.0, "all other", False)]
    assert level_of(levels, 5.9) == "close"
    assert level_of(levels, 0.0) == "missing"
    assert level_of(levels, 9.7).startswith("exact (weighted by how common")
    assert level_of(levels, None).startswith("not scored")


def test_workbench_queue_view_and_the_next_link(demo: Path, tmp_path: Path) -> None:
    ws = _copy(demo, tmp_path)
    bench = Workbench(ws, "alice")
    queue = bench.queue()
    assert 0 < len(queue) == pl.read_parquet(current_generation(ws) / QUEUE_FILE).height
    assert [i.priority for i in queue] == sorted((i.priority for i in queue), reverse=True)
    view = bench.view(queue[0].token)
    assert view is not None and view.match_weight is not None
    assert abs(view.comparisons[-1].cumulative - view.match_weight) < 1e-6, "the waterfall adds up to the weight"
    assert all(c.level != "level not recognised" for c in view.comparisons)
    assert {f.field for f in view.fields} >= {"first_name", "last_name", "dob", "ssn"}
    assert not any(re.fullmatch(r"\d{9}", f.left) for f in view.fields if f.field == "ssn"), "SSNs are masked"
    assert bench.view("0" * 16) is None
    assert bench.decide(queue[0].token, "match")
    assert link_workspace(ws).must_link == 1  # in process: the browser test below runs `cilink link`
    assert bench.decided() == [(queue[0].token, "match", True)]
    # undo, and the next (incremental) link takes the match back: the pair is two persons again
    assert bench.undo() == queue[0].token
    summary = link_workspace(ws)
    assert summary.mode == "incremental" and summary.must_link == 0
    assert bench.decided() == [] and bench.view(queue[0].token).same_person_now is False


# --- the gate ----------------------------------------------------------------------------------------------------


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def _client(app, host: str = "127.0.0.1"):
    from starlette.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1:8765", client=(host, 50000), follow_redirects=False)


ROUTES = [("GET", "/"), ("GET", "/queue"), ("GET", "/decided"), ("GET", "/disagreements"),
          ("GET", "/pair/0123456789abcdef"), ("POST", "/pair/0123456789abcdef/decide"), ("POST", "/undo"),
          ("GET", "/static/workbench.js"), ("GET", "/static/workbench.css"), ("GET", "/no-such-route")]


def test_every_route_needs_the_token_and_a_local_client(demo: Path, tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from cilink.web.app import make_app

    ws = _copy(demo, tmp_path)
    bench = Workbench(ws, "alice")
    app = make_app(bench, "the-token", port=8765)
    names = set(read_records(ws.link_dir)["last_name"].drop_nulls().to_list())
    stranger = _client(app)
    for method, path in ROUTES:
        r = stranger.request(method, path)
        assert r.status_code == 401, (method, path)
        assert r.headers["cache-control"] == "no-store"
    assert stranger.get("/?token=wrong").status_code == 401

    reviewer = _client(app)
    opened = reviewer.get("/?token=the-token")
    assert opened.status_code == 303 and "cilink_review" in opened.headers["set-cookie"]
    assert "httponly" in opened.headers["set-cookie"].lower()
    assert _client(app).get("/?token=the-token").status_code == 401, "the token opens the workbench once"
    page = reviewer.get("/queue")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    pair = reviewer.get(f"/pair/{bench.queue()[0].token}")
    assert pair.status_code == 200 and any(n in pair.text for n in names)
    assert not re.search(r"https?://(?!127\.0\.0\.1)", pair.text), "no external resource"
    assert reviewer.post(f"/pair/{bench.queue()[0].token}/decide", data={"decision": "match"}).status_code == 403

    # the session cookie is worthless from another machine, or under another host name (DNS rebinding)
    cookie = {"cilink_review": reviewer.cookies["cilink_review"]}
    remote = _client(app, host="192.168.1.20")
    remote.cookies.update(cookie)
    for method, path in ROUTES:
        r = remote.request(method, path)
        assert r.status_code == 403 and not any(n in r.text for n in names), (method, path)
    assert remote.get("/?token=the-token").status_code == 403
    rebound = reviewer.get("/queue", headers={"host": "evil.example:8765"})
    assert rebound.status_code == 403 and not any(n in rebound.text for n in names)


def test_second_reviewer_disagreement_and_adjudication_over_http(demo: Path, tmp_path: Path) -> None:
    from cilink.web.app import make_app

    ws = _copy(demo, tmp_path)
    first = Workbench(ws, "alice")
    pair = first.queue()[0].token
    assert first.decide(pair, "match")
    second_bench = Workbench(ws, "bob", second=True)
    assert [i.token for i in second_bench.queue()] == [pair], "the second reviewer sees what others decided"
    client = _client(make_app(second_bench, "t2", port=8765))
    client.get("/?token=t2")
    page = client.get(f"/pair/{pair}")
    assert page.status_code == 200 and "alice" not in page.text, "a blind second review"
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    assert client.post(f"/pair/{pair}/decide", data={"csrf": csrf, "decision": "non_match"}).status_code == 303
    listed = client.get("/disagreements")
    assert pair in listed.text and "alice: match" in listed.text and "bob: non-match" in listed.text
    with Ledger(ws.ledger_path) as ledger:
        assert review_ledger.standing_rows(ledger.conn) == []
    # carol adjudicates from the disagreements page
    judge = _client(make_app(Workbench(ws, "carol"), "t3", port=8765))
    judge.get("/?token=t3")
    page = judge.get(f"/pair/{pair}?adjudicate=1")
    assert 'name="adjudicate" value="1"' in page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    done = judge.post(f"/pair/{pair}/decide", data={"csrf": csrf, "decision": "match", "adjudicate": "1"})
    assert done.status_code == 303 and done.headers["location"] == "/disagreements"
    assert pair not in judge.get("/disagreements").text
    with Ledger(ws.ledger_path) as ledger:
        assert [d for *_, d in review_ledger.standing_rows(ledger.conn)] == ["match"]
        actions = [e["action"] for e in ledger.audit_entries()][-3:]
    assert actions == ["review_decision", "review_decision", "review_adjudicate"]


def test_guards_name_households_twins_and_ssn_conflicts() -> None:
    from cilink.link.workbench import _guards

    a = {"first_name": "ana", "last_name": "diaz", "dob": "2010-01-02", "street": "1 MAIN ST", "ssn": "123456789"}
    twin = {**a, "first_name": "eva", "ssn": "987654321"}
    guards = _guards(a, twin)
    assert len(guards) == 3 and guards[0].startswith("household") and guards[1].startswith("twin")
    assert guards[2].startswith("SSN conflict")
    assert _guards(a, dict(a)) == []


def test_a_port_in_use_is_a_usage_error(demo: Path) -> None:
    from cilink.web.app import free_socket

    taken = free_socket()
    try:
        out = run_cli("-w", demo, "review", "serve", "--port", str(taken.getsockname()[1]))
    finally:
        taken.close()
    assert out.returncode == 2 and "choose another --port" in out.stderr


def test_a_failing_request_logs_no_data(demo: Path, tmp_path: Path, capsys, caplog) -> None:
    from cilink.web.app import make_app

    bench = Workbench(_copy(demo, tmp_path), "alice")

    def broken() -> list:
        raise KeyError("holyoke-schools:211944")

    bench.queue = broken  # type: ignore[method-assign]
    app = make_app(bench, "t", port=8765)
    client = _client(app)
    client.get("/?token=t")
    r = client.get("/queue")
    assert r.status_code == 500 and "211944" not in r.text
    assert app.errors == ["KeyError"]
    assert "211944" not in capsys.readouterr().err + caplog.text


# --- a reviewer's session in headless Chromium -------------------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def server(demo: Path, tmp_path: Path):
    ws = _copy(demo, tmp_path)
    env = {**os.environ, "CILINK_SECRET": TEST_SECRET, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cilink", "-w", str(ws.root), "review", "serve", "--reviewer",
                             "alice"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
        url = found.group(0) if found else None
    if url is None:
        proc.kill()
        pytest.fail("the workbench did not start: " + "".join(lines))
    yield ws, url, proc, lines
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_review_session_in_headless_chromium(server) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    ws, url, proc, lines = server
    origin = url.split("/?")[0]

    def ledger_decisions() -> list[tuple[str, str]]:
        with sqlite3.connect(ws.ledger_path) as conn:
            return [tuple(r) for r in conn.execute("SELECT decision, reviewer FROM review_decisions ORDER BY seq")]

    requested: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requested.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url)
            assert page.locator("#pair").count() == 1, page.content()[:500]
            tokens = []
            for key, expected in (("m", [("match", "alice")]), ("n", [("match", "alice"), ("non_match", "alice")]),
                                  ("u", [("match", "alice"), ("non_match", "alice")])):
                token = page.locator("#pair").get_attribute("data-token")
                tokens.append(token)
                with page.expect_navigation():
                    page.keyboard.press(key)
                assert ledger_decisions() == expected, "each decision is in the ledger at once"
            assert page.locator("#pair").get_attribute("data-token") not in tokens
            with page.expect_navigation():
                page.keyboard.press("z")  # undo the last one (unsure): back on that pair
            assert page.locator("#pair").get_attribute("data-token") == tokens[2]
            page.reload()
            page.goto(origin + "/queue")
            decided = {r.get_attribute("data-token"): r.locator("td.decision").inner_text()
                       for r in page.locator("#queue tbody tr").all()}
            assert decided[tokens[0]] == "match" and decided[tokens[1]] == "non-match" and decided[tokens[2]] == ""
            page.goto(origin + "/decided")
            before = {r.get_attribute("data-token"): r.locator("td.same").inner_text()
                      for r in page.locator("#decided tbody tr").all()}
            assert before == {tokens[0]: "no", tokens[1]: "no"}

            crosswalk = read_crosswalk(ws.link_dir)
            link = run_cli("-w", ws.root, "link", "--json")
            assert link.returncode == 0, link.stderr
            summary = json.loads(link.stdout)
            assert summary["must_link"] == 1 and summary["cannot_link"] == 1
            page.reload()
            after = {r.get_attribute("data-token"): r.locator("td.same").inner_text()
                     for r in page.locator("#decided tbody tr").all()}
            assert after == {tokens[0]: "yes", tokens[1]: "no"}, "the match joined two persons"
            changed = crosswalk.join(read_crosswalk(ws.link_dir), on="record_id", suffix="_now")
            assert changed.filter(pl.col("person_id") != pl.col("person_id_now")).height >= 1
            page.goto(origin + "/queue")
            assert tokens[0] not in [r.get_attribute("data-token") for r in page.locator("#queue tbody tr").all()]
            assert not errors, errors
        finally:
            browser.close()
    assert requested and all(r.startswith(origin) for r in requested), "no request leaves this server"
    # nothing identifiable in what the server printed or logged
    names = set(read_records(ws.link_dir)["last_name"].drop_nulls().to_list())
    proc.send_signal(signal.SIGINT)
    out = "".join(lines) + (proc.communicate(timeout=10)[0] or "")
    logs = "".join(f.read_text() for f in ws.logs_dir.glob("*"))
    assert not any(re.search(rf"\b{re.escape(n)}\b", out + logs, re.IGNORECASE) for n in names if len(n) > 3)
