"""Helpers every builder uses."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from registry.errors import MissingCredentialsError
from schemas import ProviderSettings, TimeoutParts


def api_key(settings: ProviderSettings, variable: str) -> str:
    """The key to pass to the SDK, or an error saying which field or variable to set."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    name = type(settings).__name__
    if settings.api_key_env is not None:
        raise MissingCredentialsError(
            f"{name} has no api_key: the variable it names, {settings.api_key_env}, is not set"
        )
    raise MissingCredentialsError(
        f"{name} has no api_key: pass api_key=..., or set {variable} (or name a variable with api_key_env)"
    )


def timeout(settings: ProviderSettings, http: ModuleType) -> Any:
    """The settings' timeout as the SDK takes it: seconds, or the HTTP library's Timeout."""
    value = settings.timeout
    if isinstance(value, TimeoutParts):
        return http.Timeout(connect=value.connect, read=value.read, write=value.write, pool=value.pool)
    return value


def sdk_arguments(settings: ProviderSettings, variable: str, library: str, http_client: Any) -> dict[str, Any]:
    """The constructor arguments every SDK takes, from ``settings``, passed explicitly.

    ``variable`` is the SDK's key variable, named in the error when no key is set.
    """
    from registry.pools import http_library

    return {
        "api_key": api_key(settings, variable),
        "timeout": timeout(settings, http_library(library)),
        "max_retries": settings.max_retries,
        "default_headers": dict(settings.default_headers),
        "default_query": dict(settings.default_query),
        "http_client": http_client,
    }


def pin_headers(client: Any, settings: ProviderSettings) -> None:
    """Make the client's default headers exactly the configured ones.

    The SDKs merge ``OPENAI_CUSTOM_HEADERS`` / ``GROQ_CUSTOM_HEADERS`` / ``CEREBRAS_CUSTOM_HEADERS``
    from the environment into them at construction; a registry client behaves as its
    config_hash says, so those are dropped.
    """
    client._custom_headers = settings.default_headers.to_dict() if settings.default_headers else {}  # type: ignore[attr-defined]
