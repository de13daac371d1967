"""IndexRecorder: records builds and uses into the KeyIndex from a background thread.

The registry calls ``built``/``evicted`` (a lock held for a list append, no I/O) and
``UseCounter.hit`` on every hand-out (one atomic ``next()`` on an ``itertools.count``).
A daemon thread, started on first use, opens the index lazily and writes everything every
``flush_interval`` seconds, at ``flush()``/``close()`` and at interpreter exit. When the
index is unwritable, full, locked or corrupt, clients are still handed out, one warning is
logged per recorder, and the counts wait in memory for the next try.

>>> recorder = IndexRecorder("index.sqlite")
>>> counter = recorder.built(settings, "fast"); counter.hit()
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from registry._counter import Count
from registry.index import (
    ConfigUse,
    Drift,
    IndexCorruptError,
    IndexMissingError,
    IndexVersionError,
    KeyIndex,
    KeyIndexError,
    NewEvent,
    RecentProfile,
    move_aside,
)

if TYPE_CHECKING:
    from schemas import ProviderSettings

logger = logging.getLogger("clientreg.index")

__all__ = ["IndexRecorder", "RecentProfile", "UseCounter"]

_EXIT_FLUSH_TIMEOUT = 3.0
_MAX_PENDING_EVENTS = 10_000  # while the index is down, keep this many evictions at most


class UseCounter(Count):
    """How many times the registry handed out the client of one (config_hash, profile).

    The registry calls ``hit()`` on every hand-out, the first included (see `Count`).
    """

    __slots__ = ()


@dataclass(slots=True)
class _Tracked:
    """A (config_hash, profile) this process built: its counter and what is written so far."""

    counter: UseCounter
    config_hash: str
    profile: str | None
    settings: ProviderSettings | None  # until the thread turns it into provider + canonical dict
    provider: str = ""
    config: dict[str, Any] | None = None
    written: int = 0  # hits already in the index (or, after fork, the parent's to write)


@dataclass(slots=True)
class _Build:
    tracked: _Tracked
    kind: Literal["built", "warm"]
    time: float
    pid: int


class _Core:
    """The recorder's state and thread. Holds no reference to the IndexRecorder, so it can be collected."""

    def __init__(self, path: Path, flush_interval: float, busy_timeout: float) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.busy_timeout = busy_timeout
        self._reset()

    def _reset(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.tracked: dict[tuple[str, str | None], _Tracked] = {}
        self.builds: list[_Build] = []
        self.events: list[NewEvent] = []
        self.thread: threading.Thread | None = None
        self.index: KeyIndex | None = None
        self.stopping = False
        self.closed = False
        self.requested = 0  # flush generations asked for ...
        self.done = 0  # ... and completed,
        self.done_ok = True  # with the outcome of the last one
        self.disabled = False  # the index refuses this clientreg version: stop writing
        self.warned = False  # one warning per recorder (and per forked child)
        self.recovered = False

    # ---- called from the registry's threads ----

    def built(
        self, settings: ProviderSettings, profile: str | None, kind: Literal["built", "warm"] | None
    ) -> UseCounter:
        key = (settings.config_hash, profile)
        with self.cond:
            tracked = self.tracked.get(key)
            if tracked is None:
                tracked = self.tracked[key] = _Tracked(UseCounter(), key[0], profile, settings)
            if not self.closed and not self.disabled:
                if kind is not None:
                    self.builds.append(_Build(tracked, kind, time.time(), os.getpid()))
                self._ensure_thread()
            return tracked.counter

    def evicted(self, config_hash: str, profile: str | None) -> None:
        with self.cond:
            if self.closed or self.disabled:
                return
            self.events.append(NewEvent(time.time(), config_hash, profile, "evicted"))
            del self.events[:-_MAX_PENDING_EVENTS]
            self._ensure_thread()

    def flush(self, timeout: float | None) -> bool:
        with self.cond:
            if self.thread is None or not self.thread.is_alive():
                return not self.builds and not self.events  # nothing recorded, or closed
            self.requested += 1
            wanted = self.requested
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: self.done >= wanted, timeout):
                return False
            return self.done_ok

    def close(self, timeout: float | None) -> None:
        with self.cond:
            if self.closed:
                return
            thread = self.thread
            self.closed = self.stopping = True
            self.requested += 1
            self.cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stop_soon(self) -> None:
        """The recorder was garbage collected: let the thread write what it has and end."""
        with self.cond:
            self.closed = self.stopping = True
            self.cond.notify_all()

    def after_fork_in_child(self) -> None:
        # The parent's thread, lock and sqlite connection do not exist in this process; keep
        # the parent's connection referenced (never closed here) and start over. Counters the
        # registry already holds stay valid: the hits so far are the parent's to write.
        if self.index is not None:
            _ABANDONED.append(self.index)
        tracked = self.tracked
        closed = self.closed
        self._reset()
        self.closed = self.stopping = closed
        for key, item in tracked.items():
            item.written = item.counter.total()
            self.tracked[key] = item

    def _ensure_thread(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="clientreg-index-recorder", daemon=True)
            self.thread.start()

    # ---- the background thread ----

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self.cond:
                if self.thread is not me:
                    return  # reset after a fork in this (child) process
                self.cond.wait_for(lambda: self.stopping or self.requested > self.done, self.flush_interval)
                wanted, stopping = self.requested, self.stopping
            try:
                ok = self._flush_once()
            except Exception:  # never let the thread die (a bug here must not stop recording)
                logger.debug("clientreg: index flush failed", exc_info=True)
                ok = False
            with self.cond:
                if self.thread is not me:
                    return
                self.done, self.done_ok = max(self.done, wanted), ok
                self.cond.notify_all()
            if stopping:
                if self.index is not None:
                    self.index.close()
                    self.index = None
                return

    def _flush_once(self) -> bool:
        """Write queued builds, evictions and new uses in one batch; True when all are written."""
        with self.cond:
            builds, self.builds = self.builds, []
            events, self.events = self.events, []
            tracked = list(self.tracked.values())
            totals = [item.counter.total() for item in tracked]
        if self.disabled:
            return False
        by_key: dict[int, ConfigUse] = {}
        uses: list[ConfigUse] = []
        for build in builds:
            _describe(build.tracked)
            uses.append(_use(build.tracked, build.time, 0, build.kind, build.pid))
        now = time.time()
        pid = os.getpid()
        for i, (item, total) in enumerate(zip(tracked, totals, strict=True)):
            if total > item.written:
                _describe(item)
                by_key[i] = _use(item, now, total - item.written, None, pid)
        uses.extend(by_key.values())
        if not uses and not events:
            return True
        try:
            drifts = self._apply(uses, events)
        except Exception as exc:  # the thread must survive anything; the records wait for the next try
            self._failed(exc)
            with self.cond:  # keep them, in order, for the next try
                self.builds[:0] = builds
                self.events[:0] = events
                del self.events[:-_MAX_PENDING_EVENTS]
            return False
        for i, use in by_key.items():
            tracked[i].written += use.uses
        for drift in drifts:
            logger.warning("clientreg: %s", drift.describe())
        if self.warned and not self.recovered:
            self.recovered = True
            logger.info("clientreg: key index %s is writable again; pending records written", self.path)
        return True

    def _apply(self, uses: list[ConfigUse], events: list[NewEvent]) -> list[Drift]:
        if self.index is None:
            self.index = KeyIndex(self.path, busy_timeout=self.busy_timeout, retry_for=self.busy_timeout)
        try:
            return self.index.apply(uses, events)
        except IndexCorruptError as exc:
            # Damage found while writing: move the file aside, start a new index, write there.
            self.index.close()
            self.index = None
            moved = move_aside(self.path)
            logger.warning(
                "clientreg: key index %s is damaged (%s); moved it aside to %s and started a new index",
                self.path,
                exc,
                moved.name if moved else "(already moved)",
            )
            self.index = KeyIndex(self.path, busy_timeout=self.busy_timeout, retry_for=self.busy_timeout)
            return self.index.apply(uses, events)

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, IndexVersionError):
            self.disabled = True  # a newer clientreg owns this file: never touch it
        elif not isinstance(exc, KeyIndexError) and self.index is not None:
            self.index.close()  # an unexpected error: start from a fresh connection next time
            self.index = None
        if not self.warned:
            self.warned = True
            logger.warning(
                "clientreg: cannot record to the key index (%s); clients are still handed out, "
                "uses are kept in memory and retried",
                exc,
            )


