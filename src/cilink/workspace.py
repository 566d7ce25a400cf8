"""A cilink workspace on disk: its layout (design §2), creation, and where each stage reads and writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cilink import atomic
from cilink.config import CONFIG_FILE, CilinkConfig, load_config, read_secret
from cilink.errors import UsageError, WorkspaceError

RESTRICTED = ".cilink"
GITIGNORE = """\
# written by `cilink init`: identifiable data never goes into version control
/.cilink/
/inbox/
"""

CONFIG_TEMPLATE = """\
# cilink.toml — the one configuration file of this workspace.
# Check it with `cilink config check`. Full reference: README.md ("Configuration").

[project]
name = "{name}"
# The linkage secret is read from this environment variable (or from secret_file, a key
# file OUTSIDE the workspace). It is never written into the workspace, logs or releases.
secret_env = "CILINK_SECRET"
# secret_file = "/etc/cilink/secret.key"

# One [[partners]] block per partner organisation. Example:
#
# [[partners]]
# id = "holyoke-schools"        # slug used in paths and the ledger
# domain = "school"             # school | workforce | housing
# format = "csv"                # csv | xlsx | json | parquet | hmis-csv
# # encoding = "cp1252"         # default: detected (BOMs handled)
# date_format = "%m/%d/%Y"      # the partner's date format; ambiguous dates are errors, not guesses
# mode = "snapshot"             # snapshot: each file replaces earlier data; append: adds to it
# [partners.columns]            # canonical field = source header
# source_person_id = "StudentID"
# first_name = "First Name"
# last_name = "Last Name"
# dob = "Birth Date"
# [partners.codes.sex]          # source value = canonical value
# "Male" = "M"
# "Female" = "F"

# [inbox]                       # `cilink run` (docs/intake.md)
# stable_seconds = 30           # take a file once unchanged this long, or at once beside <file>.done
# processed = "keep"            # ingested raw exports: keep in .cilink/inbox/ (0600) | delete

[link]
# Pairs with match weight >= link_threshold are linked; those within review_band below it are queued for review.
link_threshold = 4.0            # match weight = log2 odds; 4.0 ≈ match probability 0.94
review_band = 4.0
seed = 42

[export]
tier = "deidentified"           # tier of `cilink export` without --audience: aggregate | deidentified
k = 5                           # deidentified: every whole record (all tables joined) shared by >= k persons
mean_risk = 0.05                # deidentified: mean re-identification risk (classes / persons)
partner_single_out = 0.01       # deidentified: share of its clients a partner may single out
max_suppression = 0.05          # share of persons whose released values may be suppressed
min_cell = 11                   # published counts below this are suppressed
profile = "safe-harbor"         # research tier: safe-harbor (dates as years) | limited (months, ZIP5)
on_run = true                   # `cilink run` exports after linking
# priorities = ["age", "domains"]   # deidentified: attributes kept first (docs/analysts.md)
# [export.non_identifying]      # attribute = "the reason it cannot identify anyone"
# [[export.audiences]]          # own person_key secret and tier per audience; `cilink export --audience ID`
# id = "university-dua"
# tier = "research"             # aggregate | deidentified | research (a partner: aggregate only)
# secret_env = "CILINK_SECRET_UNIVERSITY"
# recipient = "State University"    # research: recipient, agreement, purpose and expires are required
# agreement = "DUA-2026-014"
# purpose = "housing stability and attendance"
# expires = 2027-06-30

