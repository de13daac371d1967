"""The registry's figures as OpenTelemetry metrics: `instrument` and `uninstrument`.

>>> import registry
>>> registry.instrument()                            # the global MeterProvider
>>> registry.instrument(meter_provider=provider)     # or a given one

One call covers every registry of the process: the default one, those already made and those
made later. The instruments are observable: at collection time they read the counters each
registry keeps anyway, so a hit does no extra work. The one synchronous instrument, the build
duration histogram, is fed from the registry's build hook, after a build, off the hit path.

Attributes stay few and bounded: a provider name, sync or async, a result or reason. Never a
key, a fingerprint, a config hash or a profile name. docs/metrics.md lists every instrument
and its Prometheus name. ``opentelemetry-api`` (the ``[otel]`` extra) is imported by
`instrument`, not by importing this module.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from registry import _registry
from registry._registry import Registry, RegistryTotals
from registry.providers import BUILDERS

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

    from registry.recorder import IndexRecorder

__all__ = ["PROVIDER_NAMES", "Instrumentation", "instrument", "uninstrument"]

METER_NAME = "clientreg"

PROVIDER_NAMES: dict[str, str] = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "groq": "groq",
    "cerebras": "cerebras",  # not among the spec's well-known values: its own lowercase name, as the spec asks
}
"""clientreg's provider names -> values of the OpenTelemetry attribute ``gen_ai.provider.name``."""

PROVIDER = "gen_ai.provider.name"
KINDS = ("sync", "async")
EVICTION_REASONS = ("lru", "idle", "close")
BUILD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Build-duration bucket bounds (seconds): a build on a shared pool takes ~0.1 ms, the first
build of a provider also imports its SDK (0.3-1 s)."""


def provider_name(provider: str) -> str:
    """The ``gen_ai.provider.name`` value of a clientreg provider name."""
    return PROVIDER_NAMES.get(provider, provider)


# ---- every registry of the process, from its start --------------------------------------------


@dataclass
class _Totals:
    """Counters summed over registries: gets by result, builds, evictions by reason, index faults."""

    hits: int = 0
    misses: int = 0
    builds: int = 0
    evictions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVICTION_REASONS, 0))
    index_failures: int = 0
    dropped_uses: int = 0
    dropped_events: int = 0

    def copy(self) -> _Totals:
        return _Totals(
            self.hits,
            self.misses,
            self.builds,
            dict(self.evictions),
            self.index_failures,
            self.dropped_uses,
            self.dropped_events,
        )

    def add(self, totals: RegistryTotals) -> None:
        hits, misses, builds, evictions = totals
        self.hits += hits
        self.misses += misses
        self.builds += builds
        for reason, count in evictions.items():
            self.evictions[reason] = self.evictions.get(reason, 0) + count

    def add_index(self, recorder: IndexRecorder | None) -> None:
        if recorder is None:
            return
        stats = recorder.stats()
        self.index_failures += stats.failed_flushes
        self.dropped_uses += stats.dropped_uses
        self.dropped_events += stats.dropped_events


class _Watched:
    """One registry: a reader of its totals that does not hold the registry, and its recorder.

    The reader outlives the registry, so a registry's counts stay in the process totals after
    it is garbage collected (counters never go down). Its index recorder is noted at each
    collection (the registry makes it lazily, on its first miss) and read once more when the
    registry is gone.
    """

    __slots__ = ("generation", "read", "recorder", "registry")

    def __init__(self, registry: Registry, generation: int) -> None:
        self.registry = weakref.ref(registry)
        self.read: Callable[[], RegistryTotals] = registry._totals_reader()
        self.recorder: IndexRecorder | None = None
        self.generation = generation


@dataclass
class _Live:
    """What the live registries hold now."""

    clients: dict[tuple[str, str], int] = field(default_factory=dict)  # (provider, kind) -> clients
    pools: int = 0
    event_loops: int = 0
    pending_uses: int = 0
    pending_events: int = 0


class _Watch:
    """Every registry of the process, from its creation (or from the first `instrument` call).

    A registry is watched from the hook `Registry.__init__` calls; the registries made before
    the first `instrument` come from ``_live_registries``. When a registry is collected, a
    finalizer only appends its `_Watched` to a deque (it may run anywhere, even inside a
    collection holding the lock); the next collection or registry creation folds its final
    totals into ``gone``.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = False
        self.generation = 0
        self.watched: dict[int, _Watched] = {}  # id(_Watched) -> _Watched
        self.seen: weakref.WeakSet[Registry] = weakref.WeakSet()
        self.dead: deque[_Watched] = deque()  # appended by finalizers, lock-free
        self.gone = _Totals()  # the final totals of registries garbage collected

    def start(self) -> None:
        """Watch every registry from now on (idempotent): those alive now and every new one."""
        with self.lock:
            if self.started:
                return
            self.started = True
            # Hook first, then the registries alive: one made meanwhile is in both, watched once.
            _registry._new_registry_hooks.append(self.on_new_registry)
            for registry in list(_registry._live_registries):
                self._watch(registry)

    def on_new_registry(self, registry: Registry) -> None:
        """Called by `Registry.__init__`: watch it, and fold the registries gone meanwhile."""
        with self.lock:
            self._fold_dead()
            self._watch(registry)

    def _watch(self, registry: Registry) -> None:
        """Watch ``registry`` from now until it is collected; feed its builds to the histogram (lock held)."""
        if registry in self.seen:
            return
        self.seen.add(registry)
        watched = _Watched(registry, self.generation)
        self.watched[id(watched)] = watched
        weakref.finalize(registry, self.dead.append, watched)
        registry._counters().build_hooks.append(_on_build)

    def _fold_dead(self) -> None:
        """Add the final totals of registries collected since the last fold (lock held)."""
        while self.dead:
            watched = self.dead.popleft()
            if watched.generation != self.generation:
                continue  # a parent's registry, finalized in a forked child
            if self.watched.pop(id(watched), None) is None:
                continue
            self.gone.add(watched.read())
            self.gone.add_index(watched.recorder)
            watched.recorder = None  # let the recorder go

    def _note_recorders(self) -> Iterator[tuple[_Watched, Registry | None]]:
        """Every watched registry, alive (with its recorder noted) or collected and not yet folded (lock held)."""
        for watched in list(self.watched.values()):
            registry = watched.registry()
            if registry is not None and watched.recorder is None:
                watched.recorder = registry._recorder
            yield watched, registry

    def totals(self) -> _Totals:
        """Counters summed over every registry watched, alive or gone."""
        with self.lock:
            self._fold_dead()
            totals = self.gone.copy()
            # A registry collected a moment ago is read too (its reader does not need it): its
            # finalizer may not have queued it yet, and counters must not dip meanwhile.
            for watched, _ in self._note_recorders():
                totals.add(watched.read())
                totals.add_index(watched.recorder)
            return totals

    def live(self) -> _Live:
        """What the registries alive hold now: clients, pools, loops, records waiting for the index."""
        live = _Live()
        with self.lock:
            self._fold_dead()
            for watched, registry in self._note_recorders():
                if registry is None:
                    continue  # collected: it holds nothing any more
                counters = registry._counters()
                for key, count in counters.live_clients.items():
                    live.clients[key] = live.clients.get(key, 0) + count
                live.pools += counters.live_pools
                live.event_loops += counters.event_loops
                if watched.recorder is not None:
                    stats = watched.recorder.stats()
                    live.pending_uses += stats.pending_uses
                    live.pending_events += stats.pending_events
        return live

    def after_fork_in_child(self) -> None:
        """Start over in a forked child: its registries start from zero (core resets them first)."""
        self.lock = threading.Lock()
        self.generation += 1
        self.watched = {}
        self.dead.clear()
        self.gone = _Totals()
        if self.started:
            for registry in list(_registry._live_registries):  # its build hook is in place already
                watched = _Watched(registry, self.generation)
                self.watched[id(watched)] = watched
                weakref.finalize(registry, self.dead.append, watched)


