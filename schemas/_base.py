"""The shared base of every provider's settings model.

A provider model is a plain, frozen pydantic model: constructing one is on users' hot path
(`get_client(OpenAISettings(...))` in a loop), so it costs a few microseconds. Environment
fallbacks are a handful of ``os.environ`` reads in one validator, not a pydantic-settings
source per object; pydantic-settings does the file and environment loading in `load_settings`.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import operator
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError, core_schema

from schemas._canonical import (
    _ENV_DATA,
    _ENV_DECODE,
    FORM_VERSION,
    FrozenMap,
    dumps,
    encoded_variable,
    fingerprint,
    getenv,
    public_value,
    split_proxy,
)
from schemas._checks import (
    check_url_query,
    control_character_problems,
    header_names,
    http_url,
    no_host,
    provider_name,
    public_names,
    query_names,
    variable_name,
    verify_value,
)
from schemas._errors import SettingsError, model_problems, settings_error
from schemas._fingerprint import on_key_reset

# Fields that describe the HTTP transport. Clients whose transport fields are equal share one
# connection pool; the canonical form groups them under "transport".
TRANSPORT_FIELDS = ("proxy", "verify", "max_connections", "max_keepalive_connections", "keepalive_expiry")
# Fields holding a credential: SecretStr in the model, a fingerprint in the canonical form.
SECRET_FIELDS = ("api_key", "admin_api_key", "webhook_secret", "azure_ad_token")


class _Frozen:
    """Pydantic glue: validate a ``dict[str, str]`` and freeze it into a FrozenMap."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            FrozenMap,
            core_schema.dict_schema(core_schema.str_schema(), core_schema.str_schema()),
            serialization=core_schema.plain_serializer_function_ser_schema(_serialize_map, info_arg=True),
        )


def _serialize_map(value: FrozenMap, info: core_schema.SerializationInfo) -> dict[str, str]:
    # JSON output is for logs and files, so values that are not public are fingerprinted
    # there, as SecretStr masks itself; model_dump() in Python mode gives the real values.
    return value.redacted() if info.mode_is_json() else value.to_dict()


StrMap = Annotated[Mapping[str, str], _Frozen()]
"""A ``str -> str`` mapping, stored as an immutable FrozenMap."""

_EMPTY = FrozenMap()
_URL_FIELDS = frozenset({"base_url", "azure_endpoint", "websocket_base_url"})
_NUMBERS = frozenset({"timeout", "max_retries", "max_connections", "max_keepalive_connections", "keepalive_expiry"})
# config_hash memo: (model class, field values) -> hash. It holds the field values, secrets
# included, in memory only, as the settings objects themselves do. Keying by == is sound
# because validation leaves every value of an exact builtin type (str, int, float, bool,
# tuple, FrozenMap, SecretStr, TimeoutParts) and stores -0.0, the one value == confuses with
# another that serialises differently, as 0.0.
_HASH_MEMO: dict[tuple[type, tuple[Any, ...]], str] = {}
_HASH_MEMO_SIZE = 4096
on_key_reset(_HASH_MEMO.clear)  # hashes hold fingerprints, which change with the key
_PLAIN, _SECRET, _TRANSPORT, _PROXY, _HEADERS, _QUERY, _TIMEOUT, _LIST, _WHEN_SET = (
    "plain",
    "secret",
    "transport",
    "proxy",
    "headers",
    "query",
    "timeout",
    "list",
    "when set",
)


