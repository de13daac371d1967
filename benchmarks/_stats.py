"""Samples (median and spread over rounds) and the timing helpers every benchmark shares."""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One contender's per-round values; the figure is their median."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def to_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.low, "max": self.high, "rounds": list(self.values)}


def per_call(stmts: dict[str, str], namespace: dict[str, Any], *, seconds: float, rounds: int) -> dict[str, Sample]:
    """Seconds per execution of each statement (loop overhead included, ~10 ns).

    Each statement runs about ``seconds`` per round; contenders alternate within every round.
    """
    timers = {name: timeit.Timer(stmt, globals=namespace) for name, stmt in stmts.items()}
    numbers: dict[str, int] = {}
    for name, timer in timers.items():
        estimate = timer.timeit(100) / 100  # also the warm-up: caches, lazy imports, specialisation
        numbers[name] = max(10, int(seconds / estimate))
    values: dict[str, list[float]] = {name: [] for name in stmts}
    for _ in range(rounds):
        for name, timer in timers.items():
            values[name].append(timer.timeit(numbers[name]) / numbers[name])
    return {name: Sample(tuple(v)) for name, v in values.items()}


def timed(function: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started
