"""The record model of the key index, shared by every store: what is written and what is read.

A store (``sqlite.py`` today) takes ``ConfigUse`` and ``NewEvent`` batches and gives back
``ConfigRecord``, ``ConfigSummary``, ``EventRecord``, ``RecentProfile`` and ``Drift``; the
errors below are the ones every store raises, so callers never see a driver's exception.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

EventKind = Literal["first_seen", "built", "evicted", "warm", "drift"]


class KeyIndexError(Exception):
    """Base of the errors the index raises; the message names the file and what to do."""


class IndexUnavailableError(KeyIndexError):
    """The index cannot be opened or written: unwritable place, full disk, or locked for too long."""


class IndexMissingError(IndexUnavailableError):
    """The index file does not exist and was opened with ``create=False``."""


class IndexCorruptError(KeyIndexError):
    """The file is not a database, or not a clientreg index (on open it is moved aside instead)."""


class IndexVersionError(KeyIndexError):
    """The file was written by a newer clientreg (or holds an unknown schema version)."""


class HashPrefixError(KeyIndexError, LookupError):
    """A hash prefix that is malformed, matches no config, or matches more than one."""

    def __init__(self, message: str, prefix: str, candidates: int) -> None:
        super().__init__(message)
        self.prefix = prefix
        self.candidates = candidates


# ---- records ---------------------------------------------------------------------------------


def _hostname() -> str:
    return socket.gethostname()


@dataclass(frozen=True, slots=True)
class ConfigUse:
    """One write for ``KeyIndex.apply``: a config seen by a process, and uses to add.

    ``kind`` set means the process built the client (an event is recorded and drift checked);
    ``kind=None`` only adds ``uses`` and moves ``last_seen``. The row is created when missing.
    """

    config_hash: str
    provider: str
    config: Mapping[str, Any]
    profile: str | None
    time: float
    uses: int = 0
    kind: Literal["built", "warm"] | None = None
    host: str = field(default_factory=_hostname)
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append that is not implied by a ``ConfigUse`` (such as ``evicted``)."""

    time: float
    config_hash: str
    profile: str | None
    kind: EventKind
    host: str = field(default_factory=_hostname)
    pid: int = field(default_factory=os.getpid)
    detail: Mapping[str, Any] | None = None


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


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    """One row of ``configs``: a configuration, where it was used, when and how often."""

    config_hash: str
    provider: str
    config: dict[str, Any]
    profiles: tuple[str, ...]
    first_seen: float
    last_seen: float
    uses: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, the shape of ``--json`` output and of export lines."""
        return {
            "config_hash": self.config_hash,
            "provider": self.provider,
            "profiles": list(self.profiles),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "uses": self.uses,
            "config": self.config,
        }


class ConfigSummary(NamedTuple):
    """A ``configs`` row without its config: what a history table shows (a tuple: 100,000 are cheap)."""

    config_hash: str
    provider: str
    profiles: tuple[str, ...]
    first_seen: float
    last_seen: float
    uses: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of ``events``."""

    event_id: str
    time: float
    config_hash: str
    profile: str | None
    kind: str
    host: str
    pid: int
    detail: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = {"event_id": self.event_id, "time": self.time, "config_hash": self.config_hash}
        out.update(profile=self.profile, kind=self.kind, host=self.host, pid=self.pid)
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class RecentProfile:
    """A profile, the config it last resolved to, and when it was last used."""

    profile: str
    config_hash: str
    last_seen: float


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
