"""The record model of the key index, shared by every store: what is written and what is read.

A store (``sqlite.py``, ``postgres.py``) takes batches of `ConfigUse` and `NewEvent`, and
gives back `ConfigRecord`, `ConfigSummary`, `EventRecord`, `RecentProfile`, `Drift`,
`HostHead` and `HostRecord`. `plan_batch` is the one place that decides what a batch changes
(new configs, use counts, profile heads, drift, hosts), so every store merges writes the
same way. The errors below are the ones every store raises, so callers never see a driver's
exception.

Every write names the host it came from (``socket.gethostname()``, or ``$CLIENTREG_HOSTNAME``
where the machine's name says nothing, as in a container): a config lists the hosts that
used it, and a profile's head is kept per host, so a change on one host is that host's
drift, and hosts that disagree at the same time are a fleet's drift (`registry.index.fleet`).

Events are coalesced: the same event (config, profile, kind, host, pid, detail) repeated
within one UTC day is one row with a ``count`` and its first and last ``time``, so a client
built and evicted 10,000 times an hour costs one row per day, not 10,000.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

EventKind = Literal["first_seen", "built", "evicted", "warm", "drift"]

EVENT_WINDOW: Final = 86_400.0
"""Repeats of one event within one UTC day (in seconds since the epoch) share one row."""


class KeyIndexError(Exception):
    """Base of the errors the index raises; the message names the file and what to do."""


class IndexUnavailableError(KeyIndexError):
    """The index cannot be opened or written: unwritable place, full disk, or locked for too long."""


class IndexMissingError(IndexUnavailableError):
    """The index file does not exist and was opened with ``create=False`` (or read-only)."""


class IndexCorruptError(KeyIndexError):
    """A clientreg index that is damaged. A writer moves it aside and starts anew; a reader only reports it."""


class IndexVersionError(KeyIndexError):
    """The file was written by a newer clientreg (or holds an unknown schema version)."""


class IndexRefusedError(KeyIndexError):
    """A file clientreg will not use, and never moves or writes.

    Another program's database, a file that is not a database, a file owned by another user
    or writable by group or others, or a symbolic link to a missing file.
    """


class HashPrefixError(KeyIndexError, LookupError):
    """A hash prefix that is malformed, matches no config, or matches more than one."""

    def __init__(self, message: str, prefix: str, candidates: int) -> None:
        super().__init__(message)
        self.prefix = prefix
        self.candidates = candidates


# ---- what is written ---------------------------------------------------------------------------


HOSTNAME_ENV: Final = "CLIENTREG_HOSTNAME"
"""The variable that names this host in the index instead of ``socket.gethostname()``."""


@functools.cache
def _machine_name() -> str:
    return socket.gethostname()  # once per process: a write carries it on every event


def current_host() -> str:
    """The name this process records as its host: ``$CLIENTREG_HOSTNAME``, else ``socket.gethostname()``."""
    return os.environ.get(HOSTNAME_ENV) or _machine_name()


@dataclass(frozen=True, slots=True)
class ConfigUse:
    """One write for ``KeyIndex.apply``: a config seen by a process, and uses to add.

    ``kind`` set means the process built the client: ``count`` builds, the first at ``time``
    and the last at ``last_time`` (default: ``time``); an event is recorded and drift
    checked. ``kind=None`` only adds ``uses`` and moves ``last_seen``. The config row is
    created when missing, from ``config``: the canonical dict, or the canonical JSON text
    itself (``settings.canonical_json()``), which is stored as it is, never decoded.
    """

    config_hash: str
    provider: str
    config: Mapping[str, Any] | str
    profile: str | None
    time: float
    uses: int = 0
    kind: Literal["built", "warm"] | None = None
    host: str = field(default_factory=current_host)
    pid: int = field(default_factory=os.getpid)
    count: int = 1
    last_time: float | None = None
    detail: Mapping[str, Any] | None = None
    """Detail of the build event (the recorder puts the fingerprint key's id here)."""

    @property
    def until(self) -> float:
        """When the last of the ``count`` builds happened."""
        return self.time if self.last_time is None else self.last_time


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append that is not implied by a ``ConfigUse`` (such as ``evicted``).

    ``count`` times, the first at ``time``, the last at ``last_time`` (default: ``time``).
    """

    time: float
    config_hash: str
    profile: str | None
    kind: EventKind
    host: str = field(default_factory=current_host)
    pid: int = field(default_factory=os.getpid)
    detail: Mapping[str, Any] | None = None
    count: int = 1
    last_time: float | None = None

    @property
    def until(self) -> float:
        """When the last of the ``count`` events happened."""
        return self.time if self.last_time is None else self.last_time

    def identity(self) -> tuple[Any, ...]:
        """What makes two events the same event (their times and counts aside)."""
        detail = None if self.detail is None else json.dumps(self.detail, sort_keys=True, separators=(",", ":"))
        return (self.config_hash, self.profile, self.kind, self.host, self.pid, detail)

    def merged(self, other: NewEvent) -> NewEvent:
        """This event and ``other`` (the same identity) as one: counts added, times widened."""
        return NewEvent(
            min(self.time, other.time),
            self.config_hash,
            self.profile,
            self.kind,
            self.host,
            self.pid,
            self.detail,
            self.count + other.count,
            max(self.until, other.until),
        )


def event_window(at: float) -> int:
    """The start (Unix seconds) of the UTC day holding ``at``.

    Repeats of one event whose last occurrences fall in the same window share a row, so
    removing events older than a time is exact at the row level.
    """
    return int(at // EVENT_WINDOW * EVENT_WINDOW)


EVENT_ID_WINDOW_DIGITS: Final = 11
"""Digits of the window in an event id: Unix seconds of a UTC day, zero-padded (sorts as text until 5138)."""

_DIGESTS: dict[tuple[Any, ...], str] = {}


def event_id(event: NewEvent) -> str:
    """The id of ``event``'s row: ``<config_hash>:<window of the last occurrence>:<digest of the rest>``.

    One config's events are one range of ids (no index needed to find them), and the same
    event repeated within a window gets the same id whichever batch, process or store writes
    it, so repeats merge into one row and an event exported from one index keeps its id in
    another.
    """
    rest = event.identity()[1:]
    digest = _DIGESTS.get(rest)
    if digest is None:  # the rest repeats (one process, a few profiles and kinds): hash it once
        text = "\x00".join(map(repr, rest)).encode("utf-8", "backslashreplace")
        digest = hashlib.sha256(text).hexdigest()[:20]
        if len(_DIGESTS) >= 4096:
            _DIGESTS.clear()
        _DIGESTS[rest] = digest
    return f"{event.config_hash}:{event_window(event.until):0{EVENT_ID_WINDOW_DIGITS}d}:{digest}"


def coalesce(events: Iterable[NewEvent]) -> list[NewEvent]:
    """Merge events of the same identity and window, keeping the order of first appearance."""
    merged: dict[tuple[Any, ...], NewEvent] = {}
    for event in events:
        key = (*event.identity(), event_window(event.until))
        found = merged.get(key)
        merged[key] = event if found is None else found.merged(event)
    return list(merged.values())


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One leaf of the canonical form that differs between two configs (``None`` = absent)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class Drift:
    """A profile that now resolves to another config than the one last recorded for it."""

    profile: str
    old_hash: str
    new_hash: str
    changes: tuple[FieldChange, ...]

    def describe(self) -> str:
        """One line: the profile, both short hashes and each changed field (already redacted)."""
        if self.changes:
            fields = ", ".join(f"{c.field} {_short_json(c.old)} -> {_short_json(c.new)}" for c in self.changes)
        else:
            fields = "previous config no longer in the index"
        return f"profile {self.profile!r} changed config {self.old_hash[:12]} -> {self.new_hash[:12]}: {fields}"


# ---- what is read ------------------------------------------------------------------------------


class BadRowError(ValueError):
    """A stored row that is not a record: not JSON, or JSON of the wrong shape (a tampered file)."""


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRowError(f"{name} is not a number")
    return value


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRowError(f"{name} is not a whole number")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadRowError(f"{name} is not a string")
    return value


def _names(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise BadRowError(f"{name} is not a list of names")
    return tuple(value)


def _profiles(value: Any) -> tuple[str, ...]:
    return _names(value, "profiles")


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRowError(f"{name} is not an object")
    return value


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    """One row of ``configs``: a configuration, where it was used, when and how often.

    ``config`` is the canonical form with its keys in canonical (sorted) order, so
    ``json.dumps(record.config, separators=(",", ":"))`` is the canonical JSON and its
    SHA-256 is ``config_hash``.
    """

    config_hash: str
    provider: str
    config: dict[str, Any]
    profiles: tuple[str, ...]
    first_seen: float
    last_seen: float
    uses: int
    hosts: tuple[str, ...] = ()
    """The hosts that used it, in the order first seen (empty for rows written before hosts were kept)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, the shape of ``--json`` output and of export lines."""
        return {
            "config_hash": self.config_hash,
            "provider": self.provider,
            "profiles": list(self.profiles),
            "hosts": list(self.hosts),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "uses": self.uses,
            "config": self.config,
        }

    @classmethod
    def from_value(cls, config_hash: str, value: Any) -> ConfigRecord:
        """The record of a stored ``configs`` value (the dict of `to_dict` without the hash).

        Raises `BadRowError` when the value does not have that shape.
        """
        row = _object(value, "the row")
        try:
            return cls(
                config_hash,
                _text(row["provider"], "provider"),
                _object(row["config"], "config"),
                _profiles(row["profiles"]),
                _number(row["first_seen"], "first_seen"),
                _number(row["last_seen"], "last_seen"),
                _integer(row["uses"], "uses"),
                _names(row.get("hosts", []), "hosts"),
            )
        except KeyError as exc:
            raise BadRowError(f"no {exc.args[0]}") from None


class ConfigSummary(NamedTuple):
    """A ``configs`` row without its config: what a history table shows (a tuple: 100,000 are cheap)."""

    config_hash: str
    provider: str
    profiles: tuple[str, ...]
    first_seen: float
    last_seen: float
    uses: int

    @classmethod
    def from_fields(cls, config_hash: str, fields: Any) -> ConfigSummary:
        """A summary from ``[first_seen, last_seen, uses, provider, profiles]``; `BadRowError` if malformed."""
        if not isinstance(fields, list) or len(fields) != 5:
            raise BadRowError("not a configs row")
        first, last, uses, provider, profiles = fields
        return cls(
            config_hash,
            _text(provider, "provider"),
            _profiles(profiles),
            _number(first, "first_seen"),
            _number(last, "last_seen"),
            _integer(uses, "uses"),
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of ``events``: an event that happened ``count`` times, from ``time`` to ``last_time``."""

    event_id: str
    time: float
    config_hash: str
    profile: str | None
    kind: str
    host: str
    pid: int
    detail: dict[str, Any] | None = None
    count: int = 1
    last_time: float | None = None

    @property
    def until(self) -> float:
        """When the last of the ``count`` events happened."""
        return self.time if self.last_time is None else self.last_time

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = {"event_id": self.event_id, "time": self.time, "last_time": self.until, "count": self.count}
        out.update(config_hash=self.config_hash, profile=self.profile, kind=self.kind, host=self.host, pid=self.pid)
        if self.detail is not None:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_value(cls, event_id: str, value: Any) -> EventRecord:
        """The record of a stored ``events`` value; `BadRowError` when it does not have that shape."""
        row = _object(value, "the row")
        try:
            profile = row.get("profile")
            detail = row.get("detail")
            last_time = row.get("last_time")
            return cls(
                event_id,
                _number(row["time"], "time"),
                _text(row["config_hash"], "config_hash"),
                None if profile is None else _text(profile, "profile"),
                _text(row["kind"], "kind"),
                _text(row.get("host", ""), "host"),
                _integer(row.get("pid", 0), "pid"),
                None if detail is None else canonical_order(_object(detail, "detail")),
                _integer(row.get("count", 1), "count"),
                None if last_time is None else _number(last_time, "last_time"),
            )
        except KeyError as exc:
            raise BadRowError(f"no {exc.args[0]}") from None


_KIND_ORDER = {"first_seen": 0, "built": 1, "warm": 1, "drift": 2, "evicted": 3}


def event_order(event: EventRecord) -> tuple[float, int, str]:
    """Sort key of events: by time, and at one time first_seen, then the build, its drift, an eviction."""
    return (event.time, _KIND_ORDER.get(event.kind, 4), event.event_id)


def event_value(event: NewEvent) -> dict[str, Any]:
    """The stored JSON shape of an event (``last_time`` and ``count`` only when it repeated)."""
    value: dict[str, Any] = {"time": event.time, "config_hash": event.config_hash, "profile": event.profile}
    value.update(kind=event.kind, host=event.host, pid=event.pid)
    if event.detail is not None:
        value["detail"] = dict(event.detail)
    if event.count != 1 or event.until != event.time:
        value.update(count=event.count, last_time=event.until)
    return value


@dataclass(frozen=True, slots=True)
class RecentProfile:
    """A profile, the config it last resolved to, and when it was last used."""

    profile: str
    config_hash: str
    last_seen: float


@dataclass(frozen=True, slots=True)
class HostHead:
    """The config a profile resolves to on one host: since when, and when last used there."""

    profile: str
    host: str
    config_hash: str
    since: float
    last_seen: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "profile": self.profile,
            "host": self.host,
            "config_hash": self.config_hash,
            "since": self.since,
            "last_seen": self.last_seen,
        }


