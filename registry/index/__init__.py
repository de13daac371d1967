"""The key index: which configurations ran, when, where and how often.

``records`` holds the record model every store shares, ``store`` the `KeyIndex` API that
opens the right store for a location, ``sqlite`` the embedded store (one SQLite file, the
default), ``postgres`` the fleet store (a ``postgresql://`` URL; imported only then).
Everything a caller needs is importable from here::

    from registry.index import KeyIndex, ConfigUse
    with KeyIndex("index.sqlite") as index:
        index.list_configs(profile="fast", limit=10)
"""

from typing import TYPE_CHECKING, Any

from registry.index.records import (
    ConfigRecord,
    ConfigSummary,
    ConfigUse,
    Drift,
    EventKind,
    EventRecord,
    FieldChange,
    HashPrefixError,
    HostHead,
    HostRecord,
    IndexCorruptError,
    IndexMissingError,
    IndexRefusedError,
    IndexUnavailableError,
    IndexVersionError,
    KeyIndexError,
    NewEvent,
    RecentProfile,
    changed_fields,
)
from registry.index.store import KeyIndex

if TYPE_CHECKING:
    from registry.index.sqlite import SCHEMA_VERSION, SQLiteIndex, move_aside

__all__ = [
    "SCHEMA_VERSION",
    "ConfigRecord",
    "ConfigSummary",
    "ConfigUse",
    "Drift",
    "EventKind",
    "EventRecord",
    "FieldChange",
    "HashPrefixError",
    "HostHead",
    "HostRecord",
    "IndexCorruptError",
    "IndexMissingError",
    "IndexRefusedError",
    "IndexUnavailableError",
    "IndexVersionError",
    "KeyIndex",
    "KeyIndexError",
    "NewEvent",
    "RecentProfile",
    "SQLiteIndex",
    "changed_fields",
    "move_aside",
]

_SQLITE = {"SCHEMA_VERSION", "SQLiteIndex", "move_aside"}


def __getattr__(name: str) -> Any:
    # The SQLite store's module, imported when first named: a PostgreSQL index (a fleet's
    # `clientreg history`, whose interpreter start is timed) does not load or compile it.
    if name in _SQLITE:
        from registry.index import sqlite

        return getattr(sqlite, name)
    raise AttributeError(f"module 'registry.index' has no attribute {name!r}")
