"""The per-provider wrappers: a one-line switch for code that builds clients from kwargs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import groq
import httpx
import openai
import pytest
from cerebras.cloud.sdk import AsyncCerebras, Cerebras

import registry
from registry import (
    get_async_cerebras_client,
    get_async_groq_client,
    get_async_openai_client,
    get_cerebras_client,
    get_groq_client,
    get_openai_client,
)
from schemas import OpenAISettings, SettingsError
from tests.fake_server import FakeServer
from tests.registry_helpers import achat, chat


@pytest.fixture(autouse=True)
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    registry.default_registry().close()  # the next call starts a fresh default registry
    yield
    registry.default_registry().close()


def test_equal_kwargs_give_one_shared_client(server: FakeServer) -> None:
    kwargs = {"api_key": "sk-w", "base_url": f"{server.url}/v1", "timeout": 30, "max_retries": 1}
    first = get_openai_client(**kwargs)
    assert type(first) is openai.OpenAI
    assert get_openai_client(**dict(reversed(list(kwargs.items())))) is first
    assert get_openai_client(**kwargs, organization=None) is first  # None means unset, as in the SDK
    assert registry.get_client(OpenAISettings(**kwargs)) is first  # type: ignore[arg-type]
    assert first.timeout == 30 and first.max_retries == 1
    assert chat(first) == "echo: hello"


def test_groq_and_cerebras_wrappers(server: FakeServer) -> None:
    g = get_groq_client(api_key="gsk", base_url=server.url, default_headers={"X-App": "a"})
    c = get_cerebras_client(api_key="csk", base_url=server.url)
    assert type(g) is groq.Groq and type(c) is Cerebras
    assert get_groq_client(api_key="gsk", base_url=server.url, default_headers={"X-App": "a"}) is g
    chat(g)
    chat(c)
    assert [r.credential for r in server.requests] == ["gsk", "csk"]
    assert server.requests[0].headers["x-app"] == "a"


def test_async_wrappers(server: FakeServer) -> None:
    async def main() -> list[str]:
        clients = [
            get_async_openai_client(api_key="a1", base_url=f"{server.url}/v1"),
            get_async_groq_client(api_key="a2", base_url=server.url),
            get_async_cerebras_client(api_key="a3", base_url=server.url),
        ]
        assert type(clients[0]) is openai.AsyncOpenAI
        assert type(clients[1]) is groq.AsyncGroq
        assert type(clients[2]) is AsyncCerebras
        assert get_async_groq_client(api_key="a2", base_url=server.url) is clients[1]
        return [await achat(c) for c in clients]

    assert asyncio.run(main()) == ["echo: hello"] * 3


def test_an_httpx_timeout_is_taken_apart(server: FakeServer) -> None:
    client = get_groq_client(api_key="g", base_url=server.url, timeout=httpx.Timeout(10, connect=2))
    assert client.timeout == httpx.Timeout(10, connect=2)


def test_arguments_the_registry_cannot_represent_are_errors(server: FakeServer) -> None:
    with pytest.raises(TypeError, match="http_client"):
        get_openai_client(api_key="k", http_client=httpx.Client())
    with pytest.raises(TypeError, match="api_key as a string"):
        get_openai_client(api_key=lambda: "k")
    with pytest.raises(SettingsError, match="max_retires"):
        get_openai_client(api_key="k", max_retires=3)
    with pytest.raises(SettingsError, match="timeout"):
        get_groq_client(api_key="k", timeout=-1)


def test_wrapper_errors_hold_no_secret() -> None:
    with pytest.raises(SettingsError) as info:
        get_openai_client(api_key="sk-very-secret-value", base_url="ftp://nowhere", max_retries=-1)
    assert "sk-very-secret-value" not in str(info.value)
    assert "base_url" in str(info.value) and "max_retries" in str(info.value)
