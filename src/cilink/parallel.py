"""Independent steps side by side on threads: polars, DuckDB and file I/O release the GIL while they work,
so on a two-core machine reading one file while another is parsed, or scoring two halves of a batch at once,
roughly halves a step's wall time. Only for steps that share no mutable state."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None


def workers() -> int:
    """How many steps are worth running at once here (this process's CPUs, at most 4)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, available))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cilink")
    return _pool


def background(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Start ``fn(*args)`` on a worker thread; ``.result()`` waits for it (and re-raises its error)."""
    return _executor().submit(fn, *args)


def run_all(*steps: Callable[[], Any], at_once: int | None = None) -> list[Any]:
    """Run the steps side by side and return their results in order; the first error is raised after all
    of them have finished (so none is left writing when the caller cleans up). With ``at_once``, no more
    than that many run at a time (memory-hungry steps: each holds its own working arrays)."""
    if len(steps) <= 1 or at_once == 1:
        return [s() for s in steps]
    if at_once is None:
        return _results([_executor().submit(s) for s in steps])
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="cilink-step") as pool:
        return _results([pool.submit(s) for s in steps])


def _results(futures: list[Future[Any]]) -> list[Any]:
    errors = [f.exception() for f in futures]
    for e in errors:
        if e is not None:
            raise e
    return [f.result() for f in futures]
