"""``clientreg history`` on an index of many configs, built directly through KeyIndex's write API."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._stats import Sample
from registry.index import ConfigUse, KeyIndex
from schemas import CerebrasSettings, GroqSettings, OpenAISettings, fingerprint

BATCH = 5_000
CONSOLE_SCRIPT = Path(sys.executable).with_name("clientreg")


def build_index(path: Path, configs: int) -> float:
    """Write ``configs`` distinct configs (three providers, a few profiles); return seconds taken."""
    providers = (OpenAISettings, GroqSettings, CerebrasSettings)
    templates = [cls(api_key="sk-template").canonical_dict() for cls in providers]
    now = time.time()
    started = time.perf_counter()
    with KeyIndex(path) as index:
        for first in range(0, configs, BATCH):
            uses: list[ConfigUse] = []
            for i in range(first, min(first + BATCH, configs)):
                config: dict[str, Any] = {**templates[i % 3], "api_key": fingerprint(f"sk-bench-{i:012d}")}
                canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
                uses.append(
                    ConfigUse(
                        config_hash=hashlib.sha256(canonical.encode()).hexdigest(),
                        provider=config["provider"],
                        config=config,
                        profile=f"tenant-{i % 50}" if i % 10 == 0 else None,
                        time=now - (configs - i),
                        uses=1 + i % 7,
                        kind="built",
                    )
                )
            index.apply(uses)
    return time.perf_counter() - started


def history_command(path: Path) -> tuple[list[str], str]:
    """The command to time: the console script once the CLI exists, else the KeyIndex read it uses."""
    if CONSOLE_SCRIPT.exists() and importlib.util.find_spec("registry.cli") is not None:
        return [str(CONSOLE_SCRIPT), "history", "--index", str(path)], "console script `clientreg history --index PATH`"
    read = "list_summaries" if hasattr(KeyIndex, "list_summaries") else "list_configs"
    code = (
        "import sys; from registry.index import KeyIndex\n"
        f"with KeyIndex(sys.argv[1], create=False) as index: rows = index.{read}()\n"
        "assert len(rows) > 0"
    )
    return [sys.executable, "-c", code, str(path)], f"KeyIndex.{read}() in a fresh interpreter (no CLI yet)"


def measure(path: Path, *, rounds: int) -> tuple[Sample, str]:
    """Wall seconds of the whole history command (interpreter start included), over ``rounds`` runs."""
    command, what = history_command(path)
    values: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        values.append(time.perf_counter() - started)
    return Sample(tuple(values)), what
