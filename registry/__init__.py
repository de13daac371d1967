"""Shared LLM SDK clients, one per configuration, keyed by a hash of typed settings.

>>> from registry import get_client
>>> from schemas import OpenAISettings
>>> client = get_client(OpenAISettings(api_key="sk-...", timeout=30))   # openai.OpenAI, shared

Importing this package imports no provider SDK; each is imported on its first build.
"""

from __future__ import annotations

from registry._default import default_registry, get_async_client, get_client
from registry._registry import Registry, RegistryStats
from registry.errors import (
    MissingCredentialsError,
    NoRunningLoopError,
    RegistryClosedError,
    RegistryError,
    UnknownProfileError,
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
    "default_registry",
    "get_async_cerebras_client",
    "get_async_client",
    "get_async_groq_client",
    "get_async_openai_client",
    "get_cerebras_client",
    "get_client",
    "get_groq_client",
    "get_openai_client",
]
