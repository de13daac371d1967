"""Builds ``groq.Groq`` / ``groq.AsyncGroq`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import api_key, pin_headers, sdk_arguments
from registry.providers._logging import hide_query_credentials
from registry.providers._shared import seal, shared_class, use_key_source

HTTP_LIBRARY = "httpx"


def build(settings: Any, http_client: Any, *, is_async: bool) -> Any:
    """Return a Groq client for ``settings`` sending through ``http_client``.

    With ``api_key_provider``, the client's own ``api_key`` is empty and each request (each
    retry too) carries the key the provider returns when it is prepared.
    """
    import groq

    hide_query_credentials()
    cls = shared_class(groq.AsyncGroq if is_async else groq.Groq, key_header=True, is_async=is_async)
    key = api_key(settings, "GROQ_API_KEY", is_async=is_async)
    client = cls(
        api_key=key if isinstance(key, str) else "",
        base_url=settings.base_url,
        **sdk_arguments(settings, HTTP_LIBRARY, http_client),
    )
    if not isinstance(key, str):
        use_key_source(client, key)
    pin_headers(client, settings)
    seal(client)
    return client
