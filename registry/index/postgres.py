"""The key index in PostgreSQL: the fleet store, where many hosts write one record.

Real tables in one schema (``?schema=NAME`` in the URL, default ``clientreg``)::

    configs        config_hash PK, provider, profiles[], hosts[], first_seen, last_seen, uses
    canonical_forms  config_hash PK (-> configs) -> canonical (the canonical JSON, exactly), config (JSONB)
    events         event_id PK (<config_hash>:<UTC day>:<digest>, as in SQLite), config_hash,
                   profile, kind, host, pid, detail (JSONB), count, time, last_time
    profiles       profile PK -> the config it last resolved to on any host, last_seen
    profile_heads  (profile, host) PK -> config_hash, since, last_seen: the config it resolves to there
    hosts          host PK -> key_id (fingerprint key id), first_seen, last_seen
    imports        (source, config_hash) PK -> uses an import from that source has added
    clientreg_migrations   version PK, description, applied_at: the layout versions applied

Times are ``timestamptz``. A write is one transaction; counts are merged in the database
(``uses = configs.uses + EXCLUDED.uses``), so any number of hosts and processes write at
once without losing a use; rows are locked in one order (configs by hash, then each
profile's advisory lock, then events by id), so writers never deadlock each other, and a
deadlock or lock timeout that comes from elsewhere is retried. A profile's heads are changed
only under that profile's advisory lock, so drift is decided on what the last writer left.

A writer creates the schema and tables (or migrates an older layout) under an advisory lock
on first use; a schema holding tables that are not an index's, or a newer layout, is
refused and left as it is. A reader (``read_only=True``) never creates, migrates or writes.

When the connection is lost, the next call reconnects. A ``COMMIT`` whose answer is lost is
settled on reconnection by asking the server whether its transaction committed
(``pg_xact_status``), so a retried write is neither lost nor counted twice.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import psycopg
from psycopg import errors, sql
from psycopg.rows import RowFactory, RowMaker, TupleRow, tuple_row

from registry.index.dsn import PostgresLocation, parse_postgres_url
from registry.index.records import (
    BadRowError,
    ConfigRecord,
    ConfigSummary,
    ConfigUse,
    Drift,
    EventKind,
    EventRecord,
    HostHead,
    HostRecord,
    IndexMissingError,
    IndexRefusedError,
    IndexUnavailableError,
    IndexVersionError,
    NewEvent,
    RecentProfile,
    canonical_order,
    event_id,
    event_order,
    plan_batch,
)
from registry.index.store import HistoryRow, KeyIndex

if TYPE_CHECKING:
    from registry.index.fleet import ImportedConfig, ImportResult

logger = logging.getLogger("clientreg.index")

SCHEMA_VERSION: Final = 1
"""The newest layout this clientreg writes; a schema with a newer one is refused, never changed."""

LOCK_CLASS: Final = 0x636C7267
"""First key of clientreg's advisory locks ("clrg"): ``pg_advisory_xact_lock(LOCK_CLASS, key)``."""

_T = TypeVar("_T")
_CONNECT_TIMEOUT = 5  # seconds, unless the URL says otherwise
_TCP_USER_TIMEOUT = 10_000  # ms: a server that vanished without a word is noticed in 10 s, not 15 min
_MIN_STATEMENT_TIMEOUT = 0.1  # seconds a statement gets even at a deadline already past
_MAX_LIMIT = 2**62
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # the canonical JSON's own separators
_RETRIED = (errors.LockNotAvailable, errors.DeadlockDetected, errors.SerializationFailure)


def _encode(obj: Any) -> str:
    return _ENCODER.encode(obj)


# ---- the layout, one migration per version --------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One step of the layout: its version, what it does, and its statements (``{s}`` is the schema)."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: Final = (
    Migration(
        1,
        "configs and their canonical forms, events, profile heads per host, hosts, imports",
        (
            """CREATE TABLE {s}.configs (
                config_hash text COLLATE "C" PRIMARY KEY CHECK (config_hash ~ '^[0-9a-f]{{64}}$'),
                provider text NOT NULL,
                profiles text[] NOT NULL DEFAULT '{{}}',
                hosts text[] NOT NULL DEFAULT '{{}}',
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                uses bigint NOT NULL DEFAULT 0 CHECK (uses >= 0)
            )""",
            "CREATE INDEX configs_first_seen ON {s}.configs (first_seen DESC, config_hash DESC)",
            "CREATE INDEX configs_last_seen ON {s}.configs (last_seen)",
            "CREATE INDEX configs_profiles ON {s}.configs USING gin (profiles)",
            "CREATE INDEX configs_hosts ON {s}.configs USING gin (hosts)",
            # The canonical form apart: a history reads the narrow rows above (15 MB for 100,000
            # configs, not 130), and a use written to a known config parses no JSON.
            """CREATE TABLE {s}.canonical_forms (
                config_hash text COLLATE "C" PRIMARY KEY REFERENCES {s}.configs ON DELETE CASCADE,
                canonical text NOT NULL,
                config jsonb
            )""",
            """CREATE TABLE {s}.events (
                event_id text COLLATE "C" PRIMARY KEY,
                config_hash text COLLATE "C" NOT NULL,
                profile text,
                kind text NOT NULL,
                host text NOT NULL,
                pid integer NOT NULL,
                detail jsonb,
                count bigint NOT NULL CHECK (count > 0),
                time timestamptz NOT NULL,
                last_time timestamptz NOT NULL
            )""",
            "CREATE INDEX events_config ON {s}.events (config_hash, time)",
            "CREATE INDEX events_last_time ON {s}.events (last_time)",
            """CREATE TABLE {s}.profiles (
                profile text PRIMARY KEY,
                config_hash text COLLATE "C" NOT NULL,
                last_seen timestamptz NOT NULL
            )""",
            """CREATE TABLE {s}.profile_heads (
                profile text NOT NULL,
                host text NOT NULL,
                config_hash text COLLATE "C" NOT NULL,
                since timestamptz NOT NULL,
                last_seen timestamptz NOT NULL,
                PRIMARY KEY (profile, host)
            )""",
            """CREATE TABLE {s}.hosts (
                host text PRIMARY KEY,
                key_id text,
                first_seen timestamptz NOT NULL,
                last_seen timestamptz NOT NULL
            )""",
            """CREATE TABLE {s}.imports (
                source text NOT NULL,
                config_hash text COLLATE "C" NOT NULL,
                uses bigint NOT NULL,
                imported_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (source, config_hash)
            )""",
            "COMMENT ON SCHEMA {s} IS 'clientreg key index (see clientreg_migrations)'",
        ),
    ),
)
assert MIGRATIONS[-1].version == SCHEMA_VERSION


