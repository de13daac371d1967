"""Where the key index lives and how long its events are kept: one resolution for the registry and the CLI.

Order: an explicit path, else ``$CLIENTREG_INDEX``, else the settings' ``[index]`` table
(``url``, else ``path``), else ``index.sqlite`` in the user data directory. Wherever a path
is accepted, a ``postgresql://`` URL is too: the index is then the fleet store in that
database (`registry.index.postgres`), and the location is the URL string (a path stays a
`Path`). ``off`` (an explicit path or the variable) or ``[index] enabled = false`` turns
the index off: the result is None. The retention comes from ``[index] retention``
(``CLIENTREG_INDEX__RETENTION``), default 90 days.

>>> resolve_index(None, settings.index)            # IndexLocation(path=..., retention=...) or None
>>> resolve_index(None, index_table_from_file)     # the settings file read only if needed
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

logger = logging.getLogger("clientreg.index")

INDEX_ENV = "CLIENTREG_INDEX"
"""The variable naming the index file, or ``off``."""

DEFAULT_RETENTION: Final = "90d"
"""How long events are kept unless ``[index] retention`` says otherwise."""

MAX_DURATION: Final = 100 * 365 * 86_400.0
"""The longest duration accepted anywhere (100 years): longer ones are almost surely typos."""

_OFF = ("off", "0", "false", "no")
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_FOREVER = "forever"
_warned: set[str] = set()


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
    retention: str = DEFAULT_RETENTION
    url: str | None = field(default=None, repr=False)  # may hold a password


@dataclass(frozen=True)
class IndexLocation:
    """Where the index is (a file's `Path`, or a ``postgresql://`` URL), and how many seconds its events are kept.

    ``retention`` None: for ever. A URL may hold a password: show `shown`, never ``path``.
    """

    path: Path | str
    retention: float | None

    @property
    def shown(self) -> str:
        """The location as shown to users: a path, or the URL without its password."""
        from registry.index.dsn import shown_location

        return shown_location(self.path)


def _location(text: str | os.PathLike[str]) -> Path | str:
    """A ``postgresql://`` URL as it is, anything else as a `Path`."""
    from registry.index.dsn import is_database_url

    return text.strip() if isinstance(text, str) and is_database_url(text) else Path(text).expanduser()


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30d``, ``12h``, ``15m``, ``45s``, at most 100 years.

    Raises ValueError with a message that says what is accepted.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: give a number and a unit, s, m, h or d (30d, 12h, 15m, 45s)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"{text.strip()!r} is longer than 100 years (36500d): give a shorter duration")
    return seconds


def parse_retention(text: str) -> float | None:
    """Seconds of a retention setting (``90d``, ``12h``, ...), or None for ``forever``; ValueError if neither."""
    if text.strip().lower() == _FOREVER:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; or 'forever' to keep every event") from None


def resolve_index(
    index_path: str | os.PathLike[str] | None = None,
    settings_index: IndexTable | Callable[[], IndexTable | None] | None = None,
) -> IndexLocation | None:
    """Return where the index is and its retention, or None when the index is off.

    ``settings_index`` is the settings' ``[index]`` table, or a function returning it that is
    called only when it matters (so a settings file is read only then); a function that
    raises counts as no table. The retention is read from the table whatever decides the path.
    """
    settings_table = _table_reader(settings_index)
    path = _resolve_path(index_path, settings_table)
    if path is None:
        return None
    return IndexLocation(path, _retention(settings_table()))


def _table_reader(
    settings_index: IndexTable | Callable[[], IndexTable | None] | None,
) -> Callable[[], IndexTable | None]:
    """The ``[index]`` table, got (a settings file read) on the first call only; a function that raises: no table."""
    table: IndexTable | None = None
    looked = False

    def settings_table() -> IndexTable | None:
        nonlocal table, looked
        if not looked:
            looked = True
            if callable(settings_index):
                try:
                    table = settings_index()
                except Exception:  # a bad settings file is reported where profiles are used
                    table = None
            else:
                table = settings_index
        return table

    return settings_table


