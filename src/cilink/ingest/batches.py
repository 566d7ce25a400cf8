"""One partner file → one batch: read, map, validate, then write staged rows, quarantine and ledger row.

Writes happen last and in an order that leaves the workspace as before or as after, never between:
quarantine files and the staged Parquet are written atomically first, then the ledger row (with its
audit entry) in one transaction; if that fails, the files are removed again. Whole-file problems raise
InputRejected before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from cilink.config import FileFormat, IngestMode, PartnerSettings, config_hash
from cilink.encoding.hub import is_encoded_column
from cilink.errors import CilinkError, InputRejected
from cilink.ingest import encoded, hmis, plausibility
from cilink.ingest.dates import date_parser
from cilink.ingest.identity import check_identity
from cilink.ingest.mapping import Mapped, map_columns
from cilink.ingest.quarantine import write_quarantine
from cilink.ingest.readers import read_table
from cilink.ingest.reasons import FileProblem
from cilink.ingest.validate import FLAGS_COL, Checked, Rules, check
from cilink.ledger import Batch, Ledger, now_utc
from cilink.locking import writer_lock
from cilink.logs import RunLog
from cilink.schemas import SCHEMA_VERSION, polars_schema
from cilink.staging import staged_batch_path
from cilink.workspace import Workspace

Status = Literal["ingested", "duplicate", "dry_run"]


@dataclass
class IngestResult:
    """What one ingest did; the CLI renders it as the reconciliation table (or JSON).

    ``rows_in == accepted + quarantined`` always. ``quarantine_by_reason`` counts rows per reason (a row
    with two problems counts under both, once in ``quarantined``); ``flags_by_field`` counts accepted
    rows per field and flag.
    """

    partner: str
    file: str
    sha256: str
    status: Status
    batch_id: str | None
    mode: str
    rows_in: int
    accepted: int
    quarantined: int
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    flags_by_field: dict[str, dict[str, int]] = field(default_factory=dict)
    superseded: list[str] = field(default_factory=list)
    #: `--replace`: the earlier batch of the same file that this one replaces
    replaced: str | None = None
    staged_path: str | None = None
    quarantine_path: str | None = None
    quarantine_csv: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    message: str | None = None

    @property
    def already_ingested(self) -> bool:
        """True when the file had been ingested before (this call was a no-op)."""
        return self.status == "duplicate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _partner(ws: Workspace, partner_id: str) -> PartnerSettings:
    for p in ws.config.partners:
        if p.id == partner_id:
            return p
    known = ", ".join(p.id for p in ws.config.partners) or "(none)"
    raise InputRejected(
        f"unknown partner '{partner_id}'",
        hint=f"use one of: {known}; or add a [[partners]] entry with id = \"{partner_id}\" to cilink.toml",
        reason=FileProblem.UNKNOWN_PARTNER,
    )


def new_batch_id(sha256: str, now: dt.datetime | None = None) -> str:
    """Sortable, unique per file: UTC time of ingest + the start of the file's sha256."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S}Z-{sha256[:8]}"


def export_fingerprint(path: Path, partner: PartnerSettings) -> str:
    """The sha256 by which the ledger knows an export (an HMIS export is hashed by its CSV contents)."""
    return _read(path, partner)[0]


def _read(path: Path, partner: PartnerSettings) -> tuple[str, int, Any]:
    """(sha256, size, loader) — the loader turns the already-read bytes into a Mapped batch."""
    if not path.exists():
        raise InputRejected(f"{path}: no such file", hint="check the path (and that the export has finished copying)",
                            file=path.name, reason=FileProblem.FILE_NOT_FOUND)
    if not path.is_dir() and not path.is_file():
        raise InputRejected(f"{path.name}: not a regular file (a FIFO, socket or device)",
                            hint="give the export file itself", file=path.name, reason=FileProblem.NOT_REGULAR_FILE)
    if partner.format == FileFormat.HMIS_CSV:
        if path.is_file():
            with path.open("rb") as fh:
                check_identity(fh.read(8192), path.name, partner.format, partner.id)
        src = hmis.load_source(path)
        return src.sha256, src.size_bytes, lambda: hmis.read_hmis(path, partner, src)
    if path.is_dir():
        raise InputRejected(f"{path.name}: is a folder, not a {partner.format} file",
                            hint="give the file itself (only hmis-csv partners take a folder)",
                            file=path.name, reason=FileProblem.MALFORMED)
    data = path.read_bytes()
    if not data.strip():
        raise InputRejected(f"{path.name}: the file is empty", hint="ask the partner to export it again",
                            file=path.name, reason=FileProblem.EMPTY_FILE)
    meta = encoded.file_encoding(data, path.name, partner)
    if meta is not None:
        return hashlib.sha256(data).hexdigest(), len(data), lambda: encoded.read_encoded(data, path.name, partner, meta)
    check_identity(data, path.name, partner.format, partner.id)

    def load() -> Mapped:
        raw = read_table(data, path.name, format=str(partner.format), encoding=partner.encoding,
                         delimiter=partner.delimiter, sheet=partner.sheet)
        mapped = map_columns(raw, partner)
        mapped.notes.update({k: v for k, v in (("encoding", raw.encoding), ("delimiter", raw.delimiter)) if v})
        mapped.notes.update(raw.notes)
        if mapped.ignored_columns:
            mapped.notes["ignored_columns"] = len(mapped.ignored_columns)
        return mapped

    return hashlib.sha256(data).hexdigest(), len(data), load


