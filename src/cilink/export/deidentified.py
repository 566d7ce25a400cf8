"""The deidentified tier: coarsened person-level longitudinal microdata behind the whole-record gate.

Tables (``cilink.export.measures``): ``persons.parquet`` (age band, sex, race/ethnicity, geography,
domains, observed period and outcome flags), ``school_years.parquet``, ``workforce_spells.parquet`` and
``housing_spells.parquet``. ``cilink.export.disclosure.protect`` chooses a level per attribute and
suppresses locally; then the gate checks, on the tables exactly as they will be written:

- every column's name, declaration and values (the identifier checks shared with the research tier);
- k, maximum and mean re-identification risk of the whole record (all tables joined on person_key);
- each contributing partner as attacker: the share of its clients it singles out;
- config declarations: an attribute declared non-identifying without a reason is refused.

Any failure refuses the release (exit 5) and nothing is written. The manifest reports the levels chosen,
utility per attribute (released / suppressed shares), risk, every partner's attack figure and how many
persons could be matched 1:1 on content with the latest release of each other deidentified audience.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import polars as pl

from cilink import __version__, parallel
from cilink.config import ExportSettings, ReleaseTier
from cilink.errors import ConfigError, WorkspaceError
from cilink.export import privacy_gate as gate
from cilink.export.columns import DOMAINS, KEY_PATTERN, ColumnSpec
from cilink.export.disclosure import (
    Protected,
    Targets,
    Unreachable,
    partner_attack,
    prepare_attacks,
    protect,
)
from cilink.export.generalize import top_code_cutoff
from cilink.export.labels import release_header
from cilink.export.manifest import MANIFEST, dumps
from cilink.export.measures import (
    ATTENDANCE_BANDS,
    ATTRIBUTES,
    BY_NAME,
    DEFAULT_PRIORITIES,
    EARNINGS_BANDS,
    GRADE_BANDS,
    HOUSING_OUTCOMES,
    PERSONS,
    TABLES,
    WORKFORCE_OUTCOMES,
    Measures,
    build_measures,
)
from cilink.export.person_keys import person_keys
from cilink.export.record_risk import RecordRisk, class_figures
from cilink.export.restricted_values import RestrictedValues, collect_restricted_values
from cilink.export.sources import as_of_date, load_sources
from cilink.ledger import Ledger

FORMAT = "cilink-release-deidentified/1"

#: Attribute (or column) names a config may name, and the column → attribute map.
COLUMN_ATTRIBUTE = {c: a.name for a in ATTRIBUTES for c in a.columns}

_RACE = ("american_indian_alaska_native", "asian", "black_african_american", "hispanic_latino",
         "middle_eastern_north_african", "native_hawaiian_pacific_islander", "white", "multiple", "other")
_PROJECT_GROUPS = ("es", "th", "sh", "rrh", "psh", "oph", "so", "ce", "hp", "other")
_DEST = ("permanent", "temporary", "institutional", "homeless", "other", "unknown", "enrolled")


def _spec(name: str, dtype: pl.DataType, description: str, **kw: Any) -> ColumnSpec:
    return ColumnSpec(name, dtype, description, **kw)


def table_specs() -> dict[str, list[ColumnSpec]]:
    """Column specs of every deidentified table (the gate checks values against them)."""
    key = _spec("person_key", pl.String(), "Pseudonymous person key (HMAC-SHA256 of the internal person id "
                "under this audience's secret, 128 bits hex); joins the tables", pattern=KEY_PATTERN)
    year = {"value_range": (1900, 2200)}
    return {
        PERSONS: [
            key,
            _spec("birth_year_min", pl.Int16(), "Earliest birth year of the person's band (null: not released, "
                  "suppressed, unknown or age 90+)", **year),
            _spec("birth_year_max", pl.Int16(), "Latest birth year of the band", **year),
            _spec("age_90_plus", pl.Boolean(), "Aged 90 or older (birth year top-coded)"),
            _spec("sex", pl.String(), "Sex as most recently recorded", vocabulary=("F", "M", "X")),
            _spec("race_ethnicity", pl.String(), "Race/ethnicity at the released level (categories joined by ';')",
                  vocabulary=_RACE, separator=";"),
            _spec("zip3", pl.String(), "First 3 ZIP digits ('000': HIPAA restricted areas)", pattern=r"^\d{3}$"),
            _spec("state", pl.String(), "State of the most recent address", pattern=r"^[A-Z]{2}$"),
            _spec("domains", pl.List(pl.String()), "Domains the person appears in", vocabulary=DOMAINS),
            _spec("first_seen_year", pl.Int16(), "First year with any record", **year),
            _spec("last_seen_year", pl.Int16(), "Last year with any record", **year),
            _spec("hmis_while_in_school", pl.Boolean(), "An HMIS enrollment overlapped a school enrollment (null "
                  "unless in both domains)"),
            _spec("chronically_absent_any", pl.Boolean(), "Chronically absent (missed ≥ 10% of enrolled days) in "
                  "at least one school year"),
            _spec("graduated_any", pl.Boolean(), "Graduated in the data"),
            _spec("employed_after_exit", pl.Boolean(), "Employed in the 2nd or 4th quarter after a workforce "
                  "program exit (null: no exit, or not reported)"),
            _spec("exited_to_permanent_housing", pl.Boolean(), "An HMIS exit to a permanent destination (null: no "
                  "exit)"),
        ],
        "school_years.parquet": [
            key,
            _spec("school_year", pl.String(), "School year, e.g. 2024-25", pattern=r"^\d{4}-\d{2}$"),
            _spec("grade_band", pl.String(), "Highest grade that year, banded", vocabulary=GRADE_BANDS),
            _spec("attendance_band", pl.String(), "Share of enrolled days present, banded",
                  vocabulary=ATTENDANCE_BANDS),
            _spec("chronically_absent", pl.Boolean(), "Missed at least 10% of enrolled days"),
            _spec("graduated", pl.Boolean(), "Graduated that year"),
        ],
        "workforce_spells.parquet": [
            key,
            _spec("program", pl.String(), "Workforce program"),
            _spec("entry_year", pl.Int16(), "Year the spell started", **year),
            _spec("exit_year", pl.Int16(), "Year the spell ended (null: ongoing)", **year),
            _spec("outcome", pl.String(), "enrolled | exited_employed | exited_not_employed | exited_unknown",
                  vocabulary=WORKFORCE_OUTCOMES),
            _spec("earnings_band", pl.String(), "Earnings in the 2nd quarter after exit, USD, banded (top-coded)",
                  vocabulary=EARNINGS_BANDS),
        ],
        "housing_spells.parquet": [
            key,
            _spec("project_type_group", pl.String(), "HUD project type group", vocabulary=_PROJECT_GROUPS),
            _spec("entry_year", pl.Int16(), "Year the spell started", **year),
            _spec("exit_year", pl.Int16(), "Year the spell ended (null: ongoing)", **year),
            _spec("destination_category", pl.String(), "Exit destination category, or enrolled",
                  vocabulary=tuple(dict.fromkeys((*HOUSING_OUTCOMES, *_DEST)))),
        ],
    }


def targets_from(settings: ExportSettings) -> tuple[Targets, list[gate.GateFailure]]:
    """The gate's targets from [export]; unknown names are ConfigErrors, declarations without reason failures."""
    problems: list[str] = []
    failures: list[gate.GateFailure] = []

    def attribute(name: str, key: str) -> str | None:
        found = BY_NAME.get(name) or BY_NAME.get(COLUMN_ATTRIBUTE.get(name, ""))
        if found is None:
            problems.append(f"export.{key}: unknown attribute {name!r} (one of: {', '.join(BY_NAME)})")
            return None
        return found.name

    exempt = set()
    for name, reason in settings.non_identifying.items():
        attr = attribute(name, f"non_identifying.{name}")
        if attr is None:
            continue
        if not reason.strip():
            failures.append(gate.GateFailure("cilink.toml", f"export.non_identifying.{name}",
                                             gate.GateRule.NON_IDENTIFYING_WITHOUT_REASON))
        exempt.add(attr)
    pinned: dict[str, int] = {}
    for name, level in settings.generalization.items():
        attr = attribute(name, f"generalization.{name}")
        if attr is None:
            continue
        levels = BY_NAME[attr].levels
        if level not in levels:
            problems.append(f"export.generalization.{name}: unknown level {level!r} (one of: "
                            f"{', '.join(repr(v) for v in levels)})")
            continue
        pinned[attr] = levels.index(level)
    priorities = tuple(a for a in (attribute(p, "priorities") for p in settings.priorities) if a)
    if problems:
        raise ConfigError("cilink.toml has problem(s) in [export]:\n  " + "\n  ".join(problems),
                          hint="use the attribute and level names of docs/analysts.md ('Deidentified tier')",
                          problems=problems)
    return Targets(k=settings.k, max_risk=settings.max_risk, mean_risk=settings.mean_risk,
                   max_suppression=settings.max_suppression, partner_single_out=settings.partner_single_out,
                   priorities=priorities or DEFAULT_PRIORITIES, pinned=pinned, exempt=frozenset(exempt)), failures


