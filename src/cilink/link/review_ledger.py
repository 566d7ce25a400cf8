"""Reviewers' decisions in the ledger: record, flag, take back, adjudicate — and which decision stands.

Two tables hold them (``cilink.ledger``): ``review_decisions`` (match / non_match, one row per decision, by
the CSV loop and the workbench alike) and ``review_marks`` (the workbench's 'unsure' flags, its undos —
``withdraw`` rows naming the decision or mark taken back — and adjudications). Nothing is updated or deleted
(except by ``cilink purge``): an undo is a row too, so the ledger keeps the whole story, and a link run
working incrementally sees a taken-back decision as new (``touched_since``).

Which decision stands for a pair (``standing``): of each reviewer, their latest decision not taken back;
where two reviewers' stand differently, the pair has no decision (a disagreement, shown for adjudication)
until an adjudication settles it — then the latest adjudication not taken back stands. One reviewer alone
never disagrees, so a second reviewer is optional.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from cilink.ledger import Ledger

MATCH, NON_MATCH, UNSURE = "match", "non_match", "unsure"
DECISIONS = (MATCH, NON_MATCH)


def _now() -> str:
    """UTC time to the microsecond: a reviewer decides several pairs a second, and undo needs their order."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def canonical(a: str, b: str) -> tuple[str, str]:
    """A pair's record ids in canonical order (record_id_l < record_id_r)."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Action:
    """One thing a reviewer did to a pair: a decision (``seq`` in review_decisions) or an unsure mark."""

    kind: str  # "decision" | "mark"
    seq: int
    pair: tuple[str, str]
    decision: str  # match | non_match | unsure
    reviewer: str
    at: str


@dataclass
class ReviewState:
    """Every standing (not taken back) decision and mark, read from the ledger at one moment."""

    #: (pair) → reviewer → their latest standing decision (match / non_match) or unsure
    by_reviewer: dict[tuple[str, str], dict[str, str]]
    #: (pair) → the latest standing adjudicated decision
    adjudicated: dict[tuple[str, str], str]
    #: standing actions, oldest first (what undo walks back)
    actions: list[Action]

    def standing(self) -> dict[tuple[str, str], str]:
        """pair → the decision the next link obeys (see the module docstring)."""
        out = {}
        for pair, votes in self.by_reviewer.items():
            if pair in self.adjudicated:
                out[pair] = self.adjudicated[pair]
                continue
            decided = {d for d in votes.values() if d in DECISIONS}
            if len(decided) == 1:
                out[pair] = decided.pop()
        for pair, d in self.adjudicated.items():
            out.setdefault(pair, d)
        return out

    def disagreements(self) -> dict[tuple[str, str], dict[str, str]]:
        """Pairs whose reviewers' standing decisions differ and no adjudication settles: pair → votes."""
        return {pair: {r: d for r, d in votes.items() if d in DECISIONS}
                for pair, votes in self.by_reviewer.items()
                if pair not in self.adjudicated and len({d for d in votes.values() if d in DECISIONS}) > 1}

    def last_action(self, reviewer: str) -> Action | None:
        """The reviewer's most recent standing decision or mark (what undo takes back)."""
        mine = [a for a in self.actions if a.reviewer == reviewer]
        return mine[-1] if mine else None


def read_state(conn: sqlite3.Connection) -> ReviewState:
    """The review state as the ledger holds it now."""
    marks = conn.execute("SELECT seq, kind, record_id_l, record_id_r, reviewer, at, decision_seq, mark_seq "
                         "FROM review_marks ORDER BY seq").fetchall()
    withdrawn_decisions = {m[6] for m in marks if m[1] == "withdraw" and m[6] is not None}
    withdrawn_marks = {m[7] for m in marks if m[1] == "withdraw" and m[7] is not None}
    adjudications = {m[6] for m in marks if m[1] == "adjudicate" and m[6] is not None}
    events: list[tuple[str, int, Action]] = []
    for seq, a, b, d, who, at in conn.execute(
            "SELECT seq, record_id_l, record_id_r, decision, reviewer, at FROM review_decisions ORDER BY seq"):
        if seq not in withdrawn_decisions:
            events.append((at, seq, Action("decision", seq, canonical(a, b), d, who, at)))
    for seq, kind, a, b, who, at, _, _ in marks:
        if kind == "unsure" and seq not in withdrawn_marks:
            events.append((at, seq, Action("mark", seq, canonical(a, b), UNSURE, who, at)))
    events.sort(key=lambda e: (e[0], e[2].kind == "mark", e[1]))
    by_reviewer: dict[tuple[str, str], dict[str, str]] = {}
    adjudicated: dict[tuple[str, str], str] = {}
    actions = []
    for _, _, act in events:
        actions.append(act)
        if act.kind == "decision" and act.seq in adjudications:
            adjudicated[act.pair] = act.decision
            continue
        by_reviewer.setdefault(act.pair, {})[act.reviewer] = act.decision
    # a pair only unsure marks touch has no vote that counts, but stays visible as flagged
    return ReviewState(by_reviewer=by_reviewer, adjudicated=adjudicated, actions=actions)


