"""No secret reaches repr, str, JSON dumps, the canonical form, or an error message.

Every secret below contains the marker ``LEAK``, and nothing else in these tests does, so a
scan for the marker finds any secret, or any part of one that is long enough to matter.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import schemas
from schemas import (
    AzureOpenAISettings,
    CerebrasSettings,
    GroqSettings,
    OpenAISettings,
    ProviderSettings,
    SettingsError,
    fingerprint,
)
from schemas._canonical import looks_like_credential

MARK = "LEAK"
API_KEY = "sk-LEAK-apikey-7f3a9c"
PROXY_USER = "usr-LEAK-proxyuser"
PROXY_PASSWORD = "pw-LEAK-proxy-51e2"
AUTH_HEADER = "Bearer tok-LEAK-authorization-1"
AZURE_HEADER = "az-LEAK-api-key-header-2"
X_API_KEY = "xk-LEAK-x-api-key-3"
COOKIE = "session=ck-LEAK-cookie-4"
QUERY_SECRET = "qs-LEAK-query-5"
ALL_SECRETS = [API_KEY, PROXY_USER, PROXY_PASSWORD, AUTH_HEADER, AZURE_HEADER, X_API_KEY, COOKIE, QUERY_SECRET]
ISOLATED_PREFIXES = ("OPENAI_", "AZURE_", "GROQ_", "CEREBRAS_", "CLIENTREG_", "TEAM_")

SECRET_FIELDS: dict[str, Any] = {
    "api_key": API_KEY,
    "proxy": f"http://{PROXY_USER}:{PROXY_PASSWORD}@proxy.local:3128",
    "default_headers": {
        "Authorization": AUTH_HEADER,
        "api-key": AZURE_HEADER,
        "X-Api-Key": X_API_KEY,
        "Cookie": COOKIE,
        "X-Team": "search",
    },
    "default_query": {"api_key": QUERY_SECRET, "tenant": "t1"},
    "public_headers": ["X-Team"],  # declared public: written in clear
    "public_query": ["tenant"],
}
MODELS: list[type[ProviderSettings]] = [OpenAISettings, AzureOpenAISettings, GroqSettings, CerebrasSettings]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) and name != "CLIENTREG_FINGERPRINT_KEY":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def assert_no_secret(text: str, where: str) -> None:
    assert MARK not in text, f"a secret reached {where}: {text!r}"


def _exception_texts(exc: BaseException) -> dict[str, str]:
    """Every text an exception shows: str, repr, the formatted traceback, and its whole chain."""
    texts = {"str": str(exc), "repr": repr(exc), "traceback": "".join(traceback.format_exception(exc))}
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts[f"chain {type(current).__name__} str"] = str(current)
        texts[f"chain {type(current).__name__} repr"] = repr(current)
        if isinstance(current, SettingsError):
            texts["attributes"] = f"{current.path} {current.profile} {current.field}"
        current = current.__cause__ or current.__context__
    return texts


def assert_error_has_no_secret(make: Callable[[], object], expected: type[BaseException] = ValidationError) -> str:
    with pytest.raises(expected) as info:
        make()
    for where, text in _exception_texts(info.value).items():
        assert_no_secret(text, where)
    return str(info.value)


# ---- the settings object itself ---------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_secrets_are_not_in_any_rendering(model: type[ProviderSettings]) -> None:
    s = model(**SECRET_FIELDS)
    renderings = {
        "repr": repr(s),
        "str": str(s),
        "format": f"{s}",
        "model_dump_json": s.model_dump_json(),
        "model_dump(mode=json)": json.dumps(s.model_dump(mode="json")),
        "canonical_json": s.canonical_json(),
        "canonical_dict": repr(s.canonical_dict()),
        "transport_key": s.transport_key,
        "config_hash": s.config_hash,
        "repr(headers)": repr(s.default_headers),
        "str(headers)": str(s.default_headers),
        "repr(query)": repr(s.default_query),
        "repr(api_key)": repr(s.api_key),
        "str(api_key)": str(s.api_key),
        "repr(proxy)": repr(s.proxy),
        "str(proxy)": str(s.proxy),
        "repr_args": repr(list(s.__repr_args__())),
    }
    for where, text in renderings.items():
        assert_no_secret(text, where)


def test_secrets_are_replaced_by_their_fingerprints() -> None:
    doc = json.loads(OpenAISettings(**SECRET_FIELDS).canonical_json())
    assert doc["api_key"] == fingerprint(API_KEY)
    assert doc["transport"]["proxy"] == "http://proxy.local:3128"
    assert doc["transport"]["proxy_credentials"] == fingerprint(f"{PROXY_USER}:{PROXY_PASSWORD}")
    assert doc["default_headers"] == {
        "authorization": fingerprint(AUTH_HEADER),
        "api-key": fingerprint(AZURE_HEADER),
        "x-api-key": fingerprint(X_API_KEY),
        "cookie": fingerprint(COOKIE),
        "x-team": "search",
    }
    assert doc["default_query"] == {"api_key": fingerprint(QUERY_SECRET), "tenant": "t1"}


def test_the_real_values_stay_available_to_the_client_builder() -> None:
    s = OpenAISettings(**SECRET_FIELDS)
    assert s.api_key is not None and s.api_key.get_secret_value() == API_KEY
    assert s.proxy is not None and PROXY_PASSWORD in s.proxy.get_secret_value()
    assert s.default_headers["Authorization"] == AUTH_HEADER
    assert s.model_dump()["default_headers"]["Cookie"] == COOKIE
    assert s.default_query["api_key"] == QUERY_SECRET


def test_secret_values_lists_every_secret_for_redaction() -> None:
    found = OpenAISettings(**SECRET_FIELDS).secret_values()
    for secret in ALL_SECRETS:
        assert secret in found
    assert "search" not in found and "t1" not in found


@pytest.mark.parametrize(
    "header", ["X-Goog-Api-Key", "X-Auth-Token", "Proxy-Authorization", "X-Client-Secret", "Set-Cookie"]
)
def test_other_credential_headers_are_hidden_too(header: str) -> None:
    s = OpenAISettings(default_headers={header: "hv-LEAK-9"})
    for text in (repr(s), s.model_dump_json(), s.canonical_json()):
        assert_no_secret(text, header)


def test_secret_from_environment_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("TEAM_B_KEY", API_KEY + "-b")
    for s in (OpenAISettings(), OpenAISettings(api_key_env="TEAM_B_KEY")):
        for text in (repr(s), str(s), s.model_dump_json(), s.canonical_json()):
            assert_no_secret(text, "env key")


# ---- errors provoked next to secrets -------------------------------------------------------------

BAD_NEXT_TO_SECRETS: list[tuple[str, dict[str, Any]]] = [
    ("negative retries", {"max_retries": -1}),
    ("negative timeout", {"timeout": -5}),
    ("timeout part", {"timeout": {"connect": 0}}),
    ("bad base_url", {"base_url": "ftp://files.example"}),
    ("unknown field", {"max_retires": 3}),
    ("limits", {"max_connections": 1, "max_keepalive_connections": 2}),
    ("bad verify", {"verify": [1]}),
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("name", "bad"), BAD_NEXT_TO_SECRETS, ids=[b[0] for b in BAD_NEXT_TO_SECRETS])
def test_validation_error_next_to_secrets_holds_none(
    model: type[ProviderSettings], name: str, bad: dict[str, Any]
) -> None:
    assert_error_has_no_secret(lambda: model(**{**SECRET_FIELDS, **bad}))


SECRET_IN_BAD_VALUE: list[tuple[str, dict[str, Any]]] = [
    ("api_key wrong type", {"api_key": [API_KEY]}),
    ("api_key number-like list", {"api_key": {"key": API_KEY}}),
    ("proxy scheme", {"proxy": f"ftp://{PROXY_USER}:{PROXY_PASSWORD}@proxy.local"}),
    ("proxy without host", {"proxy": f"http://{PROXY_USER}:{PROXY_PASSWORD}"}),
    ("proxy without scheme", {"proxy": f"{PROXY_USER}:{PROXY_PASSWORD}@proxy.local:3128"}),
    ("proxy empty host", {"proxy": f"http://{PROXY_USER}:{PROXY_PASSWORD}@"}),
    ("proxy bracketed", {"proxy": f"http://[{PROXY_PASSWORD}]:1"}),
    ("base_url credentials", {"base_url": f"https://{PROXY_USER}:{PROXY_PASSWORD}@api.example.com"}),
    ("base_url password as port", {"base_url": f"https://{PROXY_USER}:{PROXY_PASSWORD}/v1"}),
    ("base_url bracketed", {"base_url": f"https://[{PROXY_PASSWORD}]/v1"}),
    ("header value wrong type", {"default_headers": {"Authorization": [AUTH_HEADER]}}),
    ("bad header name", {"default_headers": {"Bad Name": AUTH_HEADER}}),
    ("duplicate header", {"default_headers": {"Authorization": AUTH_HEADER, "authorization": X_API_KEY}}),
    ("query value wrong type", {"default_query": {"api_key": [QUERY_SECRET]}}),
    ("timeout holding a secret", {"timeout": API_KEY}),
    ("timeout part holding a secret", {"timeout": {"connect": API_KEY}}),
    ("unknown timeout part", {"timeout": {"bogus": API_KEY}}),
    ("unknown field holding a secret", {"apikey": API_KEY}),
    ("organization wrong type", {"organization": [API_KEY]}),
]


@pytest.mark.parametrize(("name", "bad"), SECRET_IN_BAD_VALUE, ids=[b[0] for b in SECRET_IN_BAD_VALUE])
def test_error_about_a_secret_value_does_not_quote_it(name: str, bad: dict[str, Any]) -> None:
    message = assert_error_has_no_secret(lambda: OpenAISettings(**bad))
    assert next(iter(bad)) in message  # it still names the field


def test_azure_exclusivity_error_holds_no_secret() -> None:
    assert_error_has_no_secret(
        lambda: AzureOpenAISettings(
            **SECRET_FIELDS, azure_endpoint="https://a.openai.azure.com", base_url="https://b.openai.azure.com"
        )
    )


def test_error_from_environment_values_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"https://{PROXY_USER}:{PROXY_PASSWORD}@api.example.com")
    assert_error_has_no_secret(OpenAISettings)
    monkeypatch.setenv("OPENAI_BASE_URL", "ftp://x")
    assert_error_has_no_secret(OpenAISettings)


def test_model_copy_error_holds_no_secret() -> None:
    s = OpenAISettings(**SECRET_FIELDS)
    assert_error_has_no_secret(lambda: s.model_copy(update={"max_retries": -1}))
    assert_error_has_no_secret(lambda: s.model_copy(update={"proxy": f"http://{PROXY_USER}:{PROXY_PASSWORD}"}))


# ---- the loader ------------------------------------------------------------------------------

PROFILE_WITH_LITERAL_KEY = f"""
[profiles.main]
provider = "openai"
api_key = "{API_KEY}"
proxy = "http://{PROXY_USER}:{PROXY_PASSWORD}@proxy.local:3128"
default_headers = {{ Authorization = "{AUTH_HEADER}", Cookie = "{COOKIE}" }}
default_query = {{ api_key = "{QUERY_SECRET}" }}
"""

BAD_FILES: list[tuple[str, str]] = [
    ("bad retries", PROFILE_WITH_LITERAL_KEY + "max_retries = -1\n"),
    ("unknown field", PROFILE_WITH_LITERAL_KEY + "max_retires = 3\n"),
    ("bad base_url", PROFILE_WITH_LITERAL_KEY + 'base_url = "ftp://x"\n'),
    ("bad provider", PROFILE_WITH_LITERAL_KEY.replace('"openai"', '"openia"')),
    ("no provider", PROFILE_WITH_LITERAL_KEY.replace('provider = "openai"\n', "")),
    ("key of wrong type", f'[profiles.main]\nprovider = "openai"\napi_key = ["{API_KEY}"]\n'),
    ("unknown table", PROFILE_WITH_LITERAL_KEY + f'[secrets]\nkey = "{API_KEY}"\n'),
    ("unknown index field", PROFILE_WITH_LITERAL_KEY + f'[index]\npath = "/tmp/x"\ntoken = "{API_KEY}"\n'),
    ("proxy without host", f'[profiles.main]\nprovider = "groq"\nproxy = "http://{PROXY_USER}:{PROXY_PASSWORD}"\n'),
    ("unterminated key string", f'[profiles.main]\nprovider = "openai"\napi_key = "{API_KEY}\n'),
    ("bare key", f'[profiles.main]\nprovider = "openai"\napi_key = {API_KEY}\n'),
    ("duplicate key", PROFILE_WITH_LITERAL_KEY + f'api_key = "{API_KEY}"\n'),
    (
        "bad inline table",
        f'[profiles.main]\nprovider = "openai"\ndefault_headers = {{ Authorization = "{AUTH_HEADER}" \n',
    ),
]


@pytest.mark.parametrize(("name", "content"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_loader_error_on_file_with_literal_secrets_holds_none(tmp_path: Path, name: str, content: str) -> None:
    file = tmp_path / "clientreg.toml"
    file.write_text(content, encoding="utf-8")
    message = assert_error_has_no_secret(lambda: schemas.load_settings(file), SettingsError)
    assert str(file) in message


def test_good_file_with_literal_secrets_renders_none(tmp_path: Path) -> None:
    file = tmp_path / "clientreg.toml"
    file.write_text(PROFILE_WITH_LITERAL_KEY, encoding="utf-8")
    settings = schemas.load_settings(file)
    profile = settings.profiles["main"]
    assert profile.api_key is not None and profile.api_key.get_secret_value() == API_KEY
    for where, text in {
        "settings repr": repr(settings),
        "settings str": str(settings),
        "settings json": settings.model_dump_json(),
        "profile canonical": profile.canonical_json(),
    }.items():
        assert_no_secret(text, where)


@pytest.mark.parametrize(
    ("variables", "error"),
    [
        ({"CLIENTREG_PROFILES__MAIN__API_KEY": API_KEY, "CLIENTREG_PROFILES__MAIN__MAX_RETRIES": "-1"}, "retries"),
        ({"CLIENTREG_PROFILES__MAIN__API_KEY": API_KEY}, "no provider"),
        ({"CLIENTREG_PROFILES": f'{{"main": {{"provider": "openai", "api_key": "{API_KEY}"'}, "invalid JSON"),
        ({"CLIENTREG_PROFILES": f'{{"main": {{"provider": "openai", "api_key": "{API_KEY}", "x": 1}}}}'}, "unknown"),
        (
            {"CLIENTREG_PROFILES__MAIN__PROVIDER": "groq", "CLIENTREG_PROFILES__MAIN__PROXY": f"http://u:{API_KEY}"},
            "px",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_loader_error_from_environment_holds_no_secret(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], error: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert_error_has_no_secret(schemas.load_settings, SettingsError)


# ---- what looks like a credential --------------------------------------------------------------

LOOK_LIKE_CREDENTIALS = [
    "sk-proj-Xy7Qm2Lp9Rt4Vw8Zb3Nc6Df1Gh5Jk0",
    "sk-svcacct-abcdefgh12345678",
    "sk-ant-api03-abcdefgh12345678",
    "gsk_AbCdEf0123456789GhIjKl",
    "csk-abcdef1234567890",
    "xai-AbCdEf0123456789",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat_11ABCDEFG0123456789_abcdefghijkl",
    "xoxb-123456789012-abcdefghijkl",
    "AKIAIOSFODNN7EXAMPLE",
    "Bearer abcdefgh12345678",
    "basic dXNlcjpwYXNzd29yZA==",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "9f86d081884c7d659a2feaa0c55ad015",  # 32 hex: an Azure key's shape
    "tq3Fz+9Kb/2XwLm8Rp0Vn7Yc4Hd1Gs6Je5Ua3Io9",  # an AWS secret key's shape
    "Q2xpZW50UmVnIGlzIGEgdGVzdCBzdHJpbmc9PQ",
    "Authorization: Bearer sk-LEAK-whole-header-line",  # a header line pasted as a name
    "sv=2024-11-04&ss=b&sig=Xy7Qm2Lp9Rt4Vw8Zb3Nc6Df1Gh5Jk0a",  # an Azure SAS query
    "-----BEGIN PRIVATE KEY-----",
]
NOT_CREDENTIALS = [
    "",
    "search",
    "sk-team",
    "risk-team-alpha",
    "TEAM_B_OPENAI_KEY",
    "OPENAI_API_KEY_PROD_EU_WEST_2024",
    "CLIENTREG_PROFILES__FAST__TIMEOUT",
    "myServiceAccountName2024",
    "vault-openai",
    "my_company.llm_keys:openai_key_provider",
    "123e4567-e89b-12d3-a456-426614174000",  # a UUID: request and tenant ids
    "https://my-resource.openai.azure.com/openai/deployments/gpt-4o-mini",
    "gpt-4o-mini-2024-07-18",
    "2024-10-21",
    "application/json",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    "/etc/ssl/certs/ca-certificates.crt",
    "internationalization_infrastructure",
    "12345678901234567890123",
    "pass a Bearer token",
]


@pytest.mark.parametrize("text", LOOK_LIKE_CREDENTIALS)
def test_looks_like_credential_recognises_keys_tokens_and_random_strings(text: str) -> None:
    assert looks_like_credential(text)
    assert looks_like_credential(f"prefix {text} suffix")  # wherever it was put


@pytest.mark.parametrize("text", NOT_CREDENTIALS)
def test_looks_like_credential_leaves_names_urls_and_ids_alone(text: str) -> None:
    assert not looks_like_credential(text)


def test_looks_like_credential_catches_nearly_every_random_key() -> None:
    import random
    import secrets
    import string

    rng = random.Random(4242)
    alphabet = string.ascii_letters + string.digits
    samples = [secrets.token_hex(16) for _ in range(300)]
    samples += ["".join(rng.choices(alphabet, k=32)) for _ in range(300)]
    samples += [secrets.token_urlsafe(32) for _ in range(300)]
    missed = [s for s in samples if not looks_like_credential(s)]
    assert len(missed) <= len(samples) // 50, missed  # at most 2% of 32-character random keys slip through


# ---- a value that looks like a credential is never echoed, wherever it was put -------------------

PASTED = "sk-proj-LEAKq7Xm2Lp9Rt4Vw8Zb3Nc6Df1Gh5"


@pytest.mark.parametrize("model", MODELS)
def test_a_key_pasted_as_api_key_env_is_refused_and_not_echoed(model: type[ProviderSettings]) -> None:
    message = assert_error_has_no_secret(lambda: model(api_key_env=PASTED), SettingsError)
    assert "api_key_env" in message and "looks like a key" in message


@pytest.mark.parametrize("name", ["MY VAR", "1ST_KEY", "TEAM-B-KEY", "KEY=value", ""])
def test_api_key_env_must_be_a_variable_name(name: str) -> None:
    with pytest.raises(SettingsError) as info:
        OpenAISettings(api_key_env=name)
    assert info.value.field == "api_key_env"
    assert OpenAISettings(api_key_env="team_b_openai_key_2").api_key_env == "team_b_openai_key_2"


def test_a_key_pasted_as_api_key_env_in_a_file_is_not_echoed(tmp_path: Path) -> None:
    file = tmp_path / "clientreg.toml"
    file.write_text(f'[profiles.main]\nprovider = "openai"\napi_key_env = "{PASTED}"\n', encoding="utf-8")
    message = assert_error_has_no_secret(lambda: schemas.load_settings(file), SettingsError)
    assert "profile 'main', field 'api_key_env'" in message


@pytest.mark.parametrize(
    "name", ["Authorization: Bearer sk-LEAK-whole-line-1234", "X-Pass: LEAK-hunter2", "X-Token LEAK", "X-LEAK\n"]
)
def test_a_header_line_used_as_a_header_name_is_not_quoted(name: str) -> None:
    message = assert_error_has_no_secret(lambda: OpenAISettings(default_headers={name: "v"}), SettingsError)
    assert "default_headers" in message


def test_a_header_name_that_looks_like_a_key_is_refused() -> None:
    message = assert_error_has_no_secret(lambda: OpenAISettings(default_headers={PASTED: "v"}), SettingsError)
    assert "looks like a credential" in message
    message = assert_error_has_no_secret(lambda: OpenAISettings(default_query={PASTED: "v"}), SettingsError)
    assert "default_query" in message


def test_a_wrong_value_under_a_pasted_name_does_not_quote_the_name() -> None:
    headers = {"X-Pass: LEAK-1": 5}
    message = assert_error_has_no_secret(lambda: OpenAISettings(default_headers=headers), SettingsError)
    assert "a name not shown" in message or "not an HTTP token" in message


# ---- header and query values are fingerprinted unless their name is public ---------------------

# Names the old rule (a list of credential-like words) let through in clear.
MISSED_QUERY_NAMES = ["sig", "code", "pwd", "jwt", "session", "bearer", "se", "sp", "client_id"]
MISSED_HEADER_NAMES = ["X-Pass", "X-Session", "X-JWT", "X-Sig", "X-Tenant-Secret-Ish", "X-Custom"]


@pytest.mark.parametrize("name", MISSED_QUERY_NAMES)
def test_query_values_are_fingerprinted_unless_public(name: str) -> None:
    value = f"qv-LEAK-{name}"
    s = OpenAISettings(default_query={name: value})
    for where, text in {"repr": repr(s), "json": s.model_dump_json(), "canonical": s.canonical_json()}.items():
        assert_no_secret(text, where)
    assert json.loads(s.canonical_json())["default_query"][name] == fingerprint(value)
    assert value in s.secret_values()


@pytest.mark.parametrize("name", MISSED_HEADER_NAMES)
def test_header_values_are_fingerprinted_unless_public(name: str) -> None:
    value = f"hv-LEAK-{name}"
    s = AzureOpenAISettings(default_headers={name: value})
    for where, text in {"repr": repr(s), "json": s.model_dump_json(), "canonical": s.canonical_json()}.items():
        assert_no_secret(text, where)
    assert json.loads(s.canonical_json())["default_headers"][name.lower()] == fingerprint(value)
    assert value in s.secret_values()


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        (
            {"User-Agent": "batch/1.0", "Accept": "application/json", "X-Request-Id": "r-1"},
            {"api-version": "2024-10-21"},
        ),
        ({"OpenAI-Beta": "assistants=v2", "traceparent": "00-4bf92f-00f067-01"}, {}),
    ],
)
def test_public_names_keep_their_values_in_clear(headers: dict[str, str], query: dict[str, str]) -> None:
    doc = json.loads(OpenAISettings(default_headers=headers, default_query=query).canonical_json())
    assert doc["default_headers"] == {k.lower(): v for k, v in headers.items()}
    assert doc["default_query"] == query


def test_a_value_that_looks_like_a_credential_is_fingerprinted_whatever_its_name() -> None:
    s = OpenAISettings(
        default_headers={"User-Agent": PASTED, "X-Team": "Bearer LEAKLEAKLEAK"},
        default_query={"api-version": PASTED},
        public_headers=["X-Team"],
    )
    for where, text in {"repr": repr(s), "json": s.model_dump_json(), "canonical": s.canonical_json()}.items():
        assert_no_secret(text, where)
    assert PASTED in s.secret_values()


def test_names_declared_public_are_written_in_clear_and_enter_the_hash() -> None:
    plain = OpenAISettings(default_headers={"X-Team": "search"}, default_query={"region": "eu"})
    declared = OpenAISettings(
        default_headers={"X-Team": "search"},
        default_query={"region": "eu"},
        public_headers=["x-team"],
        public_query=["region"],
    )
    doc = json.loads(declared.canonical_json())
    assert doc["default_headers"] == {"x-team": "search"} and doc["default_query"] == {"region": "eu"}
    assert doc["public_headers"] == ["x-team"] and doc["public_query"] == ["region"]
    assert json.loads(plain.canonical_json())["default_headers"]["x-team"] == fingerprint("search")
    assert declared.config_hash != plain.config_hash
    assert "'X-Team': 'search'" in repr(declared.default_headers)
    assert declared.secret_values() == []
    # Header names compare in any case; query names exactly.
    assert OpenAISettings(default_headers={"X-TEAM": "a"}, public_headers=["X-Team"]).secret_values() == []
    assert OpenAISettings(default_query={"Region": "eu"}, public_query=["region"]).secret_values() == ["eu"]
    # Order and case of the declaration do not matter.
    other_order = OpenAISettings(
        default_headers={"X-Team": "search"},
        default_query={"region": "eu"},
        public_headers=["X-TEAM", "x-team"],
        public_query=["region"],
    )
    assert other_order.config_hash == declared.config_hash


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("public_headers", "Authorization"),
        ("public_headers", "X-Api-Key"),
        ("public_headers", "Cookie"),
        ("public_headers", "X-Session-Id"),
        ("public_query", "sig"),
        ("public_query", "code"),
        ("public_query", "api_key"),
        ("public_query", "access_token"),
    ],
)
def test_a_credential_name_cannot_be_declared_public(field: str, name: str) -> None:
    with pytest.raises(SettingsError) as info:
        OpenAISettings(**{field: [name]})
    assert "cannot be declared public" in str(info.value) and info.value.field == field


# ---- control characters ------------------------------------------------------------------------

CONTROL_CASES: list[tuple[str, dict[str, Any]]] = [
    ("key with a trailing newline", {"api_key": "sk-LEAK-from-a-file\n"}),
    ("key with CRLF", {"api_key": "sk-LEAK-from-a-file\r\n"}),
    ("key with NUL", {"api_key": "sk-LEAK\x00tail"}),
    ("header value with CRLF", {"default_headers": {"X-Team": "a\r\nX-Injected: LEAK"}}),
    ("header value with ESC", {"default_headers": {"X-Team": "LEAK\x1b[31m"}}),
    ("header name with LF", {"default_headers": {"X-LEAK\n": "v"}}),
    ("query value with a C1 control", {"default_query": {"q": "LEAK\x85"}}),
    ("query name with NUL", {"default_query": {"LEAK\x00": "v"}}),
    ("base_url with a newline", {"base_url": "https://api.example.com/v1\n"}),
    ("organization with a tab", {"organization": "org\tLEAK"}),
    ("project with DEL", {"project": "proj\x7fLEAK"}),
    ("proxy with CR", {"proxy": "http://u:LEAK@proxy.local:3128\r"}),
    ("admin key with a line separator", {"admin_api_key": "LEAK\u2028"}),
    ("webhook secret with a lone surrogate", {"webhook_secret": "LEAK\ud800"}),
    ("verify path with a newline", {"verify": "/etc/ssl/LEAK.pem\n"}),
    ("key as bytes with a newline", {"api_key": b"sk-LEAK\n"}),
]


@pytest.mark.parametrize(("name", "given"), CONTROL_CASES, ids=[c[0] for c in CONTROL_CASES])
def test_control_characters_are_refused_without_echo(name: str, given: dict[str, Any]) -> None:
    message = assert_error_has_no_secret(lambda: OpenAISettings(**given), SettingsError)
    assert next(iter(given)) in message
    assert "control character" in message or "line break" in message


def test_a_key_read_from_a_file_with_its_newline_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-LEAK-read-with-cat\n")
    message = assert_error_has_no_secret(OpenAISettings, SettingsError)
    assert "api_key ends with a line break" in message


def test_control_characters_in_a_settings_file_are_refused_without_echo(tmp_path: Path) -> None:
    file = tmp_path / "clientreg.toml"
    file.write_text('[profiles.main]\nprovider = "openai"\napi_key = "sk-LEAK-key\\n"\n', encoding="utf-8")
    message = assert_error_has_no_secret(lambda: schemas.load_settings(file), SettingsError)
    assert "profile 'main', field 'api_key'" in message


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (OpenAISettings, "organization"),
        (OpenAISettings, "project"),
        (AzureOpenAISettings, "azure_deployment"),
        (AzureOpenAISettings, "api_version"),
    ],
)
def test_a_key_put_in_a_field_written_in_clear_is_refused(model: type[ProviderSettings], field: str) -> None:
    message = assert_error_has_no_secret(lambda: model(**{field: PASTED}), SettingsError)
    assert field in message and "looks like a credential" in message


def test_openai_ids_are_not_taken_for_credentials() -> None:
    s = OpenAISettings(organization="org-4Fq2Lk9ZbXyW8pTqR1sN3vUe", project="proj_4Fq2Lk9ZbXyW8pTqR1sN3vUe")
    doc = json.loads(s.canonical_json())
    assert (doc["organization"], doc["project"]) == ("org-4Fq2Lk9ZbXyW8pTqR1sN3vUe", "proj_4Fq2Lk9ZbXyW8pTqR1sN3vUe")
