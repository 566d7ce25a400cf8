"""Finding a release: the one lookup the report and the indicators share (by id, or the latest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cilink.errors import WorkspaceError
from cilink.ledger import Ledger
from cilink.workspace import Workspace


@dataclass(frozen=True)
class ReleaseRef:
    """A release the ledger records: its id, when it was made, for whom, and where it is."""

    release_id: str
    created_at: str
    audience: str | None
    path: Path


def find_release(ws: Workspace, release_id: str | None = None, *, required: bool = False) -> ReleaseRef | None:
    """The release ``release_id`` (default: the latest one), or None when there is none.

    ``required``: a named release that is not there (no ledger row, or no manifest under releases/) is a
    ``WorkspaceError`` (exit 2) instead. Example: ``find_release(ws).release_id``
    """
    with Ledger(ws.ledger_path) as ledger:
        if release_id is None:
            row = ledger.last_release()
        else:
            found = ledger.conn.execute("SELECT * FROM releases WHERE release_id = ?", (release_id,)).fetchone()
            row = dict(found) if found else None
    ref = None
    if row is not None:
        ref = ReleaseRef(release_id=str(row["release_id"]), created_at=str(row["created_at"]),
                         audience=row.get("audience"), path=ws.releases_dir / str(row["release_id"]))
    if required and release_id is not None and (ref is None or not (ref.path / "manifest.json").is_file()):
        raise WorkspaceError(f"release {release_id} not found under {ws.releases_dir}",
                             hint="pass --release with the name of a directory under releases/, or leave it out")
    return ref
