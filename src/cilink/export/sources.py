"""What a release is built from: staged records of the active batches joined to the crosswalk's person_id.

Reads only what ingest and link left in the restricted zone (docs/internals.md): ``staged_records`` per
domain and the current link generation's crosswalk. Nothing read here leaves this process except through the
release builders and the privacy gate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from cilink.encoding.scheme import BIRTH_YEAR as CLEAR_BIRTH_YEAR
from cilink.errors import WorkspaceError
from cilink.ledger import Batch, Ledger
from cilink.link.outputs import crosswalk_files, read_crosswalk, read_pairs
from cilink.schemas import domain_fields
from cilink.staging import staged_records
from cilink.workspace import Workspace

#: Identity fields a release uses (generalized) for persons' quasi-identifiers.
QI_SOURCE_FIELDS = ["dob", "sex", "zip5", "race_ethnicity"]

#: Domain fields carried into the release builders (identifiers such as enrollment_id stay behind).
EVENT_FIELDS: dict[str, list[str]] = {
    "school": ["school_year", "school_id", "grade_level", "entry_date", "exit_date", "days_enrolled",
               "days_present", "days_absent", "graduated"],
    "workforce": ["program", "entry_date", "exit_date", "employed_q2", "employed_q4", "earnings_q2",
                  "credential_attained"],
    "housing": ["project_type", "relationship_to_hoh", "entry_date", "move_in_date", "exit_date", "destination",
                "destination_category"],
}


@dataclass
class SourceData:
    """Staged events per domain keyed by ``person_idx`` (restricted), the keys, and provenance for the manifest.

    ``person_idx`` numbers persons in ``person_key`` order (``person_keys[person_idx]`` is the key), so
    sorting by it sorts by key: releases are never ordered by person_id or ingestion order, which could hint
    at when or where a person entered the data. Each domain's rows are already grouped by ``person_idx``,
    in staged order within a person (see ``load_sources``), and ``race_ethnicity`` is the recorded
    combination as text (``race_text``). ``_start`` and ``_end`` hold each event's exact interval
    (``event_intervals``); release tables never carry them.
    """

    events: dict[str, pl.DataFrame]
    person_keys: pl.Series
    batches: list[tuple[Batch, str]] = field(default_factory=list)  # (batch, domain)
    crosswalk_sha256: str = ""
    model_path: Path | None = None
    pairs: pl.DataFrame | None = None
    crosswalk: pl.DataFrame | None = None

    @property
    def n_persons(self) -> int:
        return len(self.person_keys)


def _crosswalk_sha256(link_dir: Path) -> str:
    """The crosswalk's provenance hash: its file's, or with incremental changes beside it, the hash of both
    files' hashes."""
    files = crosswalk_files(link_dir)
    if len(files) == 1:
        return file_sha256(files[0])
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def race_text(lists: pl.Expr) -> pl.Expr:
    """A race/ethnicity list as its combination: categories de-duplicated, sorted, joined by ';' (null if none)."""
    return (pl.when(lists.list.len() > 0)
            .then(lists.list.unique().list.sort().list.join(";")))


def _race_table(staged: list[pl.LazyFrame]) -> pl.DataFrame:
    """Each distinct race/ethnicity list of the staged rows (by 64-bit hash, ``_h``) and its ``race_text``.

    List operations are slow on millions of rows and lists are slow to reorder, while a population holds
    only a few distinct combinations: rows carry the index of theirs (``_race``) and get the text at the end.
    """
    lists = pl.concat([lf.select(pl.col("race_ethnicity").hash().alias("_h"), "race_ethnicity")
                       .unique(subset="_h", keep="first", maintain_order=True) for lf in staged])
    distinct = lists.unique(subset="_h", keep="first", maintain_order=True).collect()
    return distinct.select("_h", race_text(pl.col("race_ethnicity")).alias("_text"))


def _key_order(keys: pl.Series) -> np.ndarray:
    """Positions of ``keys`` in sorted order.

    Person keys are 32 lower-case hex digits, so their text order is the numeric order of their first 16
    digits whenever those differ (almost surely: 64 bits), and an integer sort is several times faster
    than a string sort. Any other shape, or a tie in the first 16 digits, falls back to sorting the text.
    """
    parsed = keys.to_frame("k").select(
        pl.col("k").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False).alias("hi"),
        pl.col("k").str.contains("^[0-9a-f]{32}$").fill_null(False).alias("ok"))
    if parsed.get_column("ok").all():
        hi = parsed.get_column("hi").to_numpy()
        order = np.argsort(hi, kind="stable")
        if not (hi[order][1:] == hi[order][:-1]).any():
            return order
    return keys.arg_sort().to_numpy()


