"""Credentials in a client's default_query stay out of the HTTP libraries' and SDKs' logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from registry import Registry, register_key_provider
from registry.credentials import unregister_key_provider
from registry.providers._logging import LOGGERS, QueryCredentialFilter
from schemas import AzureOpenAISettings
from tests.fake_server import FakeServer
from tests.registry_helpers import API_VERSION, PROVIDERS, achat, chat, settings_for

SAS = "sv=2024&sig=Zm9vYmFyYmF6cXV4c2VjcmV0c2lnbmF0dXJlMDEyMzQ1"


class Capture(logging.Handler):
    """Keeps every formatted record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


SECRET_SIG = "Zm9vYmFyYmF6cXV4c2VjcmV0c2lnbmF0dXJlMDEyMzQ1"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_query_credentials_are_fingerprinted_in_request_logs(
    server: FakeServer, captured: Capture, provider: str
) -> None:
    query = {"sig": SECRET_SIG, "code": "functions-key-0123456789abcdef", "tenant": "acme"}
    with Registry(index_path="off") as reg:
        client = reg.get_client(settings_for(provider, server.url, default_query=query))
        chat(client)

        async def main() -> None:
            await achat(reg.get_async_client(settings_for(provider, server.url, default_query=query)))

        asyncio.run(main())
    assert server.requests[0].query["sig"] == SECRET_SIG  # the request itself is unchanged
    request_lines = [line for line in captured.lines if line.startswith("HTTP Request:")]
    assert len(request_lines) == 2  # httpx / httpx2 at INFO, sync and async
    text = "\n".join(captured.lines)
    assert SECRET_SIG not in text
    assert "functions-key-0123456789abcdef" not in text
    assert "tenant=acme" not in text  # by the canonical form's rule: only known-public names in clear
    assert "sig=hmac-sha256" in text and "tenant=hmac-sha256" in text


def test_the_azure_api_version_stays_readable(server: FakeServer, captured: Capture) -> None:
    settings = AzureOpenAISettings(
        api_key="k", azure_endpoint=server.url, azure_deployment="dep", api_version=API_VERSION
    )
    with Registry(index_path="off") as reg:
        chat(reg.get_client(settings))
    assert any(f"api-version={API_VERSION}" in line for line in captured.lines if "HTTP Request:" in line)


def test_the_filter_leaves_other_records_alone() -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "plain %s %d", ("text?x", 3), None)
    assert QueryCredentialFilter().filter(record)
    assert record.getMessage() == "plain text?x 3"
    url_record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("GET", f"https://h/p?{SAS}"), None
    )
    QueryCredentialFilter().filter(url_record)
    assert SECRET_SIG not in url_record.getMessage() and "sig=hmac-sha256" in url_record.getMessage()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_key_providers_key_is_in_no_debug_log(server: FakeServer, provider: str) -> None:
    key = "sk-proj-fromTheVAULT0123456789abcdef"
    register_key_provider("vault-log", lambda: key)
    handler = Capture()
    names = ["openai", "groq", "cerebras", "httpx", "httpx2", "httpcore", "clientreg"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        settings = settings_for(provider, server.url).model_copy(
            update={"api_key": None, "api_key_provider": "vault-log"}
        )
        with Registry(index_path="off") as reg:
            chat(reg.get_client(settings))

            async def main() -> None:
                await achat(reg.get_async_client(settings))

            asyncio.run(main())
    finally:
        unregister_key_provider("vault-log")
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert [r.credential for r in server.requests] == [key, key]
    assert len(handler.lines) >= 8  # the SDKs and HTTP libraries did log, at DEBUG
    assert not any(key in line for line in handler.lines)
