"""Builds ``cerebras.cloud.sdk.Cerebras`` / ``AsyncCerebras`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import pin_headers, sdk_arguments
from schemas import CerebrasSettings

HTTP_LIBRARY = "httpx"


def build(settings: CerebrasSettings, http_client: Any, *, is_async: bool) -> Any:
    """Return a Cerebras client for ``settings`` sending through ``http_client``.

    ``warm_tcp_connection`` is passed as configured (False by default): the SDK's own
    default sends a request from inside the constructor.
    """
    from cerebras.cloud import sdk

    cls = sdk.AsyncCerebras if is_async else sdk.Cerebras
    client = cls(
        base_url=settings.base_url,
        warm_tcp_connection=settings.warm_tcp_connection,
        **sdk_arguments(settings, "CEREBRAS_API_KEY", HTTP_LIBRARY, http_client),
    )
    pin_headers(client, settings)
    return client
