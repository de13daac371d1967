"""The per-provider wrappers: every SDK constructor argument, with the SDK's own meaning."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import groq
import httpx
import httpx2
import openai
import pytest
from cerebras.cloud.sdk import AsyncCerebras, Cerebras

import registry
from registry import (
    MissingCredentialsError,
    SDKNotInstalledError,
    get_async_azure_openai_client,
    get_async_cerebras_client,
    get_async_groq_client,
    get_async_openai_client,
    get_azure_openai_client,
    get_cerebras_client,
    get_groq_client,
    get_openai_client,
)
from registry.providers import builder_for
from schemas import SettingsError
from tests.fake_server import FakeServer
from tests.registry_helpers import API_VERSION, chat


@pytest.fixture(autouse=True)
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    registry.default_registry().close()  # the next call starts a fresh default registry
    yield
    registry.default_registry().close()


# wrapper -> (the SDK class it stands for, is it async, its family)
WRAPPERS: dict[Callable[..., Any], tuple[type[Any], bool, str]] = {
    get_openai_client: (openai.OpenAI, False, "openai"),
    get_async_openai_client: (openai.AsyncOpenAI, True, "openai"),
    get_azure_openai_client: (openai.AzureOpenAI, False, "azure"),
    get_async_azure_openai_client: (openai.AsyncAzureOpenAI, True, "azure"),
    get_groq_client: (groq.Groq, False, "groq"),
    get_async_groq_client: (groq.AsyncGroq, True, "groq"),
    get_cerebras_client: (Cerebras, False, "cerebras"),
    get_async_cerebras_client: (AsyncCerebras, True, "cerebras"),
}


def base_kwargs(family: str, url: str) -> dict[str, Any]:
    """The arguments that point a wrapper's client at the fake server."""
    if family == "openai":
        return {"api_key": "sk-base", "base_url": f"{url}/v1"}
    if family == "azure":
        return {"api_key": "az-base", "azure_endpoint": url, "azure_deployment": "dep", "api_version": API_VERSION}
    return {"api_key": "k-base", "base_url": url}


