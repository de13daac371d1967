"""timeout=None and Timeout phases of None ("no limit" in the SDKs).

The settings models hold a timeout as seconds or four positive phases: they cannot say "no
timeout" (yet). So a wrapper refuses these with a TypeError saying so, instead of building a
client with the 600 s default, which would be a different client than the caller asked for.
When the settings learn None, the wrappers pass it through (see `_Wrapper._check_no_timeout`)
and these tests must change with them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import httpx2
import openai
import pytest

import registry
from registry import get_async_groq_client, get_groq_client, get_openai_client
from schemas import OpenAISettings, SettingsError
from tests.fake_server import FakeServer
from tests.test_registry_wrappers import base_kwargs


@pytest.fixture(autouse=True)
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    registry.default_registry().close()
    yield
    registry.default_registry().close()


def test_the_settings_cannot_say_no_timeout() -> None:
    # What the refusal below rests on: None is not a timeout the settings hold.
    assert openai.OpenAI(api_key="k", timeout=None).timeout is None  # the SDK: wait forever
    with pytest.raises(SettingsError):
        OpenAISettings(timeout=None)  # type: ignore[arg-type]


def test_timeout_none_is_refused_not_replaced_by_a_default(server: FakeServer) -> None:
    with pytest.raises(TypeError, match=r"get_openai_client\(\): timeout=None \(no timeout\) cannot be represented"):
        get_openai_client(**base_kwargs("openai", server.url), timeout=None)
    with pytest.raises(TypeError, match=r"get_async_groq_client\(\): timeout=None"):
        get_async_groq_client(**base_kwargs("groq", server.url), timeout=None)
    with pytest.raises(TypeError, match="timeout=None"):
        get_openai_client(**base_kwargs("openai", server.url), timeout=httpx2.Timeout(None))  # every phase None


def test_a_timeout_with_one_unlimited_phase_is_refused(server: FakeServer) -> None:
    with pytest.raises(TypeError, match="a Timeout with a phase of None"):
        get_openai_client(**base_kwargs("openai", server.url), timeout=httpx2.Timeout(30, read=None))
    with pytest.raises(TypeError, match="a Timeout with a phase of None"):
        get_groq_client(**base_kwargs("groq", server.url), timeout=httpx.Timeout(30, pool=None))
