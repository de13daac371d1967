"""IndexRecorder: records builds, uses and evictions into the key index from a background thread.

The registry calls ``built``/``evicted`` (a lock held for a dict update, no I/O) and
``UseCounter.hit`` on every hand-out (one atomic ``next()`` on an ``itertools.count``). A
daemon thread, started on first use, opens the index lazily and writes every
``flush_interval`` seconds, sooner when many records wait, at ``flush()``/``close()`` and at
interpreter exit.

Memory is bounded by what the registry holds, not by how often clients churn:

- One small record per (config, profile) whose counter the registry holds: the hash, the
  canonical JSON (a few hundred bytes; the settings object is not kept), the count, and its
  builds and evictions since the last write, each kind one entry with a count however often
  it repeats. The recorder holds the counter weakly: once the registry lets the client go
  and the counter is collected, the record's last uses and events are written and the
  record forgotten. A later build gets a fresh counter.
- The index coalesces events further (one row per event and day), so churn does not grow
  the index either.
- At most ``max_pending`` records wait with something unwritten beyond those the registry
  holds. Writes go in batches of a few hundred, so a write's own memory is small too. When
  the index is unwritable for long, or written more slowly than clients churn, the oldest
  records past the bound are dropped: one warning says so and `stats` counts what was lost.

When the index is unwritable, full, locked or damaged, clients are still handed out, one
warning is logged per outage, and everything waits in memory (within the bound) for the
next try. ``close()`` and interpreter exit wait about a second in all for a locked index
(one deadline shared by every recorder), then say how many uses and events were not
written.

>>> recorder = IndexRecorder("index.sqlite")
>>> counter = recorder.built(settings, "fast"); counter.hit()
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from registry.index import (
    ConfigUse,
    Drift,
    IndexCorruptError,
    IndexMissingError,
    IndexRefusedError,
    IndexVersionError,
    KeyIndex,
    KeyIndexError,
    NewEvent,
    RecentProfile,
    move_aside,
)
from registry.index.dsn import is_database_url, shown_location
from registry.index.records import current_host

if TYPE_CHECKING:
    from schemas import ProviderSettings

logger = logging.getLogger("clientreg.index")

__all__ = ["DEFAULT_RETENTION", "IndexRecorder", "RecentProfile", "RecorderStats", "UseCounter"]

DEFAULT_RETENTION: Final = 90 * 86_400.0
"""Events older than this (90 days) are removed by the recorder; configs and their totals stay."""

CLOSE_TIMEOUT: Final = 1.0
"""How long ``close()`` and interpreter exit wait, in all, for the last write (seconds)."""

_MAX_PENDING: Final = 2_000  # records waiting beyond those the registry holds (about 1 KB each)
_CANONICAL_CACHE: Final = 512  # canonical JSON kept per config hash, for configs that churn
_HURRY_AT: Final = 500  # this many records waiting: write now rather than at the next interval
_BATCH: Final = 500  # records written per transaction: bounds the memory a write takes
_TRIM_EVERY: Final = 3_600.0  # seconds between two retention passes of one recorder
_ATTEMPT: Final = 0.05  # longest wait inside SQLite for a lock before Python checks the deadline again
_GRACE: Final = 0.25  # after the exit deadline, for threads that gave up to report what was not written
_BLOCKED_FOR: Final = 60.0  # a close this soon after another found the same file locked does not wait

Kind = Literal["built", "warm"]


class UseCounter:
    """How many times the registry handed out the client of one (config_hash, profile).

    The registry calls ``hit()`` on every hand-out, the first included: the bound ``__next__``
    of an ``itertools.count``, one C call, atomic under the GIL, so no increment is lost.
    """

    __slots__ = ("__weakref__", "hit")

    hit: Callable[[], object]
    """Count one hand-out."""

    def __init__(self, hit: Callable[[], object]) -> None:
        self.hit = hit


@dataclass(slots=True)
class _Pending:
    """Builds or evictions of one kind since the last write: how many, first and last time."""

    first: float
    last: float
    count: int
    pid: int

    def add(self, other: _Pending) -> None:
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        self.count += other.count


def _pend(entries: dict[str, _Pending], kind: str) -> bool:
    """Count one ``kind`` now into ``entries``; True when it is the entry's first."""
    now = time.time()
    entry = entries.get(kind)
    if entry is not None:
        entry.last = max(entry.last, now)
        entry.count += 1
        return False
    entries[kind] = _Pending(now, now, 1, os.getpid())
    return True


