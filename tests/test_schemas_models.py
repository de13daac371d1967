"""The provider settings models: fields, defaults, env fallbacks, immutability, bad input."""

from __future__ import annotations

import math
import os
import pickle
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from schemas import (
    AzureOpenAISettings,
    CerebrasSettings,
    GroqSettings,
    OpenAISettings,
    ProviderSettings,
    SettingsError,
    TimeoutParts,
)

ALL_MODELS: list[type[ProviderSettings]] = [OpenAISettings, AzureOpenAISettings, GroqSettings, CerebrasSettings]
ISOLATED_PREFIXES = ("OPENAI_", "AZURE_", "GROQ_", "CEREBRAS_", "CLIENTREG_", "TEAM_")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) and name != "CLIENTREG_FINGERPRINT_KEY":
            monkeypatch.delenv(name)


def _error_fields(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


# ---- fields and defaults ------------------------------------------------------------------


def test_openai_defaults_match_the_sdk() -> None:
    s = OpenAISettings()
    assert s.provider == "openai"
    assert s.api_key is None
    assert s.api_key_env is None
    assert s.base_url == "https://api.openai.com/v1"
    assert s.organization is None
    assert s.project is None
    assert s.timeout == TimeoutParts(connect=5, read=600, write=600, pool=600)  # openai.DEFAULT_TIMEOUT
    assert s.max_retries == 2
    assert dict(s.default_headers) == {}
    assert dict(s.default_query) == {}
    assert s.proxy is None
    assert s.verify is True
    assert (s.max_connections, s.max_keepalive_connections, s.keepalive_expiry) == (1000, 100, 5.0)


def test_azure_defaults() -> None:
    s = AzureOpenAISettings()
    assert s.provider == "azure_openai"
    assert (s.azure_endpoint, s.azure_deployment, s.api_version, s.base_url) == (None, None, None, None)
    assert (s.organization, s.project) == (None, None)
    assert s.timeout == TimeoutParts(connect=5, read=600, write=600, pool=600)
    assert s.max_retries == 2


@pytest.mark.parametrize(
    ("model", "provider", "base_url"),
    [(GroqSettings, "groq", "https://api.groq.com"), (CerebrasSettings, "cerebras", "https://api.cerebras.ai")],
)
def test_groq_and_cerebras_defaults(model: type[ProviderSettings], provider: str, base_url: str) -> None:
    s = model()
    assert s.provider == provider
    assert s.base_url == base_url
    assert s.timeout == TimeoutParts(connect=5, read=60, write=60, pool=60)
    assert s.max_retries == 2
    assert (s.max_connections, s.max_keepalive_connections) == (100, 20)


def test_cerebras_does_not_warm_tcp_connection_by_default() -> None:
    # The SDK's default makes a network request inside its constructor.
    assert CerebrasSettings().warm_tcp_connection is False
    assert CerebrasSettings(warm_tcp_connection=True).warm_tcp_connection is True
    assert "warm_tcp_connection" in (CerebrasSettings.__doc__ or "")


def test_every_transport_and_client_field_is_accepted() -> None:
    s = OpenAISettings(
        api_key="sk-test",
        base_url="http://localhost:11434/v1",
        organization="org-1",
        project="proj-1",
        timeout=TimeoutParts(connect=2, read=30, write=30, pool=10),
        max_retries=0,
        default_headers={"X-Team": "a"},
        default_query={"tenant": "t1"},
        proxy="http://proxy.local:3128",
        verify="/etc/ssl/ca.pem",
        max_connections=10,
        max_keepalive_connections=5,
        keepalive_expiry=1.5,
    )
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-test"
    assert s.base_url == "http://localhost:11434/v1"
    assert (s.organization, s.project) == ("org-1", "proj-1")
    assert s.timeout == TimeoutParts(connect=2, read=30, write=30, pool=10)
    assert s.max_retries == 0
    assert dict(s.default_headers) == {"X-Team": "a"}
    assert dict(s.default_query) == {"tenant": "t1"}
    assert s.proxy is not None and s.proxy.get_secret_value() == "http://proxy.local:3128"
    assert s.verify == "/etc/ssl/ca.pem"
    assert (s.max_connections, s.max_keepalive_connections, s.keepalive_expiry) == (10, 5, 1.5)


def test_azure_fields() -> None:
    s = AzureOpenAISettings(
        api_key="k", azure_endpoint="https://my.openai.azure.com/", azure_deployment="gpt-4o", api_version="2024-10-21"
    )
    assert s.azure_endpoint == "https://my.openai.azure.com"
    assert s.azure_deployment == "gpt-4o"
    assert s.api_version == "2024-10-21"


def test_timeout_parts_defaults_and_dict_input() -> None:
    s = OpenAISettings(timeout={"connect": 3})
    assert s.timeout == TimeoutParts(connect=3, read=600, write=600, pool=600)


def test_numbers_take_their_fields_type() -> None:
    s = OpenAISettings(
        timeout=30, max_retries=3.0, keepalive_expiry=2, max_connections=10.0, max_keepalive_connections=5.0
    )
    assert type(s.timeout) is float and s.timeout == 30.0
    assert type(s.max_retries) is int and s.max_retries == 3
    assert type(s.keepalive_expiry) is float
    assert type(s.max_connections) is int


def test_provider_field_is_fixed_per_model() -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(provider="groq")
    assert _error_fields(info.value) == ["provider"]


# ---- environment fallbacks ----------------------------------------------------------------

ENV_FALLBACKS = [
    (OpenAISettings, "api_key", "OPENAI_API_KEY", "sk-from-env", "sk-explicit"),
    (OpenAISettings, "base_url", "OPENAI_BASE_URL", "http://env.example:8000/v1", "http://explicit.example/v1"),
    (OpenAISettings, "organization", "OPENAI_ORG_ID", "org-env", "org-explicit"),
    (OpenAISettings, "project", "OPENAI_PROJECT_ID", "proj-env", "proj-explicit"),
    (AzureOpenAISettings, "api_key", "AZURE_OPENAI_API_KEY", "az-env", "az-explicit"),
    (
        AzureOpenAISettings,
        "azure_endpoint",
        "AZURE_OPENAI_ENDPOINT",
        "https://env.openai.azure.com",
        "https://x.azure.com",
    ),
    (AzureOpenAISettings, "api_version", "OPENAI_API_VERSION", "2024-02-01", "2024-10-21"),
    (GroqSettings, "api_key", "GROQ_API_KEY", "gsk-env", "gsk-explicit"),
    (GroqSettings, "base_url", "GROQ_BASE_URL", "http://groq-env.local", "http://groq-explicit.local"),
    (CerebrasSettings, "api_key", "CEREBRAS_API_KEY", "csk-env", "csk-explicit"),
    (CerebrasSettings, "base_url", "CEREBRAS_BASE_URL", "http://cb-env.local", "http://cb-explicit.local"),
]
ENV_IDS = [f"{m.__name__}.{f}" for m, f, *_ in ENV_FALLBACKS]


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.mark.parametrize(("model", "field", "variable", "env_value", "explicit"), ENV_FALLBACKS, ids=ENV_IDS)
def test_unset_field_falls_back_to_sdk_variable(
    monkeypatch: pytest.MonkeyPatch,
    model: type[ProviderSettings],
    field: str,
    variable: str,
    env_value: str,
    explicit: str,
) -> None:
    monkeypatch.setenv(variable, env_value)
    assert _plain(getattr(model(), field)) == env_value
    # None counts as unset, as in the SDKs.
    assert _plain(getattr(model(**{field: None}), field)) == env_value


@pytest.mark.parametrize(("model", "field", "variable", "env_value", "explicit"), ENV_FALLBACKS, ids=ENV_IDS)
def test_explicit_value_wins_over_variable(
    monkeypatch: pytest.MonkeyPatch,
    model: type[ProviderSettings],
    field: str,
    variable: str,
    env_value: str,
    explicit: str,
) -> None:
    monkeypatch.setenv(variable, env_value)
    s = model(**{field: explicit})
    assert _plain(getattr(s, field)) == explicit
    assert s.config_hash == _without_env(monkeypatch, variable, lambda: model(**{field: explicit}).config_hash)


def _without_env(monkeypatch: pytest.MonkeyPatch, variable: str, make: Any) -> Any:
    with monkeypatch.context() as m:
        m.delenv(variable)
        return make()


@pytest.mark.parametrize(("model", "field", "variable", "env_value", "explicit"), ENV_FALLBACKS, ids=ENV_IDS)
def test_variable_changes_the_hash(
    monkeypatch: pytest.MonkeyPatch,
    model: type[ProviderSettings],
    field: str,
    variable: str,
    env_value: str,
    explicit: str,
) -> None:
    before = model().config_hash
    monkeypatch.setenv(variable, env_value)
    assert model().config_hash != before


def test_environment_is_read_at_construction_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
    s = OpenAISettings()
    digest = s.config_hash
    monkeypatch.setenv("OPENAI_API_KEY", "sk-second")
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-first"
    assert s.config_hash == digest
    assert OpenAISettings().config_hash != digest


def test_env_fallback_values_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "ftp://files.example")
    with pytest.raises(ValidationError) as info:
        OpenAISettings()
    assert _error_fields(info.value) == ["base_url"]


