"""A PostgreSQL index location: telling a URL from a path, its schema, and showing it without its password.

A location is a ``postgresql://`` (or ``postgres://``) URL in libpq's form, with one
parameter of clientreg's own, ``schema`` (default ``clientreg``): the PostgreSQL schema that
holds the index's tables, so tenants and tests sharing a database keep apart::

    postgresql://clientreg@db.internal:5432/ops?schema=clientreg&sslmode=verify-full

Everything else in the URL goes to libpq as written. The password (in the URL's user part,
or a ``password`` / ``sslpassword`` parameter) is kept only in the string handed to libpq:
`PostgresLocation.shown` and ``repr`` leave it out, and `PostgresLocation.scrub` removes it
from any text (a driver's error message) before clientreg shows it. A password is better
kept out of the URL altogether: libpq reads ``PGPASSWORD``, ``~/.pgpass`` and ``passfile=``.

This module imports no driver: the registry and the CLI use it to decide which store a
location names before anything heavy is imported.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit, urlunsplit

from registry.index.records import IndexRefusedError

if TYPE_CHECKING:
    from registry.index.store import KeyIndex

SCHEMES: Final = ("postgresql://", "postgres://")
DEFAULT_SCHEMA: Final = "clientreg"
SCHEMA_PARAMETER: Final = "schema"
EXTRA: Final = "clientreg[postgres]"
"""The optional extra that installs the PostgreSQL driver (psycopg 3 with its binary build)."""

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PASSWORD_PARAMETERS = frozenset({"password", "sslpassword"})
_MIN_SCRUBBED = 3  # shorter passwords are not searched for in messages: every "ab" would go


def is_database_url(location: object) -> bool:
    """Whether ``location`` is a PostgreSQL URL rather than a file path (a `Path` never is)."""
    return isinstance(location, str) and location.lstrip()[:13].lower().startswith(SCHEMES)


@dataclass(frozen=True)
class PostgresLocation:
    """A parsed PostgreSQL index location. Its ``repr`` and ``shown`` never hold the password."""

    conninfo: str = field(repr=False)
    """The URL handed to libpq: as given, less clientreg's own ``schema`` parameter (may hold a password)."""
    schema: str
    shown: str
    """The URL to show: no password, ``schema`` always spelled out."""
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def scrub(self, text: str) -> str:
        """``text`` with the URL replaced by `shown` and any password in it replaced by ``***``."""
        text = text.replace(self.conninfo, self.shown)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def __str__(self) -> str:
        return self.shown


def parse_postgres_url(url: str) -> PostgresLocation:
    """Split clientreg's ``schema`` parameter from a PostgreSQL URL and make its password-free form.

    Raises `IndexRefusedError` (naming the URL without its password) for a schema name that
    is not a plain identifier or a URL that cannot be parsed.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        password = parts.password
        host_part = parts.netloc.rpartition("@")[2]
        user = parts.username
    except ValueError as exc:  # a port that is not a number, a bracket left open
        raise IndexRefusedError(f"cannot read the PostgreSQL URL of the clientreg index: {exc}") from None
    secrets = {s for s in (password, unquote(password or "")) if s and len(s) >= _MIN_SCRUBBED}

    kept: list[str] = []  # the query items for libpq, exactly as written (libpq decodes them itself)
    shown_items: list[str] = []
    schema = DEFAULT_SCHEMA
    for item in filter(None, parts.query.split("&")):
        name, _, value = item.partition("=")
        if name == SCHEMA_PARAMETER:
            schema = unquote(value)
            continue
        kept.append(item)
        if name in _PASSWORD_PARAMETERS:
            secrets.update(s for s in (value, unquote(value)) if len(s) >= _MIN_SCRUBBED)
        else:
            shown_items.append(item)
    netloc = host_part if user is None else f"{user}@{host_part}"
    shown_query = "&".join([*shown_items, f"{SCHEMA_PARAMETER}={schema}"])
    shown = urlunsplit((parts.scheme, netloc, parts.path, shown_query, ""))
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), parts.fragment))
    if not _SCHEMA_NAME.fullmatch(schema) or schema.lower().startswith("pg_"):
        raise IndexRefusedError(
            f"{schema!a} is not a schema name clientreg uses (in {shown}): give letters, digits and "
            "underscores, at most 63, not starting with a digit or pg_"
        )
    # Longest first, so a password that contains another secret is replaced whole.
    ordered = tuple(sorted(secrets, key=len, reverse=True))
    return PostgresLocation(conninfo, schema, shown, ordered)


def shown_location(location: str | os.PathLike[str]) -> str:
    """How a location is shown to users: a path as it is, a URL without its password."""
    if is_database_url(location):
        try:
            return parse_postgres_url(str(location)).shown
        except IndexRefusedError:
            return "postgresql://(a URL that cannot be read)"
    return os.fspath(location)


def location_secrets(location: str | os.PathLike[str]) -> tuple[str, ...]:
    """The passwords in a location, to scrub from messages (none for a path)."""
    if is_database_url(location):
        try:
            return parse_postgres_url(str(location)).secrets
        except IndexRefusedError:
            return ()
    return ()


def load_postgres_store() -> type[KeyIndex]:
    """The PostgreSQL store class; `IndexRefusedError` naming the extra when psycopg cannot be imported."""
    try:
        from registry.index.postgres import PostgresIndex
    except ImportError as exc:
        raise IndexRefusedError(
            f"a PostgreSQL key index needs psycopg 3, which cannot be imported here ({exc}): pip install '{EXTRA}'"
        ) from None
    return PostgresIndex
