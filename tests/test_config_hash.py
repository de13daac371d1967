"""The canonical form and config_hash: equalities, inequalities, stability, golden vectors."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import (
    FORM_VERSION,
    AzureOpenAISettings,
    CerebrasSettings,
    GroqSettings,
    OpenAISettings,
    ProviderSettings,
    SettingsError,
    TimeoutParts,
    fingerprint,
    fingerprint_key_id,
)
from schemas._base import _HASH_MEMO
from schemas._canonical import PUBLIC_NAMES
from schemas._fingerprint import DEFAULT_KEY, _Key

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "config-hash.md"
ISOLATED_PREFIXES = ("OPENAI_", "AZURE_", "GROQ_", "CEREBRAS_", "CLIENTREG_", "TEAM_")
HEX64 = re.compile(r"[0-9a-f]{64}")

# The vectors' hashes, held here as well as in the doc: regenerating the doc alone does not
# make a form change pass.
PINNED_HASHES = [
    "57234717cca48b1c63bac0b73b9c0334293c8981d7f88f012c57b9f1f0556505",
    "ad64dd01351302374c4eabb2b7a864ed54ca6350ad0518df429f675b20f8dcec",
    "ce18eaabc9f2b4fb53657e2b3bcf729d76ab67c47dbbe91eb313a3c189ecb042",
    "6af51f3cab2ce21218aba2b0ef21196c8af50f6199b80f909adc27f0988efe1b",
    "b701a54ca2346f0cbe4a2e60fb6cb49e441dde271e311e449b5361a29dc0fed5",
    "e8d2e44f8bfc81babe380941396ae2072c10bf47ebfa018dcb09e51130cc42e1",
    "4d0b0fcc4dda3d5bd877d02e67409d4f52f5e8f097431ab740451c1f2381a6b3",
    "4cbec75048f8be37a019dbe41694b878a430cff774b8b7a79ce4d7544cc25149",
    "ac1cc535c1a1d21fa4391c5dfd088b31209890d59c7ada432e5ce47f80b690a9",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) and name != "CLIENTREG_FINGERPRINT_KEY":
            monkeypatch.delenv(name)


# ---- golden vectors, read from docs/config-hash.md ----------------------------------------

VECTOR = re.compile(
    r"^### (?P<title>Vector \d+[^\n]*)\n+```python\n(?P<expr>.+?)\n```\n+```json\n(?P<json>[^\n]+)\n```\n+"
    r"config_hash: `(?P<hash>[^`]*)`",
    re.DOTALL | re.MULTILINE,
)
FINGERPRINT_ROW = re.compile(r"^\| `(?P<secret>\"[^`]*\")` \| `(?P<fingerprint>[^`]*)` \|$", re.MULTILINE)
NAMESPACE = {
    "OpenAISettings": OpenAISettings,
    "AzureOpenAISettings": AzureOpenAISettings,
    "GroqSettings": GroqSettings,
    "CerebrasSettings": CerebrasSettings,
    "TimeoutParts": TimeoutParts,
}


def _doc_vectors() -> list[dict[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    golden = text[text.index("## Golden vectors") :]
    return [m.groupdict() for m in VECTOR.finditer(golden)]


def test_doc_holds_the_pinned_vectors() -> None:
    vectors = _doc_vectors()
    assert [v["hash"] for v in vectors] == PINNED_HASHES
    providers = {json.loads(v["json"])["provider"] for v in vectors}
    assert providers == {"openai", "azure_openai", "groq", "cerebras"}


@pytest.mark.parametrize("vector", _doc_vectors(), ids=lambda v: v["title"])
def test_golden_vector(vector: dict[str, str]) -> None:
    settings_object = eval(vector["expr"], dict(NAMESPACE))
    assert settings_object.canonical_json() == vector["json"]
    assert settings_object.config_hash == vector["hash"]
    assert hashlib.sha256(vector["json"].encode("ascii")).hexdigest() == vector["hash"]


def test_golden_fingerprints() -> None:
    text = DOC.read_text(encoding="utf-8")
    rows = [(json.loads(m["secret"]), m["fingerprint"]) for m in FINGERPRINT_ROW.finditer(text)]
    assert len(rows) >= 4
    for secret, expected in rows:
        assert fingerprint(secret) == expected


def test_form_version_is_in_every_canonical_json() -> None:
    assert FORM_VERSION == 2
    for model in (OpenAISettings, AzureOpenAISettings, GroqSettings, CerebrasSettings):
        assert json.loads(model().canonical_json())["form"] == FORM_VERSION


def test_fingerprint_is_a_keyed_hmac_of_128_bits() -> None:
    secret = "sk-some-key-\u00e9"
    key = os.environ["CLIENTREG_FINGERPRINT_KEY"].encode()
    message = b"clientreg/secret-fingerprint/v2\x00" + secret.encode("utf-8")
    assert fingerprint(secret) == "hmac-sha256:" + hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{32}", fingerprint(""))
    # Not the plain (or domain-separated, unkeyed) SHA-256 another system might store.
    for unkeyed in (hashlib.sha256(secret.encode()), hashlib.sha256(message)):
        assert unkeyed.hexdigest()[:32] not in fingerprint(secret)


def test_doc_names_the_key_of_the_vectors_and_its_id() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"CLIENTREG_FINGERPRINT_KEY={os.environ['CLIENTREG_FINGERPRINT_KEY']}" in text
    assert f"`fingerprint_key_id()` is `{fingerprint_key_id()}`" in text
    default_id = _Key(DEFAULT_KEY, "default").id
    assert f"public\ndefault key's is `{default_id}`" in text or f"public default key's is `{default_id}`" in text


def test_audit_record_verifies_from_stored_json() -> None:
    # The procedure of docs/config-hash.md, "Verifying an audit record", without clientreg,
    # on the config as an index or an export holds it: a JSON object, keys in any order.
    s = OpenAISettings(api_key="sk-audit", default_headers={"Authorization": "Bearer sk-audit"}, proxy="http://u:p@h:1")
    config = s.canonical_dict()
    shuffled = json.loads(json.dumps(dict(reversed(list(config.items()))), indent=2))
    for stored in (config, shuffled):
        canonical = json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        assert hashlib.sha256(canonical.encode("ascii")).hexdigest() == s.config_hash
        assert stored["form"] == 2
    key = os.environ["CLIENTREG_FINGERPRINT_KEY"]

    def fingerprint_with(secret: str, key: str) -> str:
        message = b"clientreg/secret-fingerprint/v2\x00" + secret.encode("utf-8")
        return "hmac-sha256:" + hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()[:32]

    assert config["api_key"] == fingerprint_with("sk-audit", key) == fingerprint("sk-audit")
    assert config["api_key"] != fingerprint_with("sk-other", key)
    assert config["api_key"] != fingerprint_with("sk-audit", key + "-another-deployment")
    assert config["transport"]["proxy_credentials"] == fingerprint_with("u:p", key)


# ---- config_hash is sha256 of the canonical JSON --------------------------------------------


@pytest.mark.parametrize("model", [OpenAISettings, AzureOpenAISettings, GroqSettings, CerebrasSettings])
def test_config_hash_is_sha256_of_canonical_json(model: type[ProviderSettings]) -> None:
    s = model(api_key="k", timeout=12.5, default_headers={"X-A": "1"})
    assert s.config_hash == hashlib.sha256(s.canonical_json().encode()).hexdigest()
    assert HEX64.fullmatch(s.config_hash)


def test_canonical_json_is_compact_sorted_ascii() -> None:
    s = OpenAISettings(api_key="k", default_headers={"X-Z": "z", "X-A": "caf\u00e9"}, organization="\u00fcber")
    text = s.canonical_json()
    assert text.isascii()
    assert " " not in text and "\n" not in text
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def test_every_field_is_explicit() -> None:
    doc = json.loads(OpenAISettings().canonical_json())
    assert set(doc) == {
        "form",
        "provider",
        "api_key",
        "api_key_provider",
        "admin_api_key",
        "webhook_secret",
        "websocket_base_url",
        "data_residency",
        "strict_response_validation",
        "base_url",
        "timeout",
        "max_retries",
        "default_headers",
        "default_query",
        "public_headers",
        "public_query",
        "organization",
        "project",
        "transport",
    }
    assert set(doc["transport"]) == {
        "proxy",
        "proxy_credentials",
        "verify",
        "max_connections",
        "max_keepalive_connections",
        "keepalive_expiry",
    }
    assert set(json.loads(AzureOpenAISettings().canonical_json())) >= {
        "azure_endpoint",
        "azure_deployment",
        "api_version",
        "azure_ad_token",
        "azure_ad_token_provider",
        "admin_api_key",
        "webhook_secret",
        "websocket_base_url",
    }
    assert "warm_tcp_connection" in json.loads(CerebrasSettings().canonical_json())


# ---- equal configuration written differently: one hash -------------------------------------

EQUAL_PAIRS: list[tuple[str, Any, Any]] = [
    (
        "keyword order",
        lambda: OpenAISettings(api_key="k", timeout=30, max_retries=4, organization="o"),
        lambda: OpenAISettings(organization="o", max_retries=4, timeout=30, api_key="k"),
    ),
    (
        "header dict order",
        lambda: OpenAISettings(default_headers={"X-A": "1", "X-B": "2"}),
        lambda: OpenAISettings(default_headers={"X-B": "2", "X-A": "1"}),
    ),
    (
        "query dict order",
        lambda: OpenAISettings(default_query={"a": "1", "b": "2"}),
        lambda: OpenAISettings(default_query={"b": "2", "a": "1"}),
    ),
    ("int and float timeout", lambda: OpenAISettings(timeout=30), lambda: OpenAISettings(timeout=30.0)),
    ("string timeout", lambda: OpenAISettings(timeout="30"), lambda: OpenAISettings(timeout=30.0)),
    ("float retries", lambda: OpenAISettings(max_retries=3.0), lambda: OpenAISettings(max_retries=3)),
    ("keepalive int", lambda: OpenAISettings(keepalive_expiry=5), lambda: OpenAISettings(keepalive_expiry=5.0)),
    (
        "timeout parts as dict and model",
        lambda: OpenAISettings(timeout={"connect": 2, "read": 30}),
        lambda: OpenAISettings(timeout=TimeoutParts(connect=2.0, read=30.0)),
    ),
    (
        "four equal timeout parts and a number",
        lambda: OpenAISettings(timeout=TimeoutParts(connect=30, read=30, write=30, pool=30)),
        lambda: OpenAISettings(timeout=30),
    ),
    (
        "trailing slash",
        lambda: OpenAISettings(base_url="http://localhost:11434/v1/"),
        lambda: OpenAISettings(base_url="http://localhost:11434/v1"),
    ),
    (
        "host and scheme case",
        lambda: OpenAISettings(base_url="HTTPS://API.Example.com/v1"),
        lambda: OpenAISettings(base_url="https://api.example.com/v1"),
    ),
    (
        "default port",
        lambda: OpenAISettings(base_url="https://api.example.com:443/v1"),
        lambda: OpenAISettings(base_url="https://api.example.com/v1"),
    ),
    (
        "azure endpoint trailing slash",
        lambda: AzureOpenAISettings(azure_endpoint="https://x.openai.azure.com/"),
        lambda: AzureOpenAISettings(azure_endpoint="https://x.openai.azure.com"),
    ),
    (
        "header name case",
        lambda: OpenAISettings(default_headers={"X-Team": "a", "Authorization": "Bearer t"}),
        lambda: OpenAISettings(default_headers={"x-team": "a", "AUTHORIZATION": "Bearer t"}),
    ),
    (
        "explicit defaults",
        lambda: OpenAISettings(),
        lambda: OpenAISettings(
            base_url="https://api.openai.com/v1",
            timeout=TimeoutParts(connect=5, read=600, write=600, pool=600),
            max_retries=2,
            default_headers={},
            default_query={},
            verify=True,
            max_connections=1000,
            max_keepalive_connections=100,
            keepalive_expiry=5,
            organization=None,
            project=None,
            proxy=None,
            api_key=None,
        ),
    ),
    (
        "explicit groq defaults",
        lambda: GroqSettings(),
        lambda: GroqSettings(
            base_url="https://api.groq.com/",
            timeout={"connect": 5, "read": 60, "write": 60, "pool": 60},
            max_connections=100,
            max_keepalive_connections=20,
        ),
    ),
    (
        "proxy URL case and slash",
        lambda: OpenAISettings(proxy="HTTP://u:p@Proxy.Local:3128/"),
        lambda: OpenAISettings(proxy="http://u:p@proxy.local:3128"),
    ),
    ("equal keys", lambda: OpenAISettings(api_key="sk-same"), lambda: OpenAISettings(api_key="sk-same")),
]


@pytest.mark.parametrize(("name", "make_a", "make_b"), EQUAL_PAIRS, ids=[p[0] for p in EQUAL_PAIRS])
def test_equal_configuration_has_one_hash(name: str, make_a: Any, make_b: Any) -> None:
    a, b = make_a(), make_b()
    assert a.canonical_json() == b.canonical_json()
    assert a.config_hash == b.config_hash


def test_api_key_env_and_direct_key_have_one_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_B_OPENAI_KEY", "sk-team-b")
    via_env = OpenAISettings(api_key_env="TEAM_B_OPENAI_KEY", timeout=20)
    direct = OpenAISettings(api_key="sk-team-b", timeout=20)
    assert via_env.config_hash == direct.config_hash
    assert via_env.canonical_json() == direct.canonical_json()


def test_profile_with_api_key_env_and_direct_key_have_one_hash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = tmp_path / "clientreg.toml"
    file.write_text('[profiles.team_b]\nprovider = "openai"\napi_key_env = "TEAM_B_OPENAI_KEY"\ntimeout = 20\n')
    monkeypatch.setenv("TEAM_B_OPENAI_KEY", "sk-team-b")
    profile = schemas.load_settings(file).profiles["team_b"]
    assert profile.config_hash == OpenAISettings(api_key="sk-team-b", timeout=20.0).config_hash


def test_sdk_variable_and_direct_key_have_one_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-env")
    monkeypatch.setenv("GROQ_BASE_URL", "http://groq.local/")
    from_env = GroqSettings()
    monkeypatch.delenv("GROQ_API_KEY")
    monkeypatch.delenv("GROQ_BASE_URL")
    assert from_env.config_hash == GroqSettings(api_key="gsk-env", base_url="http://groq.local").config_hash


# ---- a behaviour change changes the hash ------------------------------------------------------

BASE: dict[str, Any] = {
    "api_key": "sk-base",
    "base_url": "https://api.example.com/v1",
    "timeout": 30,
    "max_retries": 2,
    "default_headers": {"X-Team": "a", "Authorization": "Bearer t1"},
    "default_query": {"tenant": "t1", "token": "q1"},
    "proxy": "http://user:pw1@proxy.local:3128",
    "organization": "org-a",
    "project": "proj-a",
}

CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("api key", {"api_key": "sk-other"}),
    ("api key removed", {"api_key": None}),
    ("url host", {"base_url": "https://api.example.org/v1"}),
    ("url path", {"base_url": "https://api.example.com/v2"}),
    ("url path case", {"base_url": "https://api.example.com/V1"}),
    ("url scheme", {"base_url": "http://api.example.com/v1"}),
    ("url port", {"base_url": "https://api.example.com:8443/v1"}),
    ("url query", {"base_url": "https://api.example.com/v1?api-version=1"}),
    ("header value", {"default_headers": {"X-Team": "b", "Authorization": "Bearer t1"}}),
    ("secret header value", {"default_headers": {"X-Team": "a", "Authorization": "Bearer t2"}}),
    ("header added", {"default_headers": {"X-Team": "a", "Authorization": "Bearer t1", "X-More": "1"}}),
    ("header removed", {"default_headers": {"X-Team": "a"}}),
    ("query value", {"default_query": {"tenant": "t2", "token": "q1"}}),
    ("secret query value", {"default_query": {"tenant": "t1", "token": "q2"}}),
    ("query name case", {"default_query": {"Tenant": "t1", "token": "q1"}}),
    ("timeout", {"timeout": 31}),
    ("timeout fraction", {"timeout": 30.001}),
    ("timeout parts", {"timeout": TimeoutParts(connect=30, read=30, write=30, pool=29)}),
    ("retries", {"max_retries": 3}),
    ("no retries", {"max_retries": 0}),
    ("proxy password", {"proxy": "http://user:pw2@proxy.local:3128"}),
    ("proxy user", {"proxy": "http://other:pw1@proxy.local:3128"}),
    ("proxy without credentials", {"proxy": "http://proxy.local:3128"}),
    ("proxy host", {"proxy": "http://user:pw1@proxy2.local:3128"}),
    ("proxy port", {"proxy": "http://user:pw1@proxy.local:3129"}),
    ("proxy scheme", {"proxy": "socks5://user:pw1@proxy.local:3128"}),
    ("no proxy", {"proxy": None}),
    ("organization", {"organization": "org-b"}),
    ("no organization", {"organization": None}),
    ("project", {"project": "proj-b"}),
    ("verify off", {"verify": False}),
    ("verify bundle", {"verify": "/etc/ssl/ca.pem"}),
    ("max connections", {"max_connections": 999}),
    ("keepalive connections", {"max_keepalive_connections": 99}),
    ("keepalive expiry", {"keepalive_expiry": 6}),
]


@pytest.mark.parametrize(("name", "change"), CHANGES, ids=[c[0] for c in CHANGES])
def test_behaviour_change_changes_the_hash(name: str, change: dict[str, Any]) -> None:
    base = OpenAISettings(**BASE)
    changed = OpenAISettings(**{**BASE, **change})
    assert changed.config_hash != base.config_hash
    assert changed.canonical_json() != base.canonical_json()


@pytest.mark.parametrize(
    ("field", "a", "b"),
    [
        ("azure_endpoint", "https://a.openai.azure.com", "https://b.openai.azure.com"),
        ("azure_deployment", "gpt-4o", "gpt-4o-mini"),
        ("api_version", "2024-10-21", "2024-02-01"),
        ("api_key", "az-1", "az-2"),
    ],
)
def test_azure_field_change_changes_the_hash(field: str, a: str, b: str) -> None:
    assert AzureOpenAISettings(**{field: a}).config_hash != AzureOpenAISettings(**{field: b}).config_hash


def test_cerebras_warm_tcp_connection_changes_the_hash() -> None:
    assert CerebrasSettings(warm_tcp_connection=True).config_hash != CerebrasSettings().config_hash


def test_provider_changes_the_hash() -> None:
    common: dict[str, Any] = {
        "api_key": "same-key",
        "base_url": "http://localhost:8000/v1",
        "timeout": 60,
        "max_retries": 2,
        "max_connections": 100,
        "max_keepalive_connections": 20,
    }
    hashes = {
        OpenAISettings(**common).config_hash,
        GroqSettings(**common).config_hash,
        CerebrasSettings(**common).config_hash,
        AzureOpenAISettings(**common).config_hash,
    }
    assert len(hashes) == 4
    # Only the provider (and its own fields) differ between these.
    openai_doc = json.loads(OpenAISettings(**common).canonical_json())
    groq_doc = json.loads(GroqSettings(**common).canonical_json())
    for openai_only in (
        "organization",
        "project",
        "admin_api_key",
        "webhook_secret",
        "websocket_base_url",
        "data_residency",
    ):
        del openai_doc[openai_only]
    assert {k for k in openai_doc if openai_doc[k] != groq_doc[k]} == {"provider"}


# ---- hypothesis: properties over generated configurations -----------------------------------

HOSTS = ["api.example.com", "localhost", "127.0.0.1", "gw.internal", "[::1]"]
SECRET_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_", min_size=1, max_size=24)
HEADER_NAME = st.sampled_from(["X-Team", "X-Request-Source", "Authorization", "X-Api-Key", "Cookie", "User-Agent"])
QUERY_NAME = st.sampled_from(["tenant", "region", "token", "api_key", "Tenant"])
# Control characters and line separators are refused by validation (see test_secrets.py).
VALUE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)
POSITIVE = st.floats(min_value=0.001, max_value=10_000, allow_nan=False, allow_infinity=False)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(st.sampled_from(HOSTS))
    port = draw(st.sampled_from(["", ":8000", ":11434"]))
    path = draw(st.sampled_from(["", "/v1", "/openai/v1", "/V1"]))
    return f"{scheme}://{host}{port}{path}"


@st.composite
def proxies(draw: st.DrawFn) -> str | None:
    if draw(st.booleans()):
        return None
    credentials = draw(st.one_of(st.just(""), st.builds(lambda u, p: f"{u}:{p}@", SECRET_TEXT, SECRET_TEXT)))
    return f"http://{credentials}proxy{draw(st.integers(1, 3))}.local:3128"


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    timeout: Any = draw(
        st.one_of(
            POSITIVE,
            st.integers(1, 1000),
            st.builds(TimeoutParts, connect=POSITIVE, read=POSITIVE, write=POSITIVE, pool=POSITIVE),
        )
    )
    config: dict[str, Any] = {
        "api_key": draw(st.one_of(st.none(), SECRET_TEXT)),
        "base_url": draw(urls()),
        "timeout": timeout,
        "max_retries": draw(st.integers(0, 10)),
        "default_headers": draw(st.dictionaries(HEADER_NAME, VALUE, max_size=4)),
        "default_query": draw(st.dictionaries(QUERY_NAME, VALUE, max_size=3)),
        "proxy": draw(proxies()),
        "verify": draw(st.sampled_from([True, False, "/etc/ssl/ca.pem"])),
        "organization": draw(st.one_of(st.none(), st.sampled_from(["org-a", "org-b"]))),
        "project": draw(st.one_of(st.none(), st.sampled_from(["proj-a", "proj-b"]))),
    }
    # Drop some keys, so defaults are exercised too.
    keep = draw(st.sets(st.sampled_from(sorted(config))))
    return {k: v for k, v in config.items() if k in keep}


@st.composite
def rewritten(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, Any]:
    """The same configuration, written differently."""
    out = dict(reversed(list(config.items())))
    if "default_headers" in out:
        headers = list(out["default_headers"].items())
        out["default_headers"] = {(k.upper() if draw(st.booleans()) else k.lower()): v for k, v in reversed(headers)}
    if "default_query" in out:
        out["default_query"] = dict(reversed(list(out["default_query"].items())))
    if "base_url" in out:
        url = out["base_url"]
        scheme, rest = url.split("://", 1)
        out["base_url"] = f"{scheme.upper() if draw(st.booleans()) else scheme}://{rest}" + "/" * draw(
            st.integers(0, 2)
        )
    if isinstance(out.get("timeout"), int):
        out["timeout"] = float(out["timeout"])
    elif isinstance(out.get("timeout"), TimeoutParts):
        out["timeout"] = out["timeout"].model_dump()
    for field in ("organization", "project", "proxy", "api_key"):
        if field in out and out[field] is None and draw(st.booleans()):
            del out[field]  # None and not given are the same
    return out


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_property_rewriting_keeps_the_hash(data: st.DataObject) -> None:
    config = data.draw(configs())
    other = data.draw(rewritten(config))
    a, b = OpenAISettings(**config), OpenAISettings(**other)
    assert a.canonical_json() == b.canonical_json()
    assert a.config_hash == b.config_hash


@settings(max_examples=150, deadline=None)
@given(config=configs())
def test_property_hash_is_sha256_of_stable_canonical_json(config: dict[str, Any]) -> None:
    s = OpenAISettings(**config)
    text = s.canonical_json()
    assert HEX64.fullmatch(s.config_hash)
    assert s.config_hash == hashlib.sha256(text.encode()).hexdigest()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert json.loads(text)["form"] == FORM_VERSION
    # Rebuilding from the model's own fields gives the same configuration.
    assert OpenAISettings(**s.model_dump()).config_hash == s.config_hash
    assert OpenAISettings(**config).canonical_json() == text


FIELD_CHANGES = st.sampled_from(
    [
        ("api_key", SECRET_TEXT),
        ("base_url", urls()),
        ("timeout", POSITIVE),
        ("max_retries", st.integers(0, 10)),
        ("default_headers", st.dictionaries(HEADER_NAME, VALUE, max_size=4)),
        ("default_query", st.dictionaries(QUERY_NAME, VALUE, max_size=3)),
        ("proxy", proxies()),
        ("organization", st.sampled_from(["org-a", "org-b", "org-c"])),
        ("project", st.sampled_from(["proj-a", "proj-b", "proj-c"])),
    ]
)


def _effective(s: OpenAISettings, field: str) -> Any:
    """What the client would see for ``field``: secrets unwrapped, header names folded."""
    value = getattr(s, field)
    if field in ("api_key", "proxy"):
        return None if value is None else value.get_secret_value()
    if field == "default_headers":
        return {k.lower(): v for k, v in value.items()}
    if field == "default_query":
        return dict(value)
    if field == "timeout" and isinstance(value, TimeoutParts):
        parts = {value.connect, value.read, value.write, value.pool}
        return parts.pop() if len(parts) == 1 else value
    return value


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_property_changing_a_field_changes_the_hash_exactly_when_behaviour_changes(data: st.DataObject) -> None:
    config = data.draw(configs())
    field, strategy = data.draw(FIELD_CHANGES)
    new_value = data.draw(strategy)
    a = OpenAISettings(**config)
    b = OpenAISettings(**{**config, field: new_value})
    behaviour_differs = _effective(a, field) != _effective(b, field)
    assert (a.config_hash != b.config_hash) == behaviour_differs


@settings(max_examples=100, deadline=None)
@given(config=configs(), secret=SECRET_TEXT.map(lambda s: "SECRET-" + s))
def test_property_canonical_json_holds_no_secret(config: dict[str, Any], secret: str) -> None:
    config = {
        **config,
        "api_key": secret + "-k",
        "default_headers": {**config.get("default_headers", {}), "Authorization": f"Bearer {secret}-h"},
        "default_query": {"token": secret + "-q"},
        "proxy": f"http://user:{secret}-p@proxy.local:3128",
    }
    text = OpenAISettings(**config).canonical_json()
    assert "SECRET-" not in text


# ---- stability across processes and PYTHONHASHSEED -------------------------------------------

_CHILD = r"""
import json, sys
from schemas import AzureOpenAISettings, CerebrasSettings, GroqSettings, OpenAISettings, TimeoutParts
configs = [
    OpenAISettings(),
    OpenAISettings(api_key="sk-x", default_headers={f"X-H{i}": str(i) for i in range(30)},
                   default_query={f"q{i}": "v" for i in range(30)}, timeout=TimeoutParts(connect=1, read=2)),
    GroqSettings(api_key="gsk-x", proxy="http://u:p@proxy:3128", verify=False),
    CerebrasSettings(api_key="csk-x", warm_tcp_connection=True),
    AzureOpenAISettings(api_key="az", azure_endpoint="https://a.openai.azure.com", api_version="2024-10-21"),
]
hashes = [c.config_hash for c in configs]
if __name__ == "__main__":
    json.dump(hashes, sys.stdout)
