"""From scored pairs to persons: decisions, clusters and person IDs — for everything, or only what changed.

A full run decides every pair, clusters every record and assigns IDs to every cluster. An incremental run
re-does that only inside the *affected* components: the connected components (of the last run) holding a
new, changed or removed record, an endpoint of a new link, or a pair with a new reviewer decision. Every
other component — its pairs' decisions, its clusters and its person IDs — is carried over unchanged.
Components are closed under links, so this gives exactly what a full run would (tested).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from cilink.link.clusters import cluster_records
from cilink.link.decisions import (
    CANNOT_LINK,
    GUARD_NAMELESS,
    LINK,
    MUST_LINK,
    REVIEW,
    Thresholds,
    decide,
    nameless_ambiguous,
)
from cilink.link.person_ids import IdEvent, assign_person_ids
from cilink.link.records import with_record_keys


@dataclass
class Persons:
    """The run's decided pairs, its people and ID events.

    A full run's ``people`` are everyone (record_id, person_id, component). An incremental run's are only
    the records it re-clustered (with partner and source_person_id, taken from record_id), and ``replaced``
    are those components' rows of the last run's crosswalk: everyone else is as they were. Likewise its
    ``redecided`` pairs are every pair of a ``redone`` record (re-clustered or gone); the others are the
    last run's.
    """

    decided: pl.DataFrame
    people: pl.DataFrame
    events: list[IdEvent]
    reclustered: int
    replaced: pl.DataFrame | None = None
    redone: pl.Series | None = None
    redecided: pl.DataFrame | None = None


def _people(clusters: pl.DataFrame, person_ids: pl.DataFrame) -> pl.DataFrame:
    # a component is labelled by a 64-bit hash of its root record's id: cheaper to store and filter than
    # the id, and two components sharing a label (about 1 in 10^9 at a million) only costs the next
    # incremental run a component re-clustered exactly as it was
    component = clusters.select("record_id", pl.col("component").hash().alias("component"))
    return person_ids.join(component, on="record_id", how="left", maintain_order="left")


@dataclass(frozen=True)
class Context:
    """Everything decisions and IDs depend on besides the pairs."""

    thresholds: Thresholds
    reviewed: pl.DataFrame
    household: list[str]
    households_present: bool
    ssn: pl.DataFrame  # record_id, ssn (null where there is no valid SSN)
    nameless: pl.Series  # record ids without a first name (the nameless_ambiguous guard)
    dob_conflict: float | None  # the birth_date_conflict guard's weight (engine.Model.conflict_weight)
    issue_order: Callable[[list[str]], dict[str, int]]
    taken: Callable[[list[str]], set[str]]
    rng: random.Random


def _in(col: str, ids: pl.Series) -> pl.Expr:
    return pl.col(col).is_in(ids.implode())


def _cluster(record_ids: pl.Series, decided: pl.DataFrame, ctx: Context) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cluster ``record_ids`` over ``decided`` pairs; returns (clusters, decided with refusals applied)."""
    wanted = pl.col("record_id").is_in(record_ids.implode())
    # the SSN guard keeps a household member's SSN copied onto a record from chaining two people: where the
    # data come in no households (the model measured it) differing SSNs are noise, as the name guards treat
    # differing first names there
    ssn = (ctx.ssn.filter(wanted & pl.col("ssn").is_not_null()).select("record_id", "ssn")
           if ctx.households_present else None)
    clustering = cluster_records(
        record_ids,
        decided.filter(pl.col("decision") == LINK),
        must_link=decided.filter(pl.col("decision") == MUST_LINK),
        cannot_link=decided.filter(pl.col("decision") == CANNOT_LINK),
        ssn=ssn,
    )
    refused = clustering.refused.rename({"reason": "_refused"})
    decided = decided.join(refused, on=["record_id_l", "record_id_r"], how="left").with_columns(
        pl.when(pl.col("_refused").is_not_null() & (pl.col("decision") == LINK)).then(pl.lit(REVIEW))
        .otherwise(pl.col("decision")).alias("decision"),
        pl.coalesce("_refused", "guard").alias("guard"),
    ).drop("_refused")
    return clustering.clusters, decided


