"""Settings for OpenAI and for OpenAI-compatible servers (vLLM, Ollama, OpenRouter, a proxy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from schemas._base import ProviderSettings


class OpenAISettings(ProviderSettings):
    """Configuration of an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client.

    >>> settings = OpenAISettings(api_key="sk-...", timeout=30)
    >>> client = registry.get_client(settings)

    An OpenAI-compatible server is the same model with its URL:
    ``OpenAISettings(base_url="http://localhost:8000/v1", api_key="none")``.
    """

    env_fallbacks: ClassVar[Mapping[str, str]] = {
        "api_key": "OPENAI_API_KEY",
        "base_url": "OPENAI_BASE_URL",
        "organization": "OPENAI_ORG_ID",
        "project": "OPENAI_PROJECT_ID",
    }

    provider: Literal["openai"] = "openai"
    base_url: str | None = "https://api.openai.com/v1"
    organization: str | None = None
    project: str | None = None