"""


def _child_hashes(seed: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    env["CLIENTREG_FINGERPRINT_KEY"] = os.environ["CLIENTREG_FINGERPRINT_KEY"]  # one deployment
    env["PYTHONHASHSEED"] = seed
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    hashes: list[str] = json.loads(out.stdout)
    return hashes


def test_hash_is_stable_across_processes_and_hash_seeds() -> None:
    namespace: dict[str, Any] = {"__name__": "in_process"}
    exec(_CHILD, namespace)
    here = namespace["hashes"]
    assert len(here) == 5 and all(HEX64.fullmatch(h) for h in here)
    for seed in ("0", "1", "4242", "random"):
        assert _child_hashes(seed) == here, seed


# ---- hash integrity: values that compare equal but would serialise differently -----------------


@pytest.mark.parametrize("order", [(-0.0, 0.0), (0.0, -0.0)])
def test_negative_zero_is_one_zero(order: tuple[float, float]) -> None:
    # The hash memo compares field values with ==, and -0.0 == 0.0: whichever is seen first,
    # both must have the canonical form they are hashed as.
    _HASH_MEMO.clear()
    a, b = (OpenAISettings(keepalive_expiry=value) for value in order)
    for s in (a, b):
        assert math.copysign(1.0, s.keepalive_expiry) == 1.0
        assert s.config_hash == hashlib.sha256(s.canonical_json().encode()).hexdigest()
        assert '"keepalive_expiry":0.0' in s.canonical_json()
    assert a.config_hash == b.config_hash


def test_negative_zero_hashes_alike_in_another_process() -> None:
    here = OpenAISettings(keepalive_expiry=0.0).config_hash
    code = "from schemas import OpenAISettings; print(OpenAISettings(keepalive_expiry=-0.0).config_hash)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    env["CLIENTREG_FINGERPRINT_KEY"] = os.environ["CLIENTREG_FINGERPRINT_KEY"]
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == here, out.stderr


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_property_the_memo_never_confuses_two_canonical_forms(data: st.DataObject) -> None:
    # Whatever order objects are hashed in, each one's hash is the hash of its own form.
    configs_drawn = [data.draw(configs()) for _ in range(3)]
    for config in configs_drawn:
        if data.draw(st.booleans()):
            config["keepalive_expiry"] = data.draw(st.sampled_from([0.0, -0.0, 0, 5, 5.0]))
    for config in configs_drawn:
        s = OpenAISettings(**config)
        assert s.config_hash == hashlib.sha256(s.canonical_json().encode()).hexdigest()


@pytest.mark.parametrize(
    "name", ["\u212a-Team", "X-T\u0131tle", "X-\u00c9quipe", "X-Team\u200b", "X Team", "X-Team:", "(X-Team)", ""]
)
def test_header_names_are_ascii_tokens(name: str) -> None:
    # The Kelvin sign lower-cases to "k": "\u212a-Team" would share a hash with "k-team".
    with pytest.raises(SettingsError) as info:
        OpenAISettings(default_headers={name: "v"})
    assert info.value.field == "default_headers"
    assert name not in str(info.value) or not name


def test_every_tchar_is_a_valid_header_name() -> None:
    name = "X-!#$%&'*+.^_`|~09az"
    assert OpenAISettings(default_headers={name: "v"}).default_headers[name] == "v"


def test_relative_verify_path_is_resolved_against_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hashes = {}
    for place in ("one", "two"):
        directory = tmp_path / place
        directory.mkdir()
        monkeypatch.chdir(directory)
        s = OpenAISettings(verify="ca.pem")
        assert s.verify == str(directory / "ca.pem")
        assert json.loads(s.canonical_json())["transport"]["verify"] == str(directory / "ca.pem")
        hashes[place] = s.config_hash
    assert hashes["one"] != hashes["two"]  # two files, two configurations
    assert OpenAISettings(verify=str(tmp_path / "two" / "ca.pem")).config_hash == hashes["two"]


def test_verify_home_path_and_boolean_words(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert OpenAISettings(verify="~/certs/ca.pem").verify == str(tmp_path / "certs" / "ca.pem")
    assert OpenAISettings(verify="/etc/ssl/../ssl/ca.pem").verify == "/etc/ssl/../ssl/ca.pem"  # absolute: as given
    assert OpenAISettings(verify="false").verify is False
    assert OpenAISettings(verify="True").verify is True
    with pytest.raises(SettingsError):
        OpenAISettings(verify=" ")


def test_doc_lists_exactly_the_public_names() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### Headers and query parameters") : text.index("### `verify`")]
    listed = set(re.findall(r"`([a-z0-9_\-]+)`", section.split("Functions `code`")[1].split("or when the settings")[0]))
    assert listed == set(PUBLIC_NAMES)