def test_env_base_url_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "HTTP://LocalHost:11434/v1/")
    assert OpenAISettings().base_url == "http://localhost:11434/v1"


@pytest.mark.parametrize(
    ("model", "foreign_variable"),
    [
        (OpenAISettings, "GROQ_API_KEY"),
        (OpenAISettings, "AZURE_OPENAI_API_KEY"),
        (AzureOpenAISettings, "OPENAI_API_KEY"),
        (GroqSettings, "OPENAI_API_KEY"),
        (GroqSettings, "CEREBRAS_API_KEY"),
        (CerebrasSettings, "GROQ_API_KEY"),
    ],
)
def test_other_providers_variables_are_ignored(
    monkeypatch: pytest.MonkeyPatch, model: type[ProviderSettings], foreign_variable: str
) -> None:
    monkeypatch.setenv(foreign_variable, "someone-elses-key")
    assert model().api_key is None


@pytest.mark.parametrize("variable", ["OPENAI_BASE_URL", "CEREBRAS_BASE_URL"])
def test_groq_ignores_other_base_url_variables(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "http://elsewhere.local")
    assert GroqSettings().base_url == "https://api.groq.com"


def test_missing_api_key_is_allowed_here() -> None:
    s = OpenAISettings()
    assert s.api_key is None
    assert len(s.config_hash) == 64


