"""Key and token providers: a credential asked for on every request, named in the config.

>>> registry.register_key_provider("vault-openai", lambda: vault.read("openai/key"))
>>> client = get_client(OpenAISettings(api_key_provider="vault-openai"))

Settings name a provider, never hold what it returns: ``api_key_provider`` (every provider)
and ``azure_ad_token_provider`` (Azure) are a name registered here or an import reference
``"package.module:attribute"``. The name enters the canonical form and the index as written;
the key or token it returns is asked for per request and kept nowhere by clientreg.

- A registered name is looked up on every request: registering the name again replaces the
  provider for every client built with it from the next request on.
- An import reference is imported once, when the first client that names it is built.
- A callable given to a wrapper (``get_openai_client(api_key=fn)``) gets a name from
  `name_for_callable`, which keys it by what it does, not by the object: see there.

A provider is a function of no arguments returning the credential as a ``str``; for async
clients it may be ``async``. A sync provider used by an async client is called on the event
loop, so it should be quick (a cached token, a file read); an async provider cannot serve a
sync client. Whatever goes wrong (the provider raises, returns a non-string, an empty string
or one with a control character) is a `KeyProviderError` on that request, naming the
provider and never quoting what it returned.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
import threading
import types
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeAlias

from registry.errors import MissingCredentialsError, RegistryError
from schemas._credentials import looks_like_credential

Provider: TypeAlias = Callable[[], "str | Awaitable[str]"]
"""What a key or token provider is: called with no arguments, returns (or awaits to) a str."""

Kind = Literal["key", "token"]

# Generated names of callables given to wrappers start with this; users may not register it.
_CALLABLE_PREFIX = "callable-"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_CALLABLES = 1024

_lock = threading.Lock()
_named: dict[str, Provider] = {}
# Callables given to wrappers: identity key -> (generated name, the first callable seen), and
# the same callables by name, for the builder. Bounded: least recently used dropped first. A
# client built from one keeps its own reference, so dropping an entry never breaks a client.
_callables: OrderedDict[Any, tuple[str, Provider]] = OrderedDict()
_callables_by_name: dict[str, Provider] = {}
_callable_count = 0


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it while forking


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class KeyProviderError(RegistryError):
    """A key or token provider failed on a request, or returned no usable credential.

    The message names the provider; it never holds what the provider returned.
    """


def register_key_provider(name: str, provider: Provider) -> None:
    """Register ``provider`` under ``name``, for settings that say ``api_key_provider = name``.

    >>> register_key_provider("vault-openai", lambda: vault.read("openai/key"))

    Azure token providers (``azure_ad_token_provider = name``) are registered the same way.
    Registering a name again replaces its provider for every client that uses it, from the
    next request on.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            "a key provider's name is a letter followed by up to 63 letters, digits, '_', '-' or '.' "
            "(import references 'package.module:attribute' need no registration)"
        )
    if looks_like_credential(name):
        raise ValueError("a key provider's name is written into the config hash; this one looks like a key")
    if name.startswith(_CALLABLE_PREFIX):
        raise ValueError(f"names starting with {_CALLABLE_PREFIX!r} are reserved for callables given to wrappers")
    if not callable(provider):
        raise TypeError(f"register_key_provider({name!r}, ...) needs a function of no arguments")
    with _lock:
        _named[name] = provider


def unregister_key_provider(name: str) -> None:
    """Forget the provider registered under ``name``; clients using it then fail on their next request."""
    with _lock:
        _named.pop(name, None)


# ---- sources: what the SDK (or our client subclass) calls on every request ------------------