# Columns read back as Unix seconds (float), the record model's times.
_SUMMARY_COLUMNS = (
    "c.config_hash, c.provider, c.profiles, date_part('epoch', c.first_seen), date_part('epoch', c.last_seen), c.uses"
)
_CONFIG_COLUMNS = _SUMMARY_COLUMNS + ", c.hosts, f.canonical"
_HISTORY_COLUMNS = (
    "left(c.config_hash, 12), c.provider, array_to_string(c.profiles, ','), "
    "trunc(date_part('epoch', c.first_seen))::int8, trunc(date_part('epoch', c.last_seen))::int8, c.uses"
)
_CONFIGS = "{s}.configs c"
_CONFIGS_AND_FORMS = "{s}.configs c JOIN {s}.canonical_forms f ON f.config_hash = c.config_hash"
_EVENT_COLUMNS = (
    "event_id, date_part('epoch', time), config_hash, profile, kind, host, pid, detail, count, "
    "date_part('epoch', last_time)"
)


@dataclass
class _InDoubt:
    """A write whose COMMIT got no answer: its transaction id, and what it held."""

    xid: str
    uses: list[ConfigUse]
    events: list[NewEvent]


class PostgresIndex(KeyIndex):
    """The key index in a PostgreSQL schema (see the module docstring).

    ``location`` is a ``postgresql://`` URL (see `registry.index.dsn`). The keyword arguments
    are those of every store: ``create`` (a writer may create the tables), ``read_only``,
    ``busy_timeout`` (how long one statement waits for a lock before it is retried) and
    ``retry_for`` (how long a write is retried, and the longest a statement may run). A
    connection that cannot be made, or is lost, is `IndexUnavailableError`; the next call
    connects again.
    """

    def __init__(
        self,
        location: str,
        *,
        create: bool = True,
        read_only: bool = False,
        busy_timeout: float = 10.0,
        retry_for: float = 30.0,
    ) -> None:
        self._where: PostgresLocation = parse_postgres_url(location)
        self.read_only = read_only
        self.deadline: float | None = None
        self.moved_aside = None
        self._create = create and not read_only
        self._busy_timeout = busy_timeout
        self._retry_for = retry_for
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._version = 0
        self._in_doubt: list[_InDoubt] = []
        self._s = sql.Identifier(self._where.schema)
        self._composed: dict[str, sql.Composed] = {}
        self._run(lambda cur: None, write=False)  # connect, and check (or create) the layout, now

    @property
    def location(self) -> str:
        """The URL without its password, with its schema."""
        return self._where.shown

    @property
    def schema(self) -> str:
        """The PostgreSQL schema that holds the index's tables."""
        return self._where.schema

    @property
    def schema_version(self) -> int:
        """The layout version of the schema."""
        return self._version

    # ---- connecting and the layout ----

    def _sql(self, text: str) -> sql.Composed:
        """A statement whose ``{s}`` is the schema, composed by psycopg (never by string formatting); composed once."""
        found = self._composed.get(text)
        if found is None:
            found = self._composed[text] = sql.SQL(text).format(s=self._s)
        return found

    def _connection(self) -> psycopg.Connection[TupleRow]:
        """The open connection, made (and the layout checked, created or migrated) when there is none."""
        if os.getpid() != self._pid:
            raise IndexUnavailableError(f"the clientreg index at {self.location} was opened in another process")
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop_connection()
        conn = self._connect()
        try:
            self._version = self._prepare(conn)
        except _RETRIED:  # another process is creating the layout: `_run` waits and tries again
            _close_quietly(conn)
            raise
        except psycopg.Error as exc:
            _close_quietly(conn)
            raise self._error(exc) from None
        except BaseException:
            _close_quietly(conn)
            raise
        self._conn = conn
        return conn

    def _connect(self) -> psycopg.Connection[TupleRow]:
        given = self._given_parameters()
        extra: dict[str, Any] = {}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = _CONNECT_TIMEOUT
        if "application_name" not in given:
            extra["application_name"] = "clientreg"
        if "tcp_user_timeout" not in given:
            extra["tcp_user_timeout"] = _TCP_USER_TIMEOUT
        try:
            conn = psycopg.connect(self._where.conninfo, autocommit=False, **extra)
        except psycopg.Error as exc:
            raise IndexUnavailableError(
                f"cannot connect to the clientreg index at {self.location}: {self._reason(exc)}"
            ) from None
        conn.read_only = self.read_only
        return conn

    def _given_parameters(self) -> set[str]:
        try:
            return set(psycopg.conninfo.conninfo_to_dict(self._where.conninfo))
        except psycopg.Error as exc:
            raise IndexRefusedError(
                f"cannot read the PostgreSQL URL of the clientreg index {self.location}: {self._reason(exc)}"
            ) from None

    def _prepare(self, conn: psycopg.Connection[TupleRow]) -> int:
        """The layout version, after creating or migrating it if this is a writer that may."""
        version = self._transaction(conn, self._installed_version, write=False)
        if version == SCHEMA_VERSION:
            return version
        if version is not None and version > SCHEMA_VERSION:
            raise IndexVersionError(
                f"clientreg index {self.location} has schema version {version}; this clientreg knows versions "
                f"up to {SCHEMA_VERSION}. Upgrade clientreg, or point the index at another schema (?schema=NAME)"
            )
        if version is None and not self._create:
            raise IndexMissingError(f"no clientreg index at {self.location} yet")
        if self.read_only:
            return version or 0  # an older layout, read as it is
        if not self._create and version is None:
            raise IndexMissingError(f"no clientreg index at {self.location} yet")
        return self._transaction(conn, self._migrate, write=True)

    def _installed_version(self, cur: psycopg.Cursor[TupleRow]) -> int | None:
        """The applied layout version; None for a schema that is missing or empty. Refuses anything else."""
        tables = {
            name
            for (name,) in cur.execute(
                "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                (self.schema,),
            )
        }
        if not tables:
            return None
        if "clientreg_migrations" not in tables:
            shown = ", ".join(sorted(tables)[:8])
            raise IndexRefusedError(
                f"schema {self.schema!r} at {self.location} holds tables that are not a clientreg index ({shown}); "
                "clientreg leaves them as they are. Name another schema with ?schema=NAME"
            )
        found = cur.execute(self._sql("SELECT max(version) FROM {s}.clientreg_migrations")).fetchone()
        version = None if found is None else found[0]
        if version is None:
            return None if tables == {"clientreg_migrations"} else 0
        return int(version)

    def _migrate(self, cur: psycopg.Cursor[TupleRow]) -> int:
        """Create or upgrade the layout, one version at a time, under clientreg's advisory lock for the schema."""
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, _lock_key("schema", self.schema)))
        version = self._installed_version(cur)  # again, under the lock: another process may have done it
        if version is not None and version >= SCHEMA_VERSION:
            return version
        if version is None:
            exists = cur.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (self.schema,)).fetchone()
            if exists is None:
                cur.execute(sql.SQL("CREATE SCHEMA {}").format(self._s))
            cur.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {s}.clientreg_migrations (version integer PRIMARY KEY, "
                    "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
            )
            version = 0
        for migration in MIGRATIONS:
            if migration.version <= version:
                continue
            for statement in migration.statements:
                cur.execute(self._sql(statement))
            cur.execute(
                self._sql("INSERT INTO {s}.clientreg_migrations (version, description) VALUES (%s, %s)"),
                (migration.version, migration.description),
            )
        return SCHEMA_VERSION

    # ---- transactions, retries and errors ----

    def _transaction(
        self, conn: psycopg.Connection[TupleRow], work: Callable[[psycopg.Cursor[TupleRow]], _T], *, write: bool
    ) -> _T:
        """Run ``work`` in one transaction with this call's lock and statement timeouts.

        A write whose COMMIT got no answer (the connection was lost on the way) raises
        `_CommitInDoubt`: it may have been kept, and `_resolve` finds out.
        """
        statement_timeout = self._retry_for
        if self.deadline is not None:
            statement_timeout = min(statement_timeout, self.deadline - time.monotonic())
        statement_timeout = max(statement_timeout, _MIN_STATEMENT_TIMEOUT)
        with conn.cursor() as cur:
            try:
                cur.execute(
                    "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
                    (f"{int(statement_timeout * 1000)}ms", f"{max(int(self._busy_timeout * 1000), 1)}ms"),
                )
                result = work(cur)
            except BaseException:
                if not conn.closed and not conn.broken:
                    try:
                        conn.rollback()
                    except psycopg.Error:
                        pass
                raise
        try:
            conn.commit()
        except psycopg.Error as exc:
            if write and isinstance(result, _Applied) and (conn.broken or conn.closed or exc.sqlstate is None):
                self._drop_connection()
                raise _CommitInDoubt(result.xid, result.drifts) from None
            raise
        return result

    def _run(self, work: Callable[[psycopg.Cursor[TupleRow]], _T], *, write: bool) -> _T:
        """``work`` in a transaction, retried while a lock is busy or a deadlock broke it, within the limits."""
        if write and self.read_only:
            raise IndexUnavailableError(f"the clientreg index at {self.location} was opened read-only")
        limit = time.monotonic() + self._retry_for
        delay = 0.02
        with self._lock:
            reconnected = False
            while True:
                reused = self._conn is not None and not self._conn.closed and not self._conn.broken
                try:
                    return self._transaction(self._connection(), work, write=write)
                except _RETRIED as exc:
                    deadline = limit if self.deadline is None else min(limit, self.deadline)
                    remaining = deadline - time.monotonic()
                    if remaining > 0:
                        time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
                        delay = min(delay * 2, 0.25)
                        continue
                    raise IndexUnavailableError(
                        f"cannot use the clientreg index at {self.location}: {self._reason(exc)}"
                    ) from None
                except psycopg.OperationalError as exc:
                    conn = self._conn
                    lost = conn is None or conn.closed or conn.broken
                    if lost and reused and not reconnected:
                        # An idle connection the server dropped (a restart, pg_terminate_backend, an
                        # idle timeout): nothing of this transaction was kept, so run it once more on
                        # a new one rather than report an outage that is already over.
                        logger.debug(
                            "clientreg: reconnecting to the key index %s: %s", self.location, self._reason(exc)
                        )
                        self._drop_connection()
                        reconnected = True
                        continue
                    raise self._error(exc) from None
                except psycopg.Error as exc:
                    raise self._error(exc) from None

    def _error(self, exc: psycopg.Error) -> IndexUnavailableError:
        """Our error for a driver's: the connection is dropped when it was lost; the message is scrubbed."""
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._drop_connection()
        if isinstance(exc, errors.QueryCanceled):
            return IndexUnavailableError(
                f"the clientreg index at {self.location} did not answer in time ({self._reason(exc)})"
            )
        if isinstance(exc, errors.InsufficientPrivilege):
            return IndexUnavailableError(
                f"cannot use the clientreg index at {self.location}: {self._reason(exc)}. The role needs USAGE on "
                f"schema {self.schema} and SELECT, INSERT, UPDATE, DELETE on its tables; creating or upgrading "
                "them needs their owner (clientreg migrate --index URL, run as the owner; see docs/fleet.md)"
            )
        if isinstance(exc, errors.UndefinedTable | errors.InvalidSchemaName):
            self._drop_connection()  # the tables went away under us: check (and create) them again
        return IndexUnavailableError(f"cannot use the clientreg index at {self.location}: {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        """A driver's message on one line, with the URL and any password scrubbed out."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        return self._where.scrub(text)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and os.getpid() == self._pid:
            _close_quietly(conn)

    # ---- writes ----

    def apply(self, uses: Iterable[ConfigUse] = (), events: Iterable[NewEvent] = ()) -> list[Drift]:
        """Write one batch in one transaction: configs upserted with their uses added, heads, events, hosts.

        Any number of processes on any number of hosts may write at once without losing or
        doubling a use. Returns the drifts found.
        """
        uses, events = [_clean_use(u) for u in uses], [_clean_event(e) for e in events]
        if not uses and not events:
            return []
        with self._lock:
            if self._in_doubt:
                uses, events = self._settle(uses, events)
                if not uses and not events:
                    return []
            try:
                return self._run(lambda cur: self._apply(cur, uses, events), write=True).drifts
            except _CommitInDoubt as doubt:
                return self._resolve(doubt, uses, events)

    def _transaction_id(self, cur: psycopg.Cursor[TupleRow]) -> str:
        found = cur.execute("SELECT pg_current_xact_id()::text").fetchone()
        assert found is not None
        return str(found[0])

    def _apply(self, cur: psycopg.Cursor[TupleRow], uses: list[ConfigUse], extra: list[NewEvent]) -> _Applied:
        xid = self._transaction_id(cur)
        inserted, forms = self._upsert_configs(cur, uses)
        profiles = sorted({u.profile for u in uses if u.profile is not None})
        keys = sorted({_lock_key(self.schema, p) for p in profiles})
        if keys:  # one order for every writer: heads are read and written under these locks only
            cur.execute("SELECT pg_advisory_xact_lock(%s, k) FROM unnest(%b::int4[]) AS k", (LOCK_CLASS, keys))
        heads = self._read_heads(cur, profiles, sorted({u.host for u in uses}))
        # Every config of the batch is stored now (upserted above): `plan_batch` needs to know
        # that, and the canonical JSON of one a drift starts from, which the batch holds. Only
        # the configs the heads name outside the batch are read. (The config rows the plan
        # computes are not written here: the upsert above merged them in the database.)
        configs = self._read_configs(
            cur, ({h["config_hash"] for h in heads.values()} | _head_hashes(heads)) - forms.keys()
        )
        for config_hash, canonical in forms.items():
            configs[config_hash] = {"profiles": [], "hosts": [], "last_seen": -math.inf, "uses": 0, "config": canonical}
        plan = plan_batch(uses, extra, configs.get, heads.get)
        firsts: dict[str, NewEvent] = {}
        for use in sorted(uses, key=lambda u: u.until):
            if use.config_hash in inserted and use.config_hash not in firsts:
                firsts[use.config_hash] = NewEvent(
                    use.time, use.config_hash, use.profile, "first_seen", use.host, use.pid
                )
        self._write_heads(cur, plan.heads)
        self._upsert_events(cur, [*firsts.values(), *plan.events], additive=True)
        self._upsert_hosts(cur, plan.hosts)
        return _Applied(xid, plan.drifts)

    def _upsert_configs(
        self, cur: psycopg.Cursor[TupleRow], uses: Sequence[ConfigUse]
    ) -> tuple[set[str], dict[str, str]]:
        """Add the batch's uses to its configs (creating those not yet stored).

        Returns the hashes it created, and the canonical JSON of every config of the batch.
        """
        merged: dict[str, dict[str, Any]] = {}
        for use in uses:
            found = merged.get(use.config_hash)
            if found is None:
                canonical = use.config if isinstance(use.config, str) else _encode(_sorted(use.config))
                found = merged[use.config_hash] = {
                    "provider": use.provider,
                    "canonical": canonical,
                    "profiles": [],
                    "hosts": [],
                    "first": use.time,
                    "last": use.until,
                    "uses": 0,
                }
            if use.profile is not None and use.profile not in found["profiles"]:
                found["profiles"].append(use.profile)
            if use.host and use.host not in found["hosts"]:
                found["hosts"].append(use.host)
            found["first"] = min(found["first"], use.time)
            found["last"] = max(found["last"], use.until)
            found["uses"] += use.uses
        if not merged:
            return set(), {}
        ordered = sorted(merged.items())  # every writer locks rows in hash order: no deadlock between them
        lists: dict[tuple[str, ...], str] = {}  # a batch holds few distinct lists of profiles and of hosts

        def encoded(names: list[str]) -> str:
            key = tuple(names)
            text = lists.get(key)
            if text is None:
                text = lists[key] = _encode(names)
            return text

        columns = (
            [h for h, _ in ordered],
            [m["provider"] for _, m in ordered],
            [encoded(m["profiles"]) for _, m in ordered],
            [encoded(m["hosts"]) for _, m in ordered],
            [m["first"] for _, m in ordered],
            [m["last"] for _, m in ordered],
            [m["uses"] for _, m in ordered],
        )
        statement = self._sql(
            "INSERT INTO {s}.configs AS c (config_hash, provider, profiles, hosts, first_seen, last_seen, uses) "
            "SELECT t.h, t.p, ARRAY(SELECT jsonb_array_elements_text(t.pr::jsonb)), "
            "ARRAY(SELECT jsonb_array_elements_text(t.ho::jsonb)), to_timestamp(t.f), to_timestamp(t.l), t.u "
            "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::float8[], %b::float8[], %b::int8[]) "
            "AS t (h, p, pr, ho, f, l, u) "
            "ORDER BY t.h "
            "ON CONFLICT (config_hash) DO UPDATE SET "
            "uses = c.uses + EXCLUDED.uses, "
            "first_seen = LEAST(c.first_seen, EXCLUDED.first_seen), "
            "last_seen = GREATEST(c.last_seen, EXCLUDED.last_seen), "
            "profiles = c.profiles || ARRAY(SELECT p FROM unnest(EXCLUDED.profiles) WITH ORDINALITY AS x (p, n) "
            "WHERE p <> ALL (c.profiles) ORDER BY n), "
            "hosts = c.hosts || ARRAY(SELECT h FROM unnest(EXCLUDED.hosts) WITH ORDINALITY AS x (h, n) "
            "WHERE h <> ALL (c.hosts) ORDER BY n) "
            "RETURNING config_hash, (xmax = 0)"
        )
        # One statement whose rows are inserted in hash order.
        rows = cur.execute(statement, columns).fetchall()
        inserted = {config_hash for config_hash, created in rows if created}
        if inserted:
            # Only the writer that created a config stores its form (in the same transaction: no
            # other writer sees the config before its form), so a use of a known config parses no JSON.
            forms = [merged[h]["canonical"] for h in sorted(inserted)]
            cur.execute(
                self._sql(
                    "INSERT INTO {s}.canonical_forms (config_hash, canonical, config) "
                    "SELECT t.h, t.c, CASE WHEN t.n THEN NULL ELSE t.c::jsonb END "
                    "FROM unnest(%b::text[], %b::text[], %b::bool[]) AS t (h, c, n) "
                    "ORDER BY t.h ON CONFLICT (config_hash) DO NOTHING"
                ),
                # The text once; jsonb cannot hold NUL (text can): such a config has no jsonb copy.
                (sorted(inserted), forms, ["\\u0000" in c for c in forms]),
            )
        return inserted, {h: m["canonical"] for h, m in merged.items()}

    def _read_heads(
        self, cur: psycopg.Cursor[TupleRow], profiles: list[str], hosts: list[str]
    ) -> dict[str, dict[str, Any]]:
        """The stored heads of ``profiles`` with the per-host heads of ``hosts``, shaped as `plan_batch` reads them."""
        if not profiles:
            return {}
        heads: dict[str, dict[str, Any]] = {}
        for profile, config_hash, last_seen in cur.execute(
            self._sql(
                "SELECT profile, config_hash, date_part('epoch', last_seen) FROM {s}.profiles WHERE profile = ANY(%s)"
            ),
            (profiles,),
        ):
            heads[profile] = {"config_hash": config_hash, "last_seen": last_seen, "hosts": {}}
        for profile, host, config_hash, since, last_seen in cur.execute(
            self._sql(
                "SELECT profile, host, config_hash, date_part('epoch', since), "
                "date_part('epoch', last_seen) FROM {s}.profile_heads "
                "WHERE profile = ANY(%s) AND host = ANY(%s)"
            ),
            (profiles, hosts),
        ):
            head = heads.setdefault(profile, {"config_hash": config_hash, "last_seen": last_seen, "hosts": {}})
            head["hosts"][host] = {"config_hash": config_hash, "since": since, "last_seen": last_seen}
        return heads

    def _read_configs(self, cur: psycopg.Cursor[TupleRow], hashes: set[str]) -> dict[str, dict[str, Any]]:
        """Stored configs in the shape `plan_batch` reads (``config`` as canonical JSON text)."""
        found: dict[str, dict[str, Any]] = {}
        if not hashes:
            return found
        rows = cur.execute(
            self._sql(f"SELECT {_CONFIG_COLUMNS} FROM {_CONFIGS_AND_FORMS} WHERE c.config_hash = ANY(%s)"),
            (sorted(hashes),),
        )
        for config_hash, provider, profiles, first, last, uses, hosts, canonical in rows:
            found[config_hash] = {
                "provider": provider,
                "profiles": list(profiles),
                "hosts": list(hosts),
                "first_seen": first,
                "last_seen": last,
                "uses": uses,
                "config": canonical,
            }
        return found

    def _write_heads(self, cur: psycopg.Cursor[TupleRow], heads: dict[str, dict[str, Any]]) -> None:
        if not heads:
            return
        ordered = sorted(heads.items())
        cur.execute(
            self._sql(
                "INSERT INTO {s}.profiles AS p (profile, config_hash, last_seen) "
                "SELECT t.p, t.h, to_timestamp(t.l) FROM unnest(%b::text[], %b::text[], %b::float8[]) AS t (p, h, l) "
                "ORDER BY t.p "
                "ON CONFLICT (profile) DO UPDATE SET config_hash = EXCLUDED.config_hash, last_seen = EXCLUDED.last_seen"
            ),
            _columns([(profile, head["config_hash"], head["last_seen"]) for profile, head in ordered], 3),
        )
        per_host = [
            (profile, host, h["config_hash"], h["since"], h["last_seen"])
            for profile, head in ordered
            for host, h in sorted(head.get("hosts", {}).items())
        ]
        if per_host:
            cur.execute(
                self._sql(
                    "INSERT INTO {s}.profile_heads AS h (profile, host, config_hash, since, last_seen) "
                    "SELECT t.p, t.o, t.h, to_timestamp(t.s), to_timestamp(t.l) "
                    "FROM unnest(%b::text[], %b::text[], %b::text[], %b::float8[], %b::float8[]) AS t (p, o, h, s, l) "
                    "ORDER BY t.p, t.o "
                    "ON CONFLICT (profile, host) DO UPDATE SET config_hash = EXCLUDED.config_hash, "
                    "since = EXCLUDED.since, last_seen = EXCLUDED.last_seen"
                ),
                _columns(per_host, 5),
            )

    def _upsert_events(self, cur: psycopg.Cursor[TupleRow], events: list[NewEvent], *, additive: bool) -> None:
        """Merge events into rows of the same id: counts added (or, for an import, the larger kept), times widened."""
        if not events:
            return
        count = sql.SQL("e.count + EXCLUDED.count" if additive else "GREATEST(e.count, EXCLUDED.count)")
        # Events of one id (one identity and window: `coalesce`) made one row here, as the
        # statement below merges them with the stored row: counts added (an import: the
        # larger kept), times widened. One id computed per event, one detail encoded per row.
        merged: dict[str, list[Any]] = {}
        for e in events:
            key = event_id(e)
            row = merged.get(key)
            if row is None:
                detail = None if e.detail is None else _encode(dict(e.detail))
                merged[key] = [key, e.config_hash, e.profile, e.kind, e.host, e.pid, detail, e.count, e.time, e.until]
            else:
                row[7] = row[7] + e.count if additive else max(row[7], e.count)
                row[8], row[9] = min(row[8], e.time), max(row[9], e.until)
        rows = [merged[key] for key in sorted(merged)]
        statement = sql.SQL(
            "INSERT INTO {s}.events AS e "
            "(event_id, config_hash, profile, kind, host, pid, detail, count, time, last_time) "
            "SELECT t.i, t.h, t.p, t.k, t.o, t.d, t.j::jsonb, t.n, to_timestamp(t.f), to_timestamp(t.l) "
            "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::int4[], %b::text[], "
            "%b::int8[], %b::float8[], %b::float8[]) AS t (i, h, p, k, o, d, j, n, f, l) "
            "ORDER BY t.i "
            "ON CONFLICT (event_id) DO UPDATE SET count = {count}, "
            "time = LEAST(e.time, EXCLUDED.time), last_time = GREATEST(e.last_time, EXCLUDED.last_time)"
        ).format(s=self._s, count=count)
        cur.execute(statement, _columns(rows, 10))

    def _upsert_hosts(self, cur: psycopg.Cursor[TupleRow], hosts: dict[str, dict[str, Any]]) -> None:
        if not hosts:
            return
        cur.execute(
            self._sql(
                "INSERT INTO {s}.hosts AS h (host, key_id, first_seen, last_seen) "
                "SELECT t.o, t.k, to_timestamp(t.f), to_timestamp(t.l) "
                "FROM unnest(%b::text[], %b::text[], %b::float8[], %b::float8[]) AS t (o, k, f, l) ORDER BY t.o "
                "ON CONFLICT (host) DO UPDATE SET first_seen = LEAST(h.first_seen, EXCLUDED.first_seen), "
                "last_seen = GREATEST(h.last_seen, EXCLUDED.last_seen), "
                "key_id = CASE WHEN EXCLUDED.key_id IS NOT NULL AND EXCLUDED.last_seen >= h.last_seen "
                "THEN EXCLUDED.key_id ELSE COALESCE(h.key_id, EXCLUDED.key_id) END"
            ),
            _columns([(host, v["key_id"], v["first_seen"], v["last_seen"]) for host, v in sorted(hosts.items())], 4),
        )

    # ---- a COMMIT without an answer ----

    def _resolve(self, doubt: _CommitInDoubt, uses: list[ConfigUse], events: list[NewEvent]) -> list[Drift]:
        """Ask the server (reconnecting, within the time allowed) whether the unanswered COMMIT took effect."""
        limit = time.monotonic() + self._retry_for
        deadline = limit if self.deadline is None else min(limit, self.deadline)
        delay = 0.05
        while True:
            try:
                status = self._xact_status(doubt.xid)
            except IndexUnavailableError:
                status = None
            if status == "committed":
                return doubt.drifts
            if status == "aborted":
                raise IndexUnavailableError(
                    f"a write to the clientreg index at {self.location} was interrupted and not kept; it is retried"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Still unknown: the caller keeps the records and sends them again; whether this
                # write took effect is asked before the next one, so they are not counted twice.
                self._in_doubt.append(_InDoubt(doubt.xid, uses, events))
                raise IndexUnavailableError(
                    f"lost the connection to the clientreg index at {self.location} while committing; "
                    "whether that write took effect is checked when it is back"
                )
            time.sleep(min(remaining, delay))
            delay = min(delay * 2, 1.0)

    def _final_status(self, xid: str) -> str | None:
        """The status of transaction ``xid``, waiting (within the time allowed) while its session finishes it."""
        limit = time.monotonic() + self._retry_for
        deadline = limit if self.deadline is None else min(limit, self.deadline)
        while True:
            status = self._xact_status(xid)
            if status != "in progress" or time.monotonic() >= deadline:
                return status
            time.sleep(0.05)

    def _xact_status(self, xid: str) -> str | None:
        def ask(cur: psycopg.Cursor[TupleRow]) -> str | None:
            found = cur.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
            return None if found is None else found[0]

        with self._lock:
            try:
                return self._transaction(self._connection(), ask, write=False)
            except psycopg.Error as exc:
                raise self._error(exc) from None

    def _settle(self, uses: list[ConfigUse], events: list[NewEvent]) -> tuple[list[ConfigUse], list[NewEvent]]:
        """Before a write: settle writes left in doubt; what one that did commit held is not counted again.

        The caller sends the records of a write that failed again (merged with newer ones): for
        each one that in fact committed, its uses, builds and events are taken off this batch.
        """
        settled: list[_InDoubt] = []
        for doubt in self._in_doubt:
            status = self._final_status(doubt.xid)  # raises while the server is still away
            if status == "committed":
                uses, events = _without(uses, events, doubt)
                settled.append(doubt)
            elif status == "aborted":
                settled.append(doubt)  # not kept: its records are in this batch again
            elif status == "in progress":  # the old session is still finishing: ask again next time
                raise IndexUnavailableError(
                    f"a write to the clientreg index at {self.location} is still being settled; retried"
                )
            else:
                settled.append(doubt)
                logger.warning(
                    "clientreg: the outcome of a write to the key index %s cannot be known any more; its records "
                    "are written again and may count twice",
                    self.location,
                )
        self._in_doubt = [d for d in self._in_doubt if d not in settled]
        return uses, events

    def prune(self, older_than_seconds: float, *, dry_run: bool = False, now: float | None = None) -> list[str]:
        """Remove configs not used for ``older_than_seconds``, with their events and heads; return their hashes."""
        cutoff = (time.time() if now is None else now) - older_than_seconds

        def candidates(cur: psycopg.Cursor[TupleRow]) -> list[str]:
            rows = cur.execute(
                self._sql("SELECT config_hash FROM {s}.configs WHERE last_seen < to_timestamp(%s) ORDER BY 1"),
                (cutoff,),
            )
            return [h for (h,) in rows]

        def remove(cur: psycopg.Cursor[TupleRow]) -> list[str]:
            rows = cur.execute(
                self._sql("DELETE FROM {s}.configs WHERE last_seen < to_timestamp(%s) RETURNING config_hash"),
                (cutoff,),
            )
            gone = sorted(h for (h,) in rows)
            if gone:
                for table in ("events", "profiles", "profile_heads", "imports"):
                    statement = sql.SQL("DELETE FROM {s}.{t} WHERE config_hash = ANY(%s)")
                    cur.execute(statement.format(s=self._s, t=sql.Identifier(table)), (gone,))
            return gone

        return self._run(candidates, write=False) if dry_run else self._run(remove, write=True)

    def prune_events(self, older_than_seconds: float, *, dry_run: bool = False, now: float | None = None) -> int:
        """Remove events whose last occurrence is older than ``older_than_seconds``; return how many."""
        cutoff = (time.time() if now is None else now) - older_than_seconds

        def count(cur: psycopg.Cursor[TupleRow]) -> int:
            found = cur.execute(
                self._sql("SELECT count(*) FROM {s}.events WHERE last_time < to_timestamp(%s)"), (cutoff,)
            ).fetchone()
            return 0 if found is None else int(found[0])

        def remove(cur: psycopg.Cursor[TupleRow]) -> int:
            cur.execute(self._sql("DELETE FROM {s}.events WHERE last_time < to_timestamp(%s)"), (cutoff,))
            return max(cur.rowcount, 0)

        return self._run(count, write=False) if dry_run else self._run(remove, write=True)

    # ---- imports ----

    def import_records(self, records: Iterable[ImportedConfig], source: str) -> ImportResult:
        """Merge configs exported from another index as coming from ``source``; safe to repeat.

        Configs are created or widened (profiles, hosts, first and last seen); their uses are
        added minus what an earlier import from ``source`` already added (so importing the
        same history twice, or a later export of the same index, counts each use once);
        events are merged by id, keeping the larger count.
        """
        from registry.index.fleet import ImportResult

        batch = list(records)
        result = ImportResult(source)
        for first in range(0, len(batch), 500):
            part = batch[first : first + 500]

            def work(cur: psycopg.Cursor[TupleRow], part: list[ImportedConfig] = part) -> ImportResult:
                return self._import(cur, part, source)

            result = result.plus(self._run(work, write=True))
        return result

    def _import(self, cur: psycopg.Cursor[TupleRow], batch: list[ImportedConfig], source: str) -> ImportResult:
        from registry.index.fleet import ImportResult

        batch = sorted(batch, key=lambda r: r.record.config_hash)
        hashes = [r.record.config_hash for r in batch]
        before = {
            h: u
            for h, u in cur.execute(
                self._sql(
                    "SELECT config_hash, uses FROM {s}.imports WHERE source = %s AND config_hash = ANY(%s) "
                    "ORDER BY config_hash FOR UPDATE"
                ),
                (source, hashes),
            )
        }
        added_uses = 0
        uses: list[ConfigUse] = []
        for item in batch:
            r = item.record
            delta = max(r.uses - before.get(r.config_hash, 0), 0)
            added_uses += delta
            profiles: list[str | None] = [*r.profiles] or [None]
            hosts = list(r.hosts) or sorted({e.host for e in item.events}) or [""]
            for n, profile in enumerate(profiles):
                for m, host in enumerate(hosts):
                    first = n == 0 and m == 0
                    uses.append(
                        ConfigUse(
                            r.config_hash,
                            r.provider,
                            item.canonical,
                            profile,
                            r.first_seen,
                            delta if first else 0,
                            None,
                            host=host,
                            pid=0,
                            last_time=r.last_seen,
                        )
                    )
        inserted, _ = self._upsert_configs(cur, uses)
        cur.execute(
            self._sql(
                "INSERT INTO {s}.imports AS i (source, config_hash, uses) "
                "SELECT %s, t.h, t.u FROM unnest(%b::text[], %b::int8[]) AS t (h, u) ORDER BY t.h "
                "ON CONFLICT (source, config_hash) DO UPDATE SET uses = GREATEST(i.uses, EXCLUDED.uses), "
                "imported_at = now()"
            ),
            (source, *_columns([(item.record.config_hash, item.record.uses) for item in batch], 2)),
        )
        events = [
            NewEvent(
                e.time,
                e.config_hash,
                e.profile,
                cast(EventKind, e.kind),
                e.host,
                e.pid,
                e.detail,
                e.count,
                e.last_time,
            )
            for item in batch
            for e in item.events
        ]
        self._upsert_events(cur, events, additive=False)
        # The hosts the history names, as they were then: first and last event, the key of their last build.
        named: dict[str, dict[str, Any]] = {}
        for e in sorted(events, key=lambda e: e.until):
            found = named.setdefault(e.host, {"first_seen": e.time, "last_seen": e.until, "key_id": None})
            found["first_seen"], found["last_seen"] = min(found["first_seen"], e.time), max(found["last_seen"], e.until)
            key_id = (e.detail or {}).get("key_id") if e.kind in ("built", "warm") else None
            if isinstance(key_id, str):
                found["key_id"] = key_id
        self._upsert_hosts(cur, {h: v for h, v in named.items() if h})
        return ImportResult(source, len(batch), len(inserted), added_uses, len(events))

    # ---- reads ----

    def _read(self, work: Callable[[psycopg.Cursor[TupleRow]], _T]) -> _T:
        return self._run(work, write=False)

    def get(self, config_hash: str) -> ConfigRecord | None:
        """The config with exactly this hash, or None."""

        def work(cur: psycopg.Cursor[TupleRow]) -> Any:
            return cur.execute(
                self._sql(f"SELECT {_CONFIG_COLUMNS} FROM {_CONFIGS_AND_FORMS} WHERE c.config_hash = %s"),
                (config_hash,),
            ).fetchone()

        row = self._read(work)
        return None if row is None else _config_record(row)

    def _hashes_starting_with(self, prefix: str) -> list[str]:
        def work(cur: psycopg.Cursor[TupleRow]) -> list[str]:
            rows = cur.execute(
                self._sql(
                    "SELECT config_hash FROM {s}.configs WHERE config_hash >= %s AND config_hash < %s ORDER BY 1"
                ),
                (prefix, prefix + "g"),
            )
            return [h for (h,) in rows]

        return self._read(work)

    def _filters(
        self, profile: str | None, provider: str | None, since: float | None, host: str | None
    ) -> tuple[sql.Composable, list[Any]]:
        where: list[sql.Composable] = []
        params: list[Any] = []
        if provider is not None:
            where.append(sql.SQL("c.provider = %s"))
            params.append(provider)
        if profile is not None:
            where.append(sql.SQL("c.profiles @> ARRAY[%s]::text[]"))
            params.append(_text(profile))
        if since is not None:
            where.append(sql.SQL("c.last_seen >= to_timestamp(%s)"))
            params.append(since)
        if host is not None:
            where.append(sql.SQL("c.hosts @> ARRAY[%s]::text[]"))
            params.append(_text(host))
        if not where:
            return sql.SQL(""), params
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where), params

    def _select_configs(
        self,
        columns: str,
        profile: str | None,
        provider: str | None,
        since: float | None,
        limit: int | None,
        host: str | None,
        row_factory: RowFactory[Any] = tuple_row,
    ) -> list[Any]:
        where, params = self._filters(profile, provider, since, host)
        source = _CONFIGS_AND_FORMS if "f.canonical" in columns else _CONFIGS
        statement = sql.SQL("SELECT ") + sql.SQL(columns) + self._sql(" FROM " + source) + where
        statement += sql.SQL(" ORDER BY c.first_seen DESC, c.config_hash DESC")
        if limit is not None:
            statement += sql.SQL(" LIMIT %s")
            params.append(min(max(int(limit), 0), _MAX_LIMIT))

        def work(cur: psycopg.Cursor[TupleRow]) -> list[Any]:
            with cur.connection.cursor(row_factory=row_factory) as rows:
                return rows.execute(statement, params).fetchall()

        found = self._read(work)
        found.reverse()  # oldest first
        return found

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
        """Configs in order of ``first_seen`` (oldest first unless ``newest_first``), filtered in the database."""
        rows = self._select_configs(_CONFIG_COLUMNS, profile, provider, since, limit, host)
        records = [_config_record(row) for row in rows]
        return records[::-1] if newest_first else records

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
        """`list_configs` without the configs: five columns per row, no JSON decoded."""
        rows = self._select_configs(_SUMMARY_COLUMNS, profile, provider, since, limit, host, _summary_row)
        return rows[::-1] if newest_first else rows

    def history_rows(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        host: str | None = None,
    ) -> list[HistoryRow]:
        """`list_summaries` as ``clientreg history`` prints it, shaped by the server.

        The short hash, the profiles joined and whole seconds (``trunc``, as ``int()`` of the
        same float): a third of the bytes and no array or float parsing for 100,000 rows.
        """
        return self._select_configs(_HISTORY_COLUMNS, profile, provider, since, limit, host)

    def config_lines(
        self,
        *,
        profile: str | None = None,
        provider: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        host: str | None = None,
    ) -> Iterator[str]:
        """`list_configs` as JSON text, each config spliced in as the stored canonical JSON (never decoded)."""
        for row in self._select_configs(_CONFIG_COLUMNS, profile, provider, since, limit, host):
            yield _config_line(row)

    def events(self, config_hash: str) -> list[EventRecord]:
        """The events of one config, oldest first."""

        def work(cur: psycopg.Cursor[TupleRow]) -> list[Any]:
            return cur.execute(
                self._sql(f"SELECT {_EVENT_COLUMNS} FROM {{s}}.events WHERE config_hash = %s"), (config_hash,)
            ).fetchall()

        records = [_event_record(row) for row in self._read(work)]
        records.sort(key=event_order)
        return records

    def recent_profiles(self, limit: int = 20, max_age_seconds: float | None = None) -> list[RecentProfile]:
        """Profiles by when they were last used, newest first, with the config each last resolved to."""
        cutoff = None if max_age_seconds is None else time.time() - max_age_seconds

        def work(cur: psycopg.Cursor[TupleRow]) -> list[Any]:
            return cur.execute(
                self._sql(
                    "SELECT p.profile, p.config_hash, date_part('epoch', p.last_seen) FROM {s}.profiles p "
                    "WHERE EXISTS (SELECT 1 FROM {s}.configs c WHERE c.config_hash = p.config_hash) "
                    "AND (%s::float8 IS NULL OR p.last_seen >= to_timestamp(%s::float8)) "
                    "ORDER BY p.last_seen DESC, p.profile LIMIT %s"
                ),
                (cutoff, cutoff, max(limit, 0)),
            ).fetchall()

        return [RecentProfile(profile, config_hash, last_seen) for profile, config_hash, last_seen in self._read(work)]

    def host_heads(self, profile: str | None = None) -> list[HostHead]:
        """The config each profile (or only ``profile``) resolves to on each host, by profile and host."""

        def work(cur: psycopg.Cursor[TupleRow]) -> list[Any]:
            return cur.execute(
                self._sql(
                    "SELECT profile, host, config_hash, date_part('epoch', since), "
                    "date_part('epoch', last_seen) FROM {s}.profile_heads "
                    "WHERE %s::text IS NULL OR profile = %s ORDER BY profile, host"
                ),
                (profile, profile),
            ).fetchall()

        return [HostHead(*row) for row in self._read(work)]

    def hosts(self) -> list[HostRecord]:
        """The hosts that wrote to the index, by name, with their fingerprint key ids."""

        def work(cur: psycopg.Cursor[TupleRow]) -> list[Any]:
            return cur.execute(
                self._sql(
                    "SELECT host, date_part('epoch', first_seen), date_part('epoch', last_seen), "
                    "key_id FROM {s}.hosts ORDER BY host"
                )
            ).fetchall()

        return [HostRecord(*row) for row in self._read(work)]

    def export(self) -> Iterator[str]:
        """JSON lines, one per config (oldest first) with its ``events`` in order; read in one snapshot."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor(name="clientreg_export") as cur:
                    cur.itersize = 1_000
                    cur.execute(self._export_statement())
                    for row in cur:
                        record = _config_record(row[:8])
                        events = sorted((_event_record(tuple(e)) for e in row[8]), key=event_order)
                        yield _encode({**record.to_dict(), "events": [e.to_dict() for e in events]})
            except psycopg.Error as exc:
                raise self._error(exc) from None

    def _export_statement(self) -> sql.Composed:
        return self._sql(
            "SELECT c.config_hash, c.provider, c.profiles, date_part('epoch', c.first_seen), "
            "date_part('epoch', c.last_seen), c.uses, c.hosts, f.canonical, "
            "(SELECT coalesce(json_agg(json_build_array(e.event_id, date_part('epoch', e.time), "
            "e.config_hash, e.profile, e.kind, e.host, e.pid, e.detail, e.count, "
            "date_part('epoch', e.last_time))), '[]') FROM {s}.events e WHERE e.config_hash = c.config_hash) "
            f"FROM {_CONFIGS_AND_FORMS} ORDER BY c.first_seen, c.config_hash"
        )

    # ---- lifetime ----

    def close(self) -> None:
        """Close the connection (idempotent; in a forked child, the parent's is left to the parent)."""
        with self._lock:
            self._drop_connection()


# ---- helpers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Applied:
    xid: str
    drifts: list[Drift]


class _CommitInDoubt(Exception):
    """The connection was lost while COMMIT was on its way: the write may or may not have been kept."""

    def __init__(self, xid: str, drifts: list[Drift]) -> None:
        super().__init__(xid)
        self.xid = xid
        self.drifts = drifts


def _columns(rows: Sequence[Sequence[Any]], width: int) -> tuple[list[Any], ...]:
    """Rows as ``width`` column lists: one array parameter each, so a batch is one statement and one round trip."""
    if not rows:
        return tuple([] for _ in range(width))
    return tuple(list(column) for column in zip(*rows, strict=True))


def _summary_row(cursor: Any) -> RowMaker[ConfigSummary]:
    """Rows made into `ConfigSummary` as they are read: the one read that may return 100,000 of them."""
    make = tuple.__new__

    def summary(values: Sequence[Any]) -> ConfigSummary:
        config_hash, provider, profiles, first_seen, last_seen, uses = values
        return make(ConfigSummary, (config_hash, provider, tuple(profiles), first_seen, last_seen, uses))

    return summary


def _lock_key(schema: str, name: str) -> int:
    """A 32-bit advisory lock key for ``name`` in ``schema`` (a collision only makes two writers take turns)."""
    return zlib.crc32(f"{schema}\x00{name}".encode("utf-8", "surrogatepass")) - 2**31


def _head_hashes(heads: dict[str, dict[str, Any]]) -> set[str]:
    return {h["config_hash"] for head in heads.values() for h in head.get("hosts", {}).values()}


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: a name with one is stored with U+FFFD in its place."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _has_nul(value: Any) -> bool:
    """Whether a NUL character is in any string of a JSON value (keys included): jsonb cannot hold one."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _clean_detail(detail: Any) -> Any:
    """``detail`` itself, or a copy with U+FFFD for each NUL."""
    if detail is None or not _has_nul(detail):
        return detail
    return json.loads(_encode(detail).replace("\\u0000", "\\ufffd"))


def _clean_use(use: ConfigUse) -> ConfigUse:
    if "\x00" in use.host or "\x00" in (use.profile or "") or "\x00" in use.provider:
        use = replace(
            use,
            host=_text(use.host),
            profile=None if use.profile is None else _text(use.profile),
            provider=_text(use.provider),
        )
    detail = _clean_detail(use.detail)
    return use if detail is use.detail else replace(use, detail=detail)


def _clean_event(event: NewEvent) -> NewEvent:
    if "\x00" in event.host or "\x00" in (event.profile or ""):
        event = replace(event, host=_text(event.host), profile=None if event.profile is None else _text(event.profile))
    detail = _clean_detail(event.detail)
    return event if detail is event.detail else replace(event, detail=detail)


def _config_record(row: Sequence[Any]) -> ConfigRecord:
    config_hash, provider, profiles, first, last, uses, hosts, canonical = row
    try:
        config = json.loads(canonical)
    except ValueError:
        raise BadRowError("its canonical JSON is not JSON") from None
    return ConfigRecord(config_hash, provider, config, tuple(profiles), first, last, uses, tuple(hosts))


def _config_line(row: Sequence[Any]) -> str:
    config_hash, provider, profiles, first, last, uses, hosts, canonical = row
    head = _encode(
        {
            "config_hash": config_hash,
            "provider": provider,
            "profiles": profiles,
            "hosts": hosts,
            "first_seen": first,
            "last_seen": last,
            "uses": uses,
        }
    )
    line: str = head[:-1] + ',"config":' + canonical + "}"
    return line


def _event_record(row: Sequence[Any]) -> EventRecord:
    event, at, config_hash, profile, kind, host, pid, detail, count, last_time = row
    # A JSONB object lists its keys by length: give them in sorted order, as every store does.
    shown = None if detail is None else canonical_order(detail)
    return EventRecord(event, at, config_hash, profile, kind, host, pid, shown, count, last_time)


def _without(uses: list[ConfigUse], events: list[NewEvent], done: _InDoubt) -> tuple[list[ConfigUse], list[NewEvent]]:
    """``uses`` and ``events`` less what the committed write ``done`` already stored."""
    owed_uses: dict[tuple[str, str | None, str], int] = {}
    owed_builds: dict[tuple[str, str | None, str, str | None], int] = {}
    for u in done.uses:
        owed_uses[(u.config_hash, u.profile, u.host)] = owed_uses.get((u.config_hash, u.profile, u.host), 0) + u.uses
        if u.kind is not None:
            built = (u.config_hash, u.profile, u.host, u.kind)
            owed_builds[built] = owed_builds.get(built, 0) + u.count
    owed_events: dict[tuple[Any, ...], int] = {}
    for e in done.events:
        owed_events[e.identity()] = owed_events.get(e.identity(), 0) + e.count

    kept_uses = []
    for u in uses:
        key = (u.config_hash, u.profile, u.host)
        paid = min(owed_uses.get(key, 0), u.uses)
        if paid:
            owed_uses[key] -= paid
            u = replace(u, uses=u.uses - paid)
        if u.kind is not None:
            build = (u.config_hash, u.profile, u.host, u.kind)
            taken = min(owed_builds.get(build, 0), u.count)
            if taken:
                owed_builds[build] -= taken
                if taken == u.count:
                    u = replace(u, kind=None, count=1, detail=None, last_time=None)
                else:
                    u = replace(u, count=u.count - taken)
        if u.uses or u.kind is not None:
            kept_uses.append(u)
    kept_events = []
    for e in events:
        taken = min(owed_events.get(e.identity(), 0), e.count)
        if taken:
            owed_events[e.identity()] -= taken
            if taken == e.count:
                continue
            e = replace(e, count=e.count - taken)
        kept_events.append(e)
    return kept_uses, kept_events


def _close_quietly(conn: psycopg.Connection[TupleRow]) -> None:
    try:
        conn.close()
    except Exception:
        pass