def standing_rows(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(record_id_l, record_id_r, decision) of every pair with a standing decision, in canonical order."""
    return [(a, b, d) for (a, b), d in sorted(read_state(conn).standing().items())]


def review_seq(conn: sqlite3.Connection) -> dict[str, int]:
    """How far the ledger's review tables go (the highest seq of each): a link run records it."""
    d = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM review_decisions").fetchone()[0]
    m = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM review_marks").fetchone()[0]
    return {"decisions": int(d), "marks": int(m)}


def touched_since(conn: sqlite3.Connection, decisions_seq: int, marks_seq: int) -> list[str]:
    """Record ids of the pairs whose review changed after those seqs (a new decision, undo or adjudication)."""
    rows = conn.execute("SELECT record_id_l, record_id_r FROM review_decisions WHERE seq > ? "
                        "UNION ALL SELECT record_id_l, record_id_r FROM review_marks WHERE seq > ?",
                        (decisions_seq, marks_seq)).fetchall()
    return sorted({r for row in rows for r in row})


def record(ledger: Ledger, pair: tuple[str, str], decision: str, reviewer: str, *,
           adjudicate: bool = False, via: str = "review serve") -> int:
    """Record one reviewer's decision (match / non_match / unsure) on a pair at once, with its audit row,
    in one transaction; returns its seq. ``adjudicate``: the decision settles a disagreement."""
    if decision not in (*DECISIONS, UNSURE):
        raise ValueError(f"unknown decision {decision!r}")
    a, b = canonical(*pair)
    at = _now()
    with ledger.transaction() as c:
        if decision == UNSURE:
            seq = c.execute("INSERT INTO review_marks (kind, record_id_l, record_id_r, reviewer, at) "
                            "VALUES ('unsure', ?, ?, ?, ?)", (a, b, reviewer, at)).lastrowid
        else:
            seq = c.execute("INSERT INTO review_decisions (record_id_l, record_id_r, decision, reviewer, at) "
                            "VALUES (?, ?, ?, ?, ?)", (a, b, decision, reviewer, at)).lastrowid
            if adjudicate:
                c.execute("INSERT INTO review_marks (kind, record_id_l, record_id_r, reviewer, at, decision_seq) "
                          "VALUES ('adjudicate', ?, ?, ?, ?, ?)", (a, b, reviewer, at, seq))
        # the audit names the reviewer and the decision, never the records (ids point at people)
        ledger.audit(via, "review_adjudicate" if adjudicate else "review_decision", "ok",
                     details={"reviewer": reviewer, "decision": decision, "seq": seq})
    assert seq is not None
    return int(seq)


def record_imported(ledger: Ledger, rows: Iterable[tuple[str, str, str]], reviewer: str, at: str) -> None:
    """Record the decisions of a reviewed file — (record_id_l, record_id_r, decision), checked by the caller —
    all in one transaction, as ``reviewer`` at ``at`` (the caller audits the import as a whole)."""
    with ledger.transaction() as c:
        c.executemany(
            "INSERT INTO review_decisions (record_id_l, record_id_r, decision, reviewer, at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(a, b, d, reviewer, at) for a, b, d in rows],
        )


def withdraw(ledger: Ledger, reviewer: str, *, via: str = "review serve") -> Action | None:
    """Take back the reviewer's most recent standing decision or mark (undo); returns it (None: nothing)."""
    with ledger.transaction() as c:
        last = read_state(c).last_action(reviewer)
        if last is None:
            return None
        ref = ("decision_seq", "mark_seq")[last.kind == "mark"]
        c.execute(f"INSERT INTO review_marks (kind, record_id_l, record_id_r, reviewer, at, {ref}) "
                  "VALUES ('withdraw', ?, ?, ?, ?, ?)", (*last.pair, reviewer, _now(), last.seq))
        ledger.audit(via, "review_withdraw", "ok",
                     details={"reviewer": reviewer, "decision": last.decision, "seq": last.seq})
    return last
