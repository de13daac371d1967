"""A shared client behaves as its configuration says, whoever holds it (and whatever they try)."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from typing import Any

import groq
import httpx2
import openai
import pytest
from cerebras.cloud.sdk import AsyncCerebras, Cerebras

from registry import Registry, SharedClientError, register_key_provider
from registry.credentials import unregister_key_provider
from schemas import OpenAISettings
from tests.fake_server import FakeServer
from tests.registry_helpers import PROVIDERS, achat, chat, settings_for

SYNC_TYPES = {"openai": openai.OpenAI, "azure_openai": openai.AzureOpenAI, "groq": groq.Groq, "cerebras": Cerebras}
ASYNC_TYPES = {
    "openai": openai.AsyncOpenAI,
    "azure_openai": openai.AsyncAzureOpenAI,
    "groq": groq.AsyncGroq,
    "cerebras": AsyncCerebras,
}


@pytest.fixture
def reg() -> Iterator[Registry]:
    with Registry(index_path="off") as r:
        yield r


def shared(reg: Registry, provider: str, url: str, **extra: Any) -> Any:
    settings = settings_for(provider, url, key="original-key", max_retries=1, timeout=17.0, **extra)
    return reg.get_client(settings.model_copy(update={"default_headers": {"X-Team": "search"}}))


def assert_original(reg: Registry, provider: str, server: FakeServer, client: Any) -> None:
    """A second holder's requests carry the configured key, header, retries and timeout."""
    second_holder = shared(reg, provider, server.url)
    assert second_holder is client
    server.reset()
    server.fail_next(1, status=500)  # one retry is configured: the request still succeeds
    assert chat(second_holder) == "echo: hello"
    first, retry = server.requests
    for request in (first, retry):
        assert request.credential == "original-key"
        assert request.headers["x-team"] == "search"
        assert request.headers["x-stainless-read-timeout"] == "17.0"
    assert retry.headers["x-stainless-retry-count"] == "1"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_registry_clients_are_the_sdk_classes(reg: Registry, server: FakeServer, provider: str) -> None:
    assert isinstance(reg.get_client(settings_for(provider, server.url)), SYNC_TYPES[provider])

    async def main() -> Any:
        return reg.get_async_client(settings_for(provider, server.url))

    assert isinstance(asyncio.run(main()), ASYNC_TYPES[provider])


