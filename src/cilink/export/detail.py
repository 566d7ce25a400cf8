"""The full-detail data aggregates are computed from: a research-shaped release, built only in the restricted zone.

The report, ``cilink indicators`` and the ``aggregate`` tier count units (school years, exits, persons)
that need full event detail — days enrolled and absent, month dates, earnings — which the ``deidentified``
tier no longer carries. ``detailed_release`` builds that detail with the release builders themselves
(``cilink.export.release._stage``: the same tables, the same identifier checks), month dates and the
5-digit ZIP, no k-anonymity (nothing of it is released), into a temporary directory inside the restricted
zone, and removes it afterwards — also on error; a crash leaves a ``.*.tmp`` directory that
``cilink recover`` sweeps like any staging directory.

Its ``person_key`` is a keyed hash under ``DETAIL_KEY``, a fixed key: the same person has the same key
every time, whatever the audiences' secrets, which is what lets small-cell suppression recognise the same
persons in two releases (``cilink.disclosure.suppression``). Those keys never leave the restricted zone: they
are unit ids of the suppression state (``cilink.report.history``), never printed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from cilink.config import ReleaseProfile
from cilink.export.generalize import DATE_FIELDS, ReleasePlan
from cilink.export.open import Release, open_release
from cilink.export.person_keys import person_keys
from cilink.logs import RunLog
from cilink.timing import PhaseClock
from cilink.workspace import Workspace

#: Key of the detail's person_key (restricted unit ids, not a secret: person_id itself is as restricted).
DETAIL_KEY = b"cilink/aggregate/detail-person-key/v1"
#: Audience name the detail is staged under (run log and inputs only).
DETAIL_AUDIENCE = "detail"


def detail_person_keys(person_ids: pl.Series) -> pl.Series:
    """The detail's person_key of internal person ids (how the report's person counts join the indicators')."""
    return person_keys(person_ids, DETAIL_KEY)


def detail_plan(min_cell: int) -> ReleasePlan:
    """Month dates, ZIP5, no generalization for k-anonymity (k = 1): what the aggregates count from."""
    return ReleasePlan(profile=ReleaseProfile.LIMITED, date_precision=dict.fromkeys(DATE_FIELDS, "month"), k=1,
                       min_cell=min_cell, max_suppression=1.0)


@contextlib.contextmanager
def detailed_release(ws: Workspace, log: RunLog | None = None) -> Iterator[Release]:
    """Build the full-detail tables of the active batches in the restricted zone and open them; removed after.

    Raises WorkspaceError when there is nothing linked yet (as `cilink export` does).
    Example::

        with detailed_release(Workspace.open("ws")) as detail:
            detail.persons.select(pl.len()).collect()
    """
    from cilink.export.manifest import MANIFEST, dumps
    from cilink.export.release import _stage  # the release builders (release.py dispatches tiers to here)

    ws.restricted.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".detail.", suffix=".tmp", dir=ws.restricted))
    try:
        manifest, _ = _stage(ws, detail_plan(ws.config.export.min_cell), DETAIL_KEY, DETAIL_AUDIENCE, tmp.name,
                             log or RunLog(ws.logs_dir, "detail"), None, tmp, PhaseClock())
        (tmp / MANIFEST).write_text(dumps(manifest), encoding="utf-8")
        yield open_release(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
