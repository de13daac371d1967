"""Fleet questions over any store: hosts that disagree on a profile, and hosts on another fingerprint key.

A profile *drifts across hosts* when, at the same time, it resolves to one config on some
hosts and to another on others: a deploy that reached only part of a fleet, a host with a
stale environment variable, a replica started from an old image. The index keeps, per
profile and host, the config it resolves to there, since when, and when it was last used
(`HostHead`); two hosts disagree "at the same time" when those periods overlap, so a host
that was switched over, or retired, long before the others does not count.

`fleet_drift` groups the heads of each profile by config, takes the config most hosts use
as the reference, and names the fields each other config changes. `key_mismatch` compares
the fingerprint key ids hosts recorded: hosts on different keys compute different hashes
for the same secrets, so their configs never compare equal.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from registry.index.records import (
    BadRowError,
    ConfigRecord,
    EventRecord,
    FieldChange,
    HostHead,
    HostRecord,
    KeyIndexError,
    changed_fields,
)

__all__ = [
    "ConfigOnHosts",
    "ExportError",
    "FleetDrift",
    "ImportResult",
    "ImportedConfig",
    "default_source",
    "fleet_drift",
    "key_mismatch",
    "read_export",
]


@dataclass(frozen=True, slots=True)
class ConfigOnHosts:
    """One config a profile resolves to, on which hosts, and how it differs from the reference config."""

    config_hash: str
    hosts: tuple[str, ...]
    since: float
    """The earliest time one of these hosts switched to it."""
    last_seen: float
    changes: tuple[FieldChange, ...]
    """Fields that differ from the reference config (old: the reference's value, new: this one's)."""
    known: bool = True
    """False when the config is no longer in the index (pruned), so its fields cannot be compared."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``a``: the reference config's value, ``b``: this config's, as in ``diff``)."""
        return {
            "config_hash": self.config_hash,
            "hosts": list(self.hosts),
            "since": self.since,
            "last_seen": self.last_seen,
            "changes": [{"field": c.field, "a": c.old, "b": c.new} for c in self.changes],
        }


@dataclass(frozen=True, slots=True)
class FleetDrift:
    """A profile resolving to different configs on different hosts at the same time.

    ``configs[0]`` is the reference: the config most hosts use (then the one used last).
    """

    profile: str
    configs: tuple[ConfigOnHosts, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "profile": self.profile,
            "reference": self.configs[0].config_hash,
            "configs": [c.to_dict() for c in self.configs],
        }


def _overlap(a: HostHead, b: HostHead) -> bool:
    return max(a.since, b.since) <= min(a.last_seen, b.last_seen)


def fleet_drift(
    heads: Iterable[HostHead],
    read_config: Callable[[str], ConfigRecord | None],
    *,
    since: float | None = None,
) -> list[FleetDrift]:
    """The profiles whose hosts disagree at the same time, by profile name.

    ``since`` keeps only hosts that used the profile at or after that time (``last_seen``),
    for "which hosts disagree now". ``read_config`` (`KeyIndex.get`) gives each config's
    canonical form, to name the fields that differ.
    """
    by_profile: dict[str, list[HostHead]] = {}
    for head in heads:
        if since is None or head.last_seen >= since:
            by_profile.setdefault(head.profile, []).append(head)
    drifts = []
    configs: dict[str, ConfigRecord | None] = {}

    def config(config_hash: str) -> ConfigRecord | None:
        if config_hash not in configs:
            configs[config_hash] = read_config(config_hash)
        return configs[config_hash]

    for profile in sorted(by_profile):
        groups: dict[str, list[HostHead]] = {}
        for head in by_profile[profile]:
            groups.setdefault(head.config_hash, []).append(head)
        if len(groups) < 2:
            continue
        # Keep the configs in use at the same time as another config on another host.
        concurrent = {
            h
            for h, mine in groups.items()
            if any(_overlap(a, b) for other, theirs in groups.items() if other != h for a in mine for b in theirs)
        }
        if len(concurrent) < 2:
            continue
        ranked = sorted(
            concurrent,
            key=lambda h: (-len(groups[h]), -max(x.last_seen for x in groups[h]), h),
        )
        reference = config(ranked[0])
        entries = []
        for config_hash in ranked:
            found = config(config_hash)
            changes: tuple[FieldChange, ...] = ()
            if found is not None and reference is not None and config_hash != ranked[0]:
                changes = tuple(changed_fields(reference.config, found.config))
            members = groups[config_hash]
            entries.append(
                ConfigOnHosts(
                    config_hash,
                    tuple(sorted(x.host for x in members)),
                    min(x.since for x in members),
                    max(x.last_seen for x in members),
                    changes,
                    found is not None,
                )
            )
        drifts.append(FleetDrift(profile, tuple(entries)))
    return drifts


