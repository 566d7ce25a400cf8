"""JSON-lines logs under .cilink/logs/ for cron: run id, command, durations and counts — never identifiers."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cilink.ledger import now_utc


@dataclass
class RunLog:
    """Appends events of one command run to ``logs/cilink-YYYY-MM-DD.jsonl``."""

    logs_dir: Path
    command: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.monotonic)

    def event(self, event: str, *, progress: bool = False, **counts: Any) -> None:
        """Write one log line. Pass only counts, durations, hashes and ids — no personal data.

        Lines are flushed to disk as written, except ``progress`` lines (a stage's steps): the run's next
        flushed line takes them along, and what a run did is in the ledger anyway."""
        self.logs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = {
            "at": now_utc(),
            "run_id": self.run_id,
            "command": self.command,
            "event": event,
            "elapsed_s": round(time.monotonic() - self.started, 3),
            **counts,
        }
        path = self.logs_dir / f"cilink-{now_utc()[:10]}.jsonl"
        with open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True, default=str) + "\n")
            fh.flush()
            if not progress:
                os.fsync(fh.fileno())
