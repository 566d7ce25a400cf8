"""cilink.parallel: steps side by side, results in order, errors raised only after every step finished."""

from __future__ import annotations

import threading
import time

import pytest

from cilink import parallel


def test_run_all_returns_results_in_order_and_runs_steps_at_once() -> None:
    started = threading.Barrier(2, timeout=5)

    def step(value: int) -> int:
        started.wait()  # both steps must be running at the same time to pass the barrier
        return value

    assert parallel.run_all(lambda: step(1), lambda: step(2)) == [1, 2]
    assert parallel.run_all() == [] and parallel.run_all(lambda: 7) == [7]


def test_run_all_raises_the_first_error_after_every_step_finished() -> None:
    finished: list[str] = []

    def slow() -> None:
        time.sleep(0.2)
        finished.append("slow")

    def broken() -> None:
        raise ValueError("step failed")

    with pytest.raises(ValueError, match="step failed"):
        parallel.run_all(broken, slow)
    assert finished == ["slow"], "no step is left running when the error reaches the caller"


def test_background_hands_back_the_result_or_the_error() -> None:
    assert parallel.background(lambda x: x * 2, 21).result() == 42
    with pytest.raises(ZeroDivisionError):
        parallel.background(lambda: 1 / 0).result()
    assert 1 <= parallel.workers() <= 4


def test_run_all_at_once_caps_how_many_steps_run_together() -> None:
    lock = threading.Lock()
    running, most = 0, 0

    def step(value: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return value

    assert parallel.run_all(*[lambda v=v: step(v) for v in range(6)], at_once=2) == list(range(6))
    assert most == 2, "two at a time: never more, and not one after the other"
    most = 0
    assert parallel.run_all(*[lambda v=v: step(v) for v in range(3)], at_once=1) == [0, 1, 2]
    assert most == 1
    with pytest.raises(ValueError, match="step failed"):
        parallel.run_all(lambda: 1, lambda: (_ for _ in ()).throw(ValueError("step failed")), at_once=2)