def test_explicit_none_base_url_means_the_default() -> None:
    # As in the SDKs: base_url=None is "not given", so it is the same configuration.
    assert OpenAISettings(base_url=None).base_url == "https://api.openai.com/v1"
    assert OpenAISettings(base_url=None).config_hash == OpenAISettings().config_hash


def test_azure_base_url_is_not_blocked_by_endpoint_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK reads AZURE_OPENAI_ENDPOINT only when base_url is not given.
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://env.openai.azure.com")
    s = AzureOpenAISettings(base_url="https://my.openai.azure.com/openai/deployments/gpt-4o")
    assert s.azure_endpoint is None
    assert s.base_url == "https://my.openai.azure.com/openai/deployments/gpt-4o"


# ---- api_key_env --------------------------------------------------------------------------


def test_api_key_env_reads_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_B_OPENAI_KEY", "sk-team-b")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-account")
    s = OpenAISettings(api_key_env="TEAM_B_OPENAI_KEY")
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-team-b"
    assert s.api_key_env == "TEAM_B_OPENAI_KEY"


@pytest.mark.parametrize("model", [GroqSettings, CerebrasSettings, AzureOpenAISettings])
def test_api_key_env_works_for_every_provider(monkeypatch: pytest.MonkeyPatch, model: type[ProviderSettings]) -> None:
    monkeypatch.setenv("TEAM_KEY", "team-key")
    s = model(api_key_env="TEAM_KEY")
    assert s.api_key is not None and s.api_key.get_secret_value() == "team-key"


def test_api_key_env_unset_does_not_fall_back_to_another_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-account")
    assert OpenAISettings(api_key_env="TEAM_B_OPENAI_KEY").api_key is None


