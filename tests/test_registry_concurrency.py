"""Threads, event loops and fork: one build per key, no cross-talk, no unbounded growth."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

import registry.providers.openai as openai_builder
from registry import NoRunningLoopError, Registry, UnsupportedEventLoopError
from tests.fake_server import FakeServer
from tests.registry_helpers import achat, chat, settings_for


@pytest.fixture
def reg() -> Registry:
    registry = Registry(index_path="off")
    yield registry  # type: ignore[misc]
    registry.close()


def _race(count: int, target: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _slow_builds(monkeypatch: pytest.MonkeyPatch, seconds: float, failures: int = 0) -> list[float]:
    """Make openai builds take `seconds` (and fail the first `failures` times); returns build start times."""
    real = openai_builder.build
    starts: list[float] = []
    lock = threading.Lock()

    def build(settings: Any, http_client: Any, *, is_async: bool) -> Any:
        with lock:
            starts.append(time.monotonic())
            fail = len(starts) <= failures
        time.sleep(seconds)
        if fail:
            raise ConnectionError("injected build failure")
        return real(settings, http_client, is_async=is_async)

    monkeypatch.setattr(openai_builder, "build", build)
    return starts


def test_32_threads_racing_on_a_new_key_build_one_client(
    reg: Registry, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = _slow_builds(monkeypatch, 0.05)
    settings = settings_for("openai", server.url, key="sk-race")
    clients = _race(32, lambda i: reg.get_client(settings))
    assert len(starts) == 1
    assert all(client is clients[0] for client in clients)
    assert reg.stats().builds == 1


def test_misses_on_different_keys_build_in_parallel(
    reg: Registry, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.get_client(settings_for("openai", server.url, key="warm-the-pool"))
    real = openai_builder.build
    all_inside = threading.Barrier(4, timeout=10)

    def build(settings: Any, http_client: Any, *, is_async: bool) -> Any:
        all_inside.wait()  # passes only when four builds are in progress at once
        return real(settings, http_client, is_async=is_async)

    monkeypatch.setattr(openai_builder, "build", build)
    clients = _race(4, lambda i: reg.get_client(settings_for("openai", server.url, key=f"sk-{i}")))
    assert not [c for c in clients if isinstance(c, BaseException)]  # a serialising lock breaks the barrier
    assert len({id(c) for c in clients}) == 4


def test_a_failed_build_reaches_every_waiter_and_is_not_cached(
    reg: Registry, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = _slow_builds(monkeypatch, 0.05, failures=1)
    settings = settings_for("openai", server.url, key="sk-flaky")
    results = _race(8, lambda i: reg.get_client(settings))
    assert len(starts) == 1
    assert all(isinstance(r, ConnectionError) for r in results)
    client = reg.get_client(settings)  # the next call tries again
    assert len(starts) == 2
    assert chat(client) == "echo: hello"
    assert reg.stats().builds == 1


def test_twenty_asyncio_runs_share_one_client_and_close_each_loops_pool(reg: Registry, server: FakeServer) -> None:
    settings = settings_for("openai", server.url, key="sk-loop")

    async def main() -> Any:
        client = reg.get_async_client(settings)
        assert client is reg.get_async_client(settings)
        assert await achat(client) == "echo: hello"
        assert reg.stats().event_loops == 1
        return client

    clients = {id(asyncio.run(main())) for _ in range(20)}
    assert len(clients) == 1  # one client object for the configuration, across every loop
    stats = reg.stats()
    assert stats.event_loops == 0  # each loop's pool went with the loop
    assert (stats.builds, stats.live_clients, stats.live_transports) == (1, 1, 1)
    used = {r.connection_id for r in server.requests}
    assert len(used) == 20  # a connection per loop: pools are never shared across loops
    deadline = time.monotonic() + 5
    while used & server.open_connection_ids and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not used & server.open_connection_ids  # each loop closed its pool as it shut down


def test_loops_closed_without_shutdown_close_their_sockets(reg: Registry, server: FakeServer) -> None:
    settings = settings_for("groq", server.url)
    for _ in range(5):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(achat_in_loop(reg, settings))
        loop.close()  # no shutdown_asyncgens: the loop drops its pools, whose sockets close at once
    assert reg.stats().event_loops == 0
    loop = asyncio.new_event_loop()
    loop.run_until_complete(achat_in_loop(reg, settings))
    assert reg.stats().event_loops == 1
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    assert reg.stats().event_loops == 0
    assert reg.stats().builds == 1
    _wait_until_closed(server, {r.connection_id for r in server.requests})


def _wait_until_closed(server: FakeServer, connection_ids: set[int]) -> None:
    deadline = time.monotonic() + 10
    while connection_ids & server.open_connection_ids and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not connection_ids & server.open_connection_ids


async def achat_in_loop(reg: Registry, settings: Any) -> str:
    return await achat(reg.get_async_client(settings))


def test_threads_each_with_their_own_loop_share_one_client(reg: Registry, server: FakeServer) -> None:
    settings = settings_for("openai", server.url)
    all_running = threading.Barrier(8, timeout=30)

    def in_thread(i: int) -> Any:
        async def main() -> Any:
            client = reg.get_async_client(settings)
            await achat(client)
            await asyncio.to_thread(all_running.wait)  # eight loops with live pools at once
            assert reg.stats().event_loops >= 1
            await achat(client)
            return id(client)

        return asyncio.run(main())

    ids = _race(8, in_thread)
    assert not [i for i in ids if isinstance(i, BaseException)], ids
    assert len(set(ids)) == 1  # the same client object in every thread's loop
    assert reg.stats().builds == 1
    assert reg.stats().event_loops == 0
    assert len({r.connection_id for r in server.requests}) == 8  # one pool per loop


def test_async_client_taken_outside_any_loop_works_in_later_loops(reg: Registry, server: FakeServer) -> None:
    client = reg.get_async_client(settings_for("openai", server.url))  # as frameworks do in __init__
    assert client is reg.get_async_client(settings_for("openai", server.url))
    for _ in range(3):
        assert asyncio.run(achat(client)) == "echo: hello"


def test_a_non_asyncio_event_loop_gets_a_clear_error(reg: Registry, server: FakeServer) -> None:
    import sniffio

    token = sniffio.current_async_library_cvar.set("trio")  # what trio (and anyio on trio) report
    try:
        with pytest.raises(UnsupportedEventLoopError, match=r"asyncio.*trio"):
            reg.get_async_client(settings_for("openai", server.url))
    finally:
        sniffio.current_async_library_cvar.reset(token)
    assert NoRunningLoopError is UnsupportedEventLoopError  # the old name still catches it


def test_sync_and_async_clients_are_separate(reg: Registry, server: FakeServer) -> None:
    settings = settings_for("openai", server.url)
    sync_client = reg.get_client(settings)

    async def main() -> Any:
        return reg.get_async_client(settings)

    assert asyncio.run(main()) is not sync_client
    assert reg.get_client(settings) is sync_client


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_builds_its_own_working_client(reg: Registry, server: FakeServer) -> None:
    settings = settings_for("openai", server.url, key="sk-fork")
    parent_client = reg.get_client(settings)
    chat(parent_client)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            child_client = reg.get_client(settings)
            fresh = child_client is not parent_client and reg.stats().builds == 1
            ok = chat(child_client) == "echo: hello"
            code = 0 if fresh and ok else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"\x00"
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert chat(parent_client) == "echo: hello"  # the parent's pool is untouched by the child
    connections = {r.connection_id for r in server.requests}
    assert len(connections) == 2  # the child opened its own connection
