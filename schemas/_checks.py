"""Checks of single values that the settings models share: URLs, names, paths, text.

Each raises ``PydanticCustomError`` with a message that says what is wrong and never quotes
what was written, which may be a secret put in the wrong place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr
from pydantic_core import PydanticCustomError

from schemas._canonical import is_credential_name, is_public_name, looks_like_credential, normalize_url
from schemas._errors import HTTP_TOKEN, has_control_characters, shown_name

# ---- URLs --------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)  # URLs repeat; urlsplit costs more than the rest of a model's validation
def http_url(value: str) -> str:
    """Return ``value`` normalised, or raise: an http(s) URL with a host and no credentials."""
    return _checked_url(value, ("http", "https"), "must be an http:// or https:// URL")


@lru_cache(maxsize=256)
def websocket_url(value: str) -> str:
    """Return ``value`` normalised, or raise: a ws, wss, http or https URL with a host."""
    return _checked_url(value, ("ws", "wss", "http", "https"), "must be a ws://, wss://, http:// or https:// URL")


def _checked_url(value: str, schemes: tuple[str, ...], wrong_scheme: str) -> str:
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in schemes:
        raise PydanticCustomError("url_scheme", wrong_scheme)
    try:
        normalized = normalize_url(value)
    except ValueError as exc:
        raise PydanticCustomError("url", "{reason}", {"reason": str(exc)}) from None
    if no_host(normalized):
        raise PydanticCustomError("url", "URL has no host")
    return normalized


def no_host(normalized_url: str) -> bool:
    """True for ``http://`` and ``http:///v1`` alike: nothing between ``://`` and the path."""
    return normalized_url.split("://", 1)[1].split("/", 1)[0] == ""


def check_url_query(url: str, declared: frozenset[str]) -> None:
    """Refuse a URL whose query holds anything but public parameters.

    A URL is written into the canonical form (and shown in repr) as it is: a parameter that
    may be a credential belongs in ``default_query``, where its value is fingerprinted.
    """
    query = urlsplit(url).query
    for name, value in parse_qsl(query, keep_blank_values=True):
        if not is_public_name(name, declared) or looks_like_credential(value):
            raise PydanticCustomError(
                "url_secret",
                "the URL's query has a parameter ({name}) that is not known to be public; put it in "
                "default_query, where its value is fingerprinted (or declare it in public_query)",
                {"name": shown_name(name)},
            )


# ---- names -------------------------------------------------------------------------------------

# A provider registered in code under a short name, or an import reference to one.
_PROVIDER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_PROVIDER_REFERENCE = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*:{_IDENTIFIER}(?:\.{_IDENTIFIER})*")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def provider_name(value: str, field: str) -> str:
    """Check a key or token provider's name: a short name or ``package.module:attribute``.

    A name is written into the canonical form as it is, so a credential pasted here would be
    stored: it is refused, and never quoted.
    """
    if looks_like_credential(value):
        raise PydanticCustomError(
            "provider_name_secret",
            "{field} looks like a credential, not a provider name; put the key in api_key or the environment",
            {"field": field},
        )
    if len(value) > 200 or not (_PROVIDER_NAME.fullmatch(value) or _PROVIDER_REFERENCE.fullmatch(value)):
        raise PydanticCustomError(
            "provider_name",
            "{field} must be the name of a registered provider (letters, digits, '_', '-', '.') "
            "or an import reference 'package.module:attribute'",
            {"field": field},
        )
    return value


def variable_name(value: str) -> str:
    """Check ``api_key_env``: the name of an environment variable, not the key itself."""
    if looks_like_credential(value):
        raise PydanticCustomError(
            "variable_name_secret",
            "api_key_env looks like a key, not the name of a variable: put the key in that variable "
            "(or in api_key) and name the variable here",
        )
    if not _VARIABLE_NAME.fullmatch(value):
        raise PydanticCustomError(
            "variable_name", "api_key_env must be an environment variable name (letters, digits and '_')"
        )
    return value


# OpenAI's organization and project ids are long random strings by design, and public.
_OPENAI_ID = re.compile(r"(?:org|proj)[-_][A-Za-z0-9]{8,64}")


def plain_text(value: str, field: str) -> str:
    """Check a field written in clear (organization, project, deployment, API version): no credential.

    OpenAI's ``org-...`` and ``proj_...`` ids look random, but they are ids, not secrets.
    """
    if looks_like_credential(value) and not _OPENAI_ID.fullmatch(value):
        raise PydanticCustomError(
            "plain_secret",
            "{field} looks like a credential; it is written in clear into the index, so it is refused",
            {"field": field},
        )
    return value


def header_names(headers: Mapping[str, str]) -> None:
    """Refuse header names that are not HTTP tokens, look like credentials, or repeat in another case.

    Tokens are ASCII (RFC 9110), so a name cannot alias another through Unicode case folding
    (the Kelvin sign lower-cases to ``k``).
    """
    _header_names(tuple(headers))


