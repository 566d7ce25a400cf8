"""`cilink export`: build a de-identified release, pass it through the privacy gate, then publish it atomically.

Each table is built, checked by the privacy gate and written, one at a time (so a million-person release
never holds every table in memory at once), into a staging directory inside the restricted zone. Only
when every table and document has passed is that directory renamed to ``releases/<release_id>/`` in one
step (``cilink.atomic.atomic_dir``). A refusal (exit 5) leaves nothing under releases/ and removes the
staging directory; it is recorded in the audit log with the rules that failed, never the values.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cilink import atomic
from cilink.config import ReleaseTier, config_hash
from cilink.errors import ConfigError, PrivacyGateRefused, UsageError, WorkspaceError
from cilink.export import privacy_gate as gate
from cilink.export.columns import EVENTS, PANEL, PERSONS, SPELLS, specs_by_file
from cilink.export.dictionary import build_dictionary, merge_counts, raw_counts, render_markdown, table_entry
from cilink.export.events import build_events
from cilink.export.generalize import ReleasePlan, generalize_date, release_plan
from cilink.export.kanonymity import KAnonymityUnreachable
from cilink.export.labels import release_header
from cilink.export.manifest import AGGREGATE_SECTIONS, MANIFEST, add_files, build_manifest, dumps, sha256_text
from cilink.export.panel import build_panel
from cilink.export.person_keys import DEFAULT_AUDIENCE, audience_key, person_keys
from cilink.export.persons import attach_keys, build_persons
from cilink.export.readme import render_readme
from cilink.export.record_risk import RecordRisk
from cilink.export.restricted_values import RestrictedValues, collect_restricted_values
from cilink.export.sources import as_of_date, load_sources
from cilink.export.spells import build_spells
from cilink.ledger import Ledger
from cilink.locking import writer_lock
from cilink.logs import RunLog
from cilink.permissions import share_release, share_releases_dir
from cilink.status import release_inputs
from cilink.timing import PhaseClock
from cilink.workspace import Workspace

RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ROW_GROUP = 1_000_000

#: Test-only hook: (table name, frame) → frame, applied to every table just before the privacy gate
#: (events: once per domain part, with its ``domain`` column), so tests can prove the gate refuses leaks.
Tamper = Callable[[str, pl.DataFrame], pl.DataFrame]


@dataclass
class ExportResult:
    """What `cilink export` made: where, with which profile, how many rows, what anonymization did."""

    release_id: str
    path: Path
    profile: str
    audience: str
    rows: dict[str, int]
    anonymization: dict[str, Any]
    manifest_sha256: str
    #: per phase (sources, build_*, gate_*, write, …): wall ``<phase>_s``, CPU ``<phase>_cpu_s`` (user + system,
    #: all threads) and system ``<phase>_sys_s`` seconds — for the run log and benchmarks/export_1m.py
    timings: dict[str, float] = field(default_factory=dict)
    tier: str = "deidentified"

    def summary_lines(self) -> list[str]:
        """What the gate did, in a few plain lines (no values, only levels and measured figures)."""
        anon = self.anonymization
        if self.tier == "deidentified":
            gen = ", ".join(f"{k} {v}" for k, v in anon.get("generalization", {}).items())
            return [f"whole-record k={anon.get('k')} reached; levels: {gen}",
                    f"persons with suppressed values {anon.get('persons_with_suppressed_values_share', 0):.1%}, "
                    f"withheld {anon.get('persons_withheld_share', 0):.1%}"]
        if self.tier == "research":
            return ["pseudonymised personal data — not de-identified (research tier, under the audience's "
                    "data-use agreement)"]
        return ["aggregate tables only; small cells suppressed"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def default_release_id(audience: str, now: dt.datetime | None = None) -> str:
    """UTC time of the export, e.g. ``2026-11-23T120000Z`` (plus ``-<audience>`` for a named audience)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H%M%SZ")
    return stamp if audience == DEFAULT_AUDIENCE else f"{stamp}-{audience}"


