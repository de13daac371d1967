"""The frameworks rows of `python -m benchmarks` measure what they say (a smoke run: 5 agents, one framework)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integrations.conftest import framework

ROOT = Path(__file__).resolve().parents[2]


def test_the_frameworks_benchmark_worker_runs() -> None:
    framework("autogen_ext.models.openai")
    sides = {}
    for side in ("default", "registry"):
        command = [sys.executable, "-m", "benchmarks._worker", "frameworks:build", "autogen", side, "5"]
        out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, check=True)
        sides[side] = json.loads(out.stdout.strip().splitlines()[-1])
    assert sides["registry"]["built"] == sides["default"]["built"] == 5
    assert sides["registry"]["live_transports"] == 1  # five keys, one shared pool
    # The figures themselves are the benchmark's business, not the test's.
    assert all(result["seconds"] > 0 and isinstance(result["rss_bytes"], int) for result in sides.values())
