"""registry.integrations imports no framework and no SDK: the helpers only hand out registry clients."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["openai", "groq", "cerebras", "httpx", "httpx2", "langchain_core", "langchain_openai", "pydantic_ai",
         "agents", "litellm", "autogen_ext", "autogen_core", "instructor", "llama_index"]


def test_importing_the_helpers_imports_no_framework() -> None:
    code = (
        "import json, sys; import registry, registry.integrations; "
        "from registry.integrations import langchain_kwargs; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