def call(wrapper: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a wrapper the way its users do: async ones from inside a running loop."""
    if WRAPPERS[wrapper][1]:

        async def inside() -> Any:
            return wrapper(**kwargs)

        return asyncio.run(inside())
    return wrapper(**kwargs)


class Unrepresentable:
    """Stands for a live object (an identity, a provider) the settings cannot hold."""


def resolved(value: Any) -> Any:
    """``value``, or what it awaits to (an async client's provider returns a coroutine)."""
    if inspect.isawaitable(value):
        return asyncio.run(value)  # type: ignore[arg-type]
    return value


Check = Callable[[Any, FakeServer], bool]


# Every constructor argument of every SDK class: (value to pass, what the client must show).
# A check of None means the argument is refused with a TypeError naming it.
def _sdk_cases(url: str) -> dict[str, tuple[Any, Check | None]]:
    return {
        "api_key": ("sk-given", lambda c, s: c.api_key == "sk-given"),
        "base_url": (httpx.URL(f"{url}/v2"), lambda c, s: str(c.base_url).rstrip("/").endswith("/v2")),
        "timeout": (12.5, lambda c, s: c.timeout == 12.5),
        "max_retries": (5, lambda c, s: c.max_retries == 5),
        "default_headers": ({"X-App": "a"}, lambda c, s: c.default_headers["X-App"] == "a"),
        "default_query": ({"tenant": "t1"}, lambda c, s: c.default_query["tenant"] == "t1"),
        "http_client": (httpx2.Client(), None),
        "_strict_response_validation": (True, lambda c, s: c._strict_response_validation is True),
        "admin_api_key": ("adm-key", lambda c, s: c.admin_api_key == "adm-key"),
        "workload_identity": (Unrepresentable(), None),
        "organization": ("org-x", lambda c, s: c.organization == "org-x"),
        "project": ("proj-x", lambda c, s: c.project == "proj-x"),
        "webhook_secret": ("whsec-x", lambda c, s: c.webhook_secret == "whsec-x"),
        "websocket_base_url": (
            "wss://ws.example/v1",
            lambda c, s: str(c.websocket_base_url) == "wss://ws.example/v1",
        ),
        "_enforce_credentials": (True, lambda c, s: c.api_key == "sk-base" or c.api_key == "az-base"),
        "provider": (Unrepresentable(), None),
        "data_residency": ("eu", lambda c, s: str(c.base_url) == "https://eu.api.openai.com/v1/"),
        "api_version": ("2025-01-01", lambda c, s: c._api_version == "2025-01-01"),
        "azure_endpoint": (f"{url}/other", lambda c, s: str(c._azure_endpoint) == f"{url}/other"),
        "azure_deployment": ("dep-2", lambda c, s: c._azure_deployment == "dep-2"),
        "azure_ad_token": ("ad-token", lambda c, s: c._azure_ad_token == "ad-token"),
        "azure_ad_token_provider": (
            lambda: "ad-from-provider",
            lambda c, s: resolved(c._azure_ad_token_provider()) == "ad-from-provider",
        ),
        # The SDK's warm-up request, sent from the constructor when asked for.
        "warm_tcp_connection": (True, lambda c, s: [r.path for r in s.requests] == ["/v1/tcp_warming"]),
    }


SDK_ARGUMENTS = sorted(
    {(w, name) for w, (cls, _, _) in WRAPPERS.items() for name in inspect.signature(cls.__init__).parameters}
    - {(w, "self") for w in WRAPPERS},
    key=lambda pair: (pair[0].__name__, pair[1]),
)


def test_every_sdk_argument_has_a_case() -> None:
    # A new SDK argument fails here until the wrappers (and this table) know it.
    cases = _sdk_cases("http://127.0.0.1:1")
    assert {name for _, name in SDK_ARGUMENTS} <= cases.keys()
    assert len(SDK_ARGUMENTS) == 17 * 2 + 20 * 2 + 8 * 2 + 9 * 2


@pytest.mark.parametrize(("wrapper", "name"), SDK_ARGUMENTS, ids=lambda v: getattr(v, "__name__", v))
def test_every_constructor_argument(server: FakeServer, wrapper: Callable[..., Any], name: str) -> None:
    sdk_class, is_async, family = WRAPPERS[wrapper]
    value, check = _sdk_cases(server.url)[name]
    kwargs = base_kwargs(family, server.url)
    if name in ("azure_ad_token", "azure_ad_token_provider"):
        del kwargs["api_key"]  # one credential, as in the SDK
    if name == "data_residency":
        del kwargs["base_url"]
    if name == "azure_endpoint":
        kwargs.pop("azure_deployment")
    if name == "base_url" and family == "azure":
        del kwargs["azure_endpoint"], kwargs["azure_deployment"]
    kwargs[name] = value
    if check is None:
        with pytest.raises(TypeError, match=f"{wrapper.__name__}\\(\\) cannot take {name}=") as info:
            call(wrapper, **kwargs)
        assert "instead" in str(info.value).lower()
        return

    async def twice_in_a_loop() -> tuple[Any, Any]:
        return wrapper(**kwargs), wrapper(**kwargs)

    first, second = asyncio.run(twice_in_a_loop()) if is_async else (wrapper(**kwargs), wrapper(**kwargs))
    assert isinstance(first, sdk_class)
    assert check(first, server), name
    assert second is first  # the same arguments give the same client


# ---- None, NOT_GIVEN and the other values the SDKs take ---------------------------------------


def test_none_means_what_it_means_in_the_sdk(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = base_kwargs("openai", server.url)
    plain = get_openai_client(**kwargs)
    # http_client=None is the default (Langroid's OpenAIGPT always passes it), as are the rest.
    assert get_openai_client(**kwargs, http_client=None, default_headers=None, default_query=None) is plain
    assert get_openai_client(**kwargs, workload_identity=None, provider=None, data_residency=None) is plain
    # organization=None reads OPENAI_ORG_ID, as openai.OpenAI(organization=None) does.
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    from_env = get_openai_client(**kwargs, organization=None)
    assert from_env.organization == "org-from-env" == openai.OpenAI(api_key="k", organization=None).organization
    # base_url=None reads OPENAI_BASE_URL.
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/from-env")
    assert str(get_openai_client(api_key="sk-base", base_url=None).base_url) == f"{server.url}/from-env/"


def test_not_given_is_the_sdk_default(server: FakeServer) -> None:
    kwargs = base_kwargs("openai", server.url)
    assert get_openai_client(**kwargs, timeout=openai.NOT_GIVEN) is get_openai_client(**kwargs)
    groq_kwargs = base_kwargs("groq", server.url)
    assert get_groq_client(**groq_kwargs, timeout=groq.NOT_GIVEN) is get_groq_client(**groq_kwargs)
    assert get_openai_client(api_key="sk-base", base_url=openai.NOT_GIVEN).base_url == "https://api.openai.com/v1/"


def test_timeouts_of_either_http_library(server: FakeServer) -> None:
    g = get_groq_client(**base_kwargs("groq", server.url), timeout=httpx.Timeout(10, connect=2))
    assert g.timeout == httpx.Timeout(10, connect=2)
    o = get_openai_client(**base_kwargs("openai", server.url), timeout=httpx.Timeout(10, connect=2))
    assert o.timeout == httpx2.Timeout(10, connect=2)  # the openai SDK speaks httpx2
    assert get_openai_client(**base_kwargs("openai", server.url), timeout=httpx2.Timeout(10, connect=2)) is o


def test_urls_of_either_http_library(server: FakeServer) -> None:
    by_text = get_openai_client(api_key="k", base_url=f"{server.url}/v1")
    assert get_openai_client(api_key="k", base_url=httpx2.URL(f"{server.url}/v1")) is by_text
    assert get_openai_client(api_key="k", base_url=httpx.URL(f"{server.url}/v1/")) is by_text
    assert chat(by_text) == "echo: hello"


def test_query_values_are_sent_as_the_sdk_sends_them(server: FakeServer) -> None:
    client = get_openai_client(**base_kwargs("openai", server.url), default_query={"n": 2, "flag": True})
    chat(client)
    assert server.requests[-1].query == {"n": "2", "flag": "true"}
    with pytest.raises(TypeError, match="default_query"):
        get_openai_client(**base_kwargs("openai", server.url), default_query={"n": [1, 2]})


# ---- what cannot be represented ---------------------------------------------------------------


def test_unknown_keywords_are_type_errors_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"get_openai_client\(\).*'max_retires'.*did you mean 'max_retries'"):
        get_openai_client(api_key="k", max_retires=3)
    with pytest.raises(TypeError, match=r"get_async_groq_client\(\).*'organization'"):
        get_async_groq_client(api_key="k", organization="org")  # an OpenAI argument, not Groq's
    with pytest.raises(TypeError) as info:
        get_groq_client(api_key="k", **{"sk-proj-abcdefghijklmnopqrstuv": 1})
    assert "sk-proj" not in str(info.value)


def test_unrepresentable_arguments_say_what_to_use_instead() -> None:
    with pytest.raises(TypeError, match=r"http_client=.*proxy, verify"):
        get_openai_client(api_key="k", http_client=httpx2.Client())
    with pytest.raises(TypeError, match=r"workload_identity=.*key provider"):
        get_openai_client(api_key="k", workload_identity=Unrepresentable())
    with pytest.raises(TypeError, match=r"provider=.*get_azure_openai_client"):
        get_openai_client(api_key="k", provider=Unrepresentable())
    with pytest.raises(TypeError, match="_enforce_credentials=False"):
        get_openai_client(api_key="k", _enforce_credentials=False)
    with pytest.raises(TypeError, match="default_headers"):
        get_groq_client(api_key="k", default_headers={"X-N": 1})


def test_bad_values_are_settings_errors_naming_the_wrapper_and_no_secret() -> None:
    with pytest.raises(SettingsError) as info:
        get_openai_client(api_key="sk-very-secret-value", base_url="ftp://nowhere", max_retries=-1)
    message = str(info.value)
    assert message.startswith("get_openai_client():")
    assert "sk-very-secret-value" not in message
    assert "base_url" in message and "max_retries" in message
    with pytest.raises(SettingsError, match="timeout"):
        get_groq_client(api_key="k", timeout=-1)
    with pytest.raises(SettingsError, match="max_retries"):
        get_groq_client(api_key="k", max_retries=True)
    with pytest.raises(SettingsError) as newline:  # a key read from a file, newline and all
        get_openai_client(api_key="sk-proj-readFROMaFILE0123456789\n")
    assert "readFROMaFILE" not in str(newline.value) and "api_key" in str(newline.value)
    with pytest.raises(SettingsError) as header:
        get_groq_client(api_key="k", default_headers={"X-Token": "tok-SECRETsecret0123456789\r\nX-Evil: 1"})
    assert "SECRETsecret" not in str(header.value)


def test_async_wrappers_name_themselves_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    async def missing_key() -> None:
        get_async_openai_client()

    with pytest.raises(MissingCredentialsError) as info:
        asyncio.run(missing_key())
    assert str(info.value).startswith("get_async_openai_client():")
    assert "get_async_client" not in str(info.value)
    with pytest.raises(TypeError, match=r"^get_async_cerebras_client\(\)"):
        get_async_cerebras_client(api_key="k", timout=3)
    with pytest.raises(SettingsError, match=r"^get_async_azure_openai_client\(\)"):
        get_async_azure_openai_client(api_key="k", azure_endpoint="ftp://x", api_version=API_VERSION)


def test_a_missing_sdk_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    builder_for.cache_clear()
    monkeypatch.setitem(sys.modules, "groq", None)  # as if groq were not installed
    try:
        with pytest.raises(SDKNotInstalledError, match=r"pip install 'clientreg\[groq\]'") as info:
            get_groq_client(api_key="k")
        assert isinstance(info.value, ModuleNotFoundError)  # `except ImportError` still works
        monkeypatch.setitem(sys.modules, "groq", groq)
        monkeypatch.setitem(sys.modules, "httpx", None)  # the HTTP library groq speaks
        builder_for.cache_clear()
        with pytest.raises(SDKNotInstalledError, match=r"httpx is missing.*clientreg\[groq\]"):
            get_groq_client(api_key="k")
    finally:
        builder_for.cache_clear()


def test_azure_organization_and_project_reach_the_request(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = base_kwargs("azure", server.url)
    client = get_azure_openai_client(**kwargs, organization="org-az", project="proj-az")
    chat(client)
    sent = server.requests[-1].headers
    assert (sent["openai-organization"], sent["openai-project"]) == ("org-az", "proj-az")
    plain = get_azure_openai_client(**kwargs)
    chat(plain)
    assert "openai-organization" not in server.requests[-1].headers
    # organization=None reads OPENAI_ORG_ID, as openai.AzureOpenAI(organization=None) does; the
    # memo of the earlier call sees the variable appear.
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    sdk = openai.AzureOpenAI(api_key="k", azure_endpoint=server.url, api_version=API_VERSION, organization=None)
    from_env = get_azure_openai_client(**kwargs)
    assert from_env is not plain
    assert from_env.organization == "org-from-env" == sdk.organization
    chat(from_env)
    assert server.requests[-1].headers["openai-organization"] == "org-from-env"
    # The variable unset again: the first client, which sends no organization.
    monkeypatch.delenv("OPENAI_ORG_ID")
    assert get_azure_openai_client(**kwargs) is plain
