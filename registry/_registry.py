"""The registry: one SDK client per configuration, built lazily, shared, bounded.

Locking: ``_lock`` guards the registry's tables and is only ever held for dictionary work,
never while a client or pool is built, never across I/O. A hit takes no lock at all.
Misses on one key are single-flight (`_Flight`); misses on different keys build in parallel.
"""

from __future__ import annotations

import asyncio
import atexit
import difflib
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from registry._counter import Count
from registry.errors import NoRunningLoopError, RegistryClosedError, UnknownProfileError
from registry.locations import IndexTable, index_table_from_file, resolve_index
from registry.providers import builder_for
from registry.transports import aclose_pool, close_pool, new_pool, pool_is_idle, ssl_context
from schemas import ProviderSettings

if TYPE_CHECKING:
    from registry.recorder import IndexRecorder
    from schemas import RegistrySettings

log = logging.getLogger("clientreg")

DEFAULT_WARM_LIMIT = 32
DEFAULT_WARM_MAX_AGE = 7 * 24 * 3600.0


@dataclass(frozen=True)
class RegistryStats(Mapping[str, float]):
    """A snapshot of a registry's counters; read as attributes or as keys (``stats["hits"]``).

    ``misses`` counts calls that found no ready client (a caller waiting on another
    thread's build included); ``builds`` counts clients actually constructed (warm builds
    included); ``live_transports`` counts open shared HTTP connection pools.
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


class _NoCount:
    """Stands in for a use counter when the index is off."""

    __slots__ = ()

    def hit(self) -> None:
        """Count nothing."""


_NO_COUNT = _NoCount()


class _Pool:
    """A shared HTTP client and how many registry entries (and evicted live clients) use it."""

    __slots__ = ("http", "key", "users")

    def __init__(self, http: Any, key: tuple[str, str]) -> None:
        self.http = http
        self.key = key
        self.users = 0


class _Entry:
    """A built client, its pool, and its use counters per profile (None: a settings object)."""

    __slots__ = ("client", "counters", "pool")

    def __init__(self, client: Any, pool: _Pool) -> None:
        self.client = client
        self.pool = pool
        self.counters: dict[str | None, Any] = {}


class _Flight:
    """One in-progress build that other callers for the same key wait on."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class _Clients:
    """The clients and pools of one world: the sync one, or one event loop's."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, _Entry] = OrderedDict()
        self.pools: dict[tuple[str, str], _Pool] = {}
        self.retired: list[_Pool] = []  # unused pools waiting to be idle before closing
        self.released: deque[_Pool] = deque()  # pools of evicted clients that were collected


class _LoopClients(_Clients):
    """An event loop's clients, and the async generator that closes them as the loop shuts down."""

    def __init__(self) -> None:
        super().__init__()
        # Held here because the loop tracks async generators in a WeakSet only.
        self.closer: AsyncGenerator[None, None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()


class Registry:
    """Hands out one shared SDK client per configuration.

    >>> with Registry(load_settings("clientreg.toml")) as reg:
    ...     client = reg.get_client("fast")          # or reg.get_client(OpenAISettings(...))

    ``max_clients`` bounds the sync clients, and separately each event loop's async clients,
    evicting the least recently used. The key index (``index_path``, else ``$CLIENTREG_INDEX``,
    else the settings' ``[index] path``, else the user data dir; ``"off"`` disables it) is
    written in the background. ``warm_start=True`` pre-builds, in the background, the clients
    of the profiles the index shows were used most recently.

    After `close`, the registry refuses to hand out clients (`RegistryClosedError`).
    """

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        *,
        max_clients: int | None = None,
        index_path: str | os.PathLike[str] | None = None,
        warm_start: bool = False,
    ) -> None:
        if max_clients is not None and max_clients < 1:
            raise ValueError("max_clients must be at least 1, or None for no bound")
        self._settings = settings
        self._profiles: dict[str, ProviderSettings] | None = dict(settings.profiles) if settings is not None else None
        self._max_clients = max_clients
        self._index_path = index_path
        self._recorder: IndexRecorder | None = None
        self._recorder_resolved = False
        self._reset_state()
        self._closed = False
        _live_registries.add(self)
        if warm_start:
            threading.Thread(target=self._warm_in_background, name="clientreg-warm", daemon=True).start()

    def _reset_state(self) -> None:
        self._lock = threading.Lock()
        self._sync = _Clients()
        self._flights: dict[str, _Flight] = {}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()
        self._hits = Count()
        self._misses = Count()
        self._builds = Count()
        self._evictions = Count()
        self._build_ns = 0

    # ---- public API ---------------------------------------------------------------------

    def get_client(self, what: ProviderSettings | str) -> Any:
        """Return the shared sync SDK client for a settings object or a profile name."""
        if what.__class__ is str:
            profile: str | None = what
            settings = self._profile(what)
        else:
            profile, settings = None, what  # type: ignore[assignment]
        try:
            key = settings.config_hash
            entry = self._sync.entries[key]
            count = entry.counters[profile]
        except (KeyError, AttributeError):
            return self._get_slow(settings, profile, self._sync, None)
        if self._max_clients is not None:
            self._touch(self._sync, key)
        self._hits.hit()
        count.hit()
        return entry.client

    def get_async_client(self, what: ProviderSettings | str) -> Any:
        """Return the shared async SDK client for the running event loop.

        Must be called with a loop running (from ``async def`` code): the client and its
        connection pool belong to that loop, and are closed when the loop shuts down.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise NoRunningLoopError(
                "get_async_client() needs a running event loop: call it from async code; "
                "an async client belongs to the loop it was made in"
            ) from None
        if what.__class__ is str:
            profile: str | None = what
            settings = self._profile(what)
        else:
            profile, settings = None, what  # type: ignore[assignment]
        clients = self._loops.get(loop)
        if clients is not None:
            try:
                key = settings.config_hash
                entry = clients.entries[key]
                count = entry.counters[profile]
            except (KeyError, AttributeError):
                pass
            else:
                if self._max_clients is not None:
                    self._touch(clients, key)
                self._hits.hit()
                count.hit()
                return entry.client
        return self._get_slow(settings, profile, clients, loop)

    def stats(self) -> RegistryStats:
        """Return a snapshot of hits, misses, builds, evictions and what is alive."""
        with self._lock:
            loops = [c for loop, c in self._loops.items() if not loop.is_closed()]
            live_clients = len(self._sync.entries) + sum(len(c.entries) for c in loops)
            live_pools = sum(len(c.pools) + len(c.retired) for c in [self._sync, *loops])
        return RegistryStats(
            hits=self._hits.total(),
            misses=self._misses.total(),
            builds=self._builds.total(),
            build_seconds=self._build_ns / 1e9,
            evictions=self._evictions.total(),
            live_clients=live_clients,
            live_transports=live_pools,
            event_loops=len(loops),
        )

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
            if settings.api_key is None:
                log.info("clientreg: warm start skips profile %r: its api key does not resolve", name)
                continue
            if self._warm_one(settings, name):
                built += 1
        return built

    def close(self) -> None:
        """Close every pool the registry owns and refuse further requests.

        Async pools of loops other than a running one in this thread cannot be awaited
        here; they are closed from their own loop if it is running, else dropped (use
        `aclose` from inside the loop to close them cleanly).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sync, self._sync = self._sync, _Clients()
            loops = list(self._loops.items())
            self._loops = weakref.WeakKeyDictionary()
        for pool in {id(p): p for p in [*sync.pools.values(), *sync.retired, *sync.released]}.values():
            close_pool(pool.http)
        for loop, clients in loops:
            if not loop.is_closed() and loop.is_running():
                try:
                    asyncio.run_coroutine_threadsafe(_aclose_all(clients), loop)
                except RuntimeError:
                    pass
        if self._recorder is not None:
            self._recorder.close()

    async def aclose(self) -> None:
        """Close the running loop's async pools cleanly, then everything else as `close` does."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._loops.pop(loop, None)
        if clients is not None:
            await _aclose_all(clients)
        self.close()

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
    def index_path(self) -> Path | None:
        """Where this registry's key index lives, or None when the index is off."""
        recorder = self._recorder_or_none()
        return None if recorder is None else recorder.path

    @property
    def settings(self) -> RegistrySettings:
        """The settings profiles are resolved from (loaded on first use when not given)."""
        self._profile_table()
        assert self._settings is not None
        return self._settings

    # ---- the slow path ------------------------------------------------------------------

    def _get_slow(
        self,
        settings: ProviderSettings,
        profile: str | None,
        clients: _Clients | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> Any:
        if not isinstance(settings, ProviderSettings):
            raise TypeError(
                f"expected a settings object (OpenAISettings, ...) or a profile name, got {type(settings).__name__}"
            )
        self._misses.hit()
        key = settings.config_hash
        if loop is not None:
            clients = self._loop_clients(loop)
        assert clients is not None
        while True:
            with self._lock:
                if self._closed:
                    raise RegistryClosedError("this Registry was closed; create a new one")
                entry = clients.entries.get(key)
                if entry is None:
                    flight = self._flights.get(key) if loop is None else None
                    leader = flight is None
                    if leader and loop is None:
                        flight = self._flights[key] = _Flight()
            if entry is not None:  # built already, asked for under a name not seen before
                count = entry.counters.get(profile)
                if count is None:  # the recorder returns one counter per (config, profile)
                    count = entry.counters.setdefault(profile, self._count(settings, profile, kind=None))
                count.hit()
                return entry.client
            if not leader:
                assert flight is not None
                flight.done.wait()
                if flight.error is not None:
                    raise flight.error
                continue  # the leader stored the entry: take it as above
            try:
                entry = self._build(settings, clients, is_async=loop is not None)
            except BaseException as exc:
                if loop is None:
                    with self._lock:
                        self._flights.pop(key, None)
                    assert flight is not None
                    flight.error = exc
                    flight.done.set()
                raise
            count = self._count(settings, profile, kind="built")
            entry.counters[profile] = count
            with self._lock:
                clients.entries[key] = entry
                if loop is None:
                    self._flights.pop(key, None)
                evicted = self._evict(clients)
            if flight is not None:
                flight.done.set()
            self._after_evictions(evicted, clients, loop)
            count.hit()
            return entry.client

    def _build(self, settings: ProviderSettings, clients: _Clients, *, is_async: bool) -> _Entry:
        """Build a client on its shared pool (creating the pool if needed); no registry lock held."""
        builder = builder_for(settings.provider)
        library = builder.HTTP_LIBRARY
        pool_key = (library, settings.transport_key)
        started = time.perf_counter_ns()
        pool = clients.pools.get(pool_key)
        if pool is None:
            ssl_context(library, settings.verify)  # the slow part, shared, outside our lock
            http = new_pool(library, settings, is_async=is_async)
            with self._lock:
                pool = clients.pools.get(pool_key)
                if pool is None:
                    pool = clients.pools[pool_key] = _Pool(http, pool_key)
                    http = None
            if http is not None and not is_async:  # another thread made the same pool first
                close_pool(http)
        with self._lock:
            pool.users += 1
        try:
            client = builder.build(settings, pool.http, is_async=is_async)
        except BaseException:
            with self._lock:
                pool.users -= 1
            raise
        elapsed = time.perf_counter_ns() - started
        with self._lock:  # builds run in parallel: += on a shared int could lose one
            self._build_ns += elapsed
        self._builds.hit()
        return _Entry(client, pool)

    def _warm_one(self, settings: ProviderSettings, profile: str) -> bool:
        key = settings.config_hash
        with self._lock:
            if self._closed or key in self._sync.entries or key in self._flights:
                return False
            flight = self._flights[key] = _Flight()
        try:
            entry = self._build(settings, self._sync, is_async=False)
        except Exception as exc:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()  # no error for waiters: a caller's own build may still succeed
            log.info("clientreg: warm start skips profile %r: %s", profile, type(exc).__name__)
            return False
        entry.counters[profile] = self._count(settings, profile, kind="warm")
        with self._lock:
            self._sync.entries[key] = entry  # stored before the flight ends: waiters find it
            self._flights.pop(key, None)
            evicted = self._evict(self._sync)
        flight.done.set()
        self._after_evictions(evicted, self._sync, None)
        return True

    def _warm_in_background(self) -> None:
        try:
            built = self.warm()
        except Exception:
            log.warning("clientreg: warm start failed", exc_info=True)
        else:
            log.debug("clientreg: warm start built %d clients", built)

    # ---- eviction and pools -----------------------------------------------------------------

    @staticmethod
    def _touch(clients: _Clients, key: str) -> None:
        try:
            clients.entries.move_to_end(key)
        except KeyError:  # evicted by another thread in between: the client is still good
            pass

    def _evict(self, clients: _Clients) -> list[tuple[str, _Entry]]:
        """Pop least-recently-used entries over the bound (called with the lock held)."""
        evicted: list[tuple[str, _Entry]] = []
        while self._max_clients is not None and len(clients.entries) > self._max_clients:
            evicted.append(clients.entries.popitem(last=False))
        return evicted

    def _after_evictions(
        self, evicted: list[tuple[str, _Entry]], clients: _Clients, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """Let evicted clients go; each keeps its pool in use until the client is collected.

        A caller may still hold an evicted client, even be in the middle of a stream on it,
        so nothing is closed now: the pool's use is released when the client object is
        garbage collected, and a pool nobody uses is closed once it is idle.
        """
        for key, entry in evicted:
            self._evictions.hit()
            if self._recorder is not None:
                for profile in entry.counters:
                    self._recorder.evicted(key, profile)
            weakref.finalize(entry.client, clients.released.append, entry.pool)
        self._close_unused_pools(clients, loop)

    def _close_unused_pools(self, clients: _Clients, loop: asyncio.AbstractEventLoop | None) -> None:
        closing: list[_Pool] = []
        with self._lock:
            while clients.released:
                pool = clients.released.popleft()
                pool.users -= 1
                if pool.users == 0 and clients.pools.get(pool.key) is pool:
                    del clients.pools[pool.key]
                    clients.retired.append(pool)
            for pool in list(clients.retired):
                if pool_is_idle(pool.http):
                    clients.retired.remove(pool)
                    closing.append(pool)
        for pool in closing:
            if loop is None:
                close_pool(pool.http)
            else:
                assert isinstance(clients, _LoopClients)
                task = loop.create_task(aclose_pool(pool.http))
                clients.tasks.add(task)
                task.add_done_callback(clients.tasks.discard)

    # ---- event loops ----------------------------------------------------------------------

    def _loop_clients(self, loop: asyncio.AbstractEventLoop) -> _LoopClients:
        with self._lock:
            for other in [other for other in self._loops if other.is_closed()]:
                del self._loops[other]  # closed without shutting down its async generators
            clients = self._loops.get(loop)
            if clients is not None:
                return clients
            clients = self._loops[loop] = _LoopClients()
        # An async generator parked in the loop: asyncio.run() (and any loop shut down with
        # shutdown_asyncgens) closes it as the loop ends, and its finally closes our pools
        # while the loop can still run them.
        closer = _close_at_loop_shutdown(self, loop, clients)
        clients.closer = closer
        task = loop.create_task(_start(closer))
        clients.tasks.add(task)
        task.add_done_callback(clients.tasks.discard)
        return clients

    def _forget_loop(self, loop: asyncio.AbstractEventLoop, clients: _LoopClients) -> None:
        with self._lock:
            if self._loops.get(loop) is clients:
                del self._loops[loop]

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
        known = sorted(profiles)
        match = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        where = self._settings.path if self._settings is not None else None
        source = f" in {where}" if where else ""
        listing = ", ".join(repr(k) for k in known) if known else "none"
        raise UnknownProfileError(f"unknown profile {name!r}{source}{hint} (known profiles: {listing})")

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
        # The parent's pools, sockets and SSL state are the parent's: closing them here could
        # write to sockets the parent still uses, so they are left untouched and unreferenced
        # only by the parent's copy of this object's memory.
        _forked_leftovers.append((self._sync, self._loops, self._flights))
        self._reset_state()


async def _start(closer: AsyncGenerator[None, None]) -> None:
    await closer.__anext__()


async def _close_at_loop_shutdown(
    registry: Registry, loop: asyncio.AbstractEventLoop, clients: _LoopClients
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        registry._forget_loop(loop, clients)
        await _aclose_all(clients)


async def _aclose_all(clients: _Clients) -> None:
    pools = {id(p): p for p in [*clients.pools.values(), *clients.retired, *clients.released]}
    clients.pools.clear()
    clients.retired.clear()
    clients.released.clear()
    clients.entries.clear()
    for pool in pools.values():
        try:
            await aclose_pool(pool.http)
        except Exception:  # a pool that fails to close must not stop the others
            log.debug("clientreg: closing a pool failed", exc_info=True)


_live_registries: weakref.WeakSet[Registry] = weakref.WeakSet()
_forked_leftovers: list[object] = []


def _reset_after_fork() -> None:
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
