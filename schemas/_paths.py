"""Where clientreg looks for its settings file and keeps its index, per platform."""

from __future__ import annotations

import os
import stat
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


MAX_SETTINGS_FILE_SIZE = 1024 * 1024
"""Settings files larger than this (1 MiB) are refused: no real settings file comes near it."""

_TOO_LARGE = f"it is larger than {MAX_SETTINGS_FILE_SIZE // (1024 * 1024)} MiB"

# O_NONBLOCK: opening a FIFO for reading waits for a writer unless it is set; it changes
# nothing for a regular file. Neither flag exists on Windows, where FIFOs are no such trap.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def read_settings_file(path: str | os.PathLike[str]) -> bytes:
    """Return the bytes of the settings file ``path``: a regular file of at most 1 MiB.

    A FIFO, a device (``/dev/zero``), a directory or a larger file is refused without being
    read (and without blocking), as is a file that grows past the limit while it is read.
    Raises `SettingsError` naming the file and the reason; `SettingsError.path` is the file.
    """
    from schemas._errors import SettingsError

    name = os.fspath(path)

    def refuse(reason: str) -> SettingsError:
        return SettingsError(f"{name}: cannot read settings file: {reason}", path=name)

    try:
        before = os.stat(name)
    except FileNotFoundError:
        raise SettingsError(f"{name}: settings file not found", path=name) from None
    except OSError as exc:
        raise refuse(exc.strerror or type(exc).__name__) from None
    if not stat.S_ISREG(before.st_mode):
        raise refuse(f"it is {_kind(before.st_mode)}, not a regular file")
    if before.st_size > MAX_SETTINGS_FILE_SIZE:
        raise refuse(_TOO_LARGE)
    try:
        fd = os.open(name, _READ_FLAGS)
    except FileNotFoundError:
        raise SettingsError(f"{name}: settings file not found", path=name) from None
    except OSError as exc:
        raise refuse(exc.strerror or type(exc).__name__) from None
    try:
        # The name may have been pointed at something else between stat and open.
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise refuse(f"it is {_kind(opened.st_mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_SETTINGS_FILE_SIZE:
                raise refuse(_TOO_LARGE)
            chunks.append(chunk)
    except OSError as exc:
        raise refuse(exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
