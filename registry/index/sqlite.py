"""The key index in one SQLite file: the embedded default store.

Three tables in sqlitedict's layout (``key TEXT PRIMARY KEY, value BLOB``) whose values are
JSON text, never pickle, so a tampered file cannot run code::

    configs  config_hash -> {"provider", "profiles", "first_seen", "last_seen", "uses", "config"}
    events   window-and-identity id -> {"time", "config_hash", "profile", "kind", "host", "pid",
                                        "detail"?, "count"?, "last_time"?}
    meta     "schema_version" -> 2;  "profile:<name>" -> {"config_hash", "last_seen"}

``config`` is stored with its keys in canonical order, so it is byte for byte the canonical
JSON whose SHA-256 is the row's key. Times are Unix seconds. The file is in WAL mode, mode
0600, and carries clientreg's application id in its header, so a damaged index can still be
told from another program's database: only the former is ever moved aside.

Any sqlitedict user can read it (keep WAL: sqlitedict's default would switch the file to
DELETE): ``SqliteDict(path, "configs", flag="r", journal_mode="WAL", decode=json.loads)``.

>>> with SQLiteIndex("index.sqlite") as index:
...     index.list_configs(profile="fast", limit=10)
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from registry.index.records import (
    EVENT_ID_WINDOW_DIGITS,
    BadRowError,
    ConfigRecord,
    ConfigSummary,
    ConfigUse,
    Drift,
    EventRecord,
    HostHead,
    HostRecord,
    IndexCorruptError,
    IndexMissingError,
    IndexRefusedError,
    IndexUnavailableError,
    IndexVersionError,
    NewEvent,
    RecentProfile,
    canonical_order,
    event_id,
    event_order,
    event_value,
    event_window,
    host_heads_of,
    plan_batch,
)
from registry.index.store import KeyIndex

logger = logging.getLogger("clientreg.index")

SCHEMA_VERSION: Final = 2
"""Version of the tables' layout written now; a file with a newer one is refused, never rewritten.

1: the first layout. 2: configs stored in canonical key order, events coalesced (``count``,
``last_time``), clientreg's application id in the header. A writer upgrades 1 to 2.
"""

APPLICATION_ID: Final = 0x636C7267
"""``PRAGMA application_id`` of a clientreg index ("clrg"), stored at offset 68 of the file's header."""

_READABLE = (1, 2)
_TABLES = ("configs", "events", "meta")
_PROFILE_KEY = "profile:"
_HOST_KEY = "host:"
_DAMAGED_KEY = "damaged:"
_SQLITE_HEADER = b"SQLite format 3\x00"
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CANTOPEN = 5, 6, 14
_T = TypeVar("_T")
_I = TypeVar("_I")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_MAX_LIMIT = 2**62

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # the canonical JSON's own separators


def _encode(obj: Any) -> str:
    return _ENCODER.encode(obj)


def _decode(value: str | bytes) -> Any:
    # bytes: the rows are read as BLOB, so a value that is not UTF-8 fails here, for its row only.
    try:
        return json.loads(value)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BadRowError("not JSON text") from exc


def _key_text(key: bytes | str) -> str:
    if isinstance(key, str):
        return key
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRowError("its key is not UTF-8 text") from None


class _BadData(Exception):
    """SQLite's JSON functions met a row that is not JSON (or not UTF-8): take the careful path."""


