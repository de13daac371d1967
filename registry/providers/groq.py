"""Builds ``groq.Groq`` / ``groq.AsyncGroq`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import pin_headers, sdk_arguments
from schemas import GroqSettings

HTTP_LIBRARY = "httpx"


def build(settings: GroqSettings, http_client: Any, *, is_async: bool) -> Any:
    """Return a Groq client for ``settings`` sending through ``http_client``."""
    import groq

    cls = groq.AsyncGroq if is_async else groq.Groq
    client = cls(base_url=settings.base_url, **sdk_arguments(settings, "GROQ_API_KEY", HTTP_LIBRARY, http_client))
    pin_headers(client, settings)
    return client
