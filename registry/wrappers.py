"""Drop-in constructors for code that builds SDK clients from keyword arguments.

>>> from registry import get_openai_client
>>> client = get_openai_client(api_key="sk-...", timeout=30)   # was: openai.OpenAI(...)

Each takes its SDK constructor's keyword arguments with the SDK's meaning (``None`` is what it
is in the SDK: ``http_client=None`` the default, ``organization=None`` "read OPENAI_ORG_ID"),
builds the settings model and goes through the default registry, so equal arguments give the
same shared client. The settings fields that are not SDK arguments (``proxy``, ``verify``,
``max_connections``, ``api_key_env``, ``api_key_provider``, ...) are accepted too. An
argument the settings cannot represent (a live ``http_client``, ``workload_identity``,
``provider``, an unknown keyword) is a `TypeError` naming it and what to use instead, never
a silent cache miss or a silently different client. ``timeout=None`` is no timeout, an unset
timeout the SDK's default, as in the SDK.

A callable ``api_key`` (or ``azure_ad_token_provider``) is a key provider, called before each
request; it is named by `registry.credentials.name_for_callable`, so a closure re-created on
every call does not grow the registry.

Speed: a repeated call skips the settings model (~10 us): each wrapper keeps a memo from its
arguments to the settings object they made and their ``config_hash``, and a memo hit takes the
client from the default registry's table by that hash, doing what a hit of
``get_client(settings)`` does (under 1 us in all). The memo is checked against the environment
variables that filled the fields left unset, so a changed ``OPENAI_API_KEY`` gives the new
client (see `_Memo`); anything else (no such client, a closed registry) takes the slow path.
"""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

import registry._default as _defaults
from registry.credentials import name_for_callable
from registry.errors import RegistryClosedError, RegistryError
from schemas import (
    AzureOpenAISettings,
    CerebrasSettings,
    GroqSettings,
    OpenAISettings,
    ProviderSettings,
    SettingsError,
    TimeoutParts,
)
from schemas._credentials import looks_like_credential

# The SDKs' constructor arguments (openai 3.57, groq 1.7, cerebras-cloud-sdk 1.91).
_COMMON_SDK = frozenset(
    {"api_key", "base_url", "timeout", "max_retries", "default_headers", "default_query", "http_client"}
) | {"_strict_response_validation"}
_OPENAI_FAMILY_SDK = _COMMON_SDK | {
    "admin_api_key",
    "workload_identity",
    "organization",
    "project",
    "webhook_secret",
    "websocket_base_url",
    "_enforce_credentials",
}
_OPENAI_SDK = _OPENAI_FAMILY_SDK | {"provider", "data_residency"}
_AZURE_SDK = _OPENAI_FAMILY_SDK | {
    "api_version",
    "azure_endpoint",
    "azure_deployment",
    "azure_ad_token",
    "azure_ad_token_provider",
}
_GROQ_SDK = _COMMON_SDK
_CEREBRAS_SDK = _COMMON_SDK | {"warm_tcp_connection"}

# SDK arguments the settings cannot hold: why, and what to do instead. None is fine for each.
_NOT_REPRESENTABLE = {
    "http_client": "the registry shares its own HTTP clients. Instead, configure proxy, verify, "
    "max_connections, max_keepalive_connections and keepalive_expiry, or build the SDK client yourself",
    "workload_identity": "settings cannot hold an identity object. Instead, give api_key a function that "
    "returns the current token (a key provider), or build the SDK client yourself",
    "provider": "settings cannot hold a provider object. Instead, use that provider's own wrapper "
    "(get_azure_openai_client, ...) or settings class",
}
_RENAMED = {"_strict_response_validation": "strict_response_validation"}
_PROVIDER_ARGUMENTS = ("api_key", "azure_ad_token_provider")  # a callable here is a provider
# A default registry closed while a call asked it is replaced and asked again; only a
# registry closed this many times in a row during one call makes the call fail.
_CLOSED_RETRIES = 100
_MEMO_SIZE = 1024  # keys (or URLs, for calls without a key) per wrapper
_BUCKET_SIZE = 8  # argument sets per key: at most 8,192 memo entries per wrapper
# os.environ's own dict (encoded names and values), read without a Python-level call per name;
# without it (not CPython's os), nothing is memoised.
_ENV_DATA: dict[Any, Any] | None = getattr(os.environ, "_data", None)
_ENV_KEY: Callable[[str], Any] = getattr(os.environ, "encodekey", str)
_ENV_KEYS = (_ENV_DATA if _ENV_DATA is not None else {}).keys()
_ENV_GET = (_ENV_DATA if _ENV_DATA is not None else {}).get


