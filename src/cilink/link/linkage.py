"""`cilink link` end to end: records → model → scored pairs → decisions → clusters → stable person IDs.

Incremental by default: records of partners whose active batches changed are rebuilt, only new or
changed records are scored (against the others and among themselves), earlier pairs are reused as they
were, and decisions, clusters and IDs are redone only in the components that changed
(``cilink.link.persons``). ``full=True`` relinks from scratch with the same model; ``retrain=True`` trains a
new one first. Everything is written as one link generation (``cilink.generations``) under the writer lock;
ID-history events are committed to the ledger after the generation is published, and by the next run if a
crash came in between (``cilink.link.outputs``).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cilink import parallel
from cilink.config import EngineSettings
from cilink.encoding.scheme import ENC_PREFIX
from cilink.errors import CilinkError, WorkspaceError
from cilink.generations import new_link_generation
from cilink.ledger import Batch, Ledger, now_utc
from cilink.link import engine, outputs, review_ledger
from cilink.link.comparisons import LinkSpec, link_spec
from cilink.link.decisions import CANNOT_LINK, LINK, MUST_LINK, REVIEW, Thresholds, latest_decisions
from cilink.link.encodings import EncodingPlan, encoding_plan
from cilink.link.outputs import (
    COMPONENT,
    QUEUE_FILE,
    Previous,
    commit_pending_events,
    crosswalk_changes,
    load_previous,
    read_records,
    read_state,
    remove_earlier_files,
    write_crosswalk,
    write_crosswalk_changes,
    write_events,
    write_frame,
    write_pairs,
    write_records,
    write_state,
)
from cilink.link.person_ids import IdEvent, id_generator
from cilink.link.persons import Context, Persons, resolve_all, resolve_changed
from cilink.link.records import KEY_COLUMNS, build_records, changed_record_ids, empty_records
from cilink.locking import writer_lock
from cilink.logs import RunLog
from cilink.staging import staged_records
from cilink.timing import PhaseClock
from cilink.workspace import Workspace


@dataclass
class LinkResult:
    """What one link run did (counts only — never identifiers)."""

    run_id: str
    mode: str
    trained: bool
    train_reason: str | None
    records: int
    records_scored: int
    records_removed: int
    candidate_pairs: int
    pairs_kept: int
    links: int
    review_queue: int
    must_link: int
    cannot_link: int
    persons: int
    link_threshold: float
    review_floor: float
    seconds: float
    records_reclustered: int = 0
    guards: dict[str, int] = field(default_factory=dict)
    clusters_by_partners: dict[str, int] = field(default_factory=dict)
    id_events: dict[str, int] = field(default_factory=dict)
    model: list[dict[str, Any]] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _model_id(link_dir: Path) -> str | None:
    path = link_dir / engine.MODEL_FILE
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


# --- person-ID bookkeeping in the ledger -------------------------------------------------------------------


def _taken(ledger: Ledger, current: pl.Series) -> Callable[[list[str]], set[str]]:
    """Which of some candidate IDs were ever issued (in the ID history or the ``current`` crosswalk's IDs)."""
    def taken(ids: list[str]) -> set[str]:
        # filter the long list by the short one: is_in builds its hash set from the right-hand side
        out = set(current.filter(current.is_in(pl.Series(ids, dtype=pl.String).implode())).to_list())
        return out | ledger.ids_in_history(ids)
    return taken


# --- records -----------------------------------------------------------------------------------------------


def _batch_ids(batches: list[Batch]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for b in batches:
        out.setdefault(b.partner, []).append(b.batch_id)
    return out


@dataclass
class Records:
    """The run's linkable records: ``all`` (only the columns linkage reads, partner by partner), the
    ``rebuilt`` partners' records in full (to be written), and the ``partners`` present."""

    all: pl.DataFrame
    rebuilt: dict[str, pl.DataFrame]
    partners: set[str]


def changed_partners(batches: list[Batch], previous_batches: dict[str, list[str]] | None) -> set[str]:
    """Partners with active batches whose batches differ from ``previous_batches`` (all when None)."""
    now = _batch_ids(batches)
    if previous_batches is None:
        return set(now)
    return {p for p in now if now[p] != previous_batches.get(p)}


class RecordBuilds:
    """Partners' linkable records built from their staged rows on worker threads — each at most once, and
    from as soon as the run knows it will need them."""

    def __init__(self, ws: Workspace, batches: list[Batch], encoding: EncodingPlan | None) -> None:
        self._ws, self._encoding = ws, encoding
        self._order = {b.batch_id: i for i, b in enumerate(batches)}
        self._builds: dict[str, Future[pl.DataFrame]] = {}

    def start(self, partners: Iterable[str]) -> None:
        """Begin building these partners' records (those not begun already)."""
        for p in sorted(set(partners) - set(self._builds)):
            self._builds[p] = parallel.background(build_records, staged_records(self._ws, p), self._order,
                                                  self._encoding, self._ws.config.link.placeholder_names)

    def result(self, partner: str) -> pl.DataFrame:
        """One partner's records (built now if not begun)."""
        self.start([partner])
        return self._builds[partner].result()


def current_records(ws: Workspace, batches: list[Batch], columns: list[str],
                    previous_batches: dict[str, list[str]] | None, encoding: EncodingPlan | None = None,
                    builds: RecordBuilds | None = None) -> Records:
    """Linkable records of the active batches. Partners whose active batches are unchanged since
    ``previous_batches`` are read back from the current generation (only ``columns``); the others, or all
    when ``previous_batches`` is None, are rebuilt from their staged rows (by ``builds``, if given)."""
    now = _batch_ids(batches)
    builds = builds or RecordBuilds(ws, batches, encoding)
    to_build = sorted(changed_partners(batches, previous_batches))
    builds.start(to_build)  # on worker threads, while the unchanged partners' records are mapped
    kept = sorted(set(now) - set(to_build))
    old = read_records(ws.link_dir, kept, columns) if kept else None
    rebuilt = {p: builds.result(p) for p in to_build}
    parts = [rebuilt[p].select(columns) if p in rebuilt else old.filter(pl.col("partner") == p)  # type: ignore[union-attr]
             for p in sorted(now)]
    empty = empty_records().select(columns)
    frame = pl.concat([f for f in parts if f.height] or [empty], how="vertical_relaxed")
    return Records(frame, rebuilt, set(now))


# --- the run -----------------------------------------------------------------------------------------------


def _train_reason(model: engine.Model | None, spec: LinkSpec, retrain: bool, purged: set[str]) -> str | None:
    if retrain:
        return "--retrain"
    if model is None:
        return "no saved model"
    if model.meta.get("spec_fingerprint") != spec.fingerprint:
        return "the comparisons or training rules changed"
    if purged & set(model.meta.get("training_batches", [])):
        return "the model was trained on data that has since been purged"
    return None


def _nameless(records: pl.DataFrame) -> pl.Series:
    """Record ids with no first name at all: none in plaintext (none given, or a placeholder) and none
    encoded."""
    missing = pl.col("first_name").is_null() if "first_name" in records.columns else pl.lit(True)
    encoded = ENC_PREFIX + "first_name"
    if encoded in records.columns:
        missing = missing & pl.col(encoded).is_null()
    return records.filter(missing).get_column("record_id")


def _full_reason(full: bool, trained: bool, state: dict[str, Any], model_id: str | None, spec: LinkSpec,
                 thresholds: Thresholds, complete: bool) -> str | None:
    if full:
        return "--full"
    if trained:
        return "new model"
    if not complete:
        return "first link"
    if state.get("model_id") != model_id:
        return "model changed"
    if state.get("blocking") != spec.blocking_fingerprint:
        return "blocking rules changed"
    if float(state.get("floor", 1e9)) > thresholds.floor:
        return "review floor lowered"
    return None


def link_workspace(ws: Workspace, full: bool = False, retrain: bool = False,
                   backend: str | None = None) -> LinkResult:
    """Link the workspace's active staged records into persons (design §5); returns the run's summary.
    ``backend`` ("duckdb" or "spark") overrides ``[engine] backend`` for this run.

    Example: ``link_workspace(Workspace.open("ws")).links``
    """
    started = time.monotonic()
    clock = PhaseClock()
    engine_settings = ws.config.engine if backend is None else ws.config.engine.model_copy(
        update={"backend": backend})
    engine.check_backend(engine_settings)  # before the lock: a missing pyspark is a config error (exit 2)
    log = RunLog(ws.logs_dir, "link")
    with writer_lock(ws.lock_path, "link"), Ledger(ws.ledger_path) as ledger:
        commit_pending_events(ws, ledger)
        cfg = ws.config
        spec = link_spec(cfg.link)
        secret = ws.secret()
        batches = ledger.active_batches()
        if not batches:
            raise WorkspaceError("nothing to link: no staged batches", hint="ingest partner files first "
                                 "(`cilink ingest PARTNER FILE`), then run `cilink link`")
        encoding = encoding_plan(ws, batches, cfg.link.seed)  # None unless some partner sends encodings
        if encoding is not None:
            spec = link_spec(cfg.link, encoding.descriptor)
        # the changed partners' records are needed whatever kind of run this turns out to be: begin them now
        builds = RecordBuilds(ws, batches, encoding)
        builds.start(changed_partners(batches, read_state(ws.link_dir).get("batches")))
        request = RunRequest(spec=spec, secret=secret, batches=batches, full=full, retrain=retrain,
                             engine=engine_settings, encoding=encoding, builds=builds, log=log, clock=clock)
        ledger.start_run(log.run_id, "link")
        log.event("start", batches=len(batches), full=full, retrain=retrain, backend=engine_settings.backend,
                  progress=True)
        clock.lap("prepare")
        try:
            with new_link_generation(ws) as gen:
                result, events = _run(gen, ledger, request)
                result.seconds = round(time.monotonic() - started, 3)
            commit_pending_events(ws, ledger)
            clock.lap("publish")
        except CilinkError as e:
            ledger.finish_run(log.run_id, e.exit_code, {"error": type(e).__name__})
            ledger.audit("link", "link", f"exit {e.exit_code}", details={"run_id": log.run_id,
                                                                         "error": type(e).__name__})
            log.event("error", error=type(e).__name__)
            raise
        summary = {k: v for k, v in result.to_dict().items() if k not in ("model", "timings")}
        ledger.finish_run(log.run_id, 0, summary)
        ledger.audit("link", "link", "ok", inputs={"batches": sorted(b.batch_id for b in batches),
                                                   "full": full, "retrain": retrain}, details=summary)
        log.event("finish", mode=result.mode, trained=result.trained, records=result.records,
                  candidate_pairs=result.candidate_pairs, links=result.links, review_queue=result.review_queue,
                  persons=result.persons, id_events=len(events))
        clock.lap("ledger")
        result.timings = clock.totals
        log.event("timings", progress=True, **clock.totals)
    return result


@dataclass(frozen=True)
class RunRequest:
    """What ``link_workspace`` asks of one run, settled before the run's generation is opened."""

    spec: LinkSpec
    secret: bytes
    batches: list[Batch]
    full: bool
    retrain: bool
    engine: EngineSettings
    encoding: EncodingPlan | None
    #: the changed partners' records, begun on worker threads before the generation was opened
    builds: RecordBuilds
    log: RunLog
    clock: PhaseClock


@dataclass
class RunState:
    """One link run as it goes: the request, the generation it writes and what the last run left; then what
    each step adds, in the order of the steps (the comment names the step that sets a field; only later steps
    read it)."""

    req: RunRequest
    gen: Workspace
    ledger: Ledger
    thresholds: Thresholds
    prev: Previous
    # _read_records
    saved_model: engine.Model | None = field(init=False)
    train_reason: str | None = field(init=False)
    placeholders: list[str] = field(init=False)
    recs: Records = field(init=False)
    # _ensure_model
    model: engine.Model = field(init=False)
    model_id: str | None = field(init=False)
    # _score_pairs
    why_full: str | None = field(init=False)
    scored: engine.Scored = field(init=False)
    pairs: pl.DataFrame = field(init=False)
    new_pairs: pl.DataFrame = field(init=False)
    changed: pl.Series = field(init=False)
    gone: pl.Series = field(init=False)
    # _resolve_persons
    review_seq: dict[str, int] = field(init=False)
    persons: Persons = field(init=False)
    # _write_outputs
    queue: pl.DataFrame = field(init=False)
    n_persons: int = field(init=False)
    by_partners: dict[str, int] = field(init=False)

    @property
    def records(self) -> pl.DataFrame:
        """The run's linkable records (only the columns linkage reads)."""
        return self.recs.all

    @property
    def state(self) -> dict[str, Any]:
        """What the last run recorded in ``state.json`` (empty before the first run)."""
        return self.prev.state


def _run(gen: Workspace, ledger: Ledger, req: RunRequest) -> tuple[LinkResult, list[IdEvent]]:
    """One link run inside the generation ``gen`` (the caller publishes it): records, model, scored pairs,
    persons, outputs — each a step on the run's ``RunState`` — and the run's summary and ID events."""
    req.clock.lap("generation")
    cfg = gen.config
    st = RunState(req, gen, ledger, Thresholds(cfg.link.link_threshold, cfg.link.review_band),
                  load_previous(gen.link_dir))
    for step in (_read_records, _ensure_model, _score_pairs, _resolve_persons, _write_outputs):
        step(st)
    return _result(st), st.persons.events


def _read_records(st: RunState) -> None:
    """Load the saved model and decide whether it must be (re)trained, then gather the linkable records:
    the unchanged partners' read back from the last generation, the others rebuilt — all of them when the
    run will not be incremental anyway."""
    req, cfg, link_dir = st.req, st.gen.config, st.gen.link_dir
    st.saved_model = None if req.retrain else engine.load_model(link_dir)
    purged = {b.batch_id for b in st.ledger.batches(status="purged")}
    st.train_reason = _train_reason(st.saved_model, req.spec, req.retrain, purged)
    st.placeholders = sorted(cfg.link.placeholder_names)
    # records read back were built with the placeholder list of their run: a new list rebuilds them all
    rebuild_all = (req.full or st.train_reason is not None or not st.prev.complete
                   or st.state.get("placeholder_names") != st.placeholders)
    if not rebuild_all and st.saved_model is not None:
        engine.prepare_scoring(st.saved_model, req.engine)
    columns = list(dict.fromkeys([*KEY_COLUMNS, *req.spec.columns, "ssn"]))
    st.recs = current_records(st.gen, req.batches, columns, None if rebuild_all else st.state.get("batches"),
                              req.encoding, req.builds)
    req.log.event("records", records=st.records.height, rebuilt_partners=len(st.recs.rebuilt), progress=True)
    req.clock.lap("records")


def _ensure_model(st: RunState) -> None:
    """Train and save a model if ``_read_records`` found a reason to; compile its scoring SQL for later
    incremental runs where the backend replays it."""
    req, cfg, link_dir = st.req, st.gen.config, st.gen.link_dir
    model = st.saved_model
    if st.train_reason is not None:
        model = engine.train(st.records, req.spec, seed=cfg.link.seed, max_pairs_u=cfg.link.max_pairs_u,
                             max_pairs_em=cfg.link.max_pairs_em, engine=req.engine)
        model.meta["training_batches"] = sorted(b.batch_id for b in req.batches)
        model.meta["trained_at"] = now_utc()
        engine.save_model(model, link_dir)
        req.log.event("trained", reason=st.train_reason, records=st.records.height, progress=True)
    assert model is not None
    st.model = model
    st.model_id = _model_id(link_dir)
    if engine.compile_scoring(model, req.spec, st.records, engine=req.engine):
        engine.save_scoring_sql(model, link_dir)  # later incremental runs replay it (engine.score_new)
    req.clock.lap("model")


def _score_pairs(st: RunState) -> None:
    """Score every candidate pair (a full run), or only the pairs of new and changed records, keeping the
    last run's other pairs (an incremental run)."""
    req, link_dir, model = st.req, st.gen.link_dir, st.model
    st.why_full = _full_reason(req.full, st.train_reason is not None, st.state, st.model_id, req.spec,
                               st.thresholds, st.prev.complete)
    records, floor = st.records, st.thresholds.floor
    if st.why_full is not None:
        st.scored = engine.score_all(model, records, req.spec, min_weight=floor, engine=req.engine)
        st.pairs = st.new_pairs = st.scored.pairs
        st.changed, st.gone = records["record_id"], pl.Series("record_id", [], dtype=pl.String)
    else:
        assert st.prev.pairs is not None
        rebuilt = st.recs.rebuilt
        before = read_records(link_dir, sorted(rebuilt))
        st.changed, st.gone = changed_record_ids(
            before if before is not None else empty_records(),
            pl.concat([rebuilt[p] for p in sorted(rebuilt)] or [empty_records()], how="vertical_relaxed"))
        touched = pl.concat([st.changed, st.gone]).implode()
        kept = st.prev.pairs.filter(
            pl.col("match_weight").is_not_null() & (pl.col("match_weight") >= floor)
            & ~pl.col("record_id_l").is_in(touched) & ~pl.col("record_id_r").is_in(touched)
        ).select(list(engine.pairs_schema(model)))
        st.scored = engine.score_new(model, records, st.changed, req.spec, min_weight=floor, engine=req.engine)
        st.new_pairs = st.scored.pairs
        st.pairs = pl.concat([kept, st.new_pairs], how="vertical_relaxed")
    req.log.event("scored", mode="full" if st.why_full else "incremental", candidates=st.scored.candidates,
                  pairs=st.pairs.height, progress=True)
    req.clock.lap("score")


def _resolve_persons(st: RunState) -> None:
    """Decide the pairs (reviewers' decisions and guards included), cluster them and give the clusters
    person IDs: everywhere, or only in the components the run touched."""
    req, ledger, model, records, state = st.req, st.ledger, st.model, st.records, st.state
    ids = records["record_id"]
    # how far the review tables go is read first: a decision recorded meanwhile is applied now and seen again next run
    st.review_seq = review_ledger.review_seq(ledger.conn)
    reviewed = latest_decisions(review_ledger.standing_rows(ledger.conn))  # disagreements stand for nothing
    if reviewed.height:  # decisions on records that are gone no longer apply
        reviewed = reviewed.filter(pl.col("record_id_l").is_in(ids.implode())
                                   & pl.col("record_id_r").is_in(ids.implode()))
    prev = st.prev
    prev_ids = prev.crosswalk["person_id"] if prev.crosswalk is not None else pl.Series("person_id", [], pl.String)
    ctx = Context(
        thresholds=st.thresholds, reviewed=reviewed, household=req.spec.household_comparisons(),
        households_present=bool(model.meta.get("households_present", True)),
        ssn=records.select("record_id", "ssn"), nameless=_nameless(records),
        dob_conflict=next((model.conflict_weight(c) for c in req.spec.comparisons if c.name == "dob"), None),
        issue_order=ledger.id_issue_order, taken=_taken(ledger, prev_ids),
        rng=id_generator(req.secret, st.gen.config.link.seed, ledger.id_history_seq()),
    )
    same_rules = (state.get("link_threshold") == st.thresholds.link and state.get("floor") == st.thresholds.floor)
    if st.why_full is not None or not same_rules:
        st.persons = resolve_all(ids, st.pairs, prev.crosswalk, ctx)
    else:
        assert prev.pairs is not None
        seen = state.get("review_seq", 0)  # a number before the workbench's marks: decisions only
        seen = seen if isinstance(seen, dict) else {"decisions": seen, "marks": 0}
        reviewed_ids = pl.Series("record_id", review_ledger.touched_since(
            ledger.conn, int(seen.get("decisions", 0)), int(seen.get("marks", 0))), dtype=pl.String)
        st.persons = resolve_changed(ids, st.pairs, st.new_pairs, st.changed, st.gone, reviewed_ids, prev.pairs,
                                     prev.people(), ctx)
    req.log.event("persons", reclustered=st.persons.reclustered, id_events=len(st.persons.events), progress=True)
    req.clock.lap("persons")


def _write_outputs(st: RunState) -> None:
    """Write the run's files into the generation — records, pairs, crosswalk, review queue, ID events, each
    atomically and side by side — and its ``state.json``."""
    req, link_dir, persons = st.req, st.gen.link_dir, st.persons
    decided = persons.decided
    people = persons.people.rename({"component": COMPONENT})
    st.queue = decided.filter(pl.col("decision") == REVIEW).sort(["match_weight", "record_id_l", "record_id_r"],
                                                                 descending=[True, False, False], nulls_last=True)
    write_crosswalk_part, count_persons = _crosswalk_outputs(link_dir, st.records, people, persons, st.gone,
                                                             st.prev, st.state)
    recs, queue = st.recs, st.queue
    *_, (st.n_persons, st.by_partners) = parallel.run_all(  # separate files, each written atomically, side by side
        lambda: write_records(link_dir, recs.rebuilt, recs.partners),
        lambda: write_pairs(link_dir, decided, persons.redone, persons.redecided),
        write_crosswalk_part,
        lambda: write_frame(link_dir / QUEUE_FILE, queue),
        lambda: write_events(link_dir, persons.events),
        count_persons,
    )
    remove_earlier_files(link_dir)  # a full run has just written them anew; an incremental one never finds any
    spec, thresholds = req.spec, st.thresholds
    write_state(link_dir, {
        "run_id": req.log.run_id, "finished_at": now_utc(), "batches": _batch_ids(req.batches),
        "model_id": st.model_id, "spec": spec.fingerprint, "blocking": spec.blocking_fingerprint,
        "floor": thresholds.floor, "link_threshold": thresholds.link, "review_seq": st.review_seq,
        "id_events": len(persons.events), "persons": st.n_persons, "clusters_by_partners": st.by_partners,
        "placeholder_names": st.placeholders,
    })
    req.clock.lap("write")


def _result(st: RunState) -> LinkResult:
    """The run's summary: counts only, never identifiers (``seconds`` is the caller's to fill in)."""
    decided, persons, records = st.persons.decided, st.persons, st.records
    counts = decided.group_by("decision").len()
    n = dict(zip(counts["decision"].to_list(), counts["len"].to_list(), strict=True))
    guards = decided.filter(pl.col("guard").is_not_null()).group_by("guard").len().sort("guard")
    trained = st.train_reason is not None
    result = LinkResult(
        run_id=st.req.log.run_id, mode="full" if st.why_full else "incremental", trained=trained,
        train_reason=st.train_reason, records=records.height,
        records_scored=records.height if st.why_full else st.changed.len(), records_removed=st.gone.len(),
        candidate_pairs=st.scored.candidates,
        pairs_kept=decided.filter(pl.col("match_weight").is_not_null()).height,
        links=n.get(LINK, 0), review_queue=st.queue.height, must_link=n.get(MUST_LINK, 0),
        cannot_link=n.get(CANNOT_LINK, 0), persons=st.n_persons, link_threshold=st.thresholds.link,
        review_floor=st.thresholds.floor, seconds=0.0, records_reclustered=persons.reclustered,
        guards=dict(guards.iter_rows()), clusters_by_partners=st.by_partners,
        id_events=dict(sorted(Counter(e.event for e in persons.events).items())),
        model=[asdict(w) for w in engine.model_weights(st.model)] if trained else None,
    )
    st.req.clock.lap("counts")
    return result


def _persons_by_partners(crosswalk: pl.DataFrame) -> tuple[int, dict[str, int]]:
    """How many persons, and how many of them each number of partners knows."""
    per_person = crosswalk.group_by("person_id").agg(pl.col("partner").n_unique().alias("k"))
    by_partners = per_person.group_by("k").len().sort("k")
    return per_person.height, {str(k): v for k, v in by_partners.iter_rows()}


Step = Callable[[], Any]


def _crosswalk_outputs(link_dir: Path, records: pl.DataFrame, people: pl.DataFrame, persons: Persons,
                       gone: pl.Series, prev: Previous, state: dict[str, Any]) -> tuple[Step, Step]:
    """How this run writes its crosswalk and counts its persons (two steps, to run beside the other writes).

    A full run writes everyone. An incremental run writes only the rows it changed into the changes file
    (``cilink.link.outputs.read_crosswalk`` puts them in place) until they outgrow ``COMPACT_SHARE`` of the
    crosswalk, and then the whole crosswalk again; it counts persons from the last run's counts, less the
    replaced components' persons, plus the re-clustered ones' (a person never spans components).
    """
    if persons.replaced is None:
        crosswalk = (records.select("partner", "source_person_id", "record_id")
                     .join(people, on="record_id", how="left", maintain_order="left"))
        return (lambda: write_crosswalk(link_dir, crosswalk)), (lambda: _persons_by_partners(crosswalk))
    replaced = persons.replaced.rename({"component": COMPONENT})
    previous = prev.crosswalk
    assert previous is not None

    def whole() -> pl.DataFrame:
        kept = previous.join(replaced.select("record_id"), on="record_id", how="anti", maintain_order="left")
        return pl.concat([kept, people.select(kept.columns)])

    changes = crosswalk_changes(link_dir, people, gone)
    if outputs.outgrown(changes.height, previous.height):
        write: Step = lambda: write_crosswalk(link_dir, whole())  # noqa: E731
    else:
        write = lambda: write_crosswalk_changes(link_dir, changes)  # noqa: E731
    if "persons" not in state or "clusters_by_partners" not in state:  # written by an earlier cilink
        return write, lambda: _persons_by_partners(whole())

    def count() -> tuple[int, dict[str, int]]:
        n_old, by_old = _persons_by_partners(replaced)
        n_new, by_new = _persons_by_partners(people)
        by = Counter({k: int(v) for k, v in state["clusters_by_partners"].items()})
        by.subtract(by_old)
        by.update(by_new)
        return int(state["persons"]) - n_old + n_new, {k: v for k, v in sorted(by.items(), key=lambda kv: int(kv[0]))
                                                     if v > 0}

    return write, count


def model_table(ws: Workspace) -> list[engine.LevelWeight]:
    """The current model's weights per comparison level (for `cilink link --show-model`)."""
    model = engine.load_model(ws.link_dir)
    if model is None:
        raise WorkspaceError("no trained model yet", hint="run `cilink link` first")
    return engine.model_weights(model)
