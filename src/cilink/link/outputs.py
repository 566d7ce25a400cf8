"""The link stage's files in a link generation (docs/internals.md), the run state, and pending ID events.

``records-<partner>.arrow`` (one file per partner, so an incremental run rewrites only the partners whose
data changed), ``pairs.arrow``, ``crosswalk.arrow`` and ``review_queue.parquet`` are the contract with other
stages. What the next link run reads back is uncompressed Arrow IPC, which it memory-maps instead of decoding;
read it with the functions here (``read_records``, ``read_pairs``, ``read_crosswalk``), which also read the
Parquet files earlier cilink versions wrote (``EARLIER_FILES``) until a full run replaces them. The crosswalk also
carries ``_cilink_component`` (each record's connected component before the guards), which with
``state.json`` (what the run consumed) and ``id_events.parquet`` (this run's ID-history events) lets the
next run work incrementally. ID events reach the ledger after the generation is published; if a crash comes
in between, the next run finds them here and commits them (``commit_pending_events``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc

from cilink import atomic, parallel
from cilink.ledger import Ledger, now_utc
from cilink.link.person_ids import IdEvent
from cilink.workspace import Workspace

RECORDS_PREFIX = "records-"
#: Arrow IPC, uncompressed (memory-mapped by later runs; see ``read_records``)
RECORDS_SUFFIX = ".arrow"
PAIRS_FILE = "pairs.arrow"
#: the pairs incremental runs re-decided since PAIRS_FILE was written, and the records whose pairs they
#: replace (``_cilink_removed`` rows, the record in ``record_id_l``; see ``read_pairs``)
PAIRS_CHANGES_FILE = "pairs-changes.arrow"
CROSSWALK_FILE = "crosswalk.arrow"
#: the crosswalk rows incremental runs changed since CROSSWALK_FILE was written (see ``read_crosswalk``)
CROSSWALK_CHANGES_FILE = "crosswalk-changes.arrow"
#: in the changes: the record is gone (its other columns are not used)
REMOVED = "_cilink_removed"
#: changes are folded into CROSSWALK_FILE (PAIRS_FILE) once they hold more rows than this share of it and
#: more than COMPACT_MIN_ROWS
COMPACT_SHARE = 0.1
COMPACT_MIN_ROWS = 10_000
QUEUE_FILE = "review_queue.parquet"
COMPONENT = "_cilink_component"
#: component labels are hashes (``cilink.link.persons``); earlier versions wrote record ids
COMPONENT_DTYPE = pl.UInt64()
EVENTS_FILE = "id_events.parquet"
STATE_FILE = "state.json"
#: the Parquet files earlier cilink versions wrote in their place: read until the next full run removes them
#: (an incremental run needs the Arrow files, so the first run after an upgrade relinks in full)
EARLIER_FILES = {PAIRS_FILE: "pairs.parquet", CROSSWALK_FILE: "crosswalk.parquet",
                 CROSSWALK_CHANGES_FILE: "crosswalk-changes.parquet"}
#: written by earlier versions, no longer used
_RETIRED_FILES = ("clusters.parquet",)


class Previous:
    """What the last run left in the generation. ``pairs`` and ``crosswalk`` (None when absent) are read on
    a worker thread from the moment the object is made, so the run can build its records meanwhile; records
    are read per partner when needed (``read_records``)."""

    def __init__(self, link_dir: Path) -> None:
        self.state = read_state(link_dir)
        self.has_records = bool(record_partners(link_dir))
        cw_path = link_dir / CROSSWALK_FILE  # the current format only: see ``complete``
        self._crosswalk_schema = pl.read_ipc_schema(cw_path) if cw_path.is_file() else None
        self._has_pairs = (link_dir / PAIRS_FILE).is_file()
        self._pairs = parallel.background(read_pairs, link_dir)
        self._crosswalk = parallel.background(read_crosswalk, link_dir)

    @property
    def pairs(self) -> pl.DataFrame | None:
        """The last run's decided pairs."""
        return self._pairs.result()

    @property
    def crosswalk(self) -> pl.DataFrame | None:
        """The last run's crosswalk (with components; changes put in place)."""
        return self._crosswalk.result()

    @property
    def complete(self) -> bool:
        """Everything an incremental run needs is there."""
        schema = self._crosswalk_schema
        return (bool(self.state) and self.has_records and self._has_pairs and schema is not None
                and schema.get(COMPONENT) == COMPONENT_DTYPE)

    def people(self) -> pl.DataFrame:
        """The last run's crosswalk: partner, source_person_id, record_id, person_id, component."""
        assert self.crosswalk is not None
        return self.crosswalk.select("partner", "source_person_id", "record_id", "person_id",
                                     pl.col(COMPONENT).alias("component"))


