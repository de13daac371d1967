"""Builds ``openai.AzureOpenAI`` / ``openai.AsyncAzureOpenAI`` clients."""

from __future__ import annotations

from typing import Any

from registry.errors import MissingCredentialsError
from registry.providers._common import sdk_arguments
from registry.providers.openai import pin
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
    endpoint: dict[str, Any] = (
        {"base_url": settings.base_url}
        if settings.base_url is not None
        else {"azure_endpoint": settings.azure_endpoint, "azure_deployment": settings.azure_deployment}
    )
    cls = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
    client = cls(
        api_version=settings.api_version,
        **endpoint,
        **sdk_arguments(settings, "AZURE_OPENAI_API_KEY", HTTP_LIBRARY, http_client),
    )
    pin(client, settings)
    return client