class _Source:
    """A provider resolved for one client: by registered name on each call, or a fixed callable."""

    __slots__ = ("_fixed", "_name", "kind", "label")

    def __init__(self, label: str, kind: Kind, *, name: str | None = None, fixed: Provider | None = None) -> None:
        self.label = label
        self.kind = kind
        self._name = name
        self._fixed = fixed

    def _provider(self) -> Provider:
        if self._fixed is not None:
            return self._fixed
        provider = _named.get(self._name)  # type: ignore[arg-type]
        if provider is None:
            raise KeyProviderError(f"{self.kind} provider {self.label!r} is no longer registered")
        return provider

    def _call(self, provider: Provider) -> Any:
        # The provider's own exception is kept as __cause__, for its traceback; our message
        # names only its type.
        try:
            return provider()
        except Exception as exc:
            raise KeyProviderError(f"{self.kind} provider {self.label!r} raised {type(exc).__name__}") from exc

    def _checked(self, value: object) -> str:
        what = f"{self.kind} provider {self.label!r}"
        if not isinstance(value, str):
            raise KeyProviderError(f"{what} returned {type(value).__name__}, not a str")
        value = str.__str__(value)  # a str subclass could render itself differently in a header
        if not value.strip():
            raise KeyProviderError(f"{what} returned an empty {self.kind}")
        if _CONTROL.search(value):
            raise KeyProviderError(
                f"{what} returned a {self.kind} with a control character (a trailing newline?); strip it there"
            )
        return value

    def __repr__(self) -> str:
        return f"<{self.kind} provider {self.label!r}>"


class CredentialSource(_Source):
    """Called by a sync client before each request; returns the current credential."""

    __slots__ = ()

    def __call__(self) -> str:
        """Ask the provider for the credential (the SDK calls this before each request)."""
        value = self._call(self._provider())
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never awaited: say so here rather than in a RuntimeWarning
            raise KeyProviderError(
                f"{self.kind} provider {self.label!r} is async; a sync client needs a plain function"
            )
        return self._checked(value)


class AsyncCredentialSource(_Source):
    """Awaited by an async client before each request; takes sync and async providers."""

    __slots__ = ()

    async def __call__(self) -> str:
        """Ask the provider for the credential, awaiting it if it is async."""
        value = self._call(self._provider())
        if inspect.isawaitable(value):
            try:
                value = await value
            except Exception as exc:
                raise KeyProviderError(
                    f"{self.kind} provider {self.label!r} raised {type(exc).__name__}"
                ) from exc
        return self._checked(value)


def credential_source(
    reference: str, *, kind: Kind, is_async: bool, field: str, settings_name: str
) -> CredentialSource | AsyncCredentialSource:
    """The per-request source for a provider named in settings (called when a client is built).

    Raises `MissingCredentialsError` naming ``field`` when the name is not registered or the
    reference cannot be imported, so the mistake shows when the client is asked for.
    """
    cls = AsyncCredentialSource if is_async else CredentialSource
    if reference in _named:
        return cls(reference, kind, name=reference)
    fixed = _callables_by_name.get(reference)
    if fixed is not None:
        return cls(reference, kind, fixed=fixed)
    if ":" in reference:
        return cls(reference, kind, fixed=_imported(reference, field, settings_name))
    raise MissingCredentialsError(
        f"{settings_name} {field} {reference!r} is not registered: call "
        f"registry.register_key_provider({reference!r}, fn) before asking for the client, "
        "or give an import reference 'package.module:function'"
    )


@functools.lru_cache(maxsize=256)
def _import_reference(reference: str) -> Any:
    module_name, _, attributes = reference.partition(":")
    value: Any = importlib.import_module(module_name)
    for attribute in attributes.split("."):
        value = getattr(value, attribute)
    return value


def _imported(reference: str, field: str, settings_name: str) -> Provider:
    try:
        provider = _import_reference(reference)
    except (ImportError, AttributeError) as exc:
        raise MissingCredentialsError(
            f"{settings_name} {field} {reference!r} cannot be imported ({type(exc).__name__}: {exc})"
        ) from None
    if not callable(provider):
        raise MissingCredentialsError(
            f"{settings_name} {field} {reference!r} is a {type(provider).__name__}, not a function"
        )
    return provider  # type: ignore[no-any-return]


# ---- callables given to wrappers ------------------------------------------------------------


