"""The key index's size under client churn, projected to one hour (issue 8 §4)."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._context import Context
from benchmarks._figure import Figure, Measurement, Row
from benchmarks._stats import Sample

THREADS = 4
SAMPLES = 5
HOUR = 3600.0

ROW = Row(
    "index_bytes_churn_1h",
    "index bytes after 1 hour-equivalent of churn: {index_churn_configs} configs, max_clients="
    "{index_churn_max_clients}",
    "bytes",
    "<= 10 MB",
    f"{THREADS} threads getting clients of {{index_churn_configs}} configs at random, as fast as they can, "
    "through one Registry(max_clients={index_churn_max_clients}) with the SQLite index on, for "
    f"{{index_churn_seconds:g}} s; {SAMPLES} times during the run the recorder's pending writes are flushed "
    "and the database's size is read (page count x page size, WAL content included, from a read-only "
    "connection); projected to 1 hour of the same churn: the on-disk size at the end (database, WAL, side "
    "files) + the growth rate (least squares over all samples but the first, which holds the configs' "
    "first records) x the time left",
)


def _disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def _database_bytes(path: Path) -> int | None:
    """The database's logical size (what the WAL holds included), or None if it is not one SQLite file."""
    if not path.exists():
        return 0  # nothing written yet
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as connection:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            size = connection.execute("PRAGMA page_size").fetchone()[0]
    except sqlite3.Error:
        return None
    return int(pages) * int(size)


def _flush(reg: Any) -> bool:
    """Write what the registry's recorder holds (a private hook of the harness; False if there is none)."""
    recorder = getattr(reg, "_recorder", None)
    flush = getattr(recorder, "flush", None)
    if flush is None:
        return False
    return bool(flush(30))


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares bytes per second through (seconds, bytes) points."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_b = sum(b for _, b in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (b - mean_b) for t, b in points) / spread if spread else 0.0


def measure(ctx: Context) -> list[Figure]:
    from registry import Registry
    from schemas import OpenAISettings

    counts = ctx.counts
    row = ctx.row(ROW)
    directory = ctx.scratch / "index-churn"
    directory.mkdir()
    path = directory / "index.sqlite"
    configs = [OpenAISettings(api_key=f"sk-churn-{i:04d}") for i in range(counts.index_churn_configs)]
    reg = Registry(index_path=path, max_clients=counts.index_churn_max_clients)
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
    samples: list[tuple[float, int]] = []
    unflushed = 0
    logical = True
    for k in range(1, SAMPLES + 1):
        stop.wait(max(0.0, started + counts.index_churn_seconds * k / SAMPLES - time.perf_counter()))
        unflushed += not _flush(reg)
        size = _database_bytes(path)
        if size is None:
            logical, size = False, _disk_bytes(directory)
        samples.append((time.perf_counter() - started, size))
    stop.set()
    for thread in threads:
        thread.join()
    churned = time.perf_counter() - started
    stats = reg.stats()
    _flush(reg)
    end_bytes = _disk_bytes(directory)
    reg.close()
    closed_bytes = _disk_bytes(directory)
    if failures:
        raise failures[0]
    rate = max(0.0, _slope(samples[1:]))
    projected = end_bytes + rate * max(0.0, HOUR - churned)
    note = (
        f"{stats.hits + stats.misses:,} hand-outs, {stats.evictions:,} evictions ({stats.evictions / churned:,.0f}/s) "
        f"in {churned:.1f} s; database size at each sample: {', '.join(f'{b / 1e6:.2f} MB' for _, b in samples)}; "
        f"on disk at the end {end_bytes / 1e6:.2f} MB, after close() {closed_bytes / 1e6:.2f} MB; "
        f"growth {rate / 1e3:,.2f} kB/s"
        + (
            f"; the recorder's flush failed or timed out before {unflushed} samples (those may lag)"
            if unflushed
            else ""
        )
        + ("" if logical else "; not one SQLite file: sizes are the directory's bytes on disk")
    )
    return [row.measured(Sample((projected,)), passed=projected <= 10 * 1024 * 1024, note=note)]


MEASUREMENTS = (Measurement("index", (ROW,), measure),)
