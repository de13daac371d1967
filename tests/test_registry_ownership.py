"""Pool ownership under churn: no hand-out on a closed pool, close() racing builds, evicted clients keep working."""

from __future__ import annotations

import gc
import itertools
import random
import sys
import threading
import time
from typing import Any

import pytest

import registry.providers.openai as openai_builder
from registry import Registry, RegistryClosedError
from tests.fake_server import FakeServer
from tests.registry_helpers import MESSAGES, chat, settings_for


def _churn(server: FakeServer, *, handouts: int | None, seconds: float, threads: int = 16) -> dict[str, Any]:
    """Threads take clients of 200 configs through max_clients=50, with eviction, held clients
    making requests, and a close() half-way (then a new registry). The 40 hot configs share
    one transport; the 160 cold ones are spread over 40 transports, whose pools close and
    reopen as their clients are evicted and collected.

    Returns the counts: hand-outs, closed-pool hand-outs, unexpected errors, pools seen.
    """
    settings = [
        settings_for("openai", server.url, key=f"sk-{i}", keepalive_expiry=1 + max(0, i - 40) // 4, max_retries=0)
        for i in range(200)
    ]
    current = [Registry(index_path="off", max_clients=50)]
    first = current[0]
    total = itertools.count()
    stop = threading.Event()
    closed_pool_handouts: list[int] = []
    errors: list[BaseException] = []
    pools_of_first: dict[int, Any] = {}
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        held: list[Any] = []
        bad = 0
        try:
            while not stop.is_set():
                reg = current[0]
                # 80% of hand-outs on 40 hot configs (hits), the rest churn through the bound
                s = settings[rnd.randrange(40)] if rnd.random() < 0.8 else settings[rnd.randrange(40, 200)]
                try:
                    client = reg.get_client(s)
                except RegistryClosedError:
                    if not reg.closed:
                        raise
                    continue
                count = next(total)
                http = client._client
                if http.is_closed and not reg.closed:
                    bad += 1
                if reg is first and id(http) not in pools_of_first:
                    with lock:
                        pools_of_first.setdefault(id(http), http)
                if rnd.random() < 0.002:
                    held = [*held[-2:], (client, reg)]  # a few clients held past their eviction
                if count % 5000 == 0 and held and not held[0][1].closed:
                    owner = held[0][1]
                    try:
                        assert chat(held[0][0]) == "echo: hello"  # evicted or not, it works
                    except Exception:
                        if not owner.closed:  # close() may land during the request: that is allowed
                            raise
        except BaseException as exc:
            errors.append(exc)
        finally:
            closed_pool_handouts.append(bad)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads swap far more often: races show up in seconds, not hours
    for thread in workers:
        thread.start()
    started = time.monotonic()

    def reached(fraction: float) -> bool:
        if handouts is not None:
            return int(repr(total)[6:-1]) >= handouts * fraction
        return time.monotonic() - started >= seconds * fraction

    while not reached(0.5) and not errors:
        time.sleep(0.01)
    first.close()  # mid-run, with builds and hand-outs in flight
    current[0] = Registry(index_path="off", max_clients=50)
    while not reached(1.0) and not errors:
        time.sleep(0.01)
    stop.set()
    for thread in workers:
        thread.join(60)
    sys.setswitchinterval(switch_interval)
    current[0].close()
    return {
        "handouts": int(repr(total)[6:-1]),
        "closed_pool_handouts": sum(closed_pool_handouts),
        "errors": errors,
        "first_pools_open": [p for p in pools_of_first.values() if not p.is_closed],
        "evictions": first.stats().evictions,
    }


def test_no_hand_out_is_on_a_closed_pool_under_churn_and_close(server: FakeServer, stress: bool) -> None:
    result = _churn(server, handouts=1_000_000 if stress else None, seconds=3.0)
    assert result["errors"] == []
    assert result["closed_pool_handouts"] == 0
    assert result["first_pools_open"] == []  # every pool of the closed registry is closed, late builds' too
    assert result["evictions"] > 100
    if stress:
        assert result["handouts"] >= 1_000_000


def test_a_build_that_ends_after_close_is_never_handed_out_and_its_pool_is_closed(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = Registry(index_path="off")
    inside, release = threading.Event(), threading.Event()
    pools: list[Any] = []
    real = openai_builder.build

    def build(settings: Any, http_client: Any, *, is_async: bool) -> Any:
        pools.append(http_client)
        inside.set()
        release.wait(30)
        return real(settings, http_client, is_async=is_async)

    monkeypatch.setattr(openai_builder, "build", build)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_try(reg.get_client, settings_for("openai", server.url))))
    thread.start()
    assert inside.wait(30)
    reg.close()
    release.set()
    thread.join(30)
    assert isinstance(outcome[0], RegistryClosedError)
    assert pools[0].is_closed
    assert reg.stats().live_clients == 0


def test_callers_racing_close_get_a_working_client_or_registry_closed_error(server: FakeServer) -> None:
    for _ in range(20):
        reg = Registry(index_path="off", max_clients=4)
        settings = [settings_for("openai", server.url, key=f"k{i}", keepalive_expiry=1 + i) for i in range(8)]
        go = threading.Barrier(5)
        results: list[Any] = []

        threads = [threading.Thread(target=_take, args=(reg, settings, go, results)) for _ in range(4)]
        for thread in threads:
            thread.start()
        go.wait()
        reg.close()
        for thread in threads:
            thread.join(30)
        assert set(results) <= {"open", RegistryClosedError}, set(results)
        assert _try(reg.get_client, settings[0]).__class__ is RegistryClosedError


def test_an_evicted_client_keeps_streaming_and_its_pool_closes_once_it_is_collected(server: FakeServer) -> None:
    with Registry(index_path="off", max_clients=1) as reg:
        client = reg.get_client(settings_for("openai", server.url, key="a", keepalive_expiry=9))
        server.delay = 0.3
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        chunks = iter(stream)
        first = next(chunks)
        reg.get_client(settings_for("openai", server.url, key="b"))  # evicts the streaming client
        gc.collect()
        assert reg.stats().evictions == 1
        assert reg.stats().live_transports == 2  # its pool stays open: the client is still held
        text = (first.choices[0].delta.content or "") + "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == "echo: hello"
        server.delay = 0
        assert chat(client) == "echo: hello"
        del client, stream, chunks, first
        gc.collect()
        assert reg.stats().live_transports == 1  # collected: its pool had no user left and closed


def _take(reg: Registry, settings: list[Any], go: threading.Barrier, results: list[Any]) -> None:
    go.wait()
    for s in settings * 20:
        outcome = _try(reg.get_client, s)
        if isinstance(outcome, BaseException):
            results.append(type(outcome))
        else:  # a client on a closed pool is only possible once close() has begun
            results.append("open" if not outcome._client.is_closed or reg.closed else "closed early")


def _try(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except BaseException as exc:
        return exc