def test_explicit_api_key_wins_over_api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_B_OPENAI_KEY", "sk-team-b")
    s = OpenAISettings(api_key="sk-explicit", api_key_env="TEAM_B_OPENAI_KEY")
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-explicit"


def test_api_key_env_is_where_not_what(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_B_OPENAI_KEY", "sk-team-b")
    from_env = OpenAISettings(api_key_env="TEAM_B_OPENAI_KEY")
    direct = OpenAISettings(api_key="sk-team-b")
    assert from_env.config_hash == direct.config_hash
    assert "TEAM_B_OPENAI_KEY" not in from_env.canonical_json()


# ---- immutability -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["api_key", "timeout", "max_retries", "base_url", "default_headers", "verify"])
def test_fields_cannot_be_assigned(field: str) -> None:
    s = OpenAISettings(api_key="sk-a", default_headers={"X-A": "1"})
    digest = s.config_hash
    with pytest.raises(ValidationError):
        setattr(s, field, OpenAISettings().__dict__[field])
    assert s.config_hash == digest == OpenAISettings(api_key="sk-a", default_headers={"X-A": "1"}).config_hash


@pytest.mark.parametrize("field", ["default_headers", "default_query"])
def test_mutating_the_input_dict_does_not_change_the_model(field: str) -> None:
    given = {"X-Team": "a"}
    s = OpenAISettings(**{field: given})
    digest = s.config_hash
    given["X-Team"] = "b"
    given["X-New"] = "c"
    assert dict(getattr(s, field)) == {"X-Team": "a"}
    assert s.canonical_json() == OpenAISettings(**{field: {"X-Team": "a"}}).canonical_json()
    assert s.config_hash == digest


@pytest.mark.parametrize("field", ["default_headers", "default_query"])
def test_dict_fields_cannot_be_mutated(field: str) -> None:
    s = OpenAISettings(**{field: {"X-Team": "a"}})
    mapping: Any = getattr(s, field)
    with pytest.raises(TypeError):
        mapping["X-Team"] = "b"
    with pytest.raises(TypeError):
        del mapping["X-Team"]
    with pytest.raises(AttributeError):
        mapping.update({"X-Team": "b"})
    with pytest.raises(AttributeError):
        mapping.clear()
    assert dict(getattr(s, field)) == {"X-Team": "a"}


@pytest.mark.parametrize("field", ["default_headers", "default_query"])
def test_copies_read_back_do_not_reach_the_model(field: str) -> None:
    s = OpenAISettings(**{field: {"X-Team": "a"}})
    s.model_dump()[field]["X-Team"] = "b"
    dict(getattr(s, field))["X-Team"] = "b"
    assert dict(getattr(s, field)) == {"X-Team": "a"}


def test_timeout_parts_are_frozen() -> None:
    s = OpenAISettings(timeout=TimeoutParts(connect=2))
    assert isinstance(s.timeout, TimeoutParts)
    with pytest.raises(ValidationError):
        s.timeout.connect = 9.0  # type: ignore[misc]


def test_settings_are_hashable_and_equal_by_configuration() -> None:
    a = OpenAISettings(api_key="sk-a", timeout=30, default_headers={"X-A": "1"})
    b = OpenAISettings(api_key="sk-a", timeout=30.0, default_headers={"x-a": "1"})
    c = OpenAISettings(api_key="sk-b", timeout=30)
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2


def test_model_copy_with_update_is_validated_and_rehashed() -> None:
    s = OpenAISettings(api_key="sk-a", timeout=30)
    assert s.config_hash  # cache it
    copy = s.model_copy(update={"timeout": 5})
    assert copy.timeout == 5.0
    assert copy.config_hash == OpenAISettings(api_key="sk-a", timeout=5).config_hash != s.config_hash
    with pytest.raises(ValidationError):
        s.model_copy(update={"max_retries": -1})
    headers_copy = s.model_copy(update={"default_headers": {"X-A": "1"}})
    with pytest.raises(TypeError):
        headers_copy.default_headers["X-A"] = "2"  # type: ignore[index]


def test_model_copy_without_update_is_equal() -> None:
    s = OpenAISettings(api_key="sk-a", default_headers={"X-A": "1"})
    assert s.model_copy() == s
    assert s.model_copy(deep=True).config_hash == s.config_hash


# ---- unknown fields -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "typo", "meant"),
    [
        (OpenAISettings, "max_retires", "max_retries"),
        (OpenAISettings, "api_kye", "api_key"),
        (OpenAISettings, "organisation", "organization"),
        (OpenAISettings, "timout", "timeout"),
        (OpenAISettings, "default_header", "default_headers"),
        (AzureOpenAISettings, "azure_endpiont", "azure_endpoint"),
        (AzureOpenAISettings, "api_verison", "api_version"),
        (GroqSettings, "base_ur", "base_url"),
        (CerebrasSettings, "warm_tcp_connections", "warm_tcp_connection"),
    ],
)
def test_unknown_field_names_it_and_the_near_match(model: type[ProviderSettings], typo: str, meant: str) -> None:
    with pytest.raises(ValidationError) as info:
        model(**{typo: 1})
    assert _error_fields(info.value) == [typo]
    message = str(info.value)
    assert f"unknown field '{typo}'" in message
    assert f"did you mean '{meant}'?" in message


