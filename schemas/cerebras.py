"""Settings for Cerebras."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field

from schemas._base import ProviderSettings, TimeoutParts

SDK_DEFAULT_TIMEOUT = TimeoutParts(connect=5.0, read=60.0, write=60.0, pool=60.0)
"""``cerebras.cloud.sdk.DEFAULT_TIMEOUT`` (cerebras-cloud-sdk 1.91), the timeout of Cerebras settings left unset."""


class CerebrasSettings(ProviderSettings):
    """Configuration of a ``cerebras.cloud.sdk.Cerebras`` / ``AsyncCerebras`` client.

    >>> settings = CerebrasSettings(api_key_env="CEREBRAS_API_KEY")
    >>> client = registry.get_client(settings)

    ``warm_tcp_connection`` defaults to False, unlike the SDK: the SDK's default sends a
    request from inside the constructor (and the async constructor blocks on a synchronous
    one), so building a client would cost a network round trip, fail offline after a
    one-second wait, and make warm start touch the network.
    """

    env_fallbacks: ClassVar[Mapping[str, str]] = {
        "api_key": "CEREBRAS_API_KEY",
        "base_url": "CEREBRAS_BASE_URL",
    }

    provider: Literal["cerebras"] = "cerebras"
    base_url: str | None = "https://api.cerebras.ai"
    timeout: float | TimeoutParts | None = Field(
        SDK_DEFAULT_TIMEOUT,
        description="Seconds, a TimeoutParts, or None for no timeout; unset: the SDK's own default.",
    )
    max_connections: int = Field(100, gt=0)
    max_keepalive_connections: int = Field(20, ge=0)
    warm_tcp_connection: bool = False
