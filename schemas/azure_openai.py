"""Settings for Azure OpenAI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from schemas._base import ProviderSettings, _http_url


class AzureOpenAISettings(ProviderSettings):
    """Configuration of an ``openai.AzureOpenAI`` / ``openai.AsyncAzureOpenAI`` client.

    >>> settings = AzureOpenAISettings(azure_endpoint="https://my.openai.azure.com",
    ...                                azure_deployment="gpt-4o", api_version="2024-10-21")

    Give ``azure_endpoint`` (the usual way) or ``base_url`` (a full deployment URL), not both.
    Authentication is by API key.
    """

    env_fallbacks: ClassVar[Mapping[str, str]] = {
        "api_key": "AZURE_OPENAI_API_KEY",
        "azure_endpoint": "AZURE_OPENAI_ENDPOINT",
        "api_version": "OPENAI_API_VERSION",
    }
    # As in the SDK: AZURE_OPENAI_ENDPOINT is read only when no base_url is given.
    env_fallback_unless: ClassVar[Mapping[str, str]] = {"azure_endpoint": "base_url"}

    provider: Literal["azure_openai"] = "azure_openai"
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    base_url: str | None = None

    @field_validator("azure_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @model_validator(mode="after")
    def _one_endpoint(self) -> AzureOpenAISettings:
        if self.azure_endpoint is not None and self.base_url is not None:
            raise PydanticCustomError("azure", "give azure_endpoint or base_url, not both")
        return self
