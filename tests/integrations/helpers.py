"""Helpers shared by the framework tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

AGENTS = 100
"""How many agents or models each framework test builds."""
CONCURRENCY = 4
"""Requests in flight at once when agents run concurrently: the connections a shared pool may need."""


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
