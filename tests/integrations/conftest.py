"""Fixtures of the framework tests: a fresh registry per test, frameworks offline, loopback only.

The frameworks come from the ``[integrations]`` extra (``pip install -e ".[dev]"`` installs it).
Each test fails if anything in the process (a framework's telemetry, a price list, a tokenizer
download) tried to reach an address other than loopback, even from a background thread.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from registry import Registry

# Read by LiteLLM when it is imported: use the price list it ships instead of fetching one.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

_TRACING_VARIABLES = ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")


def framework(module: str) -> ModuleType:
    """Import a framework of the [integrations] extra: skip visibly without it, except under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if os.environ.get("CI") == "true":
            raise
        reason = f"{module} is not installed (pip install -e '.[dev]' installs it): {error}"
        pytest.skip(reason, allow_module_level=True)


def _is_loopback(host: Any) -> bool:
    if host in (None, "localhost", b"localhost"):
        return True
    try:
        return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Refuses, and remembers, every connection or name lookup beyond loopback."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def check(self, host: Any, what: str) -> None:
        if not _is_loopback(host):
            self.refused.append(f"{what} {host!r}")
            raise OSError(f"test network guard: {what} {host!r} refused (tests reach loopback only)")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """Make non-loopback connections fail in this test, and fail the test if any was tried."""
    guard = NetworkGuard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            guard.check(address[0], "connect to")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            guard.check(address[0], "connect to")
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        guard.check(host, "look up")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in _TRACING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield guard
    assert not guard.refused, f"the test tried to reach the network: {guard.refused}"


@pytest.fixture
def reg() -> Iterator[Registry]:
    """A registry of its own, without an index, closed after the test."""
    with Registry(index_path="off") as registry:
        yield registry