def read_pairs(link_dir: Path) -> pl.DataFrame | None:
    """The decided pairs of a generation (None before the first link): ``pairs.arrow`` less the pairs of the
    records ``pairs-changes.arrow`` marks redone, plus the pairs it holds (memory-mapped)."""
    path = _existing(link_dir, PAIRS_FILE)
    if path is None:
        return None
    base = read_frame(path)
    changes_path = link_dir / PAIRS_CHANGES_FILE
    if not changes_path.is_file():
        return base
    changes = read_frame(changes_path)
    redone = changes.filter(pl.col(REMOVED))["record_id_l"].implode()
    return pl.concat([
        base.filter(~pl.col("record_id_l").is_in(redone) & ~pl.col("record_id_r").is_in(redone)),
        changes.filter(~pl.col(REMOVED)).select(base.columns),
    ], how="vertical_relaxed")


def write_pairs(link_dir: Path, decided: pl.DataFrame, redone: pl.Series | None = None,
                redecided: pl.DataFrame | None = None) -> None:
    """Write a run's ``decided`` pairs: whole (a full run: ``redone`` None), or for an incremental run only
    the pairs it re-decided (``redecided``: every pair of a ``redone`` record) into the changes file, until
    the changes outgrow ``COMPACT_SHARE`` of the pairs — then all of them again."""
    if redone is not None and redecided is not None:
        changes = pairs_changes(link_dir, redone, redecided)
        if not outgrown(changes.height, decided.height):
            write_frame(link_dir / PAIRS_CHANGES_FILE, changes)
            return
    write_frame(link_dir / PAIRS_FILE, decided)
    (link_dir / PAIRS_CHANGES_FILE).unlink(missing_ok=True)


def outgrown(changes: int, whole: int) -> bool:
    """Whether a changes file of ``changes`` rows beside ``whole`` rows is due to be folded in."""
    return changes > max(COMPACT_MIN_ROWS, COMPACT_SHARE * whole)


def pairs_changes(link_dir: Path, redone: pl.Series, redecided: pl.DataFrame) -> pl.DataFrame:
    """The generation's pairs changes with this run's put in: the ``redone`` records' pairs are now
    ``redecided``; earlier changes to other records' pairs stay."""
    now = pl.concat([
        redecided.with_columns(pl.lit(False).alias(REMOVED)),
        pl.DataFrame({"record_id_l": redone.unique().sort()}).with_columns(pl.lit(True).alias(REMOVED)),
    ], how="diagonal_relaxed").select(*redecided.columns, REMOVED)
    path = link_dir / PAIRS_CHANGES_FILE
    if not path.is_file():
        return now
    earlier = read_frame(path)
    ids = redone.implode()
    kept = earlier.filter(pl.when(pl.col(REMOVED)).then(~pl.col("record_id_l").is_in(ids))
                          .otherwise(~pl.col("record_id_l").is_in(ids) & ~pl.col("record_id_r").is_in(ids)))
    return pl.concat([kept, now.select(earlier.columns)], how="vertical_relaxed")


def read_crosswalk(link_dir: Path, columns: list[str] | None = None) -> pl.DataFrame | None:
    """The crosswalk of a generation (None before the first link): ``crosswalk.arrow`` with the rows in
    ``crosswalk-changes.arrow`` put in place — every record of the active batches exactly once."""
    base_path = _existing(link_dir, CROSSWALK_FILE)
    if base_path is None:
        return None
    wanted = None if columns is None else list(dict.fromkeys(["record_id", *columns]))
    base = read_frame(base_path, wanted)
    changes_path = _existing(link_dir, CROSSWALK_CHANGES_FILE)
    if changes_path is not None:
        changes = read_frame(changes_path)
        base = pl.concat([base.join(changes.select("record_id"), on="record_id", how="anti", maintain_order="left"),
                          changes.filter(~pl.col(REMOVED)).select(base.columns)])
    return base if columns is None else base.select(columns)


def crosswalk_files(link_dir: Path) -> list[Path]:
    """The files the crosswalk of a generation is read from (for provenance hashes; none before the first
    link)."""
    base = _existing(link_dir, CROSSWALK_FILE)
    if base is None:
        return []
    changes = _existing(link_dir, CROSSWALK_CHANGES_FILE)
    return [base] if changes is None else [base, changes]


def write_crosswalk(link_dir: Path, crosswalk: pl.DataFrame) -> None:
    """Write a whole crosswalk (no changes file)."""
    write_frame(link_dir / CROSSWALK_FILE, crosswalk)
    (link_dir / CROSSWALK_CHANGES_FILE).unlink(missing_ok=True)


def remove_earlier_files(link_dir: Path) -> None:
    """Drop what earlier cilink versions wrote into a generation that this run has written anew."""
    for name in (*EARLIER_FILES.values(), *_RETIRED_FILES):
        (link_dir / name).unlink(missing_ok=True)


def crosswalk_changes(link_dir: Path, people: pl.DataFrame, gone: pl.Series) -> pl.DataFrame:
    """The generation's crosswalk changes with ``people`` (crosswalk rows, re-clustered now) and the
    ``gone`` records put in: earlier changes to other records stay."""
    path = link_dir / CROSSWALK_CHANGES_FILE
    now = pl.concat([
        people.with_columns(pl.lit(False).alias(REMOVED)),
        pl.DataFrame({"record_id": gone}).with_columns(pl.lit(True).alias(REMOVED)),
    ], how="diagonal_relaxed")
    if path.is_file():
        earlier = read_frame(path)
        now = pl.concat([earlier.join(now.select("record_id"), on="record_id", how="anti", maintain_order="left"),
                         now.select(earlier.columns)])
    return now.select(*people.columns, REMOVED)


