"""Key and token providers: rotated credentials reach the next request, for every provider."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import registry
from registry import (
    KeyProviderError,
    MissingCredentialsError,
    Registry,
    get_async_groq_client,
    get_async_openai_client,
    get_azure_openai_client,
    get_cerebras_client,
    get_groq_client,
    get_openai_client,
    register_key_provider,
)
from registry import credentials as credentials_module
from registry.credentials import name_for_callable, unregister_key_provider
from schemas import AzureOpenAISettings, OpenAISettings, ProviderSettings, load_settings
from tests.fake_server import FakeServer
from tests.registry_helpers import API_VERSION, PROVIDERS, achat, chat, settings_for

# A provider reachable by import reference, as a settings file names it.
ROTATION: list[str] = []


def current_key() -> str:
    """The key a vault would hand out right now."""
    return ROTATION[0]


@pytest.fixture(autouse=True)
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    registry.default_registry().close()
    ROTATION[:] = ["rot-key-1"]
    yield
    registry.default_registry().close()
    for name in list(credentials_module._named):
        unregister_key_provider(name)


@pytest.fixture
def reg() -> Iterator[Registry]:
    with Registry(index_path="off") as r:
        yield r


def rotating(prefix: str) -> Callable[[], str]:
    """A provider that returns a new key on every call: prefix-1, prefix-2, ..."""
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


def with_provider(provider: str, url: str, **fields: Any) -> ProviderSettings:
    base = settings_for(provider, url)
    return base.model_copy(update={"api_key": None, **fields})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_rotated_key_reaches_the_next_request_sync(reg: Registry, server: FakeServer, provider: str) -> None:
    register_key_provider("vault", rotating(provider))
    settings = with_provider(provider, server.url, api_key_provider="vault")
    for _ in range(3):
        assert chat(reg.get_client(settings)) == "echo: hello"
    assert [r.credential for r in server.requests] == [f"{provider}-1", f"{provider}-2", f"{provider}-3"]
    assert reg.stats().live_clients == 1  # one client, however often the key changes


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("style", ["async provider", "sync provider"])
def test_a_rotated_key_reaches_the_next_request_async(server: FakeServer, provider: str, style: str) -> None:
    sync = rotating(provider)

    async def async_provider() -> str:
        await asyncio.sleep(0)
        return sync()

    register_key_provider("vault", async_provider if style == "async provider" else sync)
    settings = with_provider(provider, server.url, api_key_provider="vault")

    async def main() -> int:
        async with Registry(index_path="off") as reg:
            for _ in range(3):
                assert await achat(reg.get_async_client(settings)) == "echo: hello"
            return reg.stats().live_clients

    assert asyncio.run(main()) == 1
    assert [r.credential for r in server.requests] == [f"{provider}-1", f"{provider}-2", f"{provider}-3"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_retry_asks_for_the_key_again(reg: Registry, server: FakeServer, provider: str) -> None:
    register_key_provider("vault", rotating(provider))
    client = reg.get_client(with_provider(provider, server.url, api_key_provider="vault", max_retries=1))
    server.fail_next(1, status=500)
    assert chat(client) == "echo: hello"  # after one retry
    assert [r.credential for r in server.requests] == [f"{provider}-1", f"{provider}-2"]


def test_azure_ad_tokens_rotate_sync_and_async(server: FakeServer) -> None:
    register_key_provider("entra", rotating("token"))
    settings = AzureOpenAISettings(
        azure_endpoint=server.url, azure_deployment="dep", api_version=API_VERSION, azure_ad_token_provider="entra"
    )
    with Registry(index_path="off") as reg:
        client = reg.get_client(settings)
        chat(client)
        chat(client)

        async def main() -> None:
            aclient = reg.get_async_client(settings)
            await achat(aclient)
            await achat(aclient)

        asyncio.run(main())
        assert reg.stats().builds == 2  # the sync client and the async one
    assert [r.credential for r in server.requests] == ["token-1", "token-2", "token-3", "token-4"]
    assert all(r.headers["authorization"].startswith("Bearer token-") for r in server.requests)
    assert all("api-key" not in r.headers for r in server.requests)


def test_registering_again_replaces_the_provider_from_the_next_request(reg: Registry, server: FakeServer) -> None:
    register_key_provider("vault", lambda: "old-key")
    client = reg.get_client(with_provider("groq", server.url, api_key_provider="vault"))
    chat(client)
    register_key_provider("vault", lambda: "new-key")
    chat(client)
    unregister_key_provider("vault")
    with pytest.raises(KeyProviderError, match="'vault' is no longer registered"):
        chat(client)
    assert [r.credential for r in server.requests] == ["old-key", "new-key"]


def test_an_unknown_provider_name_fails_when_the_client_is_asked_for(reg: Registry, server: FakeServer) -> None:
    with pytest.raises(MissingCredentialsError, match=r"'nowhere' is not registered.*register_key_provider"):
        reg.get_client(with_provider("openai", server.url, api_key_provider="nowhere"))
    with pytest.raises(MissingCredentialsError, match="cannot be imported"):
        reg.get_client(with_provider("openai", server.url, api_key_provider="tests.no_such_module:key"))


def test_an_import_reference_from_a_settings_file(tmp_path: Path, server: FakeServer) -> None:
    path = tmp_path / "clientreg.toml"
    path.write_text(
        f"""
