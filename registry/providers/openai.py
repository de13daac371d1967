"""Builds ``openai.OpenAI`` / ``openai.AsyncOpenAI`` clients."""

from __future__ import annotations

from typing import Any

from registry.providers._common import api_key, pin_headers, sdk_arguments, sdk_http_library
from registry.providers._logging import hide_query_credentials
from registry.providers._shared import seal, shared_class
from schemas import OpenAISettings

HTTP_LIBRARY = sdk_http_library("openai")
"""``httpx2`` for openai 3, ``httpx`` for openai 1.x and 2.x: the pool is of the library the SDK speaks."""


def build(settings: OpenAISettings, http_client: Any, *, is_async: bool) -> Any:
    """Return an OpenAI client for ``settings`` sending through ``http_client``.

    ``api_key`` is a string, or, with ``api_key_provider``, a function the SDK calls before
    each request (a coroutine function for the async client).
    """
    import openai

    hide_query_credentials()
    cls = shared_class(openai.AsyncOpenAI if is_async else openai.OpenAI)
    endpoint: dict[str, Any] = (
        {"data_residency": settings.data_residency}
        if settings.data_residency is not None
        else _given(base_url=settings.base_url)
    )
    client = cls(
        api_key=api_key(settings, "OPENAI_API_KEY", is_async=is_async),
        **family_arguments(settings),
        **endpoint,
        **sdk_arguments(settings, HTTP_LIBRARY, http_client),
    )
    pin(client, settings)
    seal(client)
    return client


def family_arguments(settings: Any) -> dict[str, Any]:
    """The arguments OpenAI and Azure OpenAI clients share beyond every SDK's.

    ``organization`` and ``project`` always; the newer ones only when set (`pin` clears what
    the SDK then reads from the environment), so an older openai release that lacks one of
    them still builds clients that do not use it.
    """
    return {
        "organization": settings.organization,
        "project": settings.project,
        **_given(
            admin_api_key=_secret(settings.admin_api_key),
            webhook_secret=_secret(settings.webhook_secret),
            websocket_base_url=settings.websocket_base_url,
        ),
    }


def _given(**arguments: Any) -> dict[str, Any]:
    return {name: value for name, value in arguments.items() if value is not None}


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def pin(client: Any, settings: Any) -> None:
    """Undo what the SDK read from the environment for fields the settings leave unset.

    Passing ``None`` makes the SDK consult ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``,
    ``OPENAI_ADMIN_KEY``, ``OPENAI_WEBHOOK_SECRET`` and ``OPENAI_CUSTOM_HEADERS``; the
    settings already resolved the variables they stand for when they were made.
    """
    client.organization = settings.organization
    client.project = settings.project
    client.admin_api_key = _secret(settings.admin_api_key)
    client.webhook_secret = _secret(settings.webhook_secret)
    client._ambient_authorizations = frozenset()
    pin_headers(client, settings)
