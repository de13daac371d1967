"""The client classes the registry hands out: the SDK's own, guarded against holders' changes.

A registry client is shared by every caller with the same configuration, so an attribute one
holder assigns (LiteLLM's ``completion(client=c)`` sets ``c.max_retries``; code sets
``client.api_key`` or ``client.timeout``) would change the client for all of them, and it would
no longer behave as its config_hash and its record say. Each class here subclasses the SDK's
(``isinstance(c, openai.OpenAI)`` holds) and, once the builder seals a client:

- refuses to assign or delete a configuration attribute, with a `SharedClientError` naming
  ``with_options()``; assigning the value the client already has is allowed and changes
  nothing (LiteLLM sets ``max_retries = 2`` on clients that mostly have 2 already);
- holds its default headers and query in read-only dicts;
- lets the SDK cache the key a key provider returned (openai's ``_refresh_api_key`` assigns
  ``api_key`` before each request): with a provider, ``api_key`` is not configuration.

``client.with_options(...)`` is the way to get a variant: it shares the connection pool, is
not registered, is not sealed (it belongs to whoever made it), and reads no environment
variable the registry client did not (the SDK's copy would read ``OPENAI_ORG_ID``,
``OPENAI_CUSTOM_HEADERS``, ...; Cerebras' copy would send a warm-up request).

Groq and Cerebras take only a string key, so a client with a key provider asks the provider
for the key when each request (and each retry) is prepared, and sets the ``Authorization``
header on that request itself; the client's own ``api_key`` stays empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, NoReturn

from registry.errors import RegistryError

_SEALED = "_clientreg_shared"
_KEY_SOURCE = "_clientreg_key_source"
_MISSING = object()

# Attributes that configure a client (the SDKs' and ours). Other attributes (lazily cached
# resources, platform headers) are the SDK's business and stay writable.
_GUARDED = frozenset(
    {
        "api_key",
        "admin_api_key",
        "organization",
        "project",
        "webhook_secret",
        "websocket_base_url",
        "workload_identity",
        "max_retries",
        "timeout",
        "base_url",
        "_base_url",
        "_base_url_was_default",
        "_client",
        "_custom_headers",
        "_custom_query",
        "_api_key_provider",
        "_ambient_authorizations",
        "_data_residency",
        "_provider",
        "_provider_runtime",
        "_strict_response_validation",
        "_workload_identity_auth",
        "_idempotency_header",
        "_version",
        "_api_version",
        "_azure_ad_token",
        "_azure_ad_token_provider",
        "_azure_deployment",
        "_azure_endpoint",
        "_enforce_credentials",
        "warm_tcp_connection",
        _KEY_SOURCE,
        _SEALED,
    }
)
# The with_options() argument that sets a private attribute, for the error message.
_OPTION_NAMES = {
    "_base_url": "base_url",
    "_custom_headers": "default_headers",
    "_custom_query": "default_query",
    "_client": "http_client",
    "_api_key_provider": "api_key",
    "_azure_ad_token": "azure_ad_token",
    "_azure_ad_token_provider": "azure_ad_token_provider",
    "_api_version": "api_version",
    _KEY_SOURCE: "api_key",
}
# Fields an openai-family copy would otherwise take from the environment when left unset.
_OPENAI_INHERITED = ("organization", "project", "admin_api_key", "webhook_secret")


class SharedClientError(RegistryError, AttributeError):
    """An attempt to change a client the registry shares between every holder of its configuration."""


class _ReadOnlyDict(dict[str, Any]):
    """A client's default headers or query: readable as a dict, refusing changes.

    What changes nothing is allowed, as for the client's attributes: ``setdefault`` of a name
    already there (LiteLLM's Azure route sets ``api-version`` that way on the client it is
    given), and setting or updating a name to the value it has.
    """

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise SharedClientError(
            "a registry client's default headers and query are shared by every holder: "
            "use client.with_options(default_headers=...) for a variant"
        )

    def setdefault(self, key: str, default: Any = None, /) -> Any:
        """The value of ``key``; refused only when ``key`` is missing (that would add it)."""
        if key in self:
            return self[key]
        self._refuse()

    def __setitem__(self, key: str, value: Any) -> None:
        if not self._holds(key, value):
            self._refuse()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Refused unless every pair given is already here with that value."""
        if not all(self._holds(k, v) for k, v in dict(*args, **kwargs).items()):
            self._refuse()

    def __ior__(self, other: Any) -> _ReadOnlyDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def _holds(self, key: str, value: Any) -> bool:
        current = self.get(key, _MISSING)
        return current is value or (type(current) is type(value) and bool(current == value))

    __delitem__ = pop = popitem = clear = _refuse


