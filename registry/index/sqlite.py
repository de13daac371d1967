"""KeyIndex on SQLite: the persistent record of which configurations ran, when, where and how often.

One SQLite file (WAL journal, mode 0600) holding three sqlitedict tables whose values are JSON,
never pickle, so a tampered file cannot run code::

    configs  config_hash -> {"provider", "config", "profiles", "first_seen", "last_seen", "uses"}
    events   sortable id -> {"time", "config_hash", "profile", "kind", "host", "pid", "detail"?}
    meta     "schema_version" -> 1;  "profile:<name>" -> {"config_hash", "last_seen"}

Any sqlitedict user can read it (keep WAL: sqlitedict's default would switch the file to DELETE):
``SqliteDict(path, "configs", flag="r", journal_mode="WAL", decode=json.loads)``.
Times are Unix seconds. Only redacted canonical configs and profile names are stored.

>>> with KeyIndex("index.sqlite") as index:
...     index.list_configs(profile="fast", limit=10)
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlitedict import SqliteDict  # type: ignore[import-untyped]

from registry.index.records import (
    ConfigRecord,
    ConfigSummary,
    ConfigUse,
    Drift,
    EventKind,
    EventRecord,
    HashPrefixError,
    IndexCorruptError,
    IndexMissingError,
    IndexUnavailableError,
    IndexVersionError,
    NewEvent,
    RecentProfile,
    changed_fields,
)

logger = logging.getLogger("clientreg.index")

SCHEMA_VERSION: Final = 1
"""Version of the tables' layout; a file with a newer one is refused, never rewritten."""

_T = TypeVar("_T")
_HEX_PREFIX = re.compile(r"[0-9a-f]{4,64}")
_PROFILE_KEY = "profile:"
_TABLES = ("configs", "events", "meta")
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


# ---- sqlitedict over one synchronous connection -------------------------------------------------


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # one encoder, not one per value


def _encode(obj: Any) -> str:
    return _ENCODER.encode(obj)


def _decode(value: str | bytes) -> Any:
    return json.loads(value)


class _Link:
    """sqlitedict's connection interface over the index's one synchronous sqlite3 connection.

    sqlitedict normally runs a worker thread per table that logs each failed statement at
    ERROR and raises it on a later call. The index needs transactions spanning tables, busy
    retries, errors raised where they happen, and no thread to lose across ``fork``.
    """

    autocommit = False

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, req: str, arg: Any = None, res: Any = None) -> None:
        self._conn.execute(req, arg or ())

    def executemany(self, req: str, items: Iterable[Any]) -> None:
        self._conn.executemany(req, items)

    def select(self, req: str, arg: Any = None) -> Iterator[Any]:
        yield from self._conn.execute(req, arg or ())

    def select_one(self, req: str, arg: Any = None) -> Any:
        return self._conn.execute(req, arg or ()).fetchone()

    def commit(self, blocking: bool = True) -> None:
        """Statements outside a KeyIndex transaction are already committed (autocommit mode)."""

    def close(self, force: bool = False) -> None:
        """The KeyIndex owns the connection and closes it."""


class _Table(SqliteDict):  # type: ignore[misc]
    """A sqlitedict table with JSON values on the shared connection."""

    def __init__(self, link: _Link, path: Path, name: str) -> None:
        self._link = link
        super().__init__(str(path), tablename=name, encode=_encode, decode=_decode)

    def _new_conn(self) -> _Link:
        return self._link


# ---- the index ----------------------------------------------------------------------------------


