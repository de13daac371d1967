"""Builds ``openai.AzureOpenAI`` / ``openai.AsyncAzureOpenAI`` clients."""

from __future__ import annotations

from typing import Any

from registry.errors import MissingCredentialsError
from registry.providers._common import provider_source, sdk_arguments
from registry.providers._logging import hide_query_credentials
from registry.providers._shared import seal, shared_class
from registry.providers.openai import HTTP_LIBRARY as HTTP_LIBRARY  # the openai SDK's, this builder's too
from registry.providers.openai import family_arguments, pin
from schemas import AzureOpenAISettings


def build(settings: AzureOpenAISettings, http_client: Any, *, is_async: bool) -> Any:
    """Return an Azure OpenAI client for ``settings`` sending through ``http_client``.

    One credential is passed: ``api_key`` (a string, or the function behind
    ``api_key_provider``), ``azure_ad_token``, or the function behind
    ``azure_ad_token_provider``, which the SDK calls before every request.
    """
    import openai

    if settings.api_version is None:
        raise MissingCredentialsError("AzureOpenAISettings has no api_version: pass it, or set OPENAI_API_VERSION")
    if settings.azure_endpoint is None and settings.base_url is None:
        raise MissingCredentialsError(
            "AzureOpenAISettings has no azure_endpoint: pass it (or base_url), or set AZURE_OPENAI_ENDPOINT"
        )
    hide_query_credentials()
    endpoint: dict[str, Any] = (
        {"base_url": settings.base_url}
        if settings.base_url is not None
        else {"azure_endpoint": settings.azure_endpoint, "azure_deployment": settings.azure_deployment}
    )
    cls = shared_class(openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI)
    client = cls(
        api_version=settings.api_version,
        **_credential(settings, is_async=is_async),
        **family_arguments(settings),
        **endpoint,
        **sdk_arguments(settings, HTTP_LIBRARY, http_client),
    )
    pin(client, settings)
    seal(client)
    return client


def _credential(settings: AzureOpenAISettings, *, is_async: bool) -> dict[str, Any]:
    if settings.api_key is not None:
        return {"api_key": settings.api_key.get_secret_value()}
    if settings.azure_ad_token is not None:
        return {"azure_ad_token": settings.azure_ad_token.get_secret_value()}
    key_source = provider_source(settings, "api_key_provider", "key", is_async=is_async)
    if key_source is not None:
        return {"api_key": key_source}
    token_source = provider_source(settings, "azure_ad_token_provider", "token", is_async=is_async)
    if token_source is not None:
        return {"azure_ad_token_provider": token_source}
    if settings.api_key_env is not None:
        raise MissingCredentialsError(
            f"AzureOpenAISettings has no api_key: the variable it names, {settings.api_key_env}, is not set"
        )
    raise MissingCredentialsError(
        "AzureOpenAISettings has no credential: pass api_key, api_key_provider, azure_ad_token or "
        "azure_ad_token_provider, or set AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN"
    )
