"""Builds ``cerebras.cloud.sdk.Cerebras`` / ``AsyncCerebras`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import api_key, pin_headers, sdk_arguments
from registry.providers._logging import hide_query_credentials
from registry.providers._shared import seal, shared_class, use_key_source

HTTP_LIBRARY = "httpx"


def build(settings: Any, http_client: Any, *, is_async: bool) -> Any:
    """Return a Cerebras client for ``settings`` sending through ``http_client``.

    ``warm_tcp_connection`` is passed as configured (False by default): the SDK's own
    default sends a request from inside the constructor. With ``api_key_provider``, each
    request carries the key the provider returns when it is prepared (the warm-up request,
    sent from the constructor, carries none).
    """
    from cerebras.cloud import sdk

    hide_query_credentials()
    cls = shared_class(
        sdk.AsyncCerebras if is_async else sdk.Cerebras,
        key_header=True,
        is_async=is_async,
        copy_defaults=(("warm_tcp_connection", False),),
    )
    key = api_key(settings, "CEREBRAS_API_KEY", is_async=is_async)
    client = cls(
        api_key=key if isinstance(key, str) else "",
        base_url=settings.base_url,
        warm_tcp_connection=settings.warm_tcp_connection,
        **sdk_arguments(settings, HTTP_LIBRARY, http_client),
    )
    if not isinstance(key, str):
        use_key_source(client, key)
    pin_headers(client, settings)
    seal(client)
    return client