def write_crosswalk_changes(link_dir: Path, changes: pl.DataFrame) -> None:
    """Write the crosswalk changes (``crosswalk_changes``) beside the unchanged crosswalk."""
    write_frame(link_dir / CROSSWALK_CHANGES_FILE, changes)


def read_frame(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """One link output, all columns or ``columns``: Arrow IPC memory-mapped (nothing is copied until a column
    is used; the files are replaced, never edited, so what is mapped stays valid), Parquet decoded."""
    if path.suffix != ".arrow":
        return pl.read_parquet(path, columns=columns)
    table = pa_ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    return pl.from_arrow(table if columns is None else table.select(columns))  # type: ignore[return-value]


def _existing(link_dir: Path, name: str) -> Path | None:
    """``name`` in the generation, or what an earlier version wrote in its place, or None."""
    for candidate in (name, EARLIER_FILES.get(name)):
        if candidate is not None and (link_dir / candidate).is_file():
            return link_dir / candidate
    return None


def read_state(link_dir: Path) -> dict[str, Any]:
    """The state the run that wrote ``link_dir`` recorded (empty if none)."""
    path = link_dir / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def records_path(link_dir: Path, partner: str) -> Path:
    """Where one partner's linkable records live in a generation."""
    return link_dir / f"{RECORDS_PREFIX}{partner}{RECORDS_SUFFIX}"


def record_partners(link_dir: Path) -> list[str]:
    """Partners with a records file in a generation."""
    return sorted(f.name.removeprefix(RECORDS_PREFIX).removesuffix(RECORDS_SUFFIX)
                  for f in link_dir.glob(f"{RECORDS_PREFIX}*{RECORDS_SUFFIX}"))


def read_records(link_dir: Path, partners: list[str] | None = None,
                 columns: list[str] | None = None) -> pl.DataFrame | None:
    """Linkable records of a generation — all partners or ``partners``, all columns or ``columns``
    (None when there are none). The files are memory-mapped: nothing is copied until a column is used."""
    names = record_partners(link_dir) if partners is None else partners
    files = [p for p in (records_path(link_dir, n) for n in names) if p.is_file()]
    if not files:
        return None
    return pl.concat([read_frame(f, columns) for f in files], how="vertical_relaxed", rechunk=False)


def write_records(link_dir: Path, rebuilt: dict[str, pl.DataFrame], present: set[str]) -> None:
    """Write the rebuilt partners' record files (the others stay as they are), drop the files of partners no
    longer ``present`` and any records files of earlier cilink versions (Parquet)."""
    for partner, frame in sorted(rebuilt.items()):
        write_frame(records_path(link_dir, partner), frame)
    for partner in record_partners(link_dir):
        if partner not in present:
            records_path(link_dir, partner).unlink()
    for legacy in link_dir.glob(f"{RECORDS_PREFIX}*.parquet"):
        legacy.unlink()


def load_previous(link_dir: Path) -> Previous:
    """What the last run left in ``link_dir`` (its pairs and crosswalk load in the background)."""
    return Previous(link_dir)


def write_frame(path: Path, frame: pl.DataFrame) -> None:
    """Atomically write a link output, mode 0600: ``.arrow`` uncompressed Arrow IPC with polars' own string
    views (see ``read_frame``), otherwise Parquet (lz4: these files are rewritten on every run)."""
    with atomic.atomic_path(path) as tmp:
        if path.suffix == ".arrow":
            frame.write_ipc(tmp, compression="uncompressed", compat_level=pl.CompatLevel.newest())
        else:
            frame.write_parquet(tmp, compression="lz4")
        os.chmod(tmp, 0o600)


def write_events(link_dir: Path, events: list[IdEvent]) -> None:
    frame = pl.DataFrame([asdict(e) for e in events],
                         schema={"event": pl.String, "person_id": pl.String, "other_person_id": pl.String})
    write_frame(link_dir / EVENTS_FILE, frame)


def write_state(link_dir: Path, state: dict[str, Any]) -> None:
    atomic.write_text(link_dir / STATE_FILE, json.dumps(state, indent=1, sort_keys=True) + "\n")


def commit_pending_events(ws: Workspace, ledger: Ledger) -> int:
    """Write the current generation's ID-history events to the ledger unless they are already there;
    returns how many were written."""
    state = read_state(ws.link_dir)
    run_id = state.get("run_id")
    path = ws.link_dir / EVENTS_FILE
    if not run_id or not path.is_file() or not state.get("id_events"):
        return 0
    if ledger.has_id_events(run_id):
        return 0
    events = pl.read_parquet(path)
    ledger.add_id_events(run_id, state.get("finished_at") or now_utc(), events.iter_rows())
    return events.height