class SettingsModel(BaseModel):
    """A frozen pydantic model whose bad arguments raise `SettingsError` naming real fields.

    The error is also a pydantic ``ValidationError``, so code that catches that keeps working.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            self.__pydantic_validator__.validate_python(data, self_instance=self)
        except ValidationError as exc:
            error = _as_settings_error(type(self), exc)
        else:
            return
        raise error  # outside the except block: pydantic's error, which may quote input, is not chained

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        """Validate ``obj`` (a mapping of field values) into a model; bad values raise `SettingsError`."""
        try:
            return super().model_validate(obj, **options)
        except ValidationError as exc:
            error = _as_settings_error(cls, exc)
        raise error

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        """Validate a JSON document into a model; bad values raise `SettingsError`."""
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as exc:
            error = _as_settings_error(cls, exc)
        raise error

    @classmethod
    def model_validate_strings(cls, obj: Any, **options: Any) -> Self:
        """Validate a mapping of strings (as from an environment) into a model; bad values raise `SettingsError`."""
        try:
            return super().model_validate_strings(obj, **options)
        except ValidationError as exc:
            error = _as_settings_error(cls, exc)
        raise error


def _as_settings_error(cls: type[BaseModel], exc: ValidationError) -> SettingsError:
    problems = model_problems(exc.errors(include_url=False, include_input=False))
    lines = [
        f"{cls.__name__}: field {'.'.join(p.loc)!r}: {p.message}" if p.loc else f"{cls.__name__}: {p.message}"
        for p in problems
    ]
    return settings_error(cls.__name__, lines, problems)


# What a settings file (or a CLIENTREG_* variable) writes for "no limit": TOML has no null.
_NO_LIMIT_WORDS = frozenset({"none", "inf", "infinity"})


def _no_limit_word(value: Any) -> Any:
    """``"none"`` / ``"inf"`` (any case) as None, the SDKs' "no limit"; anything else as given."""
    if value.__class__ is str and value.strip().lower() in _NO_LIMIT_WORDS:
        return None
    return value


def _seconds_or_none(value: float | None, what: str) -> float | None:
    """A positive number of seconds, or None for no limit (an infinite number is no limit too)."""
    if value is None or value == math.inf:
        return None
    if not value > 0 or value != value:  # negative, zero, -inf or NaN
        raise PydanticCustomError("timeout", f"{what} must be a positive number of seconds, or none for no limit")
    return value


