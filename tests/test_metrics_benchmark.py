"""benchmarks.metrics_overhead still runs (tiny counts; the figure itself is the benchmark's, not a test's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_metrics_overhead_benchmark_runs_both_modes(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.metrics_overhead", "--quick", "--json", str(out)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "hit path with metrics on vs off (target: within 1.05x)" in done.stdout
    figures = json.loads(out.read_text())
    assert figures["key"] == "hit_metrics_on_vs_off" and figures["quick"] is True
    assert len(figures["off"]["rounds"]) == len(figures["on"]["rounds"]) == 2
    assert figures["ratio"] == figures["on"]["median"] / figures["off"]["median"]
