"""Settings for Groq."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field

from schemas._base import ProviderSettings, TimeoutParts

SDK_DEFAULT_TIMEOUT = TimeoutParts(connect=5.0, read=60.0, write=60.0, pool=60.0)
"""``groq.DEFAULT_TIMEOUT`` (groq 1.7), the timeout of Groq settings left unset."""


class GroqSettings(ProviderSettings):
    """Configuration of a ``groq.Groq`` / ``groq.AsyncGroq`` client.

    >>> settings = GroqSettings(api_key_env="GROQ_API_KEY", timeout=20)
    >>> client = registry.get_client(settings)
    """

    env_fallbacks: ClassVar[Mapping[str, str]] = {"api_key": "GROQ_API_KEY", "base_url": "GROQ_BASE_URL"}

    provider: Literal["groq"] = "groq"
    base_url: str | None = "https://api.groq.com"
    timeout: float | TimeoutParts | None = Field(
        SDK_DEFAULT_TIMEOUT,
        description="Seconds, a TimeoutParts, or None for no timeout; unset: the SDK's own default.",
    )
    max_connections: int = Field(100, gt=0)
    max_keepalive_connections: int = Field(20, ge=0)
