"""Shared HTTP clients: the sync pool, the per-event-loop async pool, and who closes them.

openai 3 speaks ``httpx2``; groq, cerebras and openai 1.x/2.x speak ``httpx``, so every
class here is made per HTTP library (`classes`). A shared client is a real ``Client`` /
``AsyncClient`` of that library (the SDKs check), whose ``close()`` / ``aclose()`` does
nothing: a user closing one SDK client must not break the others on its pool. Only the
registry closes pools, through `close_pool`.

Sync: `ProcessPool` holds one connection pool, and swaps it for a fresh one in a forked
child (after closing the child's copies of the parent's sockets).

Async: `LoopPools` keeps one connection pool per running event loop, so one client object
works on every loop. A loop's pools live in a `_LoopState` that only the loop holds strongly
(a far-future timer handle in the loop's own schedule): the registry finds it through a
weak-keyed table, so nothing here keeps a loop alive. The state's pools are closed

- when the loop shuts down its async generators (``asyncio.run`` does): a parked async
  generator's ``finally`` awaits each pool's ``aclose()`` while the loop can still run it;
- when the loop is closed without that, or collected unclosed: the loop drops the timer
  handle, the state is freed, and its ``__del__`` closes the sockets at once, without the loop.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import os
import socket
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from registry.errors import UnsupportedEventLoopError
from schemas import ProviderSettings

_ssl_contexts: dict[tuple[str, bool | str], ssl.SSLContext] = {}
_FOREVER = 10.0**9  # seconds: the timer handle that ties a loop's pools to the loop never fires


@cache
def http_library(name: str) -> ModuleType:
    """Import and return ``httpx`` or ``httpx2`` (on first use: each costs ~100 ms to import)."""
    return importlib.import_module(name)


def ssl_context(library: str, verify: bool | str) -> ssl.SSLContext:
    """One SSL context per HTTP library and ``verify`` value, shared by every pool in the process.

    Building one reads the CA bundle (tens of milliseconds). No lock is held while it is
    built: two threads may both build one, and the first one published wins.
    """
    key = (library, verify)
    context = _ssl_contexts.get(key)
    if context is None:
        if isinstance(verify, str):
            context = (
                ssl.create_default_context(capath=verify)
                if Path(verify).is_dir()
                else ssl.create_default_context(cafile=verify)
            )
        else:
            context = http_library(library).create_ssl_context(verify=verify, trust_env=False)
        context = _ssl_contexts.setdefault(key, context)  # atomic: publish, or take the winner's
    return context


@dataclass(frozen=True)
class Classes:
    """The shared client and transport classes of one HTTP library."""

    client: type[Any]
    async_client: type[Any]


@cache
def classes(library: str) -> Classes:
    """Shared client classes of ``library`` (``"httpx"`` or ``"httpx2"``), made once."""
    lib = http_library(library)

    class SharedClient(lib.Client):  # type: ignore[name-defined,misc]
        """A pooled ``Client`` shared by registry clients; ``close()`` is the registry's to call."""

        def close(self) -> None:
            """Do nothing: the registry owns this pool (see docs/lifecycle.md)."""

        def close_shared(self) -> None:
            """Close the pool for real; only the registry calls this."""
            super().close()

    class SharedAsyncClient(lib.AsyncClient):  # type: ignore[name-defined,misc]
        """A pooled ``AsyncClient`` usable on every event loop; ``aclose()`` is the registry's to call."""

        async def aclose(self) -> None:
            """Do nothing: the registry owns this pool (see docs/lifecycle.md)."""

        def close_shared(self) -> None:
            """Close the pool on every loop; only the registry calls this (from any thread)."""
            self._state: Any = type(self._state).CLOSED  # what AsyncClient.aclose() sets: send() now refuses
            self._transport.close_everywhere()

    class ProcessPool(lib.BaseTransport):  # type: ignore[name-defined,misc]
        """The sync connection pool of a shared client; a forked child gets a fresh one."""

        def __init__(self, make: Callable[[], Any]) -> None:
            self._make = make
            self._pool = make()
            _sync_pools.add(self)

        def handle_request(self, request: Any) -> Any:
            """Send ``request`` through this process's pool."""
            return self._pool.handle_request(request)

        def close(self) -> None:
            """Close the pool and its connections."""
            self._pool.close()

        def is_idle(self) -> bool:
            """True when no request or stream is in flight."""
            return _connections_idle(self._pool)

        def after_fork_in_child(self) -> None:
            """Drop the parent's pool in a forked child (see `_after_fork_in_child`)."""
            # The parent's connections are the parent's: close our copies of their sockets
            # without a byte written, and forget the pool (its locks may be held by threads
            # that do not exist here).
            _close_connections_now(self._pool, forked=True)
            self._pool = self._make()

    class LoopPools(lib.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        """Sends each request through a connection pool of the event loop it runs on."""

        def __init__(self, make: Callable[[], Any]) -> None:
            self._make = make
            self._serial = next(_serials)
            self._states: weakref.WeakSet[_LoopState] = weakref.WeakSet()
            self._lock = threading.Lock()
            self._closed = False
            _loop_pools.add(self)

        async def handle_async_request(self, request: Any) -> Any:
            """Send ``request`` through the running loop's pool (made on the loop's first request)."""
            state = await _loop_state()
            pool = state.pools.get(self._serial)
            if pool is None:
                pool = self._open(state)
            return await pool.handle_async_request(request)

        def _open(self, state: _LoopState) -> Any:
            with self._lock:
                if self._closed:
                    raise RuntimeError("Cannot send a request: the client has been closed (its registry was closed).")
                pool = state.pools.get(self._serial)
                if pool is None:
                    pool = state.pools[self._serial] = self._make()
                    self._states.add(state)
            return pool

        async def aclose(self) -> None:
            """Do nothing: the registry closes these pools with `close_everywhere`.

            Frameworks reach past a client to its transport: LiteLLM's
            ``close_litellm_async_clients()`` (also run at exit) awaits
            ``client._client._transport.aclose()`` on the clients it was given, which would
            close the pools of every holder of the registry's shared HTTP client.
            """

        def close_everywhere(self) -> None:
            """Refuse new requests; close each loop's pool on that loop, or at once if it cannot run."""
            with self._lock:
                self._closed = True
                states = list(self._states)
            for state in states:
                state.close_soon(self._serial)

        def is_idle(self) -> bool:
            """True when no request or stream is in flight on any loop."""
            return all(_connections_idle(pool) for pool in self._pools())

        def loops(self) -> list[asyncio.AbstractEventLoop]:
            """The open loops this client has a pool on."""
            found = []
            for state in list(self._states):
                loop = state.loop()
                if loop is not None and not loop.is_closed() and self._serial in state.pools:
                    found.append(loop)
            return found

        def _pools(self) -> list[Any]:
            return [p for s in list(self._states) if (p := s.pools.get(self._serial)) is not None]

        def after_fork_in_child(self) -> None:
            """Drop every loop's pool in a forked child."""
            # Forget every loop's pool: the loops and sockets are the parent's.
            for state in list(self._states):
                pool = state.pools.pop(self._serial, None)  # so the parent's loop never closes it here
                if pool is not None:
                    _close_connections_now(pool, forked=True)
            self._lock = threading.Lock()
            self._states = weakref.WeakSet()

    for cls, base in ((SharedClient, lib.Client), (SharedAsyncClient, lib.AsyncClient)):
        cls.__qualname__ = cls.__name__ = f"Shared{base.__name__}"
    _transport_classes[library] = (ProcessPool, LoopPools)
    return Classes(SharedClient, SharedAsyncClient)


_transport_classes: dict[str, tuple[type[Any], type[Any]]] = {}
_serials = itertools.count(1)
_sync_pools: weakref.WeakSet[Any] = weakref.WeakSet()
_forked_leftovers: list[Any] = []  # a parent's uvloop transports, kept unfreed in a forked child
_loop_pools: weakref.WeakSet[Any] = weakref.WeakSet()


def new_pool(library: str, settings: ProviderSettings, *, is_async: bool) -> Any:
    """Build a shared HTTP client for ``settings``' transport fields (no I/O once the SSL context exists).

    ``trust_env=False``: the pool uses the proxy and CA settings in the config, never
    ``HTTPS_PROXY`` or ``SSL_CERT_FILE`` read behind the registry's back.
    """
    lib = http_library(library)
    shared = classes(library)
    sync_transport, loop_transport = _transport_classes[library]
    verify = ssl_context(library, settings.verify)
    proxy = None if settings.proxy is None else settings.proxy.get_secret_value()
    limits = lib.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry,
    )
    transport_cls = lib.AsyncHTTPTransport if is_async else lib.HTTPTransport

    def make() -> Any:
        return transport_cls(verify=verify, proxy=proxy, limits=limits, trust_env=False)

    client_cls, pool_cls = (shared.async_client, loop_transport) if is_async else (shared.client, sync_transport)
    return client_cls(
        transport=pool_cls(make),
        # Requests carry the timeout of the SDK client that sends them; this is a fallback.
        timeout=lib.Timeout(600.0, connect=5.0),
        follow_redirects=True,
        trust_env=False,
    )


