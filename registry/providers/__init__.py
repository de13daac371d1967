"""One builder module per provider, imported on a provider's first build.

Adding a provider is one schema module in ``schemas/``, one builder module here, and one
line in `BUILDERS` (and one in the loader's profile union).
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from typing import Any, Protocol

BUILDERS: dict[str, str] = {
    "openai": "registry.providers.openai",
    "azure_openai": "registry.providers.azure_openai",
    "groq": "registry.providers.groq",
    "cerebras": "registry.providers.cerebras",
}
"""Provider name (``settings.provider``) -> the module that builds its clients."""

SDK_MODULES: dict[str, str] = {
    "openai": "openai",
    "azure_openai": "openai",
    "groq": "groq",
    "cerebras": "cerebras.cloud.sdk",
}
"""Provider name -> the SDK module its builder imports."""

EXTRAS: dict[str, str] = {"openai": "openai", "azure_openai": "openai", "groq": "groq", "cerebras": "cerebras"}
"""Provider name -> the clientreg extra that installs its SDK."""


class SDKNotInstalledError(ModuleNotFoundError):
    """The SDK a provider needs (or the HTTP library it speaks) is not installed; says what to install."""


class Builder(Protocol):
    """What a builder module provides."""

    HTTP_LIBRARY: str
    """The HTTP library the SDK speaks: ``"httpx"`` or ``"httpx2"``."""

    def build(self, settings: Any, http_client: Any, *, is_async: bool) -> Any:
        """Return the SDK client for ``settings`` on ``http_client``, every field passed explicitly."""
        ...


@cache
def builder_for(provider: str) -> Builder:
    """Import and return the builder module of ``provider``.

    Raises `SDKNotInstalledError` (``pip install 'clientreg[groq]'``) when the SDK or the
    HTTP library it speaks is missing, rather than a bare ``No module named 'httpx'`` later.
    """
    try:
        module = BUILDERS[provider]
    except KeyError:
        raise ValueError(f"no builder for provider {provider!r}; known: {', '.join(BUILDERS)}") from None
    builder: Builder = importlib.import_module(module)
    for needed in (SDK_MODULES[provider], builder.HTTP_LIBRARY):
        if not _importable(needed):
            extra = EXTRAS[provider]
            raise SDKNotInstalledError(
                f"the {provider} SDK is not installed ({needed} is missing): pip install 'clientreg[{extra}]'",
                name=needed,
            )
    return builder


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def sdk_installed(provider: str) -> bool:
    """True when the SDK that ``provider`` needs can be imported."""
    return _importable(SDK_MODULES[provider])
