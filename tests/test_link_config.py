"""`cilink config check` names unknown [link] rules (issue 20: `comparisons = ["nonsense"]` used to pass)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_config_check_names_unknown_comparisons_and_blocking_fields(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run_cli("init", ws).returncode == 0
    config = ws / "cilink.toml"
    text = config.read_text(encoding="utf-8")
    assert "\n[link]\n" in text
    good = text.replace("\n[link]\n", '\n[link]\ncomparisons = ["first_name", "dob"]\n'
                        'placeholder_names = ["Walk In"]\n')
    config.write_text(good, encoding="utf-8")
    assert run_cli("-w", ws, "config", "check").returncode == 0
    bad = text.replace("\n[link]\n", '\n[link]\ncomparisons = ["nonsense", "dob"]\n'
                       'blocking_rules = [["dob"], ["shoe_size"]]\n')
    config.write_text(bad, encoding="utf-8")
    done = run_cli("-w", ws, "config", "check")
    assert done.returncode == 2
    assert "link.comparisons: unknown comparison(s) ['nonsense']" in done.stderr
    assert "link.blocking_rules[1]: unknown field 'shoe_size'" in done.stderr
