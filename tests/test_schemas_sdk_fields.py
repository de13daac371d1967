"""The SDK arguments added to the models: key and token providers, admin key, webhook secret,
Azure AD tokens, websocket URL, data residency, strict response validation."""

from __future__ import annotations

import inspect
import json
import os
import typing
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    AzureOpenAISettings,
    CerebrasSettings,
    GroqSettings,
    OpenAISettings,
    ProviderSettings,
)

ALL_MODELS: list[type[ProviderSettings]] = [OpenAISettings, AzureOpenAISettings, GroqSettings, CerebrasSettings]
FAMILY: list[type[ProviderSettings]] = [OpenAISettings, AzureOpenAISettings]
ISOLATED_PREFIXES = ("OPENAI_", "AZURE_", "GROQ_", "CEREBRAS_", "TEAM_")
PASTED_KEY = "sk-proj-LEAKq7Xm2Lp9Rt4Vw8Zb3Nc6Df1Gh5"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)


def _fields(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


def _secret(value: Any) -> Any:
    return None if value is None else value.get_secret_value()


# ---- every provider ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_provider_has_key_provider_and_strict_validation(model: type[ProviderSettings]) -> None:
    s = model()
    assert s.api_key_provider is None
    assert s.strict_response_validation is False
    doc = json.loads(s.canonical_json())
    assert doc["api_key_provider"] is None and doc["strict_response_validation"] is False
    assert model(strict_response_validation=True).config_hash != s.config_hash


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("name", ["vault-openai", "vault.openai", "team_b", "my_pkg.keys:get_key", "pkg:Keys.rotate"])
def test_key_provider_is_a_name_or_an_import_reference(model: type[ProviderSettings], name: str) -> None:
    s = model(api_key_provider=name)
    assert s.api_key_provider == name
    # A name, not a secret: written into the canonical form as it is.
    assert json.loads(s.canonical_json())["api_key_provider"] == name
    assert s.config_hash != model(api_key_provider=name + "2").config_hash


@pytest.mark.parametrize("name", ["", "has space", "a:b:c", "1pkg:x", "pkg.:x", "x" * 65, "line\nbreak"])
def test_key_provider_that_is_not_a_name_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(api_key_provider=name)
    assert _fields(info.value) == ["api_key_provider"]
    assert "import reference" in str(info.value) or "control character" in str(info.value)


@pytest.mark.parametrize("field", ["api_key_provider", "azure_ad_token_provider"])
def test_a_credential_pasted_as_a_provider_name_is_refused_and_not_echoed(field: str) -> None:
    with pytest.raises(ValidationError) as info:
        AzureOpenAISettings(**{field: PASTED_KEY})
    message = str(info.value)
    assert "looks like a credential" in message and field in message
    assert "LEAK" not in message and "LEAK" not in repr(info.value)
    assert "LEAK" not in json.dumps(info.value.errors(include_input=False))


@pytest.mark.parametrize("model", ALL_MODELS)
def test_key_provider_excludes_a_key(model: type[ProviderSettings]) -> None:
    with pytest.raises(ValidationError) as info:
        model(api_key="sk-static", api_key_provider="vault")
    assert "api_key_provider" in _fields(info.value)
    assert "only one of api_key, api_key_provider" in str(info.value)
    with pytest.raises(ValidationError):
        model(api_key_env="TEAM_KEY", api_key_provider="vault")


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        (OpenAISettings, "OPENAI_API_KEY"),
        (AzureOpenAISettings, "AZURE_OPENAI_API_KEY"),
        (GroqSettings, "GROQ_API_KEY"),
        (CerebrasSettings, "CEREBRAS_API_KEY"),
    ],
)
def test_key_provider_stops_the_key_variable(
    monkeypatch: pytest.MonkeyPatch, model: type[ProviderSettings], variable: str
) -> None:
    monkeypatch.setenv(variable, "key-from-the-environment")
    s = model(api_key_provider="vault")
    assert s.api_key is None
    assert s.config_hash == model(api_key_provider="vault").config_hash
    monkeypatch.delenv(variable)
    assert s.config_hash == model(api_key_provider="vault").config_hash


# ---- OpenAI and Azure: admin key, webhook secret, websocket URL ----------------------------------