def close_pool(pool: Any) -> None:
    """Really close a shared pool (sync now; async on each loop, or at once where a loop cannot run)."""
    pool.close_shared()


def pool_is_idle(pool: Any) -> bool:
    """True when no request or stream is in flight on ``pool`` (so closing it breaks nothing)."""
    try:
        return bool(pool._transport.is_idle())
    except AttributeError:
        return False


def pool_loops(pool: Any) -> list[asyncio.AbstractEventLoop]:
    """The open event loops a shared async pool has connections pools on ([] for a sync pool)."""
    loops = getattr(pool._transport, "loops", None)
    return [] if loops is None else list(loops())


def _connections_idle(transport: Any) -> bool:
    """Reads httpcore's public ``connections`` list; an unknown structure counts as busy."""
    try:
        return all(conn.is_idle() or conn.is_closed() for conn in transport._pool.connections)
    except AttributeError:
        return False


# ---- event loops ---------------------------------------------------------------------------


class _LoopState:
    """One event loop's connection pools (one per shared async client used on it).

    Held strongly only by the loop (`_hold`); see the module docstring.
    """

    __slots__ = ("__weakref__", "closer", "dead", "loop", "pools", "tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.pools: dict[int, Any] = {}  # LoopPools serial -> that client's transport on this loop
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closer: AsyncGenerator[None, None] | None = None
        self.dead = False

    def close_soon(self, serial: int) -> None:
        """Close one client's pool here: on the loop when it can still run, else at once."""
        loop = self.loop()
        try:
            if loop is None or loop.is_closed():
                raise RuntimeError("closed")
            if _running_loop_or_none() is loop:
                self._aclose(serial)
            else:
                loop.call_soon_threadsafe(self._aclose, serial)  # when the loop next runs
        except RuntimeError:  # closed (or closing) meanwhile: it will never run the pool again
            pool = self.pools.pop(serial, None)
            if pool is not None:
                _close_connections_now(pool)

    def _aclose(self, serial: int) -> None:
        pool = self.pools.pop(serial, None)
        loop = self.loop()
        if pool is not None and loop is not None:
            task = loop.create_task(pool.aclose())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def aclose_all(self) -> None:
        while self.pools:
            _, pool = self.pools.popitem()
            try:
                await pool.aclose()
            except Exception:  # one pool failing to close must not keep the others open
                _close_connections_now(pool)

    def __del__(self) -> None:
        # The loop let go of us: it was closed, or it is being collected with us. Either way
        # it will never run these pools again, so their sockets are closed here, directly.
        self.dead = True
        for pool in list(self.pools.values()):
            _close_connections_now(pool)
        self.pools.clear()
        closer, self.closer = self.closer, None
        if closer is not None:
            _finish(closer)


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[_LoopState]] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def _hold(state: _LoopState) -> None:
    """The callback of the timer handle through which a loop holds its pools; never meant to run."""


