"""A synthetic demo workspace: three partners' exports of one invented population, plus the ground truth.

``generate_demo(out_dir)`` writes::

    out_dir/cilink.toml                                   # the three partners, configured for these files
    out_dir/inbox/holyoke-schools/holyoke-schools.csv     # district SIS (UTF-8 with BOM)
    out_dir/inbox/workforce-board/workforce-board.xlsx    # workforce board (sheet Participants)
    out_dir/inbox/coc-hmis/hmis-export.zip                # HUD HMIS CSV export (FY2024 or FY2026)
    out_dir/.cilink/truth.csv                             # partner, source_person_id, true_id (restricted)
    out_dir/.cilink/demo-bad-rows.json                    # where the deliberately bad rows are (restricted)

Every person is fictional. The same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from cilink.demo.bad_rows import DELIBERATE_BAD_ROWS, PARTNER_HMIS, PARTNER_SCHOOL, PARTNER_WORKFORCE, BadRow
from cilink.demo.hmis import HMIS_FILE, HMIS_VERSIONS, write_hmis_zip
from cilink.demo.partners import (
    SCHOOL_FILE,
    WORKFORCE_FILE,
    assign_partners,
    partners_toml,
    write_school_csv,
    write_workforce_xlsx,
)
from cilink.demo.population import generate_population
from cilink.errors import UsageError

__all__ = [
    "DELIBERATE_BAD_ROWS",
    "EXPORT_FILES",
    "PARTNER_IDS",
    "BadRow",
    "DemoFiles",
    "demo_config_text",
    "generate_demo",
    "generate_population",
]

#: Partner ids in the order they are written.
PARTNER_IDS: tuple[str, ...] = (PARTNER_SCHOOL, PARTNER_WORKFORCE, PARTNER_HMIS)
#: Export file name of each partner (inside ``inbox/<partner-id>/``).
EXPORT_FILES: dict[str, str] = {PARTNER_SCHOOL: SCHOOL_FILE, PARTNER_WORKFORCE: WORKFORCE_FILE,
                                PARTNER_HMIS: HMIS_FILE}
RESTRICTED_DIR = ".cilink"
TRUTH_FILE = "truth.csv"
BAD_ROWS_FILE = "demo-bad-rows.json"


@dataclass(frozen=True)
class DemoFiles:
    """Where ``generate_demo`` wrote things, and how much.

    ``rows`` counts data rows per partner export (for HMIS: Enrollment.csv rows); ``source_people`` counts
    distinct source person ids per partner; ``people_in_data`` counts true people appearing anywhere.
    """

    root: Path
    config: Path
    exports: dict[str, Path]
    truth: Path
    bad_rows: Path
    people: int
    people_in_data: int
    rows: dict[str, int] = field(default_factory=dict)
    source_people: dict[str, int] = field(default_factory=dict)


def demo_config_text(hmis_version: str = "FY2026") -> str:
    """The demo's cilink.toml: project settings and the three partners with their exact headers."""
    hmis = "\n".join([
        "[[partners]]",
        f'id = "{PARTNER_HMIS}"',
        'domain = "housing"',
        'format = "hmis-csv"             # reads Export/Client/Enrollment/Exit/Project.csv itself',
        'date_format = "%Y-%m-%d"',
        'mode = "snapshot"',
        "",
    ])
    return "\n".join([
        f"# Synthetic demo workspace written by cilink.demo: every person is fictional. HMIS CSV {hmis_version}.",
        "[project]",
        'name = "Holyoke Cradle-to-Career (synthetic demo)"',
        'secret_env = "CILINK_SECRET"',
        "demo = true                      # synthetic data: the published demo secret is accepted",
        "",
        partners_toml(),
        hmis,
    ])


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _restricted_dir(root: Path) -> Path:
    restricted = root / RESTRICTED_DIR
    restricted.mkdir(mode=0o700, exist_ok=True)
    restricted.chmod(0o700)  # mkdir's mode is filtered by the umask
    return restricted


def generate_demo(out_dir: Path, people: int = 5000, seed: int = 1, hmis_version: str = "FY2026",
                  *, overwrite: bool = False) -> DemoFiles:
    """Write a synthetic demo workspace into ``out_dir`` (see the module docstring for the layout).

    ``people`` is the size of the invented population (those served by no partner do not appear, so
    ``DemoFiles.people_in_data`` is somewhat smaller); ``hmis_version`` is ``FY2024`` or ``FY2026``. Refuses
    to overwrite an existing cilink.toml unless ``overwrite`` is set. Very small demos (a few dozen people)
    may not have rows enough for every planted bad row; the manifest lists the ones actually written.

    Example: ``generate_demo(Path("demo"), people=500, seed=1).exports["coc-hmis"].name == "hmis-export.zip"``.
    """
    if hmis_version not in HMIS_VERSIONS:
        raise UsageError(f"unknown HMIS CSV version {hmis_version!r}",
                         hint=f"use one of: {', '.join(HMIS_VERSIONS)}")
    if people < 1:
        raise UsageError("the demo needs at least one person", hint="pass people=500 or more")
    out_dir = Path(out_dir)
    config_path = out_dir / "cilink.toml"
    if config_path.exists() and not overwrite:
        raise UsageError(f"{config_path} already exists",
                         hint="choose an empty directory for the demo, or pass overwrite=True")
    out_dir.mkdir(parents=True, exist_ok=True)
    restricted = _restricted_dir(out_dir)

    population = generate_population(people, seed)
    assigned = assign_partners(population, seed)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".demo-"))
    try:
        results = [
            write_school_csv(population, assigned, seed, staging),
            write_workforce_xlsx(population, assigned, seed, staging),
            write_hmis_zip(population, assigned, seed, staging, hmis_version),
        ]
        exports: dict[str, Path] = {}
        for result in results:
            target = out_dir / "inbox" / result.partner / result.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(result.path, target)
            exports[result.partner] = target
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()

    truth = pl.concat([r.truth for r in results]).sort("partner", "source_person_id")
    truth_path = restricted / TRUTH_FILE
    _atomic_write(truth_path, truth.write_csv().encode("utf-8"), mode=0o600)
    bad_path = restricted / BAD_ROWS_FILE
    manifest = {"note": "Deliberately bad rows planted by cilink.demo; row = 1-based data row, header excluded.",
                "rows": [entry for r in results for entry in r.bad_rows]}
    _atomic_write(bad_path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), mode=0o600)
    _atomic_write(config_path, demo_config_text(hmis_version).encode("utf-8"))
    return DemoFiles(
        root=out_dir,
        config=config_path,
        exports=exports,
        truth=truth_path,
        bad_rows=bad_path,
        people=population.height,
        people_in_data=truth.get_column("true_id").n_unique(),
        rows={r.partner: r.rows for r in results},
        source_people={r.partner: r.truth.height for r in results},
    )
