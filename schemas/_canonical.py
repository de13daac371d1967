"""The pieces of the canonical form: secret fingerprints, URL and mapping normalisation.

The form itself is specified in docs/config-hash.md; changing anything here that changes
a canonical JSON string is a new FORM_VERSION.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from schemas._credentials import looks_like_credential
from schemas._fingerprint import fingerprint, fingerprint_key_id, fingerprint_key_source

__all__ = [
    "FORM_VERSION",
    "PUBLIC_NAMES",
    "FrozenMap",
    "dumps",
    "fingerprint",
    "fingerprint_key_id",
    "fingerprint_key_source",
    "getenv",
    "is_credential_name",
    "is_public_name",
    "is_secret_name",
    "looks_like_credential",
    "normalize_url",
    "public_value",
    "redact_mapping",
    "split_proxy",
]

FORM_VERSION = 2
"""Version of the canonical form; it is part of every canonical JSON string."""

# Header and query names whose values are known not to be secret (compared lower-cased). Every
# other name's value is fingerprinted: a name nobody thought of (an Azure SAS `sig`, `code`,
# `X-Session`) must not put a credential in the index. Users declare more names public with
# the `public_headers` / `public_query` fields, which enter the hash.
PUBLIC_NAMES = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "api-version",
        "api_version",
        "cache-control",
        "content-type",
        "openai-beta",
        "openai-organization",
        "openai-project",
        "traceparent",
        "user-agent",
        "x-client-request-id",
        "x-ms-client-request-id",
        "x-request-id",
    }
)
# Names that carry credentials, by their parts or pieces of them: they cannot be declared public.
_CREDENTIAL_NAME = re.compile(
    r"auth|token|secret|passw|cookie|signature|credential|session|bearer|jwt|apikey|private"
    r"|(?:^|[-_.])(?:key|sig|pwd|pass|code|sas)(?:$|[-_.])"
)


def is_public_name(name: str, declared: frozenset[str] = frozenset(), *, fold: bool = False) -> bool:
    """Return True when the value of a header or query parameter ``name`` is written in clear.

    True for the names in `PUBLIC_NAMES` (any case) and the names in ``declared`` (exactly,
    or in any case with ``fold``, as header names compare); a value that looks like a
    credential is fingerprinted all the same (see `public_value`).
    """
    lowered = name.lower()
    return lowered in PUBLIC_NAMES or (lowered if fold else name) in declared


def is_secret_name(name: str) -> bool:
    """Return True when values under ``name`` are fingerprinted: every name not known to be public."""
    return not is_public_name(name)


def is_credential_name(name: str) -> bool:
    """Return True when ``name`` says it carries a credential (``X-Api-Key``, ``sig``, ``session``...)."""
    return _CREDENTIAL_NAME.search(name.lower()) is not None


def public_value(name: str, value: str, declared: frozenset[str] = frozenset(), *, fold: bool = False) -> str:
    """Return ``value`` as the canonical form writes it: in clear under a public name, else its fingerprint."""
    if is_public_name(name, declared, fold=fold) and not looks_like_credential(value):
        return value
    return fingerprint(value)


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_url(url: str) -> str:
    """Lower-case scheme and host, drop a default port, an empty query and trailing slashes."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = _port(parts)
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials are not allowed in this URL")
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, host, path, parts.query, ""))


# Cached: validation and the canonical form both split the proxy, a settings object is built
# per call in users' loops, and the proxy URL is nearly always one of a few (urlsplit itself
# keeps a cache of the same strings).
@functools.lru_cache(maxsize=256)
def split_proxy(url: str) -> tuple[str, str | None]:
    """Split a proxy URL into its credential-free, normalised form and its ``user:password`` part."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = _port(parts)
    if port is not None:
        host = f"{host}:{port}"
    credentials = None
    if parts.username is not None or parts.password is not None:
        credentials = f"{parts.username or ''}:{parts.password or ''}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), "", "")), credentials


# urllib's own messages quote parts of the URL (the text after the last colon, a bracketed
# host), which may be a password ("http://user:secret" with the "@host" missing): these two
# say what is wrong, not what was written.
def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:
        raise ValueError("not a valid URL") from None


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        raise ValueError("URL has an invalid port") from None


class FrozenMap(Mapping[str, str]):
    """An immutable ``str -> str`` mapping whose repr fingerprints every value that is not public.

    Settings models hold their header and query mappings as FrozenMaps, so mutating the dict
    passed in, or the mapping read back, cannot change a model after its hash was taken.
    """

    __slots__ = ("_data", "_fold", "_public")

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(data or {})
        # Set by the settings holding it: the names it declares public, and whether names
        # compare in any case (headers) or exactly (query parameters).
        self._public: frozenset[str] = frozenset()
        self._fold = False

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self.redacted())

    def redacted(self) -> dict[str, str]:
        """Return a copy with every value that is not public replaced by its fingerprint."""
        return redact_mapping(self._data, self._public, fold=self._fold)

    def to_dict(self) -> dict[str, str]:
        """Return a plain, mutable copy (the real values, secrets included)."""
        return dict(self._data)


def redact_mapping(
    data: Mapping[str, str], declared: frozenset[str] = frozenset(), *, fold: bool = False
) -> dict[str, str]:
    """Return ``data`` with every value that is not public (see `public_value`) fingerprinted."""
    return {k: public_value(k, v, declared, fold=fold) for k, v in data.items()}


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def dumps(obj: Any) -> str:
    """Serialise ``obj`` the canonical way: sorted keys, no whitespace, ASCII only."""
    return _ENCODER.encode(obj)


# os.environ.get() raises and catches two KeyErrors per missing variable (~2 us each here),
# and a settings model reads up to four variables that are usually unset. On CPython the
# mapping behind os.environ is a plain dict that os.environ keeps current on every change,
# so a dict lookup gives the same answer at a quarter of the cost.
_ENV_DATA: dict[Any, Any] | None = getattr(os.environ, "_data", None)
_ENV_ENCODE = getattr(os.environ, "encodekey", None)
_ENV_DECODE = getattr(os.environ, "decodevalue", None)


_ENCODED_NAMES: dict[str, Any] = {}


def encoded_variable(name: str) -> Any:
    """The key under which ``name`` sits in the mapping behind ``os.environ`` (None where there is none)."""
    return None if _ENV_DATA is None or _ENV_ENCODE is None or _ENV_DECODE is None else _ENV_ENCODE(name)


def getenv(name: str) -> str | None:
    """Return the environment variable ``name``, or None (as ``os.environ.get``, faster)."""
    if _ENV_DATA is None or _ENV_ENCODE is None or _ENV_DECODE is None:
        return os.environ.get(name)
    encoded = _ENCODED_NAMES.get(name)
    if encoded is None:
        encoded = _ENV_ENCODE(name)
        if len(_ENCODED_NAMES) < 1024:  # the SDKs' variables and the few that profiles name
            _ENCODED_NAMES[name] = encoded
    raw = _ENV_DATA.get(encoded)
    return None if raw is None else str(_ENV_DECODE(raw))