def read_export(path: Path, partner: PartnerSettings) -> tuple[str, Mapped]:
    """(sha256, mapped batch) of one export, read exactly as ingest reads it (no workspace needed).

    Used by ``cilink encode`` at a partner's site; raises InputRejected for whole-file problems.
    """
    sha, _, load = _read(Path(path), partner)
    return sha, load()


def validate_batch(mapped: Mapped, partner: PartnerSettings, domain: str, today: dt.date | None = None) -> Checked:
    """Standardize and validate a mapped batch with the partner's rules (no I/O)."""
    rules = Rules(
        domain=domain,
        dates=date_parser(partner.date_format, partner.two_digit_year_pivot,
                          accept_iso=mapped.native_dates),
        today=today or dt.date.today(),
        race_codes=mapped.codes.get("race_ethnicity", {}) or partner.codes.get("race_ethnicity", {}),
    )
    return check(mapped, rules)


def staged_frame(checked: Checked, partner_id: str, batch_id: str, domain: str) -> pl.DataFrame:
    """Accepted rows in exactly the staged schema (domain fields + _cilink_ meta columns)."""
    schema = polars_schema(domain)
    frame = checked.accepted.with_columns(
        pl.lit(partner_id).alias("_cilink_partner"), pl.lit(batch_id).alias("_cilink_batch_id"),
    )
    extra = [c for c in frame.columns if c not in schema and is_encoded_column(c)]  # encoded partners only
    return frame.select([pl.col(n).cast(t) for n, t in schema.items()] + [pl.col(c) for c in extra])


@contextmanager
def _as_rejection(file: str) -> Iterator[None]:
    """Any unforeseen failure while reading one file (a reader's exception, a Rust panic, memory) rejects
    that file alone (exit 3, ``unreadable``), so arbitrary bytes never crash ingest or stop `cilink run`.

    The message names the exception's type only: its text may quote a cell.
    """
    try:
        yield
    except CilinkError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # pyo3's PanicException derives from BaseException, not Exception
        raise InputRejected(
            f"{file}: could not be read ({type(e).__name__}); nothing was written",
            hint="check that the file is a complete export in the partner's format; if it is, rerun with --debug "
            "and report the traceback (it may quote data: share it only inside the restricted zone)",
            file=file, reason=FileProblem.UNREADABLE,
        ) from e


def ingest_file(ws: Workspace, partner_id: str, path: Path | str, dry_run: bool = False, *,
                today: dt.date | None = None, replace: bool = False) -> IngestResult:
    """Ingest one partner export into the workspace (design §4) and return its reconciliation.

    ``dry_run`` validates and reports without writing anything. The same file (by sha256) twice is a
    no-op (status "duplicate"), unless ``replace``: then it is read again with the current cilink.toml
    (after a config fix) and the new batch replaces the earlier one (status 'replaced', audited). The
    writer lock is taken around the writing part only (it is re-entrant, so `cilink run` may already
    hold it). Raises InputRejected (exit 3) for whole-file problems, leaving
    the workspace as it was.

    Example: ``ingest_file(Workspace.open("ws"), "holyoke-schools", "inbox/holyoke-schools/students.csv")``
    """
    path = Path(path)
    log = RunLog(ws.logs_dir, "ingest")
    sha: str | None = None
    try:
        partner = _partner(ws, partner_id)
        with _as_rejection(path.name):
            sha, size, load = _read(path, partner)
        with Ledger(ws.ledger_path) as ledger:
            existing = ledger.find_batch(partner.id, sha)
            purged = [b for b in ledger.batches(partner.id, status="purged") if b.sha256 == sha]
        if purged:
            raise InputRejected(
                f"{path.name}: this exact file was ingested as batch {purged[0].batch_id} and later purged",
                hint="purged data is not taken in again; if that was a mistake, ask the partner for a new export",
                file=path.name, reason=FileProblem.PURGED_FILE,
            )
        if existing is not None and not replace:
            log.event("ingest_duplicate", partner=partner.id, sha256=sha, batch_id=existing.batch_id)
            return _duplicate(existing, path, str(partner.mode))
        with _as_rejection(path.name):
            mapped = load()
            if mapped.encoding is not None:
                encoded.check_comparable(ws, partner, mapped.encoding, path.name)
            checked = validate_batch(mapped, partner, str(partner.domain), today)
            if mapped.encoding is None:
                plausibility.check_columns(mapped, checked, partner, str(partner.domain), path.name)
        if checked.accepted_rows == 0:
            reasons = ", ".join(f"{r} ({n})" for r, n in checked.quarantine_by_reason.items())
            raise InputRejected(
                f"{path.name}: all {checked.rows_in} rows would be quarantined: {reasons}",
                hint="this usually means cilink.toml does not match the file (date_format, columns, encoding); "
                "run `cilink ingest --dry-run` and compare",
                file=path.name, reason=FileProblem.ALL_ROWS_QUARANTINED,
            )
    except InputRejected as e:
        log.event("ingest_rejected", partner=partner_id, sha256=sha, reason=str(e.reason or ""))
        raise
    batch_id = new_batch_id(sha)
    if existing is not None and batch_id == existing.batch_id:
        batch_id += "r"  # replaced within the second it was ingested
    result = IngestResult(
        partner=partner.id, file=path.name, sha256=sha, status="dry_run" if dry_run else "ingested",
        batch_id=None if dry_run else batch_id, mode=str(partner.mode), rows_in=checked.rows_in,
        accepted=checked.accepted_rows, quarantined=checked.quarantined,
        quarantine_by_reason=checked.quarantine_by_reason, flags_by_field=checked.flags_by_field,
        notes=mapped.notes, replaced=existing.batch_id if existing is not None else None,
    )
    if dry_run:
        return result
    with writer_lock(ws.lock_path, "ingest"):
        return _write(ws, partner, result, checked, size, log, mapped.encoding)


