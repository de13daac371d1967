"""One async client, taken outside any event loop, used across many loops (issue 8).

Frameworks build their async client in a synchronous constructor and use it from whatever loop
runs later: many ``asyncio.run()`` calls in a row, or one loop per worker thread. Each
contender's client runs in a fresh interpreter (so its open sockets can be counted) against a
loopback server in this process (which counts the TCP connections).
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

from benchmarks._context import Context, worker
from benchmarks._figure import Baseline, Figure, Measurement, Row, describe_error
from benchmarks._proc import open_sockets
from benchmarks._stats import Sample
from benchmarks.contenders import CLIENTREG, PLAIN, TIMEOUT
from tests.fake_server import FakeServer

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _take(contender: str, base_url: str) -> Any:
    """The one async client, taken with no event loop running."""
    if contender == CLIENTREG:
        from registry import get_async_client
        from schemas import OpenAISettings

        return get_async_client(OpenAISettings(api_key="sk-loops", base_url=base_url, timeout=TIMEOUT))
    if contender == PLAIN:
        import openai

        return openai.AsyncOpenAI(api_key="sk-loops", base_url=base_url, timeout=TIMEOUT)
    from benchmarks import peer

    return peer.load(fetch=False).module.get_async_openai_client(api_key="sk-loops", base_url=base_url, timeout=TIMEOUT)


async def _use(client: Any) -> None:
    """One chat request and one streamed chat request."""
    reply = await client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert reply.choices[0].message.content == "echo: hi"
    words = []
    async for chunk in await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True):
        if chunk.choices:
            words.append(chunk.choices[0].delta.content or "")
    assert "".join(words) == "echo: hi"


def across_runs(contender: str, base_url: str, runs: str) -> dict[str, Any]:
    """Worker: take one async client outside any loop, then use it in ``runs`` separate ``asyncio.run()``."""
    gc.collect()
    before = open_sockets()
    try:
        client = _take(contender, base_url)
    except Exception as exc:
        return {"error": f"taking the client outside a loop: {describe_error(exc)}"}
    errors: list[str] = []
    for _ in range(int(runs)):
        try:
            asyncio.run(_use(client))
        except Exception as exc:
            errors.append(describe_error(exc))
    gc.collect()
    return {"errors": len(errors), "first_error": errors[0] if errors else "", "sockets_left": open_sockets() - before}


def across_threads(contender: str, base_url: str, threads: str, uses: str) -> dict[str, Any]:
    """Worker: take one async client outside any loop; ``threads`` threads each run their own loop with it."""
    gc.collect()
    before = open_sockets()
    try:
        client = _take(contender, base_url)
    except Exception as exc:
        return {"error": f"taking the client outside a loop: {describe_error(exc)}"}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(int(threads))

    async def many() -> None:
        for _ in range(int(uses)):
            try:
                await _use(client)
            except Exception as exc:
                with lock:
                    errors.append(describe_error(exc))

    def thread() -> None:
        start.wait()
        try:
            asyncio.run(many())
        except Exception as exc:
            with lock:
                errors.append(describe_error(exc))

    running = [threading.Thread(target=thread) for _ in range(int(threads))]
    for t in running:
        t.start()
    for t in running:
        t.join()
    gc.collect()
    return {"errors": len(errors), "first_error": errors[0] if errors else "", "sockets_left": open_sockets() - before}


RUNS = (
    "one async client taken outside any loop, then used in {loop_runs} asyncio.run() calls in a row "
    "(each: one chat request and one streamed one); clientreg: get_async_client(OpenAISettings(...)), "
    "index on (a temp file); plain SDK: one openai.AsyncOpenAI; Langroid: its get_async_openai_client(...); "
    "fresh interpreter per contender"
)
THREADS = (
    "one async client taken outside any loop, used at once from {loop_threads} threads, each running its "
    "own asyncio.run() with {loop_thread_requests} chat requests and {loop_thread_requests} streamed ones in turn; "
    "clientreg: get_async_client(OpenAISettings(...)), index on (a temp file); fresh interpreter per contender"
)
USES = "; a use is one chat request and one streamed one, failed if either raises"
SOCKETS = "; sockets: the worker's open socket fds after the last loop ended and a gc.collect(), minus before"


def _rows(key: str, what: str, conditions: str, connections_target: str) -> tuple[Row, Row, Row]:
    return (
        Row(f"{key}_errors", f"{what}: uses that failed", "count", "0", conditions + USES),
        Row(f"{key}_connections", f"{what}: TCP connections", "count", connections_target, conditions),
        Row(f"{key}_sockets", f"{what}: sockets left open", "count", "0", conditions + SOCKETS),
    )


RUN_ROWS = _rows("async_runs", "one async client, {loop_runs} asyncio.run()", RUNS, "<= {loop_runs} (a pool per loop)")
THREAD_ROWS = _rows(
    "async_threads", "one async client, {loop_threads} threads' loops", THREADS, "<= {loop_threads} (a pool per loop)"
)


def _measure(ctx: Context, rows: tuple[Row, Row, Row], loops: int, function: str, *args: object) -> list[Figure]:
    """Run the worker for each contender; ``loops`` (one pool each) bounds clientreg's connections."""
    errors_row, connections_row, sockets_row = (ctx.row(r) for r in rows)
    results: dict[str, dict[str, Any]] = {}
    names = [CLIENTREG, PLAIN, ctx.langroid_name()]
    env = {"CLIENTREG_INDEX": str(ctx.scratch / "loops-index.sqlite")}
    with FakeServer() as server:
        for name in names:
            if name == ctx.langroid_name() and ctx.langroid() is None:
                continue
            server.reset()
            result = worker(f"loops:{function}", name, f"{server.url}/v1", *args, env=env)
            result["connections"] = server.connections_opened
            results[name] = result

    def baselines(field: str) -> list[Baseline]:
        found = []
        for name in names[1:]:
            result = results.get(name)
            if result is None:
                found.append(ctx.missing_langroid())
            elif "error" in result:
                found.append(Baseline(name, None, result["error"]))
            else:
                found.append(Baseline(name, Sample((float(result[field]),))))
        return found

    def notes() -> str:
        return "; ".join(
            f"{name}: first error {r['first_error']}" for name, r in results.items() if r.get("first_error")
        )

    ours = results[CLIENTREG]
    if "error" in ours:
        return [
            row.measured(None, baselines(field), error=ours["error"])
            for row, field in ((errors_row, "errors"), (connections_row, "connections"), (sockets_row, "sockets_left"))
        ]
    return [
        errors_row.measured(
            Sample((float(ours["errors"]),)), baselines("errors"), passed=ours["errors"] == 0, note=notes()
        ),
        connections_row.measured(
            Sample((float(ours["connections"]),)), baselines("connections"), passed=ours["connections"] <= loops
        ),
        sockets_row.measured(
            Sample((float(ours["sockets_left"]),)), baselines("sockets_left"), passed=ours["sockets_left"] <= 0
        ),
    ]


def measure_runs(ctx: Context) -> list[Figure]:
    return _measure(ctx, RUN_ROWS, ctx.counts.loop_runs, "across_runs", ctx.counts.loop_runs)


def measure_threads(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    return _measure(
        ctx, THREAD_ROWS, counts.loop_threads, "across_threads", counts.loop_threads, counts.loop_thread_requests
    )


MEASUREMENTS = (
    Measurement("loops", RUN_ROWS, measure_runs),
    Measurement("loops", THREAD_ROWS, measure_threads),
)
