"""The three ways code gets an OpenAI client for keyword arguments, compared in the production figures.

- clientreg: the drop-in wrappers ``registry.get_openai_client(**kw)`` /
  ``get_async_openai_client(**kw)`` on the process-wide default registry;
- plain SDK: ``openai.OpenAI(**kw)`` / ``openai.AsyncOpenAI(**kw)`` per use, closed after it;
- Langroid: its own ``get_openai_client(**kw)`` / ``get_async_openai_client(**kw)`` from the
  pinned wheel (`benchmarks.peer`).

Every side gets the same arguments: ``api_key``, ``base_url`` and ``timeout``.
"""

from __future__ import annotations

from typing import Any

from benchmarks.peer import NAME as LANGROID

CLIENTREG = "clientreg"
PLAIN = "plain SDK"
TIMEOUT = 30.0


class Contender:
    """How one side gets, releases and forgets clients."""

    name = ""

    def sync(self, api_key: str, base_url: str) -> Any:
        """A sync client for these arguments."""
        raise NotImplementedError

    def release(self, client: Any) -> None:
        """What the side does once an agent is done with its client."""

    async def async_(self, api_key: str, base_url: str) -> Any:
        """An async client for these arguments."""
        raise NotImplementedError

    async def arelease(self, client: Any) -> None:
        """What the side does once an async agent is done with its client."""

    async def aclose_shared(self) -> None:
        """Close shared async clients while their loop still runs (the end of an ``asyncio.run()``)."""

    def reset(self) -> None:
        """Forget every shared client between rounds, so each round starts cold."""


class Clientreg(Contender):
    name = CLIENTREG

    def sync(self, api_key: str, base_url: str) -> Any:
        from registry import get_openai_client

        return get_openai_client(api_key=api_key, base_url=base_url, timeout=TIMEOUT)

    async def async_(self, api_key: str, base_url: str) -> Any:
        from registry import get_async_openai_client

        return get_async_openai_client(api_key=api_key, base_url=base_url, timeout=TIMEOUT)

    def reset(self) -> None:
        from registry import default_registry

        default_registry().close()  # the next call makes a fresh default registry


class Plain(Contender):
    name = PLAIN

    def sync(self, api_key: str, base_url: str) -> Any:
        import openai

        return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=TIMEOUT)

    def release(self, client: Any) -> None:
        client.close()

    async def async_(self, api_key: str, base_url: str) -> Any:
        import openai

        return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=TIMEOUT)

    async def arelease(self, client: Any) -> None:
        await client.close()


class Langroid(Contender):
    name = LANGROID

    def __init__(self, peer: Any) -> None:
        self.peer = peer

    def sync(self, api_key: str, base_url: str) -> Any:
        return self.peer.module.get_openai_client(api_key=api_key, base_url=base_url, timeout=TIMEOUT)

    async def async_(self, api_key: str, base_url: str) -> Any:
        return self.peer.module.get_async_openai_client(api_key=api_key, base_url=base_url, timeout=TIMEOUT)

    async def aclose_shared(self) -> None:
        # Langroid leaves its cached async clients open (its atexit hook skips them); closed here
        # so their sockets do not outlive the loop and spill warnings into the next round.
        await self.peer.aclose_async()

    def reset(self) -> None:
        self.peer.clear()


def by_name(name: str) -> Contender:
    """A contender in this process (Langroid loaded from the cached wheel, never fetched here)."""
    if name == CLIENTREG:
        return Clientreg()
    if name == PLAIN:
        return Plain()
    if name == LANGROID:
        from benchmarks import peer

        return Langroid(peer.load(fetch=False))
    raise ValueError(f"unknown contender {name!r}")