def _compact(text: pl.Series) -> pl.Series:
    """The same strings, stored one after another in order (a gather leaves them where they were).

    Every release table repeats the person keys in key order; reading them from contiguous memory makes
    comparing, hashing and writing them markedly faster than chasing each one across the heap.
    """
    return pl.Series(text.name, pl.from_arrow(text.to_arrow()))


def _person_ranks(crosswalk: pl.DataFrame, keyer: Callable[[pl.Series], pl.Series]) -> tuple[pl.Series, np.ndarray]:
    """Keys of every person in the crosswalk, sorted, and for each crosswalk row its person's rank among them.

    Person ids are told apart by a 64-bit hash (an integer sort, not a string sort); the hash is verified
    against the ids themselves, and on a collision the ids are compared as strings instead.
    """
    pid = crosswalk.get_column("person_id")
    _, first, inverse = np.unique(pid.hash().to_numpy(), return_index=True, return_inverse=True)
    distinct = pid.gather(first)
    if not (distinct.gather(inverse.reshape(-1)) == pid).all():
        inverse = (pid.rank("dense").cast(pl.Int64) - 1).to_numpy()
        distinct = pid.gather(np.unique(inverse, return_index=True)[1])
    keys = keyer(distinct)
    order = _key_order(keys)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return keys.gather(order), rank[inverse.reshape(-1)]


def load_sources(ws: Workspace, keyer: Callable[[pl.Series], pl.Series]) -> SourceData:
    """Staged rows of every domain with ``person_idx``; WorkspaceError if link has not run or is stale.

    ``keyer`` turns person ids into person keys (cilink.export.person_keys). Every person of the crosswalk
    is keyed and ranked by key first; staged rows are then joined, partner by partner, to their crosswalk
    row's rank (a join that keeps row order, so output is deterministic) and each domain is sorted by it
    once, stably, so the rows of a person keep their staged order. ``person_idx`` is that rank among the
    persons with staged rows.

    Every release table is ordered by person: reordering rows at random is the most expensive step of
    building them (each row a cache miss), and with this one reordering up front — done by the query
    engine as it reads, into contiguous columns — the builders' own sorts only move rows within a person,
    with exactly the result of sorting staged order.
    """
    linked = read_crosswalk(ws.link_dir, ["partner", "source_person_id", "record_id", "person_id"])
    if linked is None:
        raise WorkspaceError("there is no crosswalk yet: nothing has been linked",
                             hint="run `cilink link` (or `cilink run`) before `cilink export`")
    crosswalk = (linked.with_columns(pl.col("source_person_id").cast(pl.String), pl.col("person_id").cast(pl.String))
                 .rechunk())
    sorted_keys, rank = _person_ranks(crosswalk, keyer)
    cfg = ws.config
    by_domain = {d: sorted(p.id for p in cfg.partners if str(p.domain) == d)
                 for d in sorted({str(p.domain) for p in cfg.partners})}
    races = _race_table([staged_records(ws, partner) for partners in by_domain.values() for partner in partners])
    race_index = pl.int_range(races.height, dtype=pl.UInt32, eager=True)
    frames: dict[str, pl.DataFrame] = {}
    for domain, partners in by_domain.items():
        known = set(domain_fields(domain))
        wanted = ["source_person_id", *[f for f in QI_SOURCE_FIELDS if f != "race_ethnicity"],
                  *[f for f in EVENT_FIELDS[domain] if f in known]]
        parts = []
        for partner in partners:
            ranks = (crosswalk.select("partner", "source_person_id", pl.Series("_rank", rank))
                     .filter(pl.col("partner") == partner).drop("partner"))
            staged = staged_records(ws, partner)
            # an encoded partner (docs/encodings.md) sends no date of birth, only the birth year in clear
            clear_year = [CLEAR_BIRTH_YEAR] if CLEAR_BIRTH_YEAR in staged.collect_schema().names() else []
            parts.append(staged.select(
                *wanted, *clear_year, pl.col("race_ethnicity").hash().replace_strict(races.get_column("_h"), race_index)
                .alias("_race"))
                .with_columns(pl.col("source_person_id").cast(pl.String), pl.lit(partner).alias("partner"))
                .join(ranks.lazy(), on="source_person_id", how="left", maintain_order="left")
                .drop("source_person_id"))
        # in memory: that engine sorts into one contiguous chunk per column (the streaming one leaves many)
        frame = pl.concat(parts, how="diagonal_relaxed").sort("_rank", maintain_order=True).collect(engine="in-memory")
        missing = frame.get_column("_rank").null_count()
        if missing:
            raise WorkspaceError(
                f"the crosswalk is out of date: {missing} staged {domain} row(s) have no person_id",
                hint="run `cilink link` to link the newest batches, then export again")
        frames[domain] = frame
    # persons with staged rows, numbered in key order
    used = np.zeros(len(sorted_keys), dtype=bool)
    for df in frames.values():
        used[df.get_column("_rank").to_numpy()] = True
    person_idx = (np.cumsum(used) - 1).astype(np.int32)
    texts = races.get_column("_text")
    events = {}
    for d, df in frames.items():
        start, end = event_intervals(d)  # evaluated once here rather than by every builder
        events[d] = df.with_columns(
            texts.gather(df.get_column("_race")).alias("race_ethnicity"),
            pl.Series("person_idx", person_idx[df.get_column("_rank").to_numpy()]),
        ).drop("_race", "_rank").with_columns(start.alias(INTERVAL_COLUMNS[0]), end.alias(INTERVAL_COLUMNS[1]))
    del frames
    with Ledger(ws.ledger_path) as ledger:
        batches = ledger.active_batches()
    by_partner = {p.id: str(p.domain) for p in cfg.partners}
    model = ws.link_dir / "model.json"
    return SourceData(
        events=events,
        person_keys=_compact(sorted_keys.gather(np.flatnonzero(used))).alias("person_key"),
        batches=[(b, by_partner[b.partner]) for b in batches if b.partner in by_partner],
        crosswalk_sha256=_crosswalk_sha256(ws.link_dir),
        model_path=model if model.is_file() else None,
        pairs=read_pairs(ws.link_dir),
        crosswalk=crosswalk,
    )


