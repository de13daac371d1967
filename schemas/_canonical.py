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
    "FrozenMap",
    "dumps",
    "fingerprint",
    "fingerprint_key_id",
    "fingerprint_key_source",
    "getenv",
    "is_secret_name",
    "looks_like_credential",
    "normalize_url",
    "redact_mapping",
    "split_proxy",
]

FORM_VERSION = 2
"""Version of the canonical form; it is part of every canonical JSON string."""

# Header and query names whose values are credentials. Matching is on the lower-cased name:
# exact names first, then substrings, so that `X-Goog-Api-Key` or `X-Auth-Token` are caught too.
_SECRET_NAMES = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie"})
_SECRET_NAME_PARTS = re.compile(r"auth|key|token|secret|passw|cookie|signature|credential")


def is_secret_name(name: str) -> bool:
    """Return True when a header or query parameter named ``name`` carries a credential."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or _SECRET_NAME_PARTS.search(lowered) is not None


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
    """An immutable ``str -> str`` mapping whose repr hides the values of credential names.

    Settings models hold their header and query mappings as FrozenMaps, so mutating the dict
    passed in, or the mapping read back, cannot change a model after its hash was taken.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(data or {})

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
        return repr(redact_mapping(self._data))

    def to_dict(self) -> dict[str, str]:
        """Return a plain, mutable copy (the real values, secrets included)."""
        return dict(self._data)


def redact_mapping(data: Mapping[str, str]) -> dict[str, str]:
    """Return ``data`` with the values of credential names replaced by their fingerprint."""
    return {k: (fingerprint(v) if is_secret_name(k) else v) for k, v in data.items()}


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


def getenv(name: str) -> str | None:
    """Return the environment variable ``name``, or None (as ``os.environ.get``, faster)."""
    if _ENV_DATA is None or _ENV_ENCODE is None or _ENV_DECODE is None:
        return os.environ.get(name)
    raw = _ENV_DATA.get(_ENV_ENCODE(name))
    return None if raw is None else str(_ENV_DECODE(raw))
