"""The metrics row of `python -m benchmarks` compares like with like (the figure itself is the benchmark's).

Both modes run in fresh interpreters that import the OpenTelemetry SDK and make a provider;
only "on" instruments the registry. A comparison whose "off" side skipped the SDK import would
credit the instruments with the import's effect on the interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _worker(mode: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks._worker", "metrics_overhead:hit", mode, "0.002", "2"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("mode", ["off", "on"])
def test_both_modes_import_the_sdk_and_only_on_is_instrumented(mode: str) -> None:
    pytest.importorskip("opentelemetry.sdk.metrics", reason="the OpenTelemetry SDK comes with the [dev] extra")
    result = _worker(mode)
    assert result["sdk_imported"] is True
    assert result["instrumented"] is (mode == "on")
    assert result["median"] > 0
