"""``clientreg``: check and warm a settings file; read, compare and prune the key index.

    clientreg check [FILE]                 validate settings; each profile's hash and redacted config
    clientreg warm [FILE] [--index PATH]   build each profile's client (no network), record it
    clientreg history [--profile P] [--provider X] [--since WHEN] [--limit N] [--json]
    clientreg show HASH_PREFIX [--json]    one config: redacted form, profiles, uses, events
    clientreg diff A B [--json]            the fields that differ between two configs
    clientreg prune --older-than 30d [--dry-run] [--json]
    clientreg export                       every config and its events, as JSON lines

Commands that read the index take ``--index PATH`` (default: where the registry keeps it) and
fail with exit status 1 when there is no index there yet. Exit status 1 is a user error
(bad settings, unknown hash, missing index), 2 a usage error; messages go to stderr, prefixed
``clientreg:``, never with a traceback (set ``CLIENTREG_DEBUG=1`` for one) or a secret.

Each command imports only what it needs: the read commands never import an SDK or
pydantic-settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from registry.index import ConfigRecord, KeyIndex
    from schemas import ProviderSettings, RegistrySettings

PROG = "clientreg"

_SDK_MODULE = {"openai": "openai", "azure_openai": "openai", "groq": "groq", "cerebras": "cerebras.cloud.sdk"}
_SDK_EXTRA = {"azure_openai": "openai"}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SECRETS: set[str] = set()  # secrets of settings loaded in this process, scrubbed from every message


class UserError(Exception):
    """A mistake the user can fix (bad file, unknown hash, no index): one message, exit status 1."""


# ---- parsing values -----------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30d``, ``12h``, ``15m``, ``45s`` (argparse type)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give a number and a unit, s, m, h or d (30d, 12h, 15m, 45s)"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_when(text: str) -> float:
    """Unix time of ``30d`` / ``12h`` ("that long ago") or of an ISO date or date-time (local time if no zone)."""
    try:
        return time.time() - parse_duration(text)
    except argparse.ArgumentTypeError:
        pass
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30d, 12h, 15m, 45s) nor an ISO date or time (2026-11-27, "
            "2026-11-27T13:45:00)"
        ) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


# ---- output -------------------------------------------------------------------------------------

_minute_cache: dict[int, str] = {}


def format_time(at: float) -> str:
    """Local time as ``YYYY-MM-DD HH:MM:SS``."""
    second = int(at)
    minute = second - second % 60
    prefix = _minute_cache.get(minute)  # one localtime() per minute: history formats many times
    if prefix is None:
        local = time.localtime(minute)
        if local.tm_sec:  # a UTC offset with seconds (historic zones): no shortcut
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        prefix = _minute_cache[minute] = time.strftime("%Y-%m-%d %H:%M:", local)
    return f"{prefix}{second - minute:02d}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Iterable[int] = ()) -> str:
    """An aligned text table: two spaces between columns, ``right`` columns right-aligned."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(headers)
    widths = [
        max(len(header), max(map(len, column), default=0)) for header, column in zip(headers, columns, strict=True)
    ]
    aligned = set(right)
    last = len(headers) - 1
    spec = "  ".join(
        "{:" + (">" if i in aligned else "<") + (str(w) if i != last or i in aligned else "") + "}"
        for i, w in enumerate(widths)
    )
    lines = [spec.format(*headers).rstrip()]
    lines.extend(spec.format(*row).rstrip() for row in rows)
    return "\n".join(lines) + "\n"


