"""How ``clientreg`` prints: aligned tables, local times, JSON arrays, and scrubbed messages."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

PROG = "clientreg"
SECRETS: set[str] = set()  # secrets of settings loaded in this process, scrubbed from every message

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


def json_array(items: Iterable[Any]) -> str:
    """A JSON array with one object per line."""
    # One object per line: a valid JSON array that is also easy to grep and diff.
    body = ",\n".join(json.dumps(item, ensure_ascii=False) for item in items)
    return "[\n" + body + "\n]\n" if body else "[]\n"


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
    """Write to stdout, scrubbed of every secret loaded in this process."""
    sys.stdout.write(scrub(text))


def scrub(text: str) -> str:
    """``text`` with every secret loaded in this process replaced by ``***``."""
    for secret in SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def warn(message: str) -> None:
    """A ``clientreg: warning:`` line on stderr."""
    sys.stderr.write(scrub(f"{PROG}: warning: {message}\n"))
