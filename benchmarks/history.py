"""``clientreg history`` on a SQLite index of many configs, written directly through KeyIndex's write API."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._context import Context
from benchmarks._figure import Figure, Measurement, Row
from benchmarks._stats import Sample

BATCH = 5_000
CONSOLE_SCRIPT = Path(sys.executable).with_name("clientreg")


def build_index(path: Path, configs: int) -> float:
    """Write ``configs`` distinct configs (three providers, a few profiles); return seconds taken."""
    from registry.index import ConfigUse, KeyIndex
    from schemas import CerebrasSettings, GroqSettings, OpenAISettings, fingerprint

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
        command = [str(CONSOLE_SCRIPT), "history", "--index", str(path)]
        return command, "the console script `clientreg history --index PATH`"
    code = (
        "import sys; from registry.index import KeyIndex\n"
        "with KeyIndex(sys.argv[1], create=False) as index: rows = index.list_summaries()\n"
        "assert len(rows) > 0"
    )
    return [sys.executable, "-c", code, str(path)], "KeyIndex.list_summaries() in a fresh interpreter (no CLI found)"


ROW = Row(
    "history",
    "clientreg history on a SQLite index of {history_configs:,} configs",
    "s",
    "<= 2 s",
    "the whole command, interpreter start included, {history_rounds} runs; the index written beforehand "
    "through KeyIndex.apply (three providers, one config in ten under one of 50 profiles)",
)


def measure(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    path = ctx.scratch / "history.sqlite"
    build_seconds = build_index(path, counts.history_configs)
    command, what = history_command(path)
    values: list[float] = []
    for _ in range(counts.history_rounds):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        values.append(time.perf_counter() - started)
    sample = Sample(tuple(values))
    note = f"timed: {what}; index written in {build_seconds:.1f} s"
    return [ctx.row(ROW).measured(sample, passed=sample.median <= 2.0, note=note)]


MEASUREMENTS = (Measurement("history", (ROW,), measure),)
