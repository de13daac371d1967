"""Settings for Azure OpenAI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from schemas._checks import http_url, plain_text, provider_name
from schemas._openai_family import OpenAIFamilySettings

_CREDENTIALS = ("api_key", "api_key_provider", "azure_ad_token", "azure_ad_token_provider")


class AzureOpenAISettings(OpenAIFamilySettings):
    """Configuration of an ``openai.AzureOpenAI`` / ``openai.AsyncAzureOpenAI`` client.

    >>> settings = AzureOpenAISettings(azure_endpoint="https://my.openai.azure.com",
    ...                                azure_deployment="gpt-4o", api_version="2024-10-21")

    Give ``azure_endpoint`` (the usual way) or ``base_url`` (a full deployment URL), not both.
    Authenticate with one of ``api_key``, ``api_key_provider``, ``azure_ad_token`` or
    ``azure_ad_token_provider`` (the name of a token provider registered in code, or
    ``"package.module:attribute"``); with none given, ``AZURE_OPENAI_AD_TOKEN`` and then
    ``AZURE_OPENAI_API_KEY`` are read, as the SDK does. ``organization`` and ``project`` (sent
    as ``OpenAI-Organization`` / ``OpenAI-Project``) fall back to ``OPENAI_ORG_ID`` and
    ``OPENAI_PROJECT_ID``, as in the SDK.
    """

    # Order matters, as in the SDK: the AD token variable is read first, and a token found
    # there keeps AZURE_OPENAI_API_KEY from being read.
    env_fallbacks: ClassVar[Mapping[str, str]] = {
        "azure_ad_token": "AZURE_OPENAI_AD_TOKEN",
        "api_key": "AZURE_OPENAI_API_KEY",
        "admin_api_key": "OPENAI_ADMIN_KEY",
        "webhook_secret": "OPENAI_WEBHOOK_SECRET",
        "organization": "OPENAI_ORG_ID",
        "project": "OPENAI_PROJECT_ID",
        "azure_endpoint": "AZURE_OPENAI_ENDPOINT",
        "api_version": "OPENAI_API_VERSION",
    }
    # Added to Azure after form 2 was published: written only when set, so every Azure
    # configuration without them keeps the hash it had (docs/config-hash.md).
    canonical_when_set: ClassVar[frozenset[str]] = frozenset({"organization", "project"})
    # As in the SDK: AZURE_OPENAI_ENDPOINT is read only when no base_url is given, and the
    # credential variables only when no credential is given.
    env_fallback_unless: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "azure_endpoint": ("base_url",),
        "azure_ad_token": ("api_key", "api_key_provider", "azure_ad_token_provider", "api_key_env"),
        "api_key": ("azure_ad_token", "azure_ad_token_provider"),
    }
    credential_fields: ClassVar[tuple[str, ...]] = _CREDENTIALS
    exclusive_fields: ClassVar[tuple[tuple[str, ...], ...]] = (
        _CREDENTIALS,
        ("api_key_env", "api_key_provider", "azure_ad_token", "azure_ad_token_provider"),
    )

    provider: Literal["azure_openai"] = "azure_openai"
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    base_url: str | None = None
    azure_ad_token: SecretStr | None = Field(
        None, description="A Microsoft Entra ID token; else AZURE_OPENAI_AD_TOKEN."
    )
    azure_ad_token_provider: str | None = Field(
        None, description="A token provider registered in code, or 'package.module:attribute'."
    )

    @field_validator("azure_ad_token_provider")
    @classmethod
    def _check_token_provider(cls, value: str | None) -> str | None:
        return None if value is None else provider_name(value, "azure_ad_token_provider")

    @field_validator("azure_deployment", "api_version")
    @classmethod
    def _check_plain(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else plain_text(value, str(info.field_name))

    @field_validator("azure_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _one_endpoint(self) -> AzureOpenAISettings:
        if self.azure_endpoint is not None and self.base_url is not None:
            raise PydanticCustomError("azure", "give azure_endpoint or base_url, not both")
        return self