class TimeoutParts(SettingsModel):
    """A timeout split into its phases, in seconds; None (``inf`` or ``"none"`` in a file) is no limit.

    >>> OpenAISettings(timeout=TimeoutParts(connect=5, read=120))
    >>> OpenAISettings(timeout=TimeoutParts(connect=5, read=None))   # wait for a response forever
    """

    connect: float | None = 5.0
    read: float | None = 600.0
    write: float | None = 600.0
    pool: float | None = 600.0

    @field_validator("connect", "read", "write", "pool", mode="before")
    @classmethod
    def _phase_words(cls, value: Any) -> Any:
        return _no_limit_word(value)

    @field_validator("connect", "read", "write", "pool")
    @classmethod
    def _check_phase(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _seconds_or_none(value, str(info.field_name))


OPENAI_DEFAULT_TIMEOUT = TimeoutParts(connect=5.0, read=600.0, write=600.0, pool=600.0)
"""``openai.DEFAULT_TIMEOUT`` (openai 3.57), the timeout of OpenAI and Azure settings left unset."""


class ProviderSettings(SettingsModel):
    """Fields and behaviour shared by every provider's settings model.

    Subclasses set ``provider``, the defaults that differ, and ``env_fallbacks``: the SDK's own
    environment variables that fill fields left unset (``None`` counts as unset, as in the SDKs).
    Bad arguments raise `SettingsError`.
    """

    env_fallbacks: ClassVar[Mapping[str, str]] = {}
    """Field name -> environment variable read when the field is not given (in this order)."""
    env_fallback_unless: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """Field name -> other fields; when one of them is given, the field's variable is not read."""
    exclusive_fields: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("api_key", "api_key_provider"),
        ("api_key_env", "api_key_provider"),
    )
    """Groups of fields of which at most one may be given."""
    replaced_by: ClassVar[Mapping[str, str]] = {}
    """Field name -> another field that, when given, decides it: the field is then None."""
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key", "api_key_provider")
    """The fields that each give a client its credential (a key, or a provider asked per request)."""
    canonical_when_set: ClassVar[frozenset[str]] = frozenset()
    """Fields the canonical form holds only when they are not None (fields a provider gained
    after its form was published, so that configurations without them keep their hash)."""
    _canonical_plan: ClassVar[tuple[tuple[str, str], ...]] = ()
    _field_names: ClassVar[frozenset[str]] = frozenset()
    _field_values: ClassVar[Callable[[dict[str, Any]], tuple[Any, ...]]]
    _env_blockers: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    _env_plan: ClassVar[tuple[tuple[str, str, Any, tuple[str, ...]], ...]] = ()
    _exclusive_names: ClassVar[frozenset[str]] = frozenset()

    provider: str
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the key; not part of the hash."
    )
    api_key_provider: str | None = Field(
        None,
        description="A key provider registered in code, or 'package.module:attribute'; the key is asked for "
        "per request. Excludes api_key.",
    )
    base_url: str | None = None
    timeout: float | TimeoutParts | None = Field(
        OPENAI_DEFAULT_TIMEOUT,
        description="Seconds, a TimeoutParts, or None for no timeout; unset: the SDK's own default.",
    )
    max_retries: int = Field(2, ge=0, le=100)
    default_headers: StrMap = Field(default=_EMPTY)
    default_query: StrMap = Field(default=_EMPTY)
    public_headers: tuple[str, ...] = Field(
        (), description="Header names whose values are written in clear in the canonical form (and the index)."
    )
    public_query: tuple[str, ...] = Field(
        (), description="Query parameter names whose values are written in clear in the canonical form."
    )
    strict_response_validation: bool = Field(
        False, description="The SDK's _strict_response_validation: validate responses against its types."
    )
    proxy: SecretStr | None = None
    verify: bool | str = True
    max_connections: int = Field(1000, gt=0)
    max_keepalive_connections: int = Field(100, ge=0)
    keepalive_expiry: float = Field(5.0, ge=0, allow_inf_nan=False)

    # ---- validation -------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _fill_from_environment(cls, data: Any) -> Any:
        if data.__class__ is not dict and not isinstance(data, dict):
            return data
        # One pass over what was given: unknown names, true/false for numbers, and whether
        # any value needs the full control-character check (a plain printable str does not).
        names, exclusive = cls._field_names, cls._exclusive_names
        check_text = check_urls = False
        exclusive_given = 0
        for name, value in data.items():
            if name not in names:
                raise _unknown_fields_error(cls, sorted(data.keys() - names))
            kind = value.__class__
            if kind is str:
                if not value.isprintable():
                    check_text = True
                if "?" in value and name in _URL_FIELDS:
                    check_urls = True
            elif kind is bool:
                if name in _NUMBERS:  # pydantic's lax mode would read True as 1
                    raise _field_error(cls, name, "bool_number", "must be a number, not true/false")
            elif kind is dict:
                for key, item in value.items():
                    if key.__class__ is not str or item.__class__ is not str or not (key + item).isprintable():
                        check_text = True
                        break
            elif value is not None and kind is not int and kind is not float:
                check_text = True  # a list, a SecretStr, bytes, another mapping: look inside
            if name in exclusive and value is not None:
                exclusive_given += 1
        if exclusive_given > 1:
            _check_exclusive(cls, data)
        filled: dict[str, Any] | None = None
        if data.get("timeout").__class__ is str:  # "none" / "inf" from a file or a variable: no timeout
            filled = dict(data)
            filled["timeout"] = _no_limit_word(data["timeout"])
        key_env = data.get("api_key_env")
        for field, variable, encoded, blockers in cls._env_plan:
            current = data if filled is None else filled
            if current.get(field) is not None:
                continue
            blocked = False
            for blocker in blockers:  # a plain loop: a generator costs more than these few lookups
                if current.get(blocker) is not None:
                    blocked = True
                    break
            if blocked:
                continue
            if field == "api_key" and key_env is not None:
                value = getenv(key_env)  # the profile named its own variable: never fall back to another account's
            elif encoded is not None:
                raw = _ENV_DATA.get(encoded)  # type: ignore[union-attr]
                value = None if raw is None else str(_ENV_DECODE(raw))  # type: ignore[misc]
            else:
                value = getenv(variable)
            if value is not None or field in data:
                if filled is None:
                    filled = dict(data)
                if value is None:
                    del filled[field]  # an explicit None, as in the SDKs, means "the default"
                else:
                    filled[field] = value
                    if not value.isprintable():
                        check_text = True
                    if "?" in value and field in _URL_FIELDS:
                        check_urls = True
        if cls.replaced_by:
            for field, decider in cls.replaced_by.items():
                if data.get(decider) is not None:
                    if filled is None:
                        filled = dict(data)
                    filled[field] = None
        result = data if filled is None else filled
        if check_text:
            problems = control_character_problems(result)
            if problems:
                raise _fields_error(cls, problems)
        if check_urls:
            _check_url_queries(cls, result)
        return result

    @field_validator("api_key_env")
    @classmethod
    def _check_key_env(cls, value: str | None) -> str | None:
        return None if value is None else variable_name(value)

    @field_validator("api_key_provider")
    @classmethod
    def _check_key_provider(cls, value: str | None) -> str | None:
        return None if value is None else provider_name(value, "api_key_provider")

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("verify")
    @classmethod
    def _check_verify(cls, value: bool | str) -> bool | str:
        return verify_value(value)

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: float | TimeoutParts | None) -> float | TimeoutParts | None:
        if isinstance(value, float) and not (0 < value < math.inf):  # "none"/"inf" text: _fill_from_environment
            return _seconds_or_none(value, "timeout")
        return value

    @field_validator("default_headers")
    @classmethod
    def _check_headers(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        if value:
            header_names(value)
            if isinstance(value, FrozenMap):
                value._fold = True  # header names compare in any case
        return value

    @field_validator("default_query")
    @classmethod
    def _check_query(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        if value:
            query_names(value)
        return value

    @field_validator("public_headers")
    @classmethod
    def _check_public_headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return public_names(value, headers=True) if value else value

    @field_validator("public_query")
    @classmethod
    def _check_public_query(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return public_names(value, headers=False) if value else value

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            url = value.get_secret_value()
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme not in ("http", "https", "socks5", "socks5h"):
                raise PydanticCustomError("proxy", "proxy must be an http, https or socks5 URL")
            # Split now, so a malformed proxy fails here with a message free of its text, not
            # later inside config_hash with urllib's message quoting it (a password, maybe).
            try:
                without_credentials = split_proxy(url)[0]
            except ValueError as exc:
                raise PydanticCustomError("proxy", "proxy: {reason}", {"reason": str(exc)}) from None
            if no_host(without_credentials):
                raise PydanticCustomError("proxy", "proxy URL has no host")
        return value

    @model_validator(mode="after")
    def _check_limits(self) -> ProviderSettings:
        values = self.__dict__
        if values["max_keepalive_connections"] > values["max_connections"]:
            raise PydanticCustomError("limits", "max_keepalive_connections must not exceed max_connections")
        if values["keepalive_expiry"] == 0.0:
            # -0.0 == 0.0 (so the hash memo would take one for the other) but it serialises as
            # "-0.0": store the one zero.
            values["keepalive_expiry"] = 0.0
        if values["public_headers"] or values["public_query"]:
            if values["default_headers"]:
                values["default_headers"]._public = frozenset(values["public_headers"])
            if values["default_query"]:
                values["default_query"]._public = frozenset(values["public_query"])
        return self

    # ---- canonical form ---------------------------------------------------------------

    def canonical_dict(self) -> dict[str, Any]:
        """Return the canonical form as a dict: every field explicit, secrets fingerprinted.

        ``api_key_env`` is left out: where a key comes from is not what it is.
        """
        values = self.__dict__
        out: dict[str, Any] = {"form": FORM_VERSION}
        transport: dict[str, Any] = {}
        for name, kind in type(self)._canonical_plan:
            value = values[name]
            if kind is _PLAIN:
                out[name] = value
            elif kind is _SECRET:
                out[name] = None if value is None else fingerprint(value.get_secret_value())
            elif kind is _TRANSPORT:
                transport[name] = value
            elif kind is _PROXY:
                url, credentials = (None, None) if value is None else split_proxy(value.get_secret_value())
                transport["proxy"] = url
                transport["proxy_credentials"] = None if credentials is None else fingerprint(credentials)
            elif kind is _HEADERS:
                public = frozenset(values["public_headers"])
                out[name] = (
                    {k.lower(): public_value(k, v, public, fold=True) for k, v in value.items()} if value else {}
                )
            elif kind is _QUERY:
                public = frozenset(values["public_query"])
                out[name] = {k: public_value(k, v, public) for k, v in value.items()} if value else {}
            elif kind is _LIST:
                out[name] = list(value)
            elif kind is _WHEN_SET:
                if value is not None:
                    out[name] = value
            elif isinstance(value, TimeoutParts):  # _TIMEOUT
                parts = {"connect": value.connect, "read": value.read, "write": value.write, "pool": value.pool}
                # Four equal phases behave exactly like one number: give them one form.
                out[name] = value.connect if len(set(parts.values())) == 1 else parts
            else:
                out[name] = value
        out["transport"] = transport
        return out

    def canonical_json(self) -> str:
        """Return the canonical JSON: sorted keys, no whitespace, no secret (see docs/config-hash.md)."""
        return dumps(self.canonical_dict())

    @cached_property
    def config_hash(self) -> str:
        """``sha256(canonical_json())`` as 64 lowercase hex digits, computed once per object."""
        # Equal field values give an equal canonical form, so a fresh object equal to one seen
        # before (`get_client(OpenAISettings(...))` in a loop) takes its hash from a small memo
        # instead of building, serialising and hashing the canonical form again (~4x the cost).
        values = type(self)._field_values(self.__dict__)
        memo_key = (type(self), values)
        found = _HASH_MEMO.get(memo_key)
        if found is None:
            found = hashlib.sha256(self.canonical_json().encode()).hexdigest()
            if len(_HASH_MEMO) >= _HASH_MEMO_SIZE:
                _HASH_MEMO.clear()  # a crude bound; a working set under the size stays warm
            _HASH_MEMO[memo_key] = found
        return found

    @cached_property
    def transport_key(self) -> str:
        """Canonical JSON of the transport fields: equal keys may share one connection pool."""
        return dumps(self.canonical_dict()["transport"])

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Return a copy; values in ``update`` are validated and the hash is taken afresh.

        pydantic's own model_copy copies ``__dict__``, where the cached ``config_hash`` lives,
        and does not validate ``update``: the copy would carry the old hash, and a plain dict
        of headers, under a new configuration.
        """
        if not update:
            return super().model_copy(deep=deep)
        cls = type(self)
        data: dict[str, Any] = {name: getattr(self, name) for name in cls.model_fields}
        for field, decider in cls.replaced_by.items():
            if update.get(decider) is not None and field not in update:
                del data[field]  # e.g. a data_residency given now decides the base_url kept so far
        data.update(update)
        return self.model_validate(data)

    def credential_field(self) -> str | None:
        """The field that gives the client its credential (``api_key``, ``api_key_provider``, ...), or None.

        A provider's name counts: the key it returns is asked for per request, so whether it
        resolves is known only when a client is built (or a request is made).
        """
        values = self.__dict__
        for name in type(self).credential_fields:
            if values.get(name) is not None:
                return name
        return None

    def secret_values(self) -> list[str]:
        """Every secret this model holds (for leak checks and redaction of SDK messages).

        That is every value the canonical form fingerprints: keys, tokens, the proxy URL and
        its credentials, and each header and query value that is not public.
        """
        values = self.__dict__
        found = [values[name].get_secret_value() for name in SECRET_FIELDS if values.get(name) is not None]
        if self.proxy is not None:
            proxy = self.proxy.get_secret_value()
            found.append(proxy)
            credentials = split_proxy(proxy)[1]
            if credentials:
                found.extend(p for p in credentials.split(":") if p)
        headers, query = self.default_headers, self.default_query
        public = frozenset(self.public_headers)
        found.extend(v for k, v in headers.items() if v and public_value(k, v, public, fold=True) != v)
        public = frozenset(self.public_query)
        found.extend(v for k, v in query.items() if v and public_value(k, v, public) != v)
        return found

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # How each field enters the canonical form, worked out once per class, not per object.
        plan: list[tuple[str, str]] = []
        for name in cls.model_fields:
            if name == "api_key_env":
                continue
            if name == "proxy":
                plan.append((name, _PROXY))
            elif name in TRANSPORT_FIELDS:
                plan.append((name, _TRANSPORT))
            elif name == "default_headers":
                plan.append((name, _HEADERS))
            elif name == "default_query":
                plan.append((name, _QUERY))
            elif name == "timeout":
                plan.append((name, _TIMEOUT))
            elif name in ("public_headers", "public_query"):
                plan.append((name, _LIST))
            elif name in SECRET_FIELDS:
                plan.append((name, _SECRET))
            elif name in cls.canonical_when_set:
                plan.append((name, _WHEN_SET))
            else:
                plan.append((name, _PLAIN))
        cls._canonical_plan = tuple(plan)
        cls._field_names = frozenset(cls.model_fields)
        cls._field_values = staticmethod(operator.itemgetter(*cls.model_fields))
        blockers: dict[str, tuple[str, ...]] = {"api_key": ("api_key_provider",)}
        for field, unless in cls.env_fallback_unless.items():
            blockers[field] = (*blockers.get(field, ()), *unless)
        for field, decider in cls.replaced_by.items():
            blockers[field] = (*blockers.get(field, ()), decider)
        cls._env_blockers = {k: tuple(dict.fromkeys(v)) for k, v in blockers.items() if k in cls.model_fields}
        # The environment lookups of each construction, with the variables' names encoded once.
        cls._env_plan = tuple(
            (field, variable, encoded_variable(variable), cls._env_blockers.get(field, ()))
            for field, variable in cls.env_fallbacks.items()
        )
        cls._exclusive_names = frozenset(name for group in cls.exclusive_fields for name in group)

    def __hash__(self) -> int:
        return hash(self.config_hash)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ProviderSettings):
            return self.config_hash == other.config_hash and self.api_key_env == other.api_key_env
        return NotImplemented


def _field_error(cls: type[ProviderSettings], name: str, kind: str, message: str) -> ValidationError:
    details: list[InitErrorDetails] = [
        {"type": PydanticCustomError(kind, message), "loc": (name,), "input": "<hidden>"}
    ]
    return ValidationError.from_exception_data(cls.__name__, details, hide_input=True)


def _fields_error(cls: type[ProviderSettings], problems: list[tuple[str, str]]) -> ValidationError:
    details: list[InitErrorDetails] = [
        {"type": PydanticCustomError("control_character", message), "loc": (name,), "input": "<hidden>"}
        for name, message in problems
    ]
    return ValidationError.from_exception_data(cls.__name__, details, hide_input=True)


def _unknown_fields_error(cls: type[ProviderSettings], names: list[str]) -> ValidationError:
    known = [n for n in cls.model_fields if n != "provider"]
    details: list[InitErrorDetails] = []
    for name in names:
        match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {match[0]!r}?" if match else f"; known fields: {', '.join(known)}"
        details.append(
            {
                "type": PydanticCustomError(
                    "unknown_field", "unknown field '{name}'{hint}", {"name": name, "hint": hint}
                ),
                "loc": (name,),
                "input": "<hidden>",
            }
        )
    return ValidationError.from_exception_data(cls.__name__, details, hide_input=True)


def _check_url_queries(cls: type[ProviderSettings], data: Mapping[str, Any]) -> None:
    declared = data.get("public_query") or ()
    public = (
        frozenset(name for name in declared if isinstance(name, str))
        if isinstance(declared, list | tuple)
        else frozenset()
    )
    for name in _URL_FIELDS:
        url = data.get(name)
        if isinstance(url, str) and "?" in url:
            try:
                check_url_query(url, public)
            except PydanticCustomError as exc:
                raise _field_error(cls, name, exc.type, exc.message()) from None


def _check_exclusive(cls: type[ProviderSettings], data: Mapping[str, Any]) -> None:
    for group in cls.exclusive_fields:
        given = [name for name in group if data.get(name) is not None]
        if len(given) > 1:
            raise _field_error(
                cls, given[-1], "exclusive", f"give only one of {', '.join(given)}: they name different credentials"
            )
