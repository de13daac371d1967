"""Production figures: keys, agents and streams against a loopback server, for all three contenders.

Each figure counts the TCP connections the server accepted and the wall time of the whole run,
for clientreg's keyword wrappers, a plain SDK client per agent, and Langroid's own client cache
(`benchmarks.contenders`). Every round starts cold: each side forgets its shared clients first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from benchmarks._context import Context
from benchmarks._figure import CONTEXT, Baseline, Figure, Measurement, Row, describe_error
from benchmarks._stats import Sample
from benchmarks.contenders import CLIENTREG, PLAIN, Clientreg, Contender, Langroid, Plain
from tests.fake_server import FakeServer

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
COMMON = (
    "each agent gets its client from the contender's keyword function (clientreg: get_openai_client(...), "
    "plain SDK: openai.OpenAI(...) closed after use, Langroid: its get_openai_client(...)) with api_key, "
    "base_url and timeout; clientreg's index on (a temp file); connections: TCP connections the loopback "
    "server accepted; wall: the whole run, client construction included"
)


@dataclass
class Run:
    """The outcome of one contender's round."""

    seconds: float
    connections: int
    errors: list[str] = field(default_factory=list)


def _ask(client: Any, stream: bool) -> None:
    if stream:
        words = []
        for chunk in client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True):
            if chunk.choices:
                words.append(chunk.choices[0].delta.content or "")
        assert "".join(words) == "echo: hi"
    else:
        reply = client.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert reply.choices[0].message.content == "echo: hi"


async def _aask(client: Any, stream: bool) -> None:
    if stream:
        words = []
        async for chunk in await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True):
            if chunk.choices:
                words.append(chunk.choices[0].delta.content or "")
        assert "".join(words) == "echo: hi"
    else:
        reply = await client.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert reply.choices[0].message.content == "echo: hi"


def run_sync(
    side: Contender,
    server: FakeServer,
    *,
    agents: int,
    in_flight: int,
    key: Callable[[int], str],
    stream: bool,
    delay: float = 0.0,
) -> Run:
    """``agents`` agents, each getting a client and sending one request, ``in_flight`` at a time (threads)."""
    base_url = f"{server.url}/v1"
    errors: list[str] = []

    def agent(i: int) -> None:
        try:
            client = side.sync(key(i), base_url)
            try:
                _ask(client, stream)
            finally:
                side.release(client)
        except Exception as exc:
            errors.append(describe_error(exc))

    side.reset()
    server.reset()
    server.delay = delay
    started = time.perf_counter()
    if in_flight == 1:
        for i in range(agents):
            agent(i)
    else:
        with ThreadPoolExecutor(in_flight) as pool:
            list(pool.map(agent, range(agents)))
    seconds = time.perf_counter() - started
    connections = server.connections_opened
    side.reset()
    return Run(seconds, connections, errors)


def run_async(
    side: Contender, server: FakeServer, *, agents: int, in_flight: int, stream: bool, delay: float = 0.0
) -> Run:
    """``agents`` coroutines in one ``asyncio.run()``, ``in_flight`` at a time, one request each."""
    base_url = f"{server.url}/v1"
    errors: list[str] = []

    async def main() -> None:
        gate = asyncio.Semaphore(in_flight)

        async def agent() -> None:
            async with gate:
                try:
                    client = await side.async_("sk-agent", base_url)
                    try:
                        await _aask(client, stream)
                    finally:
                        await side.arelease(client)
                except Exception as exc:
                    errors.append(describe_error(exc))

        await asyncio.gather(*(agent() for _ in range(agents)))
        await side.aclose_shared()

    side.reset()
    server.reset()
    server.delay = delay
    started = time.perf_counter()
    asyncio.run(main())
    seconds = time.perf_counter() - started
    connections = server.connections_opened
    side.reset()
    return Run(seconds, connections, errors)


# ---- rows ---------------------------------------------------------------------------------------

KEYS = "{distinct_keys} distinct api keys, one request each, in sequence, non-streaming"
CONC = "{agents:,} agents (one config), {agents_in_flight} requests in flight (threads), non-streaming"
SYNC_STREAM = "{stream_agents} agents (one config), {agents_in_flight} in flight (threads), sync streams"
ASYNC_STREAM = "{stream_agents} agents (one config), {agents_in_flight} in flight, async streams in one asyncio.run()"
DELAY = "the server answers after {server_delay} s (streams: between the first chunk and the rest)"


def _rows(key: str, what: str, conditions: str, connection_target: str, wall_target: str) -> tuple[Row, Row]:
    return (
        Row(f"{key}_connections", f"{what}: TCP connections", "count", connection_target, f"{conditions}; {COMMON}"),
        Row(f"{key}_wall", f"{what}: wall time", "s", wall_target, f"{conditions}; {COMMON}"),
    )


KEY_ROWS = _rows("distinct_keys", KEYS, KEYS, "<= 2", "<= 0.2x plain SDK")
CONC_ROWS = _rows("agents_concurrent", CONC, f"{CONC}; {DELAY}", "<= {agents_in_flight}", "<= 0.2x plain SDK")
SYNC_STREAM_ROWS = _rows(
    "streams_sync",
    SYNC_STREAM,
    f"{SYNC_STREAM}; {DELAY}; the SDK's sync stream does not return its connection to the pool, "
    "so every contender opens one per stream",
    "(context)",
    "(context)",
)
ASYNC_STREAM_ROWS = _rows(
    "streams_async", ASYNC_STREAM, f"{ASYNC_STREAM}; {DELAY}", "<= {agents_in_flight}", "(context)"
)


