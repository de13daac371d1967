"""Where clientreg looks for its settings file and keeps its index, per platform."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SETTINGS_FILENAME = "clientreg.toml"


def user_config_dir() -> Path:
    """The per-user configuration folder: ``$XDG_CONFIG_HOME/clientreg`` on Linux."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "clientreg"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "clientreg"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "clientreg"


def user_data_dir() -> Path:
    """The per-user data folder, home of the default index: ``$XDG_DATA_HOME/clientreg`` on Linux."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "clientreg"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "clientreg"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "clientreg"


def find_settings_file(path: str | os.PathLike[str] | None) -> tuple[Path | None, bool]:
    """Return the settings file to read and whether it was named explicitly.

    Order: the argument, ``$CLIENTREG_SETTINGS``, ``./clientreg.toml``, the user config dir.
    A file named explicitly (argument or variable) must exist; the others are optional.
    """
    if path is not None:
        return Path(path), True
    named = os.environ.get("CLIENTREG_SETTINGS")
    if named:
        return Path(named), True
    for candidate in (Path.cwd() / SETTINGS_FILENAME, user_config_dir() / SETTINGS_FILENAME):
        if candidate.is_file():
            return candidate, False
    return None, False
