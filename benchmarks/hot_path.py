"""Hits: a reused settings object, the keyword wrapper next to Langroid's, async next to sync.

Everything here runs in one thread, sequentially, inside one running event loop (so the async
hit can be timed next to the sync one), with contenders alternating within every round.
"""

from __future__ import annotations

import asyncio
import timeit
from typing import Any

from pydantic import BaseModel, SecretStr

from benchmarks._context import Context
from benchmarks._figure import Baseline, Figure, Measurement, Row, describe_error
from benchmarks._stats import Sample, per_call

# What a framework passes on every call: the same keyword arguments, in the same order, for
# clientreg's wrapper and Langroid's function alike (Langroid's takes no max_retries).
KWARGS: dict[str, Any] = {
    "api_key": "sk-bench-0000000000000000",
    "base_url": "http://127.0.0.1:9/v1",
    "timeout": 30.0,
    "default_headers": {"x-tenant": "acme"},
}
SAME_ARGS = "api_key, base_url, timeout=30.0, one default header"
HOT = "one thread, sequential, inside a running event loop; index on (a temp file); no request sent"


class PlainTimeoutParts(BaseModel):
    connect: float = 5.0
    read: float = 600.0
    write: float = 600.0
    pool: float = 600.0


class PlainSettings(BaseModel):
    """OpenAISettings' field names and types, with no validators, no env reads, no hash."""

    provider: str = "openai"
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    base_url: str | None = "https://api.openai.com/v1"
    timeout: float | PlainTimeoutParts = 600.0
    max_retries: int = 2
    default_headers: dict[str, str] = {}
    default_query: dict[str, str] = {}
    proxy: SecretStr | None = None
    verify: bool | str = True
    max_connections: int = 1000
    max_keepalive_connections: int = 100
    keepalive_expiry: float = 5.0
    organization: str | None = None
    project: str | None = None


ROWS = (
    Row(
        "hit_settings_object",
        "hit, reused settings object: reg.get_client(s)",
        "s",
        "<= 1 us",
        f"{HOT}; the dict lookup of a precomputed key is the floor",
    ),
    Row(
        "hit_wrapper_vs_langroid",
        "hit, keyword wrapper get_openai_client(**kw) vs Langroid's, same args",
        "s",
        "<= 1 us and <= 0.2x Langroid",
        f"{HOT}; arguments: {SAME_ARGS}",
    ),
    Row(
        "hit_async_vs_sync",
        "hit, async client in a running loop vs sync hit",
        "s",
        "<= 1.5x",
        f"{HOT}; reg.get_async_client(s) vs reg.get_client(s), the same settings object",
    ),
    Row(
        "settings_construction",
        "settings construction vs plain pydantic model",
        "s",
        "<= 5x",
        "one thread; plain model: the same field names and types, no validators, no env reads",
    ),
    Row(
        "hit_fresh_equal_object",
        "hit, fresh equal settings object vs plain pydantic model",
        "s",
        "<= 6x",
        f"{HOT}; ours: construct OpenAISettings + hash + lookup; baseline: construct the plain model",
    ),
)


def _usable(stmts: dict[str, str], namespace: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Split statements into those that run and those that raise (with the error)."""
    ok: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name, stmt in stmts.items():
        try:
            timeit.Timer(stmt, globals=namespace).timeit(1)
        except Exception as exc:
            failed[name] = describe_error(exc)
        else:
            ok[name] = stmt
    return ok, failed


def measure_hits(ctx: Context) -> list[Figure]:
    from registry import Registry, get_openai_client
    from schemas import OpenAISettings

    counts = ctx.counts
    peer = ctx.langroid()
    reg = Registry(index_path=ctx.scratch / "hot-path.sqlite")
    settings = OpenAISettings(**KWARGS)
    namespace: dict[str, Any] = {
        "get": reg.get_client,
        "aget": reg.get_async_client,
        "s": settings,
        "Settings": OpenAISettings,
        "Plain": PlainSettings,
        "wrapper": get_openai_client,
        "langroid": None if peer is None else peer.module.get_openai_client,
        "kw": KWARGS,
        "d": {settings.config_hash: object()},
        "k": settings.config_hash,
    }
    stmts = {
        "hit": "get(s)",
        "async_hit": "aget(s)",
        "dict": "d[k]",
        "wrapper": "wrapper(**kw)",
        "fresh": "get(Settings(**kw))",
        "construct": "Settings(**kw)",
        "plain": "Plain(**kw)",
    }
    if peer is not None:
        stmts["langroid"] = "langroid(**kw)"

    async def in_loop() -> tuple[dict[str, Sample], dict[str, str]]:
        ok, failed = _usable(stmts, namespace)
        return per_call(ok, namespace, seconds=counts.hot_seconds, rounds=counts.hot_rounds), failed

    try:
        s, failed = asyncio.run(in_loop())
    finally:
        reg.close()
    if peer is not None:
        peer.clear()

    def sample(name: str) -> Sample | None:
        return s.get(name)

    def error(*names: str) -> str:
        return "; ".join(f"{failed[n]}" for n in names if n in failed)

    rows = {row.key: row for row in ROWS}
    hit, wrapper, langroid = sample("hit"), sample("wrapper"), sample("langroid")
    langroid_baseline = Baseline(ctx.langroid_name(), langroid) if langroid else ctx.missing_langroid()
    figures = [
        rows["hit_settings_object"].measured(
            hit,
            [Baseline("dict lookup", sample("dict"))],
            passed=hit is not None and hit.median <= 1e-6,
            error=error("hit"),
        ),
        rows["hit_wrapper_vs_langroid"].measured(
            wrapper,
            [langroid_baseline],
            passed=(
                wrapper is not None
                and wrapper.median <= 1e-6
                and (langroid is None or wrapper.median <= 0.2 * langroid.median)
            ),
            note="" if langroid else "judged on the 1 us bound only: no Langroid figure",
            error=error("wrapper"),
        ),
    ]
    async_hit = sample("async_hit")
    figures.append(
        rows["hit_async_vs_sync"].measured(
            async_hit,
            [Baseline("sync hit", hit)],
            passed=async_hit is not None and hit is not None and async_hit.median <= 1.5 * hit.median,
            error=error("async_hit", "hit"),
        )
    )
    construct, plain, fresh = sample("construct"), sample("plain"), sample("fresh")
    figures.append(
        rows["settings_construction"].measured(
            construct,
            [Baseline("plain pydantic model", plain)],
            passed=construct is not None and plain is not None and construct.median <= 5 * plain.median,
            error=error("construct", "plain"),
        )
    )
    figures.append(
        rows["hit_fresh_equal_object"].measured(
            fresh,
            [Baseline("plain pydantic model", plain)],
            passed=fresh is not None and plain is not None and fresh.median <= 6 * plain.median,
            error=error("fresh", "plain"),
        )
    )
    return figures


MEASUREMENTS = (Measurement("hot", ROWS, measure_hits),)
