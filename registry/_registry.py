"""The registry: one SDK client per configuration, built lazily, shared, bounded.

Locking: ``_lock`` guards the registry's tables and pool ownership, and is only ever held
for dictionary work: never while a client or pool is built, never across I/O. A hit takes
no lock at all. Misses on one key are single-flight (`_Flight`); misses on different keys
build in parallel.

Pool ownership: a `_Pool` counts its users (clients in the tables, evicted clients not yet
collected, builds in progress, raw hand-outs). A user is taken under the same lock that
finds the pool; a pool leaves the table only under the lock when its count reaches zero,
and is closed once nothing is in flight on it. So a hand-out is never on a closed pool,
unless `close` closed everything.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import difflib
import functools
import logging
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from registry._counter import Count
from registry.errors import RegistryClosedError, UnknownProfileError, UnsupportedEventLoopError
from registry.locations import IndexTable, index_table_from_file, resolve_index
from registry.pools import close_pool, current_async_library, new_pool, pool_is_idle, pool_loops
from registry.providers import builder_for
from schemas import ProviderSettings

if TYPE_CHECKING:
    from registry.recorder import IndexRecorder
    from schemas import RegistrySettings

log = logging.getLogger("clientreg")

DEFAULT_WARM_LIMIT = 32
DEFAULT_WARM_MAX_AGE = 7 * 24 * 3600.0

_monotonic = time.monotonic
EvictionReason = Literal["lru", "idle", "close"]
BuildHook = Callable[[str, bool, float], object]
"""Called after each build with (provider, is_async, seconds)."""
RegistryTotals = tuple[int, int, int, dict[str, int]]
"""(hits, misses, builds, evictions by reason), as `Registry._totals_reader` reads them."""


@dataclass(frozen=True)
class RegistryStats(Mapping[str, float]):
    """A snapshot of a registry's counters; read as attributes or as keys (``stats["hits"]``).

    ``misses`` counts calls that found no ready client (a caller waiting on another
    thread's build included); ``builds`` counts clients actually constructed (warm builds
    included); ``live_clients`` counts the clients the registry holds (sync and async);
    ``live_transports`` counts open shared HTTP clients (pools); ``event_loops`` counts the
    open event loops on which those pools have connections.
    """

    hits: int
    misses: int
    builds: int
    build_seconds: float
    evictions: int
    live_clients: int
    live_transports: int
    event_loops: int

    def __getitem__(self, key: str) -> float:
        try:
            return float(getattr(self, key)) if key == "build_seconds" else int(getattr(self, key))
        except AttributeError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(asdict(self))

    def __len__(self) -> int:
        return len(asdict(self))


@dataclass(frozen=True)
class RegistryCounters:
    """Finer counters for the metrics module (`Registry._counters`); none is kept on the hit path."""

    evictions: dict[str, int]  # by reason: "lru", "idle", "close"
    live_clients: dict[tuple[str, str], int]  # by (provider, "sync" | "async")
    live_pools: int
    event_loops: int
    build_hooks: list[BuildHook] = field(repr=False)


class _NoCount:
    """Stands in for a use counter when the index is off."""

    __slots__ = ()

    def hit(self) -> None:
        """Count nothing."""


_NO_COUNT = _NoCount()


class _Pool:
    """A shared HTTP client and how many users (clients, builds, raw hand-outs) can reach it."""

    __slots__ = ("http", "key", "pinned", "users")

    def __init__(self, http: Any, key: tuple[str, str, bool]) -> None:
        self.http = http
        self.key = key  # (HTTP library, transport key, is_async)
        self.users = 0
        self.pinned = False  # handed out raw (get_http_client): kept until the registry closes


class _Entry:
    """A built client, its pool, when it was last handed out, and its use counters per profile."""

    __slots__ = ("client", "counters", "handles", "kind", "pool", "provider", "used")

    def __init__(self, client: Any, pool: _Pool, provider: str, *, is_async: bool) -> None:
        self.client = client
        self.pool = pool
        self.provider = provider
        self.kind = "async" if is_async else "sync"
        self.used = -1  # the tick of its last hand-out (see Registry._tick); set when stored
        # profile (None: a settings object) -> its use counter's hit, called on every hand-out:
        # the bound C method itself, one attribute lookup fewer than ``handle.hit()`` (~10 ns).
        self.counters: dict[str | None, Callable[[], object]] = {}
        self.handles: dict[str | None, Any] = {}  # ... and the counter, kept alive while the entry is held

    def count_as(self, profile: str | None, handle: Any) -> Callable[[], object]:
        """Hold ``handle`` (the recorder's counter) for ``profile`` and return its hit; the first one wins."""
        handle = self.handles.setdefault(profile, handle)
        hit: Callable[[], object] = self.counters.setdefault(profile, handle.hit)
        return hit


class _Flight:
    """One in-progress build that other callers for the same key wait on."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class Registry:
    """Hands out one shared SDK client per configuration.

    >>> with Registry(load_settings("clientreg.toml")) as reg:
    ...     client = reg.get_client("fast")          # or reg.get_client(OpenAISettings(...))

    ``max_clients`` bounds the sync clients, and separately the async clients, evicting the
    least recently handed out. ``max_idle`` (seconds) forgets clients not handed out for that
    long; `prune` does it on demand. The key index (``index_path``, else ``$CLIENTREG_INDEX``,
    else the settings' ``[index] url`` or ``path``, else the user data dir; a file path or a
    ``postgresql://`` URL; ``"off"`` disables it) is written in the background.
    ``warm_start=True`` pre-builds, in the background, the clients of the profiles the index
    shows were used most recently.

    After `close`, the registry refuses to hand out clients (`RegistryClosedError`).
    """

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        *,
        max_clients: int | None = None,
        max_idle: float | None = None,
        index_path: str | os.PathLike[str] | None = None,
        warm_start: bool = False,
    ) -> None:
        if max_clients is not None and max_clients < 1:
            raise ValueError("max_clients must be at least 1, or None for no bound")
        if max_idle is not None and not max_idle > 0:
            raise ValueError("max_idle must be a positive number of seconds, or None")
        self._settings = settings
        self._profiles: dict[str, ProviderSettings] | None = dict(settings.profiles) if settings is not None else None
        self._max_clients = max_clients
        self._max_idle = max_idle
        self._ordered = max_clients is not None or max_idle is not None
        self._index_path = index_path
        self._recorder: IndexRecorder | None = None
        self._recorder_resolved = False
        self._build_hooks: list[BuildHook] = []
        self._reset_state()
        self._closed = False
        _live_registries.add(self)
        for hook in _new_registry_hooks:
            try:
                hook(self)
            except Exception:
                log.debug("clientreg: a new-registry hook failed", exc_info=True)
        if max_idle is not None:
            _janitor.watch(self)
        if warm_start:
            threading.Thread(target=self._warm_in_background, name="clientreg-warm", daemon=True).start()

    def _reset_state(self) -> None:
        self._lock = threading.Lock()
        self._sync: OrderedDict[str, _Entry] = OrderedDict()  # config_hash -> entry, least recent first
        self._async: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[tuple[str, bool], _Flight] = {}
        self._pools: dict[tuple[str, str, bool], _Pool] = {}
        self._retired: list[_Pool] = []  # no user left, closed once nothing is in flight on them
        self._released: deque[_Pool] = deque()  # one per evicted client collected (appended lock-free)
        self._hits = Count()  # also the registry's clock: see _tick
        self._not_hits = Count()  # ticks taken by builds and slow-path hand-outs (under the lock), not hits
        self._times: list[tuple[float, int]] = [(_monotonic(), 0)]  # (monotonic time, tick) noted
        self._misses = Count()
        self._builds = Count()
        self._build_ns = 0
        self._evicted: dict[str, int] = {"lru": 0, "idle": 0, "close": 0}
        self._live: dict[tuple[str, str], int] = {}

    # ---- public API ---------------------------------------------------------------------

    def get_client(self, what: ProviderSettings | str) -> Any:
        """Return the shared sync SDK client for a settings object or a profile name."""
        if what.__class__ is str:
            profile: str | None = what
            settings = self._profile(what)
        else:
            profile, settings = None, what  # type: ignore[assignment]
        table = self._sync
        try:
            key = settings.config_hash
            entry = table[key]
            count = entry.counters[profile]
            if self._ordered:  # kept in use order only where eviction or max_idle needs it
                table.move_to_end(key)
        except (KeyError, AttributeError):
            return self._get_slow(settings, profile, is_async=False)
        entry.used = self._hits.hit()  # the hit's tick: when it was last handed out (see _tick)
        count()
        if self._closed:
            raise RegistryClosedError("this Registry was closed; create a new one")
        return entry.client

    def get_async_client(self, what: ProviderSettings | str) -> Any:
        """Return the shared async SDK client for a settings object or a profile name.

        Works anywhere: in a running loop, outside any loop, in any thread. The same client
        object serves every asyncio event loop; each loop gets its own connection pool on its
        first request, closed when that loop shuts down.
        """
        if what.__class__ is str:
            profile: str | None = what
            settings = self._profile(what)
        else:
            profile, settings = None, what  # type: ignore[assignment]
        table = self._async
        try:
            key = settings.config_hash
            entry = table[key]
            count = entry.counters[profile]
            if self._ordered:  # kept in use order only where eviction or max_idle needs it
                table.move_to_end(key)
        except (KeyError, AttributeError):
            return self._get_slow(settings, profile, is_async=True)
        entry.used = self._hits.hit()  # the hit's tick: when it was last handed out (see _tick)
        count()
        if self._closed:
            raise RegistryClosedError("this Registry was closed; create a new one")
        return entry.client

    def get_http_client(self, what: ProviderSettings | str) -> Any:
        """Return the registry's shared sync HTTP client for the transport ``what`` describes.

        For code that takes an HTTP client rather than an SDK client. It is an
        ``httpx2.Client`` for OpenAI and Azure settings on openai 3, an ``httpx.Client`` for
        Groq, Cerebras and openai 1.x/2.x (the library that provider's SDK speaks). Only the transport fields matter
        (proxy, verify, limits); it stays open until the registry closes.
        """
        return self._pinned_pool(what, is_async=False).http

    def get_async_http_client(self, what: ProviderSettings | str) -> Any:
        """Return the registry's shared async HTTP client, usable on every asyncio event loop.

        >>> ChatOpenAI(http_async_client=reg.get_async_http_client(settings), ...)

        An ``httpx2.AsyncClient`` for OpenAI and Azure settings on openai 3, else an
        ``httpx.AsyncClient``; see `get_http_client`.
        """
        return self._pinned_pool(what, is_async=True).http

    def stats(self) -> RegistryStats:
        """Return a snapshot of hits, misses, builds, evictions and what is alive.

        Also closes pools whose clients were all collected, so the figures are current.
        """
        self._tidy()
        with self._lock:
            hits = self._hits.total() - self._not_hits.total()  # under the lock: no tick half taken
            live_clients = len(self._sync) + len(self._async)
            pools = [*self._pools.values(), *self._retired]
            evictions = sum(self._evicted.values())
        return RegistryStats(
            hits=hits,
            misses=self._misses.total(),
            builds=self._builds.total(),
            build_seconds=self._build_ns / 1e9,
            evictions=evictions,
            live_clients=live_clients,
            live_transports=len(pools),
            event_loops=_count_loops(pools),
        )

    def prune(self, older_than: float) -> int:
        """Forget the clients not handed out for ``older_than`` seconds; return how many.

        Nothing is closed under a caller: a forgotten client you still hold keeps working
        (streams included), and its pool is closed only once no client can reach it and
        nothing is in flight on it. Counted as ``idle`` evictions.
        """
        if older_than < 0:
            raise ValueError("older_than must be zero or more seconds")
        forgotten = self._tidy(older_than)
        return forgotten

    def warm(self, *, limit: int = DEFAULT_WARM_LIMIT, max_age: float | None = DEFAULT_WARM_MAX_AGE) -> int:
        """Build the sync clients of the profiles the index shows were used most recently.

        Builds at most ``limit`` profiles last used within ``max_age`` seconds, without any
        network request, and returns how many it built. A profile that no longer exists or
        whose key no longer resolves is skipped with a log note. Warm builds count as
        ``builds``, not misses; the first ``get_client`` for them is a hit.
        """
        recorder = self._recorder_or_none()
        if recorder is None:
            return 0
        built = 0
        for recent in recorder.recent_profiles(limit=limit, max_age=max_age):
            name = recent.profile
            try:
                settings = self._profile(name)
            except UnknownProfileError:
                log.info("clientreg: warm start skips profile %r: no longer in the settings", name)
                continue
            if settings.credential_field() is None:  # a key, a token, or a provider's name will do
                log.info("clientreg: warm start skips profile %r: no credential (its api key does not resolve)", name)
                continue
            if self._warm_one(settings, name):
                built += 1
        return built

    def close(self) -> None:
        """Close every pool the registry owns and refuse further requests.

        Sync pools close now. Each event loop's async pools close on that loop (at once if
        it is the running loop here, else when it next runs), or directly if the loop can no
        longer run. Idempotent; `aclose` also waits for the running loop's pools to close.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._evicted["close"] += len(self._sync) + len(self._async)
            self._live.clear()
            pools = {id(p): p for p in [*self._pools.values(), *self._retired]}
            self._sync, self._async = OrderedDict(), OrderedDict()
            self._pools, self._retired = {}, []
        for pool in pools.values():
            try:
                close_pool(pool.http)
            except Exception:  # one pool failing to close must not keep the others open
                log.debug("clientreg: closing a pool failed", exc_info=True)
        if self._recorder is not None:
            self._recorder.close()

    async def aclose(self) -> None:
        """Close as `close` does, and wait until the running loop's pools are closed."""
        from registry.pools import wait_closing

        self.close()
        await wait_closing()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True once `close` or `aclose` was called."""
        return self._closed

    @property
    def index_path(self) -> Path | str | None:
        """Where this registry's key index lives (a file, or a ``postgresql://`` URL without its password), or None."""
        recorder = self._recorder_or_none()
        return None if recorder is None else recorder.path

    @property
    def settings(self) -> RegistrySettings:
        """The settings profiles are resolved from (loaded on first use when not given)."""
        self._profile_table()
        assert self._settings is not None
        return self._settings

    def _counters(self) -> RegistryCounters:
        """Counters for the metrics module: evictions by reason, live clients by kind, pools, loops."""
        with self._lock:
            evictions = dict(self._evicted)
            live = {k: v for k, v in self._live.items() if v}
            pools = [*self._pools.values(), *self._retired]
        return RegistryCounters(evictions, live, len(pools), _count_loops(pools), self._build_hooks)

    def _totals_reader(self) -> Callable[[], RegistryTotals]:
        """A reader of (hits, misses, builds, evictions by reason) holding the counters, not the registry.

        For the metrics module: it still reads a registry's final totals after the registry is
        collected, so process-wide counters never go down. Valid until a fork resets the state.
        """
        lock, hits, not_hits, misses, builds = self._lock, self._hits, self._not_hits, self._misses, self._builds
        evicted = self._evicted

        def read() -> RegistryTotals:
            with lock:  # a tick (not a hit) bumps both counts under the lock
                return hits.total() - not_hits.total(), misses.total(), builds.total(), dict(evicted)

        return read

    # ---- the slow path ------------------------------------------------------------------

    def _get_slow(self, settings: ProviderSettings, profile: str | None, *, is_async: bool) -> Any:
        if not isinstance(settings, ProviderSettings):
            raise TypeError(
                f"expected a settings object (OpenAISettings, ...) or a profile name, got {type(settings).__name__}"
            )
        if is_async:
            _refuse_foreign_event_loop()
        self._misses.hit()
        if self._max_idle is not None and not _janitor.running:
            _janitor.watch(self)  # first miss in a forked child, or after the janitor ended
        self._tidy()
        key = settings.config_hash
        flight_key = (key, is_async)
        while True:
            with self._lock:
                if self._closed:
                    raise RegistryClosedError("this Registry was closed; create a new one")
                table = self._async if is_async else self._sync
                entry = table.get(key)
                flight: _Flight | None = None
                if entry is None:
                    flight = self._flights.get(flight_key)
                    leader = flight is None
                    if flight is None:
                        flight = self._flights[flight_key] = _Flight()
                else:
                    table.move_to_end(key)
                    entry.used = self._tick()
            if entry is not None:  # built already: another thread's build, or a new profile name
                count = entry.counters.get(profile)
                if count is None:  # the recorder returns one counter per (config, profile)
                    count = entry.count_as(profile, self._count(settings, profile, kind=None))
                count()
                return entry.client
            assert flight is not None
            if not leader:
                flight.done.wait()
                if flight.error is not None:
                    raise flight.error
                continue  # the leader stored the entry: take it as above
            try:
                entry = self._build(settings, is_async=is_async)
                count = entry.count_as(profile, self._count(settings, profile, kind="built"))
            except BaseException as exc:
                with self._lock:
                    self._flights.pop(flight_key, None)
                flight.error = exc
                flight.done.set()
                raise
            evicted = self._store(key, entry, flight_key)
            flight.done.set()
            if evicted is None:  # closed while building: the client is never handed out
                raise RegistryClosedError("this Registry was closed; create a new one")
            self._forget(evicted)
            count()
            return entry.client

    def _store(self, key: str, entry: _Entry, flight_key: tuple[str, bool]) -> list[tuple[str, _Entry]] | None:
        """Publish a built entry (None if the registry closed meanwhile); return what it evicted."""
        with self._lock:
            self._flights.pop(flight_key, None)
            if self._closed:  # close() closed the pool already; just drop our use of it
                entry.pool.users -= 1
                return None
            table = self._async if entry.kind == "async" else self._sync
            entry.used = self._tick()
            table[key] = entry
            self._note_time()  # so prune(older_than) can tell this entry from older ones
            live_key = (entry.provider, entry.kind)
            self._live[live_key] = self._live.get(live_key, 0) + 1
            evicted: list[tuple[str, _Entry]] = []
            while self._max_clients is not None and len(table) > self._max_clients:
                oldest = _oldest(table)
                evicted.append((oldest, self._unlist(table, oldest, "lru")))
            return evicted

    def _build(self, settings: ProviderSettings, *, is_async: bool) -> _Entry:
        """Build a client on its shared pool, taking a use of the pool; no registry lock held."""
        builder = builder_for(settings.provider)
        started = time.perf_counter_ns()
        pool = self._take_pool(builder.HTTP_LIBRARY, settings, is_async=is_async)
        try:
            client = builder.build(settings, pool.http, is_async=is_async)
        except BaseException:
            with self._lock:
                self._release(pool)
            self._close_retired()
            raise
        elapsed = time.perf_counter_ns() - started
        with self._lock:  # builds run in parallel: += on a shared int could lose one
            self._build_ns += elapsed
        self._builds.hit()
        for hook in self._build_hooks:
            try:
                hook(settings.provider, is_async, elapsed / 1e9)
            except Exception:
                log.debug("clientreg: a build hook failed", exc_info=True)
        return _Entry(client, pool, settings.provider, is_async=is_async)

    def _warm_one(self, settings: ProviderSettings, profile: str) -> bool:
        key = settings.config_hash
        flight_key = (key, False)
        with self._lock:
            if self._closed or key in self._sync or flight_key in self._flights:
                return False
            flight = self._flights[flight_key] = _Flight()
        try:
            entry = self._build(settings, is_async=False)
        except Exception as exc:
            with self._lock:
                self._flights.pop(flight_key, None)
            flight.done.set()  # no error for waiters: a caller's own build may still succeed
            log.info("clientreg: warm start skips profile %r: %s", profile, type(exc).__name__)
            return False
        entry.count_as(profile, self._count(settings, profile, kind="warm"))
        evicted = self._store(key, entry, flight_key)  # stored before the flight ends: waiters find it
        flight.done.set()
        if evicted is None:
            return False
        self._forget(evicted)
        return True

    def _warm_in_background(self) -> None:
        try:
            built = self.warm()
        except Exception:
            log.warning("clientreg: warm start failed", exc_info=True)
        else:
            log.debug("clientreg: warm start built %d clients", built)

    # ---- pools ----------------------------------------------------------------------------

    def _take_pool(self, library: str, settings: ProviderSettings, *, is_async: bool) -> _Pool:
        """The pool for ``settings``' transport, with one more user, found or made under the lock."""
        key = (library, settings.transport_key, is_async)
        with self._lock:
            if self._closed:
                raise RegistryClosedError("this Registry was closed; create a new one")
            pool = self._pools.get(key)
            if pool is not None:
                pool.users += 1
                return pool
        http = new_pool(library, settings, is_async=is_async)  # outside the lock: it may read a CA bundle
        spare: Any = None
        with self._lock:
            if self._closed:
                spare, pool = http, None
            else:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = _Pool(http, key)
                else:  # another thread made the same pool first
                    spare = http
                pool.users += 1
        if spare is not None:
            close_pool(spare)  # never used: nothing to wait for
        if pool is None:
            raise RegistryClosedError("this Registry was closed; create a new one")
        return pool

    def _pinned_pool(self, what: ProviderSettings | str, *, is_async: bool) -> _Pool:
        settings = self._profile(what) if isinstance(what, str) else what
        if not isinstance(settings, ProviderSettings):
            raise TypeError(f"expected a settings object or a profile name, got {type(settings).__name__}")
        pool = self._take_pool(builder_for(settings.provider).HTTP_LIBRARY, settings, is_async=is_async)
        with self._lock:
            if pool.pinned:
                pool.users -= 1  # one use stands for every raw hand-out
            pool.pinned = True
        return pool

    def _release(self, pool: _Pool) -> None:
        """Drop one use of ``pool`` (lock held); with none left, it leaves the table."""
        pool.users -= 1
        if pool.users == 0 and self._pools.get(pool.key) is pool:
            del self._pools[pool.key]
            self._retired.append(pool)

    def _close_retired(self) -> None:
        """Close the retired pools that have nothing in flight (the closing itself outside the lock)."""
        with self._lock:
            idle = [pool for pool in self._retired if pool_is_idle(pool.http)]
            for pool in idle:
                self._retired.remove(pool)
        for pool in idle:
            try:
                close_pool(pool.http)
            except Exception:
                log.debug("clientreg: closing a pool failed", exc_info=True)

    # ---- eviction, idle expiry, tidying ---------------------------------------------------------

    def _unlist(self, table: OrderedDict[str, _Entry], key: str, reason: EvictionReason) -> _Entry:
        """Remove ``key`` from ``table`` and count it (lock held)."""
        entry = table.pop(key)
        self._evicted[reason] += 1
        self._live[(entry.provider, entry.kind)] -= 1
        return entry

    def _forget(self, evicted: list[tuple[str, _Entry]]) -> None:
        """Let evicted clients go; each keeps its pool in use until the client is collected.

        A caller may still hold an evicted client, even be in the middle of a long stream on
        it, so nothing is closed now. The pool's use is released when the client object is
        garbage collected (the finalizer only appends to a deque: it may run anywhere, even
        while this thread holds the lock), and a pool nobody uses is closed once idle.
        """
        for key, entry in evicted:
            if self._recorder is not None:
                for profile in list(entry.counters):  # a slow-path caller may add a name meanwhile
                    self._recorder.evicted(key, profile)
            weakref.finalize(entry.client, self._released.append, entry.pool)

    def _tick(self) -> int:
        """Take a tick of the registry's clock outside the hit path (lock held).

        The hit path stores no time: each hand-out stores the tick `Count.hit` returns, one
        C call it makes anyway. Ticks are mapped to times by notes of (monotonic time, tick)
        taken off the hit path (`_note_time`): a client whose last tick is below the tick
        noted at time T was not handed out since T. Builds take a tick too, not counted as hits.
        """
        self._not_hits.hit()
        return self._hits.hit()

    def _note_time(self) -> None:
        """Note (now, next tick) (lock held); old notes thin out, so at most 256 are kept."""
        self._times.append((_monotonic(), self._hits.total()))
        if len(self._times) > 256:
            del self._times[1:128:2]  # halve the resolution of the older half; keep the first

    def _tick_at(self, when: float) -> int | None:
        """The tick noted last at or before ``when``: hand-outs below it happened before then."""
        times = self._times
        i = bisect.bisect_right(times, (when, sys.maxsize))
        return times[i - 1][1] if i else None

    def _tidy(self, older_than: float | None = None) -> int:
        """Release collected clients' pools, expire idle clients, close unused idle pools.

        Runs on misses, `stats`, `prune` and the janitor thread; never on a hit. With
        ``max_clients`` or ``max_idle`` the tables are kept in use order, so idle clients are
        found from the least recently used end at the cost of the number expired; otherwise
        (`prune` on an unbounded registry) the tables are scanned.
        """
        if older_than is None:
            older_than = self._max_idle
        expired: list[tuple[str, _Entry]] = []
        with self._lock:
            released = self._released
            while released:
                self._release(released.popleft())
            self._note_time()
            before = None if older_than is None or self._closed else self._tick_at(_monotonic() - older_than)
            if before is not None:
                for table in (self._sync, self._async):
                    if self._ordered:
                        while table and table[oldest := _oldest(table)].used < before:
                            expired.append((oldest, self._unlist(table, oldest, "idle")))
                    else:
                        for key in [k for k, e in table.items() if e.used < before]:
                            expired.append((key, self._unlist(table, key, "idle")))
        self._forget(expired)
        self._close_retired()
        return len(expired)

    # ---- profiles and the index -------------------------------------------------------------

    def _profile_table(self) -> dict[str, ProviderSettings]:
        profiles = self._profiles
        if profiles is None:
            from schemas import load_settings

            settings = load_settings()
            with self._lock:
                if self._profiles is None:
                    self._settings = settings
                    self._profiles = dict(settings.profiles)
                profiles = self._profiles
        return profiles

    def _profile(self, name: str) -> ProviderSettings:
        profiles = self._profiles if self._profiles is not None else self._profile_table()
        try:
            return profiles[name]
        except KeyError:
            pass
        raise UnknownProfileError(self._unknown_profile_message(name, profiles))

    def _unknown_profile_message(self, name: str, profiles: dict[str, ProviderSettings]) -> str:
        from schemas._canonical import looks_like_credential

        if looks_like_credential(name):  # a key pasted where a profile name goes: never echo it
            return (
                "the profile name given looks like an API key, not a profile name (it is not shown); "
                "pass a settings object instead, e.g. get_client(OpenAISettings(api_key=...))"
            )
        where = self._settings.path if self._settings is not None else None
        if where is None and not profiles:
            from schemas._paths import SETTINGS_FILENAME, user_config_dir

            return (
                f"unknown profile {name!r}: no settings file was found (looked at $CLIENTREG_SETTINGS, "
                f"{Path.cwd() / SETTINGS_FILENAME} and {user_config_dir() / SETTINGS_FILENAME}); "
                "create one with a [profiles.NAME] table, or pass a settings object"
            )
        known = sorted(profiles)
        match = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        source = f" in {where}" if where else ""
        listing = ", ".join(repr(k) for k in known) if known else "none"
        return f"unknown profile {name!r}{source}{hint} (known profiles: {listing})"

    def _recorder_or_none(self) -> IndexRecorder | None:
        if not self._recorder_resolved:
            location = resolve_index(self._index_path, self._index_table)
            with self._lock:
                if not self._recorder_resolved:
                    if location is not None:
                        from registry.recorder import IndexRecorder

                        self._recorder = IndexRecorder(location.path, retention=location.retention)
                    self._recorder_resolved = True
        return self._recorder

    def _index_table(self) -> IndexTable | None:
        # Settings already loaded (or given) decide; otherwise read only the file's [index]
        # table, so a first miss does not load pydantic-settings just to find the index.
        if self._settings is not None:
            return self._settings.index
        return index_table_from_file()

    def _count(self, settings: ProviderSettings, profile: str | None, *, kind: Literal["built", "warm"] | None) -> Any:
        """The use counter of (config, profile); ``kind=None``: a new name for a client already built."""
        recorder = self._recorder_or_none()
        if recorder is None:
            return _NO_COUNT
        return recorder.built(settings, profile, kind=kind)

    # ---- fork -----------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # Start empty, with new locks: another thread of the parent may have held one. The
        # parent's pools got fresh connection pools, and their sockets were closed, in
        # registry.pools' own fork handler; clients the program still holds keep working.
        self._reset_state()


def _oldest(table: OrderedDict[str, _Entry]) -> str:
    """The least recently used key (lock held, so the table is not empty and keeps its keys).

    A hit moves its key to the end without the lock; if one does so between this iterator's
    creation and its first step, the iterator refuses ("mutated during iteration"): try again.
    """
    while True:
        try:
            return next(iter(table))
        except RuntimeError:
            continue


def _count_loops(pools: list[_Pool]) -> int:
    loops: set[int] = set()
    for pool in pools:
        if pool.key[2]:
            loops.update(id(loop) for loop in pool_loops(pool.http))  # ids of live loops, in this call only
    return len(loops)


def _refuse_foreign_event_loop() -> None:
    try:
        asyncio.get_running_loop()
        return
    except RuntimeError:
        pass
    library = current_async_library()
    if library is not None:
        raise UnsupportedEventLoopError(
            f"clientreg's async clients run on asyncio event loops (uvloop included); this code runs under {library}"
        )


class _Janitor:
    """One daemon thread per process that expires idle clients of registries with ``max_idle``.

    Started on the first such registry, it wakes every ``max_idle / 2`` seconds (the smallest
    of them, between 10 ms and 60 s) and ends when no such registry is left. Misses expire idle
    clients too. After fork the child starts its own thread on the next miss.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._registries: weakref.WeakSet[Registry] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the thread is started."""
        return self._thread is not None

    def watch(self, registry: Registry) -> None:
        """Expire ``registry``'s idle clients from now on (starts the thread if needed)."""
        with self._cond:
            self._registries.add(registry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="clientreg-janitor", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                if self._thread is not me:
                    return
                live = [r for r in self._registries if not r.closed and r._max_idle is not None]
                if not live:
                    self._thread = None
                    return
                interval = min(max(min(r._max_idle or 60.0 for r in live) / 2, 0.01), 60.0)
                del live
                self._cond.wait(interval)
                registries = [r for r in self._registries if not r.closed]
            for registry in registries:
                try:
                    registry._tidy()
                except Exception:
                    log.debug("clientreg: idle expiry failed", exc_info=True)
            del registries

    def after_fork_in_child(self) -> None:
        """Forget the parent's thread and lock; the child's next miss starts a thread again."""
        self._cond = threading.Condition(threading.Lock())
        self._thread = None  # the parent's thread does not exist here


_janitor = _Janitor()
_live_registries: weakref.WeakSet[Registry] = weakref.WeakSet()
_new_registry_hooks: list[Callable[[Registry], object]] = []
"""Called with each new Registry (the metrics module watches every registry from its start)."""


def _fresh_cached_property_locks() -> None:
    """Re-create the lock each ``functools.cached_property`` of the settings classes holds.

    Before Python 3.12 a cached_property computes under an RLock shared by every instance;
    a thread of the parent computing ``config_hash`` or ``transport_key`` while another forks
    leaves it held forever in the child, whose first lookup would then hang.
    """
    classes: list[type] = [ProviderSettings]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        for value in vars(cls).values():
            if isinstance(value, functools.cached_property) and hasattr(value, "lock"):
                value.lock = threading.RLock()


def _reset_after_fork() -> None:
    if sys.version_info < (3, 12):
        _fresh_cached_property_locks()
    _janitor.after_fork_in_child()
    for registry in list(_live_registries):
        registry._after_fork_in_child()


def _close_at_exit() -> None:
    for registry in list(_live_registries):
        try:
            registry.close()
        except Exception:
            log.debug("clientreg: closing a registry at exit failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_close_at_exit)