@dataclass(frozen=True, slots=True)
class HostRecord:
    """A host that wrote to the index: when first and last, and the id of its fingerprint key.

    ``key_id`` is `schemas.fingerprint_key_id()` of its last build (None when unknown): hosts
    whose ids differ compute different hashes for the same secrets.
    """

    host: str
    first_seen: float
    last_seen: float
    key_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"host": self.host, "key_id": self.key_id, "first_seen": self.first_seen, "last_seen": self.last_seen}

    @classmethod
    def from_value(cls, host: str, value: Any) -> HostRecord:
        """The record of a stored host value ``{"first_seen", "last_seen", "key_id"}``; `BadRowError` if not."""
        row = _object(value, "the row")
        key_id = row.get("key_id")
        try:
            return cls(
                host,
                _number(row["first_seen"], "first_seen"),
                _number(row["last_seen"], "last_seen"),
                None if key_id is None else _text(key_id, "key_id"),
            )
        except KeyError as exc:
            raise BadRowError(f"no {exc.args[0]}") from None


def host_heads_of(profile: str, head: Any) -> list[HostHead]:
    """The per-host heads inside a stored profile head (none in a head written before they were kept)."""
    found = head.get("hosts") if isinstance(head, dict) else None
    if not isinstance(found, dict):
        return []
    out = []
    for host, value in found.items():
        try:
            row = _object(value, "a host's head")
            out.append(
                HostHead(
                    profile,
                    host,
                    _text(row["config_hash"], "config_hash"),
                    _number(row["since"], "since"),
                    _number(row["last_seen"], "last_seen"),
                )
            )
        except (KeyError, BadRowError):
            continue  # a damaged entry: the others still count
    return out


