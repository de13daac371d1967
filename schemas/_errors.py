"""The one error type users catch for bad configuration, and how pydantic's errors become it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError, ValidationError

from schemas._credentials import looks_like_credential


class SettingsError(ValueError):
    """Bad configuration: names the file or variable, the profile and the field; never holds a secret.

    Every settings model raises it for bad arguments (``OpenAISettings(timeout=-1)``), and
    `load_settings` for a bad file or ``CLIENTREG_*`` variable. Attributes give the parts
    separately for programs: ``path`` (the settings file), ``variable`` (the environment
    variable to blame), ``profile``, ``field`` (the first field named) and ``fields`` (all).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        profile: str | None = None,
        field: str | None = None,
        variable: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.profile = profile
        self.field = field
        self.variable = variable
        self.fields: tuple[str, ...] = tuple(fields) if fields is not None else (() if field is None else (field,))


class _InvalidSettings(ValidationError, SettingsError):
    """A `SettingsError` that is also the pydantic ``ValidationError`` it replaces.

    Code written against pydantic (``except ValidationError``, ``.errors()``) keeps working;
    ``.errors()`` gives the cleaned locations and messages, never the input.
    """

    def __init__(self, *args: Any) -> None:
        # Made by ValidationError.from_exception_data (in __new__); the SettingsError parts
        # are set by settings_error() below.
        pass

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"SettingsError({self.__str__()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickled (e.g. sent back by a worker process) as a plain SettingsError.
        state = {name: getattr(self, name, None) for name in ("path", "profile", "field", "variable")}
        return (_restore, (str(self), state, getattr(self, "fields", ())))

    def errors(self, **_: Any) -> list[ErrorDetails]:
        """The problems as pydantic lists them, with real field names and no input."""
        return super().errors(include_url=False, include_context=False, include_input=False)


def _restore(message: str, state: dict[str, str | None], fields: tuple[str, ...]) -> SettingsError:
    return SettingsError(message, fields=fields, **state)


class Problem(NamedTuple):
    """One thing wrong: where (field names only), pydantic's error type, and what to do."""

    loc: tuple[str, ...]
    kind: str
    message: str


def settings_error(
    title: str,
    lines: Sequence[str],
    problems: Sequence[Problem],
    *,
    path: str | None = None,
    profile: str | None = None,
    variable: str | None = None,
) -> SettingsError:
    """Make the error raised for bad settings: a `SettingsError` that is also a ``ValidationError``."""
    details: list[InitErrorDetails] = [
        {
            "type": PydanticCustomError(p.kind, p.message.replace("{", "(").replace("}", ")")),
            "loc": p.loc,
            "input": None,
        }
        for p in problems
    ]
    error = _InvalidSettings.from_exception_data(title, details, hide_input=True)
    fields = tuple(dict.fromkeys(".".join(p.loc) for p in problems if p.loc))
    error.args = ("\n".join(lines),)
    error.path = path
    error.profile = profile
    error.field = fields[0] if fields else None
    error.variable = variable
    error.fields = fields
    return error


# ---- turning pydantic's error locations into real field names ---------------------------------

# Fields whose values are mappings or lists: what follows the field in a location is a key
# or an index the user wrote (a header name may be a whole "Name: value" line), not a field.
CONTAINER_FIELDS = frozenset({"default_headers", "default_query", "public_headers", "public_query"})
TIMEOUT_PARTS = ("connect", "read", "write", "pool")
# Fields typed as a union: pydantic reports one error per member, each located under the
# member's tag (`timeout.float`, `timeout.TimeoutParts`). One message says what is accepted.
UNION_MESSAGES = {
    "timeout": "must be a positive number of seconds, none (or inf) for no timeout, or a table of connect, read, write "
    "and pool seconds",
    "verify": "must be true, false or the path of a CA bundle",
}


def model_problems(errors: Iterable[ErrorDetails]) -> list[Problem]:
    """Turn pydantic's errors for one model into problems located by real field names."""
    by_loc: dict[tuple[str, ...], list[tuple[str, str, bool]]] = {}
    for error in errors:
        loc, detail = _clean_loc(error["loc"])
        message = _sentence(error["msg"]) + detail
        # An error located under a union member's tag only says that member did not fit.
        tagged = len(error["loc"]) > len(loc) and loc[0] in UNION_MESSAGES and len(loc) == 1
        by_loc.setdefault(loc, []).append((error["type"], message, tagged))
    problems: list[Problem] = []
    for loc, found in by_loc.items():
        if loc == ("timeout",) and any(key[:1] == ("timeout",) and len(key) > 1 for key in by_loc):
            continue  # a table of timeout parts was given: its parts' errors say what is wrong
        if len(found) > 1 and all(tagged for *_, tagged in found):
            problems.append(Problem(loc, "union", UNION_MESSAGES[loc[0]]))
            continue
        for kind, message, _tagged in found:
            problems.append(Problem(loc, kind, message))
    return problems


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[tuple[str, ...], str]:
    if not loc:
        return (), ""
    field = str(loc[0])
    rest = loc[1:]
    if field in CONTAINER_FIELDS and rest:
        key = rest[0]
        if isinstance(key, int):
            return (field,), f" (item {key + 1})"
        if len(rest) > 1 and rest[1] == "[key]":
            return (field,), " (a name)"
        return (field,), f" (the value of {shown_name(key)})"
    if field == "timeout":
        return (field, *(str(p) for p in rest if p in TIMEOUT_PARTS)), ""
    return (field,), ""


def _sentence(message: str) -> str:
    # pydantic's own messages start "Input should ..."; ours read "field 'x': input should ...".
    return message[:1].lower() + message[1:] if message.startswith("Input ") else message


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown(text: object) -> str:
    """Quote something a user wrote for a message: escaped, or hidden when it looks like a credential."""
    value = str(text)
    if looks_like_credential(value):
        return "(hidden: it looks like a credential)"
    return repr(value)


HTTP_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP token (RFC 9110 ``tchar``s): what a header name is made of."""


def shown_name(name: object) -> str:
    """Quote a header or query name for a message, when it is a plain token that cannot hide a secret."""
    text = str(name)
    if HTTP_TOKEN.fullmatch(text) and len(text) <= 64 and not looks_like_credential(text):
        return repr(text)
    return "a name not shown"


def has_control_characters(text: str) -> bool:
    """Return True when ``text`` holds a C0 or C1 control character, a line separator or a lone surrogate."""
    if text.isprintable():
        return False
    return _UNSAFE.search(text) is not None or any("\ud800" <= c <= "\udfff" for c in text)
