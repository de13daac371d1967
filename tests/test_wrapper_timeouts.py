"""Timeouts as the SDKs mean them: unset is the SDK's default, None (or a phase of None) is no limit.

Each test compares with the SDK's own constant or its own client, and with what the request
that reaches the loopback server carries (the SDKs send ``x-stainless-read-timeout`` with the
read phase, and nothing when there is no read limit).
"""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import groq
import httpx
import httpx2
import openai
import pytest
from cerebras.cloud import sdk as cerebras_sdk

import registry
from registry import (
    Registry,
    get_async_azure_openai_client,
    get_async_cerebras_client,
    get_async_groq_client,
    get_async_openai_client,
    get_azure_openai_client,
    get_cerebras_client,
    get_client,
    get_groq_client,
    get_openai_client,
)
from schemas import (
    AzureOpenAISettings,
    CerebrasSettings,
    GroqSettings,
    OpenAISettings,
    ProviderSettings,
    SettingsError,
    TimeoutParts,
    load_settings,
)
from tests.fake_server import FakeServer
from tests.registry_helpers import achat, chat
from tests.test_registry_wrappers import base_kwargs, call


@pytest.fixture(autouse=True)
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    registry.default_registry().close()
    yield
    registry.default_registry().close()


# wrapper -> (family, is async, the SDK's DEFAULT_TIMEOUT, a plain SDK client's factory)
WRAPPERS: dict[Callable[..., Any], tuple[str, bool, Any, Callable[..., Any]]] = {
    get_openai_client: ("openai", False, openai.DEFAULT_TIMEOUT, openai.OpenAI),
    get_async_openai_client: ("openai", True, openai.DEFAULT_TIMEOUT, openai.AsyncOpenAI),
    get_azure_openai_client: ("azure", False, openai.DEFAULT_TIMEOUT, openai.AzureOpenAI),
    get_async_azure_openai_client: ("azure", True, openai.DEFAULT_TIMEOUT, openai.AsyncAzureOpenAI),
    get_groq_client: ("groq", False, groq.DEFAULT_TIMEOUT, groq.Groq),
    get_async_groq_client: ("groq", True, groq.DEFAULT_TIMEOUT, groq.AsyncGroq),
    get_cerebras_client: ("cerebras", False, cerebras_sdk.DEFAULT_TIMEOUT, cerebras_sdk.Cerebras),
    get_async_cerebras_client: ("cerebras", True, cerebras_sdk.DEFAULT_TIMEOUT, cerebras_sdk.AsyncCerebras),
}
IDS = [w.__name__ for w in WRAPPERS]


def one_request(wrapper: Callable[..., Any], **kwargs: Any) -> tuple[Any, dict[str, str]]:
    """The wrapper's client for ``kwargs`` and the headers of one chat request it sent."""
    is_async = WRAPPERS[wrapper][1]
    if is_async:

        async def main() -> Any:
            client = wrapper(**kwargs)
            await achat(client)
            return client

        client = asyncio.run(main())
    else:
        client = wrapper(**kwargs)
        chat(client)
    return client, _last_headers()


_server: FakeServer | None = None


def _last_headers() -> dict[str, str]:
    assert _server is not None
    return _server.requests[-1].headers


@pytest.fixture(autouse=True)
def _remember_server(server: FakeServer) -> Iterator[None]:
    global _server
    _server = server
    yield
    _server = None


def plain_sdk_headers(wrapper: Callable[..., Any], server: FakeServer, **kwargs: Any) -> dict[str, str]:
    """The headers the SDK's own client, built with ``kwargs`` and nothing shared, sends."""
    family, is_async, _, factory = WRAPPERS[wrapper]
    arguments = {**base_kwargs(family, server.url), **kwargs}
    if family == "cerebras":
        arguments["warm_tcp_connection"] = False
    client = factory(**arguments)
    if is_async:

        async def main() -> None:
            async with client:
                await achat(client)

        asyncio.run(main())
    else:
        with client:
            chat(client)
    return server.requests[-1].headers


