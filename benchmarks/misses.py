"""Misses on a warm transport next to plain SDK construction (the index on vs off: `benchmarks.fleet`)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from benchmarks._context import Context
from benchmarks._figure import Baseline, Figure, Measurement, Row
from benchmarks._stats import Sample
from registry import Registry
from schemas import CerebrasSettings, GroqSettings, OpenAISettings, ProviderSettings

_serial = itertools.count()


def _plain_openai(key: str) -> Any:
    import openai

    return openai.OpenAI(api_key=key)


def _plain_groq(key: str) -> Any:
    import groq

    return groq.Groq(api_key=key)


def _plain_cerebras(key: str) -> Any:
    from cerebras.cloud.sdk import Cerebras

    # The SDK's default warm_tcp_connection=True sends a request from the constructor; the
    # registry passes False, so the plain side does too (construction only, no network).
    return Cerebras(api_key=key, warm_tcp_connection=False)


SettingsClass = Callable[..., ProviderSettings]

PROVIDERS: dict[str, tuple[SettingsClass, Callable[[str], Any]]] = {
    "openai": (OpenAISettings, _plain_openai),
    "groq": (GroqSettings, _plain_groq),
    "cerebras": (CerebrasSettings, _plain_cerebras),
}


def _new_key() -> str:
    return f"sk-bench-{next(_serial):012d}"


def registry_miss_seconds(reg: Registry, cls: SettingsClass, count: int) -> float:
    """Seconds per miss on a warm transport: a new key's settings object and its client."""
    keys = [_new_key() for _ in range(count)]
    started = time.perf_counter()
    for key in keys:
        reg.get_client(cls(api_key=key))
    return (time.perf_counter() - started) / count


def plain_seconds(make: Callable[[str], Any], count: int) -> float:
    """Seconds per plain SDK construction (each builds its own HTTP client); closing is not timed."""
    total = 0.0
    for _ in range(count):
        key = _new_key()
        started = time.perf_counter()
        client = make(key)
        total += time.perf_counter() - started
        client.close()
    return total / count


def measure_warm_miss(*, misses: int, plain: int, rounds: int) -> dict[str, tuple[Sample, Sample]]:
    """Per provider: (registry miss, plain construction) seconds, alternating within each round."""
    results: dict[str, tuple[Sample, Sample]] = {}
    with Registry(index_path="off") as reg:
        for name, (cls, make) in PROVIDERS.items():
            reg.get_client(cls(api_key=_new_key()))  # warms the transport and imports the SDK
            make(_new_key()).close()
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(rounds):
                ours.append(registry_miss_seconds(reg, cls, misses))
                theirs.append(plain_seconds(make, plain))
            results[name] = (Sample(tuple(ours)), Sample(tuple(theirs)))
    return results


MISS = "one thread, sequential; each miss a new api key on the registry's warm pool, its settings built in the timing"
MISS_ROWS = tuple(
    Row(
        f"miss_warm_transport_{provider}",
        f"miss on a warm pool vs plain SDK construction: {provider}",
        "s",
        "<= 0.025x (>= 40x cheaper)",
        f"{MISS}; index off; plain: the SDK constructor (its own HTTP client), close() not timed"
        + ("; plain Cerebras with warm_tcp_connection=False, as the registry" if provider == "cerebras" else ""),
    )
    for provider in PROVIDERS
)


def measure_misses(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    measured = measure_warm_miss(misses=counts.misses, plain=counts.plain_builds, rounds=counts.miss_rounds)
    figures = []
    for row, (ours, plain) in zip(MISS_ROWS, measured.values(), strict=True):
        figures.append(row.measured(ours, [Baseline("plain SDK", plain)], passed=ours.median * 40 <= plain.median))
    return figures


MEASUREMENTS = (Measurement("misses", MISS_ROWS, measure_misses),)