ASSIGNMENTS: dict[str, Any] = {
    "api_key": "sk-someone-elses-key-0123456789",
    "base_url": "http://127.0.0.1:9/v1",
    "timeout": 1.0,
    "max_retries": 7,
    "_custom_headers": {"X-Team": "other"},
    "_client": httpx2.Client(),
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_assignments_are_refused_and_change_nothing(
    reg: Registry, server: FakeServer, provider: str, name: str
) -> None:
    client = shared(reg, provider, server.url)
    with pytest.raises(SharedClientError, match=r"with_options\(") as info:
        setattr(client, name, ASSIGNMENTS[name])
    assert isinstance(info.value, AttributeError)  # as a frozen object would raise
    assert "sk-someone-elses-key" not in str(info.value)
    with pytest.raises(SharedClientError):
        delattr(client, name)
    assert_original(reg, provider, server, client)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_headers_and_query_cannot_be_changed_in_place(reg: Registry, server: FakeServer, provider: str) -> None:
    client = shared(reg, provider, server.url)
    with pytest.raises(SharedClientError, match="with_options"):
        client._custom_headers["X-Team"] = "other"
    with pytest.raises(SharedClientError):
        client._custom_headers.update({"X-Extra": "1"})
    with pytest.raises(SharedClientError):
        client._custom_query["tenant"] = "other"
    client.default_headers["X-Team"] = "other"  # a fresh dict each time: nothing shared changes
    assert_original(reg, provider, server, client)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_in_place_changes_that_change_nothing_are_allowed(reg: Registry, server: FakeServer, provider: str) -> None:
    client = shared(reg, provider, server.url)
    with_query = shared(reg, provider, server.url, default_query={"tenant": "t1"})
    query, headers = dict(with_query._custom_query), dict(client._custom_headers)
    # setdefault of a name that is there returns its value (LiteLLM's Azure route does this
    # with api-version); setting or updating a name to its own value changes nothing.
    assert with_query._custom_query.setdefault("tenant", "other") == "t1"
    assert client._custom_headers.setdefault("X-Team", "other") == "search"
    client._custom_headers["X-Team"] = "search"
    client._custom_headers.update({"X-Team": "search"})
    with_query._custom_query |= {"tenant": "t1"}
    # What would change something is still refused: a new name, another value, a removal.
    with pytest.raises(SharedClientError):
        with_query._custom_query.setdefault("region", "eu")
    with pytest.raises(SharedClientError):
        client._custom_headers.update({"X-Team": "search", "X-Extra": "1"})
    with pytest.raises(SharedClientError):
        with_query._custom_query |= {"tenant": "t2"}
    with pytest.raises(SharedClientError):
        with_query._custom_query.pop("tenant")
    with pytest.raises(SharedClientError):
        del client._custom_headers["X-Team"]
    assert (dict(with_query._custom_query), dict(client._custom_headers)) == (query, headers)
    chat(with_query)
    assert server.requests[-1].query["tenant"] == "t1"
    assert "region" not in server.requests[-1].query
    assert_original(reg, provider, server, client)


def test_openai_family_attributes_are_guarded(reg: Registry, server: FakeServer) -> None:
    client = shared(reg, "openai", server.url)
    for name, value in [("organization", "org-x"), ("project", "p"), ("webhook_secret", "w"), ("admin_api_key", "a")]:
        with pytest.raises(SharedClientError, match=name):
            setattr(client, name, value)
    azure = shared(reg, "azure_openai", server.url)
    with pytest.raises(SharedClientError, match="azure_ad_token"):
        azure._azure_ad_token = "token"
    assert chat(client) == chat(azure) == "echo: hello"


def test_assigning_the_value_it_has_changes_nothing_and_is_allowed(reg: Registry, server: FakeServer) -> None:
    client = shared(reg, "openai", server.url)
    client.max_retries = 1  # what LiteLLM does with its default, on a client configured the same
    client.timeout = 17.0
    client.organization = None
    client.base_url = f"{server.url}/v1/"
    assert_original(reg, "openai", server, client)


def test_other_attributes_stay_writable(reg: Registry, server: FakeServer) -> None:
    client = shared(reg, "groq", server.url)
    client.my_tag = "mine"  # not configuration: the SDK's caches and a holder's notes
    assert client.my_tag == "mine"
    assert chat(client) == "echo: hello"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_with_options_is_a_variant_on_the_same_pool(
    reg: Registry, server: FakeServer, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = shared(reg, provider, server.url)
    for variable in ("OPENAI_ORG_ID", "OPENAI_CUSTOM_HEADERS", "GROQ_CUSTOM_HEADERS", "CEREBRAS_CUSTOM_HEADERS"):
        monkeypatch.setenv(variable, "X-From-Env: leaked" if "HEADERS" in variable else "org-from-env")
    variant = client.with_options(max_retries=0, timeout=3.0, default_headers={"X-Variant": "v"})
    assert isinstance(variant, SYNC_TYPES[provider])
    assert variant._client is client._client  # the registry's pool, not a new one
    assert reg.stats().live_clients == 1  # not registered
    variant.max_retries = 2  # the variant belongs to whoever made it
    server.reset()
    chat(variant)
    request = server.requests[-1]
    assert request.credential == "original-key"
    assert request.headers["x-team"] == "search" and request.headers["x-variant"] == "v"
    assert "x-from-env" not in request.headers  # the copy read no environment the client did not
    assert request.headers["x-stainless-read-timeout"] == "3.0"
    if provider in ("openai", "azure_openai"):
        assert variant.organization is None and "openai-organization" not in request.headers
    assert [r.path for r in server.requests if "tcp_warming" in r.path] == []  # Cerebras: no warm-up
    monkeypatch.delenv("OPENAI_ORG_ID")  # else the settings below would be another configuration
    assert_original(reg, provider, server, client)


def test_the_sdks_own_key_refresh_keeps_working(reg: Registry, server: FakeServer) -> None:
    counter = itertools.count(1)
    register_key_provider("rotating", lambda: f"key-{next(counter)}")
    try:
        settings = OpenAISettings(api_key_provider="rotating", base_url=f"{server.url}/v1")
        client = reg.get_client(settings)
        chat(client)
        chat(client)  # openai's _refresh_api_key assigns client.api_key before each request
        assert client.api_key == "key-2"
        variant = client.with_options(timeout=5.0)
        chat(variant)  # a variant keeps asking the same provider
    finally:
        unregister_key_provider("rotating")
    assert [r.credential for r in server.requests] == ["key-1", "key-2", "key-3"]


@pytest.mark.parametrize("provider", ["groq", "cerebras"])
def test_a_string_key_sdk_variant_keeps_the_provider(reg: Registry, server: FakeServer, provider: str) -> None:
    counter = itertools.count(1)
    register_key_provider("rotating", lambda: f"key-{next(counter)}")
    try:
        settings = settings_for(provider, server.url).model_copy(
            update={"api_key": None, "api_key_provider": "rotating"}
        )
        client = reg.get_client(settings)
        chat(client)
        chat(client.with_options(timeout=5.0))
        chat(client.with_options(api_key="static-key"))
    finally:
        unregister_key_provider("rotating")
    assert [r.credential for r in server.requests] == ["key-1", "key-2", "static-key"]


# ---- LiteLLM, the real package --------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm() -> Any:
    # Offline: no model price list fetched from the network on import.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["LITELLM_OFFLINE_MODE"] = "true"
    import litellm

    return litellm


MESSAGES = [{"role": "user", "content": "hello"}]


def test_litellm_completion_with_a_registry_client(reg: Registry, server: FakeServer, litellm: Any) -> None:
    # The default max_retries (2) is what LiteLLM sets: its assignment changes nothing.
    client = reg.get_client(OpenAISettings(api_key="original-key", base_url=f"{server.url}/v1"))
    reply = litellm.completion(model="openai/fake-model", messages=MESSAGES, client=client)
    assert reply.choices[0].message.content == "echo: hello"
    assert client.max_retries == 2
    assert server.requests[-1].credential == "original-key"


def test_litellm_cannot_change_a_shared_client(reg: Registry, server: FakeServer, litellm: Any) -> None:
    client = shared(reg, "openai", server.url)  # max_retries=1: LiteLLM would set 2
    with pytest.raises(Exception, match=r"cannot set 'max_retries' on a registry client.*with_options"):
        litellm.completion(model="openai/fake-model", messages=MESSAGES, client=client)
    with pytest.raises(Exception, match="cannot set 'organization'"):
        litellm.completion(
            model="openai/fake-model", messages=MESSAGES, client=client, max_retries=1, organization="org-x"
        )
    assert_original(reg, "openai", server, client)
    # The two documented ways: say the retries the client has, or give LiteLLM a variant.
    reply = litellm.completion(model="openai/fake-model", messages=MESSAGES, client=client, max_retries=1)
    assert reply.choices[0].message.content == "echo: hello"
    reply = litellm.completion(model="openai/fake-model", messages=MESSAGES, client=client.with_options())
    assert reply.choices[0].message.content == "echo: hello"
    assert_original(reg, "openai", server, client)


def test_litellm_acompletion_with_a_registry_client(server: FakeServer, litellm: Any) -> None:
    settings = settings_for("openai", server.url, key="original-key", max_retries=1, timeout=17.0)

    async def main() -> list[str]:
        async with Registry(index_path="off") as areg:
            client = areg.get_async_client(settings)
            with pytest.raises(Exception, match="cannot set 'max_retries'"):
                await litellm.acompletion(model="openai/fake-model", messages=MESSAGES, client=client)
            replies = []
            for variant in (client, client.with_options()):
                reply = await litellm.acompletion(
                    model="openai/fake-model", messages=MESSAGES, client=variant, max_retries=1
                )
                replies.append(reply.choices[0].message.content)
            assert client.max_retries == 1 and client.timeout == 17.0
            server.reset()
            await achat(areg.get_async_client(settings))
            return replies

    assert asyncio.run(main()) == ["echo: hello"] * 2
    assert server.requests[-1].credential == "original-key"
    assert server.requests[-1].headers["x-stainless-read-timeout"] == "17.0"
