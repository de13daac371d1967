"""The openai builder's pool is of the HTTP library the installed openai speaks (httpx2 for 3, httpx before).

clientreg supports openai>=1.40: openai 3 requires ``httpx2``, openai 1.x and 2.x require
``httpx`` (2.x takes ``httpx2`` only through an extra). The registry reads which from the
installed distribution's requirements; tests/integrations/test_pinned_frameworks.py runs
registry clients on openai 2 for real in the pinned environment.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import httpx
import httpx2
import pytest

from registry import Registry
from registry.providers import builder_for
from registry.providers._common import sdk_http_library
from schemas import GroqSettings, OpenAISettings

OPENAI_3 = ["anyio<5,>=4.10.0", "httpx2<3,>=2.12.0", "jiter<1,>=0.16.0", "aiohttp>=3.14.4; extra == 'aiohttp'"]
OPENAI_2 = [  # openai 2.54.0's requirements, in its order
    "anyio<5,>=3.5.0",
    "httpx<1,>=0.23.0",
    "httpx-aiohttp>=0.1.9; extra == 'aiohttp'",
    "httpx2<3,>=2.7.0; extra == 'httpx2'",
]
OPENAI_2_HTTPX2_EXTRA_FIRST = [  # an extra naming httpx2 before the plain requirement: still httpx
    'httpx2<3,>=2.7.0 ; extra == "httpx2"',
    "httpx (<1,>=0.23.0)",
]


def install_metadata(root: Path, name: str, requirements: list[str]) -> None:
    """A distribution ``name`` with ``requirements``, as pip leaves it in site-packages."""
    info = root / f"{name.replace('-', '_')}-9.9.9.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 9.9.9", *(f"Requires-Dist: {r}" for r in requirements)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("requirements", "library"),
    [(OPENAI_3, "httpx2"), (OPENAI_2, "httpx"), (OPENAI_2_HTTPX2_EXTRA_FIRST, "httpx"), ([], "httpx2")],
)
def test_the_library_comes_from_the_distributions_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, requirements: list[str], library: str
) -> None:
    install_metadata(tmp_path, "clientreg-probe-sdk", requirements)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert importlib.metadata.version("clientreg-probe-sdk") == "9.9.9"  # the real metadata machinery finds it
    assert sdk_http_library("clientreg-probe-sdk") == library


def test_a_missing_distribution_is_the_newest_sdks_library() -> None:
    assert sdk_http_library("clientreg-no-such-distribution") == "httpx2"


def test_the_installed_sdks_and_the_pools_the_registry_gives_them() -> None:
    openai_major = int(importlib.metadata.version("openai").split(".")[0])
    expected = "httpx2" if openai_major >= 3 else "httpx"
    assert builder_for("openai").HTTP_LIBRARY == builder_for("azure_openai").HTTP_LIBRARY == expected
    assert builder_for("groq").HTTP_LIBRARY == "httpx"
    with Registry(index_path="off") as reg:
        pool = reg.get_http_client(OpenAISettings(api_key="sk-test"))
        assert isinstance(pool, httpx2.Client if expected == "httpx2" else httpx.Client)
        assert isinstance(reg.get_http_client(GroqSettings(api_key="gsk-test")), httpx.Client)
