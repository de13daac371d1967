"""Builds ``openai.AzureOpenAI`` / ``openai.AsyncAzureOpenAI`` clients."""

from __future__ import annotations

from typing import Any

from registry.errors import MissingCredentialsError
from registry.providers._common import api_key, timeout
from registry.providers.openai import pin
from registry.transports import http_library
from schemas import AzureOpenAISettings

HTTP_LIBRARY = "httpx2"


def build(settings: AzureOpenAISettings, http_client: Any, *, is_async: bool) -> Any:
    """Return an Azure OpenAI client for ``settings`` sending through ``http_client``."""
    import openai

    if settings.api_version is None:
        raise MissingCredentialsError("AzureOpenAISettings has no api_version: pass it, or set OPENAI_API_VERSION")
    if settings.azure_endpoint is None and settings.base_url is None:
        raise MissingCredentialsError(
            "AzureOpenAISettings has no azure_endpoint: pass it (or base_url), or set AZURE_OPENAI_ENDPOINT"
        )
    cls = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
    kwargs: dict[str, Any] = {}
    if settings.base_url is not None:
        kwargs["base_url"] = settings.base_url
    else:
        kwargs["azure_endpoint"] = settings.azure_endpoint
        kwargs["azure_deployment"] = settings.azure_deployment
    client = cls(
        api_key=api_key(settings, "AZURE_OPENAI_API_KEY"),
        api_version=settings.api_version,
        timeout=timeout(settings, http_library(HTTP_LIBRARY)),
        max_retries=settings.max_retries,
        default_headers=dict(settings.default_headers),
        default_query=dict(settings.default_query),
        http_client=http_client,
        **kwargs,
    )
    pin(client, settings)
    return client
