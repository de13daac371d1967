"""Helpers shared by the framework tests."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

AGENTS = 100
"""How many agents or models each framework test builds."""
CONCURRENCY = 4
"""Requests in flight at once when agents run concurrently: the connections a shared pool may need."""
MAX_CONNECTIONS = CONCURRENCY + 2
"""What a shared pool may open for `AGENTS` models at `CONCURRENCY`: one per request in flight, and a
couple more for connections it found closed while idle and replaced (seen once in many runs). A
client per model opens `AGENTS`."""


async def gather_limited(calls: Iterable[Callable[[], Awaitable[T]]], limit: int = CONCURRENCY) -> list[T]:
    """Await every call, at most ``limit`` at a time, in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


def run_in_threads(main: Callable[[], Awaitable[T]], threads: int = 3) -> list[T]:
    """Run ``asyncio.run(main())`` in ``threads`` threads at once (a loop per thread); their results."""
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(index: int) -> None:
        try:
            start.wait(timeout=30)
            results[index] = asyncio.run(main())
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for worker_thread in workers:
        worker_thread.start()
    for worker_thread in workers:
        worker_thread.join(timeout=60)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in workers), "a thread's loop did not finish"
    return results


def is_loopback(host: Any) -> bool:
    """True for a loopback address or ``localhost`` (None: the socket's own default)."""
    if host in (None, "localhost", b"localhost"):
        return True
    try:
        return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Refuses, and remembers, every connection or name lookup beyond loopback."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def check(self, host: Any, what: str) -> None:
        if not is_loopback(host):
            self.refused.append(f"{what} {host!r}")
            raise OSError(f"test network guard: {what} {host!r} refused (tests reach loopback only)")

    def replacements(self) -> dict[tuple[Any, str], Any]:
        """``(owner, name) -> function``: the socket functions that check with this guard first."""
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo

        def connect(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.check(address[0], "connect to")
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.check(address[0], "connect to")
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            self.check(host, "look up")
            return real_getaddrinfo(host, *args, **kwargs)

        return {
            (socket.socket, "connect"): connect,
            (socket.socket, "connect_ex"): connect_ex,
            (socket, "getaddrinfo"): getaddrinfo,
        }
