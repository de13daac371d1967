"""One async client per configuration on every event loop: asyncio.run, threads, hand-made loops, uvloop."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import groq
import httpx
import httpx2
import openai
import pytest

from registry import Registry, get_async_http_client, get_http_client
from tests.fake_server import FakeServer
from tests.registry_helpers import MESSAGES, PROVIDERS, achat, settings_for


@pytest.fixture
def reg() -> Registry:
    registry = Registry(index_path="off")
    yield registry  # type: ignore[misc]
    registry.close()


async def astream(client: Any) -> str:
    """A streamed chat completion; returns the text put together from its chunks."""
    stream = await client.chat.completions.create(model="dep", messages=MESSAGES, stream=True)
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    return "".join(parts)


def _wait_closed(server: FakeServer, ids: set[int]) -> None:
    deadline = time.monotonic() + 10
    while ids & server.open_connection_ids and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not ids & server.open_connection_ids, "connections left open"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_client_taken_outside_a_loop_serves_20_asyncio_runs_with_streams(
    reg: Registry, server: FakeServer, provider: str
) -> None:
    client = reg.get_async_client(settings_for(provider, server.url, key=f"k-{provider}"))

    async def main() -> tuple[str, str]:
        assert reg.get_async_client(settings_for(provider, server.url, key=f"k-{provider}")) is client
        return await achat(client), await astream(client)

    for _ in range(20):
        assert asyncio.run(main()) == ("echo: hello", "echo: hello")
    stats = reg.stats()
    assert (stats.builds, stats.live_clients, stats.event_loops) == (1, 1, 0)
    assert {r.credential for r in server.requests} == {f"k-{provider}"}
    _wait_closed(server, {r.connection_id for r in server.requests})


def test_eight_threads_loops_at_once_use_one_client_with_streams(reg: Registry, server: FakeServer) -> None:
    client = reg.get_async_client(settings_for("openai", server.url))
    together = threading.Barrier(8, timeout=30)
    errors: list[BaseException] = []

    def run() -> None:
        async def main() -> None:
            for _ in range(5):
                assert await achat(client) == "echo: hello"
                assert await astream(client) == "echo: hello"
            await asyncio.to_thread(together.wait)  # every loop has a live pool now
            assert reg.stats().event_loops == 8
            await asyncio.to_thread(together.wait)

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert reg.stats().event_loops == 0
    assert len({r.connection_id for r in server.requests}) == 8
    _wait_closed(server, {r.connection_id for r in server.requests})


def test_hand_made_loop_closed_with_shutdown_asyncgens(reg: Registry, server: FakeServer) -> None:
    client = reg.get_async_client(settings_for("groq", server.url))
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(achat(client)) == "echo: hello"
    assert loop.run_until_complete(achat(client)) == "echo: hello"  # the same loop reuses its pool
    assert reg.stats().event_loops == 1
    loop.run_until_complete(loop.shutdown_asyncgens())  # closes the loop's pools cleanly
    assert reg.stats().event_loops == 0
    loop.close()
    ids = {r.connection_id for r in server.requests}
    assert len(ids) == 1
    _wait_closed(server, ids)


def test_hand_made_loop_closed_without_shutdown_asyncgens(reg: Registry, server: FakeServer) -> None:
    client = reg.get_async_client(settings_for("openai", server.url))
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(astream(client)) == "echo: hello"
    loop.close()  # the loop drops its pools, whose sockets are closed without it
    assert reg.stats().event_loops == 0
    _wait_closed(server, {r.connection_id for r in server.requests})
    assert asyncio.run(achat(client)) == "echo: hello"  # and the client works on the next loop


def test_stopped_loop_dropped_without_close_is_collected_and_its_sockets_closed(
    reg: Registry, server: FakeServer
) -> None:
    client = reg.get_async_client(settings_for("openai", server.url))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(achat(client))
    assert reg.stats().event_loops == 1
    collected = weakref.ref(loop)
    del loop
    with pytest.warns(ResourceWarning):  # asyncio's own warning: the loop was never closed
        gc.collect()
    assert collected() is None  # the registry does not keep a loop alive
    assert reg.stats().event_loops == 0
    _wait_closed(server, {r.connection_id for r in server.requests})


def test_open_descriptors_return_to_baseline_after_1000_loops(reg: Registry, server: FakeServer) -> None:
    client = reg.get_async_client(settings_for("openai", server.url))
    asyncio.run(achat(client))  # first-use imports and lazy setup out of the way
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for i in range(1000):
        if i % 2:
            asyncio.run(achat(client))
        else:  # half of them hand-made and closed without shutting down their generators
            loop = asyncio.new_event_loop()
            loop.run_until_complete(achat(client))
            loop.close()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before
    assert reg.stats().event_loops == 0
    assert reg.stats().builds == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_same_client_object_across_loops_and_threads_for_every_provider(
    reg: Registry, server: FakeServer, provider: str
) -> None:
    settings = settings_for(provider, server.url)
    seen: list[Any] = []

    def in_thread() -> None:
        async def main() -> None:
            client = reg.get_async_client(settings)
            await achat(client)
            seen.append(client)

        asyncio.run(main())

    threads = [threading.Thread(target=in_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    seen.append(reg.get_async_client(settings))
    assert len(seen) == 4 and all(c is seen[0] for c in seen)


def test_shared_http_clients_speak_the_sdks_library(reg: Registry, server: FakeServer) -> None:
    openai_settings = settings_for("openai", server.url)
    groq_settings = settings_for("groq", server.url)
    assert isinstance(reg.get_http_client(openai_settings), httpx2.Client)
    assert isinstance(reg.get_async_http_client(openai_settings), httpx2.AsyncClient)
    assert isinstance(reg.get_http_client(groq_settings), httpx.Client)
    http = reg.get_async_http_client(groq_settings)
    assert isinstance(http, httpx.AsyncClient)
    assert http is reg.get_async_http_client(groq_settings)
    # the SDK client and the raw HTTP client of one transport share one pool
    assert reg.get_async_client(groq_settings)._client is http
    mine = groq.AsyncGroq(api_key="gsk-own", base_url=server.url, http_client=http)

    async def main() -> str:
        reply = await mine.chat.completions.create(model="m", messages=MESSAGES)
        return str(reply.choices[0].message.content)

    assert asyncio.run(main()) == asyncio.run(main()) == "echo: hello"  # usable on every loop
    assert reg.stats().live_transports == 4


def test_module_level_http_clients_use_the_default_registry(server: FakeServer) -> None:
    http = get_async_http_client(settings_for("openai", server.url))
    client = openai.AsyncOpenAI(api_key="sk-own", base_url=f"{server.url}/v1", http_client=http)
    assert asyncio.run(achat(client)) == "echo: hello"
    assert isinstance(get_http_client(settings_for("cerebras", server.url)), httpx.Client)


def test_closing_the_registry_closes_pools_on_running_loops(server: FakeServer) -> None:
    reg = Registry(index_path="off")
    client = reg.get_async_client(settings_for("openai", server.url, max_retries=0))

    async def main() -> None:
        await achat(client)
        await reg.aclose()  # closes this loop's pool, and waits for it
        with pytest.raises(Exception) as info:
            await achat(client)
        assert "closed" in f"{info.value} {info.value.__cause__}"

    asyncio.run(main())
    _wait_closed(server, {r.connection_id for r in server.requests})


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop does not install here (Windows)")
def test_uvloop_loops_share_the_client_and_close_their_pools(reg: Registry, server: FakeServer) -> None:
    import uvloop

    client = reg.get_async_client(settings_for("openai", server.url))
    for _ in range(5):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            assert runner.run(achat(client)) == "echo: hello"
            assert runner.run(astream(client)) == "echo: hello"
    loop = uvloop.new_event_loop()
    loop.run_until_complete(achat(client))
    loop.close()  # without shutdown_asyncgens
    assert reg.stats().event_loops == 0
    assert reg.stats().builds == 1
    _wait_closed(server, {r.connection_id for r in server.requests})


LOOP_SCENARIOS = """
import asyncio, gc, sys, threading
from registry import Registry
from tests.fake_server import FakeServer
from tests.registry_helpers import achat, settings_for

async def stream(client):
    s = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    return [c async for c in s]

with FakeServer() as server, Registry(index_path="off") as reg:
    clients = [reg.get_async_client(settings_for(p, server.url)) for p in ("openai", "groq")]
    async def main():
        for client in clients:
            await achat(client)
            await stream(client)
    for _ in range(5):
        asyncio.run(main())
    threads = [threading.Thread(target=asyncio.run, args=(main(),)) for _ in range(4)]
    [t.start() for t in threads]; [t.join() for t in threads]
    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()  # without shutdown_asyncgens
    if "{uvloop}" == "yes":
        import uvloop
        for _ in range(3):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main())
        # (a uvloop loop closed without shutdown_asyncgens: uvloop refuses to close its
        # transports once closed, and warns as it closes their sockets itself; see lifecycle.md)
    gc.collect()
    print("ok", reg.stats().event_loops)
"""


def test_loop_scenarios_raise_no_resource_warning_under_dev_mode(tmp_path: Path) -> None:
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    script = tmp_path / "loops.py"
    script.write_text(LOOP_SCENARIOS.replace("{uvloop}", "yes" if has_uvloop else "no"))
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "CLIENTREG_INDEX": "off"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 0"
    assert "Warning" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
