"""Fixtures of the framework tests: a fresh registry per test, frameworks offline, loopback only.

The frameworks come from the ``[integrations]`` extra (``pip install -e ".[dev]"`` installs it).
Each test fails if anything in the process (a framework's telemetry, a price list, a tokenizer
download) tried to reach an address other than loopback, even from a background thread.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType

import pytest

from registry import Registry
from tests.integrations.helpers import NetworkGuard

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


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """Make non-loopback connections fail in this test, and fail the test if any was tried."""
    guard = NetworkGuard()
    for (owner, name), replacement in guard.replacements().items():
        monkeypatch.setattr(owner, name, replacement)
    for name in _TRACING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield guard
    assert not guard.refused, f"the test tried to reach the network: {guard.refused}"


@pytest.fixture
def reg() -> Iterator[Registry]:
    """A registry of its own, without an index, closed after the test."""
    with Registry(index_path="off") as registry:
        yield registry