class SQLiteIndex(KeyIndex):
    """The key index in one SQLite file (see the module docstring).

    A writer (the default) creates the file (mode 0600, never through a symbolic link),
    refuses a file that belongs to another user, is writable by group or others, or is not a
    clientreg index, and (when it may create one, ``create=True``) moves a damaged clientreg
    index aside to ``<name>.corrupt-<UTC time>`` (see ``moved_aside``) and starts anew. A
    reader (``read_only=True``) opens the file read-only, also on read-only media, and never
    creates, moves, migrates or waits for a writer. A locked file is waited for
    (``busy_timeout`` per attempt, retried with backoff for ``retry_for`` seconds, and never
    past ``deadline``) before `IndexUnavailableError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        read_only: bool = False,
        busy_timeout: float = 10.0,
        retry_for: float = 30.0,
    ) -> None:
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self.moved_aside: Path | None = None
        """Where a damaged index found at ``path`` was moved when this one was opened."""
        self.deadline: float | None = None
        self._busy_timeout = busy_timeout
        self._retry_for = retry_for
        self._lock = threading.RLock()
        self._reported: set[tuple[str, str]] = set()
        self._version = SCHEMA_VERSION
        self._immutable = False
        if read_only:
            self._conn = self._open_reader()
            return
        try:
            self._conn = self._open_writer(create)
        except IndexCorruptError as exc:
            if not create:  # a writer that may not start a new index (prune) leaves the file as it is
                raise
            self.moved_aside = move_aside(self.path)
            if self.moved_aside is not None:
                logger.warning(
                    "clientreg index %s was damaged (%s); moved it aside to %s and started a new index",
                    self.path,
                    exc,
                    self.moved_aside.name,
                )
            self._conn = self._open_writer(create=True)

    @property
    def location(self) -> str:
        """The file's path."""
        return str(self.path)

    @property
    def schema_version(self) -> int:
        """The layout version of the open file (a reader may have a version 1 file open)."""
        return self._version

    # ---- opening ----

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                target, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False, uri=uri
            )
        except sqlite3.Error as exc:
            raise IndexUnavailableError(f"cannot open the clientreg index at {self.path}: {exc}") from exc

    def _open_writer(self, create: bool) -> sqlite3.Connection:
        target = self._target = _prepare_for_writing(self.path, create)
        conn = self._conn = self._connect(str(target))
        try:
            state = self._inspect(conn, target)  # a read: a foreign file is refused before any write
            if state is None:
                self._retrying(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
                self._retrying(lambda: self._create_schema(conn, target), conn=conn, write=True)
                state = self._inspect(conn, target)  # ours, or what another process made meanwhile
                assert state is not None
            if self._retrying(lambda: conn.execute("PRAGMA journal_mode").fetchone()[0]) != "wal":
                self._retrying(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            if state < SCHEMA_VERSION:
                self._retrying(lambda: self._migrate(conn), conn=conn, write=True)
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable on app crash, fast
            conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            raise IndexMissingError(f"no clientreg index at {self.path}") from None
        except OSError as exc:
            raise IndexUnavailableError(f"cannot read the clientreg index at {self.path}: {exc.strerror}") from None
        if not stat.S_ISREG(found.st_mode):
            raise IndexRefusedError(f"{self.path} is not a regular file, so not a clientreg index")
        if found.st_size == 0:
            raise IndexMissingError(f"no clientreg index at {self.path} yet (the file is empty)")
        target = self.path.resolve()
        if not _header(target).startswith(_SQLITE_HEADER):
            raise IndexRefusedError(_not_ours(self.path, target))
        # No -wal file beside it: no connection has it open in WAL mode (the last to close
        # removes it), so it is read as immutable, which creates no -wal or -shm file (also on a
        # read-only medium) and takes no lock. Otherwise a writer is at work: read through its WAL.
        self._immutable = not Path(f"{target}-wal").exists()
        return self._connect_reader(target)

    def _connect_reader(self, target: Path) -> sqlite3.Connection:
        conn = self._connect(target.as_uri() + ("?mode=ro&immutable=1" if self._immutable else "?mode=ro"), uri=True)
        try:
            self._version = self._inspect(conn, target, reading=True) or SCHEMA_VERSION
        except _CannotOpenShm:
            conn.close()
            raise IndexUnavailableError(
                f"cannot read the clientreg index at {self.path}: a writer has unfinished writes in its -wal file, "
                "and SQLite cannot open the -shm file beside it (a read-only folder or medium); read it where it "
                "can be written"
            ) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _inspect(self, conn: sqlite3.Connection, target: Path, *, reading: bool = False) -> int | None:
        """The schema version of a clientreg index; None for an empty database. Refuses anything else."""

        def look() -> tuple[set[str], Any, int]:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            tables = {t for t in tables if not t.startswith("sqlite_")}
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = None
            if set(_TABLES) <= tables:
                row = conn.execute('SELECT CAST(value AS BLOB) FROM "meta" WHERE key = ?', ("schema_version",))
                found = row.fetchone()
                try:
                    version = None if found is None else _decode(found[0])
                except BadRowError:
                    version = "unreadable"
                for table in _TABLES:
                    conn.execute(f'SELECT key, value FROM "{table}" LIMIT 0')
            return tables, version, app_id

        try:
            tables, version, app_id = self._retrying(look, conn=conn)
        except IndexUnavailableError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.OperationalError) and _error_code(cause) == _SQLITE_CANTOPEN and reading:
                raise _CannotOpenShm from exc
            raise
        except IndexCorruptError as exc:
            if _has_our_header(target):
                raise IndexCorruptError(str(exc.args[0]) if exc.args else "damaged") from exc
            raise IndexRefusedError(_not_ours(self.path, target)) from exc
        if not tables:
            if reading:
                raise IndexMissingError(f"no clientreg index at {self.path} yet (an empty database)")
            return None
        if tables != set(_TABLES):
            if app_id == APPLICATION_ID:
                raise IndexCorruptError(f"its tables are not a clientreg index's ({', '.join(sorted(tables)[:8])})")
            raise IndexRefusedError(_not_ours(self.path, target, tables))
        if version is None or version == "unreadable":
            raise IndexCorruptError("its tables are there but not a readable schema version")
        if version not in _READABLE:
            raise IndexVersionError(
                f"clientreg index {self.path} has schema version {version!r}; this clientreg reads versions "
                f"{', '.join(map(str, _READABLE))}. Upgrade clientreg, or point CLIENTREG_INDEX at another file."
            )
        assert isinstance(version, int)
        self._version = version
        return version

    def _create_schema(self, conn: sqlite3.Connection, target: Path) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables:  # another process created it between our look and our write lock
            if tables != set(_TABLES):
                raise IndexRefusedError(_not_ours(self.path, target, tables))
            return
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for table in _TABLES:
            conn.execute(f'CREATE TABLE "{table}" (key TEXT PRIMARY KEY, value BLOB)')
        conn.execute('INSERT INTO "meta" (key, value) VALUES (?, ?)', ("schema_version", _encode(SCHEMA_VERSION)))
        self._version = SCHEMA_VERSION

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Version 1 to 2: configs re-stored in canonical key order (a row that is not JSON is left as it is)."""
        found = conn.execute('SELECT CAST(value AS BLOB) FROM "meta" WHERE key = ?', ("schema_version",)).fetchone()
        if found is None or _decode(found[0]) != 1:
            self._version = SCHEMA_VERSION  # another process migrated it first
            return
        rewritten = []
        for key, value in conn.execute('SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM "configs"').fetchall():
            try:
                record = ConfigRecord.from_value(_key_text(key), _decode(value))
            except BadRowError:
                continue
            rewritten.append((record.config_hash, _encode_row(_config_value(record, sort=True))))
        conn.executemany('UPDATE "configs" SET value = ? WHERE key = ?', [(v, k) for k, v in rewritten])
        # Events: keyed by config, window and identity (one row per repeated event and day).
        events: dict[str, NewEvent] = {}
        for key, value in conn.execute('SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM "events"').fetchall():
            try:
                old = EventRecord.from_value(_key_text(key), _decode(value))
            except BadRowError as exc:
                self._keep_damaged("events", key.decode("utf-8", "backslashreplace"), value, exc)
                continue
            kind: Any = old.kind
            event = NewEvent(
                old.time, old.config_hash, old.profile, kind, old.host, old.pid, old.detail, old.count, old.until
            )
            new_key = event_id(event)
            events[new_key] = event if new_key not in events else events[new_key].merged(event)
        conn.execute('DROP INDEX IF EXISTS "events_config_hash"')
        conn.execute('DELETE FROM "events"')
        self._put("events", [(key, _encode(event_value(e))) for key, e in events.items()])
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute('UPDATE "meta" SET value = ? WHERE key = ?', (_encode(SCHEMA_VERSION), "schema_version"))
        self._version = SCHEMA_VERSION

    # ---- transactions and retries ----

    def _retrying(self, work: Callable[[], _T], *, conn: sqlite3.Connection | None = None, write: bool = False) -> _T:
        """Run ``work`` (in a transaction when ``conn`` is given), retrying while the file is busy."""
        limit = time.monotonic() + self._retry_for
        delay = 0.02
        while True:
            try:
                with self._lock:
                    if conn is None:
                        return work()
                    return _in_transaction(conn, work, write)
            except sqlite3.OperationalError as exc:
                if _is_bad_data(exc):
                    raise _BadData(str(exc)) from exc
                deadline = limit if self.deadline is None else min(limit, self.deadline)
                remaining = deadline - time.monotonic()
                if _is_busy(exc) and remaining > 0:
                    time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
                    delay = min(delay * 2, 0.25)
                    continue
                raise IndexUnavailableError(f"cannot use the clientreg index at {self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(f"clientreg index {self.path} is damaged: {exc}") from exc

    def _write(self, work: Callable[[], _T]) -> _T:
        if self.read_only:
            raise IndexUnavailableError(f"the clientreg index at {self.path} was opened read-only")
        return self._retrying(work, conn=self._conn, write=True)

    def _read(self, work: Callable[[], _T]) -> _T:
        try:
            return self._retrying(work, conn=self._conn)
        except IndexCorruptError:
            if not self._immutable:
                raise
            # Read as immutable, and a writer checkpointed under us: read again through its WAL.
            with self._lock:
                self._conn.close()
                self._immutable = False
                self._conn = self._connect_reader(self.path.resolve())
            return self._retrying(work, conn=self._conn)

    def _careful(self, fast: Callable[[], _T], slow: Callable[[], _T]) -> _T:
        """``fast`` (SQLite's JSON functions over every row), or ``slow`` (row by row) when a row is not JSON."""
        try:
            return self._read(fast)
        except _BadData:
            return self._read(slow)

    # ---- rows that are not records ----

    def _skip(self, table: str, key: bytes | str, reason: BadRowError | str) -> None:
        """Report a row that is not a record, once per row; reads skip it and writes go on."""
        shown = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else key
        if (table, shown) in self._reported:
            return
        self._reported.add((table, shown))
        logger.warning(
            "clientreg: skipped a row of the key index %s that is not a record: %s[%s] (%s); the rest is used",
            self.path,
            table,
            ascii(shown[:80]),
            reason,
        )

    def _keep_damaged(self, table: str, key: str, raw: bytes, reason: BadRowError) -> None:
        """Keep an unreadable row's bytes in ``meta`` before a write replaces it: evidence, not lost."""
        kept = f"{_DAMAGED_KEY}{table}:{key}:{time.time():.6f}"
        text = raw.decode("utf-8", "backslashreplace")
        self._conn.execute(
            'INSERT OR REPLACE INTO "meta" (key, value) VALUES (?, ?)',
            (kept, _encode({"table": table, "key": key, "value": text})),
        )
        self._reported.add((table, key))
        logger.warning(
            "clientreg: a row of the key index %s was not a record: %s[%s] (%s); its bytes are kept in meta "
            "under %s and a new row was started",
            self.path,
            table,
            ascii(key[:80]),
            reason,
            ascii(kept[:120]),
        )

    def _stored(self, table: str, keys: Iterable[str], check: Callable[[str, Any], object]) -> dict[str, Any]:
        """The decoded values at ``keys`` that pass ``check``; one that does not is kept aside as damaged.

        One statement whatever the number of keys: Python's sqlite3 releases the GIL for each
        step, and a writer thread that steps once per row waits for a busy main thread at every
        one of them (the recorder then falls far behind a registry under churn).
        """
        wanted = sorted(set(keys))
        step = self._params_per_statement()
        pairs: list[tuple[str, bytes]] = []
        for start in range(0, len(wanted), step):
            chunk = wanted[start : start + step]
            part = _padded(chunk, chunk[-1])
            found = self._conn.execute(
                f"SELECT CAST(json_group_array(json_array(CAST(t.key AS TEXT), CAST(t.value AS TEXT))) AS BLOB) "
                f'FROM "{table}" AS t WHERE t.key IN ({",".join(["?"] * len(part))})',
                part,
            ).fetchone()[0]
            try:
                pairs.extend((key, value.encode()) for key, value in _decode(found))
            except (BadRowError, TypeError, ValueError, AttributeError):  # a value that is not UTF-8: row by row
                for key in chunk:  # each key once: a damaged row is kept aside once
                    row = self._conn.execute(f'SELECT CAST(value AS BLOB) FROM "{table}" WHERE key = ?', (key,))
                    value = row.fetchone()
                    if value is not None:
                        pairs.append((key, value[0]))
        out = {}
        for key, raw in pairs:
            try:
                value = _decode(raw)
                check(key, value)
            except BadRowError as exc:
                self._keep_damaged(table, key, raw, exc)
                continue
            out[key] = value
        return out

    def _params_per_statement(self) -> int:
        """Bound parameters one statement of a batch takes: 1,024, or the largest power of two SQLite allows."""
        allowed = min(_MAX_PARAMS, self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        return max(2, 1 << (allowed.bit_length() - 1))

    def _put(self, table: str, rows: list[tuple[str, str]]) -> None:
        """Insert or replace ``(key, JSON object text)`` rows, a few hundred per statement (see `_stored`).

        Bound parameters, not one JSON array for SQLite to parse: each value is stored as the
        text given, so a stored config is the canonical JSON byte for byte, and a batch makes
        no big transient string in this long-lived thread (its heap would keep the high-water).
        """
        assert all(value.startswith("{") for _, value in rows)
        step = self._params_per_statement() // 2
        for start in range(0, len(rows), step):
            part: list[tuple[str | None, str | None]] = list(rows[start : start + step])
            part = _padded(part, (None, None))  # padding rows are NULL keys, left out by the WHERE
            self._conn.execute(
                f'INSERT OR REPLACE INTO "{table}" (key, value) SELECT column1, column2 FROM (VALUES '
                + ",".join(["(?,?)"] * len(part))
                + ") WHERE column1 IS NOT NULL",
                [item for row in part for item in row],
            )

    # ---- writes ----

    def apply(self, uses: Iterable[ConfigUse] = (), events: Iterable[NewEvent] = ()) -> list[Drift]:
        """Write one batch in one IMMEDIATE transaction: configs seen, uses added, events merged.

        Counts are added to what is on disk under the write lock, so any number of processes
        may write one file at once without losing a use. Returns the drifts found.
        """
        uses, events = list(uses), list(events)
        if not uses and not events:
            return []
        return self._write(lambda: self._apply(uses, events))

    def _apply(self, uses: list[ConfigUse], extra: list[NewEvent]) -> list[Drift]:
        # Everything a batch needs is read in three statements and written in three.
        profiles = {u.profile for u in uses if u.profile is not None}
        heads = self._stored("meta", (_PROFILE_KEY + p for p in profiles), _check_head)
        hosts = self._stored("meta", {_HOST_KEY + u.host for u in uses}, HostRecord.from_value)
        wanted = {u.config_hash for u in uses} | {h["config_hash"] for h in heads.values()}
        wanted |= {h.config_hash for key, value in heads.items() for h in host_heads_of(key, value)}
        configs = self._stored("configs", wanted, ConfigRecord.from_value)

        def read_config(config_hash: str) -> dict[str, Any] | None:
            value = configs.get(config_hash)
            if value is None:
                return None
            return _config_value(ConfigRecord.from_value(config_hash, value), sort=self._version < 2)

        def read_head(profile: str) -> dict[str, Any] | None:
            value = heads.get(_PROFILE_KEY + profile)
            return None if value is None else dict(value)

        def read_host(host: str) -> dict[str, Any] | None:
            value = hosts.get(_HOST_KEY + host)
            return None if value is None else dict(value)

        plan = plan_batch(uses, extra, read_config, read_head, read_host)
        events: dict[str, NewEvent] = {}
        for event in plan.events:
            key = event_id(event)
            found = events.get(key)
            events[key] = event if found is None else found.merged(event)
        for key, value in self._stored("events", events, EventRecord.from_value).items():
            stored, event = EventRecord.from_value(key, value), events[key]
            events[key] = replace(
                event,
                time=min(event.time, stored.time),
                count=event.count + stored.count,
                last_time=max(event.until, stored.until),
            )
        self._put("configs", [(h, _encode_row(row)) for h, row in plan.configs.items()])
        self._put("meta", [(_PROFILE_KEY + p, _encode(v)) for p, v in plan.heads.items()])
        self._put("meta", [(_HOST_KEY + h, _encode(v)) for h, v in plan.hosts.items()])
        self._put("events", [(key, _encode(event_value(e))) for key, e in events.items()])
        return plan.drifts

    def prune(self, older_than_seconds: float, *, dry_run: bool = False, now: float | None = None) -> list[str]:
        """Remove configs not used for ``older_than_seconds``, with their events; return their hashes."""
        cutoff = (time.time() if now is None else now) - older_than_seconds

        def candidates() -> list[str]:
            return [
                r[0]
                for r in self._conn.execute(
                    "SELECT key FROM \"configs\" WHERE json_extract(value, '$.last_seen') < ? ORDER BY key", (cutoff,)
                )
            ]

        def candidates_carefully() -> list[str]:
            return sorted(r.config_hash for r in self._all_configs() if r.last_seen < cutoff)

        def remove(hashes: list[str]) -> list[str]:
            params = [(h,) for h in hashes]
            self._conn.executemany('DELETE FROM "configs" WHERE key = ?', params)
            self._conn.executemany('DELETE FROM "events" WHERE key >= ? AND key < ?', [_event_range(h) for h in hashes])
            heads = self._conn.execute(_HEADS_SQL).fetchall()
            gone = set(hashes)
            for key, value in heads:
                try:
                    if _decode(value).get("config_hash") in gone:
                        self._conn.execute('DELETE FROM "meta" WHERE key = ?', (_key_text(key),))
                except (BadRowError, AttributeError):
                    continue
            return hashes

        if dry_run:
            return self._careful(candidates, candidates_carefully)

        def work() -> list[str]:
            try:
                hashes = candidates()
            except sqlite3.OperationalError as exc:
                if not _is_bad_data(exc):
                    raise
                hashes = candidates_carefully()
            return remove(hashes) if hashes else hashes

        return self._write(work)

    def prune_events(self, older_than_seconds: float, *, dry_run: bool = False, now: float | None = None) -> int:
        """Remove events whose last occurrence is older than ``older_than_seconds``; return how many."""
        cutoff = (time.time() if now is None else now) - older_than_seconds
        window = f"{event_window(cutoff):0{_WINDOW_DIGITS}d}"
        # An event's key holds the window (UTC day) of its last occurrence: older windows go
        # whole, by a comparison of key text; the cutoff's own window is checked row by row.
        part = f"substr(key, {_WINDOW_AT}, {_WINDOW_DIGITS})"  # of keys of our shape only: see records.event_id
        part = f"CASE WHEN length(key) = {_KEY_LENGTH} THEN {part} END"

        def boundary() -> list[str]:
            out = []
            rows = self._conn.execute(
                f'SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM "events" WHERE {part} = ?', (window,)
            )
            for key, value in rows:
                try:
                    if EventRecord.from_value(_key_text(key), _decode(value)).until < cutoff:
                        out.append(_key_text(key))
                except BadRowError:
                    continue
            return out

        def count() -> int:
            older = self._conn.execute(f'SELECT count(*) FROM "events" WHERE {part} < ?', (window,)).fetchone()[0]
            return int(older) + len(boundary())

        def remove() -> int:
            removed = self._conn.execute(f'DELETE FROM "events" WHERE {part} < ?', (window,)).rowcount
            keys = boundary()
            self._conn.executemany('DELETE FROM "events" WHERE key = ?', [(k,) for k in keys])
            return int(removed) + len(keys)

        if self._version < 2:  # a version 1 file (read-only): keys of another shape
            return len([e for e in self._read(self._all_events) if e.until < cutoff])
        return self._read(count) if dry_run else self._write(remove)

    # ---- reads ----

    def get(self, config_hash: str) -> ConfigRecord | None:
        """The config with exactly this hash, or None (also when its row is not a record: reported)."""

        def work() -> Any:
            return self._conn.execute(
                'SELECT CAST(value AS BLOB) FROM "configs" WHERE key = ?', (config_hash,)
            ).fetchone()

        found = self._read(work)
        if found is None:
            return None
        try:
            return self._config_record(config_hash, _decode(found[0]))
        except BadRowError as exc:
            self._skip("configs", config_hash, exc)
            return None

    def _hashes_starting_with(self, prefix: str) -> list[str]:
        def work() -> list[Any]:
            return self._conn.execute(
                'SELECT CAST(key AS BLOB) FROM "configs" WHERE key >= ? AND key < ? ORDER BY key',
                (prefix, prefix + "g"),
            ).fetchall()

        out = []
        for (key,) in self._read(work):
            try:
                out.append(_key_text(key))
            except BadRowError as exc:
                self._skip("configs", key, exc)
        return out

    def _config_record(self, key: str, value: Any) -> ConfigRecord:
        record = ConfigRecord.from_value(key, value)
        if self._version < 2:  # version 1 kept the order the fields were given in
            record = ConfigRecord(
                record.config_hash,
                record.provider,
                canonical_order(record.config),
                record.profiles,
                record.first_seen,
                record.last_seen,
                record.uses,
                record.hosts,
            )
        return record

    def _all_configs(self) -> list[ConfigRecord]:
        """Every configs row that is a record, decoded one by one; the others are reported."""
        rows = self._conn.execute('SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM "configs"').fetchall()
        records = []
        for key, value in rows:
            try:
                records.append(self._config_record(_key_text(key), _decode(value)))
            except BadRowError as exc:
                self._skip("configs", key, exc)
        return records

    def _filtered(
        self,
        profile: str | None,
        provider: str | None,
        since: float | None,
        limit: int | None,
        newest_first: bool,
        host: str | None = None,
    ) -> list[ConfigRecord]:
        """`list_configs` row by row in Python: the path for an index with rows that are not JSON."""
        records = [
            r
            for r in self._all_configs()
            if (provider is None or r.provider == provider)
            and (profile is None or profile in r.profiles)
            and (since is None or r.last_seen >= since)
            and (host is None or host in r.hosts)
        ]
        records.sort(key=lambda r: (r.first_seen, r.config_hash), reverse=True)
        if limit is not None:
            records = records[: _limit(limit)]
        return records if newest_first else records[::-1]

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
        """Configs in order of ``first_seen``, filtered in SQLite before any JSON is decoded.

        ``since`` keeps configs used at or after that time (``last_seen``); ``limit`` keeps the
        newest ``limit``. Oldest first unless ``newest_first``. Rows that are not records are
        skipped and reported.
        """
        where, params = _config_filters(profile, provider, since, host)
        sql = 'SELECT CAST(c.key AS BLOB), CAST(c.value AS BLOB) FROM "configs" AS c' + where
        sql += " ORDER BY json_extract(c.value, '$.first_seen') DESC, c.key DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(_limit(limit))

        def fast() -> list[ConfigRecord]:
            records = []
            for key, value in self._conn.execute(sql, params).fetchall():
                try:
                    records.append(self._config_record(_key_text(key), _decode(value)))
                except BadRowError as exc:
                    self._skip("configs", key, exc)
            return records if newest_first else records[::-1]

        return self._careful(fast, lambda: self._filtered(profile, provider, since, limit, newest_first, host))

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
        """`list_configs` without the configs: several times faster on a large index.

        Each row's JSON is parsed once, in SQLite, for the five fields a history table shows,
        and they come back as one JSON array (one decode, not one per row; numbers keep their
        stored text, so no precision is lost).
        """
        where, params = _config_filters(profile, provider, since, host)
        sql = (
            "SELECT CAST(json_group_array(json_array(c.key, json_extract(c.value, "
            "'$.first_seen', '$.last_seen', '$.uses', '$.provider', '$.profiles'))) AS BLOB) "
            'FROM "configs" AS c' + where
        )

        def fast() -> list[ConfigSummary]:
            text = self._conn.execute(sql, params).fetchone()[0]
            try:
                found: list[Any] = _decode(text)
            except BadRowError as exc:
                raise _BadData("a row is not UTF-8 text") from exc
            summaries = []
            for row in found:
                try:
                    summaries.append(ConfigSummary.from_fields(row[0], row[1]))
                except BadRowError as exc:
                    self._skip("configs", row[0], exc)
            return summaries

        def slow() -> list[ConfigSummary]:
            records = self._filtered(profile, provider, since, None, True, host)
            return [
                ConfigSummary(r.config_hash, r.provider, r.profiles, r.first_seen, r.last_seen, r.uses) for r in records
            ]

        summaries = self._careful(fast, slow)
        summaries.sort(key=lambda s: (s.first_seen, s.config_hash), reverse=True)
        if limit is not None:
            summaries = summaries[: _limit(limit)]
        return summaries if newest_first else summaries[::-1]

    def config_lines(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        host: str | None = None,
    ) -> Iterator[str]:
        """`list_configs` as JSON text, each line the stored row with its hash, never decoded in Python.

        A version 2 row is already a record's JSON (compact, config in canonical order), so
        this is ``list_configs`` at the cost of reading the rows: 100,000 configs in well
        under a second. Rows that are not records are skipped and reported.
        """
        if self._version < 2:
            yield from super().config_lines(profile=profile, provider=provider, since=since, limit=limit, host=host)
            return
        where, params = _config_filters(profile, provider, since, host)
        order = "json_extract(c.value, '$.first_seen') {0}, c.key {0}"
        sql = f'SELECT c.key, c.value FROM "configs" AS c{where} ORDER BY ' + order.format("ASC")
        if limit is not None:  # the newest `limit`, oldest first
            sql = f'SELECT c.key, c.value FROM "configs" AS c{where} ORDER BY {order.format("DESC")} LIMIT ?'
            sql = f"SELECT * FROM ({sql}) AS c ORDER BY " + order.format("ASC")
            params.append(_limit(limit))
        sql = f"SELECT CAST(c.key AS BLOB), CAST(c.value AS BLOB), {_CONFIG_SHAPE} FROM ({sql}) AS c"

        def fast() -> list[str]:
            # Rows are turned into lines as they come (no list of rows beside the list of lines);
            # a row that is not JSON stops the sort before the first row comes, so nothing is half done.
            lines = []
            for key, value, shaped in self._conn.execute(sql, params):
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError:
                    self._skip("configs", key, BadRowError("not UTF-8 text"))
                    continue
                if not shaped or not _is_hash(key):
                    self._skip("configs", key, BadRowError("not a configs row"))
                    continue
                lines.append('{"config_hash":"' + key.decode("ascii") + '",' + text[1:])
            return lines

        def slow() -> list[str]:
            records = self._filtered(profile, provider, since, limit, False, host)
            return [_encode(r.to_dict()) for r in records]

        yield from self._careful(fast, slow)

    def events(self, config_hash: str) -> list[EventRecord]:
        """The events of one config, oldest first (its rows are one range of keys)."""

        def work() -> list[Any]:
            if self._version < 2:  # a version 1 file (read-only): rows keyed by time
                return [e for e in self._all_events() if e.config_hash == config_hash]
            rows = self._conn.execute(
                'SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM "events" WHERE key >= ? AND key < ?',
                _event_range(config_hash),
            ).fetchall()
            return [e for e in self._event_records(rows) if e.config_hash == config_hash]

        records: list[EventRecord] = self._read(work)
        records.sort(key=event_order)
        return records

    def _all_events(self) -> list[EventRecord]:
        rows = self._conn.execute('SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM "events"').fetchall()
        return self._event_records(rows)

    def _event_records(self, rows: Iterable[Any]) -> list[EventRecord]:
        out = []
        for key, value in rows:
            try:
                out.append(EventRecord.from_value(_key_text(key), _decode(value)))
            except BadRowError as exc:
                self._skip("events", key, exc)
        return out

    def recent_profiles(self, limit: int = 20, max_age_seconds: float | None = None) -> list[RecentProfile]:
        """Profiles by when they were last used, newest first, with the config each last resolved to."""
        cutoff = None if max_age_seconds is None else time.time() - max_age_seconds

        def work() -> tuple[list[Any], set[bytes]]:
            heads = self._conn.execute(_HEADS_SQL).fetchall()
            known = {r[0] for r in self._conn.execute('SELECT CAST(key AS BLOB) FROM "configs"')}
            return heads, known

        heads, known = self._read(work)
        found = []
        for key, value in heads:
            try:
                name = _key_text(key)
                data = _decode(value)
                _check_head(name, data)
            except BadRowError as exc:
                self._skip("meta", key, exc)
                continue
            if data["config_hash"].encode() in known and (cutoff is None or data["last_seen"] >= cutoff):
                found.append(RecentProfile(name[len(_PROFILE_KEY) :], data["config_hash"], data["last_seen"]))
        found.sort(key=lambda r: (-r.last_seen, r.profile))
        return found[: max(limit, 0)]

    def host_heads(self, profile: str | None = None) -> list[HostHead]:
        """The config each profile resolves to on each host (heads written before hosts were kept have none)."""
        found = []
        for key, value in self._read(lambda: self._conn.execute(_HEADS_SQL).fetchall()):
            try:
                name = _key_text(key)[len(_PROFILE_KEY) :]
                data = _decode(value)
                _check_head(name, data)
            except BadRowError as exc:
                self._skip("meta", key, exc)
                continue
            if profile is None or name == profile:
                found.extend(host_heads_of(name, data))
        found.sort(key=lambda h: (h.profile, h.host))
        return found

    def hosts(self) -> list[HostRecord]:
        """The hosts that wrote to the index, by name."""
        found = []
        for key, value in self._read(lambda: self._conn.execute(_HOSTS_SQL).fetchall()):
            try:
                found.append(HostRecord.from_value(_key_text(key)[len(_HOST_KEY) :], _decode(value)))
            except BadRowError as exc:
                self._skip("meta", key, exc)
        found.sort(key=lambda h: h.host)
        return found

    def export(self) -> Iterator[str]:
        """JSON lines, one per config (oldest first) with its ``events`` in order."""
        configs = self._read(lambda: self._filtered(None, None, None, None, False))
        by_hash: dict[str, list[EventRecord]] = {}
        for event in self._read(self._all_events):
            by_hash.setdefault(event.config_hash, []).append(event)
        for record in configs:
            events = sorted(by_hash.get(record.config_hash, []), key=event_order)
            yield _encode({**record.to_dict(), "events": [e.to_dict() for e in events]})

    # ---- lifetime ----

    def close(self) -> None:
        """Close the connection (idempotent); the -wal and -shm files go with the last one."""
        with self._lock:
            self._conn.close()


# ---- helpers ------------------------------------------------------------------------------------


_HEADS_SQL = "SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM \"meta\" WHERE key >= 'profile:' AND key < 'profile;'"
_HOSTS_SQL = "SELECT CAST(key AS BLOB), CAST(value AS BLOB) FROM \"meta\" WHERE key >= 'host:' AND key < 'host;'"


class _CannotOpenShm(Exception):
    """A read-only connection could not open the WAL index (-shm) file."""


_CONFIG_SHAPE = (
    "CASE WHEN json_valid(c.value) THEN ("
    "json_type(c.value, '$.provider') = 'text' AND json_type(c.value, '$.config') = 'object' "
    "AND json_type(c.value, '$.profiles') = 'array' AND json_type(c.value, '$.uses') = 'integer' "
    "AND json_type(c.value, '$.first_seen') IN ('integer', 'real') "
    "AND json_type(c.value, '$.last_seen') IN ('integer', 'real')) ELSE 0 END"
)


_MAX_PARAMS = 1_024  # bound parameters per statement of a batch: 512 rows of (key, value), or 1,024 keys read
_WRITER_CACHE_KIB = 512
"""Page cache of the recorder's connection (KiB; SQLite's default is 2,000). It lives as long as the
process; keys are hashes, so a batch touches pages all over each table and a bigger cache would hold
few of the next batch's: those are read again from the OS page cache."""


def _is_hash(key: bytes) -> bool:
    return len(key) == 64 and all(c in b"0123456789abcdef" for c in key)


def _limit(limit: int) -> int:
    return min(max(int(limit), 0), _MAX_LIMIT)


def _config_value(record: ConfigRecord, *, sort: bool) -> dict[str, Any]:
    value = record.to_dict()
    del value["config_hash"]
    if sort:
        value["config"] = canonical_order(value["config"])
    return value


def _encode_row(row: dict[str, Any]) -> str:
    """A configs value as JSON text; a ``config`` given as canonical JSON text goes in as it is."""
    config = row["config"]
    if not isinstance(config, str):
        return _encode(row)
    head = _encode({k: v for k, v in row.items() if k != "config"})
    return head[:-1] + ("," if len(head) > 2 else "") + '"config":' + config + "}"


def _check_head(key: str, value: Any) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("config_hash"), str):
        raise BadRowError("not a profile's head")
    last_seen = value.get("last_seen")
    if isinstance(last_seen, bool) or not isinstance(last_seen, int | float):
        raise BadRowError("not a profile's head")


_WINDOW_DIGITS = EVENT_ID_WINDOW_DIGITS  # see records.event_id: <config_hash>:<window>:<digest>
_WINDOW_AT = 66  # 1-based position of the window in an event key, after "<config_hash>:"
_KEY_LENGTH = 64 + 1 + _WINDOW_DIGITS + 1 + 20


def _padded(items: list[_I], filler: _I) -> list[_I]:
    """``items`` made up to a power of two with ``filler``: a batch's statements take few shapes.

    Each shape is a statement compiled and cached by ``sqlite3``; one per row count would fill
    that cache with big programs. The filler must change nothing: a key read again, a row
    the statement leaves out.
    """
    size = 1 << max(len(items) - 1, 0).bit_length()
    return items + [filler] * (size - len(items))


def _event_range(config_hash: str) -> tuple[str, str]:
    return f"{config_hash}:", f"{config_hash};"


def _in_transaction(conn: sqlite3.Connection, work: Callable[[], _T], write: bool) -> _T:
    # IMMEDIATE takes the write lock up front, so a read-modify-write never races another
    # writer. A read is a plain deferred transaction: in WAL mode it never waits for a writer.
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = work()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
    return result


def _error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = _error_code(exc)
    if code is not None:
        return code in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _is_bad_data(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return any(s in text for s in ("malformed JSON", "Could not decode to UTF-8", "JSON cannot hold BLOB"))


def _header(target: Path) -> bytes:
    """The first 100 bytes of a file (SQLite's header), or b"" when it cannot be read."""
    try:
        with open(target, "rb") as file:
            return file.read(100)
    except OSError:
        return b""


def _has_our_header(target: Path) -> bool:
    """Whether the file's header says it is a clientreg index (a damaged one, when SQLite cannot read it)."""
    header = _header(target)
    return header.startswith(_SQLITE_HEADER) and int.from_bytes(header[68:72], "big") == APPLICATION_ID


def _not_ours(path: Path, target: Path, tables: set[str] | None = None) -> str:
    if tables is not None:
        what = f"another program's SQLite database (tables: {', '.join(sorted(tables)[:8])})"
    else:
        try:
            with open(target, "rb") as file:
                is_sqlite = file.read(16) == _SQLITE_HEADER
        except OSError:
            is_sqlite = False
        what = "a damaged SQLite database that is not a clientreg index" if is_sqlite else "not a SQLite database"
    return (
        f"{path} is {what}; clientreg leaves it as it is. Point CLIENTREG_INDEX (or [index] path, or --index) "
        "at another file, or move this one away"
    )


def _prepare_for_writing(path: Path, create: bool) -> Path:
    """Create ``path`` (0600, O_EXCL, never through a link) or check the existing file; return what to open.

    An existing file must be a regular file owned by this user and not writable by group or
    others; a symbolic link is followed only to such a file (never created through), and the
    -wal, -shm and -journal files beside it must not be links.
    """
    try:
        found = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        if not create:
            raise IndexMissingError(f"no clientreg index at {path}") from None
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexUnavailableError(f"cannot create the clientreg index at {path}: {exc}") from exc
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        except FileExistsError:
            found = os.lstat(path)  # another process made it first, or a dangling link was planted
        except OSError as exc:
            raise IndexUnavailableError(f"cannot create the clientreg index at {path}: {exc}") from exc
        else:
            os.close(fd)
            return path
    except OSError as exc:
        raise IndexUnavailableError(f"cannot use the clientreg index at {path}: {exc.strerror}") from None
    target = path
    if stat.S_ISLNK(found.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise IndexRefusedError(
                f"{path} is a symbolic link to a missing file; clientreg never creates its index through a link "
                "(one planted in a shared folder could point anywhere). Remove the link or point the index elsewhere"
            ) from None
    try:
        fd = os.open(target, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError as exc:
        raise IndexUnavailableError(f"cannot open the clientreg index at {path}: {exc.strerror}") from None
    try:
        opened = os.fstat(fd)
    finally:
        os.close(fd)
    shown = path if target == path else f"{path} (a link to {target})"
    if not stat.S_ISREG(opened.st_mode):
        raise IndexRefusedError(f"{shown} is not a regular file, so not a clientreg index")
    if hasattr(os, "geteuid"):
        if opened.st_uid != os.geteuid():
            raise IndexRefusedError(
                f"{shown} belongs to another user (uid {opened.st_uid}); clientreg writes only an index file "
                "its own user owns. Point the index at a file of yours"
            )
        if opened.st_mode & 0o022:
            raise IndexRefusedError(
                f"{shown} is writable by group or others (mode {stat.S_IMODE(opened.st_mode):04o}); clientreg "
                f"writes only an index file no one else can change. Run: chmod 600 {target}"
            )
    for suffix in ("-wal", "-shm", "-journal"):
        if os.path.islink(f"{target}{suffix}"):
            raise IndexRefusedError(
                f"{target}{suffix} is a symbolic link; clientreg does not write through it. Remove it"
            )
    return target


def move_aside(path: Path) -> Path | None:
    """Rename ``path`` (and its -wal, -shm) to ``<name>.corrupt-<UTC time>``; None if already gone.

    A symbolic link is not moved (nor what it points to): that is for its owner to decide.
    """
    if os.path.islink(path):
        raise IndexCorruptError(
            f"clientreg index {path} is damaged; it is a symbolic link, so clientreg does not move it aside: "
            "move it (or the file it points to) away yourself"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for n in itertools.count(1):
        if not target.exists():
            break
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None  # another process moved it first
    except OSError as exc:
        raise IndexUnavailableError(f"clientreg index {path} is damaged and cannot be moved aside: {exc}") from exc
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            os.rename(f"{path}{suffix}", f"{target}{suffix}")
        except OSError:
            pass
    return target


def _config_filters(
    profile: str | None, provider: str | None, since: float | None, host: str | None = None
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if provider is not None:
        where.append("json_extract(c.value, '$.provider') = ?")
        params.append(provider)
    if profile is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(c.value, '$.profiles') AS p WHERE p.value = ?)")
        params.append(profile)
    if since is not None:
        where.append("json_extract(c.value, '$.last_seen') >= ?")
        params.append(since)
    if host is not None:  # rows written before hosts were kept name none
        where.append("EXISTS (SELECT 1 FROM json_each(c.value, '$.hosts') AS h WHERE h.value = ?)")
        params.append(host)
    return (" WHERE " + " AND ".join(where) if where else ""), params
