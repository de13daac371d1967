"""Handing out clients: real SDKs over real HTTP to the loopback server."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys

import groq
import openai
import pytest
from cerebras.cloud.sdk import AsyncCerebras, Cerebras

from registry import MissingCredentialsError, Registry, RegistryClosedError, UnknownProfileError
from schemas import GroqSettings, OpenAISettings, load_settings
from tests.fake_server import FakeServer
from tests.registry_helpers import PROVIDERS, achat, chat, settings_for

SYNC_TYPES = {
    "openai": openai.OpenAI,
    "azure_openai": openai.AzureOpenAI,
    "groq": groq.Groq,
    "cerebras": Cerebras,
}
ASYNC_TYPES = {
    "openai": openai.AsyncOpenAI,
    "azure_openai": openai.AsyncAzureOpenAI,
    "groq": groq.AsyncGroq,
    "cerebras": AsyncCerebras,
}


@pytest.fixture
def reg() -> Registry:
    registry = Registry(index_path="off")
    yield registry  # type: ignore[misc]
    registry.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sync_round_trip_for_every_provider(reg: Registry, server: FakeServer, provider: str) -> None:
    client = reg.get_client(settings_for(provider, server.url, key=f"key-{provider}"))
    assert isinstance(client, SYNC_TYPES[provider])  # the SDK class, or the registry's guarded subclass
    assert chat(client) == "echo: hello"
    (request,) = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert request.credential == f"key-{provider}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_async_round_trip_for_every_provider(reg: Registry, server: FakeServer, provider: str) -> None:
    async def main() -> str:
        client = reg.get_async_client(settings_for(provider, server.url, key=f"akey-{provider}"))
        assert isinstance(client, ASYNC_TYPES[provider])
        return await achat(client)

    assert asyncio.run(main()) == "echo: hello"
    assert [r.credential for r in server.requests] == [f"akey-{provider}"]


def test_cerebras_client_makes_no_request_when_built(reg: Registry, server: FakeServer) -> None:
    reg.get_client(settings_for("cerebras", server.url))
    assert server.requests == []  # the SDK's default would call /v1/tcp_warming here


def test_equal_settings_give_the_same_client(reg: Registry, server: FakeServer) -> None:
    first = reg.get_client(OpenAISettings(api_key="sk-1", base_url=f"{server.url}/v1", timeout=30))
    again = reg.get_client(OpenAISettings(timeout=30.0, base_url=f"{server.url}/v1/", api_key="sk-1"))
    other = reg.get_client(OpenAISettings(api_key="sk-1", base_url=f"{server.url}/v1", timeout=31))
    assert first is again
    assert other is not first
    stats = reg.stats()
    assert (stats.hits, stats.misses, stats.builds) == (1, 2, 2)


def test_thousand_equal_lookups_use_at_most_two_connections(reg: Registry, server: FakeServer) -> None:
    for _ in range(1000):
        client = reg.get_client(OpenAISettings(api_key="sk-loop", base_url=f"{server.url}/v1"))
        client.models.list()
    assert len(server.requests) == 1000
    assert server.connections_opened <= 2
    assert reg.stats().builds == 1


def test_fifty_keys_share_one_transport_and_send_their_own_key(reg: Registry, server: FakeServer) -> None:
    clients = [reg.get_client(settings_for("openai", server.url, key=f"sk-{i}")) for i in range(50)]
    for client in clients:
        chat(client)
    assert [r.credential for r in server.requests] == [f"sk-{i}" for i in range(50)]
    assert server.connections_opened == 1
    stats = reg.stats()
    assert (stats.live_clients, stats.live_transports) == (50, 1)


def test_different_transport_settings_get_their_own_pool(reg: Registry, server: FakeServer) -> None:
    reg.get_client(settings_for("openai", server.url, keepalive_expiry=10))
    reg.get_client(settings_for("openai", server.url, keepalive_expiry=20))
    reg.get_client(settings_for("groq", server.url))  # another HTTP library: another pool
    assert reg.stats().live_transports == 3


def test_environment_set_after_the_settings_does_not_redirect_the_client(
    reg: Registry, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = OpenAISettings(api_key="sk-env", base_url=f"{server.url}/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-env")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Injected: yes")
    assert chat(reg.get_client(settings)) == "echo: hello"
    (request,) = server.requests
    assert "openai-organization" not in request.headers
    assert "openai-project" not in request.headers
    assert "x-injected" not in request.headers


def test_configured_headers_organization_and_query_are_sent(reg: Registry, server: FakeServer) -> None:
    settings = OpenAISettings(
        api_key="sk-h",
        base_url=f"{server.url}/v1",
        organization="org-1",
        project="proj-1",
        default_headers={"X-Team": "blue"},
        default_query={"tenant": "t1"},
    )
    chat(reg.get_client(settings))
    (request,) = server.requests
    assert request.headers["openai-organization"] == "org-1"
    assert request.headers["openai-project"] == "proj-1"
    assert request.headers["x-team"] == "blue"
    assert request.query["tenant"] == "t1"


def test_closing_one_client_leaves_the_others_working(reg: Registry, server: FakeServer) -> None:
    first = reg.get_client(settings_for("openai", server.url, key="sk-a"))
    second = reg.get_client(settings_for("openai", server.url, key="sk-b"))
    chat(first)
    first.close()
    with first:  # the SDK's context manager closes too
        pass
    assert chat(second) == "echo: hello"
    assert chat(first) == "echo: hello"  # its pool belongs to the registry, still open
    assert server.connections_opened == 1


def test_eviction_keeps_held_clients_working_and_closes_unused_pools(server: FakeServer) -> None:
    with Registry(index_path="off", max_clients=2) as reg:
        a = reg.get_client(settings_for("openai", server.url, key="a", keepalive_expiry=7))
        reg.get_client(settings_for("openai", server.url, key="b"))
        reg.get_client(settings_for("openai", server.url, key="a", keepalive_expiry=7))  # a is now newest
        reg.get_client(settings_for("openai", server.url, key="c"))  # evicts b, the least recently used
        stats = reg.stats()
        assert (stats.evictions, stats.live_clients) == (1, 2)
        reg.get_client(settings_for("openai", server.url, key="d"))  # evicts a
        assert reg.stats().evictions == 2
        assert chat(a) == "echo: hello"  # still held by the caller: its pool stays open
        assert reg.stats().live_transports == 2
        del a
        gc.collect()
        reg.get_client(settings_for("openai", server.url, key="e"))  # a miss tidies released pools
        assert reg.stats().live_transports == 1  # a's pool had no user left and was closed
        assert reg.get_client(settings_for("openai", server.url, key="d")) is not None


def test_closed_registry_refuses_clearly(server: FakeServer) -> None:
    reg = Registry(index_path="off")
    settings = settings_for("openai", server.url)
    client = reg.get_client(settings)
    reg.close()
    reg.close()  # idempotent
    with pytest.raises(RegistryClosedError, match="closed"):
        reg.get_client(settings)
    with pytest.raises(Exception, match="closed"):
        client.models.list()  # its pool was closed with the registry
    assert reg.closed


def test_context_managers_close_pools(server: FakeServer) -> None:
    with Registry(index_path="off") as reg:
        chat(reg.get_client(settings_for("groq", server.url)))
    assert reg.closed

    async def main() -> None:
        async with Registry(index_path="off") as areg:
            await achat(areg.get_async_client(settings_for("groq", server.url)))
        assert areg.closed

    asyncio.run(main())


def test_missing_key_names_the_variable_to_set(reg: Registry) -> None:
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        reg.get_client(OpenAISettings())
    with pytest.raises(MissingCredentialsError, match="GROQ_API_KEY"):
        reg.get_client(GroqSettings())
    with pytest.raises(MissingCredentialsError, match="TEAM_B_KEY"):
        reg.get_client(OpenAISettings(api_key_env="TEAM_B_KEY"))
    assert reg.stats().builds == 0


def test_profiles_from_a_settings_file(server: FakeServer, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "clientreg.toml"
    path.write_text(
        f"""
