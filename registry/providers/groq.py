"""Builds ``groq.Groq`` / ``groq.AsyncGroq`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import api_key, pin_headers, timeout
from registry.transports import http_library
from schemas import GroqSettings

HTTP_LIBRARY = "httpx"


def build(settings: GroqSettings, http_client: Any, *, is_async: bool) -> Any:
    """Return a Groq client for ``settings`` sending through ``http_client``."""
    import groq

    cls = groq.AsyncGroq if is_async else groq.Groq
    client = cls(
        api_key=api_key(settings, "GROQ_API_KEY"),
        base_url=settings.base_url,
        timeout=timeout(settings, http_library(HTTP_LIBRARY)),
        max_retries=settings.max_retries,
        default_headers=dict(settings.default_headers),
        default_query=dict(settings.default_query),
        http_client=http_client,
    )
    pin_headers(client, settings)
    return client
