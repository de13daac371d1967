"""The real PostgreSQL server the fleet tests use, a schema per test, and a TCP proxy that can cut it off.

Tests reach the server at ``$CLIENTREG_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``, trust authentication). Each test gets its own
schema, with a name no other process can pick, dropped afterwards. Without a reachable server
the tests skip, saying why; under ``CI=true`` that is a failure instead.

`Proxy` forwards a local port to the server, byte for byte, and can be stopped (every
connection cut, the port closed: the database is "down") and started again on the same port
(it "restarted"). That is how a client sees a server go away, restart or become unreachable,
without touching the server other tests share.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

BASE_URL = os.environ.get("CLIENTREG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_reachable: str | bool | None = None  # None: not tried yet; True: reachable; str: why not


def _why_unreachable() -> str | None:
    global _reachable
    if _reachable is None:
        try:
            import psycopg
        except ImportError:
            _reachable = "psycopg is not installed (pip install -e '.[dev]')"
        else:
            try:
                psycopg.connect(BASE_URL, connect_timeout=5).close()
                _reachable = True
            except psycopg.Error as exc:
                parts = urlsplit(BASE_URL)
                _reachable = f"no PostgreSQL server at {parts.hostname}:{parts.port}: {' '.join(str(exc).split())}"
    return None if _reachable is True else str(_reachable)


def require_postgres() -> None:
    """Skip (fail under CI=true) unless the server answers."""
    reason = _why_unreachable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def admin() -> Any:
    """A new autocommit connection to the test database as the superuser (close it)."""
    import psycopg

    return psycopg.connect(BASE_URL, autocommit=True)


def with_params(url: str, **params: str) -> str:
    """``url`` with query parameters added."""
    parts = urlsplit(url)
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def with_netloc(url: str, netloc: str) -> str:
    """``url`` with another ``user:password@host:port``."""
    return urlunsplit(urlsplit(url)._replace(netloc=netloc))


@dataclass
class Schema:
    """A schema of the test's own on the server: its name and a URL naming it."""

    name: str
    url: str

    def at(self, netloc: str, **params: str) -> str:
        """The URL of this schema through another ``user:password@host:port``."""
        return with_params(with_netloc(BASE_URL, netloc), schema=self.name, **params)


def new_schema_name(prefix: str = "t") -> str:
    return f"clientreg_{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def drop_schema(name: str) -> None:
    from psycopg import sql

    with admin() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@contextlib.contextmanager
def schema(prefix: str = "t") -> Iterator[Schema]:
    """A fresh schema name (the index creates the schema) and its URL; dropped afterwards."""
    require_postgres()
    name = new_schema_name(prefix)
    try:
        yield Schema(name, with_params(BASE_URL, schema=name))
    finally:
        drop_schema(name)


@contextlib.contextmanager
def role(*, login: bool = True, grants_on: str | None = None, read_only: bool = False) -> Iterator[str]:
    """A role of the test's own (trust auth: any password is accepted); dropped afterwards.

    ``grants_on``: a schema whose tables it may read and write (only read, with ``read_only``).
    """
    from psycopg import sql

    name = f"clientreg_role_{uuid.uuid4().hex[:10]}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} " + ("LOGIN" if login else "NOLOGIN")).format(sql.Identifier(name)))
        if grants_on is not None:
            grant_dml(name, grants_on, read_only=read_only)
    try:
        yield name
    finally:
        with admin() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            if grants_on is not None:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def grant_dml(role_name: str, schema_name: str, *, read_only: bool = False) -> None:
    """The grants an application role (a reader: ``read_only``) needs on an index's schema (docs/fleet.md)."""
    from psycopg import sql

    rights = "SELECT" if read_only else "SELECT, INSERT, UPDATE, DELETE"
    with admin() as conn:
        r, s = sql.Identifier(role_name), sql.Identifier(schema_name)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r))
        conn.execute(sql.SQL("GRANT " + rights + " ON ALL TABLES IN SCHEMA {} TO {}").format(s, r))


def terminate(application_name: str) -> int:
    """``pg_terminate_backend`` every session with this application name; how many."""
    with admin() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return len(rows)


class Proxy:
    """A loopback TCP proxy to the server that can be stopped (the database is down) and started again."""

    def __init__(self, upstream: tuple[str, int] | None = None) -> None:
        parts = urlsplit(BASE_URL)
        self.upstream = upstream or (parts.hostname or "127.0.0.1", parts.port or 5432)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self.frozen = threading.Event()  # set: server-to-client bytes are held back (not delivered)

    @property
    def netloc(self) -> str:
        user = urlsplit(BASE_URL).username or "postgres"
        return f"{user}@127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port and cut every connection (as a server that went down)."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets.update((client, server))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_server: bool) -> None:
        held = b""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_server and self.frozen.is_set():
                    held += data  # never delivered: the client sees no answer
                    continue
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