class _Tracked:
    """A (config_hash, profile) built in this process: its count, its pending events, what is written."""

    __slots__ = (
        "carry",
        "config_hash",
        "config_json",
        "count",
        "pending",
        "profile",
        "provider",
        "reads",
        "settings",
        "written",
    )

    def __init__(
        self, config_hash: str, profile: str | None, provider: str, config_json: str, settings: ProviderSettings | None
    ) -> None:
        self.config_hash = config_hash
        self.profile = profile
        self.provider = provider
        self.config_json = config_json  # the canonical JSON: a few hundred bytes ...
        self.settings = settings  # ... made from this by the thread, which then lets it go
        self.count = itertools.count()
        self.reads = 0  # next() calls made by total() itself
        self.written = 0  # uses already in the index (or, after fork, the parent's to write)
        self.carry = 0  # unwritten uses of earlier records of this (config, profile), folded in
        self.pending: dict[str, _Pending] = {}  # "built", "warm", "evicted" since the last write

    def total(self) -> int:
        """Hits so far; called with the recorder's lock held (one reader at a time)."""
        value = next(self.count) - self.reads
        self.reads += 1
        return value

    def unwritten(self) -> int:
        """Uses counted and not yet written (lock held)."""
        return max(self.total() - self.written, 0) + self.carry

    def fold(self, other: _Tracked) -> None:
        """Take over the unwritten uses and events of ``other``, an earlier record let go (lock held)."""
        self.carry += other.unwritten()
        other.written, other.carry = other.total(), 0
        for kind, entry in other.pending.items():
            mine = self.pending.get(kind)
            if mine is None:
                self.pending[kind] = entry
            else:
                mine.add(entry)
        other.pending = {}

    def records(
        self, pending: dict[str, _Pending], total: int, carry: int, now: float
    ) -> tuple[list[ConfigUse], list[NewEvent]]:
        """What to write for ``pending`` events, the uses up to ``total`` and ``carry`` more."""
        if self.settings is not None:  # made after the thread's last look: describe it now
            self.config_json, self.settings = self.settings.canonical_json(), None
        uses: list[ConfigUse] = []
        events: list[NewEvent] = []
        for kind, e in pending.items():
            if kind == "evicted":
                events.append(
                    NewEvent(
                        e.first, self.config_hash, self.profile, "evicted", pid=e.pid, count=e.count, last_time=e.last
                    )
                )
            else:
                built: Kind = "warm" if kind == "warm" else "built"
                detail = {"key_id": _key_id()}  # hosts whose fingerprint keys differ show up in the index
                uses.append(self._use(e.first, 0, e.pid, built, count=e.count, last_time=e.last, detail=detail))
        if total - self.written + carry > 0:
            uses.append(self._use(now, total - self.written + carry, os.getpid()))
        return uses, events

    def _use(self, at: float, uses: int, pid: int, kind: Kind | None = None, **more: Any) -> ConfigUse:
        return ConfigUse(
            self.config_hash, self.provider, self.config_json, self.profile, at, uses, kind, pid=pid, **more
        )


class _HandleRef(weakref.ref[UseCounter]):
    """A weak reference to a counter the registry holds; its callback queues it as let go."""

    __slots__ = ("tracked",)
    tracked: _Tracked


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """What the recorder holds, wrote, and could not write (for metrics and health checks)."""

    tracked: int
    """(config, profile) pairs whose counters the registry holds."""
    pending_uses: int
    """Hand-outs counted and not yet written."""
    pending_events: int
    """Builds and evictions waiting to be written (each counted as often as it happened)."""
    written_uses: int
    written_events: int
    failed_flushes: int
    """Writes that failed (locked, unwritable, full, damaged); what they held was kept for the next."""
    dropped_uses: int
    """Uses never written: past the pending bound, not written by close or exit, or recording off."""
    dropped_events: int
    recording: bool
    """False once closed, or when the index was refused (another program's or user's file, newer version)."""
    last_error: str | None