def test_unknown_field_without_near_match_lists_known_fields() -> None:
    with pytest.raises(ValidationError) as info:
        GroqSettings(zzzzzz=1)
    message = str(info.value)
    assert "unknown field 'zzzzzz'" in message
    assert "did you mean" not in message
    assert "max_retries" in message and "base_url" in message


def test_field_of_another_provider_is_unknown() -> None:
    with pytest.raises(ValidationError) as info:
        GroqSettings(organization="org-1")
    assert _error_fields(info.value) == ["organization"]
    with pytest.raises(ValidationError) as info:
        OpenAISettings(warm_tcp_connection=False)
    assert _error_fields(info.value) == ["warm_tcp_connection"]


def test_every_unknown_field_is_named() -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(max_retires=3, timout=5)
    assert sorted(_error_fields(info.value)) == ["max_retires", "timout"]


# ---- wrong types and out-of-range values --------------------------------------------------

BAD_VALUES: list[tuple[type[ProviderSettings], str, Any]] = [
    (OpenAISettings, "timeout", -1),
    (OpenAISettings, "timeout", 0),
    (OpenAISettings, "timeout", -math.inf),
    (OpenAISettings, "timeout", math.nan),
    (OpenAISettings, "timeout", "never"),
    (OpenAISettings, "timeout", "soon"),
    (OpenAISettings, "timeout", [1, 2]),
    (OpenAISettings, "max_retries", -1),
    (OpenAISettings, "max_retries", 1.5),
    (OpenAISettings, "max_retries", "many"),
    (OpenAISettings, "max_connections", 0),
    (OpenAISettings, "max_keepalive_connections", -1),
    (OpenAISettings, "keepalive_expiry", -0.5),
    (OpenAISettings, "api_key", 12345),
    (OpenAISettings, "organization", ["org"]),
    (OpenAISettings, "default_headers", {"X-A": 1}),
    (OpenAISettings, "default_headers", ["X-A"]),
    (OpenAISettings, "default_headers", {"X-A": "1", "x-a": "2"}),
    (OpenAISettings, "default_headers", {"Bad Name": "1"}),
    (OpenAISettings, "default_query", {"a": 1}),
    (OpenAISettings, "verify", ["ca.pem"]),
    (OpenAISettings, "proxy", "ftp://proxy.local"),
    (OpenAISettings, "proxy", "proxy.local:3128"),
    (OpenAISettings, "proxy", "http://"),
    (OpenAISettings, "proxy", "http://proxy.local:notaport"),
    (GroqSettings, "timeout", -5),
    (CerebrasSettings, "warm_tcp_connection", "sometimes"),
    (AzureOpenAISettings, "api_version", 2024),
]


