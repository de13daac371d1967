"""One builder module per provider, imported on a provider's first build.

Adding a provider is one schema module in ``schemas/``, one builder module here, and one
line in `BUILDERS` (and one in the loader's profile union).
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any, Protocol

BUILDERS: dict[str, str] = {
    "openai": "registry.providers.openai",
    "azure_openai": "registry.providers.azure_openai",
    "groq": "registry.providers.groq",
    "cerebras": "registry.providers.cerebras",
}
"""Provider name (``settings.provider``) -> the module that builds its clients."""


class Builder(Protocol):
    """What a builder module provides."""

    HTTP_LIBRARY: str
    """The HTTP library the SDK speaks: ``"httpx"`` or ``"httpx2"``."""

    def build(self, settings: Any, http_client: Any, *, is_async: bool) -> Any:
        """Return the SDK client for ``settings`` on ``http_client``, every field passed explicitly."""
        ...


@cache
def builder_for(provider: str) -> Builder:
    """Import and return the builder module of ``provider``."""
    try:
        module = BUILDERS[provider]
    except KeyError:
        raise ValueError(f"no builder for provider {provider!r}; known: {', '.join(BUILDERS)}") from None
    builder: Builder = importlib.import_module(module)
    return builder


def sdk_installed(provider: str) -> bool:
    """True when the SDK that ``provider`` needs can be imported."""
    import importlib.util

    top = {"openai": "openai", "azure_openai": "openai", "groq": "groq", "cerebras": "cerebras"}[provider]
    return importlib.util.find_spec(top) is not None