async def _loop_state() -> _LoopState:
    """The running loop's state, made on its first request."""
    loop = _running_loop()
    ref = _states.get(loop)
    state = ref() if ref is not None else None
    if state is not None:
        return state
    state = _LoopState(loop)
    with _states_lock:
        ref = _states.get(loop)
        existing = ref() if ref is not None else None
        if existing is not None:
            return existing
        _states[loop] = weakref.ref(state)
    # The loop's own schedule holds the state: it is dropped when the loop closes, and is
    # collected with the loop, so the registry never keeps a loop alive.
    loop.call_at(loop.time() + _FOREVER, _hold, state)
    closer = state.closer = _close_at_shutdown(weakref.ref(state))
    await closer.__anext__()  # parked: the loop's async generator hooks now know it
    return state


async def _close_at_shutdown(state_ref: weakref.ref[_LoopState]) -> AsyncGenerator[None, None]:
    """Parked in the loop; closed by ``shutdown_asyncgens()`` while the loop can still run."""
    try:
        yield
    finally:
        state = state_ref()
        if state is not None and not state.dead:
            await state.aclose_all()


def _finish(closer: AsyncGenerator[None, None]) -> None:
    """Run a parked closer's ``finally`` to its end without a loop (it awaits nothing when dead).

    Done so the loop's async generator finalizer never tries to schedule it on a closed loop.
    """
    try:
        closer.aclose().send(None)
    except StopIteration:
        pass
    except Exception:  # running elsewhere, or already closed: nothing left to do
        pass