def event_intervals(domain: str) -> tuple[pl.Expr, pl.Expr]:
    """Exact start and end of each staged event (restricted), used for panels, spells and first/last seen.

    School rows may carry only a school year: they span 1 September to 30 June of it. A null end means
    the event is still open at the as-of date.
    """
    if domain == "school":
        y = pl.col("school_year").str.slice(0, 4).cast(pl.Int32, strict=False)
        start = pl.coalesce(pl.col("entry_date"), pl.date(y, 9, 1))
        end = pl.coalesce(pl.col("exit_date"), pl.date(y + 1, 6, 30))
        return start, end
    return pl.col("entry_date"), pl.col("exit_date")


#: Columns ``load_sources`` adds with each event's exact start and end (``event_intervals``), computed once.
INTERVAL_COLUMNS = ("_start", "_end")


def intervals_of(domain: str, frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """``event_intervals`` of a frame: its precomputed interval columns when it has them (``load_sources``)."""
    if all(c in frame.columns for c in INTERVAL_COLUMNS):
        return pl.col(INTERVAL_COLUMNS[0]), pl.col(INTERVAL_COLUMNS[1])
    return event_intervals(domain)


def as_of_date(events: dict[str, pl.DataFrame]) -> dt.date:
    """The latest event date in the data: the release's as-of date (deterministic, unlike the wall clock)."""
    latest: list[dt.date] = []
    for domain, df in events.items():
        start, end = intervals_of(domain, df)
        cols = [start.max().alias("s"), end.max().alias("e")]
        if "move_in_date" in df.columns:
            cols.append(pl.col("move_in_date").max().alias("m"))
        row = df.select(cols).row(0)
        latest.extend(v for v in row if v is not None)
    if not latest:
        raise WorkspaceError("the staged records have no event dates to place a release in time",
                             hint="check the partners' date columns in cilink.toml and ingest again")
    return max(latest)
