"""The key index's size under client churn, projected to one hour (issue 8 §4)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._context import Context
from benchmarks._figure import Figure, Measurement, Row
from benchmarks._stats import Sample

THREADS = 4
HOUR = 3600.0

PHASES = 3

ROW = Row(
    "index_bytes_churn_1h",
    "index bytes after 1 hour-equivalent of churn: {index_churn_configs} configs, max_clients="
    "{index_churn_max_clients}",
    "bytes",
    "<= 10 MB",
    f"{THREADS} threads getting clients of {{index_churn_configs}} configs at random, as fast as they can, "
    "through Registry(max_clients={index_churn_max_clients}) with the SQLite index on, for "
    f"{{index_churn_seconds:g}} s in {PHASES} equal phases on one index file, each a new registry closed at "
    "its end (which writes what is pending); on-disk size (database, WAL, side files) after each phase; "
    "projected to 1 hour of the same churn: final size + (growth over the last two phases per second of "
    "churn) x the time left",
)


def _disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def _churn(path: Path, configs: list[Any], max_clients: int, seconds: float) -> tuple[int, int, float]:
    """One phase: a registry churned by the threads for ``seconds``, then closed.

    Returns the hand-outs, the evictions and the seconds the threads ran (close() not included).
    """
    from registry import Registry

    reg = Registry(index_path=path, max_clients=max_clients)
    stop = threading.Event()
    failures: list[BaseException] = []

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                reg.get_client(configs[rng.randrange(len(configs))])
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=churn, args=(seed,), daemon=True) for seed in range(THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    ran = time.perf_counter() - started
    stats = reg.stats()
    reg.close()
    if failures:
        raise failures[0]
    return stats.hits + stats.misses, stats.evictions, ran


def measure(ctx: Context) -> list[Figure]:
    from schemas import OpenAISettings

    counts = ctx.counts
    row = ctx.row(ROW)
    directory = ctx.scratch / "index-churn"
    directory.mkdir()
    configs = [OpenAISettings(api_key=f"sk-churn-{i:04d}") for i in range(counts.index_churn_configs)]
    phase = counts.index_churn_seconds / PHASES
    sizes: list[int] = []
    durations: list[float] = []
    handouts = evictions = 0
    for _ in range(PHASES):
        done, evicted, ran = _churn(directory / "index.sqlite", configs, counts.index_churn_max_clients, phase)
        handouts += done
        evictions += evicted
        durations.append(ran)
        sizes.append(_disk_bytes(directory))
    churned = sum(durations)
    rate = max(0.0, (sizes[-1] - sizes[0]) / sum(durations[1:]))
    projected = sizes[-1] + rate * max(0.0, HOUR - churned)
    note = (
        f"{handouts:,} hand-outs, {evictions:,} evictions ({evictions / churned:,.0f}/s) in {churned:.1f} s; "
        f"size after each phase: {', '.join(f'{s / 1e6:.2f} MB' for s in sizes)}; growth {rate / 1e3:,.1f} kB/s"
    )
    return [row.measured(Sample((projected,)), passed=projected <= 10 * 1024 * 1024, note=note)]


MEASUREMENTS = (Measurement("index", (ROW,), measure),)