def _describe(item: _Tracked) -> None:
    if item.settings is not None:  # canonical form computed here, off the registry's path
        item.provider = item.settings.provider
        item.config = item.settings.canonical_dict()
        item.settings = None


def _use(item: _Tracked, at: float, uses: int, kind: Literal["built", "warm"] | None, pid: int) -> ConfigUse:
    assert item.config is not None
    return ConfigUse(item.config_hash, item.provider, item.config, item.profile, at, uses, kind, pid=pid)


class IndexRecorder:
    """Records which configs this process built and how often it handed them out.

    Never blocks or raises on the registry's path; see the module docstring.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, flush_interval: float = 1.0, busy_timeout: float = 10.0
    ) -> None:
        self._core = _Core(Path(path).expanduser(), flush_interval, busy_timeout)
        self._finalizer = weakref.finalize(self, _Core.stop_soon, self._core)
        self._finalizer.atexit = False  # _flush_all_at_exit does it, with a bounded wait
        _LIVE.add(self)

    @property
    def path(self) -> Path:
        """The index file."""
        return self._core.path

    def built(
        self, settings: ProviderSettings, profile: str | None, *, kind: Literal["built", "warm"] | None = "built"
    ) -> UseCounter:
        """Queue a build record; return the (config_hash, profile)'s counter, the same one every time.

        ``kind=None``: a profile asked for a client this process already built under another
        name; its uses are counted and the profile recorded, with no ``built`` event.
        """
        return self._core.built(settings, profile, kind)

    def evicted(self, config_hash: str, profile: str | None) -> None:
        """Queue an ``evicted`` event."""
        self._core.evicted(config_hash, profile)

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Write everything queued and counted so far; False if not written within ``timeout``."""
        return self._core.flush(timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Flush and stop the thread (idempotent); later records are dropped."""
        self._core.close(timeout)
        self._finalizer.detach()
        _LIVE.discard(self)

    def recent_profiles(self, *, limit: int, max_age: float | None) -> list[RecentProfile]:
        """Profiles last used most recently, newest first (a blocking read; [] when unreadable)."""
        try:
            with KeyIndex(self.path, create=False, busy_timeout=self._core.busy_timeout) as index:
                return index.recent_profiles(limit, max_age)
        except IndexMissingError:
            return []
        except (KeyIndexError, OSError) as exc:
            if not self._core.warned:
                self._core.warned = True
                logger.warning("clientreg: cannot read the key index (%s); warm start skipped", exc)
            return []

    def __repr__(self) -> str:
        return f"IndexRecorder({str(self.path)!r})"


_LIVE: weakref.WeakSet[IndexRecorder] = weakref.WeakSet()
_ABANDONED: list[KeyIndex] = []  # a parent's connections, kept unclosed in a forked child


def _flush_all_at_exit() -> None:
    for recorder in list(_LIVE):
        recorder.close(_EXIT_FLUSH_TIMEOUT)


def _after_fork_in_child() -> None:
    for recorder in list(_LIVE):
        recorder._core.after_fork_in_child()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
