"""A hit with OpenTelemetry metrics on vs off (issue 14; target: within 1.05x).

python -m benchmarks.metrics_overhead            # ~1 minute on 2 cores
python -m benchmarks.metrics_overhead --quick    # seconds: proves it runs
python -m benchmarks.metrics_overhead --json FILE

Each round runs two fresh interpreters, one per mode, in alternating order, so neither mode
inherits the other's warm caches or memory layout; each times ``reg.get_client(settings)``
(a hit, the index on, so the hit also counts a use) with ``timeit``. Both modes import the
OpenTelemetry SDK and make a MeterProvider with an in-memory reader; "on" also calls
``registry.instrument()`` with it, and a collection runs before timing (so the instruments
are live, never collected while timing). So the modes differ by instrumentation alone, not
by what an application that exports metrics imports anyway. The figure is the median over
interpreters of each one's median; the ratio of the fastest interpreters is shown beside it,
as it rides out load from other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._stats import Sample, per_call

TARGET = 1.05
ROOT = Path(__file__).resolve().parents[1]
KWARGS: dict[str, Any] = {
    "api_key": "sk-bench-0000000000000000",
    "base_url": "http://127.0.0.1:9/v1",
    "timeout": 30.0,
    "max_retries": 3,
}


def worker(mode: str, seconds: float, rounds: int) -> dict[str, Any]:
    """In a fresh interpreter: per-hit seconds of one registry, metrics ``mode`` ("on" or "off")."""
    # Both modes import the SDK and make a provider: they differ only by registry.instrument().
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import registry
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
        assert (collected is not None and bool(collected.resource_metrics)) == (mode == "on")  # read when on
        sample = per_call({"hit": "get(s)"}, {"get": reg.get_client, "s": settings}, seconds=seconds, rounds=rounds)
        hits = reg.stats().hits
    return {"median": sample["hit"].median, "hits": hits}


def _run_worker(mode: str, seconds: float, rounds: int) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.metrics_overhead", "--worker", mode, str(seconds), str(rounds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {mode!r} worker failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout)["median"])


def measure(*, processes: int, seconds: float, rounds: int) -> dict[str, Sample]:
    """Per-hit seconds with metrics off and on: one value per fresh interpreter, modes alternating."""
    values: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(processes):
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
            values[mode].append(_run_worker(mode, seconds, rounds))
    return {mode: Sample(tuple(v)) for mode, v in values.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the row (and write it as JSON with ``--json``); exit 1 with ``--strict`` if the target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that it runs")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "SECONDS", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        mode, seconds, rounds = args.worker
        print(json.dumps(worker(mode, float(seconds), int(rounds))))
        return 0

    processes, seconds, rounds = (2, 0.002, 2) if args.quick else (12, 0.04, 21)
    samples = measure(processes=processes, seconds=seconds, rounds=rounds)
    off, on = samples["off"], samples["on"]
    ratio = on.median / off.median
    best_ratio = on.low / off.low
    passed = ratio <= TARGET
    print("hit path with metrics on vs off (target: within 1.05x)")
    print(f"  off: {off.median * 1e9:7.1f} ns per hit  (min {off.low * 1e9:.1f}, max {off.high * 1e9:.1f})")
    print(f"  on:  {on.median * 1e9:7.1f} ns per hit  (min {on.low * 1e9:.1f}, max {on.high * 1e9:.1f})")
    print(f"  ratio on/off: {ratio:.3f}x  {'PASS' if passed else 'FAIL'}  ({processes} interpreters per mode)")
    print(f"  ratio of the fastest interpreters: {best_ratio:.3f}x  (load average {os.getloadavg()[0]:.1f})")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "key": "hit_metrics_on_vs_off",
                    "target": f"<= {TARGET}x",
                    "ratio": ratio,
                    "best_ratio": best_ratio,
                    "load_average_1m": os.getloadavg()[0],
                    "passed": passed,
                    "off": off.to_json(),
                    "on": on.to_json(),
                    "quick": args.quick,
                },
                indent=2,
            )
        )
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    raise SystemExit(main())