class _Memo:
    """One memoised call: its arguments, the settings they made, and what the environment said.

    ``kwargs`` is compared with ``==`` (order-insensitive for the header dicts); ``numbers`` are
    the arguments whose value was a number equal to 0 or 1, where a bool given later must not
    be taken for it (``True == 1``; the settings refuse true/false for numbers; any other number
    differs from both bools anyway). The environment variables that fill the fields the call
    left unset are checked on every hit, in ``os.environ``'s own dict: ``absent`` are those that
    were not set (one C-level ``isdisjoint``), ``present`` / ``values`` those that were, with
    their values. ``key`` is the settings' ``config_hash``, the registry's key for the client.
    Nothing here is a string made from a secret: the memo is keyed by ``hash()`` of the key (or
    of the URL, for calls without a key: `_memo_key`), and holds the objects as given. It is
    bounded: 1,024 keys, oldest dropped first, each with the 8 argument sets seen last.
    """

    __slots__ = ("absent", "key", "kwargs", "numbers", "present", "settings", "values")

    def __init__(
        self,
        kwargs: dict[str, Any],
        numbers: tuple[str, ...],
        absent: frozenset[Any],
        present: tuple[Any, ...],
        values: tuple[Any, ...],
        settings: ProviderSettings,
    ) -> None:
        self.kwargs = kwargs
        self.numbers = numbers
        self.absent = absent
        self.present = present
        self.values = values
        self.settings = settings
        self.key = settings.config_hash

    def matches(self, kwargs: dict[str, Any]) -> bool:
        """True when ``kwargs`` and the environment give these settings again (the check of a hit)."""
        return (
            self.kwargs == kwargs
            and _ENV_KEYS.isdisjoint(self.absent)
            and (not self.present or tuple(map(_ENV_GET, self.present)) == self.values)
            and (not self.numbers or not any(kwargs[name].__class__ is bool for name in self.numbers))
        )


