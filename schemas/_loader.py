"""Loading a settings file and the environment into a `RegistrySettings`.

pydantic-settings does what it is good at here: merging sources by priority
(init > ``CLIENTREG_*`` environment > TOML file > defaults) with nested ``__`` variables.
Errors name the file, or the variable when a ``CLIENTREG_*`` override is to blame.
"""

from __future__ import annotations

import contextvars
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as _PydanticSettingsError

from schemas._base import SettingsModel
from schemas._credentials import looks_like_credential
from schemas._errors import Problem, SettingsError, model_problems, settings_error, shown
from schemas._paths import find_settings_file, read_settings_file
from schemas.azure_openai import AzureOpenAISettings
from schemas.cerebras import CerebrasSettings
from schemas.groq import GroqSettings
from schemas.openai import OpenAISettings

Profile = Annotated[
    OpenAISettings | AzureOpenAISettings | GroqSettings | CerebrasSettings,
    Field(discriminator="provider"),
]
"""One profile of a settings file: a provider model chosen by its ``provider`` field."""

PREFIX = "CLIENTREG_"
# Variables of clientreg's own that share the CLIENTREG_ prefix but are not settings fields.
_NOT_FIELDS = frozenset({"clientreg_settings", "clientreg_index", "clientreg_fingerprint_key"})
_PROVIDERS = ("openai", "azure_openai", "groq", "cerebras")
_TABLES = ("profiles", "index")
# Lower case, because CLIENTREG_* variables are matched in lower case; no "__", which
# separates the parts of a variable's name.
_PROFILE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_.\-]{0,62})")


class _Loading(NamedTuple):
    file: Path | None
    data: Mapping[str, Any]


_loading: contextvars.ContextVar[_Loading | None] = contextvars.ContextVar("clientreg_loading", default=None)


class IndexSettings(SettingsModel):
    """The ``[index]`` table: where the key index lives and whether it is kept at all."""

    path: str | None = None
    enabled: bool = True


class _FileSource(PydanticBaseSettingsSource):
    """The already-parsed TOML file (parsed by us, so syntax errors can name the file)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        loading = _loading.get()
        return (None if loading is None else loading.data.get(field_name)), field_name, False

    def __call__(self) -> dict[str, Any]:
        loading = _loading.get()
        return {} if loading is None else dict(loading.data)


class _EnvSource(EnvSettingsSource):
    """``CLIENTREG_*`` variables, less the ones that configure clientreg itself."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        loaded = super()._load_env_vars()
        return {k: v for k, v in loaded.items() if k.lower() not in _NOT_FIELDS}


