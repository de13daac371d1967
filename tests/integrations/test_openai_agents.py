"""openai-agents on registry clients: one pool for many agents, every loop, its own close paths, streams."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from registry import Registry
from tests.fake_server import FakeServer
from tests.integrations.conftest import framework
from tests.integrations.helpers import AGENTS, MAX_CONNECTIONS, gather_limited, run_in_threads
from tests.registry_helpers import settings_for

agents = framework("agents")
from agents import (  # noqa: E402
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    OpenAIResponsesModel,
    Runner,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from agents.models import _openai_shared  # noqa: E402

PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}


@pytest.fixture(autouse=True)
def no_tracing_and_no_default_client() -> Iterator[None]:
    # Tracing exports to OpenAI's servers: off, as the recipe says for offline use.
    set_tracing_disabled(True)
    yield
    _openai_shared.set_default_openai_client(None)  # type: ignore[arg-type]  # back to no default client
    set_default_openai_api("responses")


def model(api: str, client: Any) -> Any:
    """The recipe of docs/integrations.md: a model on the registry's async client."""
    if api == "chat":
        return OpenAIChatCompletionsModel("fake-model", openai_client=client)
    return OpenAIResponsesModel("fake-model", openai_client=client)


def agent(api: str, client: Any, name: str = "assistant") -> Any:
    return Agent(name=name, instructions="Answer briefly.", model=model(api, client))


@pytest.mark.parametrize("api", PATHS)
def test_many_agents_share_one_pool_and_a_few_connections(reg: Registry, server: FakeServer, api: str) -> None:
    team = [agent(api, reg.get_async_client(settings_for("openai", server.url, f"key-{i}"))) for i in range(AGENTS)]

    async def main() -> list[Any]:
        return await gather_limited([lambda a=a, i=i: Runner.run(a, f"agent {i}") for i, a in enumerate(team)])

    assert [r.final_output for r in asyncio.run(main())] == [f"echo: agent {i}" for i in range(AGENTS)]
    stats = reg.stats()
    assert (stats.live_clients, stats.live_transports) == (AGENTS, 1)
    assert server.connections_opened <= MAX_CONNECTIONS  # a client per agent would open 100
    assert sorted(r.credential or "" for r in server.requests) == sorted(f"key-{i}" for i in range(AGENTS))
    assert {r.path for r in server.requests} == {PATHS[api]}


@pytest.mark.parametrize("api", PATHS)
def test_an_agent_built_at_import_time_runs_on_every_loop(reg: Registry, server: FakeServer, api: str) -> None:
    assistant = agent(api, reg.get_async_client(settings_for("openai", server.url, "sk-module")))
    for i in range(5):
        assert asyncio.run(Runner.run(assistant, f"run {i}")).final_output == f"echo: run {i}"
    assert Runner.run_sync(assistant, "sync run").final_output == "echo: sync run"

    async def in_a_thread() -> str:
        return str((await Runner.run(assistant, "thread")).final_output)

    assert run_in_threads(in_a_thread) == ["echo: thread"] * 3


@pytest.mark.parametrize("api", PATHS)
def test_the_default_client_recipe(reg: Registry, server: FakeServer, api: str) -> None:
    client = reg.get_async_client(settings_for("openai", server.url, "sk-default"))
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api("chat_completions" if api == "chat" else "responses")
    plain = Agent(name="plain", model="fake-model")  # a model by name: the default client serves it
    for i in range(3):
        assert asyncio.run(Runner.run(plain, f"run {i}")).final_output == f"echo: run {i}"
    assert [(r.path, r.credential) for r in server.requests] == [(PATHS[api], "sk-default")] * 3


@pytest.mark.parametrize("api", PATHS)
def test_closing_models_and_providers_leaves_the_shared_client_open(
    reg: Registry, server: FakeServer, api: str
) -> None:
    client = reg.get_async_client(settings_for("openai", server.url, "sk-shared"))
    first, second = agent(api, client, "first"), agent(api, client, "second")
    provider = OpenAIProvider(openai_client=client, use_responses=api == "responses")

    async def main() -> list[str]:
        by_provider = Agent(name="by-provider", model=provider.get_model("fake-model"))
        replies = [(await Runner.run(first, "first")).final_output, (await Runner.run(by_provider, "p")).final_output]
        await first.model.close()
        await provider.aclose()
        replies += [(await Runner.run(second, "second")).final_output, (await Runner.run(first, "again")).final_output]
        return replies

    assert asyncio.run(main()) == ["echo: first", "echo: p", "echo: second", "echo: again"]
    assert not client.is_closed()
    assert asyncio.run(Runner.run(second, "next loop")).final_output == "echo: next loop"


@pytest.mark.parametrize("api", PATHS)
def test_streaming(reg: Registry, server: FakeServer, api: str) -> None:
    assistant = agent(api, reg.get_async_client(settings_for("openai", server.url, "sk-stream")))

    async def main() -> tuple[list[str], Any]:
        result = Runner.run_streamed(assistant, "one two three")
        deltas = [
            event.data.delta
            async for event in result.stream_events()
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
        ]
        return deltas, result.final_output

    assert asyncio.run(main()) == (["echo:", " one", " two", " three"], "echo: one two three")
    [request] = server.requests
    assert (request.path, request.body["stream"]) == (PATHS[api], True)