[engine]
backend = "duckdb"              # duckdb | spark (pip install 'cilink[spark]', Java 17+); or `cilink link --backend`
# spark_master = "local[*]"     # or spark://host:7077, yarn, k8s://… (see docs/scaling.md)
# spark_conf = {{ "spark.driver.memory" = "8g" }}
# checkpoint_dir = "/mnt/shared/cilink-spark"  # Spark scratch; on a cluster, storage every executor sees
"""


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace; every stage gets its inputs and outputs from here."""

    root: Path
    #: set while a link run writes its new generation (see cilink.generations)
    link_generation: Path | None = None

    @classmethod
    def open(cls, root: Path | str) -> Workspace:
        """Open an existing workspace, or raise WorkspaceError saying how to create one."""
        path = Path(root).resolve()
        if not (path / CONFIG_FILE).is_file() or not (path / RESTRICTED).is_dir():
            raise WorkspaceError(
                f"{path} is not a cilink workspace (no {CONFIG_FILE} and {RESTRICTED}/)",
                hint=f"run `cilink init {root}` first, or pass --workspace pointing at one",
            )
        return cls(path)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @cached_property
    def config(self) -> CilinkConfig:
        return load_config(self.config_path)

    def secret(self) -> bytes:
        """The linkage secret (from the environment or a key file outside the workspace), checked for
        strength and against the fingerprint recorded in the ledger (cilink.keys)."""
        from cilink.keys import LINKAGE, guarded

        return guarded(self.ledger_path, LINKAGE, self.raw_secret(None), self.secret_source(None),
                       demo=self.config.project.demo)

    def audience_secret(self, env_name: str, audience: str) -> bytes:
        """A release audience's own secret (``[[export.audiences]] secret_env``), checked like ``secret``."""
        from cilink.keys import guarded

        return guarded(self.ledger_path, f"audience:{audience}", self.raw_secret(env_name),
                       self.secret_source(env_name), demo=self.config.project.demo)

    def secret_source(self, env_name: str | None) -> str:
        """Where the secret comes from, for messages: the environment variable, or the key file setting."""
        project = self.config.project
        name = env_name or project.secret_env
        if env_name is None and not os.environ.get(name) and project.secret_file is not None:
            return f"project.secret_file ({project.secret_file})"
        return name

    def raw_secret(self, env_name: str | None) -> bytes:
        """The secret as configured (key file outside the workspace), before the strength and fingerprint checks."""
        from cilink.keys import check_key_file

        project = self.config.project
        if env_name is None and project.secret_file is not None:
            check_key_file(project.secret_file, "project.secret_file", self.root)
        return read_secret(project, env_name=env_name)

    @property
    def restricted(self) -> Path:
        return self.root / RESTRICTED

    @property
    def ledger_path(self) -> Path:
        return self.restricted / "ledger.sqlite"

    @property
    def lock_path(self) -> Path:
        return self.restricted / "lock"

    @property
    def logs_dir(self) -> Path:
        return self.restricted / "logs"

    @property
    def link_root(self) -> Path:
        return self.restricted / "link"

    @property
    def link_dir(self) -> Path:
        """The current link outputs (crosswalk, pairs, model …): one published generation directory."""
        if self.link_generation is not None:
            return self.link_generation
        return self.link_root / "current"

    @property
    def quarantine_dir(self) -> Path:
        return self.restricted / "quarantine"

    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    def staged_dir(self, partner_id: str) -> Path:
        return self.restricted / "staged" / partner_id

    def inbox_dir(self, partner_id: str) -> Path:
        return self.root / "inbox" / partner_id


def ensure_layout(root: Path) -> None:
    """Create any missing workspace directories (restricted ones with mode 0700) and the ledger."""
    restricted = root / RESTRICTED
    restricted.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(restricted, 0o700)  # mkdir's mode is masked by umask
    for sub in ("staged", "quarantine", "link", "logs"):
        (restricted / sub).mkdir(mode=0o700, exist_ok=True)
    for sub in ("staged", "quarantine", "link", "logs"):
        os.chmod(restricted / sub, 0o700)
    (root / "inbox").mkdir(exist_ok=True)
    (root / "releases").mkdir(mode=0o750, exist_ok=True)
    if not (root / ".gitignore").exists():  # a workspace inside a git repository keeps its data out of it
        atomic.write_text(root / ".gitignore", GITIGNORE)
    from cilink.ledger import Ledger

    Ledger(restricted / "ledger.sqlite").close()


def init_workspace(root: Path | str, name: str | None = None, *, config_text: str | None = None) -> Workspace:
    """Create a workspace (design §2): config, inbox, restricted zone (mode 0700), releases.

    Refuses to overwrite an existing cilink.toml. ``config_text`` replaces the commented template.
    Example: ``init_workspace("ws", name="Holyoke Cradle-to-Career")``
    """
    path = Path(root).resolve()
    if (path / CONFIG_FILE).exists():
        raise UsageError(
            f"{path / CONFIG_FILE} already exists", hint="choose an empty directory, or edit the existing config"
        )
    path.mkdir(parents=True, exist_ok=True)
    ensure_layout(path)
    text = config_text if config_text is not None else CONFIG_TEMPLATE.format(name=name or path.name)
    atomic.write_text(path / CONFIG_FILE, text)
    ws = Workspace(path)
    for partner in ws.config.partners:
        ws.inbox_dir(partner.id).mkdir(parents=True, exist_ok=True)
    return ws
