"""Run one benchmark step in its own child process, under a wall-clock and a memory limit, and measure it.

Wall time is the child's whole life (interpreter start-up, reading inputs, the work, writing results): what
a user waits for. Peak memory is the child's peak resident set size: ``ru_maxrss`` from ``wait4`` for that
child alone, or the highest RSS the watchdog saw across the child and its descendants, whichever is larger.

Limits are enforced by a watchdog that polls the child's process tree, not by ``RLIMIT_AS``: DuckDB and
polars reserve far more address space than they touch, so an address-space limit fails runs that would fit
in memory. A child over ``memory_gb`` (RSS) or ``timeout_s`` is killed with its whole process group and the
step is recorded as "out of memory at X GB" or "timeout after N s".

Linux ``ru_maxrss`` of an exec'd child starts at its parent's RSS at fork time, so the orchestrator that
calls ``run`` must stay small: it imports only the standard library and psutil (polars, pandas, Splink
and matplotlib are loaded in children only).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

POLL_S = 0.1
OK, TIMEOUT, OOM, ERROR = "ok", "timeout", "oom", "error"



@dataclass(frozen=True)
class Limits:
    """Per-step limits: wall-clock seconds and resident memory in GB (10⁹ bytes)."""

    timeout_s: float
    memory_gb: float

    def __str__(self) -> str:
        return f"{self.timeout_s:g} s and {self.memory_gb:g} GB RSS per step"


@dataclass
class Measurement:
    """How one child process went: ``status`` is ok, timeout, oom or error."""

    status: str
    wall_s: float
    peak_mb: float
    limits: Limits
    payload: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    #: user + system CPU seconds of the child and everything it waited for
    cpu_s: float = 0.0

    @property
    def cores_busy(self) -> float:
        """CPU time over wall time: how many cores the child kept busy on average."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.status == OK

    def describe(self) -> str:
        """A human reason for a failed step ('' when it succeeded)."""
        if self.status == TIMEOUT:
            return f"timeout after {self.limits.timeout_s:g} s"
        if self.status == OOM:
            return f"out of memory at {self.limits.memory_gb:g} GB"
        if self.status == ERROR:
            return f"failed: {self.error}"
        return ""


def _tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and all its descendants (0 once they are gone)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _last_json(path: Path) -> dict[str, Any]:
    """The child's stdout as a JSON object, or else its last line that is one ({} if none)."""
    text = path.read_text(errors="replace")
    with contextlib.suppress(ValueError):
        whole = json.loads(text)
        if isinstance(whole, dict):
            return whole
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


def _last_error(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no error output"


def run(argv: Sequence[str], limits: Limits, *, log_dir: Path, name: str, env: Mapping[str, str] | None = None,
        cwd: Path | None = None) -> Measurement:
    """Run ``argv`` to completion or to a limit; stdout/stderr go to ``log_dir/name.{out,err}``.

    The child may print a JSON object as its last stdout line; it becomes ``Measurement.payload``.
    Example: ``run([sys.executable, "-c", "print('{}')"], Limits(60, 4), log_dir=Path("logs"), name="x")``
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    limit_bytes = limits.memory_gb * 1e9
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
        watched = psutil.Process(proc.pid)
        status, polled_peak, rusage, code = OK, 0, None, 0
        while True:
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                rusage, code = usage, os.waitstatus_to_exitcode(wait_status)
                break
            rss = _tree_rss(watched)
            polled_peak = max(polled_peak, rss)
            elapsed = time.perf_counter() - started
            if rss > limit_bytes or elapsed > limits.timeout_s:
                status = OOM if rss > limit_bytes else TIMEOUT
                _kill_group(proc.pid)
                _, wait_status, rusage = os.wait4(proc.pid, 0)
                code = os.waitstatus_to_exitcode(wait_status)
                break
            time.sleep(POLL_S)
        wall = time.perf_counter() - started
        proc.returncode = code  # reaped by wait4 above; tell Popen so it does not wait again
    _kill_group(proc.pid)  # anything the child left running in its group
    peak_mb = max(polled_peak / 2**20, rusage.ru_maxrss / 1024 if rusage else 0.0)  # ru_maxrss is KiB on Linux
    if status == OK and code != 0:
        if code == -signal.SIGKILL:  # killed from outside, most likely by the kernel's OOM killer
            return Measurement(ERROR, round(wall, 2), round(peak_mb), limits,
                               error=f"killed by SIGKILL at {peak_mb / 1024:.1f} GB (kernel OOM killer?)")
        return Measurement(ERROR, round(wall, 2), round(peak_mb), limits,
                           error=f"exit {code}: {_last_error(err_path)}")
    payload = _last_json(out_path) if status == OK else {}
    cpu = rusage.ru_utime + rusage.ru_stime if rusage else 0.0
    return Measurement(status, round(wall, 2), round(peak_mb), limits, payload=payload, cpu_s=round(cpu, 2))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class Runner:
    """Runs a benchmark's named steps, each in its own child with the run's limits, environment and logs.

    ``step`` is a measured step; ``setup`` prepares inputs (generous time limit, failures raise ``SetupError``).
    """

    limits: Limits
    log_dir: Path
    env: dict[str, str]
    cwd: Path
    setup_timeout_s: float = 3 * 3600
    verbose: bool = True

    def step(self, name: str, argv: Sequence[str], *, label: str | None = None) -> Measurement:
        m = run(argv, self.limits, log_dir=self.log_dir, name=name, env=self.env, cwd=self.cwd)
        if self.verbose:
            what = (f"{m.wall_s:8.1f} s {m.peak_mb / 1024:6.2f} GB  CPU {m.cpu_s:6.1f} s "
                    f"{m.cores_busy:4.2f} cores busy" if m.ok else m.describe())
            print(f"  {label or name:<48} {what}", flush=True)
        return m

    def setup(self, name: str, argv: Sequence[str]) -> dict[str, Any]:
        limits = Limits(self.setup_timeout_s, self.limits.memory_gb)
        m = run(argv, limits, log_dir=self.log_dir, name=name, env=self.env, cwd=self.cwd)
        if not m.ok:
            raise SetupError(f"{name}: {m.describe()} (log: {self.log_dir / name}.err)")
        return m.payload

    @staticmethod
    def python(*args: str) -> list[str]:
        """argv running this interpreter (the venv's) with ``args``."""
        return [sys.executable, *args]

    @staticmethod
    def cilink(workspace: Path, *args: str) -> list[str]:
        """argv of a cilink CLI command on ``workspace``."""
        return [sys.executable, "-m", "cilink", "-w", str(workspace), *args]


class SetupError(RuntimeError):
    """Preparing a benchmark's inputs failed; the benchmark cannot run."""