def _json_array(items: Iterable[Any]) -> str:
    # One object per line: a valid JSON array that is also easy to grep and diff.
    body = ",\n".join(json.dumps(item, ensure_ascii=False) for item in items)
    return "[\n" + body + "\n]\n" if body else "[]\n"


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted leaves of a canonical dict, in key order (as ``changed_fields`` names them)."""
    if isinstance(value, dict) and (value or not prefix):
        for key in sorted(value):
            yield from _leaves(value[key], f"{prefix}{key}.")
    else:
        yield prefix[:-1], value


def _out(text: str) -> None:
    sys.stdout.write(_scrub(text))


def _scrub(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


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
        _SECRETS.update(s for s in profile.secret_values() if len(s) >= 8 and s not in public)
    if not settings.profiles:
        if settings.path is None:
            from schemas._paths import user_config_dir

            raise UserError(
                "no settings file: pass FILE, set CLIENTREG_SETTINGS, or create ./clientreg.toml or "
                f"{user_config_dir() / 'clientreg.toml'} (settings.example.toml shows every field)"
            )
        raise UserError(f"{settings.path}: no profiles: add a [profiles.NAME] table with a provider")
    return settings


def _key_status(settings: ProviderSettings) -> tuple[bool, str]:
    if settings.api_key is not None:
        return True, "yes"
    variable = settings.api_key_env or type(settings).env_fallbacks.get("api_key", "api_key")
    return False, f"no key: set {variable}"


def _index_path(option: str | None, settings_index: Any = None) -> Path:
    from registry.locations import index_table_from_file, resolve_index_path

    path = resolve_index_path(option, settings_index if settings_index is not None else index_table_from_file)
    if path is None:
        raise UserError(
            "the key index is off (CLIENTREG_INDEX=off or [index] enabled = false): pass --index PATH to read one"
        )
    return path


@contextmanager
def _open_index(option: str | None) -> Iterator[KeyIndex]:
    from registry.index import IndexMissingError, KeyIndex

    path = _index_path(option)
    try:
        index = KeyIndex(path, create=False)
    except IndexMissingError:
        raise UserError(f"no index at {path} yet: run `clientreg warm` or use the library") from None
    _note_moved_aside(index)
    try:
        yield index
    finally:
        index.close()


def _note_moved_aside(index: KeyIndex) -> None:
    if index.moved_aside is not None:
        _warn(f"the index at {index.path} was not readable; moved it aside to {index.moved_aside} and started anew")


def _warn(message: str) -> None:
    sys.stderr.write(_scrub(f"{PROG}: warning: {message}\n"))


# ---- commands -----------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a settings file; print each profile's provider, hash, key status and redacted config."""
    settings = _load_settings(args.file)
    profiles = settings.profiles
    if args.json:
        items = []
        for name, s in profiles.items():
            ok, note = _key_status(s)
            items.append(
                {"profile": name, "provider": s.provider, "config_hash": s.config_hash, "key": ok, "key_note": note}
                | {"config": s.canonical_dict()}
            )
        _out(_json_array(items))
        return 0
    rows = [[name, s.provider, s.config_hash[:12], _key_status(s)[1]] for name, s in profiles.items()]
    missing = sum(1 for s in profiles.values() if s.api_key is None)
    source = settings.path if settings.path is not None else "environment"
    text = f"{source}: {len(profiles)} profile{'s' * (len(profiles) != 1)} valid"
    text += f", {missing} without a key\n\n" if missing else "\n\n"
    text += render_table(["PROFILE", "PROVIDER", "CONFIG", "KEY"], rows)
    text += "\nredacted canonical configs (config_hash = sha256 of the line):\n"
    width = max(len(name) for name in profiles)
    text += "".join(f"{name:<{width}}  {s.canonical_json()}\n" for name, s in profiles.items())
    _out(text)
    return 0


def cmd_warm(args: argparse.Namespace) -> int:
    """Build each profile's sync client (no network request), record it in the index, print timings."""
    settings = _load_settings(args.file)
    from registry.locations import resolve_index_path

    path = resolve_index_path(args.index, settings.index)
    if path is not None:
        from registry.index import KeyIndex

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
            ok, note = _key_status(s)
            if not ok:
                row.append(f"skipped: {note}")
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

        with KeyIndex(path, create=False) as index:
            lost = sorted(name for name, h in built.items() if index.get(h) is None)
            total = len(index.list_summaries())
        text += f"; recorded in {path} ({total} config{'s' * (total != 1)} in the index)\n"
        if lost:
            _out(text)
            raise UserError(f"profiles built but not recorded in {path}: {', '.join(lost)} (see the warning above)")
    _out(text)
    return 1 if failed else 0


