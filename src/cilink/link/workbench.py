"""What the review workbench shows and does, without the web: the queue in order, one pair in full, decisions.

``Workbench`` reads the current link generation (records, scored pairs with each comparison's weight, the
crosswalk, the model) and the ledger's review state (``cilink.link.review_ledger``), and turns a queued pair
into a ``PairView``: both records field by field, the comparison level and match weight of every comparison
(a waterfall from the prior to the pair's weight, as Splink's comparison viewer draws it), the pair's guards,
and the other records of both clusters. It re-reads the generation whenever a link run has published a new
one, so a decision shows its effect after the next ``cilink link``.

The queue is ordered by what a decision changes most: how uncertain the model is (1 at probability ½, 0 at
certainty) times how many records the decision moves (both clusters when they are apart, the cluster when it
could split). Pairs are addressed by an opaque token (a keyed hash), never by record ids, so no identifier
reaches a URL, a browser history or an access log.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cilink.errors import WorkspaceError
from cilink.generations import current_generation
from cilink.ledger import Ledger
from cilink.link import engine, review_ledger
from cilink.link.decisions import GUARD_ADDRESS, GUARD_BIRTH_DATE, GUARD_FIRST_NAME, GUARD_NAMELESS
from cilink.link.outputs import QUEUE_FILE, read_crosswalk, read_pairs, read_records
from cilink.link.review import SIDE_BY_SIDE
from cilink.workspace import Workspace

#: the record fields shown for the other records of a cluster
CLUSTER_FIELDS = ("partner", "first_name", "last_name", "dob", "ssn", "street", "zip5", "phone")
GUARD_TEXT = {
    GUARD_ADDRESS: "held back: the agreement is mostly on address (household evidence)",
    GUARD_FIRST_NAME: "held back: first names disagree outright and no SSN or e-mail vouches (twins, siblings)",
    GUARD_BIRTH_DATE: "held back: birth dates disagree outright and no SSN or e-mail vouches (a namesake parent or "
                      "child, or a relative's birth date on the form)",
    GUARD_NAMELESS: "held back: a record without a first name that could be either of two people (twins)",
}


def _mask_ssn(value: Any) -> str | None:
    return None if value is None else "***-**-" + str(value)[5:9]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass
class FieldRow:
    """One field of both records, and whether they agree."""

    field: str
    left: str
    right: str
    agreement: str  # "same" | "different" | "missing"


@dataclass
class ComparisonRow:
    """One comparison of the model: the level the pair reached, its weight, and the running total."""

    comparison: str
    level: str
    weight: float | None
    cumulative: float


@dataclass
class PairView:
    """Everything the workbench shows for one pair (identifiable: rendered only to the local reviewer)."""

    token: str
    record_id_l: str
    record_id_r: str
    match_weight: float | None
    match_probability: float | None
    link_decision: str
    guards: list[str]
    fields: list[FieldRow]
    comparisons: list[ComparisonRow]
    prior_weight: float
    cluster_l: list[dict[str, str]]
    cluster_r: list[dict[str, str]]
    same_person_now: bool
    my_decision: str | None
    votes: dict[str, str] = field(default_factory=dict)
    priority: float = 0.0


@dataclass
class QueueItem:
    """A line of the queue: token, weight, priority, and this reviewer's decision so far."""

    token: str
    match_weight: float | None
    priority: float
    my_decision: str | None
    guard: str | None


def _level_labels(model: engine.Model | None) -> dict[str, list[tuple[float | None, str, bool]]]:
    """comparison → its levels as (weight, label, term-frequency adjusted); null levels have weight 0."""
    out: dict[str, list[tuple[float | None, str, bool]]] = {}
    if model is None:
        return out
    for comp in model.settings["comparisons"]:
        levels = []
        for lv in comp["comparison_levels"]:
            label = lv.get("label_for_charts") or lv["sql_condition"]
            m, u = lv.get("m_probability"), lv.get("u_probability")
            w = 0.0 if lv.get("is_null_level") else (math.log2(m / u) if m and u else None)
            levels.append((w, label, bool(lv.get("tf_adjustment_column"))))
        out[comp["output_column_name"]] = levels
    return out