def release_tables(measures: Measures, protected: Protected, keys: pl.Series) -> dict[str, pl.DataFrame]:
    """The four tables with person_key, at the chosen levels, suppressed values null, withheld persons out."""
    specs = table_specs()
    kept = ~protected.withheld
    persons = pl.DataFrame({"person_idx": pl.int_range(0, measures.n, dtype=pl.Int32, eager=True)})
    rows: dict[str, pl.DataFrame] = {}
    for a in ATTRIBUTES:
        view = measures.view(a, protected.levels[a.name])
        sup = protected.suppressed.get(a.name)
        if a.rows:
            drop = protected.withheld | (sup if sup is not None else False)
            rows[a.table] = view.filter(~pl.Series(drop).gather(view.get_column("person_idx")))
        else:
            if sup is not None and sup.any():
                s = pl.Series("_s", sup)
                view = view.with_columns([pl.when(s).then(None).otherwise(pl.col(c)).alias(c) for c in a.columns])
            persons = persons.join(view, on="person_idx", how="left", maintain_order="left")
    persons = persons.filter(pl.Series(kept))
    out = {PERSONS: persons, **rows}
    result = {}
    for name in TABLES:
        frame = out[name]
        frame = frame.sort("person_idx", maintain_order=True)
        frame = frame.with_columns(keys.gather(frame.get_column("person_idx")).alias("person_key"))
        result[name] = frame.select([pl.col(s.name).cast(s.dtype) for s in specs[name]])
    return result


