"""LiteLLM with registry clients: one pool for many calls, every loop, its own cleanup, streams, the guard."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from registry import Registry
from schemas import OpenAISettings
from tests.fake_server import FakeServer
from tests.integrations.conftest import NetworkGuard, framework
from tests.integrations.helpers import AGENTS, CONCURRENCY, gather_limited, run_in_threads
from tests.registry_helpers import API_VERSION, settings_for

litellm: Any = framework("litellm")

MESSAGES = [{"role": "user", "content": "hello"}]
ROOT = Path(__file__).resolve().parents[2]


def reply_text(response: Any) -> str:
    return str(response.choices[0].message.content)


def test_many_calls_with_registry_clients_share_one_pool(reg: Registry, server: FakeServer) -> None:
    keys = [f"key-{i}" for i in range(AGENTS)]
    clients = [reg.get_client(settings_for("openai", server.url, key)) for key in keys]
    for client in clients:
        assert reply_text(litellm.completion(model="openai/fake-model", messages=MESSAGES, client=client)) == (
            "echo: hello"
        )
    async_clients = [reg.get_async_client(settings_for("openai", server.url, key)) for key in keys]

    async def main() -> list[Any]:
        def call(client: Any) -> Any:
            return lambda: litellm.acompletion(model="openai/fake-model", messages=MESSAGES, client=client)

        return await gather_limited([call(client) for client in async_clients])

    assert [reply_text(r) for r in asyncio.run(main())] == ["echo: hello"] * AGENTS
    stats = reg.stats()
    assert (stats.live_clients, stats.live_transports) == (2 * AGENTS, 2)
    assert server.connections_opened <= 1 + CONCURRENCY
    assert sorted(r.credential or "" for r in server.requests) == sorted(keys * 2)


def test_an_async_client_taken_at_import_time_serves_every_loop(reg: Registry, server: FakeServer) -> None:
    client = reg.get_async_client(settings_for("openai", server.url, "sk-module"))

    async def main() -> str:
        return reply_text(await litellm.acompletion(model="openai/fake-model", messages=MESSAGES, client=client))

    assert [asyncio.run(main()) for _ in range(5)] == ["echo: hello"] * 5
    assert run_in_threads(main) == ["echo: hello"] * 3


def test_streaming(reg: Registry, server: FakeServer) -> None:
    what = settings_for("openai", server.url, "sk-stream")
    messages = [{"role": "user", "content": "a b c"}]
    chunks = litellm.completion(model="openai/fake-model", messages=messages, client=reg.get_client(what), stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "echo: a b c"

    async def main() -> str:
        chunks = await litellm.acompletion(
            model="openai/fake-model", messages=messages, client=reg.get_async_client(what), stream=True
        )
        return "".join([chunk.choices[0].delta.content or "" async for chunk in chunks])

    assert asyncio.run(main()) == "echo: a b c"
    assert [r.body["stream"] for r in server.requests] == [True, True]


def test_a_client_configured_otherwise_the_two_documented_ways(reg: Registry, server: FakeServer) -> None:
    # LiteLLM sets max_retries (2 unless told) on the client it is given; the registry refuses
    # a change to a shared client (docs/lifecycle.md), so tell LiteLLM the client's retries or
    # give it a variant of its own.
    what = settings_for("openai", server.url, "sk-profile", max_retries=0, timeout=12.0)
    client = reg.get_client(what)
    with pytest.raises(Exception, match="cannot set 'max_retries' on a registry client"):
        litellm.completion(model="openai/fake-model", messages=MESSAGES, client=client)
    told = litellm.completion(model="openai/fake-model", messages=MESSAGES, client=client, max_retries=0)
    variant = litellm.completion(model="openai/fake-model", messages=MESSAGES, client=client.with_options())
    assert [reply_text(told), reply_text(variant)] == ["echo: hello"] * 2
    assert (client.max_retries, client.timeout) == (0, 12.0)
    assert {r.credential for r in server.requests} == {"sk-profile"}


def test_litellm_cleanup_leaves_the_registry_pools_open(reg: Registry, server: FakeServer) -> None:
    # LiteLLM keeps Azure clients it is given in its client cache, and its cleanup
    # (close_litellm_async_clients(), also registered at exit) closes each cached client's
    # transport: the registry's shared pool must survive that for every other holder.
    azure = reg.get_async_client(settings_for("azure_openai", server.url, "az-key"))
    for_litellm = azure.with_options()  # the Azure recipe (see below)
    other_holder = reg.get_async_client(settings_for("openai", server.url, "sk-other"))

    async def main() -> list[str]:
        reply = await litellm.acompletion(
            model="azure/dep", messages=MESSAGES, client=for_litellm, api_version=API_VERSION
        )
        cached = litellm.in_memory_llm_clients_cache.cache_dict.values()
        assert any(c is for_litellm for c in cached), "LiteLLM no longer caches clients it is given: see the docs"
        await litellm.close_litellm_async_clients()
        replies = [reply_text(reply)]
        for holder in (other_holder, azure, for_litellm):
            replies.append(reply_text(await holder.chat.completions.create(model="dep", messages=MESSAGES)))
        return replies

    assert asyncio.run(main()) == ["echo: hello"] * 4
    assert reply_text(asyncio.run(other_holder.chat.completions.create(model="x", messages=MESSAGES))) == "echo: hello"


def test_azure_through_a_variant(reg: Registry, server: FakeServer) -> None:
    azure = reg.get_client(settings_for("azure_openai", server.url, "az-key"))
    for_litellm = azure.with_options()  # one per holder, on the registry's pool
    for _ in range(2):
        reply = litellm.completion(model="azure/dep", messages=MESSAGES, client=for_litellm, api_version=API_VERSION)
        assert reply_text(reply) == "echo: hello"
    assert {(r.path, r.query["api-version"], r.credential) for r in server.requests} == {
        ("/openai/deployments/dep/chat/completions", API_VERSION, "az-key")
    }


def test_azure_with_the_registry_client_itself(reg: Registry, server: FakeServer) -> None:
    # LiteLLM's Azure route calls client._custom_query.setdefault("api-version", ...) on the
    # client it is given: a no-op on a registry client whose query holds the version already.
    azure = reg.get_client(settings_for("azure_openai", server.url, "az-key"))
    query = dict(azure._custom_query)
    for _ in range(2):
        reply = litellm.completion(model="azure/dep", messages=MESSAGES, client=azure, api_version=API_VERSION)
        assert reply_text(reply) == "echo: hello"

    async def main() -> str:
        client = reg.get_async_client(settings_for("azure_openai", server.url, "az-key"))
        reply = await litellm.acompletion(model="azure/dep", messages=MESSAGES, client=client, api_version=API_VERSION)
        return reply_text(reply)

    assert asyncio.run(main()) == "echo: hello"
    assert dict(azure._custom_query) == query  # nothing changed for the other holders
    assert {(r.path, r.query["api-version"], r.credential) for r in server.requests} == {
        ("/openai/deployments/dep/chat/completions", API_VERSION, "az-key")
    }


def test_groq_through_its_openai_compatible_endpoint(
    reg: Registry, server: FakeServer, loopback_only: NetworkGuard
) -> None:
    # LiteLLM's groq/ route does not use a client it is given: it calls api.groq.com itself.
    groq_client = reg.get_client(settings_for("groq", server.url, "gsk-key"))
    with pytest.raises(Exception, match="refused"):
        litellm.completion(model="groq/llama-3.3-70b-versatile", messages=MESSAGES, client=groq_client, max_retries=0)
    assert any("api.groq.com" in attempt for attempt in loopback_only.refused)
    loopback_only.refused.clear()
    assert server.requests == []
    # Its openai/ route with an OpenAI client on Groq's OpenAI-compatible URL does.
    groq_as_openai = reg.get_client(OpenAISettings(api_key="gsk-key", base_url=f"{server.url}/openai/v1"))
    reply = litellm.completion(model="openai/llama-3.3-70b-versatile", messages=MESSAGES, client=groq_as_openai)
    assert reply_text(reply) == "echo: hello"
    assert [(r.path, r.credential) for r in server.requests] == [("/openai/v1/chat/completions", "gsk-key")]


_LOGS_AFTER_LITELLM = """
import json, logging, os
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm  # first, as an application may: it adds its own filter to the httpx logger

lines = []
class Keep(logging.Handler):
    def emit(self, record):
        lines.append(self.format(record))
logging.getLogger("httpx").addHandler(Keep())
logging.getLogger("httpx").setLevel(logging.INFO)

from registry import Registry
from tests.fake_server import FakeServer
from tests.registry_helpers import chat, settings_for
with FakeServer() as server, Registry(index_path="off") as reg:
    chat(reg.get_client(settings_for("groq", server.url, default_query={"code": "functions-key-0123456789abcdef"})))
print(json.dumps(lines))
"""


def test_query_credentials_stay_out_of_request_logs_when_litellm_is_imported_first() -> None:
    # LiteLLM's filter folds the URL into the message text; the registry's must run before it.
    out = subprocess.run(
        [sys.executable, "-c", _LOGS_AFTER_LITELLM], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    lines = json.loads(out.stdout.strip().splitlines()[-1])
    assert any(line.startswith("HTTP Request:") for line in lines)
    assert not any("functions-key" in line for line in lines)
    assert any("code=hmac-sha256:" in line for line in lines)
