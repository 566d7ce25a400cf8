"""Docs that run: the README's five-minute walkthrough, command by command, on examples/."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


def walkthrough_commands() -> list[list[str]]:
    """The `cilink …` lines of the README's walkthrough code block, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A five-minute walkthrough", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the walkthrough has a bash block"
    commands = []
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("cilink "):
            commands.append(shlex.split(line)[1:])
    return commands


def test_readme_walkthrough_runs_on_examples(tmp_path: Path) -> None:
    commands = walkthrough_commands()
    assert [c for c in commands if c[0] == "init"], "the walkthrough starts with cilink init"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for args in commands:
        if args[0] == "init":
            r = run_cli(*args, cwd=tmp_path)
            assert r.returncode == 0, (args, r.stderr)
            shutil.copy(tmp_path / "examples" / "cilink.toml", tmp_path / "my-ws" / "cilink.toml")  # the `cp` step
            continue
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    releases = list((tmp_path / "my-ws" / "releases").iterdir())
    assert len(releases) == 1 and (releases[0] / "persons.parquet").exists()
