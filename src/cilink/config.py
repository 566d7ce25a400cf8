"""cilink.toml as typed pydantic models, validated with every problem named by its key before any data is read."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cilink.errors import ConfigError, InputRejected

CONFIG_FILE = "cilink.toml"
SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class Domain(StrEnum):
    SCHOOL = "school"
    WORKFORCE = "workforce"
    HOUSING = "housing"


class FileFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"
    PARQUET = "parquet"
    HMIS_CSV = "hmis-csv"
    #: Parquet written by `cilink encode` (identifiers as keyed Bloom filters); see docs/encodings.md
    ENCODED = "encoded"


class IngestMode(StrEnum):
    SNAPSHOT = "snapshot"
    APPEND = "append"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectSettings(Strict):
    """[project]: the initiative and where its linkage secret comes from."""

    name: str = "cilink project"
    secret_env: str = "CILINK_SECRET"
    secret_file: Path | None = Field(
        default=None, description="Key file outside the workspace; used when secret_env is unset."
    )
    encoding_secret_env: str = Field(
        default="CILINK_ENCODING_SECRET",
        description="Mixed projects only (some partners encoded): the partners' encoding secret, with which the "
        "hub encodes plaintext partners' identifiers; see docs/encodings.md",
    )
    encoding_secret_file: Path | None = Field(
        default=None, description="Key file outside the workspace; used when encoding_secret_env is unset."
    )
    demo: bool = Field(default=False, description="A synthetic `cilink demo` workspace: cilink's published demo "
                       "secret is accepted (docs/operations.md#secrets)")


class PartnerSettings(Strict):
    """[[partners]]: one partner organisation and how to read its exports."""

    id: Annotated[str, Field(pattern=SLUG, description="slug used in paths and the ledger")]
    domain: Domain
    format: FileFormat = FileFormat.CSV
    encoding: str | None = Field(default=None, description="None = detect (BOM, utf-8, cp1252 …)")
    delimiter: str | None = Field(default=None, description="None = detect")
    date_format: str | None = Field(default=None, description="strftime format of the partner's dates")
    two_digit_year_pivot: int | None = Field(
        default=None, ge=0, le=99, description="Accept %y dates: years below the pivot are 20xx, others 19xx"
    )
    sheet: str | None = Field(default=None, description="xlsx only: the sheet holding the data")
    max_unparseable_share: float = Field(
        default=0.2, ge=0, le=1,
        description="a date/number column where more than this share of the values fails to parse rejects the file",
    )
    mode: IngestMode = IngestMode.SNAPSHOT
    columns: dict[str, str] = Field(default_factory=dict, description="canonical field = source header")
    codes: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="canonical field -> {source value = canonical value}"
    )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str | None) -> str | None:
        if v is not None and len(v) != 1:
            raise ValueError("delimiter must be a single character, e.g. ',' or ';'")
        return v

    @model_validator(mode="after")
    def _mapping_fits_domain(self) -> PartnerSettings:
        from cilink.schemas import domain_fields

        known = domain_fields(self.domain)
        problems = []
        unknown = sorted(set(self.columns) - set(known))
        if unknown:
            problems.append(
                f"columns maps unknown field(s) {unknown} for domain '{self.domain}'; known fields: {', '.join(known)}"
            )
        if self.format not in (FileFormat.HMIS_CSV, FileFormat.ENCODED) and "source_person_id" not in self.columns:
            problems.append("columns must map source_person_id (the partner's own person identifier)")
        if self.format == FileFormat.HMIS_CSV and self.domain != Domain.HOUSING:
            problems.append("format 'hmis-csv' is only for domain 'housing'")
        if self.date_format and "%y" in self.date_format and self.two_digit_year_pivot is None:
            # a two-digit year is a guess about the century; cilink guesses only when told how
            problems.append("date_format uses %y (two-digit year): set two_digit_year_pivot too "
                            "(e.g. 30: years 00-29 are 20xx, 30-99 are 19xx), or use %Y")
        if self.date_format:
            from cilink.ingest.dates import compile_format

            try:
                compile_format(self.date_format)
            except InputRejected as e:
                problems.append(e.message)
        unknown_codes = sorted(set(self.codes) - set(known))
        if unknown_codes:
            problems.append(f"codes given for unknown field(s) {unknown_codes}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class LinkSettings(Strict):
    """[link]: thresholds, training seed and optional rule overrides."""

    link_threshold: float = Field(
        default=4.0, description="match weight (log2 odds) at or above which a pair is linked; see docs/linkage.md"
    )
    review_band: float = Field(
        default=4.0, ge=0, description="pairs with weight in [threshold - band, threshold) go to review"
    )
    seed: int = 42
    max_pairs_u: float = Field(
        default=5e5, gt=0, description="random pairs sampled to estimate u (more: slower, barely different u)"
    )
    max_pairs_em: float = Field(
        default=5e5, gt=0, description="pairs sampled (deterministically) per EM training rule that has more"
    )
    blocking_rules: list[list[str]] | None = Field(
        default=None, description="override: each rule is a list of fields that must agree"
    )
    comparisons: list[str] | None = Field(
        default=None, description="override: names of comparison constructors (see cilink.link.comparisons)"
    )
    placeholder_names: list[str] = Field(
        default_factory=list, description="names that mean 'no name' in your partners' data, added to the "
        "built-in list (Baby Boy, Unknown, FNU, relation words …; docs/linkage.md): treated as missing"
    )


class ReleaseProfile(StrEnum):
    """Date and geography precision of a research-tier release (docs/analysts.md, 'Tiers')."""

    #: HIPAA Safe Harbor §164.514(b)(2): no date element finer than the year, ZIP3 (restricted areas "000")
    SAFE_HARBOR = "safe-harbor"
    #: a limited data set under a data-use agreement: month-level dates and the 5-digit ZIP
    LIMITED = "limited"


class ReleaseTier(StrEnum):
    """What an audience may receive, named for who may receive it (docs/analysts.md, 'Tiers')."""

    #: tables only (shared measures, cross-tabs, the report): partners, funders, the public
    AGGREGATE = "aggregate"
    #: person-level longitudinal microdata of coarsened measures that passes the whole-record gate: analysts
    DEIDENTIFIED = "deidentified"
    #: pseudonymised record-level data with full event detail for a named recipient under a data-use agreement
    RESEARCH = "research"


#: Keys a research-tier audience must set (a data-use agreement names who, under what, why and until when).
RESEARCH_KEYS = ("recipient", "agreement", "purpose", "expires")


class Audience(Strict):
    """A release audience: its tier, its own person_key secret (from an environment variable), and for the
    research tier the data-use agreement it receives the data under."""

    id: Annotated[str, Field(pattern=SLUG)]
    secret_env: str
    tier: ReleaseTier | None = Field(default=None, description="aggregate | deidentified | research; default: "
                                     "[export].tier")
    partner: str | None = Field(default=None, description="the partner organisation this audience is; a partner "
                                "may only ever receive the aggregate tier")
    profile: ReleaseProfile | None = Field(
        default=None, description="research tier: safe-harbor (year dates) or limited (month dates, ZIP5); "
        "default: [export].profile"
    )
    recipient: str | None = Field(default=None, description="research tier: the named person or organisation")
    agreement: str | None = Field(default=None, description="research tier: the data-use agreement's reference")
    purpose: str | None = Field(default=None, description="research tier: what the data may be used for")
    expires: dt.date | None = Field(default=None, description="research tier: the agreement's end date")
    dp_epsilon: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="aggregate tier: release the counts of persons as differentially private noisy counts "
        "(OpenDP), with this privacy-loss budget ε per release; unset: exact counts with small-cell suppression "
        "(docs/analysts.md, 'Noisy counts')")
    dp_max_units: int = Field(
        default=4, ge=1, le=100, description="aggregate tier with dp_epsilon: the most units (school years, exits "
        "…) of one person an indicator counts (the most recent ones); bounds what one person can change")

    @model_validator(mode="after")
    def _tier_rules(self) -> Audience:
        if self.partner is not None and self.tier not in (None, ReleaseTier.AGGREGATE):
            raise ValueError(f"audience {self.id!r} is partner {self.partner!r}: a partner organisation may only "
                             "receive tier = \"aggregate\"")
        if self.dp_epsilon is not None and self.tier not in (None, ReleaseTier.AGGREGATE):
            raise ValueError(f"dp_epsilon: audience {self.id!r} receives tier {str(self.tier)!r}; noisy counts "
                             "are for tier = \"aggregate\" only (record-level tiers have no counts to add noise to)")
        if "dp_max_units" in self.model_fields_set and self.dp_epsilon is None:
            raise ValueError("dp_max_units is only used with dp_epsilon: set dp_epsilon too, or remove it")
        if self.tier == ReleaseTier.RESEARCH:
            missing = [k for k in RESEARCH_KEYS if not getattr(self, k)]
            if missing:
                raise ValueError(f"a research-tier audience needs {', '.join(missing)} (the data-use agreement: "
                                 "recipient, agreement reference, purpose, expiry date)")
        return self


#: Event date fields whose release precision can be set per column ([export.date_precision]).
DateField = Literal["entry_date", "exit_date", "move_in_date"]


class ExportSettings(Strict):
    """[export]: release tier of the default audience, privacy profile and gate parameters."""

    tier: ReleaseTier = Field(default=ReleaseTier.DEIDENTIFIED, description="tier of `cilink export` without "
                              "--audience: aggregate or deidentified (research needs a named audience)")
    profile: ReleaseProfile = ReleaseProfile.SAFE_HARBOR
    k: int = Field(default=5, ge=2)
    min_cell: int = Field(default=11, ge=1)
    max_risk: float = Field(default=0.2, gt=0, le=1, description="deidentified: largest re-identification "
                            "risk of any person (1 / size of their class on the whole released record)")
    mean_risk: float = Field(default=0.05, gt=0, le=1, description="deidentified: largest mean re-identification "
                             "risk over all persons")
    partner_single_out: float = Field(default=0.01, ge=0, le=1, description="deidentified: largest share of a "
                                      "partner's clients that partner may single out by matching what it sent")
    priorities: list[str] = Field(default_factory=list, description="deidentified: attributes to keep first "
                                  "(e.g. [\"age\", \"domains\"]); the rest follow in the default order")
    generalization: dict[str, str] = Field(default_factory=dict, description="deidentified: pin an attribute to "
                                           "a level (attribute = level name); the gate refuses if that is unsafe")
    non_identifying: dict[str, str] = Field(default_factory=dict, description="deidentified: released columns "
                                            "left out of the risk model, each with the reason why")
    event_date_precision: Literal["month", "year"] = Field(
        default="year", description="research tier, safe-harbor profile: event dates as years (Safe Harbor) or "
        "months (which Safe Harbor does not allow: the manifest then says the profile is not met)")
    date_precision: dict[DateField, Literal["month", "year"]] = Field(
        default_factory=dict, description="per-column override of event_date_precision (research tier)"
    )
    max_suppression: float = Field(
        default=0.05, ge=0, le=1,
        description="largest share of persons whose released attributes may be locally suppressed",
    )
    on_run: bool = True
    group: str | None = Field(default=None, description="Unix group of the analysts who read releases/: "
                              "release directories 2750, files 0640 (default: the owner's primary group)")
    audiences: list[Audience] = Field(default_factory=list)

    @field_validator("tier")
    @classmethod
    def _default_tier(cls, tier: ReleaseTier) -> ReleaseTier:
        if tier == ReleaseTier.RESEARCH:
            raise ValueError("the research tier needs a named audience with its own keys and data-use agreement: "
                             "add an [[export.audiences]] entry with tier = \"research\"")
        return tier

    @model_validator(mode="after")
    def _noisy_only_aggregate(self) -> ExportSettings:
        # an audience without its own tier receives [export].tier: checked here, where that is known
        for a in self.audiences:
            if a.dp_epsilon is not None and a.tier is None and self.tier != ReleaseTier.AGGREGATE:
                raise ValueError(f"audiences[{a.id}].dp_epsilon: the audience receives [export].tier = "
                                 f"{str(self.tier)!r}; noisy counts are for tier = \"aggregate\" only "
                                 "(set tier = \"aggregate\" on the audience)")
        return self

    @field_validator("audiences")
    @classmethod
    def _unique_audiences(cls, audiences: list[Audience]) -> list[Audience]:
        dupes = _duplicate_ids([a.id for a in audiences])
        if dupes:
            raise ValueError(f"duplicate audience id(s) {dupes}")
        if "default" in {a.id for a in audiences}:
            raise ValueError("audience id 'default' is reserved for the workspace-secret audience")
        return audiences

    def audience(self, audience_id: str) -> Audience:
        """The configured audience with this id, or a ConfigError listing the known ones."""
        for a in self.audiences:
            if a.id == audience_id:
                return a
        known = ", ".join(a.id for a in self.audiences) or "(none)"
        raise ConfigError(
            f"unknown audience '{audience_id}'",
            hint=f"use one of: {known}; or add an [[export.audiences]] entry with id = \"{audience_id}\"",
        )

    def tier_of(self, audience_id: str | None) -> ReleaseTier:
        """The tier an audience receives (the default audience: [export].tier)."""
        if audience_id is None or audience_id == "default":
            return self.tier
        return self.audience(audience_id).tier or self.tier


#: The analysis units an indicator can count (built from a release by ``cilink.indicators.units``).
IndicatorUnit = Literal["school_year", "graduation_cohort", "workforce_exit", "housing_exit", "person", "panel"]


class IndicatorSettings(Strict):
    """[[indicators]]: a shared measure computed from a release by `cilink indicators`.

    Conditions are SQL expressions over the unit's columns (docs/indicators.md lists them), e.g.
    ``population = "chronically_absent IS NOT NULL"``, ``numerator = "NOT chronically_absent"``.
    An entry whose id is a default indicator's replaces it; ``enabled = false`` drops it.
    """

    id: Annotated[str, Field(pattern=SLUG)]
    title: str = Field(default="", description="Asset-based name shown in outputs; default: the id")
    unit: IndicatorUnit | None = Field(default=None, description="What is counted; required for a new indicator")
    population: str = Field(default="TRUE", description="SQL condition: the units in the denominator")
    numerator: str | None = Field(default=None, description="SQL condition: the units of the population meeting "
                                  "the measure (statistic = share)")
    statistic: Literal["share", "median"] = "share"
    value: str | None = Field(default=None, description="Column whose median is reported (statistic = median)")
    period: str | None = Field(default=None, description="Column giving the period; default: the unit's own")
    by: list[str] = Field(default_factory=list, description="Columns to break the measure down by")
    description: str = ""
    enabled: bool = True

    @field_validator("population", "numerator")
    @classmethod
    def _sql_condition(cls, v: str | None) -> str | None:
        if v is not None:
            import polars as pl  # parsed here so `cilink config check` names a bad condition by its key

            try:
                pl.sql_expr(v)
            except Exception as e:
                raise ValueError(f"not a SQL condition polars can read ({e})") from e
        return v

    @model_validator(mode="after")
    def _statistic_needs(self) -> IndicatorSettings:
        if self.enabled and self.unit is not None:
            if self.statistic == "share" and self.numerator is None:
                raise ValueError("statistic 'share' needs a numerator condition")
            if self.statistic == "median" and self.value is None:
                raise ValueError("statistic 'median' needs value = the column whose median is reported")
        return self


class EngineSettings(Strict):
    """[engine]: where linkage runs."""

    backend: Literal["duckdb", "spark"] = "duckdb"
    spark_master: str = "local[*]"
    spark_conf: dict[str, str] = Field(default_factory=dict)
    checkpoint_dir: Path | None = None


class InboxSettings(Strict):
    """[inbox]: how `cilink run` takes files from inbox/<partner>/."""

    stable_seconds: float = Field(
        default=30, ge=0,
        description="a file is taken once it has not changed for this long (or when <file>.done exists beside it)",
    )
    processed: Literal["keep", "delete"] = Field(
        default="keep", description="ingested raw exports: keep them in the restricted zone (mode 0600), or delete",
    )


class CilinkConfig(Strict):
    """The whole of cilink.toml."""

    project: ProjectSettings = ProjectSettings()
    partners: list[PartnerSettings] = Field(default_factory=list)
    link: LinkSettings = LinkSettings()
    export: ExportSettings = ExportSettings()
    engine: EngineSettings = EngineSettings()
    inbox: InboxSettings = InboxSettings()
    indicators: list[IndicatorSettings] = Field(default_factory=list)

    @field_validator("indicators")
    @classmethod
    def _unique_indicators(cls, indicators: list[IndicatorSettings]) -> list[IndicatorSettings]:
        dupes = _duplicate_ids([i.id for i in indicators])
        if dupes:
            raise ValueError(f"duplicate indicator id(s) {dupes}")
        return indicators

    @field_validator("partners")
    @classmethod
    def _unique_ids(cls, partners: list[PartnerSettings]) -> list[PartnerSettings]:
        dupes = _duplicate_ids([p.id for p in partners])
        if dupes:
            raise ValueError(f"duplicate partner id(s) {dupes}: each partner needs its own id")
        return partners

    def partner(self, partner_id: str) -> PartnerSettings:
        """The partner with this id, or a ConfigError listing the known ones."""
        for p in self.partners:
            if p.id == partner_id:
                return p
        known = ", ".join(p.id for p in self.partners) or "(none)"
        raise ConfigError(
            f"unknown partner '{partner_id}'",
            hint=f'use one of: {known}; or add a [[partners]] entry with id = "{partner_id}" to cilink.toml',
        )


def _duplicate_ids(ids: list[object]) -> list[str]:
    return sorted({str(i) for i in ids if i is not None and ids.count(i) > 1})


def _key_path(loc: tuple[str | int, ...], raw: dict) -> str:
    """Render a pydantic error location as a TOML-ish key, naming partners by id: partners[holyoke-schools].domain."""
    parts: list[str] = []
    node: object = raw
    for item in loc:
        if isinstance(item, int) and parts:
            label = str(item)
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict) and "id" in node[item]:
                label = str(node[item]["id"])
            parts[-1] = f"{parts[-1]}[{label}]"
        else:
            parts.append(str(item))
        try:
            node = node[item]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)


def parse_config(text: str, source: str = CONFIG_FILE) -> CilinkConfig:
    """Parse and validate cilink.toml text; raise ConfigError listing every problem with its key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML: {e}", hint="fix the syntax at the line shown") from e
    problems: list[str] = []
    partners = raw.get("partners")
    if isinstance(partners, list):
        # checked here as well so a duplicate is reported even when a partner block has other errors
        dupes = _duplicate_ids([p.get("id") for p in partners if isinstance(p, dict)])
        if dupes:
            problems.append(f"partners.id: duplicate partner id(s) {dupes}: each partner needs its own id")
    try:
        cfg = CilinkConfig.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            key = _key_path(err["loc"], raw) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against cilink.toml's documentation)"
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
            if "duplicate partner id" in msg and problems and "duplicate partner id" in problems[0]:
                continue
            problems.append(f"{key}: {msg}{shown}")
    else:
        # the [link] rules are built once here, so an unknown comparison or blocking field is named by
        # `cilink config check` rather than by the first `cilink link` (imported late: the rules read this module)
        from cilink.link.comparisons import link_spec

        try:
            link_spec(cfg.link)
        except ConfigError as e:
            problems += e.problems
    if problems:
        raise ConfigError(
            f"{source} has {len(problems)} problem(s):\n  " + "\n  ".join(problems),
            hint="edit the keys named above, then run `cilink config check`",
            problems=problems,
        )
    return cfg


