"""Helpers for the ingest tests: partner configs for the fixture corpus and a workspace factory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cilink.workspace import Workspace, init_workspace
from tests.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "partners"

SCHOOL_COLUMNS = """
[partners.columns]
source_person_id = "StudentID"
first_name = "First Name"
last_name = "Last Name"
dob = "Birth Date"
sex = "Gender"
ssn = "SSN"
zip5 = "Zip"
school_year = "School Year"
grade_level = "Grade"
entry_date = "Entry Date"
exit_date = "Exit Date"
[partners.codes.sex]
"Male" = "M"
"Female" = "F"
"""


def school(pid: str = "schools", *, date_format: str | None = "%m/%d/%Y", extra: str = "",
           mode: str = "snapshot") -> str:
    """A [[partners]] block for the school fixtures (header of school_clean.csv)."""
    fmt = f'date_format = "{date_format}"\n' if date_format else ""
    return f"""
[[partners]]
id = "{pid}"
domain = "school"
format = "csv"
mode = "{mode}"
{fmt}{extra}
{SCHOOL_COLUMNS}"""


def workforce(pid: str = "workforce", *, fmt: str = "csv", date_format: str | None = "%m/%d/%Y",
              extra: str = "") -> str:
    """A [[partners]] block for the workforce fixtures (ParticipantID, First, Last, DOB, Participation Date …)."""
    df = f'date_format = "{date_format}"\n' if date_format else ""
    return f"""
[[partners]]
id = "{pid}"
domain = "workforce"
format = "{fmt}"
{df}{extra}
[partners.columns]
source_person_id = "ParticipantID"
first_name = "First"
last_name = "Last"
dob = "DOB"
entry_date = "Participation Date"
exit_date = "Exit Date"
"""


def workforce_json(pid: str = "workforce-json", fmt: str = "json") -> str:
    return f"""
[[partners]]
id = "{pid}"
domain = "workforce"
format = "{fmt}"
[partners.columns]
source_person_id = "ParticipantID"
first_name = "First"
last_name = "Last"
dob = "DOB"
entry_date = "Participation Date"
zip5 = "Zip"
ssn = "SSN"
employed_q2 = "Employed Q2"
earnings_q2 = "Earnings Q2"
"""


def hmis(pid: str = "coc-hmis") -> str:
    return f"""
[[partners]]
id = "{pid}"
domain = "housing"
format = "hmis-csv"
"""


def make_ws(tmp_path: Path, *blocks: str, name: str = "ws") -> Path:
    """A fresh workspace whose cilink.toml holds the given [[partners]] blocks."""
    root = tmp_path / name
    init_workspace(root, config_text='[project]\nname = "ingest tests"\n' + "".join(blocks))
    return root


def ingest_json(ws: Path, partner: str, file: Path, *extra: str) -> tuple[int, dict[str, Any] | None, str]:
    """Run `cilink -w WS ingest PARTNER FILE --json`; (exit code, parsed JSON or None, stderr)."""
    r = run_cli("-w", ws, "ingest", partner, file, "--json", *extra)
    data = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None
    return r.returncode, data, r.stderr


def reason_of(stderr: str) -> str | None:
    """The stable reason code the CLI prints for a rejected file ("Reason: missing_column")."""
    for line in stderr.splitlines():
        if line.startswith("Reason: "):
            return line.removeprefix("Reason: ").strip()
    return None


def workspace_state(ws: Path) -> dict[str, Any]:
    """Everything ingest may write, to compare before/after a rejected or dry run."""
    w = Workspace.open(ws)
    from cilink.ledger import Ledger

    with Ledger(w.ledger_path) as ledger:
        batches = [b.batch_id for b in ledger.batches()]
        audit = len(ledger.audit_entries())
    files = sorted(str(p.relative_to(ws)) for d in ("staged", "quarantine")
                   for p in (w.restricted / d).rglob("*") if p.is_file())
    return {"batches": batches, "audit": audit, "files": files}
