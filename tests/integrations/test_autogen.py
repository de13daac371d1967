"""AutoGen model clients on registry clients: one pool for many, every loop, close() keeps the pool, streams."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from registry import Registry
from tests.fake_server import FakeServer
from tests.integrations.conftest import framework
from tests.integrations.helpers import AGENTS, MAX_CONNECTIONS, gather_limited, run_in_threads
from tests.registry_helpers import settings_for

framework("autogen_ext.models.openai")
from autogen_core.models import UserMessage  # noqa: E402
from autogen_ext.models.openai import BaseOpenAIChatCompletionClient, OpenAIChatCompletionClient  # noqa: E402

MODEL = "gpt-4o-mini"  # a name AutoGen knows, so it needs no model_info
PATHS = {"openai": "/v1/chat/completions", "azure_openai": "/openai/deployments/dep/chat/completions"}


def model_client(client: Any) -> Any:
    """The recipe of docs/integrations.md: AutoGen's model client on the registry's async client."""
    return BaseOpenAIChatCompletionClient(client=client, create_args={"model": MODEL})


async def ask(model: Any, text: str) -> str:
    result = await model.create([UserMessage(content=text, source="user")])
    return str(result.content)


@pytest.mark.parametrize("provider", PATHS)
def test_many_model_clients_share_one_pool(reg: Registry, server: FakeServer, provider: str) -> None:
    models = [model_client(reg.get_async_client(settings_for(provider, server.url, f"key-{i}"))) for i in range(AGENTS)]

    async def main() -> list[str]:
        return await gather_limited([lambda m=m, i=i: ask(m, f"model {i}") for i, m in enumerate(models)])

    assert asyncio.run(main()) == [f"echo: model {i}" for i in range(AGENTS)]
    stats = reg.stats()
    assert (stats.live_clients, stats.live_transports) == (AGENTS, 1)
    assert server.connections_opened <= MAX_CONNECTIONS
    assert sorted(r.credential or "" for r in server.requests) == sorted(f"key-{i}" for i in range(AGENTS))
    assert {r.path for r in server.requests} == {PATHS[provider]}


def test_a_model_client_built_at_import_time_runs_on_every_loop(reg: Registry, server: FakeServer) -> None:
    model = model_client(reg.get_async_client(settings_for("openai", server.url, "sk-module")))
    assert [asyncio.run(ask(model, f"run {i}")) for i in range(5)] == [f"echo: run {i}" for i in range(5)]

    async def in_a_thread() -> str:
        return await ask(model, "thread")

    assert run_in_threads(in_a_thread) == ["echo: thread"] * 3


def test_close_leaves_the_shared_client_and_pool_working(reg: Registry, server: FakeServer) -> None:
    # AutoGen's close() closes the SDK client it holds: for a registry client that closes
    # nothing shared (docs/lifecycle.md, ownership), so every other model client keeps working.
    what = settings_for("openai", server.url, "sk-shared")
    client = reg.get_async_client(what)
    first, second = model_client(client), model_client(client)
    # AutoGen's own client class, given the registry's HTTP client: its close() reaches the pool.
    own = OpenAIChatCompletionClient(
        model=MODEL, api_key="sk-own", base_url=f"{server.url}/v1", http_client=reg.get_async_http_client(what)
    )

    async def main() -> list[str]:
        replies = [await ask(first, "first"), await ask(own, "own")]
        await first.close()
        await own.close()
        return [*replies, await ask(second, "second"), await ask(first, "first after close")]

    assert asyncio.run(main()) == ["echo: first", "echo: own", "echo: second", "echo: first after close"]
    assert asyncio.run(ask(second, "next loop")) == "echo: next loop"
    assert [r.credential for r in server.requests] == ["sk-shared", "sk-own", "sk-shared", "sk-shared", "sk-shared"]
    assert server.connections_opened == 2  # one per event loop, shared by both AutoGen clients


def test_streaming(reg: Registry, server: FakeServer) -> None:
    model = model_client(reg.get_async_client(settings_for("openai", server.url, "sk-stream")))

    async def main() -> list[Any]:
        return [item async for item in model.create_stream([UserMessage(content="a b", source="user")])]

    *deltas, result = asyncio.run(main())
    assert deltas == ["echo:", " a", " b"]
    assert result.content == "echo: a b"
    [request] = server.requests
    assert request.body["stream"] is True