def load_config(path: Path) -> CilinkConfig:
    """Load and validate a cilink.toml file."""
    if not path.is_file():
        raise ConfigError(f"no config file at {path}", hint="run `cilink init DIR` to create a workspace")
    return parse_config(path.read_text(encoding="utf-8"), source=str(path))


def config_hash(path: Path) -> str:
    """sha256 of the config file bytes (recorded in manifests and the audit log)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def secret_from(env_name: str, key_file: Path | None, key_file_setting: str) -> bytes | None:
    """A secret from environment variable ``env_name``, else from ``key_file`` (the config key
    ``key_file_setting`` names it in messages); None when neither holds one."""
    value = os.environ.get(env_name)
    if value:
        return value.encode("utf-8")
    if key_file is None:
        return None
    try:
        data = key_file.expanduser().read_bytes().strip()
        mode = key_file.expanduser().stat().st_mode & 0o777
    except OSError as e:
        raise ConfigError(f"cannot read the key file named by {key_file_setting} ({key_file})",
                          hint="check the path and its permissions") from e
    if mode & 0o077:  # readable by others: any local account could link or re-key the data
        raise ConfigError(f"the key file named by {key_file_setting} ({key_file}) has mode {mode:04o}: "
                          "group or others may read it", hint=f"chmod 600 {key_file}")
    return data or None


def read_secret(project: ProjectSettings, env_name: str | None = None) -> bytes:
    """The linkage secret from the environment or a key file; never stored in the workspace."""
    name = env_name or project.secret_env
    value = secret_from(name, project.secret_file if env_name is None else None, "project.secret_file")
    if value:
        return value
    raise ConfigError(
        f"the linkage secret is missing: environment variable {name} is not set",
        hint=f"export {name}=<a long random string kept outside the workspace>, "
        "or set project.secret_file to a key file outside the workspace",
    )