# ---- unset: the SDK's own default --------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_class", "sdk_default"),
    [
        (OpenAISettings, openai.DEFAULT_TIMEOUT),
        (AzureOpenAISettings, openai.DEFAULT_TIMEOUT),
        (GroqSettings, groq.DEFAULT_TIMEOUT),
        (CerebrasSettings, cerebras_sdk.DEFAULT_TIMEOUT),
    ],
)
def test_an_unset_timeout_in_the_settings_is_the_sdks_default(
    settings_class: type[ProviderSettings], sdk_default: Any
) -> None:
    parts = settings_class().timeout
    assert isinstance(parts, TimeoutParts)
    assert (parts.connect, parts.read, parts.write, parts.pool) == (
        sdk_default.connect,
        sdk_default.read,
        sdk_default.write,
        sdk_default.pool,
    )


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=IDS)
def test_a_client_without_timeout_behaves_as_the_sdks_default_client(
    wrapper: Callable[..., Any], server: FakeServer
) -> None:
    family, _, sdk_default, _ = WRAPPERS[wrapper]
    client, headers = one_request(wrapper, **base_kwargs(family, server.url))
    assert client.timeout == sdk_default  # Timeout(600, connect=5) for openai, not a flat 600 s
    plain = plain_sdk_headers(wrapper, server)  # the SDK writes its int 600 as "600", ours "600.0"
    assert float(headers["x-stainless-read-timeout"]) == float(plain["x-stainless-read-timeout"])
    # The SDK's own default given explicitly is the same configuration, so the same client.
    assert call(wrapper, **base_kwargs(family, server.url), timeout=sdk_default) is client


def test_get_client_with_unset_timeout_is_the_sdks_default(server: FakeServer) -> None:
    client = get_client(OpenAISettings(api_key="k", base_url=f"{server.url}/v1"))
    assert client.timeout == openai.OpenAI(api_key="k").timeout == httpx2.Timeout(600, connect=5)


# ---- None: no timeout --------------------------------------------------------------------------


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=IDS)
def test_timeout_none_is_no_timeout(wrapper: Callable[..., Any], server: FakeServer) -> None:
    family = WRAPPERS[wrapper][0]
    client, headers = one_request(wrapper, **base_kwargs(family, server.url), timeout=None)
    assert client.timeout is None  # what the SDK itself holds for timeout=None
    assert "x-stainless-read-timeout" not in headers  # the SDK sends no read limit
    assert "x-stainless-read-timeout" not in plain_sdk_headers(wrapper, server, timeout=None)
    # The request the SDK builds carries no limit for any phase.
    options = {"method": "post", "url": "/chat/completions", "json_data": {}}
    sdk_models = importlib.import_module(
        WRAPPERS[wrapper][3].__module__.split(".lib.")[0].rsplit("._", 1)[0] + "._models"
    )
    request = client._build_request(sdk_models.FinalRequestOptions.construct(**options))
    assert request.extensions["timeout"] == {"connect": None, "read": None, "write": None, "pool": None}


def test_no_timeout_is_its_own_configuration(server: FakeServer) -> None:
    kwargs = base_kwargs("openai", server.url)
    unlimited = get_openai_client(**kwargs, timeout=None)
    default = get_openai_client(**kwargs)
    assert unlimited is not default and default.timeout == openai.DEFAULT_TIMEOUT
    # Every spelling of "no limit" is one configuration, and one client.
    assert get_openai_client(**kwargs, timeout=httpx2.Timeout(None)) is unlimited
    assert get_openai_client(**kwargs, timeout=httpx.Timeout(None)) is unlimited
    assert get_openai_client(**kwargs, timeout=math.inf) is unlimited
    assert get_client(OpenAISettings(**kwargs, timeout=None)) is unlimited
    # NOT_GIVEN is not None: it is the SDK's default.
    assert get_openai_client(**kwargs, timeout=openai.NOT_GIVEN) is default