def cmd_history(args: argparse.Namespace) -> int:
    """Configs in the order they were first seen (newest last), with their profiles and uses."""
    filters = {"profile": args.profile, "provider": args.provider, "since": args.since, "limit": args.limit}
    with _open_index(args.index) as index:
        if args.json:
            _out(_json_array(r.to_dict() for r in index.list_configs(**filters)))
            return 0
        summaries = index.list_summaries(**filters)
        where = index.path
    if not summaries:
        filtered = any(v is not None for v in filters.values())
        _out(f"no configs {'match' if filtered else 'recorded'} in {where}\n")
        return 0
    # The one table that can hold 100,000 rows: formatted in one pass, column widths known up front.
    provider_width = max(len("PROVIDER"), *(len(p) for p in {s.provider for s in summaries}))
    uses_width = max(len("USES"), len(str(max(s.uses for s in summaries))))
    line = f"{{}}  {{}}  {{}}  {{:<{provider_width}}}  {{:>{uses_width}}}  {{}}".format
    lines = [line("FIRST SEEN".ljust(19), "LAST SEEN".ljust(19), "CONFIG".ljust(12), "PROVIDER", "USES", "PROFILES")]
    lines.extend(
        line(
            format_time(s.first_seen),
            format_time(s.last_seen),
            s.config_hash[:12],
            s.provider,
            s.uses,
            ",".join(s.profiles) or "-",
        )
        for s in summaries
    )
    lines.append("")
    _out("\n".join(lines))
    return 0


def _record(index: KeyIndex, prefix: str) -> ConfigRecord:
    from registry.index import HashPrefixError

    try:
        full = index.resolve(prefix)
    except HashPrefixError as exc:
        raise UserError(str(exc)) from None
    record = index.get(full)
    if record is None:  # pruned between the two reads
        raise UserError(f"no config in {index.path} has a hash starting with {prefix!r}")
    return record


def cmd_show(args: argparse.Namespace) -> int:
    """One config: its full hash, provider, profiles, uses, redacted form and events."""
    with _open_index(args.index) as index:
        record = _record(index, args.hash_prefix)
        events = index.events(record.config_hash)
    if args.json:
        _out(_json_array([record.to_dict() | {"events": [e.to_dict() for e in events]}]))
        return 0
    about = [
        ("config", record.config_hash),
        ("provider", record.provider),
        ("profiles", ", ".join(record.profiles) or "-"),
        ("uses", str(record.uses)),
        ("first seen", format_time(record.first_seen)),
        ("last seen", format_time(record.last_seen)),
    ]
    text = "".join(f"{label:<10}  {value}\n" for label, value in about)
    text += "\n" + render_table(["FIELD", "VALUE"], [(name, _value(v)) for name, v in _leaves(record.config)])
    rows = [
        (
            format_time(e.time),
            e.kind,
            e.profile or "-",
            e.host,
            str(e.pid),
            " ".join(f"{k}={_value(v) if not isinstance(v, str) else v}" for k, v in (e.detail or {}).items()),
        )
        for e in events
    ]
    text += "\n" + render_table(["TIME", "EVENT", "PROFILE", "HOST", "PID", "DETAIL"], rows, right=(4,))
    _out(text)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """The dotted fields whose (redacted) values differ between two configs."""
    from registry.index import changed_fields

    with _open_index(args.index) as index:
        a, b = _record(index, args.a), _record(index, args.b)
    changes = changed_fields(a.config, b.config)
    if args.json:
        _out(_json_array({"field": c.field, "a": c.old, "b": c.new} for c in changes))
        return 0
    text = "".join(
        f"{label}  {r.config_hash[:12]}  {r.provider}  profiles: {', '.join(r.profiles) or '-'}\n"
        for label, r in (("A", a), ("B", b))
    )
    if a.config_hash == b.config_hash:
        text += "\nA and B are the same config\n"
    elif not changes:
        text += "\nno field differs\n"
    else:
        text += "\n" + render_table(["FIELD", "A", "B"], [(c.field, _value(c.old), _value(c.new)) for c in changes])
    _out(text)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove configs (and their events) not used for ``--older-than``; ``--dry-run`` only lists them."""
    now = time.time()
    with _open_index(args.index) as index:
        candidates = index.prune(args.older_than, dry_run=True, now=now)
        records = {h: r for h in candidates if (r := index.get(h)) is not None}
        removed = candidates if args.dry_run else index.prune(args.older_than, now=now)
        where = index.path
    shown = [records[h] for h in removed if h in records]
    if args.json:
        _out(_json_array(r.to_dict() for r in shown))
        return 0
    text = ""
    if shown:
        rows = [
            (format_time(r.last_seen), r.config_hash[:12], r.provider, str(r.uses), ",".join(r.profiles) or "-")
            for r in sorted(shown, key=lambda r: (r.last_seen, r.config_hash))
        ]
        text += render_table(["LAST SEEN", "CONFIG", "PROVIDER", "USES", "PROFILES"], rows, right=(3,)) + "\n"
    count = f"{len(removed)} config{'s' * (len(removed) != 1)}"
    cutoff = format_time(now - args.older_than)
    if args.dry_run:
        text += f"would remove {count} last used before {cutoff} from {where} (dry run: nothing removed)\n"
    else:
        text += f"removed {count} last used before {cutoff}, with their events, from {where}\n"
    _out(text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Every config with its events, one JSON object per line, oldest first."""
    with _open_index(args.index) as index:
        write = sys.stdout.write
        for line in index.export():
            write(line + "\n")
    return 0