@pytest.mark.parametrize(
    ("model", "field", "value"), BAD_VALUES, ids=[f"{m.__name__}.{f}={v!r}" for m, f, v in BAD_VALUES]
)
def test_bad_value_is_an_error_naming_the_field(model: type[ProviderSettings], field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        model(**{field: value})
    fields = _error_fields(info.value)
    assert fields and all(f.split(".")[0] == field for f in fields), fields
    assert field in str(info.value)


@pytest.mark.parametrize("part", ["connect", "read", "write", "pool"])
@pytest.mark.parametrize("value", [-1, 0, -math.inf, math.nan, "never"])
def test_bad_timeout_part_names_the_part(part: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(timeout={part: value})
    assert any(f.startswith("timeout") and f.endswith(part) for f in _error_fields(info.value))


def test_keepalive_above_max_connections_is_an_error() -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(max_connections=5, max_keepalive_connections=6)
    assert "max_keepalive_connections" in str(info.value)
    assert OpenAISettings(max_connections=5, max_keepalive_connections=5).max_keepalive_connections == 5


# ---- base_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.example.com",
        "file:///etc/passwd",
        "ws://api.example.com",
        "localhost:8000/v1",
        "api.example.com",
        "",
        "https://",
        "http:///v1",
        "https://user:pw@api.example.com",
        "https://api.example.com:99999",
    ],
)
@pytest.mark.parametrize("model", [OpenAISettings, GroqSettings, CerebrasSettings, AzureOpenAISettings])
def test_base_url_must_be_http_or_https(model: type[ProviderSettings], url: str) -> None:
    with pytest.raises(ValidationError) as info:
        model(base_url=url)
    assert _error_fields(info.value) == ["base_url"]


@pytest.mark.parametrize("url", ["ftp://my.openai.azure.com", "my.openai.azure.com", "https://"])
def test_azure_endpoint_must_be_http_or_https(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        AzureOpenAISettings(azure_endpoint=url)
    assert _error_fields(info.value) == ["azure_endpoint"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://api.example.com/v1/", "https://api.example.com/v1"),
        ("https://api.example.com/v1///", "https://api.example.com/v1"),
        ("HTTPS://API.Example.COM/v1", "https://api.example.com/v1"),
        ("https://api.example.com:443/v1", "https://api.example.com/v1"),
        ("http://api.example.com:80/v1", "http://api.example.com/v1"),
        ("http://api.example.com:8080/v1", "http://api.example.com:8080/v1"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1"),
        ("http://[::1]:8000/v1/", "http://[::1]:8000/v1"),
        ("https://api.example.com/", "https://api.example.com"),
        ("https://api.example.com/V1", "https://api.example.com/V1"),
    ],
)
def test_base_url_is_normalised(given: str, stored: str) -> None:
    assert OpenAISettings(base_url=given).base_url == stored


def test_openai_compatible_server_is_openai_settings_with_a_url() -> None:
    local = OpenAISettings(base_url="http://localhost:11434/v1", api_key="ollama")
    assert local.provider == "openai"
    assert local.base_url == "http://localhost:11434/v1"
    assert local.config_hash != OpenAISettings(api_key="ollama").config_hash


# ---- Azure endpoint / base_url --------------------------------------------------------------


def test_azure_endpoint_and_base_url_are_exclusive() -> None:
    with pytest.raises(ValidationError) as info:
        AzureOpenAISettings(azure_endpoint="https://a.openai.azure.com", base_url="https://b.openai.azure.com/openai")
    message = str(info.value)
    assert "azure_endpoint" in message and "base_url" in message


def test_azure_accepts_either_endpoint_or_base_url() -> None:
    by_endpoint = AzureOpenAISettings(azure_endpoint="https://a.openai.azure.com")
    by_url = AzureOpenAISettings(base_url="https://a.openai.azure.com/openai/deployments/gpt-4o")
    assert by_endpoint.azure_endpoint == "https://a.openai.azure.com" and by_endpoint.base_url is None
    assert by_url.base_url == "https://a.openai.azure.com/openai/deployments/gpt-4o" and by_url.azure_endpoint is None
    assert by_endpoint.config_hash != by_url.config_hash


@pytest.mark.parametrize("field", ["timeout", "max_retries", "max_connections", "keepalive_expiry"])
def test_a_bool_is_not_taken_for_a_number(field: str) -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(**{field: True})
    assert info.value.errors()[0]["loc"] == (field,)
    assert "not true/false" in str(info.value)


def test_a_credential_in_the_base_url_query_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        OpenAISettings(base_url="https://gateway.example/v1?api-key=sk-in-the-url")
    assert info.value.errors()[0]["loc"] == ("base_url",)
    assert "sk-in-the-url" not in str(info.value)
    # Only parameters known or declared to be public may stay in a URL, which is stored as written.
    with pytest.raises(ValidationError) as info:
        OpenAISettings(base_url="https://gateway.example/v1?region=eu")
    assert "public_query" in str(info.value)
    declared = OpenAISettings(base_url="https://gateway.example/v1?region=eu", public_query=["region"])
    assert declared.base_url is not None and declared.base_url.endswith("?region=eu")
    assert OpenAISettings(base_url="https://x.example/openai?api-version=2024-10-21").base_url is not None


# ---- one exception type for bad configuration: SettingsError ---------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: OpenAISettings(timeout=-1), "timeout"),
        (lambda: AzureOpenAISettings(max_retries="many"), "max_retries"),
        (lambda: GroqSettings(bogus=1), "bogus"),
        (lambda: CerebrasSettings(base_url="ftp://x"), "base_url"),
        (lambda: TimeoutParts(connect=-1), "connect"),
        (lambda: OpenAISettings.model_validate({"verify": [1]}), "verify"),
        (lambda: OpenAISettings.model_validate_json('{"timeout": -1}'), "timeout"),
        (lambda: GroqSettings.model_validate_strings({"max_retries": "-1"}), "max_retries"),
        (lambda: OpenAISettings(api_key="k").model_copy(update={"max_retries": -1}), "max_retries"),
    ],
)
def test_bad_arguments_raise_settings_error(make: Any, field: str) -> None:
    with pytest.raises(SettingsError) as info:
        make()
    assert info.value.field == field
    # The same object is pydantic's ValidationError and a ValueError: older handlers still work.
    assert isinstance(info.value, ValidationError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "field", "absent"),
    [
        ("soon", "timeout", ["timeout.float", "TimeoutParts", "float_parsing"]),
        ([1, 2], "timeout", ["timeout.float", "TimeoutParts"]),
        ({"connect": 0}, "timeout.connect", ["timeout.float", "TimeoutParts", "timeout.TimeoutParts"]),
    ],
)
def test_timeout_errors_name_real_fields(value: Any, field: str, absent: list[str]) -> None:
    with pytest.raises(SettingsError) as info:
        OpenAISettings(timeout=value)
    message = str(info.value)
    assert f"OpenAISettings: field '{field}'" in message
    for word in absent:
        assert word not in message
    assert info.value.fields == (field,)
    assert [e["loc"] for e in info.value.errors()] == [tuple(field.split("."))]
    assert message.count("\n") == 0  # one problem, one line