@pytest.mark.parametrize(
    "wrapper", [get_openai_client, get_groq_client, get_async_cerebras_client], ids=lambda w: w.__name__
)
def test_a_timeout_with_an_unlimited_phase(wrapper: Callable[..., Any], server: FakeServer) -> None:
    family = WRAPPERS[wrapper][0]
    library = httpx2 if family in ("openai", "azure") else httpx
    given = library.Timeout(30.0, read=None)
    client, headers = one_request(wrapper, **base_kwargs(family, server.url), timeout=given)
    assert client.timeout == given  # the SDK's own Timeout, read phase unlimited
    assert "x-stainless-read-timeout" not in headers
    other, headers = one_request(wrapper, **base_kwargs(family, server.url), timeout=library.Timeout(30.0, pool=None))
    assert other is not client and other.timeout == library.Timeout(30.0, pool=None)
    assert headers["x-stainless-read-timeout"] == "30.0"


def test_bad_timeouts_still_fail_naming_the_wrapper(server: FakeServer) -> None:
    kwargs = base_kwargs("openai", server.url)
    with pytest.raises(SettingsError, match=r"get_openai_client\(\).*timeout"):
        get_openai_client(**kwargs, timeout=httpx2.Timeout(-1.0))
    with pytest.raises(SettingsError, match=r"get_groq_client\(\).*timeout"):
        get_groq_client(**base_kwargs("groq", server.url), timeout=-math.inf)
    with pytest.raises(TypeError, match="timeout must be a number of seconds or an httpx"):
        get_openai_client(**kwargs, timeout="30")


# ---- the settings, their hash, and a settings file ---------------------------------------------


def test_the_settings_hold_no_timeout_apart_from_unset() -> None:
    unlimited = OpenAISettings(timeout=None)
    assert unlimited.timeout is None and unlimited.canonical_dict()["timeout"] is None
    assert unlimited.config_hash != OpenAISettings().config_hash
    spellings = [
        math.inf,
        "none",
        "None",
        " INF ",
        "infinity",
        TimeoutParts(connect=None, read=None, write=None, pool=None),
    ]
    assert {OpenAISettings(timeout=t).config_hash for t in spellings} == {unlimited.config_hash}
    # A phase of None, spelled either way; it differs from a limited phase.
    read_forever = GroqSettings(timeout=TimeoutParts(connect=5, read=None, write=60, pool=60))
    assert read_forever.canonical_dict()["timeout"] == {"connect": 5.0, "read": None, "write": 60.0, "pool": 60.0}
    assert GroqSettings(timeout={"connect": 5, "read": "inf", "write": 60, "pool": 60}) == read_forever
    assert read_forever.config_hash != GroqSettings().config_hash
    # model_copy takes None as no timeout too.
    assert OpenAISettings(timeout=30).model_copy(update={"timeout": None}).timeout is None


def test_a_settings_file_says_no_limit_with_inf_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "clientreg.toml"
    file.write_text(
        '[profiles.a]\nprovider = "openai"\napi_key = "sk-a"\ntimeout = inf\n'
        '[profiles.b]\nprovider = "groq"\ntimeout = "none"\n'
        '[profiles.c]\nprovider = "cerebras"\ntimeout = { connect = 5, read = inf }\n'
        '[profiles.d]\nprovider = "groq"\ntimeout = 30\n'
    )
    profiles = load_settings(file).profiles
    assert profiles["a"].timeout is None and profiles["b"].timeout is None
    assert profiles["c"].timeout == TimeoutParts(connect=5, read=None)
    monkeypatch.setenv("CLIENTREG_PROFILES__D__TIMEOUT", "none")  # an override from the environment
    assert load_settings(file).profiles["d"].timeout is None
    with Registry(load_settings(file), index_path="off") as reg:
        assert reg.get_client("a").timeout is None


def test_a_file_with_a_bad_timeout_names_file_profile_and_field(tmp_path: Path) -> None:
    file = tmp_path / "clientreg.toml"
    file.write_text('[profiles.slow]\nprovider = "openai"\ntimeout = "forever"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert str(file) in message and "slow" in message and "timeout" in message and "none" in message