def _figures(
    ctx: Context,
    rows: tuple[Row, Row],
    runs: dict[str, list[Run]],
    *,
    connections_ok: Callable[[float], bool] | None,
) -> list[Figure]:
    """The connections row and the wall-time row from each contender's rounds."""
    connections_row, wall_row = ctx.row(rows[0]), ctx.row(rows[1])
    names = [CLIENTREG, PLAIN, ctx.langroid_name()]
    notes = []
    for name in names:
        failed = [e for run in runs.get(name, []) for e in run.errors]
        if failed:
            notes.append(f"{name}: {len(failed)} failed requests (first: {failed[0]})")
    note = "; ".join(notes)

    def sample(name: str, pick: Callable[[Run], float]) -> Sample | None:
        measured = runs.get(name)
        return Sample(tuple(pick(run) for run in measured)) if measured else None

    def baselines(pick: Callable[[Run], float]) -> list[Baseline]:
        found = [Baseline(PLAIN, sample(PLAIN, pick))]
        lr = sample(ctx.langroid_name(), pick)
        found.append(Baseline(ctx.langroid_name(), lr) if lr is not None else ctx.missing_langroid())
        return found

    ours_failed = any(run.errors for run in runs[CLIENTREG])
    error = f"clientreg requests failed: {note}" if ours_failed else ""
    connections = sample(CLIENTREG, lambda r: r.connections)
    wall = sample(CLIENTREG, lambda r: r.seconds)
    plain_wall = sample(PLAIN, lambda r: r.seconds)
    assert connections is not None and wall is not None and plain_wall is not None
    return [
        connections_row.measured(
            connections,
            baselines(lambda r: r.connections),
            passed=None if connections_ok is None else connections_ok(connections.high),
            note=note,
            error=error,
        ),
        wall_row.measured(
            wall,
            baselines(lambda r: r.seconds),
            passed=None if wall_row.target == CONTEXT else wall.median <= 0.2 * plain_wall.median,
            note=note,
            error=error,
        ),
    ]


def _sides(ctx: Context) -> list[Contender]:
    sides: list[Contender] = [Clientreg(), Plain()]
    peer = ctx.langroid()
    if peer is not None:
        sides.append(Langroid(peer))
    return sides


def measure_keys(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    runs: dict[str, list[Run]] = {}
    with FakeServer() as server:
        for side in _sides(ctx):  # warm-up: imports, SSL contexts, server threads
            run_sync(side, server, agents=2, in_flight=1, key=lambda i: f"sk-warm-{i}", stream=False)
        for round_no in range(counts.distinct_rounds):
            for side in _sides(ctx):
                keys = (lambda r: lambda i: f"sk-tenant-{r}-{i:04d}")(round_no)
                run = run_sync(side, server, agents=counts.distinct_keys, in_flight=1, key=keys, stream=False)
                runs.setdefault(side.name, []).append(run)
    return _figures(ctx, KEY_ROWS, runs, connections_ok=lambda c: c <= 2)


def _agents(ctx: Context, rows: tuple[Row, Row], *, agents: int, stream: bool, is_async: bool) -> list[Figure]:
    """``agents`` agents of one config, ``agents_in_flight`` at a time, one request each."""
    counts = ctx.counts
    in_flight = counts.agents_in_flight
    runs: dict[str, list[Run]] = {}
    with FakeServer() as server:
        for side in _sides(ctx):  # warm-up: imports, SSL contexts, server threads
            if is_async:
                run_async(side, server, agents=2, in_flight=2, stream=stream)
            else:
                run_sync(side, server, agents=2, in_flight=1, key=lambda i: "sk-agent", stream=stream)
        for round_no in range(counts.agent_rounds):
            for side in _sides(ctx):
                if side.name == PLAIN and round_no >= counts.agent_plain_rounds:
                    continue
                shape = {"agents": agents, "in_flight": in_flight, "stream": stream, "delay": counts.server_delay}
                if is_async:
                    run = run_async(side, server, **shape)
                else:
                    run = run_sync(side, server, key=lambda i: "sk-agent", **shape)
                runs.setdefault(side.name, []).append(run)
    limit = in_flight if not stream or is_async else None  # a sync stream holds its connection: no bound
    return _figures(ctx, rows, runs, connections_ok=None if limit is None else lambda c: c <= limit)


def measure_concurrent(ctx: Context) -> list[Figure]:
    return _agents(ctx, CONC_ROWS, agents=ctx.counts.agents, stream=False, is_async=False)


def measure_sync_streams(ctx: Context) -> list[Figure]:
    return _agents(ctx, SYNC_STREAM_ROWS, agents=ctx.counts.stream_agents, stream=True, is_async=False)


def measure_async_streams(ctx: Context) -> list[Figure]:
    return _agents(ctx, ASYNC_STREAM_ROWS, agents=ctx.counts.stream_agents, stream=True, is_async=True)


MEASUREMENTS = (
    Measurement("connections", KEY_ROWS, measure_keys),
    Measurement("agents", CONC_ROWS, measure_concurrent),
    Measurement("streams", SYNC_STREAM_ROWS, measure_sync_streams),
    Measurement("streams", ASYNC_STREAM_ROWS, measure_async_streams),
)