def _duplicate(existing: Batch, path: Path, mode: str) -> IngestResult:
    return IngestResult(
        partner=existing.partner, file=path.name, sha256=existing.sha256, status="duplicate",
        batch_id=existing.batch_id, mode=mode, rows_in=existing.rows_in, accepted=existing.accepted,
        quarantined=existing.quarantined, quarantine_by_reason=existing.quarantine_by_reason,
        staged_path=existing.staged_path, quarantine_path=existing.quarantine_path,
        message=f"already ingested as batch {existing.batch_id} ({existing.created_at}); nothing to do",
    )


def _write(ws: Workspace, partner: PartnerSettings, result: IngestResult, checked: Checked, size: int,
           log: RunLog, encoding: dict[str, Any] | None = None) -> IngestResult:
    """The writing part, under the writer lock: quarantine, staged rows, then ledger + audit."""
    assert result.batch_id is not None
    with Ledger(ws.ledger_path) as ledger:
        existing = ledger.find_batch(partner.id, result.sha256)  # another process may have won the race
        if existing is not None and existing.batch_id != result.replaced:
            return _duplicate(existing, Path(result.file), result.mode)
        written: list[Path] = []
        try:
            if checked.quarantined:
                q_parquet, q_csv = write_quarantine(ws, partner.id, result.batch_id, checked.quarantine)
                written += [q_parquet, q_csv]
                result.quarantine_path = str(q_parquet.relative_to(ws.root))
                result.quarantine_csv = str(q_csv.relative_to(ws.root))
            staged = staged_batch_path(ws, partner.id, result.batch_id)
            written.append(staged)
            encoded.write_staged(staged, staged_frame(checked, partner.id, result.batch_id, str(partner.domain)),
                                 encoding)
            result.staged_path = str(staged.relative_to(ws.root))
            flags_total = {f: sum(c.values()) for f, c in result.flags_by_field.items()}
            batch = Batch(
                batch_id=result.batch_id, partner=partner.id, file_name=result.file, sha256=result.sha256,
                size_bytes=size, rows_in=result.rows_in, accepted=result.accepted, quarantined=result.quarantined,
                quarantine_by_reason=result.quarantine_by_reason, flags_by_field=flags_total,
                schema_version=SCHEMA_VERSION, mode=result.mode, status="active", staged_path=result.staged_path,
                quarantine_path=result.quarantine_path, created_at=now_utc(),
            )
            counts = {"rows_in": result.rows_in, "accepted": result.accepted, "quarantined": result.quarantined}
            audit = {
                "command": "ingest", "action": "replace_batch" if result.replaced else "ingest_batch", "outcome": "ok",
                "inputs": {"file_sha256": result.sha256, "config_sha256": config_hash(ws.config_path)},
                "details": {"partner": partner.id, "batch_id": result.batch_id, "mode": result.mode, **counts,
                            "quarantine_by_reason": result.quarantine_by_reason,
                            "flags_by_field": result.flags_by_field,
                            **({"replaces": result.replaced} if result.replaced else {}),
                            **{k: v for k, v in result.notes.items() if k in ("bytes_repaired", "blank_rows_skipped")}},
            }
            superseded = ledger.add_batch(batch, supersede_earlier=partner.mode == IngestMode.SNAPSHOT, audit=audit,
                                          replaces=result.replaced)
            result.superseded = [b for b in superseded if b != result.replaced]
        except BaseException:
            for p in written:
                p.unlink(missing_ok=True)
            raise
    log.event("ingest", partner=partner.id, batch_id=result.batch_id, sha256=result.sha256, mode=result.mode,
              superseded=len(result.superseded), **counts, quarantine_by_reason=result.quarantine_by_reason)
    return result


__all__ = ["FLAGS_COL", "IngestResult", "ingest_file", "staged_frame", "validate_batch"]
