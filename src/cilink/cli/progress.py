"""A progress display for long steps: a rich progress bar on a terminal, nothing when piped or with --json."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cilink.cli import output


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None] | None]:
    """Yield the callback stages take (``progress(step, done, total)``), or None when nothing is shown."""
    if not enabled or not output.is_tty():
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=output.err,
                  transient=True) as bar:
        task = bar.add_task("starting", total=1)

        def update(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        yield update