# ---- comparing configs ------------------------------------------------------------------------


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and (value or not prefix):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """The dotted leaves (``transport.proxy``) that differ between two canonical dicts."""
    before, after = _leaves(old), _leaves(new)
    return [
        FieldChange(name, before.get(name), after.get(name))
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name) or (name in before) != (name in after)
    ]


def _short_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "..."


def canonical_order(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order: the order of the canonical JSON."""
    if isinstance(value, Mapping):
        return {key: canonical_order(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical_order(item) for item in value]
    return value


def as_mapping(config: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """A config given as a dict or as canonical JSON text, as a dict."""
    return json.loads(config) if isinstance(config, str) else config


# ---- what a batch changes ------------------------------------------------------------------------


@dataclass(slots=True)
class BatchPlan:
    """What `plan_batch` decided: rows to write, events to add, drifts found.

    The store merges events of one identity and window into one row (see `coalesce`), with
    the row it already holds for them.
    """

    configs: dict[str, dict[str, Any]]
    """config_hash -> the full ``configs`` value to store; its ``config`` may be canonical JSON text."""
    heads: dict[str, dict[str, Any]]
    """profile -> ``{"config_hash", "last_seen", "hosts": {host: {"config_hash", "since", "last_seen"}}}``.

    ``config_hash`` and ``last_seen``: the config the profile last resolved to on any host;
    ``hosts``: the config it resolves to on each host, since when, last used when.
    """
    events: list[NewEvent]
    drifts: list[Drift]
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """host -> ``{"first_seen", "last_seen", "key_id"}``: the hosts that wrote, merged with what is stored."""


def plan_batch(
    uses: Iterable[ConfigUse],
    events: Iterable[NewEvent],
    read_config: Callable[[str], dict[str, Any] | None],
    read_head: Callable[[str], dict[str, Any] | None],
    read_host: Callable[[str], dict[str, Any] | None] = lambda host: None,
) -> BatchPlan:
    """Merge a batch into the stored rows ``read_config``, ``read_head`` and ``read_host`` return (None: absent).

    Uses are taken in time order, so a profile built on config A and then on B within one
    batch records one drift, A -> B. Drift is per host: a profile that resolves to another
    config than it last did *on the same host* (hosts that disagree with each other are
    found by `registry.index.fleet`). A head written before heads were kept per host counts
    as this host's. A store calls this inside its write transaction and writes what it
    returns; events are merged into stored rows of the same identity and window by the store.
    """
    rows: dict[str, dict[str, Any] | None] = {}
    heads: dict[str, dict[str, Any] | None] = {}
    hosts: dict[str, dict[str, Any]] = {}
    added: list[NewEvent] = []
    drifts: list[Drift] = []

    def row(config_hash: str) -> dict[str, Any] | None:
        if config_hash not in rows:
            rows[config_hash] = read_config(config_hash)
        return rows[config_hash]

    for use in sorted(uses, key=lambda u: u.until):
        current = row(use.config_hash)
        if current is None:
            current = rows[use.config_hash] = {  # the order of ConfigRecord.to_dict, config last
                "provider": use.provider,
                "profiles": [],
                "hosts": [],
                "first_seen": use.time,
                "last_seen": use.time,
                "uses": 0,
                "config": use.config if isinstance(use.config, str) else canonical_order(use.config),
            }
            added.append(NewEvent(use.time, use.config_hash, use.profile, "first_seen", use.host, use.pid))
        if use.profile is not None and use.profile not in current["profiles"]:
            current["profiles"].append(use.profile)
        used_on = current.setdefault("hosts", [])  # a row written before hosts were kept has none
        if use.host not in used_on:
            used_on.append(use.host)
        current["uses"] += use.uses
        current["last_seen"] = max(current["last_seen"], use.until)
        _merge_host(hosts, read_host, use)
        if use.kind is not None:
            build = (use.time, use.config_hash, use.profile, use.kind, use.host, use.pid)
            added.append(NewEvent(*build, use.detail, use.count, use.last_time))
        if use.profile is None:
            continue
        if use.profile not in heads:
            heads[use.profile] = read_head(use.profile)
        last = heads[use.profile]
        per_host: dict[str, Any] | None = None if last is None else last.get("hosts")
        if not isinstance(per_host, dict):
            per_host = None
        # This host's head; a head from before heads were kept per host is taken as this host's.
        mine = per_host.get(use.host) if per_host is not None else last
        if use.kind is not None:
            if mine is not None and mine["config_hash"] != use.config_hash:
                old = row(mine["config_hash"])
                changes = changed_fields(as_mapping(old["config"]), as_mapping(use.config)) if old is not None else ()
                drift = Drift(use.profile, mine["config_hash"], use.config_hash, tuple(changes))
                drifts.append(drift)
                detail = {"old_hash": drift.old_hash, "new_hash": drift.new_hash, "fields": [c.field for c in changes]}
                added.append(NewEvent(use.until, use.config_hash, use.profile, "drift", use.host, use.pid, detail))
            last_seen = use.until if last is None else max(use.until, last["last_seen"])
            updated = dict(per_host or {})
            if mine is not None and mine["config_hash"] == use.config_hash and "since" in mine:
                updated[use.host] = {**mine, "last_seen": max(use.until, mine["last_seen"])}
            else:
                updated[use.host] = {"config_hash": use.config_hash, "since": use.time, "last_seen": use.until}
            heads[use.profile] = {"config_hash": use.config_hash, "last_seen": last_seen, "hosts": updated}
        elif last is not None and use.uses:
            if last["config_hash"] == use.config_hash:
                last["last_seen"] = max(use.until, last["last_seen"])
            if per_host is not None and mine is not None and mine["config_hash"] == use.config_hash:
                mine["last_seen"] = max(use.until, mine["last_seen"])

    return BatchPlan(
        {h: r for h, r in rows.items() if r is not None},
        {p: v for p, v in heads.items() if v is not None},
        [*added, *events],
        drifts,
        hosts,
    )


def _merge_host(
    hosts: dict[str, dict[str, Any]], read_host: Callable[[str], dict[str, Any] | None], use: ConfigUse
) -> None:
    """Count ``use`` in its host's row: first and last seen, and the fingerprint key id of a build."""
    found = hosts.get(use.host)
    if found is None:
        stored = read_host(use.host)
        found = hosts[use.host] = (
            dict(stored) if stored is not None else {"first_seen": use.time, "last_seen": use.until, "key_id": None}
        )
    found["first_seen"] = min(found["first_seen"], use.time)
    found["last_seen"] = max(found["last_seen"], use.until)
    key_id = use.detail.get("key_id") if use.detail is not None and use.kind is not None else None
    if isinstance(key_id, str):
        found["key_id"] = key_id  # uses come in time order: the last build's key wins
