"""The ``clientreg`` commands: each takes the parsed arguments and returns an exit status.

Each command imports only what it needs: the read commands never import an SDK or
pydantic-settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from registry.cli.render import (
    SECRETS,
    format_time,
    json_array,
    leaves,
    out,
    out_json_lines,
    printable,
    render_table,
    value_text,
    warn,
)

if TYPE_CHECKING:
    from registry.index import ConfigRecord, KeyIndex
    from schemas import ProviderSettings, RegistrySettings

_SDK_MODULE = {"openai": "openai", "azure_openai": "openai", "groq": "groq", "cerebras": "cerebras.cloud.sdk"}
_SDK_EXTRA = {"azure_openai": "openai"}


class UserError(Exception):
    """A mistake the user can fix (bad file, unknown hash, no index): one message, exit status 1."""


# ---- settings and index -------------------------------------------------------------------------


def _load_settings(file: str | None) -> RegistrySettings:
    from schemas import SettingsError, load_settings

    try:
        settings = load_settings(file)
    except SettingsError as exc:
        raise UserError(str(exc)) from None
    for profile in settings.profiles.values():
        # A proxy URL without credentials counts as a secret value but is shown in the canonical form.
        public = profile.canonical_json()
        SECRETS.update(s for s in profile.secret_values() if len(s) >= 8 and s not in public)
    if not settings.profiles:
        if settings.path is None:
            from schemas._paths import user_config_dir

            raise UserError(
                "no settings file: pass FILE, set CLIENTREG_SETTINGS, or create ./clientreg.toml or "
                f"{user_config_dir() / 'clientreg.toml'} (settings.example.toml shows every field)"
            )
        raise UserError(f"{settings.path}: no profiles: add a [profiles.NAME] table with a provider")
    return settings


class _KeyStatus(NamedTuple):
    """What a profile authenticates with, as far as this process can tell."""

    present: bool  # a credential source is set: a key, a token, or a provider's name
    note: str  # the KEY column
    buildable: bool  # this process can build its client (a provider registered in code: no)


def _key_status(settings: ProviderSettings) -> _KeyStatus:
    field = settings.credential_field()
    if field == "api_key":
        return _KeyStatus(True, "yes", True)
    if field == "azure_ad_token":
        return _KeyStatus(True, "yes: Azure AD token", True)
    if field is not None:
        name = printable(str(getattr(settings, field)))
        kind = "token provider" if field == "azure_ad_token_provider" else "key provider"
        if ":" in name:  # "package.module:attribute": imported when a client is built
            return _KeyStatus(True, f"{kind} {name}", True)
        # A name given to register_key_provider() in the application: it exists only there.
        return _KeyStatus(True, f"{kind} {name!r}: registered in code, not resolvable here", False)
    variable = settings.api_key_env or type(settings).env_fallbacks.get("api_key", "api_key")
    return _KeyStatus(False, f"no key: set {variable}", False)


def _index_path(option: str | None, settings_index: Any = None) -> Path | str:
    """The index location (a `Path` or a ``postgresql://`` URL); its password, if any, is scrubbed from all output."""
    from registry.index.dsn import location_secrets
    from registry.locations import index_table_from_file, resolve_index_path

    path = resolve_index_path(option, settings_index if settings_index is not None else index_table_from_file)
    if path is None:
        raise UserError(
            "the key index is off (CLIENTREG_INDEX=off or [index] enabled = false): pass --index PATH to read one"
        )
    SECRETS.update(location_secrets(path))
    return path


def _shown(path: Path | str) -> str:
    from registry.index.dsn import shown_location

    return shown_location(path)


@contextmanager
def _open_index(option: str | None, *, write: bool = False, create: bool = False) -> Iterator[KeyIndex]:
    """The index, read-only unless ``write``: reading never creates, moves, migrates or waits for a writer."""
    from registry.index import IndexMissingError, KeyIndex

    path = _index_path(option)
    try:
        index = KeyIndex(path, create=create) if write else KeyIndex(path, read_only=True)
    except IndexMissingError:
        raise UserError(f"no index at {_shown(path)} yet: run `clientreg warm` or use the library") from None
    try:
        yield index
    finally:
        index.close()


def _note_moved_aside(index: KeyIndex) -> None:
    if index.moved_aside is not None:
        warn(f"the index at {index.location} was not readable; moved it aside to {index.moved_aside} and started anew")


# ---- commands -----------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a settings file; print each profile's provider, hash, key status and redacted config."""
    settings = _load_settings(args.file)
    profiles = settings.profiles
    if args.json:
        items = []
        for name, s in profiles.items():
            status = _key_status(s)
            items.append(
                {"profile": name, "provider": s.provider, "config_hash": s.config_hash, "key": status.present}
                | {"key_source": s.credential_field(), "key_note": status.note, "config": s.canonical_dict()}
            )
        out(json_array(items))
        return 0
    rows = [[name, s.provider, s.config_hash[:12], _key_status(s).note] for name, s in profiles.items()]
    missing = sum(1 for s in profiles.values() if s.credential_field() is None)
    source = settings.path if settings.path is not None else "environment"
    text = f"{source}: {len(profiles)} profile{'s' * (len(profiles) != 1)} valid"
    text += f", {missing} without a key\n\n" if missing else "\n\n"
    text += render_table(["PROFILE", "PROVIDER", "CONFIG", "KEY"], rows)
    text += "\nredacted canonical configs (config_hash = sha256 of the line):\n"
    width = max(len(printable(name)) for name in profiles)
    text += "".join(f"{printable(name):<{width}}  {s.canonical_json()}\n" for name, s in profiles.items())
    out(text)
    return 0


def cmd_warm(args: argparse.Namespace) -> int:
    """Build each profile's sync client (no network request), record it in the index, print timings."""
    settings = _load_settings(args.file)
    from registry.locations import resolve_index_path

    path = resolve_index_path(args.index, settings.index)
    if path is not None:
        from registry.index import KeyIndex
        from registry.index.dsn import location_secrets

        SECRETS.update(location_secrets(path))

        with KeyIndex(path) as index:  # creates it, and fails here, clearly, if it cannot
            _note_moved_aside(index)

    import importlib

    from registry import Registry
    from registry.providers import builder_for, sdk_installed

    rows: list[list[str]] = []
    built: dict[str, str] = {}
    failed = 0
    imported: set[str] = set()
    started = time.perf_counter()
    with Registry(settings, index_path=path if path is not None else "off") as registry:
        for name, s in settings.profiles.items():
            row = [name, s.provider, s.config_hash[:12], "-", "-"]
            rows.append(row)
            status = _key_status(s)
            if not status.buildable:
                row.append(f"skipped: {status.note}")
                continue
            if not sdk_installed(s.provider):
                extra = _SDK_EXTRA.get(s.provider, s.provider)
                row.append(f"skipped: SDK not installed: pip install 'clientreg[{extra}]'")
                continue
            try:
                module = _SDK_MODULE[s.provider]
                if module not in imported:
                    t0 = time.perf_counter()
                    builder_for(s.provider)
                    importlib.import_module(module)
                    row[3] = f"{(time.perf_counter() - t0) * 1000:.1f}"
                    imported.add(module)
                t0 = time.perf_counter()
                registry.get_client(name)
                row[4] = f"{(time.perf_counter() - t0) * 1000:.1f}"
            except Exception as exc:
                failed += 1
                reason = str(exc).splitlines()[0] if str(exc) else ""
                if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in reason:
                    reason += f": {exc.filename}"
                row.append(f"failed: {type(exc).__name__}: {reason}")
                continue
            built[name] = s.config_hash
            row.append("built")
    elapsed = time.perf_counter() - started
    text = render_table(["PROFILE", "PROVIDER", "CONFIG", "IMPORT MS", "BUILD MS", "RESULT"], rows, right=(3, 4))
    text += f"\nbuilt {len(built)} of {len(rows)} profiles in {elapsed:.2f} s"
    if path is None:
        text += "; the index is off, nothing recorded\n"
    else:
        from registry.index import KeyIndex

        with KeyIndex(path, read_only=True) as index:
            lost = sorted(name for name, h in built.items() if index.get(h) is None)
            total = len(index.list_summaries())
        text += f"; recorded in {_shown(path)} ({total} config{'s' * (total != 1)} in the index)\n"
        if lost:
            out(text)
            raise UserError(
                f"profiles built but not recorded in {_shown(path)}: {', '.join(lost)} (see the warning above)"
            )
    out(text)
    return 1 if failed else 0


def cmd_history(args: argparse.Namespace) -> int:
    """Configs in the order they were first seen (newest last), with their profiles and uses."""
    filters = {
        "profile": args.profile,
        "provider": args.provider,
        "since": args.since,
        "limit": args.limit,
        "host": args.host,
    }
    with _open_index(args.index) as index:
        if args.json:
            out_json_lines(index.config_lines(**filters))
            return 0
        rows = index.history_rows(**filters)
        where = index.location
    if not rows:
        filtered = any(v is not None for v in filters.values())
        out(f"no configs {'match' if filtered else 'recorded'} in {where}\n")
        return 0
    # The one table that can hold 100,000 rows: formatted in one pass, column widths known up front.
    providers = {p: printable(p) for p in {row[1] for row in rows}}
    provider_width = max(len("PROVIDER"), *map(len, providers.values()))
    uses_width = max(len("USES"), len(str(max(row[5] for row in rows))))
    padded = {p: shown.ljust(provider_width) for p, shown in providers.items()}
    shown_profiles: dict[str, str] = {"": "-"}  # a few distinct lists of profiles, each escaped once
    lines = [
        f"{'FIRST SEEN':<19}  {'LAST SEEN':<19}  {'CONFIG':<12}  {'PROVIDER':<{provider_width}}  "
        f"{'USES':>{uses_width}}  PROFILES"
    ]
    append = lines.append
    for config_hash, provider, profiles, first_seen, last_seen, uses in rows:  # unpacked: faster than fields
        first = format_time(first_seen)
        last = first if int(last_seen) == int(first_seen) else format_time(last_seen)  # used once: one time
        shown = shown_profiles.get(profiles)
        if shown is None:
            shown = shown_profiles[profiles] = printable(profiles) or "-"
        append(f"{first}  {last}  {config_hash[:12]}  {padded[provider]}  {str(uses).rjust(uses_width)}  {shown}")
    append("")
    out("\n".join(lines))
    return 0


def _record(index: KeyIndex, prefix: str) -> ConfigRecord:
    from registry.index import HashPrefixError

    try:
        full = index.resolve(prefix)
    except HashPrefixError as exc:
        raise UserError(str(exc)) from None
    record = index.get(full)
    if record is None:  # pruned between the two reads
        raise UserError(f"no config in {index.location} has a hash starting with {prefix!r}")
    return record


def cmd_show(args: argparse.Namespace) -> int:
    """One config: its full hash, provider, profiles, uses, redacted form and events."""
    with _open_index(args.index) as index:
        record = _record(index, args.hash_prefix)
        events = index.events(record.config_hash)
    if args.json:
        out(json_array([record.to_dict() | {"events": [e.to_dict() for e in events]}]))
        return 0
    about = [
        ("config", record.config_hash),
        ("provider", printable(record.provider)),
        ("profiles", printable(", ".join(record.profiles)) or "-"),
        ("hosts", printable(", ".join(record.hosts)) or "-"),
        ("uses", str(record.uses)),
        ("first seen", format_time(record.first_seen)),
        ("last seen", format_time(record.last_seen)),
    ]
    text = "".join(f"{label:<10}  {value}\n" for label, value in about)
    text += "\n" + render_table(["FIELD", "VALUE"], [(name, value_text(v)) for name, v in leaves(record.config)])
    rows = [
        (
            format_time(e.time),
            format_time(e.until) if e.until != e.time else "-",
            e.kind,
            str(e.count),
            e.profile or "-",
            e.host,
            str(e.pid),
            " ".join(f"{k}={value_text(v) if not isinstance(v, str) else v}" for k, v in (e.detail or {}).items()),
        )
        for e in events
    ]
    headers = ["TIME", "LAST", "EVENT", "COUNT", "PROFILE", "HOST", "PID", "DETAIL"]
    text += "\n" + render_table(headers, rows, right=(3, 6))
    out(text)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """The dotted fields whose (redacted) values differ between two configs."""
    from registry.index import changed_fields

    with _open_index(args.index) as index:
        a, b = _record(index, args.a), _record(index, args.b)
    changes = changed_fields(a.config, b.config)
    if args.json:
        out(json_array({"field": c.field, "a": c.old, "b": c.new} for c in changes))
        return 0
    text = "".join(
        f"{label}  {r.config_hash[:12]}  {printable(r.provider)}  profiles: {printable(', '.join(r.profiles)) or '-'}\n"
        for label, r in (("A", a), ("B", b))
    )
    if a.config_hash == b.config_hash:
        text += "\nA and B are the same config\n"
    elif not changes:
        text += "\nno field differs\n"
    else:
        text += "\n" + render_table(
            ["FIELD", "A", "B"], [(c.field, value_text(c.old), value_text(c.new)) for c in changes]
        )
    out(text)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove configs not used for ``--older-than`` (with their events) and older events of the others."""
    now = time.time()
    cutoff = now - args.older_than
    with _open_index(args.index, write=True) as index:
        candidates = index.prune(args.older_than, dry_run=True, now=now)
        records = {h: r for h in candidates if (r := index.get(h)) is not None}
        if args.dry_run:
            removed = candidates
            theirs = sum(1 for h in candidates for e in index.events(h) if e.until < cutoff)
            events = index.prune_events(args.older_than, dry_run=True, now=now) - theirs
        else:
            removed = index.prune(args.older_than, now=now)
            events = index.prune_events(args.older_than, now=now)
        where = index.location
    shown = [records[h] for h in removed if h in records]
    if args.json:
        result = {"cutoff": cutoff, "dry_run": args.dry_run, "configs": [r.to_dict() for r in shown], "events": events}
        out(json.dumps(result, separators=(",", ":")) + "\n")
        return 0
    text = ""
    if shown:
        rows = [
            (format_time(r.last_seen), r.config_hash[:12], r.provider, str(r.uses), ",".join(r.profiles) or "-")
            for r in sorted(shown, key=lambda r: (r.last_seen, r.config_hash))
        ]
        text += render_table(["LAST SEEN", "CONFIG", "PROVIDER", "USES", "PROFILES"], rows, right=(3,)) + "\n"
    count = f"{len(removed)} config{'s' * (len(removed) != 1)}"
    older = f"{events} older event{'s' * (events != 1)} of configs still in use"
    when = format_time(cutoff)
    if args.dry_run:
        text += f"would remove {count} last used before {when}, and {older}, from {where} (dry run: nothing removed)\n"
    else:
        text += f"removed {count} last used before {when}, with their events, and {older}, from {where}\n"
    out(text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Every config with its events, one JSON object per line, oldest first."""
    with _open_index(args.index) as index:
        write = sys.stdout.write
        for line in index.export():
            write(line + "\n")
    return 0


# ---- fleet commands ------------------------------------------------------------------------------


def cmd_drift(args: argparse.Namespace) -> int:
    """Profiles that resolve to different configs on different hosts at the same time, and the fields that differ."""
    from registry.index.fleet import fleet_drift

    with _open_index(args.index) as index:
        heads = index.host_heads(args.profile)
        drifts = fleet_drift(heads, index.get, since=args.since)
        key_ids = {h.key_id for h in index.hosts() if h.key_id is not None}
        where = index.location
    if args.json:
        out(json_array(d.to_dict() for d in drifts))
        return 3 if drifts and args.exit_code else 0
    hosts = len({h.host for h in heads})
    if not drifts:
        scope = f"profile {printable(args.profile)!r}" if args.profile else "every profile"
        out(f"no drift: {scope} resolves to one config on all {hosts} host{'s' * (hosts != 1)} in {where}\n")
        return 0
    rows = []
    for drift in drifts:
        for n, entry in enumerate(drift.configs):
            if n == 0:
                differs = "(reference: most hosts)"
            elif not entry.known:
                differs = "(config no longer in the index)"
            else:
                differs = ", ".join(f"{c.field} {value_text(c.old)} -> {value_text(c.new)}" for c in entry.changes)
            rows.append(
                (
                    drift.profile,
                    entry.config_hash[:12],
                    ", ".join(entry.hosts),
                    format_time(entry.since),
                    format_time(entry.last_seen),
                    differs or "-",
                )
            )
    count = len(drifts)
    text = (
        f"{count} profile{'s' * (count != 1)} resolve{'s' * (count == 1)} to different configs on different hosts:\n\n"
    )
    text += render_table(["PROFILE", "CONFIG", "HOSTS", "SINCE", "LAST SEEN", "DIFFERS FROM THE REFERENCE"], rows)
    if len(key_ids) > 1:
        text += (
            f"\nnote: hosts use {len(key_ids)} fingerprint keys (clientreg hosts): secrets fingerprint differently "
            "on them, so their hashes differ even where the settings are the same\n"
        )
    out(text)
    return 3 if args.exit_code else 0


def cmd_hosts(args: argparse.Namespace) -> int:
    """The hosts that wrote to the index, when, and the id of the fingerprint key each uses."""
    from collections import Counter

    with _open_index(args.index) as index:
        hosts = index.hosts()
        where = index.location
    if args.json:
        out(json_array(h.to_dict() for h in hosts))
        return 0
    if not hosts:
        out(f"no hosts recorded in {where}\n")
        return 0
    counts = Counter(h.key_id for h in hosts if h.key_id is not None)
    common = counts.most_common(1)[0][0] if counts else None
    rows = [
        (
            h.host,
            h.key_id or "-",
            format_time(h.first_seen),
            format_time(h.last_seen),
            "another fingerprint key than most hosts" if len(counts) > 1 and h.key_id not in (None, common) else "",
        )
        for h in hosts
    ]
    out(render_table(["HOST", "KEY ID", "FIRST SEEN", "LAST SEEN", "NOTE"], rows))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Merge a `clientreg export` (a host's history) into the index; importing it again adds nothing twice."""
    from registry.index.fleet import default_source, read_export

    name = "<stdin>" if args.file == "-" else args.file
    try:
        if args.file == "-":
            imported = read_export(sys.stdin, name)
        else:
            with open(args.file, encoding="utf-8") as file:
                imported = read_export(file, name)
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{name} is not UTF-8 text (is this the output of clientreg export?)") from None
    source = args.source or default_source(imported, Path(name).name)
    with _open_index(args.index, write=True, create=True) as index:
        result = index.import_records(imported, source)
        where = index.location
    if args.json:
        out(json.dumps({**result.to_dict(), "index": where}, separators=(",", ":")) + "\n")
        return 0
    out(
        f"imported {result.configs} config{'s' * (result.configs != 1)} from {printable(name)} into {where} "
        f"as source {printable(source)!r}: {result.created} new, {result.uses_added} uses added, "
        f"{result.events} events merged\n"
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create the index, or bring its layout up to date (run once as the owner where the app's role may not)."""
    from registry.index import KeyIndex

    path = _index_path(args.index)
    with KeyIndex(path) as index:
        version = getattr(index, "schema_version", None)
        where = index.location
    out(f"{where}: clientreg index, schema version {version}\n")
    return 0
