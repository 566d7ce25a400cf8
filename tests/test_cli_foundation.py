"""End-to-end tests of the workspace commands: init, config check, status, schema, --version, errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cilink import __version__
from cilink.config import parse_config
from cilink.errors import ConfigError
from tests.conftest import run_cli

GOOD_PARTNER = """
[[partners]]
id = "holyoke-schools"
domain = "school"
format = "csv"
[partners.columns]
source_person_id = "StudentID"
first_name = "First Name"
"""


def test_init_creates_layout_with_restricted_zone_0700(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    r = run_cli("init", ws)
    assert r.returncode == 0, r.stderr
    for sub in ("inbox", "releases", ".cilink/staged", ".cilink/quarantine", ".cilink/link", ".cilink/logs"):
        assert (ws / sub).is_dir(), sub
    assert stat.S_IMODE((ws / ".cilink").stat().st_mode) == 0o700
    assert (ws / ".cilink" / "ledger.sqlite").is_file()
    text = (ws / "cilink.toml").read_text()
    assert text.lstrip().startswith("#"), "the config is commented for the data manager"
    parse_config(text)  # the template itself is valid


def test_init_refuses_existing_workspace(tmp_path: Path) -> None:
    assert run_cli("init", tmp_path / "ws").returncode == 0
    r = run_cli("init", tmp_path / "ws")
    assert r.returncode == 2
    assert "already exists" in r.stderr


def test_config_check_ok_and_json(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run_cli("init", ws)
    (ws / "cilink.toml").write_text((ws / "cilink.toml").read_text() + GOOD_PARTNER)
    r = run_cli("-w", ws, "config", "check", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["partners"] == ["holyoke-schools"]


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        (GOOD_PARTNER.replace('"school"', '"skool"'), "partners[holyoke-schools].domain"),
        (GOOD_PARTNER + GOOD_PARTNER, "partners.id"),
        (GOOD_PARTNER.replace('source_person_id = "StudentID"\n', ""), "partners[holyoke-schools]"),
        (GOOD_PARTNER.replace("first_name", "frist_name"), "partners[holyoke-schools]"),
        ("[link]\nlink_treshold = 3\n", "link.link_treshold"),
    ],
    ids=["unknown-domain", "duplicate-partner", "missing-source-id-mapping", "unknown-field", "typo-key"],
)
def test_malformed_config_exits_2_naming_the_key(tmp_path: Path, snippet: str, key: str) -> None:
    cfg = tmp_path / "cilink.toml"
    cfg.write_text('[project]\nname = "t"\n' + snippet)
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2
    assert key in r.stderr
    assert r.stderr.startswith("Error:") and "Fix:" in r.stderr
    assert "Traceback" not in r.stderr


def test_config_errors_are_all_reported_at_once() -> None:
    text = '[project]\nname="t"\n' + GOOD_PARTNER.replace('"school"', '"skool"') + GOOD_PARTNER + "[link]\nseed='x'\n"
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert len(exc.value.problems) >= 3


def test_invalid_toml_syntax_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "cilink.toml"
    cfg.write_text("[project\nname=")
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and "not valid TOML" in r.stderr


def test_status_plain_and_json(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run_cli("init", ws)
    (ws / "cilink.toml").write_text((ws / "cilink.toml").read_text() + GOOD_PARTNER)
    r = run_cli("status", cwd=ws)
    assert r.returncode == 0, r.stderr
    assert "holyoke-schools" in r.stdout and "\x1b[" not in r.stdout  # plain when piped
    data = json.loads(run_cli("-w", ws, "status", "--json").stdout)
    assert data["partners"][0]["partner"] == "holyoke-schools"
    assert data["partners"][0]["active_batches"] == 0
    assert data["last_run"] is None


def test_not_a_workspace_exits_2_with_fix(tmp_path: Path) -> None:
    r = run_cli("-w", tmp_path / "nowhere", "status")
    assert r.returncode == 2
    assert "not a cilink workspace" in r.stderr and "cilink init" in r.stderr


def test_version() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cilink {__version__}"


def test_unknown_command_is_usage_error() -> None:
    assert run_cli("frobnicate").returncode == 2


def test_schema_command_matches_checked_in_files(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    for name in ("school", "workforce", "housing", "config"):
        r = run_cli("schema", name)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == json.loads((root / "schemas" / f"{name}.json").read_text()), (
            f"schemas/{name}.json is stale: run `python -m cilink.schema_files`"
        )
    assert run_cli("schema", "nonsense").returncode == 2
