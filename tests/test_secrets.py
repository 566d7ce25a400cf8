"""Secret continuity (issue 22): weak, published and changed secrets refused (exit 2 naming the fix); rotation
on purpose, audited; key files outside the workspace with mode 0600/0400."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from cilink.errors import ConfigError
from cilink.keys import MIN_BITS, check_strength, estimated_bits
from cilink.ledger import Ledger
from cilink.workspace import Workspace, init_workspace
from tests.conftest import TEST_SECRET, run_cli

OTHER = secrets.token_hex(32)


@pytest.mark.parametrize("weak", ["s", "password123", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                  secrets.token_hex(15), "correcthorse"])
def test_weak_secrets_are_refused(weak: str) -> None:
    with pytest.raises(ConfigError, match="too weak"):
        check_strength(weak.encode(), "CILINK_SECRET")


@pytest.mark.parametrize("strong", [secrets.token_hex(16), secrets.token_urlsafe(16), secrets.token_hex(32),
                                    TEST_SECRET,
                                    # a token_urlsafe(16) that drew letters only (seen in CI, ~1% of draws)
                                    "FbxbhjxwKukzEsfEJEmTpw"])
def test_generated_secrets_are_accepted(strong: str) -> None:
    assert estimated_bits(strong.encode()) >= MIN_BITS
    check_strength(strong.encode(), "CILINK_SECRET")


def test_the_published_demo_secret_only_opens_a_demo_workspace() -> None:
    with pytest.raises(ConfigError, match="published demo secret"):
        check_strength(b"demo-secret-not-for-production", "CILINK_SECRET")
    check_strength(b"demo-secret-not-for-production", "CILINK_SECRET", demo=True)


def test_a_different_secret_is_refused_until_rotated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = init_workspace(tmp_path / "ws")
    assert ws.secret() == TEST_SECRET.encode()  # the first use records its fingerprint
    changed = run_cli("-w", ws.root, "link", "--json", env={"CILINK_SECRET": OTHER})
    assert changed.returncode == 2
    assert "is not the one this workspace uses" in changed.stdout and "cilink secret rotate" in changed.stdout
    declined = run_cli("-w", ws.root, "secret", "rotate", env={"CILINK_SECRET": OTHER}, input_text="n\n")
    assert declined.returncode == 0 and "Nothing was rotated" in declined.stdout
    rotated = run_cli("secret", "rotate", "--yes", "-w", ws.root, env={"CILINK_SECRET": OTHER})
    assert rotated.returncode == 0, rotated.stderr
    monkeypatch.setenv("CILINK_SECRET", OTHER)
    assert ws.secret() == OTHER.encode()  # the new secret is now the workspace's
    monkeypatch.setenv("CILINK_SECRET", TEST_SECRET)
    with pytest.raises(ConfigError, match="is not the one"):
        ws.secret()
    with Ledger(ws.ledger_path) as ledger:
        actions = [e for e in ledger.audit_entries() if e["command"] == "secret"]
    assert [e["action"] for e in actions] == ["secret_recorded", "secret_rotate"]
    assert actions[1]["details"]["old_fingerprint"] == actions[0]["details"]["fingerprint"]
    audit_text = str(actions)
    assert OTHER not in audit_text and TEST_SECRET not in audit_text


def test_a_weak_secret_stops_a_command_with_exit_2(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws").root
    weak = run_cli("-w", ws, "link", env={"CILINK_SECRET": "s"})
    assert weak.returncode == 2 and "too weak" in weak.stderr and "cilink secret generate" in weak.stderr


def test_key_files_must_be_outside_the_workspace_and_private(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ws = init_workspace(tmp_path / "ws")
    monkeypatch.delenv("CILINK_SECRET")  # the key file is used
    inside = ws.root / "secret.key"
    outside = tmp_path / "keys" / "ws.key"
    assert run_cli("secret", "generate", inside, "-w", ws.root).returncode == 2 and not inside.exists()
    made = run_cli("secret", "generate", outside)
    assert made.returncode == 0, made.stderr
    assert oct(outside.stat().st_mode & 0o777) == "0o600" and len(outside.read_text().strip()) == 64
    assert run_cli("secret", "generate", outside).returncode == 2, "an existing key file is never overwritten"

    def secret_from_file(path: Path) -> bytes:
        text = (ws.root / "cilink.toml").read_text()
        (ws.root / "cilink.toml").write_text(text.replace('# secret_file = "/etc/cilink/secret.key"',
                                                          f'secret_file = "{path}"'))
        return Workspace.open(ws.root).secret()

    inside.write_text(secrets.token_hex(32))
    inside.chmod(0o600)
    with pytest.raises(ConfigError, match="inside the workspace"):
        secret_from_file(inside)
    (ws.root / "cilink.toml").write_text((ws.root / "cilink.toml").read_text().replace(str(inside), str(outside)))
    outside.chmod(0o644)
    with pytest.raises(ConfigError, match="mode 0644") as refused:
        Workspace.open(ws.root).secret()
    assert refused.value.hint == f"chmod 600 {outside}"
    outside.chmod(0o400)
    assert Workspace.open(ws.root).secret() == outside.read_text().strip().encode()
    os.chmod(outside, 0o600)