def test_a_union_error_is_one_message_saying_what_is_accepted() -> None:
    with pytest.raises(SettingsError) as info:
        OpenAISettings(verify=[1])
    assert str(info.value) == "OpenAISettings: field 'verify': must be true, false or the path of a CA bundle"


def test_every_problem_is_listed_with_its_field() -> None:
    with pytest.raises(SettingsError) as info:
        OpenAISettings(timeout=-1, max_retries=-1, max_connections=0)
    assert set(info.value.fields) == {"timeout", "max_retries", "max_connections"}
    assert len(str(info.value).splitlines()) == 3


def test_settings_error_errors_never_hold_the_input() -> None:
    with pytest.raises(SettingsError) as info:
        OpenAISettings(api_key=["sk-LEAK-in-a-list"], default_headers={"X-A": 1})
    assert "LEAK" not in repr(info.value.errors())
    assert "LEAK" not in repr(info.value.errors(include_input=True))  # pydantic's flag cannot bring it back


def test_settings_error_survives_pickling() -> None:
    with pytest.raises(SettingsError) as info:
        OpenAISettings(timeout=-1)
    restored = pickle.loads(pickle.dumps(info.value))
    assert isinstance(restored, SettingsError)
    assert str(restored) == str(info.value) and restored.field == "timeout"


def test_settings_error_does_not_chain_pydantics_error() -> None:
    with pytest.raises(SettingsError) as info:
        OpenAISettings(default_headers={"X-LEAK: line": "v"})
    assert info.value.__cause__ is None and info.value.__context__ is None
