"""Builds ``openai.OpenAI`` / ``openai.AsyncOpenAI`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import pin_headers, sdk_arguments
from schemas import OpenAISettings

HTTP_LIBRARY = "httpx2"


def build(settings: OpenAISettings, http_client: Any, *, is_async: bool) -> Any:
    """Return an OpenAI client for ``settings`` sending through ``http_client``."""
    import openai

    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    client = cls(
        organization=settings.organization,
        project=settings.project,
        base_url=settings.base_url,
        **sdk_arguments(settings, "OPENAI_API_KEY", HTTP_LIBRARY, http_client),
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
