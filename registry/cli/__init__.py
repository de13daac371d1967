"""``clientreg``: check and warm a settings file; read, compare and prune the key index.

    clientreg check [FILE]                 validate settings; each profile's hash and redacted config
    clientreg warm [FILE] [--index PATH]   build each profile's client (no network), record it
    clientreg history [--profile P] [--provider X] [--since WHEN] [--limit N] [--json]
    clientreg show HASH_PREFIX [--json]    one config: redacted form, profiles, uses, events
    clientreg diff A B [--json]            the fields that differ between two configs
    clientreg prune --older-than 30d [--dry-run] [--json]
    clientreg export                       every config and its events, as JSON lines
    clientreg drift [--profile P] [--since WHEN] [--json]   hosts that disagree on a profile
    clientreg hosts [--json]               hosts that wrote, and their fingerprint key ids
    clientreg import FILE [--source NAME]  merge an export into the (PostgreSQL) index
    clientreg migrate                      create the index or bring its layout up to date

Commands that use the index take ``--index PATH`` or ``--index postgresql://...`` (default:
where the registry keeps it) and
fail with exit status 1 when there is no index there yet. Exit status 1 is a user error
(bad settings, unknown hash, missing index), 2 a usage error; messages go to stderr, prefixed
``clientreg:``, never with a traceback (set ``CLIENTREG_DEBUG=1`` for one) or a secret.

The parser and entry point live here, the commands in ``commands``, the output in ``render``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from registry.cli.commands import (
    UserError,
    cmd_check,
    cmd_diff,
    cmd_drift,
    cmd_export,
    cmd_history,
    cmd_hosts,
    cmd_import,
    cmd_migrate,
    cmd_prune,
    cmd_show,
    cmd_warm,
)
from registry.cli.render import PROG, scrub, terminal_safe

__all__ = ["build_parser", "main", "parse_duration", "parse_when"]

_MAX_LIMIT = 1_000_000_000


# ---- parsing values -----------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30d``, ``12h``, ``15m``, ``45s``, at most 100 years (argparse type)."""
    from registry.locations import parse_duration as seconds

    try:
        return seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_when(text: str) -> float:
    """Unix time of ``30d`` / ``12h`` ("that long ago") or of an ISO date or date-time (local time if no zone)."""
    try:
        return time.time() - parse_duration(text)
    except argparse.ArgumentTypeError as exc:
        if "100 years" in str(exc):  # a duration, just too long
            raise
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
    if value > _MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {_MAX_LIMIT:,}: leave --limit out to see everything")
    return value


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
        epilog="Commands that use the index take --index PATH or --index postgresql://... (default: "
        "$CLIENTREG_INDEX, the settings' [index] url or path, else the user data directory).",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    parser.add_argument(
        "--index",
        metavar="PATH|URL",
        help="the index file, or a postgresql:// URL, for any command (also accepted after the command)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)

    index_option = _Parser(add_help=False)
    index_option.add_argument(
        "--index",
        metavar="PATH|URL",
        default=argparse.SUPPRESS,  # so `clientreg --index X history` is not overwritten by this default
        help="the index file, or a postgresql:// URL (default: where the registry keeps it)",
    )
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
    history.add_argument("--host", metavar="H", help="only configs this host used")

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

    drift = add("drift", cmd_drift, [index_option, json_option])
    drift.add_argument("--profile", metavar="P", help="only this profile")
    drift.add_argument(
        "--since",
        metavar="WHEN",
        type=parse_when,
        help="only hosts that used the profile since WHEN (30d, 12h, or an ISO date/time): who disagrees now",
    )
    drift.add_argument(
        "--exit-code", action="store_true", help="exit with status 3 when a profile drifts (for checks and CI)"
    )

    add("hosts", cmd_hosts, [index_option, json_option])

    import_ = add("import", cmd_import, [index_option, json_option])
    import_.add_argument("file", metavar="FILE", help="the output of `clientreg export` (- for stdin)")
    import_.add_argument(
        "--source",
        metavar="NAME",
        help="what the history is recorded as coming from (default: the hosts in FILE): importing from the same "
        "source again adds only what grew",
    )

    add("migrate", cmd_migrate, [index_option])
    return parser


class _LogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().removeprefix(f"{PROG}: ")
        text = f"{PROG}: warning: {message}" if record.levelno >= logging.WARNING else f"{PROG}: {message}"
        return terminal_safe(scrub(text))


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
    sys.stderr.write(terminal_safe(scrub(f"{PROG}: {lines[0]}\n" + "".join(f"  {line}\n" for line in lines[1:]))))
    return 1


if __name__ == "__main__":
    sys.exit(main())