class _Wrapper:
    """One drop-in constructor: its SDK's arguments, its settings class, its memo."""

    def __init__(
        self,
        function: str,
        settings_class: type[ProviderSettings],
        sdk: frozenset[str],
        not_representable: Mapping[str, str] | None = None,
    ) -> None:
        self.function = function
        self.settings_class = settings_class
        self.sdk = sdk
        self.not_representable = {**_NOT_REPRESENTABLE, **(not_representable or {})}
        self.accepted = sdk | (settings_class.model_fields.keys() - {"provider"})
        self.memo: dict[int, list[_Memo]] = {}
        self.lock = threading.Lock()

    # ---- the slow path: arguments -> settings ---------------------------------------------

    def settings(self, kwargs: dict[str, Any]) -> ProviderSettings:
        """Translate SDK arguments into the settings model (and memoise the result)."""
        named = self._providers_named(kwargs)
        if named is not None:  # a callable key: look the arguments up again by its name
            return self.find(named) or self.settings(named)
        fields: dict[str, Any] = {}
        for name, value in kwargs.items():
            if name not in self.accepted:
                raise TypeError(self._unknown(name))
            if value is None or _not_given(value):
                if name == "timeout" and value is None:
                    fields["timeout"] = None  # no timeout, as in the SDK
                continue  # None means "the default" (or the SDK's variable), as in the SDK
            if name in self.not_representable:
                raise TypeError(f"{self.function}() cannot take {name}=: {self.not_representable[name]}")
            if name == "_enforce_credentials":
                if value is not True:
                    raise TypeError(
                        f"{self.function}() cannot take _enforce_credentials=False: a registry client has a "
                        "credential. Instead, give api_key, api_key_provider, or an Authorization header"
                    )
                continue
            fields[_RENAMED.get(name, name)] = self._field_value(name, value)
        try:
            settings = self.settings_class(**fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"{self.function}(): {problems}") from None
        except SettingsError as exc:
            raise SettingsError(f"{self.function}(): {exc}") from None
        self._remember(kwargs, settings)
        return settings

    def _providers_named(self, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """``kwargs`` with a callable ``api_key`` / ``azure_ad_token_provider`` replaced by its name.

        A closure made per call is a new object each time, so it never hits the memo as
        given; by its name (`name_for_callable`) it does, for the cost of naming it.
        """
        named: dict[str, Any] | None = None
        for name in _PROVIDER_ARGUMENTS:
            value = kwargs.get(name)
            if value is not None and callable(value) and not isinstance(value, str):
                if named is None:
                    named = dict(kwargs)
                del named[name]
                named["api_key_provider" if name == "api_key" else name] = name_for_callable(value)
        return named

    def find(self, kwargs: dict[str, Any]) -> ProviderSettings | None:
        """The memoised settings for ``kwargs``, if any (the check of `_drop_in`'s hit path, as a method)."""
        try:
            bucket = self.memo.get(_memo_key(kwargs))
        except TypeError:
            return None
        if bucket is None or _ENV_DATA is None:
            return None
        for memo in bucket:
            if memo.matches(kwargs):
                return memo.settings
        return None

    def _field_value(self, name: str, value: Any) -> Any:
        if name == "timeout":
            return self._timeout(value)
        if name in ("base_url", "websocket_base_url", "azure_endpoint") and type(value).__name__ == "URL":
            return str(value)  # httpx.URL / httpx2.URL
        if name == "default_query" and isinstance(value, Mapping):
            return {k: _query_value(self.function, k, v) for k, v in value.items()}
        if name == "default_headers" and isinstance(value, Mapping):
            for header, header_value in value.items():
                if not isinstance(header_value, str):
                    raise TypeError(
                        f"{self.function}(): default_headers values must be strings; "
                        f"{_quoted(header)} is a {type(header_value).__name__}"
                    )
            return dict(value)
        return value

    def _timeout(self, value: Any) -> Any:
        if isinstance(value, int | float | TimeoutParts):
            return value  # the settings refuse a bool with their own message
        if type(value).__name__ == "Timeout" and hasattr(value, "connect"):  # httpx / httpx2
            phases = {p: getattr(value, p) for p in ("connect", "read", "write", "pool")}
            if all(v is None for v in phases.values()):
                return None  # Timeout(None): no timeout at all
            return phases  # a TimeoutParts; a phase of None is no limit for that phase, as in httpx
        raise TypeError(f"{self.function}(): timeout must be a number of seconds or an httpx / httpx2 Timeout")

    def _unknown(self, name: str) -> str:
        if looks_like_credential(name):
            return f"{self.function}() got an unexpected keyword argument (not shown: it looks like a credential)"
        match = difflib.get_close_matches(name, sorted(self.accepted), n=1)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        return f"{self.function}() got an unexpected keyword argument {name!r}{hint}"

    # ---- the memo -------------------------------------------------------------------------

    def _remember(self, kwargs: dict[str, Any], settings: ProviderSettings) -> None:
        if _ENV_DATA is None:
            return
        copied: dict[str, Any] = {}
        numbers: list[str] = []
        for name, value in kwargs.items():
            cls = value.__class__
            if cls is dict:
                if not all(type(k) is str and type(v) is str for k, v in value.items()):
                    return  # {"n": 1} and {"n": True} are equal dicts but different queries
                value = dict(value)  # a caller changing its dict later must not change ours
            elif cls in (int, float):
                if value == 0 or value == 1:  # equal to False / True
                    numbers.append(name)
            elif not _memoisable(value):
                return
            copied[name] = value
        try:
            key = _memo_key(kwargs)
        except TypeError:
            return
        given = {name for name, value in kwargs.items() if value is not None and not _not_given(value)}
        variables = [
            var for field, var in self.settings_class.env_fallbacks.items() if not given & _SDK_NAMES_OF[field]
        ]
        if isinstance(kwargs.get("api_key_env"), str):
            variables.append(kwargs["api_key_env"])
        env_keys = [_ENV_KEY(v) for v in dict.fromkeys(variables)]
        present = tuple(k for k in env_keys if k in _ENV_DATA)
        absent = frozenset(k for k in env_keys if k not in present)
        memo = _Memo(copied, tuple(numbers), absent, present, tuple(map(_ENV_DATA.get, present)), settings)
        with self.lock:
            bucket = self.memo.get(key)
            if bucket is None:
                while len(self.memo) >= _MEMO_SIZE:
                    del self.memo[next(iter(self.memo))]
                self.memo[key] = [memo]
            else:
                self.memo[key] = [memo, *bucket[: _BUCKET_SIZE - 1]]  # replaced, never changed in place


def _drop_in(wrapper: _Wrapper, *, is_async: bool, doc: str) -> Callable[..., Any]:
    """Make the public function for ``wrapper``: the memo hit inline, everything else delegated.

    The hit path is written out here, once, closed over its wrapper's memo: a wrapper hit is
    meant to cost well under 1 us, and a call level is a tenth of that. It is the registry's
    own hit (`Registry.get_client`) with the settings' hash already known: the entry for that
    hash in the default registry's table, its use counted and its tick taken as there. No
    client, entry or registry is held by the memo, so an evicted client, a closed or replaced
    default registry, or a fork are all seen here as "not in the table": the slow path then
    asks the registry, which builds or refuses as it does for `get_client`.
    """
    memo_table = wrapper.memo
    environ_keys = _ENV_KEYS
    environ_get = _ENV_GET
    function = wrapper.function
    defaults = _defaults

    def drop_in(**kwargs: Any) -> Any:
        key = kwargs.get("api_key")  # _memo_key, written out
        try:
            bucket = memo_table.get(hash(key) if key is not None else hash(kwargs.get("base_url")))
        except TypeError:  # an unhashable key or URL: never memoised
            bucket = None
        settings: ProviderSettings | None = None
        if bucket is not None:
            for memo in bucket:
                if (
                    memo.kwargs == kwargs
                    and environ_keys.isdisjoint(memo.absent)
                    and (not memo.present or tuple(map(environ_get, memo.present)) == memo.values)
                    and (not memo.numbers or not any(kwargs[name].__class__ is bool for name in memo.numbers))
                ):
                    registry = defaults._default
                    if registry is not None:
                        table = registry._async if is_async else registry._sync
                        try:  # subscripts, not .get(): a miss goes the slow way anyway
                            entry = table[memo.key]
                            count = entry.counters[None]
                        except KeyError:
                            pass
                        else:  # as Registry.get_client's hit, by the memo's hash
                            if registry._ordered:
                                table.move_to_end(memo.key)
                            entry.used = registry._hits.hit()
                            count()
                            if not registry._closed:  # checked last, as get_client does
                                return entry.client
                    settings = memo.settings
                    break
        if settings is None:
            settings = wrapper.settings(kwargs)
        registry = defaults._default
        if registry is None:
            registry = defaults.default_registry()
        attempts = 0
        while True:
            try:
                return registry.get_async_client(settings) if is_async else registry.get_client(settings)
            except RegistryClosedError as exc:  # closed since: the default registry is made anew
                attempts += 1
                if attempts > _CLOSED_RETRIES:
                    raise _renamed(exc, function, is_async) from exc.__cause__
                registry = defaults.default_registry()
            except (RegistryError, SettingsError) as exc:
                raise _renamed(exc, function, is_async) from exc.__cause__

    drop_in.__name__ = drop_in.__qualname__ = function
    drop_in.__doc__ = doc
    drop_in.__module__ = __name__
    return drop_in


def _renamed(exc: Exception, function: str, is_async: bool) -> Exception:
    """``exc`` with a message that names the wrapper the caller called."""
    message = str(exc).replace("get_async_client()" if is_async else "get_client()", f"{function}()")
    if not message.startswith(f"{function}()"):
        message = f"{function}(): {message}"
    try:
        return type(exc)(message)
    except Exception:  # an error type that wants other arguments: keep it as it was
        return exc


def _memo_key(kwargs: Mapping[str, Any]) -> int:
    """The memo's key for a call: ``hash()`` of its API key, or of its URL when it gives no key.

    An int, so no string made from a secret is kept as a key. Calls that differ in anything
    else share a bucket and are told apart there. Raises TypeError for an unhashable value.
    """
    key = kwargs.get("api_key")
    return hash(key) if key is not None else hash(kwargs.get("base_url"))


def _memoisable(value: object) -> bool:
    # Values whose == says "same settings": immutable scalars, the SDK's sentinels, URLs and
    # Timeouts (compared by value), functions and bound methods (by identity).
    return (
        value.__class__ in (str, bool, type(None))
        or callable(value)
        or _not_given(value)
        or type(value).__name__ in ("URL", "Timeout", "TimeoutParts")
    )


def _not_given(value: object) -> bool:
    return type(value).__name__ == "NotGiven"  # openai.NOT_GIVEN, groq.NOT_GIVEN, ...


def _query_value(function: str, name: str, value: object) -> str:
    # As the SDKs send them: str(value), and true/false for booleans.
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TypeError(
        f"{function}(): default_query values must be strings or numbers; {_quoted(name)} is a {type(value).__name__}"
    )


def _quoted(name: str) -> str:
    return "a value" if looks_like_credential(name) else repr(name)


# Settings field -> the wrapper arguments that give it (a callable api_key gives api_key_provider).
_SDK_NAMES_OF: dict[str, frozenset[str]] = {}


def _sdk_names_of(field: str) -> frozenset[str]:
    return frozenset({field, *(sdk for sdk, renamed in _RENAMED.items() if renamed == field)})


for _field in {
    *OpenAISettings.model_fields,
    *AzureOpenAISettings.model_fields,
    *GroqSettings.model_fields,
    *CerebrasSettings.model_fields,
}:
    _SDK_NAMES_OF[_field] = _sdk_names_of(_field)


_OPENAI = _Wrapper("get_openai_client", OpenAISettings, _OPENAI_SDK)
_ASYNC_OPENAI = _Wrapper("get_async_openai_client", OpenAISettings, _OPENAI_SDK)
_AZURE = _Wrapper("get_azure_openai_client", AzureOpenAISettings, _AZURE_SDK)
_ASYNC_AZURE = _Wrapper("get_async_azure_openai_client", AzureOpenAISettings, _AZURE_SDK)
_GROQ = _Wrapper("get_groq_client", GroqSettings, _GROQ_SDK)
_ASYNC_GROQ = _Wrapper("get_async_groq_client", GroqSettings, _GROQ_SDK)
_CEREBRAS = _Wrapper("get_cerebras_client", CerebrasSettings, _CEREBRAS_SDK)
_ASYNC_CEREBRAS = _Wrapper("get_async_cerebras_client", CerebrasSettings, _CEREBRAS_SDK)


_WRAPPERS = (_OPENAI, _ASYNC_OPENAI, _AZURE, _ASYNC_AZURE, _GROQ, _ASYNC_GROQ, _CEREBRAS, _ASYNC_CEREBRAS)


def _after_fork_in_child() -> None:
    for wrapper in _WRAPPERS:
        wrapper.lock = threading.Lock()  # another thread of the parent may have held it while forking


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


get_openai_client = _drop_in(
    _OPENAI, is_async=False, doc="A shared ``openai.OpenAI`` for these constructor arguments."
)
get_async_openai_client = _drop_in(
    _ASYNC_OPENAI, is_async=True, doc="A shared ``openai.AsyncOpenAI`` for these constructor arguments."
)
get_azure_openai_client = _drop_in(
    _AZURE, is_async=False, doc="A shared ``openai.AzureOpenAI`` for these constructor arguments."
)
get_async_azure_openai_client = _drop_in(
    _ASYNC_AZURE, is_async=True, doc="A shared ``openai.AsyncAzureOpenAI`` for these constructor arguments."
)
get_groq_client = _drop_in(_GROQ, is_async=False, doc="A shared ``groq.Groq`` for these constructor arguments.")
get_async_groq_client = _drop_in(
    _ASYNC_GROQ, is_async=True, doc="A shared ``groq.AsyncGroq`` for these constructor arguments."
)
get_cerebras_client = _drop_in(
    _CEREBRAS, is_async=False, doc="A shared ``cerebras.cloud.sdk.Cerebras`` for these constructor arguments."
)
get_async_cerebras_client = _drop_in(
    _ASYNC_CEREBRAS,
    is_async=True,
    doc="A shared ``cerebras.cloud.sdk.AsyncCerebras`` for these constructor arguments.",
)