@pytest.mark.parametrize("model", FAMILY)
@pytest.mark.parametrize(
    ("field", "variable"), [("admin_api_key", "OPENAI_ADMIN_KEY"), ("webhook_secret", "OPENAI_WEBHOOK_SECRET")]
)
def test_admin_key_and_webhook_secret_fall_back_to_the_sdk_variables(
    monkeypatch: pytest.MonkeyPatch, model: type[ProviderSettings], field: str, variable: str
) -> None:
    unset = model()
    assert getattr(unset, field) is None
    monkeypatch.setenv(variable, "whsec-LEAK-from-env")
    from_env = model()
    assert _secret(getattr(from_env, field)) == "whsec-LEAK-from-env"
    assert from_env.config_hash != unset.config_hash
    explicit = model(**{field: "explicit-LEAK-value"})
    assert _secret(getattr(explicit, field)) == "explicit-LEAK-value"
    for text in (repr(from_env), str(from_env), from_env.model_dump_json(), from_env.canonical_json()):
        assert "LEAK" not in text
    assert "whsec-LEAK-from-env" in from_env.secret_values()
    assert "explicit-LEAK-value" in explicit.secret_values()


@pytest.mark.parametrize("model", FAMILY)
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("wss://realtime.example.com/v1/", "wss://realtime.example.com/v1"),
        ("WSS://Realtime.Example.com:443/v1", "wss://realtime.example.com/v1"),
        ("ws://localhost:8080/v1", "ws://localhost:8080/v1"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
    ],
)
def test_websocket_url_is_validated_and_normalised(model: type[ProviderSettings], given: str, stored: str) -> None:
    s = model(websocket_base_url=given)
    assert s.websocket_base_url == stored  # type: ignore[attr-defined]
    assert json.loads(s.canonical_json())["websocket_base_url"] == stored


@pytest.mark.parametrize("url", ["ftp://x.example", "realtime.example.com", "wss://", "wss://u:p@h.example/v1"])
def test_a_bad_websocket_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(websocket_base_url=url)
    assert _fields(info.value) == ["websocket_base_url"]


@pytest.mark.parametrize("model", [GroqSettings, CerebrasSettings])
@pytest.mark.parametrize("field", ["admin_api_key", "webhook_secret", "websocket_base_url", "azure_ad_token"])
def test_groq_and_cerebras_do_not_take_openai_only_fields(model: type[ProviderSettings], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        model(**{field: "x"})
    assert _fields(info.value) == [field]


# ---- Azure credentials ---------------------------------------------------------------------------


def test_azure_ad_token_falls_back_to_its_variable_before_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key")
    assert _secret(AzureOpenAISettings().api_key) == "az-key"
    assert AzureOpenAISettings().azure_ad_token is None
    # As in the SDK: with no credential given, the token variable wins and the key is not read.
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "ad-token")
    s = AzureOpenAISettings()
    assert _secret(s.azure_ad_token) == "ad-token"
    assert s.api_key is None


@pytest.mark.parametrize(
    ("given", "expected_key", "expected_token"),
    [
        ({"api_key": "explicit-key"}, "explicit-key", None),
        ({"azure_ad_token": "explicit-token"}, None, "explicit-token"),
        ({"azure_ad_token_provider": "entra"}, None, None),
        ({"api_key_provider": "vault"}, None, None),
        ({"api_key_env": "TEAM_AZURE_KEY"}, "team-key", None),
    ],
)
def test_an_azure_credential_given_stops_the_other_variables(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], expected_key: str | None, expected_token: str | None
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "env-token")
    monkeypatch.setenv("TEAM_AZURE_KEY", "team-key")
    s = AzureOpenAISettings(**given)
    assert _secret(s.api_key) == expected_key
    assert _secret(s.azure_ad_token) == expected_token


@pytest.mark.parametrize(
    "pair",
    [
        ("api_key", "azure_ad_token"),
        ("api_key", "azure_ad_token_provider"),
        ("azure_ad_token", "azure_ad_token_provider"),
        ("api_key_provider", "azure_ad_token"),
        ("api_key_env", "azure_ad_token"),
        ("api_key_env", "azure_ad_token_provider"),
    ],
)
def test_azure_takes_one_credential(pair: tuple[str, str]) -> None:
    values = {"api_key": "k", "azure_ad_token": "t", "azure_ad_token_provider": "entra", "api_key_provider": "vault"}
    values["api_key_env"] = "TEAM_AZURE_KEY"
    with pytest.raises(ValidationError) as info:
        AzureOpenAISettings(**{name: values[name] for name in pair})
    assert "give only one of" in str(info.value)