class KeyIndex:
    """The index file: batched writes for the recorder, fast reads for the CLI and warm start.

    Opening creates the file (mode 0600) and its tables, or checks them. A file that is not a
    clientreg index is moved aside to ``<name>.corrupt-<UTC time>`` (see ``moved_aside``) and a
    new index started. A locked file is waited for (``busy_timeout`` per attempt, retried with
    backoff for ``retry_for`` seconds) before ``IndexUnavailableError``. Safe to share between
    threads; after ``os.fork`` the child must open its own.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        busy_timeout: float = 10.0,
        retry_for: float = 30.0,
    ) -> None:
        self.path = Path(path).expanduser()
        self.moved_aside: Path | None = None
        """Where a corrupt file found at ``path`` was moved when this index was opened."""
        self._busy_timeout = busy_timeout
        self._retry_for = retry_for
        self._lock = threading.RLock()
        try:
            self._conn = self._open(create)
        except IndexCorruptError as exc:
            self.moved_aside = move_aside(self.path)
            if self.moved_aside is not None:
                logger.warning(
                    "clientreg index %s was not readable (%s); moved it aside to %s and started a new index",
                    self.path,
                    exc,
                    self.moved_aside.name,
                )
            self._conn = self._open(create=True)
        link = _Link(self._conn)
        self._configs, self._events, self._meta = (_Table(link, self.path, name) for name in _TABLES)

    # ---- opening ----

    def _open(self, create: bool) -> sqlite3.Connection:
        if not self.path.exists():
            if not create:
                raise IndexMissingError(f"no clientreg index at {self.path}")
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            except OSError as exc:
                raise IndexUnavailableError(f"cannot create the clientreg index at {self.path}: {exc}") from exc
        elif not self.path.is_file():
            raise IndexUnavailableError(f"clientreg index path {self.path} is not a regular file")
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise IndexUnavailableError(f"cannot open the clientreg index at {self.path}: {exc}") from exc
        try:
            self._retrying(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable on app crash, fast
            self._retrying(lambda: self._check_schema(conn), conn=conn, write=True)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            try:
                row = conn.execute('SELECT value FROM "meta" WHERE key = ?', ("schema_version",)).fetchone()
                version = None if row is None else _decode(row[0])
                for table in _TABLES:
                    conn.execute(f'SELECT key, value FROM "{table}" LIMIT 0')
            except (sqlite3.OperationalError, ValueError) as exc:
                raise IndexCorruptError(f"unreadable tables ({exc})") from exc
            if row is None:
                raise IndexCorruptError("no schema version")
            if version != SCHEMA_VERSION:
                raise IndexVersionError(
                    f"clientreg index {self.path} has schema version {version!r}; this clientreg reads version "
                    f"{SCHEMA_VERSION}. Upgrade clientreg, or point CLIENTREG_INDEX at another file."
                )
            return
        if tables:
            raise IndexCorruptError(f"a database that is not a clientreg index (tables: {', '.join(sorted(tables))})")
        for table in _TABLES:
            conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (key TEXT PRIMARY KEY, value BLOB)')
        conn.execute(
            'CREATE INDEX IF NOT EXISTS "events_config_hash" ON "events" (json_extract(value, \'$.config_hash\'))'
        )
        conn.execute('INSERT INTO "meta" (key, value) VALUES (?, ?)', ("schema_version", _encode(SCHEMA_VERSION)))

    # ---- transactions and retries ----

    def _retrying(self, work: Callable[[], _T], *, conn: sqlite3.Connection | None = None, write: bool = False) -> _T:
        """Run ``work`` (in a transaction when ``conn`` is given), retrying while the file is busy."""
        deadline = time.monotonic() + self._retry_for
        delay = 0.02
        while True:
            try:
                with self._lock:
                    if conn is None:
                        return work()
                    return _in_transaction(conn, work, write)
            except sqlite3.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if _is_busy(exc) and remaining > 0:
                    time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
                    delay = min(delay * 2, 1.0)
                    continue
                raise IndexUnavailableError(f"cannot use the clientreg index at {self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(f"clientreg index {self.path} is damaged: {exc}") from exc

    def _write(self, work: Callable[[], _T]) -> _T:
        return self._retrying(work, conn=self._conn, write=True)

    def _read(self, work: Callable[[], _T]) -> _T:
        return self._retrying(work, conn=self._conn)

    # ---- writes ----

    def apply(self, uses: Iterable[ConfigUse] = (), events: Iterable[NewEvent] = ()) -> list[Drift]:
        """Write one batch in one transaction: configs seen, uses added, events appended.

        Counts are added to what is on disk inside an IMMEDIATE transaction, so any number of
        processes may write one file at once without losing a use. Returns the drifts found.
        """
        uses, events = list(uses), list(events)
        if not uses and not events:
            return []
        return self._write(lambda: self._apply(uses, events))

    def _apply(self, uses: list[ConfigUse], extra: list[NewEvent]) -> list[Drift]:
        rows: dict[str, dict[str, Any] | None] = {}
        profiles: dict[str, dict[str, Any] | None] = {}
        events: list[NewEvent] = []
        drifts: list[Drift] = []

        def row(config_hash: str) -> dict[str, Any] | None:
            if config_hash not in rows:
                rows[config_hash] = self._configs.get(config_hash)
            return rows[config_hash]

        for use in uses:
            current = row(use.config_hash)
            if current is None:
                current = rows[use.config_hash] = {
                    "provider": use.provider,
                    "config": dict(use.config),
                    "profiles": [],
                    "first_seen": use.time,
                    "last_seen": use.time,
                    "uses": 0,
                }
                events.append(_event_from(use, "first_seen"))
            if use.profile is not None and use.profile not in current["profiles"]:
                current["profiles"].append(use.profile)
            current["uses"] += use.uses
            current["last_seen"] = max(current["last_seen"], use.time)
            if use.kind is not None:
                events.append(_event_from(use, use.kind))
            if use.profile is None:
                continue
            if use.profile not in profiles:
                profiles[use.profile] = self._meta.get(_PROFILE_KEY + use.profile)
            last = profiles[use.profile]
            if use.kind is not None:
                if last is not None and last["config_hash"] != use.config_hash:
                    old = row(last["config_hash"])
                    changes = changed_fields(old["config"], use.config) if old is not None else ()
                    drift = Drift(use.profile, last["config_hash"], use.config_hash, tuple(changes))
                    drifts.append(drift)
                    detail: dict[str, Any] = {"old_hash": drift.old_hash, "new_hash": drift.new_hash}
                    detail["fields"] = [c.field for c in changes]
                    events.append(_event_from(use, "drift", detail))
                last_seen = use.time if last is None else max(use.time, last["last_seen"])
                profiles[use.profile] = {"config_hash": use.config_hash, "last_seen": last_seen}
            elif last is not None and last["config_hash"] == use.config_hash and use.uses:
                last["last_seen"] = max(use.time, last["last_seen"])

        self._configs.update({h: r for h, r in rows.items() if r is not None})
        self._meta.update({_PROFILE_KEY + p: v for p, v in profiles.items() if v is not None})
        self._events.update({_new_event_id(e.time, e.pid): _event_value(e) for e in [*events, *extra]})
        return drifts

    def prune(self, older_than_seconds: float, *, dry_run: bool = False, now: float | None = None) -> list[str]:
        """Remove configs not used for ``older_than_seconds``, with their events; return their hashes."""
        cutoff = (time.time() if now is None else now) - older_than_seconds

        def work() -> list[str]:
            found = self._conn.execute(
                "SELECT key FROM \"configs\" WHERE json_extract(value, '$.last_seen') < ? ORDER BY key", (cutoff,)
            )
            hashes = [r[0] for r in found]
            if dry_run or not hashes:
                return hashes
            params = [(h,) for h in hashes]
            self._conn.executemany('DELETE FROM "configs" WHERE key = ?', params)
            self._conn.executemany("DELETE FROM \"events\" WHERE json_extract(value, '$.config_hash') = ?", params)
            self._conn.executemany(
                "DELETE FROM \"meta\" WHERE key >= 'profile:' AND key < 'profile;' "
                "AND json_extract(value, '$.config_hash') = ?",
                params,
            )
            return hashes

        return self._write(work) if not dry_run else self._read(work)

    # ---- reads ----

    def get(self, config_hash: str) -> ConfigRecord | None:
        """The config with exactly this hash, or None."""
        value = self._read(lambda: self._configs.get(config_hash))
        return None if value is None else _config_record(config_hash, value)

    def resolve(self, prefix: str) -> str:
        """The one full hash starting with ``prefix`` (at least 4 hex digits), like git.

        Raises HashPrefixError when the prefix is malformed, unknown or ambiguous.
        """
        wanted = prefix.strip().lower()
        if not _HEX_PREFIX.fullmatch(wanted):
            raise HashPrefixError(f"{prefix!r} is not a config hash prefix: give 4 to 64 hex digits", prefix, 0)
        found = self._read(
            lambda: [
                r[0]
                for r in self._conn.execute(
                    'SELECT key FROM "configs" WHERE key >= ? AND key < ? ORDER BY key', (wanted, wanted + "g")
                )
            ]
        )
        if len(found) == 1:
            return str(found[0])
        if not found:
            raise HashPrefixError(f"no config in {self.path} has a hash starting with {wanted!r}", prefix, 0)
        shown = ", ".join(h[:12] for h in found[:5]) + (", ..." if len(found) > 5 else "")
        raise HashPrefixError(
            f"hash prefix {wanted!r} is ambiguous: {len(found)} configs match ({shown}); give more digits",
            prefix,
            len(found),
        )

    def list_configs(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ConfigRecord]:
        """Configs in order of ``first_seen``, filtered in SQLite before any JSON is decoded.

        ``since`` keeps configs used at or after that time (``last_seen``); ``limit`` keeps the
        newest ``limit``. Oldest first unless ``newest_first``.
        """
        where, params = _config_filters(profile, provider, since)
        sql = 'SELECT c.key, c.value FROM "configs" AS c' + where
        sql += " ORDER BY json_extract(c.value, '$.first_seen') DESC, c.key DESC"
        if limit is not None:
            sql += f" LIMIT {max(int(limit), 0)}"
        rows = self._read(lambda: self._conn.execute(sql, params).fetchall())
        records = [_config_record(key, _decode(value)) for key, value in rows]
        return records if newest_first else records[::-1]

    def list_summaries(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ConfigSummary]:
        """`list_configs` without the configs: several times faster on a large index.

        Each row's JSON is parsed once, in SQLite, for the five fields a history table shows,
        and they come back as one JSON array (one decode, not one per row; numbers keep their
        stored text, so no precision is lost).
        """
        where, params = _config_filters(profile, provider, since)
        sql = (
            "SELECT json_group_array(json_array(c.key, json_extract(c.value, "
            "'$.first_seen', '$.last_seen', '$.uses', '$.provider', '$.profiles'))) "
            'FROM "configs" AS c' + where
        )
        text = self._read(lambda: self._conn.execute(sql, params).fetchone()[0])
        found: list[tuple[str, list[Any]]] = _decode(text)
        found.sort(key=lambda row: (row[1][0], row[0]), reverse=True)
        if limit is not None:
            found = found[: max(int(limit), 0)]
        summaries = [ConfigSummary(key, f[3], tuple(f[4]), f[0], f[1], f[2]) for key, f in found]
        return summaries if newest_first else summaries[::-1]

    def events(self, config_hash: str) -> list[EventRecord]:
        """The events of one config, oldest first."""
        rows = self._read(
            lambda: self._conn.execute(
                "SELECT key, value FROM \"events\" WHERE json_extract(value, '$.config_hash') = ? ORDER BY key",
                (config_hash,),
            ).fetchall()
        )
        return [_event_record(key, _decode(value)) for key, value in rows]

    def recent_profiles(self, limit: int = 20, max_age_seconds: float | None = None) -> list[RecentProfile]:
        """Profiles by when they were last used, newest first, with the config each last resolved to."""
        cutoff = None if max_age_seconds is None else time.time() - max_age_seconds
        rows = self._read(
            lambda: self._conn.execute(
                'SELECT m.key, m.value FROM "meta" AS m JOIN "configs" AS c '
                "ON c.key = json_extract(m.value, '$.config_hash') "
                "WHERE m.key >= 'profile:' AND m.key < 'profile;'"
            ).fetchall()
        )
        found = []
        for key, value in rows:
            data = _decode(value)
            if cutoff is None or data["last_seen"] >= cutoff:
                found.append(RecentProfile(key[len(_PROFILE_KEY) :], data["config_hash"], data["last_seen"]))
        found.sort(key=lambda r: (-r.last_seen, r.profile))
        return found[: max(limit, 0)]

    def export(self) -> Iterator[str]:
        """JSON lines, one per config (oldest first) with its ``events`` in order."""
        configs = self.list_configs()
        rows = self._read(lambda: self._conn.execute('SELECT key, value FROM "events" ORDER BY key').fetchall())
        by_hash: dict[str, list[dict[str, Any]]] = {}
        for key, value in rows:
            event = _event_record(key, _decode(value))
            by_hash.setdefault(event.config_hash, []).append(event.to_dict())
        for record in configs:
            yield _encode({**record.to_dict(), "events": by_hash.get(record.config_hash, [])})

    # ---- lifetime ----

    def close(self) -> None:
        """Close the connection (idempotent); the -wal and -shm files go with the last one."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> KeyIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KeyIndex({str(self.path)!r})"


