"""``KeyIndex``: the one API of the key index, whichever store holds it.

``KeyIndex(location)`` opens the store the location names: a file path is the embedded
SQLite store (`registry.index.sqlite.SQLiteIndex`), a ``postgresql://`` URL the fleet store
(`registry.index.postgres.PostgresIndex`, which needs the ``[postgres]`` extra). A new store subclasses `KeyIndex`,
implements the methods that raise ``NotImplementedError`` here with the record model of `registry.index.records` (and
`plan_batch` for writes, so every store merges a batch the same way), and adds one line to
`_store_class`.

Writers and readers differ: ``read_only=True`` never creates, moves or writes anything and
never waits for a writer; only a writer creates the index, moves a damaged clientreg index
aside, or migrates an older layout. Any store may be told to give up waiting at a deadline
(``index.deadline = time.monotonic() + 1``), from another thread: that is how the recorder
bounds the wait at ``close()`` and at interpreter exit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self

from registry.index.records import (
    ConfigRecord,
    ConfigSummary,
    ConfigUse,
    Drift,
    EventRecord,
    HashPrefixError,
    HostHead,
    HostRecord,
    NewEvent,
    RecentProfile,
)

if TYPE_CHECKING:
    from registry.index.fleet import ImportedConfig, ImportResult

HistoryRow = tuple[str, str, str, float, float, int]
"""A row of ``clientreg history``: (hash, or at least its first 12 digits; provider; profiles joined by ","; first
seen and last seen in Unix seconds (whole seconds suffice); uses)."""

_HEX_PREFIX = re.compile(r"[0-9a-f]{4,64}")


def _store_class(location: str | os.PathLike[str]) -> type[KeyIndex]:
    from registry.index.dsn import is_database_url

    if is_database_url(location):
        from registry.index.dsn import load_postgres_store

        return load_postgres_store()
    from registry.index.sqlite import SQLiteIndex

    return SQLiteIndex


class KeyIndex:
    """The key index: batched writes for the recorder, reads for the CLI and warm start.

    ``KeyIndex(location, ...)`` returns the store for ``location`` (see the module
    docstring); the keyword arguments are the store's. Safe to share between threads; after
    ``os.fork`` the child must open its own. A context manager that closes it.
    """

    deadline: float | None = None
    """A ``time.monotonic()`` time after which waits for a lock give up (None: the store's own limit)."""

    moved_aside: Any = None
    """Where a damaged index found at the location was moved when this one was opened, or None."""

    def __new__(cls, location: str | os.PathLike[str], *args: Any, **kwargs: Any) -> KeyIndex:
        """Open the store ``location`` names (when called as ``KeyIndex(...)``)."""
        chosen = _store_class(location) if cls is KeyIndex else cls
        return super().__new__(chosen)

    @property
    def location(self) -> str:
        """Where the index is, as shown to users (a path; never a password)."""
        raise NotImplementedError

    # ---- writes ----

    def apply(self, uses: Iterable[ConfigUse] = (), events: Iterable[NewEvent] = ()) -> list[Drift]:
        """Write one batch atomically: configs seen, uses added, events merged; return the drifts found.

        Counts are added to what is stored, so any number of processes may write at once
        without losing a use.
        """
        raise NotImplementedError

    def prune(self, older_than_seconds: float, *, dry_run: bool = False, now: float | None = None) -> list[str]:
        """Remove configs not used for ``older_than_seconds``, with their events; return their hashes."""
        raise NotImplementedError

    def prune_events(self, older_than_seconds: float, *, dry_run: bool = False, now: float | None = None) -> int:
        """Remove events whose last occurrence is older than ``older_than_seconds``; return how many.

        Configs stay (with their first and last use and their counts): this is how the
        retention setting keeps the index's size bounded while configs are still in use.
        """
        raise NotImplementedError

    # ---- reads ----

    def get(self, config_hash: str) -> ConfigRecord | None:
        """The config with exactly this hash, or None."""
        raise NotImplementedError

    def resolve(self, prefix: str) -> str:
        """The one full hash starting with ``prefix`` (at least 4 hex digits), like git.

        Raises HashPrefixError when the prefix is malformed, unknown or ambiguous.
        """
        wanted = prefix.strip().lower()
        if not _HEX_PREFIX.fullmatch(wanted):
            raise HashPrefixError(f"{prefix!r} is not a config hash prefix: give 4 to 64 hex digits", prefix, 0)
        found = self._hashes_starting_with(wanted)
        if len(found) == 1:
            return found[0]
        if not found:
            raise HashPrefixError(f"no config in {self.location} has a hash starting with {wanted!r}", prefix, 0)
        shown = ", ".join(h[:12] for h in found[:5]) + (", ..." if len(found) > 5 else "")
        raise HashPrefixError(
            f"hash prefix {wanted!r} is ambiguous: {len(found)} configs match ({shown}); give more digits",
            prefix,
            len(found),
        )

    def _hashes_starting_with(self, prefix: str) -> list[str]:
        """The stored hashes starting with ``prefix`` (lower-case hex), sorted."""
        raise NotImplementedError

    def list_configs(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        host: str | None = None,
    ) -> list[ConfigRecord]:
        """Configs in order of ``first_seen`` (oldest first unless ``newest_first``).

        ``since`` keeps configs used at or after that time (``last_seen``); ``host`` those a
        host used; ``limit`` keeps the newest ``limit``.
        """
        raise NotImplementedError

    def list_summaries(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        host: str | None = None,
    ) -> list[ConfigSummary]:
        """`list_configs` without the configs: what a history table needs, much faster on a large index."""
        raise NotImplementedError

    def history_rows(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        host: str | None = None,
    ) -> list[HistoryRow]:
        """What ``clientreg history`` prints, oldest first: `list_summaries` as ``HistoryRow`` tuples.

        A store may return only the first 12 digits of each hash and whole seconds (truncated,
        as ``int()`` does), and may let the database do that work.
        """
        summaries = self.list_summaries(profile=profile, provider=provider, since=since, limit=limit, host=host)
        return [(h, p, ",".join(names), first, last, uses) for h, p, names, first, last, uses in summaries]

    def config_lines(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        host: str | None = None,
    ) -> Iterator[str]:
        """`list_configs` (oldest first) as JSON text, one object per config (`ConfigRecord.to_dict`).

        A store may build the text itself, without decoding each config (``history --json``).
        """
        import json

        for record in self.list_configs(profile=profile, provider=provider, since=since, limit=limit, host=host):
            yield json.dumps(record.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def events(self, config_hash: str) -> list[EventRecord]:
        """The events of one config, oldest first."""
        raise NotImplementedError

    def recent_profiles(self, limit: int = 20, max_age_seconds: float | None = None) -> list[RecentProfile]:
        """Profiles by when they were last used, newest first, with the config each last resolved to."""
        raise NotImplementedError

    def host_heads(self, profile: str | None = None) -> list[HostHead]:
        """The config each profile (or only ``profile``) resolves to on each host, by profile and host."""
        raise NotImplementedError

    def hosts(self) -> list[HostRecord]:
        """The hosts that wrote to the index, by name, with their fingerprint key ids."""
        raise NotImplementedError

    def export(self) -> Iterator[str]:
        """JSON lines, one per config (oldest first), each with its ``events`` in order."""
        raise NotImplementedError

    def import_records(self, records: Iterable[ImportedConfig], source: str) -> ImportResult:
        """Merge records exported from another index, as coming from ``source``; safe to repeat.

        Only the PostgreSQL store imports (a fleet gathers hosts' histories); see
        `registry.index.fleet.read_export` for reading and verifying an export.
        """
        from registry.index.records import KeyIndexError

        raise KeyIndexError(
            f"{self.location} is not a PostgreSQL index: clientreg import writes into a fleet index "
            "(--index postgresql://...)"
        )

    # ---- lifetime ----

    def close(self) -> None:
        """Close the connection (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"
