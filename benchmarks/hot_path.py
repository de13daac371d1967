"""Hits and settings construction, next to a seed-style cache, a dict and a plain pydantic model."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, SecretStr

from benchmarks._stats import Sample, per_call
from registry import Registry
from schemas import OpenAISettings

# What a framework passes on every call: the same keyword arguments, in the same order.
KWARGS: dict[str, Any] = {
    "api_key": "sk-bench-0000000000000000",
    "base_url": "http://127.0.0.1:9/v1",
    "timeout": 30.0,
    "max_retries": 3,
    "default_headers": {"x-tenant": "acme"},
}


class PlainTimeoutParts(BaseModel):
    connect: float = 5.0
    read: float = 600.0
    write: float = 600.0
    pool: float = 600.0


class PlainSettings(BaseModel):
    """OpenAISettings' field names and types, with no validators, no env reads, no hash."""

    provider: str = "openai"
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    base_url: str | None = "https://api.openai.com/v1"
    timeout: float | PlainTimeoutParts = 600.0
    max_retries: int = 2
    default_headers: dict[str, str] = {}
    default_query: dict[str, str] = {}
    proxy: SecretStr | None = None
    verify: bool | str = True
    max_connections: int = 1000
    max_keepalive_connections: int = 100
    keepalive_expiry: float = 5.0
    organization: str | None = None
    project: str | None = None


def seed_style_get(cache: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """The key most client caches use: the repr of the sorted arguments, hashed on every call."""
    return cache[hashlib.sha256(str(sorted(kwargs.items())).encode()).hexdigest()]


def measure(*, seconds: float, rounds: int) -> dict[str, Sample]:
    """Per-call seconds of: reg hit (reused, fresh), seed cache, dict, settings and plain construction."""
    with Registry(index_path="off") as reg:
        settings = OpenAISettings(**KWARGS)
        client = reg.get_client(settings)
        seed_cache = {hashlib.sha256(str(sorted(KWARGS.items())).encode()).hexdigest(): client}
        namespace = {
            "get": reg.get_client,
            "s": settings,
            "Settings": OpenAISettings,
            "Plain": PlainSettings,
            "kw": KWARGS,
            "seed": seed_style_get,
            "seed_cache": seed_cache,
            "d": {settings.config_hash: client},
            "k": settings.config_hash,
        }
        return per_call(
            {
                "hit_reused": "get(s)",
                "seed_cache": "seed(seed_cache, kw)",
                "dict_lookup": "d[k]",
                "hit_fresh": "get(Settings(**kw))",
                "settings_construct": "Settings(**kw)",
                "plain_construct": "Plain(**kw)",
            },
            namespace,
            seconds=seconds,
            rounds=rounds,
        )