# ---- helpers ------------------------------------------------------------------------------------


def _in_transaction(conn: sqlite3.Connection, work: Callable[[], _T], write: bool) -> _T:
    # IMMEDIATE takes the write lock up front, so a read-modify-write never races another writer.
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


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def move_aside(path: Path) -> Path | None:
    """Rename ``path`` (and its -wal, -shm) to ``<name>.corrupt-<UTC time>``; None if already gone."""
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
        raise IndexUnavailableError(f"clientreg index {path} is corrupt and cannot be moved aside: {exc}") from exc
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            os.rename(f"{path}{suffix}", f"{target}{suffix}")
        except OSError:
            pass
    return target


_EVENT_SEQ = itertools.count()


def _new_event_id(at: float, pid: int) -> str:
    # Sorts by time; unique across processes (pid) and within one (sequence, random tail).
    return f"{int(at * 1e9):019d}-{pid:07d}-{next(_EVENT_SEQ):06d}-{random.getrandbits(16):04x}"


def _event_from(use: ConfigUse, kind: EventKind, detail: Mapping[str, Any] | None = None) -> NewEvent:
    return NewEvent(use.time, use.config_hash, use.profile, kind, use.host, use.pid, detail)


def _event_value(event: NewEvent) -> dict[str, Any]:
    value: dict[str, Any] = {"time": event.time, "config_hash": event.config_hash, "profile": event.profile}
    value.update(kind=event.kind, host=event.host, pid=event.pid)
    if event.detail is not None:
        value["detail"] = dict(event.detail)
    return value


def _config_record(config_hash: str, value: dict[str, Any]) -> ConfigRecord:
    return ConfigRecord(
        config_hash,
        value["provider"],
        value["config"],
        tuple(value["profiles"]),
        value["first_seen"],
        value["last_seen"],
        value["uses"],
    )


def _config_filters(profile: str | None, provider: str | None, since: float | None) -> tuple[str, list[Any]]:
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
    return (" WHERE " + " AND ".join(where) if where else ""), params


def _event_record(event_id: str, value: dict[str, Any]) -> EventRecord:
    return EventRecord(
        event_id,
        value["time"],
        value["config_hash"],
        value.get("profile"),
        value["kind"],
        value.get("host", ""),
        value.get("pid", 0),
        value.get("detail"),
    )