class _Guarded:
    """Refuses changes to a sealed client's configuration (see the module docstring)."""

    _clientreg_copy_defaults: tuple[tuple[str, Any], ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _GUARDED and self.__dict__.get(_SEALED):
            current = getattr(self, name, _MISSING)
            if _same(name, current, value):
                return
            if name == "api_key" and self.__dict__.get("_api_key_provider") is not None:
                # The SDK caching what the key provider returned for this request.
                object.__setattr__(self, name, value)
                return
            _refuse(self, name, "set")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in _GUARDED and self.__dict__.get(_SEALED):
            _refuse(self, name, "delete")
        object.__delattr__(self, name)

    def copy(self, **options: Any) -> Any:
        """A variant of this client with ``options`` changed, on the same connection pool, not registered.

        Takes the SDK's ``copy()`` / ``with_options()`` arguments. Unlike the SDK's own copy, it
        reads no environment variable for what it leaves unchanged: the variant is this client
        plus the changes asked for.
        """
        for name, value in self._clientreg_copy_defaults:
            options.setdefault(name, value)
        copied = super().copy(**options)  # type: ignore[misc]
        _inherit(self, copied, options)
        return copied

    with_options = copy


class _KeySourceHeader:
    """Groq / Cerebras (sync): the Authorization header from the key provider, per request."""

    @property
    def auth_headers(self) -> dict[str, str]:
        """The SDK's auth headers, or none when a key provider sets them per request."""
        if self.__dict__.get(_KEY_SOURCE) is not None:
            return {}
        headers: dict[str, str] = super().auth_headers  # type: ignore[misc]
        return headers

    def _prepare_request(self, request: Any) -> None:
        super()._prepare_request(request)  # type: ignore[misc]
        source = self.__dict__.get(_KEY_SOURCE)
        if source is not None and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {source()}"


class _AsyncKeySourceHeader:
    """Groq / Cerebras (async): the Authorization header from the key provider, per request."""

    @property
    def auth_headers(self) -> dict[str, str]:
        """The SDK's auth headers, or none when a key provider sets them per request."""
        if self.__dict__.get(_KEY_SOURCE) is not None:
            return {}
        headers: dict[str, str] = super().auth_headers  # type: ignore[misc]
        return headers

    async def _prepare_request(self, request: Any) -> None:
        await super()._prepare_request(request)  # type: ignore[misc]
        source = self.__dict__.get(_KEY_SOURCE)
        if source is not None and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {await source()}"


@cache
def shared_class(
    sdk_class: type[Any],
    *,
    key_header: bool = False,
    is_async: bool = False,
    copy_defaults: tuple[tuple[str, Any], ...] = (),
) -> type[Any]:
    """The guarded subclass of ``sdk_class``.

    ``key_header``: the SDK takes only a string key (Groq, Cerebras), so a key provider's key
    is set on each request. ``copy_defaults``: arguments ``with_options()`` passes unless told
    otherwise (Cerebras: no warm-up request from a copy).
    """
    bases: tuple[type[Any], ...] = (_Guarded,)
    if key_header:
        bases += (_AsyncKeySourceHeader if is_async else _KeySourceHeader,)
    name = f"Shared{sdk_class.__name__}"
    namespace = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": sdk_class.__doc__,
        "_clientreg_copy_defaults": copy_defaults,
    }
    return type(name, (*bases, sdk_class), namespace)


def use_key_source(client: Any, source: Any) -> None:
    """Make a Groq / Cerebras client ask ``source`` for its key on every request."""
    object.__setattr__(client, _KEY_SOURCE, source)


def seal(client: Any) -> None:
    """Freeze ``client``'s configuration: from now on it is shared."""
    object.__setattr__(client, "_custom_headers", _ReadOnlyDict(client._custom_headers))
    object.__setattr__(client, "_custom_query", _ReadOnlyDict(client._custom_query))
    object.__setattr__(client, _SEALED, True)


def _same(name: str, current: Any, value: Any) -> bool:
    if current is value:
        return True
    if name == "base_url" and current is not _MISSING:
        return str(current).rstrip("/") == str(value).rstrip("/")
    if isinstance(current, Mapping) and isinstance(value, Mapping):
        return dict(current) == dict(value)
    return type(current) is type(value) and bool(current == value)


def _refuse(client: Any, name: str, verb: str) -> NoReturn:
    option = _OPTION_NAMES.get(name, name.lstrip("_"))
    raise SharedClientError(
        f"cannot {verb} {name!r} on a registry client: it is shared by every holder of its configuration, "
        f"and the change would reach them all. Use client.with_options({option}=...) for a variant on the "
        "same connection pool, or ask the registry for a client with other settings"
    )


def _inherit(parent: Any, copied: Any, options: Mapping[str, Any]) -> None:
    """Undo what the SDK's copy read from the environment, and carry a key provider over."""
    if hasattr(parent, "_ambient_authorizations") and "provider" not in options:  # the openai family
        for name in _OPENAI_INHERITED:
            if options.get(name) is None:
                setattr(copied, name, getattr(parent, name))
        copied._ambient_authorizations = frozenset()
    headers: Mapping[str, str]
    if options.get("set_default_headers") is not None:
        headers = options["set_default_headers"]
    elif options.get("default_headers") is not None:
        given: Mapping[str, str] = options["default_headers"]
        headers = dict(parent._custom_headers)
        if any(name.lower() == "authorization" for name in given):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        headers = {**headers, **given}
    else:
        headers = parent._custom_headers
    copied._custom_headers = dict(headers)
    copied._custom_query = dict(copied._custom_query)  # the SDK passed ours on: the variant's own
    source = parent.__dict__.get(_KEY_SOURCE)
    if source is not None and options.get("api_key") is None:
        use_key_source(copied, source)