def key_mismatch(hosts: Iterable[HostRecord], this_host: str, key_id: str) -> str | None:
    """A warning when the fingerprint key this host uses is not the fleet's; None when it is.

    The fleet's key is the one most hosts recorded (this host counted with ``key_id``); a
    host on a key that is not the only most common one is warned.
    """
    others = [h for h in hosts if h.host != this_host and h.key_id is not None]
    counts = Counter([key_id, *(h.key_id for h in others)])
    ranked = counts.most_common()
    if ranked[0][0] == key_id and (len(ranked) == 1 or ranked[1][1] < ranked[0][1]):
        return None
    differing = sorted(h.host for h in others if h.key_id != key_id)
    named = ", ".join(ascii(n)[1:-1] for n in differing[:5]) + (", ..." if len(differing) > 5 else "")
    return (
        f"this host ({ascii(this_host)[1:-1]}) computes fingerprints with key id {key_id}, but {len(differing)} of "
        f"{len(others)} other hosts in the key index use another ({named}; the most common is {ranked[0][0]}): "
        "config hashes of settings with secrets will not match between them. Set CLIENTREG_FINGERPRINT_KEY to "
        "the same value on every host (docs/security.md)"
    )


# ---- moving a history from one index to another ---------------------------------------------------


class ExportError(KeyIndexError):
    """A line of an export that is not a record, or whose config does not hash to its ``config_hash``."""


@dataclass(frozen=True, slots=True)
class ImportedConfig:
    """One exported config to import: the record, its canonical JSON text, and its events."""

    record: ConfigRecord
    canonical: str
    events: tuple[EventRecord, ...]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: configs read and created, uses added, events merged."""

    source: str
    configs: int = 0
    created: int = 0
    uses_added: int = 0
    events: int = 0

    def plus(self, other: ImportResult) -> ImportResult:
        """Both results added."""
        return ImportResult(
            self.source,
            self.configs + other.configs,
            self.created + other.created,
            self.uses_added + other.uses_added,
            self.events + other.events,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "source": self.source,
            "configs": self.configs,
            "created": self.created,
            "uses_added": self.uses_added,
            "events": self.events,
        }


_HASH = re.compile(r"[0-9a-f]{64}")
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def read_export(lines: Iterable[str], name: str) -> list[ImportedConfig]:
    """The records of ``clientreg export`` lines, each verified: its config must hash to its ``config_hash``.

    Raises `ExportError` naming ``name`` and the line for the first line that is not a
    record (nothing is imported from a file with a bad line). Blank lines are skipped.
    """
    found: list[ImportedConfig] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            value = json.loads(line)
        except ValueError:
            raise ExportError(f"{where}: not a JSON object (is this the output of clientreg export?)") from None
        if not isinstance(value, dict):
            raise ExportError(f"{where}: not a JSON object (is this the output of clientreg export?)")
        config_hash = value.get("config_hash")
        if not isinstance(config_hash, str) or not _HASH.fullmatch(config_hash):
            raise ExportError(f"{where}: no config_hash of 64 lower-case hex digits")
        try:
            record = ConfigRecord.from_value(config_hash, value)
            canonical = _CANONICAL.encode(record.config)
            events = value.get("events", [])
            if not isinstance(events, list):
                raise BadRowError("events is not a list")
            parsed = []
            for event in events:
                if not isinstance(event, dict) or not isinstance(event.get("event_id"), str):
                    raise BadRowError("an event without an event_id")
                parsed.append(EventRecord.from_value(event["event_id"], event))
        except (BadRowError, ValueError) as exc:
            raise ExportError(f"{where}: config {config_hash[:12]} is not a record: {exc}") from None
        if hashlib.sha256(canonical.encode("ascii")).hexdigest() != config_hash:
            raise ExportError(
                f"{where}: config {config_hash[:12]} does not hash to its config_hash (altered, or not an export)"
            )
        if any(e.config_hash != config_hash for e in parsed):
            raise ExportError(f"{where}: config {config_hash[:12]} holds events of another config")
        if record.uses < 0 or any(e.count < 1 for e in parsed):
            raise ExportError(f"{where}: config {config_hash[:12]} has a negative use or event count")
        found.append(ImportedConfig(record, canonical, tuple(parsed)))
    return found


def default_source(imported: Iterable[ImportedConfig], name: str) -> str:
    """The source an import is recorded under unless one is given: the hosts in it, else the file's name.

    An export of one host's index names that host, so a later export of the same index
    (more uses) imported again adds only what grew.
    """
    hosts = sorted({h for item in imported for h in (*item.record.hosts, *(e.host for e in item.events)) if h})
    return "hosts:" + ",".join(hosts) if hosts else f"file:{name}"
