"""fork from a busy process: no hang, no shared socket, every start method of multiprocessing."""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import registry
from registry import Registry
from tests.fake_server import FakeServer
from tests.registry_helpers import achat, chat, settings_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait_child(pid: int, timeout: float) -> int | None:
    """The child's exit code, or None if it hung (it is then killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_forks_from_a_parent_with_8_busy_threads_never_hang(server: FakeServer, tmp_path: Path, stress: bool) -> None:
    reg = Registry(index_path=tmp_path / "index.sqlite", max_clients=20)  # the recorder's thread runs too
    shared = reg.get_client(settings_for("openai", server.url, key="sk-shared"))
    chat(shared)
    asyncio.run(achat(reg.get_async_client(settings_for("groq", server.url))))  # imports done before forking
    stop = threading.Event()
    keys = iter(range(10**9))

    def busy(n: int) -> None:
        while not stop.is_set():
            settings = settings_for("openai" if n % 2 else "groq", server.url, key=f"sk-{n}-{next(keys) % 60}")
            client = reg.get_client(settings)  # builds, evictions, recorder writes
            if n < 4:
                chat(client)  # requests in flight while forking
            else:
                reg.stats()

    threads = [threading.Thread(target=busy, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    forks = 1000 if stress else 100
    outcomes: list[int | None] = []
    try:
        for i in range(forks):
            pid = os.fork()
            if pid == 0:  # the child: build, request, use the parent's client, leave
                code = 1
                try:
                    mine = reg.get_client(settings_for("openai", server.url, key=f"child-{i}"))
                    code = 0 if chat(mine) == chat(shared) == "echo: hello" else 2
                finally:
                    os._exit(code)
            outcomes.append(_wait_child(pid, timeout=30))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        reg.close()
    assert outcomes.count(None) == 0, "children hung"
    assert outcomes == [0] * forks


def _server_sockets(port: int) -> set[int]:
    """Inodes of this process's open TCP sockets connected to ``port`` on 127.0.0.1."""
    inodes: set[int] = set()
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port:
                inodes.add(int(fields[9]))
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(int(target[8:-1]))
    return inodes & mine


def _loop_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")
@pytest.mark.parametrize("new_loop", _loop_factories())
def test_child_closes_its_copies_of_the_parents_sockets_without_touching_them(
    server: FakeServer, tmp_path: Path, new_loop: Any
) -> None:
    reg = Registry(index_path="off")
    client = reg.get_client(settings_for("openai", server.url))
    chat(client)
    loop = new_loop()  # a loop kept open, with a pooled async connection
    aclient = reg.get_async_client(settings_for("groq", server.url))
    loop.run_until_complete(achat(aclient))
    parents = _server_sockets(server.port)
    assert len(parents) == 2
    report = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            left = _server_sockets(server.port)
            report.write_text(f"{len(left & parents)} {chat(client)}")  # the parent's client works here too
            code = 0
        finally:
            os._exit(code)
    assert _wait_child(pid, timeout=30) == 0
    left, reply = report.read_text().split(" ", 1)
    assert (left, reply) == ("0", "echo: hello")  # the child held none of the parent's sockets open
    connections = {r.connection_id for r in server.requests[:2]}
    chat(client)
    loop.run_until_complete(asyncio.wait_for(achat(aclient), 20))  # hangs if the child unhooked its fd
    assert {r.connection_id for r in server.requests[-2:]} == connections  # the parent's own, undisturbed
    assert server.requests[2].connection_id not in connections  # the child opened its own
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    reg.close()


def _mp_worker(url: str) -> tuple[str, str | None]:
    client = registry.get_client(settings_for("openai", url, key=f"sk-{os.getpid()}"))
    aclient = registry.get_async_client(settings_for("groq", url, key="gsk-mp"))
    return chat(client), asyncio.run(achat(aclient))


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_start_methods_work_with_registry_clients(server: FakeServer, method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    registry.get_client(settings_for("openai", server.url, key="sk-parent")).models.list()  # the parent's own
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        results = pool.map(_mp_worker, [server.url] * 4, chunksize=1)
    assert results == [("echo: hello", "echo: hello")] * 4
    credentials = {r.credential for r in server.requests}
    assert "gsk-mp" in credentials and len(credentials) >= 3


def test_a_recorder_counter_busy_in_another_thread_does_not_hang_the_child(server: FakeServer, tmp_path: Path) -> None:
    reg = Registry(index_path=tmp_path / "index.sqlite")
    settings = settings_for("openai", server.url)
    reg.get_client(settings)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            reg.get_client(settings)
            reg.stats()  # reads every counter

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        for _ in range(50):
            pid = os.fork()
            if pid == 0:
                os._exit(0 if reg.stats().hits >= 0 else 1)
            assert _wait_child(pid, timeout=30) == 0
    finally:
        stop.set()
        thread.join(30)
        reg.close()


def test_child_locks_are_fresh(tmp_path: Path) -> None:
    from registry import _default, pools

    reg = Registry(index_path="off")
    held = [reg._lock, _default._default_lock]
    for lock in held:
        lock.acquire()  # as if another thread held each one at the moment of fork
    try:
        pid = os.fork()
        if pid == 0:
            ok = reg._lock.acquire(timeout=5) and _default._default_lock.acquire(timeout=5)
            ok = ok and pools._states_lock.acquire(timeout=5)
            os._exit(0 if ok else 1)
        assert _wait_child(pid, timeout=30) == 0
    finally:
        for lock in held:
            lock.release()
