"""Eight processes, standing in for hosts, write one PostgreSQL index at once: exact counts, no deadlock, drift found.

The bounded version of the benchmark's 60-second run (``python -m benchmarks --only fleet``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from registry.index import KeyIndex
from registry.index.fleet import fleet_drift
from schemas import load_settings
from tests.postgres_helpers import Schema

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 8
SECONDS = 2.0

WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    from registry import Registry
    from schemas import OpenAISettings, load_settings

    url, settings_file, seconds, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    loaded = load_settings(settings_file)
    extra = [OpenAISettings(api_key=f"sk-fleet-test-{i}") for i in range(8)]
    registry = Registry(loaded, index_path=url, max_clients=4)  # evictions and rebuilds, not only hits
    counts = {}
    def count(key):
        counts[key] = counts.get(key, 0) + 1
    registry.get_client("fast"); count(loaded.profiles["fast"].config_hash)
    print("ready", flush=True)
    sys.stdin.readline()
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(50):
            if rng.random() < 0.3:
                registry.get_client("fast"); count(loaded.profiles["fast"].config_hash)
            else:
                s = extra[rng.randrange(len(extra))]
                registry.get_client(s); count(s.config_hash)
    registry.close()
    print(json.dumps(counts))
    """
)


def _settings_file(folder: Path, timeout: int) -> Path:
    path = folder / f"clientreg-{timeout}.toml"
    path.write_text(f'[profiles.fast]\nprovider = "openai"\napi_key = "sk-fleet-test-fast"\ntimeout = {timeout}\n')
    return path


def test_eight_hosts_write_one_index_with_exact_counts_and_the_odd_ones_out_show_as_drift(
    tmp_path: Path, pg_schema: Schema
) -> None:
    KeyIndex(pg_schema.url).close()  # the layout exists, as a deployment's migrate step leaves it
    usual, odd = _settings_file(tmp_path, 30), _settings_file(tmp_path, 60)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, pg_schema.url, str(odd if n >= 6 else usual), str(SECONDS), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "CLIENTREG_HOSTNAME": f"host-{n}"},
            cwd=tmp_path,
        )
        for n in range(PROCESSES)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        for process in processes:  # all start at once
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        totals: dict[str, int] = {}
        for process in processes:
            out, err = process.communicate(timeout=120)  # a deadlock would hang here
            assert process.returncode == 0, err
            assert "clientreg" not in err, err  # no warning: nothing failed, nothing dropped
            for config_hash, n in json.loads(out.strip().splitlines()[-1]).items():
                totals[config_hash] = totals.get(config_hash, 0) + n
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()

    with KeyIndex(pg_schema.url, read_only=True) as index:
        recorded = {h: r.uses if (r := index.get(h)) is not None else 0 for h in totals}
        assert recorded == totals  # every hand-out of every process, once
        assert sum(totals.values()) > PROCESSES * 1000
        assert [h.host for h in index.hosts()] == [f"host-{n}" for n in range(PROCESSES)]
        (drift,) = fleet_drift(index.host_heads(), index.get)
        usual_hash = load_settings(usual).profiles["fast"].config_hash
        odd_hash = load_settings(odd).profiles["fast"].config_hash
        assert [(c.config_hash, c.hosts) for c in drift.configs] == [
            (usual_hash, tuple(f"host-{n}" for n in range(6))),
            (odd_hash, ("host-6", "host-7")),
        ]
        assert [(c.field, c.old, c.new) for c in drift.configs[1].changes] == [("timeout", 30.0, 60.0)]
        # Each process built "fast" once per (re)build; every build is an event, none lost or doubled.
        builds = sum(e.count for e in index.events(usual_hash) if e.kind == "built")
        assert builds >= 6
