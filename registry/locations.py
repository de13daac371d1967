"""Where the key index lives: one resolution, shared by the registry and the CLI.

Order: an explicit path, else ``$CLIENTREG_INDEX``, else the settings' ``[index]`` table,
else ``index.sqlite`` in the user data directory. ``off`` (an explicit path or the
variable) or ``[index] enabled = false`` turns the index off: the result is None.

>>> resolve_index_path(None, settings.index)            # Path(...) or None when off
>>> resolve_index_path(None, lambda: settings_index_table())  # the file read only if needed
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

INDEX_ENV = "CLIENTREG_INDEX"
"""The variable naming the index file, or ``off``."""

_OFF = ("off", "0", "false", "no")
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


class IndexTable(Protocol):
    """What the resolution reads from a settings file's ``[index]`` table."""

    @property
    def path(self) -> str | None:
        """The index file named in the settings, or None."""

    @property
    def enabled(self) -> bool:
        """False turns the index off."""


@dataclass(frozen=True)
class PlainIndexTable:
    """An ``[index]`` table read without the settings machinery (see `index_table_from_file`)."""

    path: str | None = None
    enabled: bool = True


def resolve_index_path(
    index_path: str | os.PathLike[str] | None = None,
    settings_index: IndexTable | Callable[[], IndexTable | None] | None = None,
) -> Path | None:
    """Return the index file to use, or None when the index is off.

    ``settings_index`` is the settings' ``[index]`` table, or a function returning it that is
    called only when neither ``index_path`` nor ``$CLIENTREG_INDEX`` decides (so settings are
    loaded only when they matter); a function that raises counts as no table.
    """
    if index_path is not None:
        return None if str(index_path).lower() == "off" else Path(index_path)
    named = os.environ.get(INDEX_ENV)
    if named:
        return None if named.lower() in _OFF else Path(named)
    table: IndexTable | None
    if callable(settings_index):
        try:
            table = settings_index()
        except Exception:  # a bad settings file is reported where profiles are used
            table = None
    else:
        table = settings_index
    if table is not None and not table.enabled:
        return None
    if table is not None and table.path:
        return Path(table.path).expanduser()
    from schemas._paths import user_data_dir

    return user_data_dir() / "index.sqlite"


def index_table_from_file(path: str | os.PathLike[str] | None = None) -> PlainIndexTable | None:
    """Read only the ``[index]`` table of the settings file, without pydantic-settings.

    The file is found as `schemas.load_settings` finds it (``path``, ``$CLIENTREG_SETTINGS``,
    ``./clientreg.toml``, the user config dir); ``CLIENTREG_INDEX__PATH`` and
    ``CLIENTREG_INDEX__ENABLED`` override it, as they do in `load_settings`. Returns None when
    there is no file or it cannot be read (as the registry, which reports a bad file where
    profiles are used). For commands that read the index and need nothing else of the settings.
    """
    from schemas._paths import find_settings_file

    file, _ = find_settings_file(path)
    table: dict[str, object] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = {}
        found = data.get("index")
        if isinstance(found, dict):
            table = found
    env_path = os.environ.get(INDEX_ENV + "__PATH")
    if env_path is not None:
        table["path"] = env_path
    env_enabled = os.environ.get(INDEX_ENV + "__ENABLED")
    if env_enabled is not None and env_enabled.strip().lower() in _TRUE + _FALSE:
        table["enabled"] = env_enabled.strip().lower() in _TRUE
    if not table:
        return None
    path_value, enabled = table.get("path"), table.get("enabled", True)
    return PlainIndexTable(
        path=path_value if isinstance(path_value, str) else None,
        enabled=enabled if isinstance(enabled, bool) else True,
    )
