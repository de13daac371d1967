"""The fake server, proved with the real openai, groq and cerebras SDKs (no mocks)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import groq
import openai
import pytest
from cerebras.cloud.sdk import AsyncCerebras, Cerebras

from tests.fake_server import FakeServer

MESSAGES: Any = [{"role": "user", "content": "hello there"}]
API_VERSION = "2024-06-01"

# provider -> (sync client, async client, chat path on the server); each takes (server url, api key).
SDKS: dict[str, tuple[Callable[[str, str], Any], Callable[[str, str], Any], str]] = {
    "openai": (
        lambda url, key: openai.OpenAI(api_key=key, base_url=f"{url}/v1"),
        lambda url, key: openai.AsyncOpenAI(api_key=key, base_url=f"{url}/v1"),
        "/v1/chat/completions",
    ),
    "azure": (
        lambda url, key: openai.AzureOpenAI(
            api_key=key, azure_endpoint=url, azure_deployment="dep", api_version=API_VERSION
        ),
        lambda url, key: openai.AsyncAzureOpenAI(
            api_key=key, azure_endpoint=url, azure_deployment="dep", api_version=API_VERSION
        ),
        "/openai/deployments/dep/chat/completions",
    ),
    "groq": (
        lambda url, key: groq.Groq(api_key=key, base_url=url),
        lambda url, key: groq.AsyncGroq(api_key=key, base_url=url),
        "/openai/v1/chat/completions",
    ),
    "cerebras": (
        lambda url, key: Cerebras(api_key=key, base_url=url, warm_tcp_connection=False),
        lambda url, key: AsyncCerebras(api_key=key, base_url=url, warm_tcp_connection=False),
        "/v1/chat/completions",
    ),
}


@pytest.mark.parametrize("provider", SDKS)
def test_sync_chat_completion(server: FakeServer, provider: str) -> None:
    make_sync, _, path = SDKS[provider]
    with make_sync(server.url, f"key-{provider}") as client:
        completion = client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    [request] = server.requests
    assert (request.method, request.path, request.credential) == ("POST", path, f"key-{provider}")
    assert request.body["messages"] == MESSAGES
    assert request.query == ({"api-version": API_VERSION} if provider == "azure" else {})
    assert ("api-key" in request.headers) == (provider == "azure")


@pytest.mark.parametrize("provider", SDKS)
def test_async_chat_completion(server: FakeServer, provider: str) -> None:
    _, make_async, path = SDKS[provider]

    async def main() -> Any:
        async with make_async(server.url, f"async-{provider}") as client:
            return await client.chat.completions.create(model="fake-model", messages=MESSAGES)

    completion = asyncio.run(main())
    assert completion.choices[0].message.content == "echo: hello there"
    [request] = server.requests
    assert (request.path, request.credential) == (path, f"async-{provider}")
    assert request.headers["x-stainless-async"].startswith("async")


@pytest.mark.parametrize("provider", SDKS)
def test_streaming(server: FakeServer, provider: str) -> None:
    make_sync, _, _ = SDKS[provider]
    with make_sync(server.url, "sk-stream") as client:
        chunks = list(client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert server.requests[0].body["stream"] is True


def test_async_streaming_with_usage(server: FakeServer) -> None:
    async def main() -> list[Any]:
        async with openai.AsyncOpenAI(api_key="sk", base_url=f"{server.url}/v1") as client:
            stream = await client.chat.completions.create(
                model="fake-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].usage is not None


def test_models(server: FakeServer) -> None:
    with openai.OpenAI(api_key="sk", base_url=f"{server.url}/v1") as client:
        assert [m.id for m in client.models.list()] == ["fake-model"]
        assert client.models.retrieve("gpt-x").id == "gpt-x"
    with groq.Groq(api_key="gk", base_url=server.url) as client:
        assert [m.id for m in client.models.list().data] == ["fake-model"]
    assert [r.path for r in server.requests] == ["/v1/models", "/v1/models/gpt-x", "/openai/v1/models"]


def test_cerebras_tcp_warming_is_recorded(server: FakeServer) -> None:
    with Cerebras(api_key="ck", base_url=server.url, warm_tcp_connection=False):
        pass
    assert server.requests == []
    with Cerebras(api_key="ck", base_url=server.url):  # the SDK's default warms in the constructor
        pass
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/tcp_warming")]


def test_one_client_reuses_one_connection(server: FakeServer) -> None:
    with openai.OpenAI(api_key="sk", base_url=f"{server.url}/v1") as client:
        for _ in range(50):
            client.chat.completions.create(model="fake-model", messages=MESSAGES)
        [connection_id] = {r.connection_id for r in server.requests}
        assert connection_id in server.open_connection_ids
    assert server.connections_opened == 1
    assert len(server.requests) == 50
    _wait_until(lambda: connection_id not in server.open_connection_ids)


def test_ten_clients_open_ten_connections(server: FakeServer) -> None:
    clients = [openai.OpenAI(api_key=f"sk-{i}", base_url=f"{server.url}/v1") for i in range(10)]
    try:
        for client in clients:
            client.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert server.connections_opened == 10
        connection_ids = {r.connection_id for r in server.requests}
        assert len(connection_ids) == 10
        assert connection_ids <= server.open_connection_ids
    finally:
        for client in clients:
            client.close()
    _wait_until(lambda: connection_ids.isdisjoint(server.open_connection_ids))


def test_credentials_recorded_per_request(server: FakeServer) -> None:
    keys = ["sk-a", "sk-b", "sk-c"]
    clients = [openai.OpenAI(api_key=key, base_url=f"{server.url}/v1") for key in keys]
    try:
        for client in clients + clients[::-1]:
            client.chat.completions.create(model="fake-model", messages=MESSAGES)
        # A per-request override on one client is recorded as that request's credential.
        clients[0].with_options(api_key="sk-override").chat.completions.create(model="fake-model", messages=MESSAGES)
    finally:
        for client in clients:
            client.close()
    assert [r.credential for r in server.requests] == [*keys, *keys[::-1], "sk-override"]
    assert all(r.headers["authorization"] == f"Bearer {r.credential}" for r in server.requests)


def test_fail_next_then_retry(server: FakeServer) -> None:
    server.fail_next(2, status=503)
    with openai.OpenAI(api_key="sk", base_url=f"{server.url}/v1", max_retries=2) as client:
        assert client.chat.completions.create(model="fake-model", messages=MESSAGES).choices
    assert len(server.requests) == 3
    server.fail_next(1, status=429)
    with groq.Groq(api_key="gk", base_url=server.url, max_retries=0) as client, pytest.raises(groq.RateLimitError):
        client.chat.completions.create(model="fake-model", messages=MESSAGES)


def test_delay_and_reset(server: FakeServer) -> None:
    server.delay = 0.2
    with openai.OpenAI(api_key="sk", base_url=f"{server.url}/v1") as client:
        start = time.perf_counter()
        client.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert time.perf_counter() - start >= 0.2
        server.fail_next(5)
        server.reset()
        assert (server.delay, server.requests, server.connections_opened) == (0.0, [], 0)
        assert client.chat.completions.create(model="fake-model", messages=MESSAGES).choices  # no failure left
    assert server.connections_opened == 0  # the pooled connection outlived reset()


def test_unknown_path_is_404(server: FakeServer) -> None:
    with (
        openai.OpenAI(api_key="sk", base_url=f"{server.url}/v1", max_retries=0) as client,
        pytest.raises(openai.NotFoundError),
    ):
        client.embeddings.create(model="m", input="x")


def test_many_idle_keep_alive_connections(server: FakeServer) -> None:
    count = 1200
    request = f"GET /v1/models HTTP/1.1\r\nHost: {server.url[7:]}\r\n\r\n".encode()
    earlier = server.open_connection_ids  # left by earlier tests; they can only close
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(count)]
    try:
        for sock in sockets:
            sock.sendall(request)
        for sock in sockets:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert len(server.open_connection_ids - earlier) == count  # all open and idle after their response
        with openai.OpenAI(api_key="sk", base_url=f"{server.url}/v1") as client:
            assert client.chat.completions.create(model="fake-model", messages=MESSAGES).choices
    finally:
        for sock in sockets:
            sock.close()
    assert server.connections_opened == count + 1
    _wait_until(lambda: server.open_connection_ids <= earlier)


def test_close_drops_open_connections() -> None:
    server = FakeServer()
    client = openai.OpenAI(api_key="sk", base_url=f"{server.url}/v1", max_retries=0)
    try:
        client.chat.completions.create(model="fake-model", messages=MESSAGES)
        assert server.open_connections == 1
        server.close()
        _wait_until(lambda: server.open_connections == 0)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="fake-model", messages=MESSAGES)
    finally:
        client.close()


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Server threads notice a closed connection shortly after the client closes it."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_responses_api_reply_and_stream(server: FakeServer) -> None:
    with openai.OpenAI(api_key="sk-responses", base_url=f"{server.url}/v1") as client:
        reply = client.responses.create(model="fake-model", input="hello there")
        assert (reply.status, reply.output_text) == ("completed", "echo: hello there")
        assert reply.usage is not None and reply.usage.total_tokens > 0
        parts = [{"type": "input_text", "text": "streamed words"}]
        with client.responses.stream(model="fake-model", input=[{"role": "user", "content": parts}]) as stream:
            events = list(stream)
            final = stream.get_final_response()
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["echo:", " streamed", " words"]
    assert (events[0].type, events[-1].type) == ("response.created", "response.completed")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "echo: streamed words"
    assert [(r.path, r.credential) for r in server.requests] == [("/v1/responses", "sk-responses")] * 2


FORCED: Any = {
    "messages": [{"role": "user", "content": '{"name": "Ada", "age": 36}'}],
    "tools": [{"type": "function", "function": {"name": "User", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "User"}},
}


@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_a_forced_function_is_called_with_the_last_messages_text(server: FakeServer, provider: str) -> None:
    make_sync, _, _ = SDKS[provider]
    with make_sync(server.url, "sk-tools") as client:
        completion = client.chat.completions.create(model="fake-model", **FORCED)
        [call] = completion.choices[0].message.tool_calls
        assert (call.type, call.function.name) == ("function", "User")
        assert call.function.arguments == '{"name": "Ada", "age": 36}'
        assert (completion.choices[0].message.content, completion.choices[0].finish_reason) == (None, "tool_calls")
        chunks = list(client.chat.completions.create(model="fake-model", stream=True, **FORCED))
    calls = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "User"
    assert calls[0].id
    assert "".join(call.function.arguments or "" for call in calls) == '{"name": "Ada", "age": 36}'
    assert len(calls) > 2  # the arguments arrive in pieces
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert server.requests[0].body["tool_choice"] == FORCED["tool_choice"]
