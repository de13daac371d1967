"""pydantic-ai agents on registry clients: one pool for many agents, every loop, its own close, streams."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from registry import Registry
from schemas import OpenAISettings
from tests.fake_server import FakeServer
from tests.integrations.conftest import framework
from tests.integrations.helpers import AGENTS, MAX_CONNECTIONS, gather_limited, run_in_threads
from tests.registry_helpers import settings_for

framework("pydantic_ai")
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.cerebras import CerebrasModel  # noqa: E402
from pydantic_ai.models.groq import GroqModel  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel  # noqa: E402
from pydantic_ai.providers.azure import AzureProvider  # noqa: E402
from pydantic_ai.providers.cerebras import CerebrasProvider  # noqa: E402
from pydantic_ai.providers.groq import GroqProvider  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

# kind -> the settings the registry client is built from, and the path its requests take.
KINDS = {
    "openai-chat": ("openai", "/v1/chat/completions"),
    "openai-responses": ("openai", "/v1/responses"),
    "azure": ("azure_openai", "/openai/deployments/dep/chat/completions"),
    "groq": ("groq", "/openai/v1/chat/completions"),
    "cerebras": ("openai", "/v1/chat/completions"),  # pydantic-ai's Cerebras speaks the openai SDK
}


def settings(kind: str, server: FakeServer, key: str) -> Any:
    provider, _ = KINDS[kind]
    if kind == "cerebras":
        return OpenAISettings(api_key=key, base_url=f"{server.url}/v1")  # base_url: api.cerebras.ai/v1
    return settings_for(provider, server.url, key)


def model(kind: str, client: Any) -> Any:
    """The recipe of docs/integrations.md for each kind: the registry's async client, injected."""
    if kind == "openai-chat":
        return OpenAIChatModel("fake-model", provider=OpenAIProvider(openai_client=client))
    if kind == "openai-responses":
        return OpenAIResponsesModel("fake-model", provider=OpenAIProvider(openai_client=client))
    if kind == "azure":
        return OpenAIChatModel("dep", provider=AzureProvider(openai_client=client))
    if kind == "groq":
        return GroqModel("llama-3.3-70b-versatile", provider=GroqProvider(groq_client=client))
    return CerebrasModel("llama-3.3-70b", provider=CerebrasProvider(openai_client=client))


@pytest.mark.parametrize("kind", KINDS)
def test_many_agents_share_one_pool_and_a_few_connections(reg: Registry, server: FakeServer, kind: str) -> None:
    # One agent per tenant key: 100 SDK clients, one connection pool.
    agents = [Agent(model(kind, reg.get_async_client(settings(kind, server, f"key-{i}")))) for i in range(AGENTS)]

    async def main() -> list[str]:
        calls = [lambda agent=agent, i=i: agent.run(f"agent {i}") for i, agent in enumerate(agents)]
        return [result.output for result in await gather_limited(calls)]

    assert asyncio.run(main()) == [f"echo: agent {i}" for i in range(AGENTS)]
    stats = reg.stats()
    assert (stats.live_clients, stats.live_transports) == (AGENTS, 1)
    assert server.connections_opened <= MAX_CONNECTIONS  # a client per agent would open 100
    assert sorted(r.credential or "" for r in server.requests) == sorted(f"key-{i}" for i in range(AGENTS))
    assert {r.path for r in server.requests} == {KINDS[kind][1]}


@pytest.mark.parametrize("kind", KINDS)
def test_an_agent_built_at_import_time_runs_on_every_loop(reg: Registry, server: FakeServer, kind: str) -> None:
    # Built outside any event loop, as a module-level agent is.
    client = reg.get_async_client(settings(kind, server, "sk-module"))
    agent = Agent(model(kind, client))
    for i in range(5):
        assert asyncio.run(agent.run(f"run {i}")).output == f"echo: run {i}"
    assert agent.run_sync("sync run").output == "echo: sync run"

    async def in_a_thread() -> str:
        return (await agent.run("thread")).output

    assert run_in_threads(in_a_thread) == ["echo: thread"] * 3
    # pydantic-ai swaps an HTTP client of its own when the loop changes, never an injected one:
    # the registry's client and its loop-safe HTTP client are still in place.
    assert agent.model.client is client  # type: ignore[attr-defined]
    assert client._client is reg.get_async_http_client(settings(kind, server, "sk-module"))
    assert {r.credential for r in server.requests} == {"sk-module"}


@pytest.mark.parametrize("kind", ["openai-chat", "groq"])
def test_leaving_an_agent_context_leaves_the_shared_client_open(
    reg: Registry, server: FakeServer, kind: str
) -> None:
    client = reg.get_async_client(settings(kind, server, "sk-shared"))
    first, second = Agent(model(kind, client)), Agent(model(kind, client))

    async def main() -> list[str]:
        async with first:  # enters and exits the provider: closes what pydantic-ai made, not ours
            inside = (await first.run("inside")).output
        return [inside, (await second.run("after exit")).output, (await first.run("first again")).output]

    assert asyncio.run(main()) == ["echo: inside", "echo: after exit", "echo: first again"]
    assert not client.is_closed()
    assert asyncio.run(second.run("another loop")).output == "echo: another loop"


@pytest.mark.parametrize("kind", KINDS)
def test_streaming(reg: Registry, server: FakeServer, kind: str) -> None:
    agent = Agent(model(kind, reg.get_async_client(settings(kind, server, "sk-stream"))))

    async def main() -> tuple[list[str], str]:
        async with agent.run_stream("one two three") as result:
            deltas = [delta async for delta in result.stream_text(delta=True, debounce_by=None)]
        return deltas, await result.get_output()

    deltas, output = asyncio.run(main())
    assert deltas == ["echo:", " one", " two", " three"]
    assert output == "echo: one two three"
    [request] = server.requests
    assert (request.path, request.body["stream"]) == (KINDS[kind][1], True)