def utility(measures: Measures, protected: Protected) -> dict[str, dict[str, Any]]:
    """Per attribute: level chosen, share of persons with it released (non-null) and share suppressed."""
    n = max(measures.n, 1)
    out: dict[str, dict[str, Any]] = {}
    for a in ATTRIBUTES:
        level = protected.levels[a.name]
        sup = protected.suppressed.get(a.name)
        n_sup = int(sup.sum()) if sup is not None else 0
        if level == a.top:
            released = 0.0
        elif a.rows:
            view = measures.view(a, level)
            who = np.zeros(measures.n, bool)
            who[view.get_column("person_idx").to_numpy()] = True
            released = float((who & ~protected.withheld & ~(sup if sup is not None else False)).sum() / n)
        else:
            view = measures.view(a, level)
            has = view.select(pl.any_horizontal([pl.col(c).is_not_null() for c in a.columns])).to_series().to_numpy()
            released = float((has & ~protected.withheld & ~(sup if sup is not None else False)).sum() / n)
        out[a.name] = {"level": a.levels[level], "persons_released_share": round(released, 4),
                       "persons_suppressed_share": round(n_sup / n, 4)}
    age = BY_NAME["age"]
    out["age"]["band_5_years_or_finer_share"] = out["age"]["persons_released_share"] if (
        protected.levels["age"] <= age.levels.index("5-year")) else 0.0
    return out


def _content_matches(ws: Any, audience: str, signatures: pl.DataFrame, exempt: frozenset[str]) -> dict[str, Any]:
    """For the latest deidentified release of each other audience: share of this release's persons whose whole
    record is unique in both releases and equal (a 1:1 join on content alone, no key needed)."""
    with Ledger(ws.ledger_path) as ledger:
        rows = ledger.conn.execute("SELECT release_id, audience, path, summary FROM releases ORDER BY created_at, "
                                   "rowid").fetchall()
    latest: dict[str, str] = {}
    for r in rows:
        if r["audience"] != audience and '"tier": "deidentified"' in (r["summary"] or ""):
            latest[r["audience"]] = r["path"]
    sums = [c for c in signatures.columns if c != "_p"]
    mine = signatures.group_by(sums).len().filter(pl.col("len") == 1).select(sums)
    out: dict[str, Any] = {}
    for other, path in sorted(latest.items()):
        root = ws.root / path
        if not (root / PERSONS).is_file():
            continue
        theirs_tables = {n: pl.read_parquet(root / n) for n in TABLES if (root / n).is_file()}
        unique = _signatures(theirs_tables, exempt).group_by(sums).len().filter(pl.col("len") == 1).select(sums)
        both = mine.join(unique, on=sums).height
        out[other] = {"persons_matched_1_to_1_share": round(both / max(signatures.height, 1), 4)}
    return out