[profiles.vaulted]
provider = "cerebras"
base_url = "{server.url}"
api_key_provider = "tests.test_key_providers:current_key"
"""
    )
    settings = load_settings(path)
    with Registry(settings, index_path="off") as reg:
        chat(reg.get_client("vaulted"))
        ROTATION[0] = "rot-key-2"
        chat(reg.get_client("vaulted"))
    assert [r.credential for r in server.requests] == ["rot-key-1", "rot-key-2"]
    assert "tests.test_key_providers:current_key" in settings.profiles["vaulted"].canonical_json()


def test_the_hash_and_the_index_hold_the_name_never_the_key(tmp_path: Path, server: FakeServer) -> None:
    token = "sk-proj-rotatedSECRETvalue0123456789"
    register_key_provider("vault-openai", lambda: token)
    settings = with_provider("openai", server.url, api_key_provider="vault-openai")
    assert "vault-openai" in settings.canonical_json() and token not in settings.canonical_json()
    index = tmp_path / "index.sqlite"
    with Registry(index_path=index) as reg:
        chat(reg.get_client(settings))
        chat(get_openai_client(api_key=lambda: token, base_url=f"{server.url}/v1"))
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("index.sqlite*"))
    assert b"vault-openai" in stored
    assert token.encode() not in stored
    assert [r.credential for r in server.requests] == [token, token]


# ---- a provider's failures ---------------------------------------------------------------------

SECRET = "sk-proj-leakedLEAKEDleaked0123456789"


def _raises() -> str:
    raise RuntimeError("vault unreachable")


BAD_PROVIDERS: dict[str, tuple[Callable[[], Any], str]] = {
    "raises": (_raises, "raised RuntimeError"),
    "empty": (lambda: "", "returned an empty key"),
    "none": (lambda: None, "returned NoneType, not a str"),
    "bytes": (lambda: SECRET.encode(), "returned bytes, not a str"),
    "newline": (lambda: SECRET + "\n", "control character"),
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", list(BAD_PROVIDERS))
def test_a_failing_provider_is_a_clear_error_on_that_request(
    reg: Registry, server: FakeServer, provider: str, case: str
) -> None:
    bad, message = BAD_PROVIDERS[case]
    register_key_provider("flaky", bad)
    client = reg.get_client(with_provider(provider, server.url, api_key_provider="flaky"))
    with pytest.raises(KeyProviderError, match=message) as info:
        chat(client)
    assert "'flaky'" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert server.requests == []  # nothing was sent without a key
    register_key_provider("flaky", lambda: "good-key")
    chat(client)  # the next request works again
    assert [r.credential for r in server.requests] == ["good-key"]


@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_a_failing_provider_on_an_async_client(server: FakeServer, provider: str) -> None:
    async def broken() -> str:
        raise TimeoutError("vault slow")

    register_key_provider("broken", broken)

    async def main() -> None:
        async with Registry(index_path="off") as reg:
            client = reg.get_async_client(with_provider(provider, server.url, api_key_provider="broken"))
            with pytest.raises(KeyProviderError, match="'broken' raised TimeoutError"):
                await achat(client)

    asyncio.run(main())
    assert server.requests == []


def test_an_async_provider_cannot_serve_a_sync_client(reg: Registry, server: FakeServer) -> None:
    async def async_key() -> str:
        return "k"

    register_key_provider("async-only", async_key)
    client = reg.get_client(with_provider("openai", server.url, api_key_provider="async-only"))
    with pytest.raises(KeyProviderError, match="is async; a sync client needs a plain function"):
        chat(client)


# ---- callables given to wrappers ----------------------------------------------------------------


def test_a_callable_api_key_works_for_every_wrapper(server: FakeServer) -> None:
    chat(get_openai_client(api_key=rotating("o"), base_url=f"{server.url}/v1"))
    chat(get_groq_client(api_key=rotating("g"), base_url=server.url))
    chat(get_cerebras_client(api_key=rotating("c"), base_url=server.url))
    chat(get_azure_openai_client(api_key=rotating("a"), azure_endpoint=server.url, api_version=API_VERSION))
    chat(
        get_azure_openai_client(
            azure_ad_token_provider=rotating("t"), azure_endpoint=server.url, api_version=API_VERSION
        )
    )

    async def async_key() -> str:
        return "async-k"

    async def main() -> None:
        await achat(get_async_openai_client(api_key=async_key, base_url=f"{server.url}/v1"))
        await achat(get_async_groq_client(api_key=async_key, base_url=server.url))

    asyncio.run(main())
    assert [r.credential for r in server.requests] == ["o-1", "g-1", "c-1", "a-1", "t-1", "async-k", "async-k"]


def test_closures_made_per_call_do_not_grow_the_registry(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def key_for(tenant: str) -> Callable[[], str]:
        return lambda: f"key-of-{tenant}"

    from registry import wrappers as wrappers_module

    built: list[object] = []
    real_remember = wrappers_module._GROQ._remember
    monkeypatch.setattr(wrappers_module._GROQ, "_remember", lambda *a: built.append(a) or real_remember(*a))
    before = len(credentials_module._callables)
    clients = {id(get_groq_client(api_key=key_for("acme"), base_url=server.url)) for _ in range(200)}
    assert len(built) == 1  # one settings object made; the other 199 calls found it by the closure's name
    other = get_groq_client(api_key=key_for("globex"), base_url=server.url)
    assert len(clients) == 1
    assert id(other) not in clients  # another tenant's closure returns another key: its own client
    assert registry.default_registry().stats().live_clients == 2
    assert len(credentials_module._callables) - before == 2
    chat(other)
    assert server.requests[-1].credential == "key-of-globex"


def test_what_a_callable_is_keyed_by() -> None:
    class Vault:
        def key(self) -> str:
            return "k"

    vault = Vault()
    assert name_for_callable(vault.key) == name_for_callable(vault.key)  # a new bound method each time
    assert name_for_callable(vault.key) != name_for_callable(Vault().key)
    assert name_for_callable(functools.partial(str, "k")) == name_for_callable(functools.partial(str, "k"))
    # The same code over captured values that compare equal but differ in type: different providers.
    def key_of(value: object) -> Callable[[], str]:
        return lambda: str(value)

    made = [key_of(v) for v in (1, 1.0, True)]
    assert len({name_for_callable(f) for f in made}) == 3
    # A module-level function is named by its import reference, as a settings file would name it.
    assert name_for_callable(current_key) == "tests.test_key_providers:current_key"
    named = OpenAISettings(api_key_provider="tests.test_key_providers:current_key")
    assert registry.get_client(named) is get_openai_client(api_key=current_key)
    generated = name_for_callable(lambda: "k")
    assert generated.startswith("callable-") and "lambda" in generated
    json.dumps(generated)  # a plain name, fit for the canonical form


def test_callable_names_are_reserved() -> None:
    with pytest.raises(ValueError, match="reserved"):
        register_key_provider("callable-1-x", lambda: "k")
    with pytest.raises(ValueError, match="import references"):
        register_key_provider("pkg.mod:attr", lambda: "k")
    with pytest.raises(TypeError):
        register_key_provider("vault", "sk-not-a-function")  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_tables_were_locked_can_use_them(server: FakeServer) -> None:
    from registry import wrappers as wrappers_module

    locks = [credentials_module._lock, wrappers_module._GROQ.lock]
    for lock in locks:
        lock.acquire()  # as if another thread were registering when the process forked
    try:
        pid = os.fork()
        if pid == 0:  # the child: a new callable and a new memo entry take both locks
            code = 1
            try:
                client = get_groq_client(api_key=lambda: "child-key", base_url=server.url)
                code = 0 if chat(client) == "echo: hello" else 2
            finally:
                os._exit(code)
    finally:
        for lock in locks:
            lock.release()
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the forked child hung on a lock held at fork time")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert server.requests[-1].credential == "child-key"


def test_a_key_pasted_as_a_provider_name_is_refused_unquoted() -> None:
    with pytest.raises(ValueError) as info:
        register_key_provider("sk-proj-abcdefghijklmnop0123456789", lambda: "k")
    assert "abcdefghijklmnop" not in str(info.value)
