"""How ``clientreg`` prints: aligned tables, local times, JSON arrays, and scrubbed messages."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

PROG = "clientreg"
SECRETS: set[str] = set()  # secrets of settings loaded in this process, scrubbed from every message

_minute_cache: dict[int, str] = {}

# Characters a terminal acts on rather than shows: C0 and C1 controls, DEL, and the Unicode
# bidirectional overrides that make text read differently from what it is. A profile name or
# host in the index is data: it is shown escaped, never interpreted.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile(_CONTROL.pattern[:-1] + "\n]")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character (newlines included) escaped: ``\\x1b``, ``\\n`` as ``\\x0a``."""
    return _CONTROL_OR_NEWLINE.sub(_escape_one, text)


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
    """An aligned text table: two spaces between columns, ``right`` columns right-aligned, cells escaped."""
    rows = [[printable(cell) for cell in row] for row in rows]
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


def json_array(items: Iterable[Any]) -> str:
    """A JSON array with one object per line."""
    # One object per line: a valid JSON array that is also easy to grep and diff.
    # ASCII only: every control or direction character is a \\u escape, safe on any terminal.
    body = ",\n".join(json.dumps(item, separators=(",", ":")) for item in items)
    return "[\n" + body + "\n]\n" if body else "[]\n"


def out_json_lines(lines: Iterable[str]) -> None:
    """Write a JSON array of ready-made one-line objects (see `json_array`), escaping any control character."""
    write = sys.stdout.write
    separator = "[\n"
    for line in lines:  # written as they come: 100,000 configs never make one string
        write(separator + scrub(_CONTROL.sub(_json_escape_one, line)))
        separator = ",\n"
    write("[]\n" if separator == "[\n" else "\n]\n")


def _json_escape_one(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"  # the same character inside a JSON string, shown as an escape


def value_text(value: Any) -> str:
    """One value as JSON (keys sorted), for a table cell."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted leaves of a canonical dict, in key order (as ``changed_fields`` names them)."""
    if isinstance(value, dict) and (value or not prefix):
        for key in sorted(value):
            yield from leaves(value[key], f"{prefix}{key}.")
    else:
        yield prefix[:-1], value


def out(text: str) -> None:
    """Write to stdout, scrubbed of every secret loaded in this process, control characters escaped."""
    sys.stdout.write(terminal_safe(scrub(text)))


def terminal_safe(text: str) -> str:
    """``text`` with control characters other than newlines escaped (see `printable`)."""
    return _CONTROL.sub(_escape_one, text)


def scrub(text: str) -> str:
    """``text`` with every secret loaded in this process replaced by ``***``."""
    for secret in SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def warn(message: str) -> None:
    """A ``clientreg: warning:`` line on stderr."""
    sys.stderr.write(terminal_safe(scrub(f"{PROG}: warning: {message}")) + "\n")
