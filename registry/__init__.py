"""Shared LLM SDK clients, one per configuration, keyed by a hash of typed settings.

>>> from registry import get_client
>>> from schemas import OpenAISettings
>>> client = get_client(OpenAISettings(api_key="sk-...", timeout=30))   # openai.OpenAI, shared

Importing this package imports no provider SDK; each is imported on its first build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry._default import (
        default_registry,
        get_async_client,
        get_async_http_client,
        get_client,
        get_http_client,
    )
    from registry._registry import Registry, RegistryStats
    from registry.errors import (
        MissingCredentialsError,
        NoRunningLoopError,
        RegistryClosedError,
        RegistryError,
        UnknownProfileError,
        UnsupportedEventLoopError,
    )
    from registry.wrappers import (
        get_async_cerebras_client,
        get_async_groq_client,
        get_async_openai_client,
        get_cerebras_client,
        get_groq_client,
        get_openai_client,
    )

__all__ = [
    "MissingCredentialsError",
    "NoRunningLoopError",
    "Registry",
    "RegistryClosedError",
    "RegistryError",
    "RegistryStats",
    "UnknownProfileError",
    "UnsupportedEventLoopError",
    "default_registry",
    "get_async_cerebras_client",
    "get_async_client",
    "get_async_groq_client",
    "get_async_http_client",
    "get_async_openai_client",
    "get_cerebras_client",
    "get_client",
    "get_groq_client",
    "get_http_client",
    "get_openai_client",
]

# Where each public name lives. Loaded on first access, so `clientreg history` (which
# imports registry.cli, and so this package) does not pay for pydantic and the registry.
_EXPORTS = {
    "default_registry": "registry._default",
    "get_async_client": "registry._default",
    "get_client": "registry._default",
    "get_http_client": "registry._default",
    "get_async_http_client": "registry._default",
    "Registry": "registry._registry",
    "RegistryStats": "registry._registry",
    "MissingCredentialsError": "registry.errors",
    "NoRunningLoopError": "registry.errors",
    "RegistryClosedError": "registry.errors",
    "RegistryError": "registry.errors",
    "UnknownProfileError": "registry.errors",
    "UnsupportedEventLoopError": "registry.errors",
    "get_async_cerebras_client": "registry.wrappers",
    "get_async_groq_client": "registry.wrappers",
    "get_async_openai_client": "registry.wrappers",
    "get_cerebras_client": "registry.wrappers",
    "get_groq_client": "registry.wrappers",
    "get_openai_client": "registry.wrappers",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
