"""Builds ``cerebras.cloud.sdk.Cerebras`` / ``AsyncCerebras`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import api_key, pin_headers, timeout
from registry.transports import http_library
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
        api_key=api_key(settings, "CEREBRAS_API_KEY"),
        base_url=settings.base_url,
        timeout=timeout(settings, http_library(HTTP_LIBRARY)),
        max_retries=settings.max_retries,
        default_headers=dict(settings.default_headers),
        default_query=dict(settings.default_query),
        http_client=http_client,
        warm_tcp_connection=settings.warm_tcp_connection,
    )
    pin_headers(client, settings)
    return client
