"""The process-wide default registry behind `get_client`, `get_async_client` and the HTTP clients."""

from __future__ import annotations

import os
import threading
from typing import Any

from registry._registry import Registry
from schemas import ProviderSettings

_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """Return the process-wide registry, creating it on first use (or after it was closed).

    Its profiles come from `schemas.load_settings()` on the first profile lookup, and its
    index location from ``$CLIENTREG_INDEX`` or the settings file's ``[index]`` table.
    """
    global _default
    registry = _default
    if registry is None or registry.closed:
        with _default_lock:
            registry = _default
            if registry is None or registry.closed:
                registry = _default = Registry()
    return registry


def get_client(what: ProviderSettings | str) -> Any:
    """Return the shared sync SDK client for a settings object or a profile name.

    >>> client = get_client(OpenAISettings(api_key="sk-...", timeout=30))   # openai.OpenAI
    >>> client = get_client("fast")                                          # a profile
    """
    registry = _default if _default is not None and not _default.closed else default_registry()
    return registry.get_client(what)


def get_async_client(what: ProviderSettings | str) -> Any:
    """Return the shared async SDK client; take it anywhere, use it on any asyncio loop.

    >>> client = get_async_client(GroqSettings(api_key_env="GROQ_API_KEY"))  # groq.AsyncGroq
    """
    registry = _default if _default is not None and not _default.closed else default_registry()
    return registry.get_async_client(what)


def get_http_client(what: ProviderSettings | str) -> Any:
    """Return the default registry's shared sync HTTP client for ``what``'s transport.

    An ``httpx2.Client`` for OpenAI/Azure settings on openai 3, else an ``httpx.Client``.
    """
    return default_registry().get_http_client(what)


def get_async_http_client(what: ProviderSettings | str) -> Any:
    """Return the default registry's shared async HTTP client, usable on every asyncio loop.

    >>> ChatOpenAI(http_async_client=get_async_http_client(settings), ...)
    """
    return default_registry().get_async_http_client(what)


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()  # a parent thread may have held it while forking


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
