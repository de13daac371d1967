"""Loading a settings file and the environment into a `RegistrySettings`.

pydantic-settings does what it is good at here: merging sources by priority
(init > ``CLIENTREG_*`` environment > TOML file > defaults) with nested ``__`` variables.
"""

from __future__ import annotations

import contextvars
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as _PydanticSettingsError

from schemas._errors import SettingsError
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

# Variables of clientreg's own that share the CLIENTREG_ prefix but are not settings fields.
_NOT_FIELDS = frozenset({"clientreg_settings", "clientreg_index"})

_file_data: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("clientreg_file", default=None)


class IndexSettings(BaseModel):
    """The ``[index]`` table: where the key index lives and whether it is kept at all."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    path: str | None = None
    enabled: bool = True
    retention: str = "90d"
    """How long the index keeps events: a duration (``90d``, ``12h``, ``30m``) or ``"forever"``.

    Older events are removed by the recorder; configs, their profiles and use counts stay.
    """

    @field_validator("retention")
    @classmethod
    def _retention_is_a_duration(cls, value: str) -> str:
        text = value.strip().lower()
        match = _RETENTION.fullmatch(text)
        if match is None:
            raise ValueError("must be a duration such as 90d, 12h, 30m or 45s, or 'forever'")
        if match.group(1) is not None and float(match.group(1)) * _UNIT_SECONDS[match.group(2)] > 100 * 365 * 86400:
            raise ValueError("must be at most 100 years (36500d); use 'forever' to keep every event")
        return text


_RETENTION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd])|forever")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class _FileSource(PydanticBaseSettingsSource):
    """The already-parsed TOML file (parsed by us, so syntax errors can name the file)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_file_data.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_data.get() or {})


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

    @property
    def path(self) -> Path | None:
        """The file these settings were read from, or None."""
        return self._path

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


def load_settings(path: str | os.PathLike[str] | None = None) -> RegistrySettings:
    """Read the settings file and ``CLIENTREG_*`` variables into a `RegistrySettings`.

    The file is ``path``, else ``$CLIENTREG_SETTINGS``, else ``./clientreg.toml``, else
    ``clientreg.toml`` in the user config dir; with none of them, the settings are empty.
    A file named explicitly that does not exist is an error. Raises `SettingsError`.
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
    where = str(file) if file is not None else "settings"
    token = _file_data.set(data)
    try:
        settings = RegistrySettings()
    except ValidationError as exc:
        raise _explain(exc, where) from None
    except _PydanticSettingsError as exc:
        # A CLIENTREG_* variable that is not valid JSON for a nested field.
        raise SettingsError(f"{where}: environment: {_first_line(exc)}", path=where) from None
    finally:
        _file_data.reset(token)
    settings._path = file
    return settings


def _explain(exc: ValidationError, where: str) -> SettingsError:
    """Turn a pydantic error into one that names the file, profile and field, without input."""
    lines: list[str] = []
    first: tuple[str | None, str | None] = (None, None)
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        message = error["msg"]
        profile: str | None = None
        field: str | None
        if loc[:1] == ["profiles"] and len(loc) >= 2:
            profile = loc[1]
            rest = loc[2:]
            if rest and rest[0] in ("openai", "azure_openai", "groq", "cerebras"):
                rest = rest[1:]  # the union's tag, already said by the profile's provider
            if error["type"] == "union_tag_invalid":
                field = "provider"
                message = "provider must be one of 'openai', 'azure_openai', 'groq', 'cerebras'"
            elif error["type"] == "union_tag_not_found":
                field = "provider"
                message = "a profile needs provider = 'openai' | 'azure_openai' | 'groq' | 'cerebras'"
            else:
                field = ".".join(rest) or None
            place = f"profile {profile!r}" + (f", field {field!r}" if field else "")
        elif loc[:1] == ["index"]:
            field = ".".join(loc[1:]) or None
            place = "[index]" + (f", field {field!r}" if field else "")
        else:
            field = ".".join(loc) or None
            place = f"field {field!r}"
            if error["type"] == "extra_forbidden" and field:
                match = difflib.get_close_matches(field, ["profiles", "index"], n=1)
                message = "unknown table" + (f"; did you mean {match[0]!r}?" if match else "")
        if first == (None, None):
            first = (profile, field)
        lines.append(f"{where}: {place}: {message}")
    return SettingsError("\n".join(lines), path=where, profile=first[0], field=first[1])


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
