"""Shared HTTP clients: one connection pool and one SSL context per transport configuration.

The openai SDK speaks ``httpx2`` and the groq and cerebras SDKs speak ``httpx``, so pools are
kept per HTTP library. A pool handed to SDK clients is a subclass whose ``close()`` does
nothing: a user closing one SDK client must not break the others that share its pool. Only
the registry closes pools, through `close_pool` / `aclose_pool`.
"""

from __future__ import annotations

import importlib
import ssl
import threading
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from schemas import ProviderSettings

_ssl_lock = threading.Lock()
_ssl_contexts: dict[tuple[str, bool | str], ssl.SSLContext] = {}


@cache
def http_library(name: str) -> ModuleType:
    """Import and return ``httpx`` or ``httpx2`` (on first use: each costs ~100 ms to import)."""
    return importlib.import_module(name)


@cache
def _shared_classes(library: str) -> tuple[type[Any], type[Any]]:
    """Sync and async client classes of ``library`` whose close() is left to the registry."""
    lib = http_library(library)

    class SharedClient(lib.Client):  # type: ignore[name-defined,misc]
        """A pooled ``Client`` shared by registry clients; ``close()`` is the registry's to call."""

        def close(self) -> None:
            """Do nothing: the registry owns this pool (see docs/lifecycle.md)."""

        def close_shared(self) -> None:
            """Close the pool for real; only the registry calls this."""
            super().close()

    class SharedAsyncClient(lib.AsyncClient):  # type: ignore[name-defined,misc]
        """A pooled ``AsyncClient`` shared by registry clients; ``aclose()`` is the registry's to call."""

        async def aclose(self) -> None:
            """Do nothing: the registry owns this pool (see docs/lifecycle.md)."""

        async def aclose_shared(self) -> None:
            """Close the pool for real; only the registry calls this."""
            await super().aclose()

    SharedClient.__qualname__ = SharedClient.__name__ = f"Shared{lib.Client.__name__}"
    SharedAsyncClient.__qualname__ = SharedAsyncClient.__name__ = f"Shared{lib.AsyncClient.__name__}"
    return SharedClient, SharedAsyncClient


def ssl_context(library: str, verify: bool | str) -> ssl.SSLContext:
    """One SSL context per HTTP library and ``verify`` value, shared by every pool in the process.

    Building one loads the CA bundle (tens of milliseconds); sharing it makes a new pool,
    for instance for a new event loop, cost well under a millisecond.
    """
    key = (library, verify)
    context = _ssl_contexts.get(key)
    if context is not None:
        return context
    with _ssl_lock:
        context = _ssl_contexts.get(key)
        if context is None:
            if isinstance(verify, str):
                path = Path(verify)
                context = (
                    ssl.create_default_context(capath=verify)
                    if path.is_dir()
                    else ssl.create_default_context(cafile=verify)
                )
            else:
                context = http_library(library).create_ssl_context(verify=verify, trust_env=False)
            _ssl_contexts[key] = context
    return context


def new_pool(library: str, settings: ProviderSettings, *, is_async: bool) -> Any:
    """Build a shared HTTP client for ``settings``' transport fields.

    ``trust_env=False``: the pool uses the proxy and CA settings in the config, never
    ``HTTPS_PROXY`` or ``SSL_CERT_FILE`` read behind the registry's back.
    """
    lib = http_library(library)
    sync_cls, async_cls = _shared_classes(library)
    limits = lib.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry,
    )
    cls = async_cls if is_async else sync_cls
    return cls(
        verify=ssl_context(library, settings.verify),
        proxy=None if settings.proxy is None else settings.proxy.get_secret_value(),
        limits=limits,
        # Requests carry the timeout of the SDK client that sends them; this is a fallback.
        timeout=lib.Timeout(600.0, connect=5.0),
        follow_redirects=True,
        trust_env=False,
    )


def close_pool(pool: Any) -> None:
    """Really close a shared sync pool."""
    pool.close_shared()


async def aclose_pool(pool: Any) -> None:
    """Really close a shared async pool."""
    await pool.aclose_shared()


def pool_is_idle(pool: Any) -> bool:
    """True when no request is in flight on ``pool`` (so closing it breaks nothing).

    Reads httpcore's public ``connections`` list; if the structure is not what we know,
    answers False, and the pool is closed at registry close instead.
    """
    try:
        connections = pool._transport._pool.connections
        return all(conn.is_idle() or conn.is_closed() for conn in connections)
    except AttributeError:
        return False
