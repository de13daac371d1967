"""Drop-in constructors for code that builds SDK clients from keyword arguments.

>>> from registry import get_openai_client
>>> client = get_openai_client(api_key="sk-...", timeout=30)   # was: openai.OpenAI(...)

Each takes the SDK constructor's keyword arguments, builds the settings model and goes
through the default registry, so equal arguments give the same shared client. An argument
the settings cannot represent (``http_client=``, a callable ``api_key``, ...) is an error,
not a silent cache miss. ``None`` means "unset", as in the SDKs.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from registry._default import get_async_client, get_client
from schemas import CerebrasSettings, GroqSettings, OpenAISettings, ProviderSettings, TimeoutParts
from schemas._errors import SettingsError

_NOT_REPRESENTABLE = {
    "http_client": "the registry provides a shared HTTP client; configure proxy, verify and limits instead",
    "_strict_response_validation": "not supported by clientreg",
    "websocket_base_url": "not supported by clientreg",
    "workload_identity": "not supported by clientreg: use api_key",
    "admin_api_key": "not supported by clientreg: use api_key",
    "webhook_secret": "not supported by clientreg",
    "provider": "pass the provider's own settings class instead",
}


def _settings(cls: type[ProviderSettings], function: str, kwargs: dict[str, Any]) -> ProviderSettings:
    for name in kwargs:
        if name in _NOT_REPRESENTABLE:
            raise TypeError(f"{function}() cannot take {name!r}: {_NOT_REPRESENTABLE[name]}")
    if callable(kwargs.get("api_key")):
        raise TypeError(f"{function}() needs api_key as a string; a key provider function cannot be hashed")
    timeout = kwargs.get("timeout")
    if timeout is not None and not isinstance(timeout, int | float | TimeoutParts | dict):
        kwargs["timeout"] = _timeout_parts(function, timeout)
    try:
        return cls(**{k: v for k, v in kwargs.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"{function}(): {problems}") from None


def _timeout_parts(function: str, value: Any) -> TimeoutParts:
    """Accept an ``httpx.Timeout`` / ``httpx2.Timeout`` by reading its four phases."""
    try:
        return TimeoutParts(connect=value.connect, read=value.read, write=value.write, pool=value.pool)
    except (AttributeError, ValidationError):
        raise TypeError(f"{function}(): timeout must be seconds or a Timeout with four positive phases") from None


def get_openai_client(**kwargs: Any) -> Any:
    """A shared ``openai.OpenAI`` for these constructor arguments."""
    return get_client(_settings(OpenAISettings, "get_openai_client", kwargs))


def get_async_openai_client(**kwargs: Any) -> Any:
    """A shared ``openai.AsyncOpenAI`` for these constructor arguments (call from async code)."""
    return get_async_client(_settings(OpenAISettings, "get_async_openai_client", kwargs))


def get_groq_client(**kwargs: Any) -> Any:
    """A shared ``groq.Groq`` for these constructor arguments."""
    return get_client(_settings(GroqSettings, "get_groq_client", kwargs))


def get_async_groq_client(**kwargs: Any) -> Any:
    """A shared ``groq.AsyncGroq`` for these constructor arguments (call from async code)."""
    return get_async_client(_settings(GroqSettings, "get_async_groq_client", kwargs))


def get_cerebras_client(**kwargs: Any) -> Any:
    """A shared ``cerebras.cloud.sdk.Cerebras`` for these constructor arguments."""
    return get_client(_settings(CerebrasSettings, "get_cerebras_client", kwargs))


def get_async_cerebras_client(**kwargs: Any) -> Any:
    """A shared ``cerebras.cloud.sdk.AsyncCerebras`` for these arguments (call from async code)."""
    return get_async_client(_settings(CerebrasSettings, "get_async_cerebras_client", kwargs))
