"""The key index: which configurations ran, when, where and how often.

``records`` holds the record model every store shares, ``store`` the `KeyIndex` API that
opens the right store for a location, ``sqlite`` the embedded store (one SQLite file, the
default), ``postgres`` the fleet store (a ``postgresql://`` URL; imported only then).
Everything a caller needs is importable from here::

    from registry.index import KeyIndex, ConfigUse
    with KeyIndex("index.sqlite") as index:
        index.list_configs(profile="fast", limit=10)
"""

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
from registry.index.sqlite import SCHEMA_VERSION, SQLiteIndex, move_aside
from registry.index.store import KeyIndex

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
