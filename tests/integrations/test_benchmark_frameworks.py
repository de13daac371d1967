"""`python -m benchmarks.frameworks` runs and measures what it says (a smoke run: 5 agents, one framework)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_frameworks_benchmark_runs() -> None:
    command = [sys.executable, "-m", "benchmarks.frameworks", "--agents", "5", "--frameworks", "autogen", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, check=True)
    [row] = json.loads(out.stdout)
    assert (row["framework"], row["agents"]) == ("autogen", 5)
    assert row["registry_transports"] == 1  # five keys, one shared pool
    assert row["default_s"] > 0 and row["registry_s"] > 0  # the figures themselves are the benchmark's business
    assert {"default_rss_mb", "registry_rss_mb", "time_ratio", "rss_ratio"} <= set(row)
