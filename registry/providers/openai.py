"""Builds ``openai.OpenAI`` / ``openai.AsyncOpenAI`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import api_key, pin_headers, timeout
from registry.transports import http_library
from schemas import OpenAISettings

HTTP_LIBRARY = "httpx2"


def build(settings: OpenAISettings, http_client: Any, *, is_async: bool) -> Any:
    """Return an OpenAI client for ``settings`` sending through ``http_client``."""
    import openai

    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    client = cls(
        api_key=api_key(settings, "OPENAI_API_KEY"),
        organization=settings.organization,
        project=settings.project,
        base_url=settings.base_url,
        timeout=timeout(settings, http_library(HTTP_LIBRARY)),
        max_retries=settings.max_retries,
        default_headers=dict(settings.default_headers),
        default_query=dict(settings.default_query),
        http_client=http_client,
    )
    pin(client, settings)
    return client


def pin(client: Any, settings: Any) -> None:
    """Undo what the SDK read from the environment for fields the settings leave unset.

    Passing ``None`` makes the SDK consult ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``,
    ``OPENAI_ADMIN_KEY``, ``OPENAI_WEBHOOK_SECRET`` and ``OPENAI_CUSTOM_HEADERS``; the
    settings already resolved the variables they stand for when they were made.
    """
    client.organization = getattr(settings, "organization", None)
    client.project = getattr(settings, "project", None)
    client.admin_api_key = None
    client.webhook_secret = None
    client._ambient_authorizations = frozenset()
    pin_headers(client, settings)