def level_of(levels: list[tuple[float | None, str, bool]], weight: float | None) -> str:
    """The level a comparison's weight comes from. Pairs keep each comparison's weight, not its level; a
    level's weight is log2(m/u), so the weight names the level — except on term-frequency levels, whose
    weight moves with how common the value is (the only levels a weight can match no exactly)."""
    if weight is None:
        return "not scored (added by a reviewer)"
    same = [label for w, label, _ in levels if w is not None and abs(w - weight) < 1e-6]
    if same:
        return " / ".join(dict.fromkeys(same))
    tf = [label for _, label, is_tf in levels if is_tf]
    return (" / ".join(tf) + " (weighted by how common the value is)") if tf else "level not recognised"


class Workbench:
    """The review queue of the current link generation for one reviewer (see the module docstring).

    ``second``: second-reviewer mode — the queue is the pairs other reviewers decided that this reviewer has
    not (their decisions are not shown: a blind second review); disagreements go to ``disagreements``.
    """

    def __init__(self, ws: Workspace, reviewer: str, *, second: bool = False, key: bytes = b"") -> None:
        self.ws = ws
        self.reviewer = reviewer
        self.second = second
        self._key = key or hashlib.sha256(str(ws.root).encode()).digest()
        self._gen: Path | None = None
        self._data: dict[str, Any] = {}
        self._tokens: dict[tuple[str, str], str] = {}

    # --- reading ------------------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        gen = current_generation(self.ws)
        if gen is None or not (gen / QUEUE_FILE).is_file():
            raise WorkspaceError("the workspace has not been linked yet", hint="run `cilink link` first")
        if gen != self._gen:
            records = read_records(gen)
            if records is None:
                raise WorkspaceError("the workspace has no linked records", hint="run `cilink link` first")
            fields = [f for f in SIDE_BY_SIDE if f in records.columns]
            crosswalk = read_crosswalk(gen, ["record_id", "person_id"])
            assert crosswalk is not None
            # frames, looked up per pair: a million records are never turned into Python objects
            self._data = {
                "queue": pl.read_parquet(gen / QUEUE_FILE),
                "pairs": read_pairs(gen),
                "records": records.select("record_id", *fields),
                "crosswalk": crosswalk.join(crosswalk.group_by("person_id").len("size"), on="person_id"),
                "model": engine.load_model(gen),
                "fields": fields,
            }
            self._data["levels"] = _level_labels(self._data["model"])
            self._gen = gen
        return self._data

    def _records(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        frame = self._load()["records"]
        return {r["record_id"]: r for r in frame.filter(pl.col("record_id").is_in(ids)).iter_rows(named=True)}

    def _people(self, ids: list[str]) -> dict[str, tuple[str, int]]:
        """record id → (person id, records of that person) under the current link."""
        cw = self._load()["crosswalk"]
        return {r: (p, n) for r, p, n in cw.filter(pl.col("record_id").is_in(ids))
                .select("record_id", "person_id", "size").iter_rows()}

    def _members(self, person: str | None) -> list[str]:
        cw = self._load()["crosswalk"]
        return sorted(cw.filter(pl.col("person_id") == person)["record_id"].to_list()) if person else []

    def token(self, pair: tuple[str, str]) -> str:
        """The pair's opaque address (keyed hash of its record ids)."""
        known = self._tokens.get(pair)
        if known is None:
            known = self._tokens[pair] = hmac.new(self._key, "\x1f".join(pair).encode(),
                                                  hashlib.sha256).hexdigest()[:16]
        return known

    def _state(self) -> review_ledger.ReviewState:
        with Ledger(self.ws.ledger_path) as ledger:
            return review_ledger.read_state(ledger.conn)

    def _candidates(self, state: review_ledger.ReviewState) -> pl.DataFrame:
        d = self._load()
        if not self.second:
            return d["queue"]
        wanted = [p for p, votes in state.by_reviewer.items()
                  if self.reviewer not in votes and any(v in review_ledger.DECISIONS for v in votes.values())]
        return self._pairs_of(wanted)

    def _pairs_of(self, wanted: list[tuple[str, str]]) -> pl.DataFrame:
        d = self._load()
        frame = pl.DataFrame(wanted, schema={"record_id_l": pl.String, "record_id_r": pl.String}, orient="row")
        scored = d["pairs"] if d["pairs"] is not None else d["queue"].clear()
        known = scored.join(frame, on=["record_id_l", "record_id_r"], how="semi")
        missing = frame.join(known, on=["record_id_l", "record_id_r"], how="anti")
        ids = d["records"]["record_id"].implode()
        missing = missing.filter(pl.col("record_id_l").is_in(ids) & pl.col("record_id_r").is_in(ids))
        return pl.concat([known, missing], how="diagonal_relaxed")

    @staticmethod
    def _priority(row: dict[str, Any], people: dict[str, tuple[str, int]]) -> float:
        p = row.get("match_probability")
        uncertainty = 1.0 if p is None else 1.0 - abs(2.0 * float(p) - 1.0)
        left, right = people.get(row["record_id_l"], ("l", 1)), people.get(row["record_id_r"], ("r", 1))
        moved = left[1] if left[0] == right[0] else left[1] + right[1]
        return round(uncertainty * moved, 4)

    def queue(self) -> list[QueueItem]:
        """The reviewer's queue: pairs not yet decided by them first, highest priority first."""
        state = self._state()
        items = []
        rows = self._candidates(state).to_dicts()
        people = self._people([r[k] for r in rows for k in ("record_id_l", "record_id_r")])
        for row in rows:
            pair = (row["record_id_l"], row["record_id_r"])
            mine = state.by_reviewer.get(pair, {}).get(self.reviewer)
            items.append(QueueItem(self.token(pair), row.get("match_weight"), self._priority(row, people), mine,
                                   row.get("guard")))
        return sorted(items, key=lambda i: (i.my_decision is not None, -i.priority, i.token))

    def disagreements(self) -> list[tuple[str, dict[str, str]]]:
        """(token, votes by reviewer) of the pairs whose reviewers disagree, awaiting adjudication."""
        return [(self.token(p), votes) for p, votes in sorted(self._state().disagreements().items())]

    def decided(self) -> list[tuple[str, str, bool]]:
        """This reviewer's standing decisions: (token, decision, whether the current link joins the pair)."""
        mine = [a for a in self._state().actions if a.reviewer == self.reviewer and a.kind == "decision"]
        people = self._people([r for a in mine for r in a.pair])
        out = []
        for act in mine:
            a, b = act.pair
            out.append((self.token(act.pair), act.decision, a in people and people[a][0] == people.get(b, ("",))[0]))
        seen: dict[str, tuple[str, str, bool]] = {}
        for item in out:  # the latest decision per pair
            seen[item[0]] = item
        return list(seen.values())

    def resolve(self, token: str) -> tuple[str, str] | None:
        """The pair behind a token: one in the queue, a disagreement, or one this reviewer decided."""
        state = self._state()
        pairs = [(r["record_id_l"], r["record_id_r"]) for r in self._candidates(state).iter_rows(named=True)]
        pairs += list(state.by_reviewer)
        for p in pairs:
            if self.token(p) == token:  # tokens are not secrets: a keyed hash only keeps ids out of URLs
                return p
        return None

    def view(self, token: str) -> PairView | None:
        """One pair in full (None: no such pair)."""
        pair = self.resolve(token)
        if pair is None:
            return None
        d = self._load()
        state = self._state()
        rows = self._pairs_of([pair]).to_dicts()
        row = rows[0] if rows else {"record_id_l": pair[0], "record_id_r": pair[1]}
        recs = self._records(list(pair))
        left, right = recs.get(pair[0], {}), recs.get(pair[1], {})
        fields = []
        for f in d["fields"]:
            lv, rv = left.get(f), right.get(f)
            agreement = "missing" if lv is None or rv is None else ("same" if lv == rv else "different")
            if f == "ssn":
                lv, rv = _mask_ssn(lv), _mask_ssn(rv)
            fields.append(FieldRow(f, _text(lv), _text(rv), agreement))
        model = d["model"]
        prior = float(model.prior_weight) if model is not None else 0.0
        running = prior
        comparisons = []
        for name, levels in d["levels"].items():
            w = row.get(f"w_{name}")
            running += w or 0.0
            comparisons.append(ComparisonRow(name, level_of(levels, w), w, running))
        guards = [GUARD_TEXT.get(row.get("guard") or "", "")] if row.get("guard") else []
        guards += _guards(left, right)
        people = self._people(list(pair))
        person_l, person_r = people.get(pair[0], (None,))[0], people.get(pair[1], (None,))[0]
        votes = state.by_reviewer.get(pair, {})
        return PairView(
            token=token, record_id_l=pair[0], record_id_r=pair[1], match_weight=row.get("match_weight"),
            match_probability=row.get("match_probability"), link_decision=row.get("decision") or "not scored",
            guards=[g for g in guards if g], fields=fields, comparisons=comparisons, prior_weight=prior,
            cluster_l=self._cluster(person_l, pair), cluster_r=self._cluster(person_r, pair) if person_r != person_l
            else [], same_person_now=person_l is not None and person_l == person_r,
            my_decision=votes.get(self.reviewer),
            votes={} if self.second else {r: v for r, v in votes.items() if r != self.reviewer},
            priority=self._priority(row, people))

    def _cluster(self, person: str | None, pair: tuple[str, str]) -> list[dict[str, str]]:
        d = self._load()
        others = [r for r in self._members(person) if r not in pair]
        recs = self._records(others)
        out = []
        for rid in others:
            rec = recs.get(rid, {})
            out.append({f: _text(_mask_ssn(rec.get(f)) if f == "ssn" else rec.get(f)) for f in CLUSTER_FIELDS
                        if f in d["fields"]})
        return out

    # --- deciding -------------------------------------------------------------------------------------------
    def decide(self, token: str, decision: str, *, adjudicate: bool = False) -> bool:
        """Record this reviewer's decision on the pair at once (False: no such pair)."""
        pair = self.resolve(token)
        if pair is None:
            return False
        with Ledger(self.ws.ledger_path) as ledger:
            review_ledger.record(ledger, pair, decision, self.reviewer, adjudicate=adjudicate)
        return True

    def undo(self) -> str | None:
        """Take back this reviewer's latest decision or mark; returns the pair's token (None: nothing to undo)."""
        with Ledger(self.ws.ledger_path) as ledger:
            last = review_ledger.withdraw(ledger, self.reviewer)
        return None if last is None else self.token(last.pair)


def _guards(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """What tells household members, twins and copied SSNs apart from one person, seen on this pair."""
    def same(f: str) -> bool:
        return left.get(f) is not None and left.get(f) == right.get(f)

    def differ(f: str) -> bool:
        return left.get(f) is not None and right.get(f) is not None and left.get(f) != right.get(f)

    out = []
    if (same("street") or same("phone")) and (differ("first_name") or differ("dob")):
        out.append("household: same address or phone, but another first name or birth date")
    if same("dob") and same("last_name") and differ("first_name"):
        out.append("twin? same birth date and last name, different first name")
    if differ("ssn"):
        out.append("SSN conflict: both records carry a full SSN and they differ")
    return out
