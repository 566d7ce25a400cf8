"""The ledger (SQLite, restricted zone): batches, runs, append-only audit log, review decisions, ID history."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cilink.faults import crash_point

# the ID history's indexes: dropped and rebuilt around a bulk append (see ``Ledger.add_id_events``)
ID_HISTORY_INDEXES = (("id_history_person", "person_id"), ("id_history_other", "other_person_id"),
                      ("id_history_run", "run_id"))
# an append at least this large, and larger than the history, rebuilds the indexes instead of updating them
BULK_ID_EVENTS = 50_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id        TEXT PRIMARY KEY,
    partner         TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    rows_in         INTEGER NOT NULL,
    accepted        INTEGER NOT NULL,
    quarantined     INTEGER NOT NULL,
    quarantine_by_reason TEXT NOT NULL DEFAULT '{}',
    flags_by_field  TEXT NOT NULL DEFAULT '{}',
    schema_version  INTEGER NOT NULL,
    mode            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active',   -- active | superseded | replaced | purged
    staged_path     TEXT NOT NULL,
    quarantine_path TEXT,
    created_at      TEXT NOT NULL
);
-- one live batch per file; `cilink ingest --replace` keeps the earlier batch of the same file as 'replaced'
CREATE UNIQUE INDEX IF NOT EXISTS batches_partner_sha_live ON batches(partner, sha256) WHERE status != 'replaced';
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    command     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    exit_code   INTEGER,
    summary     TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS audit (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    user     TEXT NOT NULL,
    command  TEXT NOT NULL,
    action   TEXT NOT NULL,
    inputs   TEXT NOT NULL DEFAULT '{}',
    outcome  TEXT NOT NULL,
    details  TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS review_decisions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id_l TEXT NOT NULL,
    record_id_r TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('match', 'non_match')),
    reviewer    TEXT NOT NULL,
    at          TEXT NOT NULL
);
-- what the review workbench adds to a decision: 'unsure' (a pair flagged, no decision), 'withdraw' (an undo:
-- decision_seq or mark_seq names the decision or mark taken back), 'adjudicate' (decision_seq settles a
-- disagreement between reviewers); see cilink.link.review_ledger
CREATE TABLE IF NOT EXISTS review_marks (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL CHECK (kind IN ('unsure', 'withdraw', 'adjudicate')),
    record_id_l  TEXT NOT NULL,
    record_id_r  TEXT NOT NULL,
    reviewer     TEXT NOT NULL,
    at           TEXT NOT NULL,
    decision_seq INTEGER,
    mark_seq     INTEGER
);
CREATE TABLE IF NOT EXISTS id_history (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT NOT NULL,
    run_id          TEXT,
    event           TEXT NOT NULL CHECK (event IN ('new', 'merge', 'split', 'retire')),
    person_id       TEXT NOT NULL,
    other_person_id TEXT
);
""" + "".join(f"CREATE INDEX IF NOT EXISTS {name} ON id_history({col});\n"
                for name, col in ID_HISTORY_INDEXES) + """CREATE TABLE IF NOT EXISTS purges (
    purge_id    TEXT PRIMARY KEY,
    scope       TEXT NOT NULL,
    partner     TEXT,                          -- set for a partner purge (the agreement ended)
    batch_ids   TEXT NOT NULL DEFAULT '[]',
    state       TEXT NOT NULL DEFAULT 'pending',   -- pending | done
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    summary     TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS secrets (
    name        TEXT PRIMARY KEY,              -- the environment variable or key file setting it comes from
    fingerprint TEXT NOT NULL,                 -- keyed: HMAC of a fixed label under the secret itself
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    release_id  TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    profile     TEXT NOT NULL,
    audience    TEXT,
    path        TEXT NOT NULL,
    summary     TEXT NOT NULL DEFAULT '{}'
);
"""


