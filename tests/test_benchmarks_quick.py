"""The benchmark command still runs: quick mode end to end, every figure in well-formed JSON.

Timings are not asserted here: targets belong to the benchmark's own report, not to pass/fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIGURES = {
    "hit_reused_vs_seed_cache",
    "hit_reused_vs_dict",
    "settings_construction",
    "hit_fresh_equal_object",
    "miss_warm_transport_openai",
    "miss_warm_transport_groq",
    "miss_warm_transport_cerebras",
    "miss_index_on_vs_off",
    "rss_1000_keys",
    "rss_10000_keys",
    "agents_wall_time",
    "agents_tcp_connections",
    "import",
    "history",
}


def _check_sample(sample: object) -> None:
    assert isinstance(sample, dict)
    rounds = sample["rounds"]
    assert rounds and all(isinstance(v, int | float) and v >= 0 for v in rounds)
    assert sample["min"] <= sample["median"] <= sample["max"]


def test_quick_mode_runs_and_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "PASS" in done.stdout or "MISS" in done.stdout  # the table was printed

    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    assert {"cpu", "cores", "python", "packages"} <= results["machine"].keys()
    assert set(results["figures"]) == FIGURES
    for key, figure in results["figures"].items():
        assert figure["unit"] in ("s", "bytes", "count"), key
        assert figure["target"] and figure["label"], key
        assert figure["passed"] in (True, False, None), key
        _check_sample(figure["clientreg"])
        if figure["baseline"] is not None:
            _check_sample(figure["baseline"])
            assert isinstance(figure["ratio"], float), key
