"""Shared fixtures: the fake LLM server, and isolation from the developer's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas._fingerprint import _Key, fingerprint_key_id, reset_fingerprint_key
from tests.fake_server import FakeServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress",
        action="store_true",
        default=False,
        help="run the long versions of the stress tests (a million hand-outs, a thousand forks)",
    )


@pytest.fixture
def stress(request: pytest.FixtureRequest) -> bool:
    """True under ``--stress``: tests then run their long versions."""
    return bool(request.config.getoption("--stress"))


_ISOLATED_PREFIXES = ("OPENAI_", "AZURE_OPENAI_", "GROQ_", "CEREBRAS_", "CLIENTREG_")
TEST_FINGERPRINT_KEY = "clientreg-example-fingerprint-key-0001"
"""The fingerprint key of every test (and of the golden vectors in docs/config-hash.md)."""
_TEST_KEY_ID = _Key(TEST_FINGERPRINT_KEY, "environment").id


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeServer]:
    """One OpenAI-compatible server for the whole session; prefer `server`, which resets it."""
    with FakeServer() as server:
        yield server


@pytest.fixture
def server(fake_server: FakeServer) -> FakeServer:
    """The session's fake server, with its records, counters, delay and failures reset."""
    fake_server.reset()
    return fake_server


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep provider variables and the user's data and config directories out of every test."""
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CLIENTREG_INDEX", str(tmp_path / "index.sqlite"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    # A fixed fingerprint key, so hashes are the same in every test, subprocess and run.
    monkeypatch.setenv("CLIENTREG_FINGERPRINT_KEY", TEST_FINGERPRINT_KEY)
    if fingerprint_key_id() != _TEST_KEY_ID:  # a test left another key loaded: start afresh
        reset_fingerprint_key()
