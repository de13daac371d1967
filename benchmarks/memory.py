"""Resident memory: many distinct keys held, and 100,000 keys churning through a bounded registry."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._context import Context, worker
from benchmarks._figure import Baseline, Figure, Measurement, Row
from benchmarks._proc import rss_bytes
from benchmarks._stats import Sample

MB = 1024 * 1024


def rss_registry(count: str) -> dict[str, Any]:
    """Worker: RSS added by ``count`` distinct api keys held by one registry (pool and SDK already warm)."""
    from registry import Registry
    from schemas import OpenAISettings

    keys = int(count)
    reg = Registry(index_path="off")
    reg.get_client(OpenAISettings(api_key="sk-warm"))
    gc.collect()
    before = rss_bytes()
    for i in range(keys):
        reg.get_client(OpenAISettings(api_key=f"sk-bench-{i:012d}"))
    gc.collect()
    added = rss_bytes() - before
    assert reg.stats().live_clients == keys + 1
    return {"added_bytes": added}


def rss_per_client(contender: str, count: str, batches: str) -> dict[str, Any]:
    """Worker: RSS per client kept alive by the plain SDK or Langroid's cache, over batches of ``count`` keys."""
    from benchmarks.contenders import by_name

    side = by_name(contender)
    kept = [side.sync("sk-warm", "http://127.0.0.1:9/v1")]
    per_client: list[float] = []
    serial = 0
    for _ in range(int(batches)):
        gc.collect()
        before = rss_bytes()
        for _ in range(int(count)):
            serial += 1
            kept.append(side.sync(f"sk-bench-{serial:012d}", "http://127.0.0.1:9/v1"))
        gc.collect()
        per_client.append((rss_bytes() - before) / int(count))
    return {"per_client_bytes": per_client}


def rss_churn(count: str, max_clients: str, index: str) -> dict[str, Any]:
    """Worker: RSS added by ``count`` distinct keys through ``Registry(max_clients=...)``, index on or off."""
    from registry import Registry
    from schemas import OpenAISettings

    with tempfile.TemporaryDirectory(prefix="clientreg-bench-") as tmp:
        path: Any = Path(tmp, "index.sqlite") if index == "on" else "off"
        reg = Registry(index_path=path, max_clients=int(max_clients))
        for i in range(int(max_clients)):  # the pool, the SDK, the index and the table at full size
            reg.get_client(OpenAISettings(api_key=f"sk-warm-{i}"))
        gc.collect()
        before = rss_bytes()
        for i in range(int(count)):
            reg.get_client(OpenAISettings(api_key=f"sk-churn-{i:012d}"))
        gc.collect()
        added = rss_bytes() - before
        stats = reg.stats()
        reg.close()
    return {"added_bytes": added, "evictions": stats.evictions, "live_clients": stats.live_clients}


HELD = (
    "one thread, sequential, no request; all clients kept alive; clientreg: index off, one warm pool, "
    "measured; plain SDK and Langroid: RSS per client measured on {rss_plain} clients x {rss_plain_batches} "
    "batches, multiplied by the key count (extrapolated); fresh interpreter per run"
)
HELD_ROWS = (
    Row("rss_1000_keys", "RSS added by {rss_keys[0]:,} distinct api keys held", "bytes", "(context)", HELD),
    Row("rss_10000_keys", "RSS added by {rss_keys[1]:,} distinct api keys held", "bytes", "<= 5 KB per key", HELD),
)
CHURN_ROW = Row(
    "rss_churn_index_on_vs_off",
    "RSS added by {churn_keys:,} distinct keys through max_clients={churn_max_clients}, index on vs off",
    "bytes",
    "within 10 MB of index off",
    "one thread, sequential, no request; each key one miss and (past the bound) one eviction; "
    "fresh interpreter per run; index on: a SQLite file, measured without waiting for its writer; Langroid's "
    "cache has no bound and keeps a client (with its own pool) per key: its RSS per client, measured on "
    "{rss_plain} clients x {rss_plain_batches} batches, times {churn_keys:,} (extrapolated)",
)


def measure_held(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    per, batches = counts.rss_plain, counts.rss_plain_batches
    plain = worker("memory:rss_per_client", "plain SDK", per, batches)["per_client_bytes"]
    langroid: list[float] | None = None
    if ctx.langroid() is not None:
        langroid = worker("memory:rss_per_client", ctx.langroid_name(), per, batches)["per_client_bytes"]
    figures = []
    for template, keys in zip(HELD_ROWS, counts.rss_keys, strict=True):
        row = ctx.row(template)
        ours = Sample(tuple(worker("memory:rss_registry", keys)["added_bytes"] for _ in range(counts.rss_rounds)))
        baselines = [
            Baseline("plain SDK (extrapolated)", Sample(tuple(p * keys for p in plain))),
            Baseline(f"{ctx.langroid_name()} (extrapolated)", Sample(tuple(p * keys for p in langroid)))
            if langroid is not None
            else ctx.missing_langroid(),
        ]
        judged = template.key == "rss_10000_keys"
        budget = 50 * MB * keys / 10_000  # the target for 10,000 keys; scaled to the quick run's count
        figures.append(row.measured(ours, baselines, passed=ours.median <= budget if judged else None))
    return figures


def measure_churn(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    row = ctx.row(CHURN_ROW)
    off = worker("memory:rss_churn", counts.churn_keys, counts.churn_max_clients, "off")
    on = worker("memory:rss_churn", counts.churn_keys, counts.churn_max_clients, "on")
    ours, base = Sample((on["added_bytes"],)), Sample((off["added_bytes"],))
    baselines = [Baseline("index off", base)]
    if ctx.langroid() is not None:
        per_client = worker("memory:rss_per_client", ctx.langroid_name(), counts.rss_plain, counts.rss_plain_batches)[
            "per_client_bytes"
        ]
        held = Sample(tuple(p * counts.churn_keys for p in per_client))
        baselines.append(Baseline(f"{ctx.langroid_name()} (no bound; extrapolated)", held))
    else:
        baselines.append(ctx.missing_langroid())
    budget = 10 * MB
    return [
        row.measured(
            ours,
            baselines,
            passed=ours.median - base.median <= budget,
            note=f"{on['evictions']:,} evictions with the index on; one run of each (fresh interpreters)",
        )
    ]


MEASUREMENTS = (
    Measurement("memory", HELD_ROWS, measure_held),
    Measurement("memory", (CHURN_ROW,), measure_churn),
)
