"""LangChain chat models on registry clients: both sides shared, one pool for many models, every loop, streams."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

import registry
from registry import Registry
from registry.integrations import langchain_kwargs
from schemas import CerebrasSettings, load_settings
from tests.fake_server import FakeServer
from tests.integrations.conftest import framework
from tests.integrations.helpers import AGENTS, CONCURRENCY, gather_limited, run_in_threads
from tests.registry_helpers import settings_for

framework("langchain_openai")
from langchain_openai import AzureChatOpenAI, ChatOpenAI  # noqa: E402

# kind -> (provider of the settings, path of its requests)
KINDS = {
    "ChatOpenAI": ("openai", "/v1/chat/completions"),
    "ChatOpenAI-responses": ("openai", "/v1/responses"),
    "AzureChatOpenAI": ("azure_openai", "/openai/deployments/dep/chat/completions"),
}


def settings(kind: str, server: FakeServer, key: str) -> Any:
    return settings_for(KINDS[kind][0], server.url, key)


def chat_model(kind: str, reg: Registry, what: Any) -> Any:
    """The recipe of docs/integrations.md: the model's four client arguments from the registry."""
    if kind == "AzureChatOpenAI":
        return AzureChatOpenAI(**langchain_kwargs(what, registry=reg))
    responses = kind == "ChatOpenAI-responses"
    return ChatOpenAI(model="fake-model", use_responses_api=responses, **langchain_kwargs(what, registry=reg))


def text(message: Any) -> str:
    return str(message.text)


@pytest.mark.parametrize("kind", KINDS)
def test_both_sides_use_the_registry_clients(reg: Registry, server: FakeServer, kind: str) -> None:
    what = settings(kind, server, "sk-both")
    model = chat_model(kind, reg, what)
    client, async_client = reg.get_client(what), reg.get_async_client(what)
    assert (model.root_client, model.root_async_client) == (client, async_client)
    assert (model.client, model.async_client) == (client.chat.completions, async_client.chat.completions)
    assert text(model.invoke("sync")) == "echo: sync"
    assert text(asyncio.run(model.ainvoke("async"))) == "echo: async"
    assert [(r.path, r.credential) for r in server.requests] == [(KINDS[kind][1], "sk-both")] * 2


def test_given_only_the_sync_clients_langchain_builds_its_own_async_client(
    reg: Registry, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = reg.get_client(settings("ChatOpenAI", server, "sk-registry"))
    # No key in the environment: the model cannot even be built.
    with pytest.raises(openai.OpenAIError, match="OPENAI_API_KEY"):
        ChatOpenAI(model="fake-model", client=client.chat.completions, root_client=client)
    # With one, its async side is a client of its own: another pool, the environment's key, OpenAI's URL.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    model = ChatOpenAI(model="fake-model", client=client.chat.completions, root_client=client)
    assert model.root_async_client is not reg.get_async_client(settings("ChatOpenAI", server, "sk-registry"))
    assert model.root_async_client.api_key == "sk-from-the-environment"
    assert str(model.root_async_client.base_url) == "https://api.openai.com/v1/"


@pytest.mark.parametrize("kind", KINDS)
def test_many_models_share_one_pool_and_a_few_connections(reg: Registry, server: FakeServer, kind: str) -> None:
    models = [chat_model(kind, reg, settings(kind, server, f"key-{i}")) for i in range(AGENTS)]
    assert [text(model.invoke(f"model {i}")) for i, model in enumerate(models)] == [
        f"echo: model {i}" for i in range(AGENTS)
    ]

    async def main() -> list[Any]:
        return await gather_limited([lambda m=m, i=i: m.ainvoke(f"async {i}") for i, m in enumerate(models)])

    assert [text(reply) for reply in asyncio.run(main())] == [f"echo: async {i}" for i in range(AGENTS)]
    stats = reg.stats()
    assert (stats.live_clients, stats.live_transports) == (2 * AGENTS, 2)  # a sync and an async pool
    assert server.connections_opened <= 1 + CONCURRENCY  # a client per model would open 200
    keys = [f"key-{i}" for i in range(AGENTS)]
    assert sorted(r.credential or "" for r in server.requests) == sorted(keys * 2)  # sync and async


@pytest.mark.parametrize("kind", KINDS)
def test_a_model_built_at_import_time_runs_on_every_loop(reg: Registry, server: FakeServer, kind: str) -> None:
    model = chat_model(kind, reg, settings(kind, server, "sk-module"))  # outside any event loop
    for i in range(5):
        assert text(asyncio.run(model.ainvoke(f"run {i}"))) == f"echo: run {i}"

    async def in_a_thread() -> str:
        return text(await model.ainvoke("thread"))

    assert run_in_threads(in_a_thread) == ["echo: thread"] * 3
    assert text(model.invoke("sync")) == "echo: sync"


@pytest.mark.parametrize("kind", KINDS)
def test_streaming(reg: Registry, server: FakeServer, kind: str) -> None:
    model = chat_model(kind, reg, settings(kind, server, "sk-stream"))
    assert "".join(text(chunk) for chunk in model.stream("a b c")) == "echo: a b c"

    async def main() -> str:
        return "".join([text(chunk) async for chunk in model.astream("x y")])

    assert asyncio.run(main()) == "echo: x y"
    assert [r.body["stream"] for r in server.requests] == [True, True]


# ---- langchain_kwargs itself ---------------------------------------------------------------------


def test_groq_gives_chatgroqs_two_arguments(reg: Registry, server: FakeServer) -> None:
    # ChatGroq calls exactly these (it runs for real in .venv-compat: test_pinned_frameworks.py).
    what = settings_for("groq", server.url, "gsk-test")
    arguments = langchain_kwargs(what, registry=reg)
    assert arguments == {
        "client": reg.get_client(what).chat.completions,
        "async_client": reg.get_async_client(what).chat.completions,
    }
    messages = [{"role": "user", "content": "groq"}]
    assert arguments["client"].create(model="llama", messages=messages).choices[0].message.content == "echo: groq"

    async def main() -> str:
        reply = await arguments["async_client"].create(model="llama", messages=messages)
        return str(reply.choices[0].message.content)

    assert asyncio.run(main()) == "echo: groq"
    assert {r.path for r in server.requests} == {"/openai/v1/chat/completions"}


def test_cerebras_settings_are_refused_with_the_way_to_do_it(reg: Registry) -> None:
    with pytest.raises(TypeError, match=r"ChatCerebras is built on the openai SDK.*OpenAISettings\(base_url="):
        langchain_kwargs(CerebrasSettings(api_key="csk-test"), registry=reg)


def test_a_profile_name_and_the_default_registry(server: FakeServer, tmp_path: Any, monkeypatch: Any) -> None:
    settings_file = tmp_path / "clientreg.toml"
    settings_file.write_text(
        f'[profiles.team]\nprovider = "openai"\napi_key = "sk-team"\nbase_url = "{server.url}/v1"\n'
    )
    with Registry(load_settings(settings_file), index_path="off") as named:
        model = ChatOpenAI(model="fake-model", **langchain_kwargs("team", registry=named))
        assert model.root_async_client is named.get_async_client("team")
        assert text(model.invoke("profile")) == "echo: profile"
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    registry.default_registry().close()  # a fresh default registry, closed again after
    try:
        what = settings_for("openai", server.url, "sk-default")
        assert langchain_kwargs(what)["root_client"] is registry.get_client(what)
    finally:
        registry.default_registry().close()