class RegistrySettings(BaseSettings):
    """Everything a settings file holds: named profiles and the ``[index]`` table.

    >>> settings = load_settings("clientreg.toml")
    >>> settings.profiles["fast"].config_hash
    """

    model_config = SettingsConfigDict(
        env_prefix="CLIENTREG_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    profiles: dict[str, Profile] = Field(default_factory=dict)
    index: IndexSettings = Field(default_factory=IndexSettings)
    _path: Path | None = PrivateAttr(default=None)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            error = _explain(exc)
        except _PydanticSettingsError as exc:
            error = _bad_variable(exc)
        except RecursionError:
            error = SettingsError(f"{_place()}: a CLIENTREG_* variable holds JSON nested too deeply")
        else:
            return
        raise error  # outside the except block: pydantic's error is not chained

    @property
    def path(self) -> Path | None:
        """The file these settings were read from, or None."""
        return self._path

    @field_validator("profiles", mode="before")
    @classmethod
    def _check_profile_names(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for name in value:
                if isinstance(name, str):
                    _check_profile_name(name)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init arguments win over ``CLIENTREG_*`` variables, which win over the file."""
        return init_settings, _EnvSource(settings_cls), _FileSource(settings_cls)


def _check_profile_name(name: str) -> None:
    if looks_like_credential(name):
        raise PydanticCustomError(
            "profile_name_secret",
            "a profile name looks like a credential (not shown): profile names are written to the index and to logs",
        )
    if _PROFILE_NAME.fullmatch(name) and "__" not in name:
        return
    if _PROFILE_NAME.fullmatch(name.lower()) and "__" not in name:
        raise PydanticCustomError(
            "profile_name_case",
            "profile {name}: profile names must be lower case, because CLIENTREG_* variables are matched in "
            "lower case and could never override {name}; call it {lower}",
            {"name": shown(name), "lower": shown(name.lower())},
        )
    raise PydanticCustomError(
        "profile_name",
        "profile {name}: a profile name is 1 to 63 lower-case letters, digits, '_', '-' or '.', starting with a "
        "letter or digit, without '__' (it separates the parts of CLIENTREG_* variable names)",
        {"name": shown(name)},
    )


def load_settings(path: str | os.PathLike[str] | None = None) -> RegistrySettings:
    """Read the settings file and ``CLIENTREG_*`` variables into a `RegistrySettings`.

    The file is ``path``, else ``$CLIENTREG_SETTINGS``, else ``./clientreg.toml``, else
    ``clientreg.toml`` in the user config dir; with none of them, the settings are empty.
    A file named explicitly that does not exist is an error. Only a regular file of at most
    1 MiB is read. A relative ``verify`` path in the file is taken relative to the file's
    directory. Raises `SettingsError`.
    """
    file, explicit = find_settings_file(path)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            raw = read_settings_file(file)
        except SettingsError:
            if explicit or file.exists():
                raise
            raw = b""  # found a moment ago, gone now: as if it had never been there
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise SettingsError(f"{file}: not UTF-8 text", path=str(file)) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{file}: invalid TOML: {exc}", path=str(file)) from None
        except RecursionError:
            raise SettingsError(f"{file}: invalid TOML: nested too deeply", path=str(file)) from None
        _resolve_verify_paths(data, file)
    _check_variable_names(file)
    token = _loading.set(_Loading(file, data))
    try:
        settings = RegistrySettings()
    finally:
        _loading.reset(token)
    settings._path = file
    return settings


def _resolve_verify_paths(data: dict[str, Any], file: Path) -> None:
    """Make each profile's relative ``verify`` path relative to the settings file, not the working directory."""
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        return
    directory = os.path.dirname(os.path.abspath(file))
    for profile in profiles.values():
        verify = profile.get("verify") if isinstance(profile, dict) else None
        if isinstance(verify, str) and verify.strip() and verify.strip().lower() not in ("true", "false"):
            expanded = os.path.expanduser(verify)
            if not os.path.isabs(expanded):
                profile["verify"] = os.path.join(directory, expanded)


# ---- CLIENTREG_* variables ------------------------------------------------------------------------


class _Variable(NamedTuple):
    name: str  # as set
    path: tuple[str, ...]  # lower-cased parts after the prefix, as pydantic-settings reads them


def _settings_variables() -> list[_Variable]:
    found = []
    for name in os.environ:
        if name.upper().startswith(PREFIX) and name.lower() not in _NOT_FIELDS:
            found.append(_Variable(name, tuple(name[len(PREFIX) :].lower().split("__"))))
    return sorted(found)


def _check_variable_names(file: Path | None) -> None:
    # pydantic-settings ignores a CLIENTREG_* variable that matches no table: a typo in the
    # table's name would be an override silently not applied. Only nested names ("__") that
    # are near a table's name are taken for typos: other CLIENTREG_* variables are clientreg's own.
    for variable in _settings_variables():
        if len(variable.path) > 1 and variable.path[0] not in _TABLES:
            match = difflib.get_close_matches(variable.path[0], _TABLES, n=1, cutoff=0.75)
            if match:
                meant = PREFIX + "__".join((match[0], *variable.path[1:])).upper()
                raise SettingsError(
                    f"{shown(variable.name)}: no such settings table {shown(variable.path[0])}; did you mean {meant}?",
                    path=None if file is None else str(file),
                    variable=variable.name,
                )


def _bad_variable(exc: _PydanticSettingsError) -> SettingsError:
    # A CLIENTREG_* variable that is not valid JSON for a nested field; pydantic-settings says
    # which field, and the variables setting that field are the ones to look at.
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    field = re.search(r'field "([a-z_]+)"', message)
    table = field.group(1) if field else None
    names = [v.name for v in _settings_variables() if table is None or v.path[0] == table]
    where = ", ".join(shown(n).strip("'") for n in names) or "environment"
    return SettingsError(
        f"{where}: environment variable holds no valid JSON for the {table or 'settings'} table",
        path=_file(),
        variable=names[0] if names else None,
    )


def _file() -> str | None:
    loading = _loading.get()
    return None if loading is None or loading.file is None else str(loading.file)


def _place() -> str:
    return _file() or "settings"


# ---- errors --------------------------------------------------------------------------------------


def _explain(exc: ValidationError) -> SettingsError:
    """Turn a pydantic error into one that names the file or variable, profile and field, without input."""
    loading = _loading.get()
    file = _file()
    variables = _settings_variables()
    file_profiles = loading.data.get("profiles") if loading is not None else None
    in_file = set(file_profiles) if isinstance(file_profiles, dict) else set()
    # Errors grouped by where they are: a profile, the [index] table, or the top level.
    scopes: dict[tuple[str, ...], list[Any]] = {}
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        if loc[:1] == ("profiles",) and len(loc) >= 2:
            scope, rest = loc[:2], loc[2:]
            if rest and rest[0] in _PROVIDERS:
                rest = rest[1:]  # the union's tag, already said by the profile's provider
        elif loc[:1] == ("index",):
            scope, rest = loc[:1], loc[1:]
        else:
            scope, rest = (), loc
        scopes.setdefault(scope, []).append({**error, "loc": rest})
    lines: list[str] = []
    problems: list[Problem] = []
    blamed: list[str] = []
    first_profile: str | None = None
    for scope, errors in scopes.items():
        profile = scope[1] if len(scope) == 2 else None
        for problem in _scope_problems(scope, errors):
            field = ".".join(problem.loc) or None
            culprits = _culprits(variables, scope, field, profile is not None and profile not in in_file)
            message = problem.message
            if profile is not None and culprits and profile not in in_file and field == "provider":
                message = (
                    f"profile {shown(profile)} is not in {file or 'a settings file (none was found)'}, and no "
                    f"{PREFIX}PROFILES__{profile.upper()}__PROVIDER variable defines it: an override needs a "
                    "profile to override"
                )
            place = _describe(scope, field)
            where = ", ".join(culprits) if culprits else (file or "settings")
            lines.append(f"{where}: {place}: {message}" if place else f"{where}: {message}")
            problems.append(Problem((*scope[:1], *([profile] if profile else []), *problem.loc), problem.kind, message))
            blamed.extend(culprits)
            if first_profile is None:
                first_profile = profile
    result = settings_error(
        "RegistrySettings", lines, problems, path=file, profile=first_profile, variable=blamed[0] if blamed else None
    )
    first = problems[0].loc if problems else ()
    result.field = (
        ".".join(first[2:] if first[:1] == ("profiles",) else first[1:] if first[:1] == ("index",) else first) or None
    )
    return result


def _scope_problems(scope: tuple[str, ...], errors: list[Any]) -> list[Problem]:
    special: list[Problem] = []
    regular = []
    for error in errors:
        if error["type"] == "union_tag_invalid":
            special.append(
                Problem(("provider",), "provider", "provider must be one of " + ", ".join(map(repr, _PROVIDERS)))
            )
        elif error["type"] == "union_tag_not_found":
            special.append(
                Problem(("provider",), "provider", "a profile needs provider = " + " | ".join(map(repr, _PROVIDERS)))
            )
        elif not scope and error["type"] == "extra_forbidden" and error["loc"]:
            match = difflib.get_close_matches(error["loc"][0], _TABLES, n=1)
            hint = f"; did you mean {match[0]!r}?" if match else f"; the tables are {', '.join(_TABLES)}"
            special.append(Problem((), "unknown_table", f"unknown table {shown(error['loc'][0])}{hint}"))
        else:
            regular.append(error)
    return special + model_problems(regular)


def _describe(scope: tuple[str, ...], field: str | None) -> str:
    if scope[:1] == ("profiles",):
        return f"profile {shown(scope[1])}" + (f", field {shown(field)}" if field else "")
    if scope[:1] == ("index",):
        return "[index]" + (f", field {shown(field)}" if field else "")
    return f"field {shown(field)}" if field and field != "profiles" else ""


def _culprits(variables: list[_Variable], scope: tuple[str, ...], field: str | None, only_from_env: bool) -> list[str]:
    """The CLIENTREG_* variables that set what an error is about, when they (not the file) are to blame."""
    if not scope:
        return []
    scope = tuple(part.lower() for part in scope)
    target = (*scope, *(field.lower().split(".") if field else ()))
    found = []
    for variable in variables:
        if variable.path[: len(scope)] != scope:
            if len(variable.path) < len(scope) and scope[: len(variable.path)] == variable.path and only_from_env:
                found.append(variable.name)  # JSON for the whole table, which alone holds this profile
            continue
        if only_from_env:
            found.append(variable.name)  # the profile exists only because of these variables
            continue
        n = min(len(variable.path), len(target))
        if len(variable.path) > len(scope) and variable.path[:n] == target[:n]:
            found.append(variable.name)  # it sets this field, or a part of it
    return [shown(name).strip("'") for name in found]
