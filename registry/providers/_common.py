"""Helpers every builder uses: the constructor arguments from settings, and pinning."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from typing import Any

from registry.credentials import AsyncCredentialSource, CredentialSource, Kind, credential_source
from registry.errors import MissingCredentialsError
from schemas import ProviderSettings, TimeoutParts

_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def sdk_http_library(distribution: str) -> str:
    """The HTTP library the installed ``distribution`` speaks: ``"httpx2"`` or ``"httpx"``.

    openai 3 requires ``httpx2`` and builds on it; openai 1.x and 2.x require ``httpx`` (2.x
    takes ``httpx2`` only as an extra). Read from the distribution's requirements, without
    importing it; without metadata it is the newest SDK's, ``httpx2``.
    """
    try:
        requirements = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return "httpx2"
    for requirement in requirements:
        name = _REQUIREMENT_NAME.match(requirement)
        unconditional = "extra" not in requirement.partition(";")[2]
        if name is not None and unconditional and name.group(1).lower() in ("httpx", "httpx2"):
            return name.group(1).lower()
    return "httpx2"


def provider_source(
    settings: ProviderSettings, field: str, kind: Kind, *, is_async: bool
) -> CredentialSource | AsyncCredentialSource | None:
    """The per-request source for the provider named in ``settings.<field>``, or None."""
    reference: str | None = getattr(settings, field, None)
    if reference is None:
        return None
    return credential_source(
        reference, kind=kind, is_async=is_async, field=field, settings_name=type(settings).__name__
    )


def api_key(settings: ProviderSettings, variable: str, *, is_async: bool) -> Any:
    """The key to pass to the SDK: a string, a per-request source, or an error naming what to set.

    ``variable`` is the SDK's key variable, named in the error when no key is set.
    """
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    source = provider_source(settings, "api_key_provider", "key", is_async=is_async)
    if source is not None:
        return source
    name = type(settings).__name__
    if settings.api_key_env is not None:
        raise MissingCredentialsError(
            f"{name} has no api_key: the variable it names, {settings.api_key_env}, is not set"
        )
    raise MissingCredentialsError(
        f"{name} has no api_key: pass api_key=... or api_key_provider=..., or set {variable} "
        "(or name a variable with api_key_env)"
    )


def timeout(settings: ProviderSettings, library: str) -> Any:
    """The settings' timeout as the SDK takes it: seconds, None (no timeout), or a Timeout.

    A phase of None is no limit for that phase, as in ``httpx.Timeout``; an unset timeout is
    the SDK's own default (``Timeout(600, connect=5)`` for openai), spelled out.
    """
    value = settings.timeout
    if isinstance(value, TimeoutParts):
        http = importlib.import_module(library)
        return http.Timeout(connect=value.connect, read=value.read, write=value.write, pool=value.pool)
    return value


def sdk_arguments(settings: ProviderSettings, library: str, http_client: Any) -> dict[str, Any]:
    """The constructor arguments every SDK takes (the key aside), from ``settings``, explicitly."""
    arguments = {
        "timeout": timeout(settings, library),
        "max_retries": settings.max_retries,
        "default_headers": dict(settings.default_headers),
        "default_query": dict(settings.default_query),
        "http_client": http_client,
    }
    if settings.strict_response_validation:
        arguments["_strict_response_validation"] = True
    return arguments


def pin_headers(client: Any, settings: ProviderSettings) -> None:
    """Make the client's default headers exactly the configured ones.

    The SDKs merge ``OPENAI_CUSTOM_HEADERS`` / ``GROQ_CUSTOM_HEADERS`` / ``CEREBRAS_CUSTOM_HEADERS``
    from the environment into them at construction; a registry client behaves as its
    config_hash says, so those are dropped.
    """
    client._custom_headers = dict(settings.default_headers)