def name_for_callable(provider: Provider) -> str:
    """The provider name that stands for a callable given to a wrapper.

    Keyed by what the callable does, not by the object, so the registry does not grow with
    every new lambda (a cache keyed on the object's identity does, and can even hand out a
    client holding another, collected callable's key when an id is reused):

    - a module-level function reachable by import gets its import reference
      (``"myapp.secrets:openai_key"``), the same name a settings file would use;
    - a function (lambda, closure) is keyed by its code object, its module and what it
      captures and defaults to; a bound method by its function and the object it is bound to;
      a ``functools.partial`` by its function and arguments; any other callable by itself.
      Captured strings, numbers, bytes, booleans and None compare by type and value (a closure
      re-created per call over the same tenant id is the same provider), anything else by
      identity. Such a callable gets a generated name, ``callable-<n>-<module.qualname>``,
      unique in this process: its config_hash differs between processes.

    The table behind the generated names holds at most 1024 callables (and what they capture),
    least recently used dropped first; a client built from one keeps its own reference.
    """
    global _callable_count
    if isinstance(provider, types.FunctionType):
        reference = _import_reference_of(provider)
        if reference is not None:
            return reference
    key = _identity(provider)
    with _lock:
        found = _callables.get(key)
        if found is not None:
            _callables.move_to_end(key)
            return found[0]
        _callable_count += 1
        name = _generated_name(provider, _callable_count)
        _callables[key] = (name, provider)
        _callables_by_name[name] = provider
        while len(_callables) > _MAX_CALLABLES:
            _, (old_name, _old) = _callables.popitem(last=False)
            _callables_by_name.pop(old_name, None)
    return name


def _import_reference_of(function: types.FunctionType) -> str | None:
    qualname = function.__qualname__
    module = function.__module__
    if "<" in qualname or not module or module == "__main__" or function.__closure__:
        return None
    reference = f"{module}:{qualname}"
    try:
        if _import_reference(reference) is function:
            return reference
    except Exception:
        pass
    return None


def _generated_name(provider: Provider, number: int) -> str:
    target = getattr(provider, "__func__", None) or getattr(provider, "func", None) or provider
    module = getattr(target, "__module__", None) or ""
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    readable = re.sub(r"[^A-Za-z0-9_.\-]", "", f"{module}.{qualname}")
    prefix = f"{_CALLABLE_PREFIX}{number}-"
    room = 64 - len(prefix)
    if len(readable) > room:  # keep the end: the function's own name says most
        readable = readable[-room:].lstrip(".-")
    name = prefix + readable
    # The settings refuse a name that looks like a key (a random-looking qualname could).
    return prefix.rstrip("-") if looks_like_credential(name) or not _NAME.fullmatch(name) else name


class _Same:
    """Compares by identity (and keeps the object alive, so its id cannot be reused)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


_BY_VALUE = (str, int, float, bool, bytes, type(None))
_EMPTY_CELL = object()


def _captured(value: object) -> object:
    if type(value) in _BY_VALUE:
        return (type(value), value)  # the type keeps 1, 1.0 and True apart
    return _Same(value)


def _cell(cell: types.CellType) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # not yet assigned
        return _EMPTY_CELL


def _identity(provider: Any) -> Any:
    if isinstance(provider, types.MethodType):
        return ("method", _identity(provider.__func__), _Same(provider.__self__))
    if isinstance(provider, functools.partial):
        keywords = tuple(sorted((k, _captured(v)) for k, v in provider.keywords.items()))
        return ("partial", _identity(provider.func), tuple(map(_captured, provider.args)), keywords)
    if isinstance(provider, types.FunctionType):
        kwdefaults = provider.__kwdefaults__ or {}
        return (
            "function",
            _Same(provider.__code__),
            _Same(provider.__globals__),
            tuple(_captured(_cell(c)) for c in provider.__closure__ or ()),
            tuple(map(_captured, provider.__defaults__ or ())),
            tuple(sorted((k, _captured(v)) for k, v in kwdefaults.items())),
        )
    return ("object", _Same(provider))