@lru_cache(maxsize=512)  # the same few sets of headers are given over and over
def _header_names(names: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if not HTTP_TOKEN.fullmatch(name):
            raise PydanticCustomError(
                "header_name",
                "header name number {position} is not an HTTP token (ASCII letters, digits and "
                "!#$%&'*+-.^_`|~ only; a whole 'Name: value' line is not a name)",
                {"position": position},
            )
        if looks_like_credential(name):
            raise PydanticCustomError(
                "header_name_secret", "header name number {position} looks like a credential", {"position": position}
            )
        lowered = name.lower()
        if lowered in seen:
            raise PydanticCustomError("header", "header {name} is given twice", {"name": repr(lowered)})
        seen.add(lowered)


def query_names(query: Mapping[str, str]) -> None:
    """Refuse query parameter names that look like credentials."""
    _query_names(tuple(query))


@lru_cache(maxsize=512)
def _query_names(names: tuple[str, ...]) -> None:
    for position, name in enumerate(names, start=1):
        if not name or looks_like_credential(name):
            raise PydanticCustomError(
                "query_name",
                "query parameter name number {position} is empty or looks like a credential",
                {"position": position},
            )


def public_names(values: Iterable[str], *, headers: bool) -> tuple[str, ...]:
    """Check and normalise ``public_headers`` / ``public_query``: sorted, unique, headers lower-cased."""
    field = "public_headers" if headers else "public_query"
    names: set[str] = set()
    for position, name in enumerate(values, start=1):
        if (headers and not HTTP_TOKEN.fullmatch(name)) or not name or looks_like_credential(name):
            raise PydanticCustomError(
                "public_name",
                "{field} item {position} is not a valid name",
                {"field": field, "position": position},
            )
        if is_credential_name(name):
            raise PydanticCustomError(
                "public_name_secret",
                "{field}: {name} carries credentials by its name, so it cannot be declared public",
                {"field": field, "name": shown_name(name)},
            )
        names.add(name.lower() if headers else name)
    return tuple(sorted(names))


# ---- paths -------------------------------------------------------------------------------------


def verify_value(value: bool | str) -> bool | str:
    """``verify``: a bool, or a CA bundle path made absolute (``~`` expanded) against the working directory.

    A relative path names a different file in each working directory, so it is resolved
    here, once: the hash then says which file is used. ``"true"`` and ``"false"`` (from a
    ``CLIENTREG_*`` variable, say) are the booleans, not file names.
    """
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if not value.strip():
        raise PydanticCustomError("verify", "verify must be true, false or the path of a CA bundle, not empty")
    path = os.path.expanduser(value)
    return path if os.path.isabs(path) else os.path.abspath(path)


# ---- text --------------------------------------------------------------------------------------


_PLAIN_TYPES = frozenset({int, float, bool})


def control_character_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return (field, message) for each given value holding a control character, never quoting it.

    CR, LF, NUL and the other C0 and C1 controls have no place in a key, a URL, a header or a
    name; a key read from a file with its newline would otherwise fail on the first request,
    with the whole key in the SDK's message.
    """
    problems: list[tuple[str, str]] = []
    for field, value in data.items():
        kind = value.__class__
        if kind is str:  # the common case, first and fast
            if not value.isprintable() and has_control_characters(value):
                problems.append((field, _control_message(field, value)))
        elif value is None or kind in _PLAIN_TYPES:
            continue
        elif kind is dict and all(
            k.__class__ is str and v.__class__ is str and k.isprintable() and v.isprintable() for k, v in value.items()
        ):
            continue  # headers or query parameters, all plain: the common case
        elif isinstance(value, str | bytes | SecretStr):
            text = _text(value)
            if has_control_characters(text):
                problems.append((field, _control_message(field, text)))
        elif isinstance(value, Mapping):
            for name, item in value.items():
                if isinstance(name, str | bytes) and has_control_characters(_text(name)):
                    problems.append((field, "a name holds a control character (a line break, tab or NUL)"))
                elif isinstance(item, str | bytes) and has_control_characters(_text(item)):
                    problems.append((field, f"the value of {shown_name(name)} holds a control character"))
        elif isinstance(value, list | tuple):
            for position, item in enumerate(value, start=1):
                if isinstance(item, str | bytes) and has_control_characters(_text(item)):
                    problems.append((field, f"item {position} holds a control character"))
    return problems


def _text(value: str | bytes | SecretStr) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _control_message(field: str, text: str) -> str:
    if text.endswith(("\n", "\r")) and not has_control_characters(text.rstrip("\r\n")):
        return f"{field} ends with a line break (read from a file with its newline?): remove it"
    return f"{field} holds a control character (a line break, tab, NUL or escape)"