# ---- parser and entry point ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with clientreg's error format: usage, then ``clientreg: ...`` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and the message, and exit with status 2."""
        self.print_usage(sys.stderr)
        where = self.prog.removeprefix(PROG).strip()
        self.exit(2, f"{PROG}: {where + ': ' if where else ''}{message}\n")


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("clientreg")
        except PackageNotFoundError:
            found = "unknown"
        sys.stdout.write(f"{PROG} {found}\n")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The ``clientreg`` argument parser with its subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Check and warm clientreg settings files; read, compare and prune the key index.",
        epilog="Commands that read the index take --index PATH (default: $CLIENTREG_INDEX, the settings' "
        "[index] path, else the user data directory).",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)

    index_option = _Parser(add_help=False)
    index_option.add_argument("--index", metavar="PATH", help="the index file (default: where the registry keeps it)")
    json_option = _Parser(add_help=False)
    json_option.add_argument("--json", action="store_true", help="print a JSON array instead of a table")

    def add(name: str, run: Callable[[argparse.Namespace], int], parents: list[_Parser]) -> Any:
        doc = (run.__doc__ or "").splitlines()[0]
        sub = commands.add_parser(name, parents=parents, help=doc, description=doc)
        sub.set_defaults(run=run)
        return sub

    settings_file = "the settings file (default: $CLIENTREG_SETTINGS, ./clientreg.toml, the user config dir)"
    check = add("check", cmd_check, [json_option])
    check.add_argument("file", nargs="?", metavar="FILE", help=settings_file)
    warm = add("warm", cmd_warm, [index_option])
    warm.add_argument("file", nargs="?", metavar="FILE", help=settings_file)

    history = add("history", cmd_history, [index_option, json_option])
    history.add_argument("--profile", metavar="P", help="only configs this profile used")
    history.add_argument("--provider", metavar="X", help="only this provider's configs (openai, groq, ...)")
    history.add_argument(
        "--since",
        metavar="WHEN",
        type=parse_when,
        help="only configs used since WHEN: 30d, 12h, 15m, 45s ago, or an ISO date/time",
    )
    history.add_argument("--limit", metavar="N", type=_positive_int, help="only the N newest configs")

    show = add("show", cmd_show, [index_option, json_option])
    show.add_argument("hash_prefix", metavar="HASH_PREFIX", help="at least 4 hex digits of a config hash")

    diff = add("diff", cmd_diff, [index_option, json_option])
    diff.add_argument("a", metavar="A", help="a config hash prefix")
    diff.add_argument("b", metavar="B", help="another config hash prefix")

    prune = add("prune", cmd_prune, [index_option, json_option])
    prune.add_argument(
        "--older-than",
        metavar="AGE",
        type=parse_duration,
        required=True,
        help="remove configs not used for AGE: 30d, 12h, 15m, 45s",
    )
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")

    add("export", cmd_export, [index_option])
    return parser


class _LogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().removeprefix(f"{PROG}: ")
        return _scrub(f"{PROG}: warning: {message}" if record.levelno >= logging.WARNING else f"{PROG}: {message}")


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter())
    logger = logging.getLogger(PROG)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``clientreg`` with ``argv`` (default: the command line); return the exit status."""
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        status: int = args.run(args)
        sys.stdout.flush()
        return status
    except UserError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (head, less) went away: say nothing more, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        if os.environ.get("CLIENTREG_DEBUG"):
            raise
        from registry.index import KeyIndexError

        if isinstance(exc, KeyIndexError | OSError):
            return _fail(str(exc))
        return _fail(f"unexpected error: {type(exc).__name__}: {exc} (set CLIENTREG_DEBUG=1 for a traceback)")


def _fail(message: str) -> int:
    lines = message.strip().splitlines() or ["error"]
    sys.stderr.write(_scrub(f"{PROG}: {lines[0]}\n" + "".join(f"  {line}\n" for line in lines[1:])))
    return 1


if __name__ == "__main__":
    sys.exit(main())