[profiles.fast]
provider = "groq"
base_url = "{server.url}"
api_key_env = "TEAM_GROQ_KEY"

[profiles.main]
provider = "openai"
base_url = "{server.url}/v1"
"""
    )
    monkeypatch.setenv("TEAM_GROQ_KEY", "gsk-team")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-main")
    monkeypatch.setenv("CLIENTREG_SETTINGS", str(path))
    with Registry(index_path="off") as reg:  # loads the file on the first profile lookup
        fast = reg.get_client("fast")
        assert fast is reg.get_client("fast")
        assert fast is reg.get_client(GroqSettings(api_key="gsk-team", base_url=server.url))
        chat(fast)
        chat(reg.get_client("main"))
        assert [r.credential for r in server.requests] == ["gsk-team", "sk-main"]
        with pytest.raises(UnknownProfileError) as info:
            reg.get_client("fsat")
        message = str(info.value)
        assert "did you mean 'fast'" in message and "'main'" in message and str(path) in message

    explicit = Registry(load_settings(path), index_path="off")
    assert isinstance(explicit.get_client("main"), openai.OpenAI)
    explicit.close()


def test_wrong_argument_type_is_a_clear_error(reg: Registry) -> None:
    with pytest.raises(TypeError, match="settings object"):
        reg.get_client(42)  # type: ignore[arg-type]


def test_pools_are_closed_at_interpreter_exit(server: FakeServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "exit.py"
    script.write_text(
        f"""
import atexit

def report():  # registered first, so it runs after clientreg's own exit hook
    print("closed" if reg.closed else "open", flush=True)
    try:
        client.models.list()
        print("pool open")
    except Exception as exc:
        print("pool closed:", type(exc).__name__)

atexit.register(report)

from registry import Registry
from schemas import OpenAISettings

reg = Registry(index_path="off")
client = reg.get_client(OpenAISettings(api_key="sk-exit", base_url="{server.url}/v1", max_retries=0))
client.models.list()
"""
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("closed\npool closed:"), result.stdout
