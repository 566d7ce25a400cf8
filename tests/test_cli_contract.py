"""The CLI's contract (issue 22): every command in the README table, exit codes as the README lists them (for
every command), errors as JSON under --json, global options after the command, disk full / SIGTERM / SIGINT
ending with their own exit code and nothing half-written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from cilink.cli import app, main
from cilink.demo import generate_demo
from cilink.errors import EXIT_CODES
from cilink.operate.inbox import mark_complete
from cilink.workspace import Workspace, ensure_layout, init_workspace
from tests.conftest import TEST_SECRET, run_cli
from tests.test_operate import staged_invariants

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def leaf_commands() -> list[str]:
    """Every command the `cilink` app runs, as typed: "status", "config check", "secret rotate" …"""
    out = []

    def walk(cmd: typer.core.TyperCommand, prefix: str) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            out.append(prefix)

    walk(typer.main.get_command(app), "")
    return sorted(out)


def readme_table(heading: str) -> str:
    return README.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def readme_commands() -> set[str]:
    """The commands the README's table lists: each backticked name in a row's first cell, to its first
    argument or option (`cilink review export FILE` / `review import FILE` → review export, review import)."""
    names = set()
    for row in re.findall(r"^\| (.+?) \|", readme_table("Commands"), flags=re.M)[1:]:
        for seg in re.findall(r"`([^`]+)`", row):
            words = []
            for w in seg.removeprefix("cilink ").split():
                if not re.fullmatch(r"[a-z]+", w):
                    break
                words.append(w)
            names.add(" ".join(words))
    return names


def test_every_command_is_in_the_readme_table() -> None:
    commands = leaf_commands()
    assert len(commands) == 23 and {"encode", "backup", "restore", "secret rotate"} <= set(commands)
    assert sorted(set(commands) - readme_commands()) == []


def test_the_readme_exit_code_table_is_the_one_cilink_uses() -> None:
    codes = {int(c) for c in re.findall(r"^\| (\d+) \|", readme_table("Exit codes"), flags=re.M)}
    assert codes == set(EXIT_CODES)


def call(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         stdin: str = "") -> tuple[int, str, str]:
    """`cilink ARGS` in this process (the real entry point, exit-code mapping included)."""
    import io

    monkeypatch.setattr(sys, "argv", ["cilink", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as done:
            main()
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


#: a failing call of every command: each must exit with a code of the README table, naming the problem
FAILING = {
    "audit": ["audit"], "backup": ["backup", "DEST"], "config check": ["config", "check"],
    "crosswalk export": ["crosswalk", "export", "x.csv"], "demo": ["demo", "DIR", "--people", "3"],
    "encode": ["encode", "missing.toml", "in.csv", "out.parquet"], "evaluate": ["evaluate", "truth.csv"],
    "export": ["export"], "indicators": ["indicators"], "ingest": ["ingest", "p", "f.csv"],
    "init": ["init", "EXISTING"], "link": ["link"], "purge": ["purge", "--partner", "p", "--yes"],
    "report": ["report"], "restore": ["restore", "missing-backup", "DIR"], "review export": ["review", "export", "x"],
    "review import": ["review", "import", "x.csv"],
    "review serve": ["review", "serve"], "run": ["run"], "schema": ["schema", "nope"],
    "secret generate": ["secret", "generate", "EXISTING/cilink.toml"], "secret rotate": ["secret", "rotate"],
    "status": ["status"],
}


def test_every_command_fails_with_a_documented_exit_code_and_json_under_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert sorted(FAILING) == leaf_commands(), "a new command needs a failing call here"
    existing = init_workspace(tmp_path / "ws").root
    monkeypatch.chdir(tmp_path / "ws" / "inbox")  # not a workspace
    for name, args in FAILING.items():
        args = [a.replace("EXISTING", str(existing)).replace("DIR", str(tmp_path / "new"))
                .replace("DEST", str(tmp_path / "dest")) for a in args]
        code, out, err = call(args, capsys, monkeypatch)
        assert code in EXIT_CODES and code not in (0, 1), (name, code, out, err)
        assert err.startswith("Error: ") or "Usage:" in err, (name, err)
        code_json, out_json, err_json = call([*args, "--json"], capsys, monkeypatch)
        error = json.loads(out_json)["error"]  # the error as JSON on stdout; the same words on stderr
        assert error["exit_code"] == code_json and error["message"] and err_json.strip(), name
        if "no such option: --json" not in error["message"].lower():  # a command that takes --json
            assert code_json == code and err_json == err, name


def test_global_options_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ws = init_workspace(tmp_path / "ws", name="after").root
    monkeypatch.chdir(tmp_path)
    code, out, _ = call(["status", "-w", str(ws), "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["project"] == "after"
    code, out, _ = call(["status", f"--workspace={ws}"], capsys, monkeypatch)
    assert code == 0 and out.startswith("after — ")
    code, out, _ = call(["purge", "--partner", "p", "-w", str(ws)], capsys, monkeypatch)
    assert code == 2  # unknown partner: a usage error (README), before any question


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    generate_demo(ws, people=150, seed=7)
    ensure_layout(ws)
    mark_complete(Workspace.open(ws))
    return ws


def test_disk_full_exits_7_and_writes_nothing_half(fresh_demo: Path) -> None:
    r = run_cli("-w", fresh_demo, "ingest", "holyoke-schools",
                fresh_demo / "inbox" / "holyoke-schools" / "holyoke-schools.csv", env={"CILINK_FAIL_AT": "write:1"})
    assert r.returncode == 7, r.stderr
    assert r.stderr.startswith("Error: the disk is full") and "nothing was half-written" in r.stderr
    assert not list(fresh_demo.rglob(".*.tmp"))
    staged_invariants(fresh_demo)
    assert not list((fresh_demo / ".cilink" / "staged").rglob("*.parquet"))


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_during_a_run_exits_with_its_code(fresh_demo: Path, sig: signal.Signals, code: int,
                                                   name: str) -> None:
    env = {**os.environ, "CILINK_SECRET": TEST_SECRET, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cilink", "-w", str(fresh_demo), "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder = fresh_demo / ".cilink" / "lock.holder"
    deadline = time.monotonic() + 60
    while not holder.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # inside the run (ingest or link)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"Error: interrupted ({name})" in err or f"Error: terminated ({name})" in err
    assert "nothing was half-written" in err
    staged_invariants(fresh_demo, after_crash=True)


class _LibraryPanic(BaseException):
    """Stands in for pyo3's PanicException: what a signal raised inside a polars call back into Python
    becomes (seen in CI: SIGINT during `cilink run`'s scan_parquet exited 1 with a Rust backtrace)."""


@pytest.mark.parametrize(("signal_name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_that_comes_back_as_a_library_panic_exits_with_its_code(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], signal_name: str, code: int) -> None:
    import cilink.cli as cli
    from cilink.errors import SIGNALS_RECEIVED, Interrupted

    def interrupted_inside_a_library(**_: object) -> None:
        SIGNALS_RECEIVED.append(Interrupted(signal_name, code))  # what cli._on_signal records before raising
        raise _LibraryPanic("called `Result::unwrap()` on an `Err` value: PyErr { Interrupted }")

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(cli, "app", interrupted_inside_a_library)
    monkeypatch.setattr(sys, "argv", ["cilink", "status"])
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    assert exit_.value.code == code
    err = capsys.readouterr().err
    assert f"({signal_name})" in err and "nothing was half-written" in err


def test_a_library_panic_without_a_signal_is_not_taken_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import cilink.cli as cli

    def panics(**_: object) -> None:
        raise _LibraryPanic("a real bug")

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(cli, "app", panics)
    monkeypatch.setattr(sys, "argv", ["cilink", "status"])
    try:
        with pytest.raises(_LibraryPanic):
            main()
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