@dataclass(slots=True)
class _Batch:
    """One write: records with what they had pending when taken, and uses counted so far."""

    items: list[tuple[_Tracked, dict[str, _Pending], int, int]]
    retired: list[_Tracked]
    orphans: dict[tuple[str, str | None], _Pending]

    def events_count(self) -> int:
        return sum(e.count for _, p, _, _ in self.items for e in p.values()) + sum(
            e.count for e in self.orphans.values()
        )


class _Core:
    """The recorder's state and thread. Holds no reference to the IndexRecorder, so it can be collected."""

    def __init__(
        self, path: Path | str, flush_interval: float, busy_timeout: float, retention: float | None, max_pending: int
    ) -> None:
        self.path = path  # a file, or a postgresql:// URL (which may hold a password: messages use `shown`)
        self.shown = shown_location(path)
        self.flush_interval = flush_interval
        self.busy_timeout = busy_timeout
        self.retention = retention
        self.max_pending = max_pending
        self.fold_at = max(1, min(_HURRY_AT, max_pending // 4))  # let-go counters folded by the registry's thread
        self.released: deque[_HandleRef] = deque()  # appended by weakref callbacks, lock-free
        self.canonical: dict[str, str] = {}  # config_hash -> canonical JSON, the last thousand or so
        self.undescribed: list[_Tracked] = []  # records still holding their settings object
        self.written_uses = self.written_events = 0
        self.failed_flushes = self.dropped_uses = self.dropped_events = 0
        self.last_error: str | None = None
        self._reset()

    def _reset(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.live: dict[tuple[str, str | None], _HandleRef] = {}
        self.dirty: dict[int, _Tracked] = {}  # live records with pending events, by id, oldest first
        # Let go by the registry, not yet written, oldest first: one per (config, profile), so a
        # config rebuilt and evicted a thousand times before the next write is one record here.
        self.retired: dict[tuple[str, str | None], _Tracked] = {}
        self.orphans: dict[tuple[str, str | None], _Pending] = {}  # evictions of records no longer held
        self.inflight: set[int] = set()  # records in the write going on now
        self.thread: threading.Thread | None = None
        self.index: KeyIndex | None = None
        self.stopping = False
        self.closed = False
        self.hurry = False
        self.healthy = True
        self.deadline: float | None = None
        self.requested = 0  # flush generations asked for ...
        self.done = 0  # ... and completed,
        self.done_ok = True  # with the outcome of the last one
        self.disabled = False  # the index was refused (not ours, newer version): stop recording
        self.warned = False  # one warning per outage (reset when a write succeeds again)
        self.bound_warned = False
        self.fleet_checked = False  # the fingerprint key ids of other hosts compared with ours
        self.last_trim = -_TRIM_EVERY

    # ---- called from the registry's threads ----

    def built(self, settings: ProviderSettings, profile: str | None, kind: Kind | None) -> UseCounter:
        key = (settings.config_hash, profile)
        made = ""
        if len(self.undescribed) >= _HURRY_AT and key[0] not in self.canonical:
            made = settings.canonical_json()  # the thread is behind: do not keep more settings objects
        with self.cond:
            if self.closed or self.disabled:
                self.dropped_events += kind is not None
                return UseCounter(itertools.count().__next__)  # counted nowhere, kept by nobody
            ref = self.live.get(key)
            handle = None if ref is None else ref()
            if handle is None:
                # The index stores the canonical JSON. A config churning through the registry has
                # it in a small cache; otherwise the thread makes it, off the registry's path, and
                # then lets the settings object go (it does so before each write, even a failing one).
                config_json = made or self.canonical.get(key[0], "")
                tracked = _Tracked(key[0], profile, settings.provider, config_json, None if config_json else settings)
                if not config_json:
                    self.undescribed.append(tracked)
                handle = UseCounter(tracked.count.__next__)
                ref = _HandleRef(handle, self.released.append)
                ref.tracked = tracked
                self.live[key] = ref
            assert ref is not None
            if kind is not None:
                self._mark(ref.tracked, kind)
            self._ensure_thread()
            return handle

    def evicted(self, config_hash: str, profile: str | None) -> None:
        key = (config_hash, profile)
        with self.cond:
            if self.closed or self.disabled:
                self.dropped_events += 1
                return
            ref = self.live.get(key)
            retired = self.retired.get(key)
            if ref is not None:
                self._mark(ref.tracked, "evicted")
            elif retired is not None:
                _pend(retired.pending, "evicted")
            elif self._room() or key in self.orphans:
                found = self.orphans.get(key)
                if found is None:
                    now = time.time()
                    self.orphans[key] = _Pending(now, now, 1, os.getpid())
                else:
                    found.last, found.count = max(found.last, time.time()), found.count + 1
            else:
                self.dropped_events += 1
            self._ensure_thread()

    def _mark(self, tracked: _Tracked, kind: str) -> None:
        """Count a build or eviction of a live record (lock held); a new waiting record past the bound is dropped."""
        if len(self.released) >= self.fold_at:
            # Counters let go faster than the thread looks: fold them here (a dict update each),
            # so what waits stays one record per (config, profile) whatever the thread is doing.
            self._retire_released()
        if id(tracked) not in self.dirty and not self._room():
            self.dropped_events += 1
            self.cond.notify_all()  # the thread says so, once
            return
        _pend(tracked.pending, kind)
        self.dirty[id(tracked)] = tracked
        if len(self.dirty) + len(self.retired) + len(self.released) >= _HURRY_AT and self.healthy and not self.hurry:
            self.hurry = True
            self.cond.notify_all()

    def _room(self) -> bool:
        # Counters let go and not yet folded are at most fold_at more (see _mark); most are in dirty.
        return len(self.dirty) + len(self.retired) + len(self.orphans) < self.max_pending

    def _start_for_uses(self) -> None:
        """Start the thread if uses wait with none to write them (lock held).

        A forked child keeps the parent's counters but not its thread: hand-outs of clients
        built before the fork start none, and their uses must still be written.
        """
        idle = self.thread is None and not self.closed and not self.disabled
        if idle and any(ref.tracked.unwritten() for ref in self.live.values()):
            self._ensure_thread()

    def flush(self, timeout: float | None) -> bool:
        with self.cond:
            self._start_for_uses()
            if self.thread is None or not self.thread.is_alive():
                return not self.dirty and not self.retired and not self.orphans  # nothing recorded, or closed
            self.requested += 1
            wanted = self.requested
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: self.done >= wanted, timeout):
                return False
            return self.done_ok

    def begin_close(self, deadline: float) -> threading.Thread | None:
        """Stop recording and ask the thread for a last write that gives up at ``deadline``.

        Returns the thread to wait for (until ``deadline``), or None when there is none.
        """
        with self.cond:
            if self.closed:
                return None
            self._start_for_uses()
            thread = self.thread
            self.closed = self.stopping = True
            self.deadline = deadline
            if self.index is not None:
                self.index.deadline = deadline
            self.requested += 1
            self.cond.notify_all()
        return thread if thread is not None and thread is not threading.current_thread() else None

    def stop_soon(self) -> None:
        """The recorder was garbage collected: let the thread write what it has and end."""
        with self.cond:
            self.closed = self.stopping = True
            self.cond.notify_all()

    def _all_records(self) -> list[_Tracked]:
        """Every record with something counted: live, let go and not yet retired, retired (lock held)."""
        found = {id(ref.tracked): ref.tracked for ref in self.live.values()}
        found.update((id(ref.tracked), ref.tracked) for ref in self.released)
        found.update((id(t), t) for t in self.retired.values())
        return list(found.values())

    def stats(self) -> RecorderStats:
        with self.cond:
            records = self._all_records()
            pending_uses = sum(t.unwritten() for t in records)
            pending_events = sum(e.count for t in records for e in t.pending.values())
            pending_events += sum(e.count for e in self.orphans.values())
            return RecorderStats(
                tracked=len(self.live),
                pending_uses=pending_uses,
                pending_events=pending_events,
                written_uses=self.written_uses,
                written_events=self.written_events,
                failed_flushes=self.failed_flushes,
                dropped_uses=self.dropped_uses,
                dropped_events=self.dropped_events,
                recording=not self.closed and not self.disabled,
                last_error=self.last_error,
            )

    def after_fork_in_child(self) -> None:
        # The parent's thread, lock and sqlite connection do not exist in this process; keep
        # the parent's connection referenced (never closed here) and start over. Counters the
        # registry holds stay valid: the hits so far, and everything pending, are the parent's
        # to write. The released queue is kept (live references append to it) but emptied.
        if self.index is not None:
            _ABANDONED.append(self.index)
        live, closed, disabled = self.live, self.closed, self.disabled
        self._reset()
        self.closed = self.stopping = closed
        self.disabled = disabled
        self.released.clear()
        self.undescribed = []
        for key, ref in live.items():
            if ref() is not None:
                ref.tracked.written, ref.tracked.carry = ref.tracked.total(), 0
                ref.tracked.pending = {}
                self.live[key] = ref
                if ref.tracked.settings is not None:
                    self.undescribed.append(ref.tracked)

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
                self.cond.wait_for(
                    lambda: self.stopping or self.requested > self.done or self.hurry, self.flush_interval
                )
                wanted, stopping = self.requested, self.stopping
                self.hurry = False
            try:
                ok = self._flush_once()
            except Exception as exc:  # never let the thread die (a bug here must not stop recording)
                logger.debug("clientreg: index flush failed", exc_info=True)
                self.last_error = f"{type(exc).__name__}: {exc}"
                ok = False
            with self.cond:
                if self.thread is not me:
                    return
                self.done, self.done_ok = max(self.done, wanted), ok
                self.healthy = ok
                self.cond.notify_all()
                bound_hit = self.dropped_events > 0 or self.dropped_uses > 0
            if bound_hit and not self.bound_warned and not stopping and not self.disabled:
                self.bound_warned = True
                logger.warning(
                    "clientreg: more than %d records waited for the key index %s; the oldest are dropped and "
                    "counted (IndexRecorder.stats()) while it is written more slowly than clients churn",
                    self.max_pending,
                    self.shown,
                )
            if stopping:
                self._finish(ok)
                return

    def _finish(self, ok: bool) -> None:
        """After the last write: count and report what could not be written, and close the index."""
        with self.cond:
            records = self._all_records()
            lost_uses = sum(t.unwritten() for t in records)
            lost_events = sum(e.count for t in records for e in t.pending.values())
            lost_events += sum(e.count for e in self.orphans.values())
            for t in records:
                t.written, t.carry = t.total(), 0
                t.pending = {}
            self.dirty, self.retired, self.orphans = {}, {}, {}
            self.dropped_uses += lost_uses
            self.dropped_events += lost_events
        if not ok and (lost_uses or lost_events):
            logger.warning(
                "clientreg: %d uses and %d events were not written to the key index %s before close (%s)",
                lost_uses,
                lost_events,
                self.shown,
                self.last_error or "not written in time",
            )
        if self.index is not None:
            self.index.close()
            self.index = None

    def _describe(self) -> None:
        """Give new records their canonical JSON and let their settings objects go (off the registry's path)."""
        with self.cond:
            todo, self.undescribed = self.undescribed, []
        for tracked in todo:
            settings = tracked.settings
            if settings is None:
                continue
            config_json = self.canonical.get(tracked.config_hash) or settings.canonical_json()
            tracked.config_json, tracked.settings = config_json, None
            self.canonical[tracked.config_hash] = config_json
            if len(self.canonical) > _CANONICAL_CACHE:
                del self.canonical[next(iter(self.canonical))]

    def _flush_once(self) -> bool:
        """Write what is pending and counted, a batch at a time; True when all of it is written."""
        first = True
        while True:
            self._describe()
            with self.cond:
                self._retire_released()
                batch = self._take(with_live=first)
                more = bool(self.dirty or self.orphans or len(self.retired) > len(batch.retired))
            if self.disabled:
                self._drop()
                return False
            if not self._write(batch):
                return False
            first = False
            if not more:
                break
        self._trim()
        return True

    def _retire_released(self) -> None:
        """Counters the registry let go (lock held): keep their record until its last uses are written."""
        later: list[_HandleRef] = []
        while self.released:
            ref = self.released.popleft()
            tracked = ref.tracked
            key = (tracked.config_hash, tracked.profile)
            if self.live.get(key) is ref:
                del self.live[key]
            self.dirty.pop(id(tracked), None)
            earlier = self.retired.get(key)
            if earlier is None:
                self.retired[key] = tracked
            elif id(tracked) in self.inflight:
                later.append(ref)  # being written now: folded once that write is over
            elif earlier is not tracked:
                earlier.fold(tracked)
        self.released.extend(later)
        excess = len(self.retired) + len(self.dirty) + len(self.orphans) - self.max_pending
        if excess <= 0:
            return
        # Written more slowly than clients churn, or not at all for long: drop the oldest, counted
        # (not those being written now: their uses are on their way).
        oldest = [key for key, t in self.retired.items() if id(t) not in self.inflight][:excess]
        for key in oldest:
            tracked = self.retired.pop(key)
            self.dropped_uses += tracked.unwritten()
            self.dropped_events += sum(e.count for e in tracked.pending.values())
            tracked.written, tracked.carry, tracked.pending = tracked.total(), 0, {}

    def _take(self, *, with_live: bool) -> _Batch:
        """The next batch (lock held): the oldest retired records, then live ones with pending events."""
        retired = list(itertools.islice(self.retired.values(), _BATCH))
        dirty = list(itertools.islice(self.dirty.values(), max(_BATCH - len(retired), 0)))
        for tracked in dirty:
            del self.dirty[id(tracked)]
        chosen = {id(t): t for t in (*retired, *dirty)}
        if with_live:  # uses counted on every held client since the last write
            chosen.update((id(ref.tracked), ref.tracked) for ref in self.live.values())
        items = []
        for tracked in chosen.values():
            pending, tracked.pending = tracked.pending, {}
            items.append((tracked, pending, tracked.total(), tracked.carry))
        orphans = dict(itertools.islice(self.orphans.items(), _BATCH))
        for key in orphans:
            del self.orphans[key]
        self.inflight = {id(tracked) for tracked, _, _, _ in items}
        return _Batch(items, retired, orphans)

    def _write(self, batch: _Batch) -> bool:
        now = time.time()
        uses: list[ConfigUse] = []
        events: list[NewEvent] = []
        for tracked, pending, total, carry in batch.items:
            more_uses, more_events = tracked.records(pending, total, carry, now)
            uses.extend(more_uses)
            events.extend(more_events)
        for (config_hash, profile), e in batch.orphans.items():
            events.append(
                NewEvent(e.first, config_hash, profile, "evicted", pid=e.pid, count=e.count, last_time=e.last)
            )
        if uses or events:
            try:
                drifts = self._apply(uses, events)
            except Exception as exc:  # the thread must survive anything; the records wait for the next try
                self._failed(exc)
                self._put_back(batch)
                if self.disabled:
                    self._drop()
                return False
            self.written_uses += sum(u.uses for u in uses)
            self.written_events += batch.events_count()
            for drift in drifts:
                logger.warning("clientreg: %s", drift.describe())
            if self.warned and not self.disabled:
                # The outage is over: say so, and warn again (once) if another one comes.
                self.warned = False
                logger.info("clientreg: key index %s is writable again; pending records written", self.shown)
            if not self.fleet_checked:
                self.fleet_checked = True
                self._check_fleet_key()
        with self.cond:
            self.inflight = set()
            for tracked, _, total, carry in batch.items:
                tracked.written = max(tracked.written, total)
                tracked.carry -= carry
            for tracked in batch.retired:
                key = (tracked.config_hash, tracked.profile)
                if self.retired.get(key) is tracked and not tracked.pending and not tracked.unwritten():
                    del self.retired[key]  # written, and nothing folded in meanwhile
        return True

    def _put_back(self, batch: _Batch) -> None:
        """A failed write: its pending events go back to their records, merged with what came meanwhile."""
        with self.cond:
            self.inflight = set()
            for tracked, pending, _, _ in batch.items:
                for kind, entry in pending.items():
                    newer = tracked.pending.get(kind)
                    if newer is None:
                        tracked.pending[kind] = entry
                    else:
                        newer.add(entry)
                if tracked.pending and self.retired.get((tracked.config_hash, tracked.profile)) is not tracked:
                    self.dirty[id(tracked)] = tracked
            for key, entry in batch.orphans.items():
                newer = self.orphans.get(key)
                if newer is None:
                    self.orphans[key] = entry
                else:
                    newer.add(entry)

    def _drop(self) -> None:
        """Recording is off for this file: forget everything, counting it."""
        with self.cond:
            records = self._all_records()
            self.dropped_uses += sum(t.unwritten() for t in records)
            self.dropped_events += sum(e.count for t in records for e in t.pending.values())
            self.dropped_events += sum(e.count for e in self.orphans.values())
            for t in records:
                t.written, t.carry = t.total(), 0
                t.pending = {}
            self.live, self.dirty, self.retired, self.orphans = {}, {}, {}, {}
            self.released.clear()
            self.undescribed = []
            self.inflight = set()

    def _open(self) -> KeyIndex:
        if self.index is None:
            # Short waits inside SQLite, retried in Python: a deadline set by close() is kept.
            attempt = min(self.busy_timeout, _ATTEMPT)
            index = KeyIndex(self.path, busy_timeout=attempt, retry_for=self.busy_timeout)
            with self.cond:
                self.index = index
        self.index.deadline = self.deadline  # read now: close() may have set it while the file was opened
        return self.index

    def _check_fleet_key(self) -> None:
        """Once per recorder: warn when hosts in the index use another fingerprint key than this one."""
        from registry.index.fleet import key_mismatch

        index = self.index
        if index is None:
            return
        try:
            message = key_mismatch(index.hosts(), current_host(), _key_id())
        except Exception as exc:  # a side check: never let it disturb recording
            logger.debug("clientreg: could not compare fingerprint key ids: %s", exc)
            return
        if message is not None:
            logger.warning("clientreg: %s", message)

    def _apply(self, uses: list[ConfigUse], events: list[NewEvent]) -> list[Drift]:
        index = self._open()
        try:
            drifts = index.apply(uses, events)
        except IndexCorruptError as exc:
            if not isinstance(self.path, Path):
                raise
            # Damage found while writing a file opened as our index: move it aside, start anew.
            index.close()
            self.index = None
            moved = move_aside(self.path)
            logger.warning(
                "clientreg: key index %s is damaged (%s); moved it aside to %s and started a new index",
                self.shown,
                exc,
                moved.name if moved else "(already moved)",
            )
            drifts = self._open().apply(uses, events)
        _BLOCKED.pop(self.path, None)
        return drifts

    def _trim(self) -> None:
        """Apply the retention setting: at most once an hour, remove events older than it."""
        if self.retention is None or self.index is None or time.monotonic() - self.last_trim < _TRIM_EVERY:
            return
        self.last_trim = time.monotonic()
        try:
            removed = self.index.prune_events(self.retention)
        except KeyIndexError as exc:
            logger.debug("clientreg: could not remove old events from the key index: %s", exc)
        else:
            if removed:
                logger.debug("clientreg: removed %d events older than the retention setting", removed)

    def _failed(self, exc: Exception) -> None:
        self.failed_flushes += 1
        self.last_error = str(exc)
        if self.closed and "locked" in self.last_error:
            _BLOCKED[self.path] = time.monotonic()  # later closes in this process only try quickly
        if isinstance(exc, IndexVersionError | IndexRefusedError):
            self.disabled = True  # another program's, another user's, or a newer clientreg's file
        elif not isinstance(exc, KeyIndexError) and self.index is not None:
            self.index.close()  # an unexpected error: start from a fresh connection next time
            self.index = None
        if self.warned:
            return
        self.warned = True
        if self.disabled:
            logger.warning("clientreg: not recording to the key index: %s; clients are still handed out", exc)
        else:
            logger.warning(
                "clientreg: cannot record to the key index (%s); clients are still handed out, "
                "uses are kept in memory and retried",
                exc,
            )


class IndexRecorder:
    """Records which configs this process built and how often it handed them out.

    Never blocks or raises on the registry's path; see the module docstring. ``retention``
    (seconds, None for no limit) is how old events may get before the recorder removes them;
    ``max_pending`` bounds what waits in memory for the index.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 1.0,
        busy_timeout: float = 10.0,
        retention: float | None = DEFAULT_RETENTION,
        max_pending: int = _MAX_PENDING,
    ) -> None:
        location = str(path).strip() if is_database_url(path) else Path(path).expanduser()
        self._core = _Core(location, flush_interval, busy_timeout, retention, max_pending)
        self._finalizer = weakref.finalize(self, _Core.stop_soon, self._core)
        self._finalizer.atexit = False  # _flush_all_at_exit does it, with a bounded wait
        _LIVE.add(self)

    @property
    def path(self) -> Path | str:
        """The index file, or the ``postgresql://`` URL of a fleet index without its password."""
        return self._core.path if isinstance(self._core.path, Path) else self._core.shown

    def built(self, settings: ProviderSettings, profile: str | None, *, kind: Kind | None = "built") -> UseCounter:
        """Queue a build record; return the (config_hash, profile)'s counter.

        The same counter while the registry holds it; after it was let go (and collected), a
        fresh one. ``kind=None``: a profile asked for a client this process already built
        under another name; its uses are counted and the profile recorded, with no ``built``
        event.
        """
        return self._core.built(settings, profile, kind)

    def evicted(self, config_hash: str, profile: str | None) -> None:
        """Queue an ``evicted`` event (coalesced with others of the same config and profile)."""
        self._core.evicted(config_hash, profile)

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Write everything queued and counted so far; False if not written within ``timeout``."""
        return self._core.flush(timeout)

    def close(self, timeout: float | None = CLOSE_TIMEOUT) -> None:
        """Write what is left and stop the thread (idempotent); later records are dropped.

        Waits at most ``timeout`` seconds for a locked or slow index, and only a moment when
        another close in this process just waited in vain for the same file; what is not
        written by then is counted in `stats` and reported in one warning.
        """
        now = time.monotonic()
        deadline = now + (timeout if timeout is not None else 1e9)
        blocked_at = _BLOCKED.get(self._core.path)
        if blocked_at is not None and now - blocked_at < _BLOCKED_FOR:
            deadline = now  # another close just waited its time for this file: one quick try, no wait
        thread = self._core.begin_close(deadline)
        if thread is not None:
            thread.join(max(deadline - time.monotonic(), 0.0))
            if thread.is_alive():  # locked or slow past the deadline: later closes of this file do not wait
                _BLOCKED[self._core.path] = time.monotonic()
                _CLOSING.append(thread)  # it ends on its own; interpreter exit waits for it (bounded)
        self._finalizer.detach()
        _LIVE.discard(self)

    def stats(self) -> RecorderStats:
        """What the recorder holds, has written, and could not write."""
        return self._core.stats()

    def recent_profiles(self, *, limit: int, max_age: float | None) -> list[RecentProfile]:
        """Profiles last used most recently, newest first (a read-only read; [] when unreadable)."""
        try:
            with KeyIndex(self._core.path, read_only=True, busy_timeout=min(self._core.busy_timeout, 0.25)) as index:
                return index.recent_profiles(limit, max_age)
        except IndexMissingError:
            return []
        except (KeyIndexError, OSError) as exc:
            if not self._core.warned:
                self._core.warned = True
                logger.warning("clientreg: cannot read the key index (%s); warm start skipped", exc)
            return []

    def __repr__(self) -> str:
        return f"IndexRecorder({self._core.shown!r})"


_LIVE: weakref.WeakSet[IndexRecorder] = weakref.WeakSet()
_ABANDONED: list[KeyIndex] = []  # a parent's connections, kept unclosed in a forked child
_BLOCKED: dict[Path | str, float] = {}  # files a close found locked, and when: later closes do not wait
_CLOSING: list[threading.Thread] = []  # threads of closed recorders still finishing their last write


def _key_id() -> str:
    global _fingerprint_key_id
    if _fingerprint_key_id is None:
        from schemas import fingerprint_key_id

        _fingerprint_key_id = fingerprint_key_id
    return _fingerprint_key_id()


_fingerprint_key_id: Callable[[], str] | None = None


def _flush_all_at_exit() -> None:
    # One deadline for every recorder: all are told to write at once, then waited for together.
    deadline = time.monotonic() + CLOSE_TIMEOUT
    recorders = list(_LIVE)
    threads = [r._core.begin_close(deadline) for r in recorders]
    for thread in [*threads, *_CLOSING]:
        if thread is not None:  # a moment past the deadline: a thread that gave up says what it lost
            thread.join(max(deadline + _GRACE - time.monotonic(), 0.0))
    for recorder in recorders:
        recorder._finalizer.detach()


def _after_fork_in_child() -> None:
    _BLOCKED.clear()
    _CLOSING.clear()
    for recorder in list(_LIVE):
        recorder._core.after_fork_in_child()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
