"""Recipe scripts for the frameworks that need the pinned environment (.venv-compat).

tests/integrations/test_pinned_frameworks.py runs each scenario as
``.venv-compat/bin/python -m tests.integrations.pinned <recipe> <scenario>`` against the
loopback server whose URL is in ``CLIENTREG_TEST_SERVER`` (see ``__main__.py``). A recipe
module names its scenarios in ``SCENARIOS`` and the distributions it reports in
``DISTRIBUTIONS``. These modules import frameworks the main environment does not have:
pytest never imports them (their names do not start with ``test_``).
"""

from __future__ import annotations

from typing import Any


def http_library(client: Any) -> str:
    """The HTTP library of a shared HTTP client: ``httpx`` or ``httpx2``."""
    for cls in type(client).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("httpx", "httpx2"):
            return root
    return "unknown"