def now_utc() -> str:
    """Current UTC time as an ISO-8601 string (second precision)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


@dataclass(frozen=True)
class Batch:
    """One ingested partner file as the ledger records it."""

    batch_id: str
    partner: str
    file_name: str
    sha256: str
    size_bytes: int
    rows_in: int
    accepted: int
    quarantined: int
    quarantine_by_reason: dict[str, int]
    flags_by_field: dict[str, int]
    schema_version: int
    mode: str
    status: str
    staged_path: str
    quarantine_path: str | None
    created_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Batch:
        d = dict(row)
        d["quarantine_by_reason"] = json.loads(d["quarantine_by_reason"])
        d["flags_by_field"] = json.loads(d["flags_by_field"])
        return cls(**d)


class Ledger:
    """Thin typed access to ledger.sqlite. Every multi-row change happens inside ``transaction()``."""

    def __init__(self, path: Path) -> None:
        from cilink.permissions import create_private_file

        self.path = path
        create_private_file(path)  # SQLite gives its -wal and -shm files the database file's mode
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        # a first link appends an ID event per person (560,000 at 1M): with SQLite's default 2 MB page cache
        # the person-id index spills on every insert (4.4 s there; 3.2 s with 64 MB)
        self.conn.execute("PRAGMA cache_size=-65536")
        old_index = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'batches_partner_sha'"
        if self.conn.execute(old_index).fetchone():
            self.conn.execute("DROP INDEX batches_partner_sha")  # ledgers from before --replace: once
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        crash_point("commit")
        self.conn.execute("COMMIT")

    # batches -------------------------------------------------------------------------------------
    def find_batch(self, partner: str, sha256: str) -> Batch | None:
        row = self.conn.execute(
            "SELECT * FROM batches WHERE partner = ? AND sha256 = ? AND status NOT IN ('purged', 'replaced')",
            (partner, sha256),
        ).fetchone()
        return Batch.from_row(row) if row else None

    def batches(self, partner: str | None = None, *, status: str | None = None) -> list[Batch]:
        sql, args = "SELECT * FROM batches WHERE 1=1", []
        if partner:
            sql += " AND partner = ?"
            args.append(partner)
        if status:
            sql += " AND status = ?"
            args.append(status)
        return [Batch.from_row(r) for r in self.conn.execute(sql + " ORDER BY created_at, rowid", args)]

    def active_batches(self, partner: str | None = None) -> list[Batch]:
        """Batches whose staged records currently count (snapshot mode supersedes earlier ones)."""
        return self.batches(partner, status="active")

    def add_batch(self, batch: Batch, *, supersede_earlier: bool,
                  audit: dict[str, Any] | None = None, replaces: str | None = None) -> list[str]:
        """Record a batch; in snapshot mode mark the partner's earlier active batches superseded (one transaction).

        ``audit`` (keyword arguments of ``audit()``) is appended in the same transaction, so a batch is
        never recorded without its audit entry. ``replaces``: the batch of the same file this one replaces
        (`cilink ingest --replace`), marked 'replaced'. Returns the ids of the other batches superseded.
        """
        d = batch.__dict__.copy()
        d["quarantine_by_reason"] = json.dumps(d["quarantine_by_reason"], sort_keys=True)
        d["flags_by_field"] = json.dumps(d["flags_by_field"], sort_keys=True)
        cols = ", ".join(d)
        marks = ", ".join(f":{k}" for k in d)
        superseded: list[str] = []
        with self.transaction() as c:
            if replaces is not None:
                c.execute("UPDATE batches SET status = 'replaced' WHERE batch_id = ?", (replaces,))
            if supersede_earlier:
                superseded = [r[0] for r in c.execute(
                    "SELECT batch_id FROM batches WHERE partner = ? AND status = 'active' ORDER BY created_at, rowid",
                    (batch.partner,),
                )]
                c.execute(
                    "UPDATE batches SET status = 'superseded' WHERE partner = ? AND status = 'active'",
                    (batch.partner,),
                )
            c.execute(f"INSERT INTO batches ({cols}) VALUES ({marks})", d)
            if audit is not None:
                self.audit(**audit)
        return superseded

    def set_batch_status(self, batch_ids: list[str], status: str) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE batches SET status = ? WHERE batch_id = ?", [(status, b) for b in batch_ids])

    # audit ---------------------------------------------------------------------------------------
    def audit(
        self,
        command: str,
        action: str,
        outcome: str,
        *,
        inputs: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit log (who, what, when, inputs as hashes, outcome). Never identifiers."""
        self.conn.execute(
            "INSERT INTO audit (at, user, command, action, inputs, outcome, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now_utc(),
                current_user(),
                command,
                action,
                json.dumps(inputs or {}, sort_keys=True),
                outcome,
                json.dumps(details or {}, sort_keys=True, default=str),
            ),
        )

    def audit_entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM audit ORDER BY seq DESC" + (f" LIMIT {int(limit)}" if limit else "")
        out = []
        for r in self.conn.execute(sql):
            d = dict(r)
            d["inputs"] = json.loads(d["inputs"])
            d["details"] = json.loads(d["details"])
            out.append(d)
        return out[::-1]

    # runs ----------------------------------------------------------------------------------------
    def start_run(self, run_id: str, command: str) -> None:
        self.conn.execute(
            "INSERT INTO runs (run_id, command, started_at) VALUES (?, ?, ?)", (run_id, command, now_utc())
        )

    def finish_run(self, run_id: str, exit_code: int, summary: dict[str, Any]) -> None:
        self.conn.execute(
            "UPDATE runs SET finished_at = ?, exit_code = ?, summary = ? WHERE run_id = ?",
            (now_utc(), exit_code, json.dumps(summary, sort_keys=True, default=str), run_id),
        )

    def last_run(self, command: str | None = None) -> dict[str, Any] | None:
        sql = (
            "SELECT * FROM runs"
            + (" WHERE command = ?" if command else "")
            + " ORDER BY started_at DESC, rowid DESC LIMIT 1"
        )
        row = self.conn.execute(sql, (command,) if command else ()).fetchone()
        if not row:
            return None
        d = dict(row)
        d["summary"] = json.loads(d["summary"])
        return d

    # purges --------------------------------------------------------------------------------------
    def begin_purge(self, purge_id: str, scope: str, partner: str | None, batch_ids: list[str]) -> None:
        """Record a purge's intent, mark its batches purged, drop the partner's review decisions and audit it:
        one transaction, before any file is touched, so a crash leaves a purge the next writer completes."""
        with self.transaction() as c:
            c.execute("INSERT INTO purges (purge_id, scope, partner, batch_ids, started_at) VALUES (?, ?, ?, ?, ?)",
                      (purge_id, scope, partner, json.dumps(sorted(batch_ids)), now_utc()))
            c.executemany("UPDATE batches SET status = 'purged' WHERE batch_id = ?", [(b,) for b in batch_ids])
            if partner is not None:
                for table in ("review_decisions", "review_marks"):
                    c.execute(f"DELETE FROM {table} WHERE record_id_l LIKE ? OR record_id_r LIKE ?",
                              (f"{partner}:%", f"{partner}:%"))
            self.audit("purge", "purge_started", "pending", inputs={"scope": scope},
                       details={"purge_id": purge_id, "batches": len(batch_ids)})

    def finish_purge(self, purge_id: str, summary: dict[str, Any]) -> None:
        """Mark a purge done and audit it (one transaction): only after the link outputs were rebuilt."""
        with self.transaction() as c:
            c.execute("UPDATE purges SET state = 'done', finished_at = ?, summary = ? WHERE purge_id = ?",
                      (now_utc(), json.dumps(summary, sort_keys=True, default=str), purge_id))
            scope = c.execute("SELECT scope FROM purges WHERE purge_id = ?", (purge_id,)).fetchone()[0]
            self.audit("purge", "purge", "ok", inputs={"scope": scope}, details={"purge_id": purge_id, **summary})

    def purges(self, *, state: str | None = None) -> list[dict[str, Any]]:
        """Purges recorded in the ledger, oldest first (``state``: pending or done)."""
        sql = "SELECT * FROM purges" + (" WHERE state = ?" if state else "") + " ORDER BY started_at, rowid"
        out = []
        for r in self.conn.execute(sql, (state,) if state else ()):
            d = dict(r)
            d["batch_ids"] = json.loads(d["batch_ids"])
            d["summary"] = json.loads(d["summary"])
            out.append(d)
        return out

    # secrets -------------------------------------------------------------------------------------
    def secret_fingerprint(self, name: str) -> str | None:
        row = self.conn.execute("SELECT fingerprint FROM secrets WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_secret_fingerprint(self, name: str, fingerprint: str, *, audit: dict[str, Any] | None = None) -> None:
        """Record (or replace, on rotation) the fingerprint of a secret, with its audit entry if given."""
        with self.transaction() as c:
            c.execute("INSERT INTO secrets (name, fingerprint, recorded_at) VALUES (?, ?, ?) "
                      "ON CONFLICT(name) DO UPDATE SET fingerprint = excluded.fingerprint, "
                      "recorded_at = excluded.recorded_at", (name, fingerprint, now_utc()))
            if audit is not None:
                self.audit(**audit)

    # releases ------------------------------------------------------------------------------------
    def add_release(
        self, release_id: str, profile: str, audience: str | None, path: str, summary: dict[str, Any]
    ) -> None:
        self.conn.execute(
            "INSERT INTO releases (release_id, created_at, profile, audience, path, summary) VALUES (?, ?, ?, ?, ?, ?)",
            (release_id, now_utc(), profile, audience, path, json.dumps(summary, sort_keys=True, default=str)),
        )

    def last_release(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM releases ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
        return dict(row) if row else None

    # ID history ----------------------------------------------------------------------------------
    def id_history_seq(self) -> int:
        """The sequence number of the latest ID-history event (0 when there is none)."""
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM id_history").fetchone()[0])

    def has_id_events(self, run_id: str) -> bool:
        """Whether the ID-history events of the link run ``run_id`` are in the ledger."""
        return self.conn.execute("SELECT 1 FROM id_history WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is not None

    def add_id_events(self, run_id: str, at: str, events: Iterable[tuple[str, str, str | None]]) -> None:
        """Append a link run's ID-history ``events`` — (event, person_id, other_person_id) — in one transaction.

        A first link at 1M people appends ~560k events: updating three indexes on random person ids row by
        row took 3.9 s, inserting and then rebuilding them (sorted) 2.4 s. The rebuild is inside the same
        transaction, so a crash leaves the history and its indexes as they were.
        """
        rows = [(at, run_id, e, p, o) for e, p, o in events]
        bulk = len(rows) >= BULK_ID_EVENTS and len(rows) > self.id_history_seq()
        with self.transaction() as c:
            if bulk:
                for name, _ in ID_HISTORY_INDEXES:
                    c.execute(f"DROP INDEX IF EXISTS {name}")
            c.executemany(
                "INSERT INTO id_history (at, run_id, event, person_id, other_person_id) VALUES (?, ?, ?, ?, ?)", rows)
            if bulk:
                for name, col in ID_HISTORY_INDEXES:
                    c.execute(f"CREATE INDEX {name} ON id_history({col})")

    def id_issue_order(self, person_ids: list[str]) -> dict[str, int]:
        """person_id → sequence number of the event that issued it (``new``, or the ``split`` creating it),
        for those of ``person_ids`` the history has."""
        out: dict[str, int] = {}
        for chunk in _chunks(person_ids):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT person_id, MIN(seq) FROM id_history WHERE event = 'new' AND person_id IN ({marks}) "
                f"GROUP BY person_id UNION ALL SELECT other_person_id, MIN(seq) FROM id_history "
                f"WHERE event = 'split' AND other_person_id IN ({marks}) GROUP BY other_person_id",
                chunk + chunk,
            )
            for pid, seq in rows:
                out[pid] = min(seq, out.get(pid, seq))
        return out

    def ids_in_history(self, person_ids: list[str]) -> set[str]:
        """Those of ``person_ids`` the ID history names (as the person or the other person of an event)."""
        out: set[str] = set()
        for chunk in _chunks(person_ids):
            marks = ",".join("?" * len(chunk))
            out |= {r[0] for r in self.conn.execute(
                f"SELECT person_id FROM id_history WHERE person_id IN ({marks}) UNION "
                f"SELECT other_person_id FROM id_history WHERE other_person_id IN ({marks})", chunk + chunk)}
        return out


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    """``ids`` in pieces, so that no statement binds more than about a thousand parameters (two per id)."""
    return [ids[i:i + size] for i in range(0, len(ids), size)]