def _resolve_path(
    index_path: str | os.PathLike[str] | None, settings_table: Callable[[], IndexTable | None]
) -> Path | str | None:
    """The index location alone: the settings are looked at only when ``index_path`` and the environment say nothing."""
    path: Path | str | None
    if index_path is not None:
        path = None if str(index_path).lower() == "off" else _location(index_path)
    elif named := os.environ.get(INDEX_ENV):
        path = None if named.lower() in _OFF else _location(named)
    else:
        found = settings_table()
        url = getattr(found, "url", None)
        if found is not None and not found.enabled:
            path = None
        elif url:
            path = _location(url)
        elif found is not None and found.path:
            path = _location(found.path)
        else:
            from schemas._paths import user_data_dir

            path = user_data_dir() / "index.sqlite"
    return path


def resolve_index_path(
    index_path: str | os.PathLike[str] | None = None,
    settings_index: IndexTable | Callable[[], IndexTable | None] | None = None,
) -> Path | str | None:
    """The location of `resolve_index` (a `Path`, or a ``postgresql://`` URL), or None when the index is off.

    Without the retention: the settings file is read only when neither ``index_path`` nor
    ``$CLIENTREG_INDEX`` names the location (a command given ``--index`` reads no settings).
    """
    return _resolve_path(index_path, _table_reader(settings_index))


def _retention(table: IndexTable | None) -> float | None:
    text = getattr(table, "retention", None) or DEFAULT_RETENTION
    try:
        return parse_retention(str(text))
    except ValueError as exc:
        _warn_once(f"retention:{text}", f"clientreg: [index] retention: {exc}; keeping events {DEFAULT_RETENTION}")
        return parse_retention(DEFAULT_RETENTION)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning("%s", message)


def index_table_from_file(path: str | os.PathLike[str] | None = None) -> PlainIndexTable | None:
    """Read only the ``[index]`` table of the settings file, without pydantic-settings.

    The file is found as `schemas.load_settings` finds it (``path``, ``$CLIENTREG_SETTINGS``,
    ``./clientreg.toml``, the user config dir) and read only if it is a regular file of a sane
    size (never a FIFO or a device); ``CLIENTREG_INDEX__PATH``, ``__URL``, ``__ENABLED`` and
    ``__RETENTION`` override it, as they do in `load_settings`. A file that cannot be read or
    parsed counts as no file, with one warning: a settings object passed to the registry
    needs no settings file, and a bad one is reported in full where its profiles are used.
    """
    from schemas._errors import SettingsError
    from schemas._paths import find_settings_file, read_settings_file

    file, _ = find_settings_file(path)
    table: dict[str, object] = {}
    if file is not None:
        data: dict[str, object] = {}
        try:
            data = tomllib.loads(read_settings_file(file).decode("utf-8"))
        except SettingsError as exc:
            _warn_once(f"file:{file}", f"clientreg: {exc}; the index is found without it")
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
            reason = "too deeply nested" if isinstance(exc, RecursionError) else type(exc).__name__
            _warn_once(
                f"file:{file}", f"clientreg: {file}: not a readable TOML file ({reason}); the index is found without it"
            )
        found = data.get("index")
        if isinstance(found, dict):
            table = found
    for name in ("path", "url", "retention"):
        value = os.environ.get(f"{INDEX_ENV}__{name.upper()}")
        if value is not None:
            table[name] = value
    env_enabled = os.environ.get(INDEX_ENV + "__ENABLED")
    if env_enabled is not None and env_enabled.strip().lower() in _TRUE + _FALSE:
        table["enabled"] = env_enabled.strip().lower() in _TRUE
    if not table:
        return None
    path_value, enabled, retention = table.get("path"), table.get("enabled", True), table.get("retention")
    url_value = table.get("url")
    if isinstance(url_value, str) and isinstance(path_value, str) and url_value.strip() and path_value.strip():
        _warn_once("url-and-path", "clientreg: [index] sets both url and path; using url (set only one)")
    if retention is not None and not isinstance(retention, str):
        _warn_once(
            f"retention:{retention!r}",
            f"clientreg: [index] retention must be a string such as '90d' or "
            f"'forever'; keeping events {DEFAULT_RETENTION}",
        )
    return PlainIndexTable(
        path=path_value if isinstance(path_value, str) else None,
        enabled=enabled if isinstance(enabled, bool) else True,
        retention=retention if isinstance(retention, str) else DEFAULT_RETENTION,
        url=url_value if isinstance(url_value, str) and url_value.strip() else None,
    )
