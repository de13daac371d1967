"""Settings for OpenAI and for OpenAI-compatible servers (vLLM, Ollama, OpenRouter, a proxy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field

from schemas._openai_family import OpenAIFamilySettings

DataResidency = Literal["global", "us", "eu", "ae", "au", "in", "jp"]
"""The regions the OpenAI SDK's ``data_residency`` selects (openai 3.57)."""


class OpenAISettings(OpenAIFamilySettings):
    """Configuration of an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client.

    >>> settings = OpenAISettings(api_key="sk-...", timeout=30)
    >>> client = registry.get_client(settings)

    An OpenAI-compatible server is the same model with its URL:
    ``OpenAISettings(base_url="http://localhost:8000/v1", api_key="none")``.
    ``data_residency="eu"`` picks a regional endpoint instead of a URL: ``base_url`` is then
    None (the SDK derives the URL) and cannot be given, nor can ``websocket_base_url``.
    """

    env_fallbacks: ClassVar[Mapping[str, str]] = {
        "api_key": "OPENAI_API_KEY",
        "admin_api_key": "OPENAI_ADMIN_KEY",
        "base_url": "OPENAI_BASE_URL",
        "organization": "OPENAI_ORG_ID",
        "project": "OPENAI_PROJECT_ID",
        "webhook_secret": "OPENAI_WEBHOOK_SECRET",
    }
    exclusive_fields: ClassVar[tuple[tuple[str, ...], ...]] = (
        *OpenAIFamilySettings.exclusive_fields,
        ("data_residency", "base_url"),
        ("data_residency", "websocket_base_url"),
    )
    replaced_by: ClassVar[Mapping[str, str]] = {"base_url": "data_residency"}

    provider: Literal["openai"] = "openai"
    base_url: str | None = "https://api.openai.com/v1"
    data_residency: DataResidency | None = Field(
        None, description="A regional endpoint (us, eu, ...); excludes base_url and websocket_base_url."
    )