def test_azure_ad_token_is_a_secret_and_changes_the_hash() -> None:
    s = AzureOpenAISettings(azure_ad_token="ad-LEAK-token")
    for text in (repr(s), s.model_dump_json(), s.canonical_json()):
        assert "LEAK" not in text
    assert "ad-LEAK-token" in s.secret_values()
    assert s.config_hash != AzureOpenAISettings(azure_ad_token="ad-other").config_hash
    by_provider = AzureOpenAISettings(azure_ad_token_provider="entra")
    assert json.loads(by_provider.canonical_json())["azure_ad_token_provider"] == "entra"
    assert by_provider.config_hash != AzureOpenAISettings(azure_ad_token_provider="entra-2").config_hash


# ---- OpenAI data residency -----------------------------------------------------------------------


def test_data_residency_matches_the_installed_sdk() -> None:
    openai = pytest.importorskip("openai")
    sdk_type = inspect.signature(openai.OpenAI.__init__).parameters["data_residency"].annotation
    regions = set(typing.get_args(typing.get_args(OpenAISettings.model_fields["data_residency"].annotation)[0]))
    sdk_regions = set(typing.get_args(openai.DataResidency))
    assert "DataResidency" in str(sdk_type)
    assert regions == sdk_regions


def test_data_residency_picks_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere.example/v1")  # the SDK ignores it too
    s = OpenAISettings(data_residency="eu")
    assert s.data_residency == "eu"
    assert s.base_url is None
    assert json.loads(s.canonical_json())["data_residency"] == "eu"
    assert s.config_hash != OpenAISettings(data_residency="us").config_hash
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert s.config_hash == OpenAISettings(data_residency="eu").config_hash


@pytest.mark.parametrize(
    "other", [{"base_url": "https://eu.api.openai.com/v1"}, {"websocket_base_url": "wss://x.example"}]
)
def test_data_residency_excludes_explicit_urls(other: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(data_residency="eu", **other)
    assert "data_residency" in str(info.value)


def test_an_unknown_region_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(data_residency="mars")
    assert _fields(info.value)[0].startswith("data_residency")


def test_model_copy_can_switch_to_a_region_and_back() -> None:
    s = OpenAISettings(api_key="sk-a")
    eu = s.model_copy(update={"data_residency": "eu"})
    assert (eu.data_residency, eu.base_url) == ("eu", None)
    back = eu.model_copy(update={"data_residency": None})
    assert back.base_url == "https://api.openai.com/v1"
    assert back.config_hash == s.config_hash


# ---- Azure organization and project ---------------------------------------------------------------


def test_azure_organization_and_project_fall_back_to_the_sdk_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # As openai.AzureOpenAI does (it reads OPENAI_ORG_ID and OPENAI_PROJECT_ID when given None).
    assert (AzureOpenAISettings().organization, AzureOpenAISettings().project) == (None, None)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    from_env = AzureOpenAISettings(api_key="k")
    assert (from_env.organization, from_env.project) == ("org-env", "proj-env")
    given = AzureOpenAISettings(api_key="k", organization="org-given", project=None)
    assert (given.organization, given.project) == ("org-given", "proj-env")  # None reads the variable


def test_azure_organization_and_project_enter_the_hash_only_when_set() -> None:
    plain = AzureOpenAISettings(api_key="k", azure_endpoint="https://r.openai.azure.com", api_version="v")
    assert not {"organization", "project"} & json.loads(plain.canonical_json()).keys()
    with_org = plain.model_copy(update={"organization": "org-a"})
    assert json.loads(with_org.canonical_json())["organization"] == "org-a"
    assert "project" not in json.loads(with_org.canonical_json())
    hashes = {
        plain.config_hash,
        with_org.config_hash,
        plain.model_copy(update={"organization": "org-b"}).config_hash,
        plain.model_copy(update={"project": "org-a"}).config_hash,  # the same text in the other field
    }
    assert len(hashes) == 4


def test_an_azure_config_without_organization_keeps_its_form_2_hash() -> None:
    # Vector 6 of docs/config-hash.md as it was before Azure had the two fields, and before an
    # unset timeout became the SDK's default (so the timeout is spelled out here).
    s = AzureOpenAISettings(
        api_key="az-test-0000",
        azure_endpoint="https://example.openai.azure.com/",
        azure_deployment="gpt-4o",
        api_version="2024-10-21",
        verify="/etc/ssl/certs/ca.pem",
        timeout=600,
    )
    assert s.config_hash == "a42f478ee8d656bfca2d1dff02e7e9d7c596fea212943a7f94769e144807441b"
