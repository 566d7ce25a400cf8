"""Wall and CPU seconds per phase of a stage run, for its result, its run log and the benchmarks."""

from __future__ import annotations

import os
import time


class PhaseClock:
    """Charges the time between laps to named phases (summed when a phase repeats): ``<phase>_s`` (wall),
    ``<phase>_cpu_s`` (CPU, all threads) and ``<phase>_sys_s`` (system CPU)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._wall, self._cpu, self._sys = time.perf_counter(), time.process_time(), os.times().system

    def lap(self, phase: str) -> None:
        """Charge the time since the previous lap to ``phase``."""
        wall, cpu, sys_ = time.perf_counter(), time.process_time(), os.times().system
        for key, used in (("s", wall - self._wall), ("cpu_s", cpu - self._cpu), ("sys_s", sys_ - self._sys)):
            self.totals[f"{phase}_{key}"] = round(self.totals.get(f"{phase}_{key}", 0.0) + used, 3)
        self._wall, self._cpu, self._sys = wall, cpu, sys_

    def walls(self) -> dict[str, float]:
        """Wall seconds per phase, in the order the phases first ran."""
        return {k.removesuffix("_s"): v for k, v in self.totals.items()
                if k.endswith("_s") and not k.endswith(("_cpu_s", "_sys_s"))}