_watch = _Watch()

if hasattr(os, "register_at_fork"):  # registered after registry._registry's: runs after its reset
    os.register_at_fork(after_in_child=_watch.after_fork_in_child)


# ---- the instruments ----------------------------------------------------------------------------

_active: tuple[Instrumentation, ...] = ()  # replaced whole, so the build hook reads it without a lock
_instrumentations: list[Instrumentation] = []
_instrument_lock = threading.Lock()
_build_attributes: dict[tuple[str, bool], dict[str, str]] = {}


def _on_build(provider: str, is_async: bool, seconds: float) -> None:
    """The registries' build hook: one histogram record per active instrumentation."""
    active = _active
    if not active:
        return
    attributes = _build_attributes.get((provider, is_async))
    if attributes is None:
        attributes = _build_attributes[(provider, is_async)] = {
            PROVIDER: provider_name(provider),
            "kind": "async" if is_async else "sync",
        }
    for instrumentation in active:
        instrumentation._build_duration.record(seconds, attributes)


class Instrumentation:
    """The clientreg instruments on one meter provider, as `instrument` returns them.

    `uninstrument` stops their reports; `instrument` with the same provider starts them again
    (OpenTelemetry cannot remove an instrument from a meter, so they are kept, silent).
    """

    def __init__(self, meter_provider: MeterProvider) -> None:
        from opentelemetry.metrics import Observation

        self.meter_provider = meter_provider
        self._given: MeterProvider | None = meter_provider  # as passed to `instrument` (None: the global one)
        self._active = False
        self._observation = Observation
        meter = meter_provider.get_meter(METER_NAME, _version())
        self._build_duration: Histogram = meter.create_histogram(
            "clientreg.client.build.duration",
            unit="s",
            description="Time to build an SDK client on its shared pool (a first build imports the SDK)",
            explicit_bucket_boundaries_advisory=BUILD_BUCKETS,
        )
        meter.create_observable_counter(
            "clientreg.client.gets",
            [self._gets],
            unit="{get}",
            description="Requests for a client: result=hit found it ready, result=miss did not",
        )
        meter.create_observable_counter(
            "clientreg.client.builds",
            [self._builds],
            unit="{build}",
            description="SDK clients built (warm-start builds included)",
        )
        meter.create_observable_counter(
            "clientreg.client.evictions",
            [self._evictions],
            unit="{client}",
            description="Clients the registry let go, by reason: lru (max_clients), idle (max_idle, prune), close",
        )
        meter.create_observable_up_down_counter(
            "clientreg.client.count",
            [self._clients],
            unit="{client}",
            description="Clients the registries hold now",
        )
        meter.create_observable_up_down_counter(
            "clientreg.pool.count",
            [self._pools],
            unit="{pool}",
            description="Open shared HTTP clients (connection pools), sync and async",
        )
        meter.create_observable_up_down_counter(
            "clientreg.event_loop.count",
            [self._event_loops],
            unit="{event_loop}",
            description="Open event loops on which the registries' async pools have connections",
        )
        meter.create_observable_up_down_counter(
            "clientreg.index.pending",
            [self._index_pending],
            unit="{record}",
            description="Records waiting to be written to the key index: record=use (one per hand-out), record=event",
        )
        meter.create_observable_counter(
            "clientreg.index.write.failures",
            [self._index_failures],
            unit="{write}",
            description="Writes to the key index that failed (locked, unwritable, full, damaged); retried",
        )
        meter.create_observable_counter(
            "clientreg.index.dropped",
            [self._index_dropped],
            unit="{record}",
            description="Records never written to the key index (past the pending bound, or at close or exit)",
        )

    @property
    def active(self) -> bool:
        """True while the instruments report."""
        return self._active

    def uninstrument(self) -> None:
        """Stop reporting on this meter provider (idempotent)."""
        global _active
        with _instrument_lock:
            self._active = False
            _active = tuple(i for i in _active if i is not self)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        state = "active" if self._active else "stopped"
        return f"<clientreg Instrumentation on {type(self.meter_provider).__name__}, {state}>"

    # ---- callbacks (collection time) ----

    def _observe(self, points: Iterable[tuple[int, dict[str, str]]]) -> list[Observation]:
        return [self._observation(value, attributes) for value, attributes in points]

    def _gets(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        totals = _watch.totals()
        return self._observe([(totals.hits, {"result": "hit"}), (totals.misses, {"result": "miss"})])

    def _builds(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        return self._observe([(_watch.totals().builds, {})])

    def _evictions(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        evictions = _watch.totals().evictions
        return self._observe((count, {"reason": reason}) for reason, count in evictions.items())

    def _clients(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        clients = dict.fromkeys(((p, k) for p in BUILDERS for k in KINDS), 0)  # steady series, zeros too
        clients.update(_watch.live().clients)
        return self._observe(
            (count, {PROVIDER: provider_name(provider), "kind": kind}) for (provider, kind), count in clients.items()
        )

    def _pools(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        return self._observe([(_watch.live().pools, {})])

    def _event_loops(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        return self._observe([(_watch.live().event_loops, {})])

    def _index_pending(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        live = _watch.live()
        return self._observe([(live.pending_uses, {"record": "use"}), (live.pending_events, {"record": "event"})])

    def _index_failures(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        return self._observe([(_watch.totals().index_failures, {})])

    def _index_dropped(self, options: CallbackOptions) -> list[Observation]:
        if not self._active:
            return []
        totals = _watch.totals()
        return self._observe([(totals.dropped_uses, {"record": "use"}), (totals.dropped_events, {"record": "event"})])


def instrument(meter_provider: MeterProvider | None = None) -> Instrumentation:
    """Report every registry's figures as OpenTelemetry metrics; return the handle that stops them.

    >>> handle = registry.instrument()          # the global MeterProvider (set it before or after)
    >>> handle.uninstrument()                   # or registry.uninstrument()

    Idempotent: a second call with the same provider returns the same handle (started again if
    it was stopped). Another provider gets its own instruments. Needs ``opentelemetry-api``
    (``pip install 'clientreg[otel]'``); the SDK and exporters are the application's.
    """
    global _active
    try:
        from opentelemetry import metrics
    except ImportError as exc:
        raise ImportError(
            "registry.instrument() needs the OpenTelemetry API: pip install 'clientreg[otel]' "
            "(and an OpenTelemetry SDK with an exporter to see the figures)"
        ) from exc
    with _instrument_lock:
        # None means "the global provider" for good: before the application sets one, the API
        # hands out a proxy that forwards to it later, so it is not looked up again.
        found = next((i for i in _instrumentations if i._given is meter_provider), None)
        if found is None:
            _watch.start()
            provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
            found = Instrumentation(provider)
            found._given = meter_provider
            _instrumentations.append(found)
        if not found._active:
            found._active = True
            _active = (*_active, found)
        return found


def uninstrument() -> None:
    """Stop every clientreg instrument's reports (idempotent).

    The bookkeeping stays: one small reader per registry, so counters resume where they were
    when `instrument` is called again.
    """
    for instrumentation in list(_instrumentations):
        instrumentation.uninstrument()


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clientreg")
    except PackageNotFoundError:
        return None
