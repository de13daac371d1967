"""Run one scenario of a recipe: ``python -m tests.integrations.pinned <recipe> <scenario>``.

The loopback guard goes in first, before the recipe imports its framework (LlamaIndex and
LangChain read caches, tokenizers and tracing settings on import): a connection or name
lookup beyond loopback fails, and is reported. The scenario gets a fresh registry without an
index and the server's URL (``CLIENTREG_TEST_SERVER``); one JSON object is printed: the
scenario's value, the registry's live clients and transports (before it closes), what the
guard refused, and the installed versions of the SDKs and the recipe's distributions.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import sys

from tests.integrations.helpers import NetworkGuard

guard = NetworkGuard()
for (owner, name), replacement in guard.replacements().items():
    setattr(owner, name, replacement)

from registry import Registry  # noqa: E402  (after the guard, as everything below)

recipe = importlib.import_module(f"tests.integrations.pinned.{sys.argv[1]}")
scenario = recipe.SCENARIOS[sys.argv[2]]
with Registry(index_path="off") as reg:
    value = scenario(reg, os.environ["CLIENTREG_TEST_SERVER"])
    stats = reg.stats()
distributions = ["openai", "groq", *recipe.DISTRIBUTIONS]
report = {
    "value": value,
    "live_clients": stats.live_clients,
    "live_transports": stats.live_transports,
    "refused": guard.refused,
    "versions": {name: importlib.metadata.version(name) for name in distributions},
}
print(json.dumps(report))
