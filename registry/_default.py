"""The process-wide default registry behind `get_client` and `get_async_client`."""

from __future__ import annotations

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
    """Return the shared async SDK client for the running event loop (call it from async code).

    >>> client = get_async_client(GroqSettings(api_key_env="GROQ_API_KEY"))  # groq.AsyncGroq
    """
    registry = _default if _default is not None and not _default.closed else default_registry()
    return registry.get_async_client(what)