def _signatures(tables: dict[str, pl.DataFrame], exempt: frozenset[str]) -> pl.DataFrame:
    """Each released person's whole record as one value (``RecordRisk.signatures``), non-identifying
    attributes left out."""
    risk = RecordRisk(exclude=_columns(exempt))
    for name in TABLES:
        if name in tables:
            risk.add(name, tables[name])
    return risk.signatures()


def _identifier_failures(tables: dict[str, pl.DataFrame], specs: dict[str, list[ColumnSpec]],
                         rv: RestrictedValues) -> list[gate.GateFailure]:
    """Every column's name, declaration and shape, then one batched look-up of identifying values."""
    failures: list[gate.GateFailure] = []
    candidates: list[gate.Candidates] = []
    for name in TABLES:
        f, c = gate.check_shapes(name, tables[name], specs[name], set(), rv)
        failures += f
        candidates += c
    return failures + gate.lookup_failures(candidates, rv)


def _whole_record(tables: dict[str, pl.DataFrame], exempt: frozenset[str]) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The persons' whole-record signatures and risk figures, measured on the tables as they will be written."""
    signatures = _signatures(tables, exempt)
    return signatures, class_figures(signatures.select(pl.struct(pl.exclude("_p"))).to_series())


def _risk_failures(risk: dict[str, Any], targets: Targets) -> list[gate.GateFailure]:
    """k, maximum and mean risk of the whole record against the targets (exact, not the manifest's rounding)."""
    failures = []
    smallest = risk["min_class_size"]
    if smallest is not None and smallest < targets.k:
        failures.append(gate.GateFailure("(whole record)", "all tables joined on person_key",
                                         gate.GateRule.WHOLE_RECORD_K, int(smallest)))
    persons = max(int(risk["persons"]), 1)
    if (smallest is not None and 1 / smallest > targets.max_risk + 1e-12) or (
            risk["equivalence_classes"] / persons > targets.mean_risk + 1e-12):
        failures.append(gate.GateFailure("(whole record)", "all tables joined on person_key",
                                         gate.GateRule.WHOLE_RECORD_RISK))
    return failures


def _columns(attributes: frozenset[str]) -> frozenset[str]:
    return frozenset(c for a in attributes for c in BY_NAME[a].columns)


def _refuse(ctx: Any, failures: list[gate.GateFailure], inputs: dict[str, Any], hint: str | None = None) -> None:
    from cilink.export.release import _refuse as refuse

    refuse(ctx.ws, failures, ctx.log, inputs, hint)