def _held(pairs: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """Pairs the nameless_ambiguous guard holds back — only where the data come in households (twins)."""
    nameless = ctx.nameless if ctx.households_present else ctx.nameless.clear()
    return nameless_ambiguous(pairs, ctx.thresholds, nameless)


def resolve_all(record_ids: pl.Series, pairs: pl.DataFrame, previous_ids: pl.DataFrame | None,
                ctx: Context) -> Persons:
    """Decide every pair, cluster every record, assign every cluster an ID (stable against ``previous_ids``)."""
    held = _held(pairs, ctx)
    decided = decide(pairs, ctx.thresholds, ctx.reviewed, ctx.household, ctx.households_present, held,
                     ctx.dob_conflict)
    clusters, decided = _cluster(record_ids, decided, ctx)
    assignment = assign_person_ids(clusters, previous_ids, issue_order=ctx.issue_order, rng=ctx.rng,
                                   taken=ctx.taken)
    return Persons(decided.sort("record_id_l", "record_id_r"), _people(clusters, assignment.person_ids),
                   assignment.events, record_ids.len())


def resolve_changed(
    record_ids: pl.Series,
    pairs: pl.DataFrame,
    new_pairs: pl.DataFrame,
    changed: pl.Series,
    gone: pl.Series,
    reviewed_ids: pl.Series,
    previous_decided: pl.DataFrame,
    previous_people: pl.DataFrame,
    ctx: Context,
) -> Persons:
    """Re-decide, re-cluster and re-assign IDs inside the components touched by new or ``changed``
    records, ``gone`` records, records with new reviewer decisions (``reviewed_ids``) and new links among
    ``new_pairs``; carry everything else over from the previous run."""
    fresh_new = decide(new_pairs, ctx.thresholds, ctx.reviewed.clear(), ctx.household, ctx.households_present,
                       dob_conflict=ctx.dob_conflict)
    linked = fresh_new.filter(pl.col("decision") == LINK)
    # pairs held back now but not last run, or the other way round (a twin's record came or went)
    held = _held(pairs, ctx)
    was_held = previous_decided.filter(pl.col("guard") == GUARD_NAMELESS).select("record_id_l", "record_id_r")
    flipped = pl.concat([held.join(was_held, on=["record_id_l", "record_id_r"], how="anti"),
                         was_held.join(held, on=["record_id_l", "record_id_r"], how="anti")])
    seeds = pl.concat([changed, gone, reviewed_ids, linked["record_id_l"], linked["record_id_r"],
                       flipped["record_id_l"], flipped["record_id_r"]]).unique()
    components = previous_people.filter(_in("record_id", seeds))["component"].unique()
    # the old members of touched components (gone records among them) and the new records
    in_touched = _in("component", components)
    old_people = previous_people.filter(in_touched)
    old_members = old_people["record_id"]
    affected = pl.concat([old_members, changed]).unique()
    affected = affected.filter(~affected.is_in(gone.implode())).sort()

    touches = _in("record_id_l", affected) | _in("record_id_r", affected)
    reviewed = ctx.reviewed.filter(touches)
    fresh = decide(pairs.filter(touches), ctx.thresholds, reviewed, ctx.household, ctx.households_present, held,
                   ctx.dob_conflict)
    clusters, fresh = _cluster(affected, fresh, ctx)
    redone = pl.concat([old_members, affected]).unique()
    # a pair of the last run with neither record redone is unchanged (gone records are all redone)
    carried = previous_decided.filter(~_in("record_id_l", redone) & ~_in("record_id_r", redone))
    assignment = assign_person_ids(clusters, old_people, issue_order=ctx.issue_order, rng=ctx.rng,
                                   taken=ctx.taken)
    redecided = fresh.sort("record_id_l", "record_id_r").select(carried.columns)
    return Persons(
        # the carried pairs stay in their (sorted) order and the redecided ones follow, sorted: sorting all of
        # them again would cost more than the rest of this function
        decided=pl.concat([carried, redecided], how="vertical_relaxed"),
        # of the last run's crosswalk only the touched components' rows change (changed records are seeds)
        people=with_record_keys(_people(clusters, assignment.person_ids)).select(previous_people.columns),
        events=assignment.events,
        reclustered=affected.len(),
        replaced=old_people,
        redone=redone,
        redecided=redecided,
    )
