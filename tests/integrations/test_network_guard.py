"""The framework tests' network guard refuses what is not loopback (so a framework phoning home fails them)."""

from __future__ import annotations

import socket

import pytest

from tests.fake_server import FakeServer
from tests.integrations.conftest import NetworkGuard


def test_the_guard_refuses_connections_and_lookups_beyond_loopback(
    loopback_only: NetworkGuard, server: FakeServer
) -> None:
    # 0.0.0.0 is not a loopback address, yet reaches this machine only: if the guard let it
    # through, nothing would leave the machine.
    with pytest.raises(OSError, match="refused"):
        socket.create_connection(("0.0.0.0", server.port), timeout=5)
    with pytest.raises(OSError, match="refused"):
        socket.getaddrinfo("0.0.0.0", server.port)
    with socket.socket() as sock, pytest.raises(OSError, match="refused"):
        sock.connect(("0.0.0.0", server.port))
    with socket.socket() as sock, pytest.raises(OSError, match="refused"):
        sock.connect_ex(("0.0.0.0", server.port))
    assert loopback_only.refused == ["look up '0.0.0.0'"] * 2 + ["connect to '0.0.0.0'"] * 2
    loopback_only.refused.clear()  # seen: the test itself passes
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass
    with socket.create_connection(("localhost", server.port), timeout=5):
        pass