async def wait_closing() -> None:
    """Wait until the pools closing on the running loop (after `close_pool`) are closed."""
    ref = _states.get(asyncio.get_running_loop())
    state = ref() if ref is not None else None
    while state is not None and state.tasks:
        await asyncio.gather(*list(state.tasks), return_exceptions=True)


def _running_loop_or_none() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _running_loop() -> asyncio.AbstractEventLoop:
    """The running asyncio loop; under another async library, an error naming what is supported."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    library = current_async_library()
    raise UnsupportedEventLoopError(
        f"clientreg's async clients run on asyncio event loops (uvloop included); "
        f"this code runs under {library or 'no event loop'}"
    )


def current_async_library() -> str | None:
    """The async library running this code per sniffio (``"trio"``, ...), or None."""
    try:
        import sniffio

        return sniffio.current_async_library()
    except Exception:
        return None


# ---- closing sockets without a loop, and fork ----------------------------------------------


def _close_connections_now(transport: Any, *, forked: bool = False) -> None:
    """Close the sockets of an httpx transport's connections at once, writing nothing.

    For a forked child's copies of the parent's sockets, and for a loop that will never run
    again. Only the file descriptor is closed: no TLS close_notify, no HTTP/2 GOAWAY, so a
    parent's connection is untouched. Digs into httpcore and asyncio internals, so every step
    tolerates a structure it does not know (the socket is then closed when it is collected).
    """
    try:
        connections = list(transport._pool.connections)
    except AttributeError:
        return
    for connection in connections:
        stream = connection
        while getattr(stream, "_connection", None) is not None:  # proxies wrap connections
            stream = stream._connection
        stream = getattr(stream, "_network_stream", None)
        if stream is not None:
            _close_stream_now(stream, forked=forked)


def _close_stream_now(stream: Any, *, forked: bool) -> None:
    inner: Any = getattr(stream, "_stream", None)  # httpcore's AnyIOStream -> the anyio stream
    while getattr(inner, "transport_stream", None) is not None:  # TLS over TCP
        inner = inner.transport_stream
    transport = getattr(inner, "_transport", None)  # anyio on asyncio -> the asyncio transport
    if transport is not None:
        sock = getattr(transport, "_sock", None)
        if isinstance(sock, socket.socket):
            transport._sock = None  # so its __del__ neither warns nor closes the socket again
            sock.close()
            return
        if forked:  # uvloop: its handle would also deregister the fd from the epoll set it shares with the parent
            try:
                fd = transport.get_extra_info("socket").fileno()
            except Exception:
                return
            _forked_leftovers.append(transport)  # never freed here: freeing it would close fd again
            try:
                os.close(fd)
            except OSError:
                pass
            return
        try:  # uvloop's transports: abort() closes the handle without writing (refused once closed)
            transport.abort()
        except Exception:
            pass
        return
    try:
        sock = stream.get_extra_info("socket")  # httpcore's sync stream: the socket itself
    except Exception:
        return
    if isinstance(sock, socket.socket):
        sock.close()


def _after_fork_in_child() -> None:
    global _states_lock, _states
    for sync_pool in list(_sync_pools):
        sync_pool.after_fork_in_child()
    for loop_pool in list(_loop_pools):
        loop_pool.after_fork_in_child()
    _states_lock = threading.Lock()
    _states = weakref.WeakKeyDictionary()  # the parent's loops: never used in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
