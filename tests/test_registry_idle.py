"""max_idle and prune(): forget unused clients, never break a request or stream in flight; messages."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from typing import Any

import pytest

from registry import Registry, UnknownProfileError
from tests.fake_server import FakeServer
from tests.registry_helpers import MESSAGES, achat, chat, settings_for


def _wait(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_prune_forgets_clients_not_handed_out_since_and_returns_how_many(server: FakeServer) -> None:
    with Registry(index_path="off") as reg:
        old = [reg.get_client(settings_for("openai", server.url, key=f"old-{i}")) for i in range(3)]
        reg.get_async_client(settings_for("groq", server.url, key="old-async"))
        time.sleep(1.0)
        fresh = reg.get_client(settings_for("openai", server.url, key="fresh"))
        assert reg.prune(older_than=3600) == 0
        assert reg.prune(older_than=0.5) == 4  # a bound far from both sides of the pause
        assert reg.stats().live_clients == 1
        assert reg.get_client(settings_for("openai", server.url, key="fresh")) is fresh  # kept
        assert reg.get_client(settings_for("openai", server.url, key="old-0")) is not old[0]  # rebuilt
        assert reg.prune(older_than=0) == 2  # everything not handed out this instant
        counters = reg._counters()
        assert counters.evictions["idle"] == 6 and counters.evictions["lru"] == 0
        assert all(chat(c) == "echo: hello" for c in old)  # forgotten, not closed


def test_max_idle_forgets_unused_clients_in_the_background(server: FakeServer) -> None:
    with Registry(index_path="off", max_idle=0.2) as reg:
        idle = reg.get_client(settings_for("openai", server.url, key="idle"))
        busy_settings = settings_for("openai", server.url, key="busy")
        busy = reg.get_client(busy_settings)
        deadline = time.monotonic() + 10
        while reg.stats().live_clients > 1 and time.monotonic() < deadline:
            assert reg.get_client(busy_settings) is busy  # kept busy: never expires
            time.sleep(0.02)
        assert reg.stats().live_clients == 1
        assert reg._counters().evictions["idle"] == 1
        assert chat(idle) == "echo: hello"


def test_prune_and_max_idle_never_close_a_pool_with_a_stream_in_flight(server: FakeServer) -> None:
    with Registry(index_path="off", max_idle=0.05) as reg:
        client = reg.get_client(settings_for("openai", server.url, key="streamer", keepalive_expiry=3))
        server.delay = 1.0  # the stream stalls after its first chunk
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        chunks = iter(stream)
        first = next(chunks)
        _wait(lambda: reg.stats().live_clients == 0)  # expired by the janitor while streaming
        reg.prune(older_than=0)
        gc.collect()
        assert reg.stats().live_transports == 1  # the pool stays: the client is held, a stream is open
        text = (first.choices[0].delta.content or "") + "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == "echo: hello"
        server.delay = 0
        del client, stream, chunks, first
        gc.collect()
        _wait(lambda: reg.stats().live_transports == 0)


def test_prune_leaves_an_async_stream_on_a_loop_running(server: FakeServer) -> None:
    reg = Registry(index_path="off")

    async def main() -> str:
        client = reg.get_async_client(settings_for("openai", server.url))
        server.delay = 0.5
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        parts = []
        async for chunk in stream:
            if not parts:
                assert reg.prune(older_than=0) == 1
                gc.collect()
            parts.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
        server.delay = 0
        return "".join(parts) + " / " + await achat(client)

    assert asyncio.run(main()) == "echo: hello / echo: hello"
    reg.close()


def test_max_idle_and_prune_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="max_idle"):
        Registry(index_path="off", max_idle=0)
    with Registry(index_path="off") as reg, pytest.raises(ValueError, match="older_than"):
        reg.prune(older_than=-1)


def test_build_hooks_and_counters_for_metrics(server: FakeServer) -> None:
    with Registry(index_path="off", max_clients=1) as reg:
        seen: list[tuple[str, bool, float]] = []
        reg._counters().build_hooks.append(lambda *args: seen.append(args))
        reg.get_client(settings_for("openai", server.url, key="a"))
        reg.get_async_client(settings_for("groq", server.url, key="b"))
        reg.get_client(settings_for("cerebras", server.url, key="c"))  # evicts a
        assert [(p, a) for p, a, _ in seen] == [("openai", False), ("groq", True), ("cerebras", False)]
        assert all(seconds > 0 for _, _, seconds in seen)
        counters = reg._counters()
        assert counters.live_clients == {("groq", "async"): 1, ("cerebras", "sync"): 1}
        assert counters.evictions == {"lru": 1, "idle": 0, "close": 0}
        assert counters.live_pools == 3
    assert reg._counters().evictions["close"] == 2


def test_a_profile_without_a_settings_file_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Registry(index_path="off") as reg, pytest.raises(UnknownProfileError) as info:
        reg.get_client("fast")
    message = str(info.value)
    assert "'fast'" in message and "no settings file" in message
    assert str(tmp_path / "clientreg.toml") in message and "CLIENTREG_SETTINGS" in message


def test_a_key_pasted_as_a_profile_name_is_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    secret = "sk-proj-" + "Zq8" * 16
    with Registry(index_path="off") as reg:
        for get in (reg.get_client, reg.get_async_client):
            with pytest.raises(UnknownProfileError) as info:
                get(secret)
            assert secret not in str(info.value) and secret[:12] not in repr(info.value)
            assert "looks like an API key" in str(info.value)