def _check_release_id(release_id: str) -> str:
    if not RELEASE_ID.match(release_id):
        raise UsageError(f"release id {release_id!r} is not usable as a directory name",
                         hint="use letters, digits, '.', '_' and '-' (at most 100), starting with a letter or digit")
    return release_id


def _cpu() -> float:
    """CPU seconds of this process so far (all threads), for the run log: robust to a busy machine."""
    return round(time.process_time(), 1)


def _taken(ws: Workspace, release_id: str) -> bool:
    """A release id is taken if its directory exists or the ledger has recorded it."""
    if (ws.releases_dir / release_id).exists():
        return True
    with Ledger(ws.ledger_path) as ledger:
        return ledger.conn.execute("SELECT 1 FROM releases WHERE release_id = ?", (release_id,)).fetchone() is not None


def _write_table(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # fixed codec, level and row-group size: same frame ⇒ same bytes. zstd level 1: as small as level 3 on
    # these columns (hex keys, short codes) and a quarter less CPU
    frame.write_parquet(path, compression="zstd", compression_level=1, statistics=True, row_group_size=ROW_GROUP)


def _refuse(ws: Workspace, failures: list[gate.GateFailure], log: RunLog, inputs: dict[str, Any],
            hint: str | None = None) -> None:
    """Record the refusal (rules and columns, no values) and raise PrivacyGateRefused."""
    with Ledger(ws.ledger_path) as ledger:
        ledger.audit("export", "export", "refused", inputs=inputs,
                     details={"failures": [str(f) for f in failures]})
    log.event("refused", failures=len(failures), rules=sorted({str(f.rule) for f in failures}))
    gate.refuse_if_failed(failures, hint)


@dataclass
class StageContext:
    """What a tier's stage function gets: the workspace, the resolved plan, the audience and its key, the
    release id, the run log and clock, and the staging directory it writes into (restricted zone)."""

    ws: Workspace
    plan: ReleasePlan
    tier: ReleaseTier
    key: bytes
    audience: str
    release_id: str
    log: RunLog
    clock: PhaseClock
    tmp: Path
    tamper: Tamper | None = None
    #: research tier: the data-use agreement (recipient, agreement, purpose, expires); empty otherwise
    agreement: dict[str, Any] = field(default_factory=dict)


#: A tier's builder: writes its files into ``ctx.tmp`` (refusing with PrivacyGateRefused) and returns the
#: manifest (without its file list) and the audit inputs.
StageFunction = Callable[[StageContext], tuple[dict[str, Any], dict[str, Any]]]


def _stage_function(tier: ReleaseTier) -> StageFunction:
    if tier == ReleaseTier.DEIDENTIFIED:
        from cilink.export.deidentified import stage_deidentified
        return stage_deidentified
    if tier == ReleaseTier.AGGREGATE:
        from cilink.export.aggregate import stage_aggregate
        return stage_aggregate
    return _stage_research


def _check_agreement(ws: Workspace, audience: str, tier: ReleaseTier) -> dict[str, Any]:
    """A research audience's data-use agreement (for the audit log); ConfigError once it has expired."""
    if tier != ReleaseTier.RESEARCH:
        return {}
    aud = ws.config.export.audience(audience)
    assert aud.expires is not None  # the config model requires it for the research tier
    if aud.expires < dt.datetime.now(dt.UTC).date():
        raise ConfigError(f"the data-use agreement of audience '{audience}' expired on {aud.expires}",
                          hint=f"renew the agreement and update export.audiences[{audience}].expires, or stop "
                          "exporting to this audience")
    return {"recipient": aud.recipient, "agreement": aud.agreement, "purpose": aud.purpose,
            "expires": aud.expires.isoformat()}


def export_release(ws: Workspace, *, audience: str | None = None, release_id: str | None = None,
                   tamper: Tamper | None = None) -> ExportResult:
    """Write ``releases/<release_id>/`` for an audience's tier or refuse with PrivacyGateRefused (exit 5).

    ``audience`` picks an ``[[export.audiences]]`` entry (its tier, secret and profile); default: the
    workspace secret and ``[export].tier`` (deidentified unless configured). Tiers (docs/analysts.md):
    ``aggregate`` (tables only), ``deidentified`` (coarsened person-level microdata behind the whole-record
    gate), ``research`` (pseudonymised full detail for a named recipient under a data-use agreement).
    ``release_id`` defaults to the UTC time; pass it to reproduce a release byte for byte. ``tamper`` is for
    tests only (see ``Tamper``).
    Example: ``export_release(Workspace.open("ws"), release_id="2026-q3")``
    """
    cfg = ws.config
    aud = audience or DEFAULT_AUDIENCE
    tier = cfg.export.tier_of(aud)
    aud_profile = cfg.export.audience(aud).profile if aud != DEFAULT_AUDIENCE else None
    plan = release_plan(cfg.export, aud_profile)
    agreement = _check_agreement(ws, aud, tier)
    key = audience_key(ws, aud)  # a missing secret is a configuration error before any data is read
    explicit_id = release_id is not None
    rid = _check_release_id(release_id or default_release_id(aud))
    log = RunLog(ws.logs_dir, "export")
    with writer_lock(ws.lock_path, "export"):
        target = ws.releases_dir / rid
        if explicit_id and _taken(ws, rid):
            raise UsageError(f"release {rid} already exists", hint="choose another --release-id; releases are never "
                             "overwritten, and an id stays taken in the ledger after its directory is deleted")
        n = 2
        while _taken(ws, target.name):  # two automatic ids within one second
            target = ws.releases_dir / f"{rid}-{n}"
            n += 1
        rid = target.name
        log.event("start", profile=str(plan.profile), audience=aud, tier=str(tier))
        # Staged in the restricted zone: until every table and document has passed the gate, nothing
        # exists under releases/; a refusal or crash removes the staging directory (recovery sweeps it too).
        clock = PhaseClock()
        share_releases_dir(ws.releases_dir, cfg.export.group)
        with atomic.atomic_dir(target, tmp_parent=ws.restricted) as tmp:
            ctx = StageContext(ws=ws, plan=plan, tier=tier, key=key, audience=aud, release_id=rid, log=log,
                               clock=clock, tmp=tmp, tamper=tamper, agreement=agreement)
            manifest, inputs = _stage_function(tier)(ctx)
            manifest = {**manifest, "tier": str(tier)}
            # the manifest last: it carries the sha256 of every other file
            manifest_text = dumps(add_files(manifest, tmp))
            (tmp / MANIFEST).write_text(manifest_text, encoding="utf-8")
            share_release(tmp, cfg.export.group)  # readable by the analysts before it appears
            clock.lap("manifest")
        clock.lap("publish")
        if tier == ReleaseTier.AGGREGATE:  # what it printed is the baseline the next one is checked against
            from cilink.export.aggregate import commit_aggregate_state
            commit_aggregate_state(ws, aud, rid)
        log.event("timings", **clock.totals)
        rows, anon = manifest.get("row_counts", {}), manifest.get("anonymization", {})
        log.event("written", **rows)
        with Ledger(ws.ledger_path) as ledger:
            ledger.add_release(rid, str(plan.profile), aud, target.relative_to(ws.root).as_posix(),
                               {"rows": rows, "manifest_sha256": sha256_text(manifest_text), "tier": str(tier),
                                **anon, **release_inputs(ws)})
            ledger.audit("export", "export", "ok", inputs={**inputs, "tier": str(tier), **agreement},
                         details={"release_id": rid, "rows": rows, "tier": str(tier), **agreement})
    return ExportResult(release_id=rid, path=target, profile=str(plan.profile), audience=aud, rows=rows,
                        anonymization=anon, manifest_sha256=sha256_text(manifest_text), timings=clock.totals,
                        tier=str(tier))


def _stage_research(ctx: StageContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """The research tier: pseudonymised full event detail (persons, events, spells, panel)."""
    header = release_header(ctx.tier, ctx.agreement)
    return _stage(ctx.ws, ctx.plan, ctx.key, ctx.audience, ctx.release_id, ctx.log, ctx.tamper, ctx.tmp, ctx.clock,
                  header)


class _Stager:
    """Gate one table (or part) at a time, write it into the staging directory, and remember its metadata."""

    def __init__(self, ws: Workspace, plan: ReleasePlan, partners: tuple[str, ...], rv: RestrictedValues,
                 tmp: Path, log: RunLog, inputs: dict[str, Any], tamper: Tamper | None, clock: PhaseClock) -> None:
        self.ws, self.plan, self.rv, self.tmp, self.log, self.inputs, self.tamper, self.clock = (
            ws, plan, rv, tmp, log, inputs, tamper, clock)
        self.specs = specs_by_file(plan, partners)
        self.allowed_pii = {"zip5"} if plan.zip5 else set()
        self.rows: dict[str, int] = {}
        self.counts: dict[str, dict[str, dict[str, int]]] = {}
        self.candidates: list[gate.Candidates] = []
        self.risk = RecordRisk()  # the whole released record, joined on person_key

    def lookups(self) -> list[gate.GateFailure]:
        """The identifier look-ups of every staged table's free-text values, in one pass."""
        return gate.lookup_failures(self.candidates, self.rv)

    def add(self, name: str, frame: pl.DataFrame, path: Path, *, drop: str | None = None) -> pl.DataFrame:
        self.clock.lap(f"build_{name.removesuffix('.parquet')}")
        if self.tamper is not None:
            frame = self.tamper(name, frame)
        failures, candidates = gate.check_shapes(name, frame, self.specs[name], self.allowed_pii, self.rv)
        self.candidates += candidates  # looked up once for the whole release (lookups())
        if name == PERSONS:
            failures += gate.check_k_anonymity(frame, self.plan.k)
        if failures:  # refusing anyway: report this table's look-up failures too, for a complete picture
            failures += gate.lookup_failures(candidates, self.rv)
            _refuse(self.ws, failures, self.log, self.inputs)
        self.clock.lap("gate_shapes")
        self.rows[name] = self.rows.get(name, 0) + frame.height
        self.risk.add(name, frame)
        self.clock.lap("risk")
        merge_counts(self.counts.setdefault(name, {}), raw_counts(frame, self.specs[name]))
        self.clock.lap("value_counts")
        _write_table(frame.drop(drop) if drop else frame, self.tmp / path)
        self.clock.lap("write")
        self.log.event("staged", table=name, part=path.as_posix(), rows=frame.height, cpu_s=_cpu())
        return frame

    def dictionary(self, manifest: dict[str, Any]) -> dict[str, Any]:
        entries = [table_entry(name, self.specs[name], self.rows.get(name, 0), self.counts.get(name, {}),
                               self.plan.min_cell) for name in (PERSONS, EVENTS, SPELLS, PANEL)]
        return build_dictionary(entries, self.plan, manifest)


def _stage(ws: Workspace, plan: ReleasePlan, key: bytes, audience: str, rid: str, log: RunLog,
           tamper: Tamper | None, tmp: Path, clock: PhaseClock,
           header: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build, gate and write each table in turn into ``tmp``, then the documents; raise on any refusal."""
    cfg = ws.config
    sources = load_sources(ws, lambda ids: person_keys(ids, key))
    if not sources.n_persons:
        raise WorkspaceError("nothing to export: no linked persons in the active batches",
                             hint="ingest partner files and run `cilink link` first")
    inputs = {"config_sha256": config_hash(ws.config_path), "crosswalk_sha256": sources.crosswalk_sha256,
              "batches": sorted(b.batch_id for b, _ in sources.batches), "profile": str(plan.profile),
              "audience": audience, "release_id": rid}
    events, keys = sources.events, sources.person_keys
    as_of = as_of_date(events)
    partners = tuple(sorted(p.id for p in cfg.partners))
    log.event("loaded", persons=sources.n_persons, events=sum(df.height for df in events.values()), cpu_s=_cpu())
    clock.lap("sources")
    rv = collect_restricted_values(ws, sources.crosswalk)
    sources.crosswalk = None
    log.event("restricted_values", cpu_s=_cpu(), **rv.sizes())
    clock.lap("restricted_values")
    stager = _Stager(ws, plan, partners, rv, tmp, log, inputs, tamper, clock)

    try:
        persons, anonymization = build_persons(events, sources.n_persons, plan, as_of, partners)
    except KAnonymityUnreachable as e:
        failure = gate.GateFailure(PERSONS, "birth_year, sex, geography, race_ethnicity", gate.GateRule.K_ANONYMITY,
                                   e.needed)
        _refuse(ws, [failure], log, inputs, hint=(
            f"even at the coarsest generalization {e.needed} of {e.persons} persons are in groups smaller than "
            f"k={e.k}, and [export] max_suppression allows suppressing {e.allowed}; raise max_suppression "
            "(or lower k) in cilink.toml if your privacy officer agrees, then export again"))
        raise AssertionError("unreachable") from e
    stager.add(PERSONS, attach_keys(persons, keys), Path(PERSONS))
    del persons
    # the quasi-identifiers are not needed any more: free them before the larger tables
    events = {d: df.drop("dob", "sex", "zip5", "race_ethnicity") for d, df in events.items()}
    sources.events = {}
    for domain, frame in events.items():
        if frame.height:
            part = attach_keys(build_events(domain, frame, plan, partners), keys).with_columns(
                pl.lit(domain).alias("domain"))
            stager.add(EVENTS, part, Path("events") / f"domain={domain}" / "part-0.parquet", drop="domain")
            del part
    stager.add(SPELLS, attach_keys(build_spells(events, plan, partners, as_of), keys), Path(SPELLS))
    stager.add(PANEL, attach_keys(build_panel(events, plan, as_of), keys), Path(PANEL))
    del events

    as_of_text = str(pl.select(generalize_date(pl.lit(as_of), plan.derived_precision)).item())
    manifest = build_manifest(release_id=rid, audience=audience, config_sha256=inputs["config_sha256"],
                              plan=plan.describe(), as_of=as_of_text, anonymization=anonymization.to_dict(),
                              sources=sources, cfg=cfg, rows=stager.rows, gate_rules=[str(r) for r in gate.GateRule])
    manifest.update(header or {}, risk=stager.risk.figures())  # before the documents: they state both
    dictionary = stager.dictionary(manifest)
    clock.lap("dictionary")
    failures = stager.lookups()
    clock.lap("gate_lookups")
    failures += gate.check_metadata("dictionary.json", dictionary, rv, min_cell=plan.min_cell,
                                   is_aggregate=lambda path: ".value_counts." in path)
    failures += gate.check_metadata(MANIFEST, manifest, rv, min_cell=plan.min_cell,
                                    is_aggregate=lambda path: path.startswith(AGGREGATE_SECTIONS))
    if failures:
        _refuse(ws, failures, log, inputs)
    clock.lap("gate_metadata")
    log.event("gate_passed", cpu_s=_cpu())
    docs = {
        "dictionary.json": dumps(dictionary),
        "DICTIONARY.md": render_markdown(dictionary),
        "README.md": render_readme(manifest, cfg.project.name),
    }
    for name, text in docs.items():
        (tmp / name).write_text(text, encoding="utf-8")
    return manifest, inputs


__all__ = ["ExportResult", "PrivacyGateRefused", "Tamper", "export_release"]