def stage_deidentified(ctx: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build, protect, gate and write the deidentified tables into ``ctx.tmp``; refuse on any failure."""
    from cilink.config import config_hash

    ws, plan, clock = ctx.ws, ctx.plan, ctx.clock
    cfg = ws.config
    targets, declaration_failures = targets_from(cfg.export)
    sources = load_sources(ws, lambda ids: person_keys(ids, ctx.key))
    if not sources.n_persons:
        raise WorkspaceError("nothing to export: no linked persons in the active batches",
                             hint="ingest partner files and run `cilink link` first")
    inputs = {"config_sha256": config_hash(ws.config_path), "crosswalk_sha256": sources.crosswalk_sha256,
              "batches": sorted(b.batch_id for b, _ in sources.batches), "tier": "deidentified",
              "audience": ctx.audience, "release_id": ctx.release_id}
    if declaration_failures:
        _refuse(ctx, declaration_failures, inputs, hint="give every [export.non_identifying] entry the reason the "
                "attribute cannot identify anyone (for your privacy officer), or remove it")
    events = sources.events
    as_of = as_of_date(events)
    partners = tuple(sorted(p.id for p in cfg.partners))
    clock.lap("sources")
    rv = collect_restricted_values(ws, sources.crosswalk)
    sources.crosswalk = None
    clock.lap("restricted_values")
    measures = build_measures(events, sources.n_persons, as_of, partners, top_code_cutoff(as_of))
    clock.lap("build_measures")
    try:
        protected = protect(measures, targets)
    except Unreachable as e:
        _refuse(ctx, [gate.GateFailure("(whole record)", "all attributes", gate.GateRule.WHOLE_RECORD_K)], inputs,
                hint=e.reason + "; unpin attributes in [export.generalization], raise max_suppression, or use "
                "the aggregate tier")
        raise AssertionError("unreachable") from e
    clock.lap("gate_protect")
    tables = release_tables(measures, protected, sources.person_keys)
    clock.lap("release_tables")
    specs = table_specs()
    if ctx.tamper is not None:
        tables = {name: ctx.tamper(name, frame) for name, frame in tables.items()}
    by_partner = {p.id: str(p.domain) for p in cfg.partners}
    attacked = [p for p in partners if any((df.get_column("partner") == p).any() for df in events.values())]
    prepare_attacks(protected)
    # the identifier checks, the whole record and each partner's attack read the same frames and write
    # nothing shared: side by side they keep both cores busy (one after the other, 1.2 of 2)
    identifier_failures, (signatures, risk), *attack_results = parallel.run_all(
        lambda: _identifier_failures(tables, specs, rv),
        lambda: _whole_record(tables, targets.exempt),
        *[functools.partial(partner_attack, measures, protected, events, p, by_partner[p], as_of, partners)
          for p in attacked],
        at_once=parallel.workers())
    failures = [*identifier_failures, *_risk_failures(risk, targets)]
    attacks = dict(zip(attacked, attack_results, strict=True))
    for partner, attack in attacks.items():
        if attack["share"] > targets.partner_single_out:
            failures.append(gate.GateFailure("(whole record)", f"partner {partner}", gate.GateRule.PARTNER_SINGLE_OUT,
                                             int(attack["singled_out"])))
    protected.search = None  # the search's codes (hundreds of MB at a million persons) are no longer needed
    clock.lap("gate_checks")
    if failures:
        _refuse(ctx, failures, inputs)
    matches = _content_matches(ws, ctx.audience, signatures, targets.exempt)
    rows = {}
    for name in TABLES:
        path = ctx.tmp / name
        tables[name].write_parquet(path, compression="zstd", compression_level=1, statistics=True)
        rows[name] = tables[name].height
    clock.lap("write")
    sources.events = {}
    suppressed_any = protected.withheld.copy()
    for s in protected.suppressed.values():
        suppressed_any |= s
    anonymization = {
        "model": "whole record: every released attribute of every table, a person's rows taken together; "
                 "suppressed and unreleased values count as values of their own",
        "k": targets.k, "max_risk": targets.max_risk, "mean_risk": targets.mean_risk,
        "generalization": {a.name: protected.level_name(a) for a in ATTRIBUTES},
        "non_identifying": {name: cfg.export.non_identifying[name] for name in sorted(cfg.export.non_identifying)},
        "steps": protected.steps,
        "persons_with_suppressed_values_share": round(float(suppressed_any.mean()), 4),
        "persons_withheld_share": round(float(protected.withheld.mean()), 4),
    }
    manifest = {
        "format": FORMAT,
        "release_id": ctx.release_id,
        "cilink_version": __version__,
        "config_sha256": inputs["config_sha256"],
        "audience": ctx.audience,
        **release_header(ReleaseTier.DEIDENTIFIED),
        "as_of": str(as_of.year),
        "profile": plan.describe(),
        "person_key": {"algorithm": "HMAC-SHA256 of the internal person id, truncated to 128 bits (hex)",
                       "audience": ctx.audience},
        "anonymization": anonymization,
        "risk": {"whole_record": risk, "partner_attack": attacks,
                 "content_match_with_other_audiences": matches},
        "utility": utility(measures, protected),
        "privacy_gate": {"passed": True, "rules": [str(r) for r in gate.GateRule]},
        "row_counts": rows,
        "inputs": {"batches": [{"batch_id": b.batch_id, "partner": b.partner, "sha256": b.sha256}
                               for b, _ in sorted(sources.batches, key=lambda x: (x[0].partner, x[0].batch_id))]},
    }
    dictionary = {"format": FORMAT, "tables": [
        {"table": name, "rows": rows[name], "columns": [
            {"name": s.name, "type": str(s.dtype).lower(), "description": s.description,
             "attribute": COLUMN_ATTRIBUTE.get(s.name),
             "level": protected.level_name(BY_NAME[COLUMN_ATTRIBUTE[s.name]]) if s.name in COLUMN_ATTRIBUTE
             else None,
             **({"allowed_values": list(s.vocabulary)} if s.vocabulary else {})} for s in specs[name]]}
        for name in TABLES],
        "levels": {a.name: list(a.levels) for a in ATTRIBUTES},
        "notes": ["Null means unknown, not released at this level, or suppressed to protect a person.",
                  "No counts of persons are given here: count them in the tables."]}
    failures = gate.check_metadata("dictionary.json", dictionary, rv, min_cell=plan.min_cell,
                                   is_aggregate=lambda _p: False)
    failures += gate.check_metadata(MANIFEST, manifest, rv, min_cell=plan.min_cell, is_aggregate=lambda _p: False)
    if failures:
        _refuse(ctx, failures, inputs)
    (ctx.tmp / "dictionary.json").write_text(dumps(dictionary), encoding="utf-8")
    (ctx.tmp / "README.md").write_text(render_readme(manifest, cfg.project.name), encoding="utf-8")
    clock.lap("documents")
    return manifest, inputs


EXAMPLE = '''\
import polars as pl
import cilink

r = cilink.open_release("{path}")
p = r.persons.collect()
# of persons in both school and HMIS data, the share ever chronically absent, by whether an HMIS
# enrollment overlapped a school enrollment (null: not released or suppressed)
both = p.filter(pl.col("domains").list.contains("school") & pl.col("domains").list.contains("housing"))
print(both.group_by("hmis_while_in_school").agg(persons=pl.len(),
                                                chronically_absent=pl.col("chronically_absent_any").mean()))
'''


def render_readme(manifest: dict[str, Any], project: str) -> str:
    """README.md of a deidentified release: what it holds, the levels chosen, the gate's measured figures."""
    anon, risk, util = manifest["anonymization"], manifest["risk"], manifest["utility"]
    wr = risk["whole_record"]
    levels = "\n".join(f"| `{name}` | {u['level']} | {u['persons_released_share']:.1%} | "
                       f"{u['persons_suppressed_share']:.1%} |" for name, u in util.items())
    attacks = "\n".join(f"- `{p}` singles out {a['share']:.1%} of its {a['clients']} clients "
                        f"({a['attributes_matched']} attributes matched)" for p, a in risk["partner_attack"].items())
    rid = manifest["release_id"]
    return f"""# Release {rid} (deidentified tier)

De-identified longitudinal microdata of **{project}**, made by cilink {manifest["cilink_version"]}
for audience `{manifest["audience"]}`, data through {manifest["as_of"]}.

Files: `persons.parquet` (one row per person), `school_years.parquet`, `workforce_spells.parquet`,
`housing_spells.parquet` (joined on `person_key`), `dictionary.json`, `manifest.json`.

## What was released, and at which level

The privacy gate measured risk on each person's **whole record** — every column of every table, a
person's rows taken together — and coarsened or withheld attributes until every record is shared by at
least {anon["k"]} persons. Level per attribute, share of persons for whom it is released, share suppressed:

| attribute | level | released | suppressed |
|---|---|---|---|
{levels}

## Measured risk

- smallest class of identical whole records: {wr["min_class_size"]}; largest individual risk
  {wr["max_individual_risk"]:.3f}; mean risk {wr["mean_individual_risk"]:.3f} (classes / persons); unique
  records {wr["share_unique"]:.1%}.
- each partner matching everything it sent, in release form, against this release:
{attacks}
- this does **not** stop someone who knows a person's attributes from learning that the person is one of
  the {anon["k"]} or more with that record, nor attributes shared by everyone in a class. Suppress any
  published count below {manifest["profile"]["min_cell"]}.

## A longitudinal question

```python
{EXAMPLE.format(path=f"releases/{rid}")}```
"""
