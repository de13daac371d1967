"""A hit with OpenTelemetry metrics on vs off (issue 14; target: within 1.05x).

Each round runs two fresh interpreters, one per mode, in alternating order, so neither mode
inherits the other's warm caches or memory layout; each times ``reg.get_client(settings)``
(a hit, the index on, so the hit also counts a use). Both modes import the OpenTelemetry SDK
and make a MeterProvider with an in-memory reader; "on" also calls ``registry.instrument()``
with it, and a collection runs before timing (so the instruments are live, and never
collected while timing). The modes then differ by instrumentation alone, not by what an
application that exports metrics imports anyway. The figure is the median over interpreters
of each one's median; the ratio of the fastest interpreters is noted beside it, as it rides
out load from other processes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from benchmarks._context import Context, worker
from benchmarks._figure import Baseline, Figure, Measurement, Row, Skip
from benchmarks._stats import Sample, per_call

TARGET = 1.05
KWARGS: dict[str, Any] = {
    "api_key": "sk-bench-0000000000000000",
    "base_url": "http://127.0.0.1:9/v1",
    "timeout": 30.0,
    "max_retries": 3,
}


def hit(mode: str, seconds: str, rounds: str) -> dict[str, Any]:
    """Worker: per-hit seconds of one registry in this fresh interpreter, metrics ``mode`` ("on" or "off")."""
    import registry

    if not hasattr(registry, "instrument"):
        return {"error": "registry.instrument() does not exist (issue 14)"}
    try:
        # Both modes import the SDK and make a provider: they differ only by registry.instrument().
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        return {"skip": "the OpenTelemetry SDK is not installed (pip install -e '.[dev]' or opentelemetry-sdk)"}
    from registry import Registry
    from schemas import OpenAISettings

    reader: Any = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    if mode == "on":
        registry.instrument(meter_provider=provider)
    with tempfile.TemporaryDirectory() as tmp, Registry(index_path=os.path.join(tmp, "index.sqlite")) as reg:
        settings = OpenAISettings(**KWARGS)
        reg.get_client(settings)
        collected = reader.get_metrics_data()
        instrumented = collected is not None and bool(collected.resource_metrics)
        sample = per_call(
            {"hit": "get(s)"}, {"get": reg.get_client, "s": settings}, seconds=float(seconds), rounds=int(rounds)
        )
    return {
        "median": sample["hit"].median,
        "instrumented": instrumented,
        "sdk_imported": "opentelemetry.sdk.metrics" in sys.modules,
    }


ROW = Row(
    "hit_metrics_on_vs_off",
    "hit with OpenTelemetry metrics on vs off",
    "s",
    f"<= {TARGET}x",
    "one thread, sequential; reg.get_client(s) with the index on (a temp file), no request sent; "
    "{metrics_processes} fresh interpreters per mode, modes alternating (which goes first alternates too), "
    "each the median of {hot_rounds} timeit rounds; both modes import the OpenTelemetry SDK and make a "
    "MeterProvider with an in-memory reader, 'on' also calls registry.instrument() with it (collected once "
    "before timing, never while timing); the figure: the median over interpreters",
)


def measure(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    row = ctx.row(ROW)
    values: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(counts.metrics_processes):
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
            result = worker("metrics_overhead:hit", mode, counts.hot_seconds, counts.hot_rounds)
            if "skip" in result:
                raise Skip(result["skip"])
            if "error" in result:
                return [row.measured(None, error=result["error"])]
            if result["instrumented"] != (mode == "on"):
                return [row.measured(None, error=f"mode {mode!r}: the metric reader saw {result['instrumented']}")]
            values[mode].append(result["median"])
    on, off = Sample(tuple(values["on"])), Sample(tuple(values["off"]))
    note = f"ratio of the fastest interpreters: {on.low / off.low:.3f}x"
    return [row.measured(on, [Baseline("metrics off", off)], passed=on.median <= TARGET * off.median, note=note)]


MEASUREMENTS = (Measurement("metrics", (ROW,), measure),)
