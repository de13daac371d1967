"""The key index on PostgreSQL (issue 13): many writers, a miss with it on, history on a big fleet record.

Each measurement makes its own database on the server named by ``$CLIENTREG_BENCH_POSTGRES``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``) and drops it afterwards. Without a
reachable server, or without psycopg (the ``[postgres]`` extra), the rows are skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks._context import ROOT, Context
from benchmarks._figure import Baseline, Figure, Measurement, Row, Skip
from benchmarks._stats import Sample

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PROFILES = 20


def _admin_url() -> str:
    return os.environ.get("CLIENTREG_BENCH_POSTGRES", ADMIN_URL)


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database on the benchmark's PostgreSQL server; yields its URL, drops it afterwards."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        raise Skip("psycopg is not installed (pip install -e '.[postgres]')") from None
    admin = _admin_url()
    name = f"clientreg_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        connection = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        where = f"{urlsplit(admin).hostname}:{urlsplit(admin).port}"
        raise Skip(f"no PostgreSQL reachable at {where}: {type(exc).__name__}") from None
    with connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(admin)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        _require_postgres_store(url, psycopg)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def probe(url: str) -> dict[str, Any]:
    """Worker: one client through ``Registry(index_path=url)``, then close (which writes the record)."""
    from registry import Registry
    from schemas import OpenAISettings

    with Registry(index_path=url) as reg:
        reg.get_client(OpenAISettings(api_key="sk-fleet-probe"))
    return {}


def _require_postgres_store(url: str, psycopg: Any) -> None:
    """Fail unless the registry really writes its index into the database at ``url``.

    Run in a scratch directory: a registry that took the URL for a file path would otherwise
    leave a ``postgresql:`` directory behind and time SQLite instead.
    """
    with tempfile.TemporaryDirectory(prefix="clientreg-bench-") as scratch:
        command = [sys.executable, "-m", "benchmarks._worker", "fleet:probe", url]
        done = subprocess.run(command, cwd=scratch, env=_worker_env(), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"Registry(index_path=postgresql://...) failed: {last}")
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()[0]
    if not tables:
        raise RuntimeError(
            "Registry(index_path=postgresql://...) wrote no table to PostgreSQL: the index does not "
            "support PostgreSQL yet (issue 13)"
        )


def _worker_env() -> dict[str, str]:
    """This environment, with the benchmarks importable from any working directory."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


# ---- many writers -----------------------------------------------------------------------------


def writer(url: str, seconds: str, seed: str) -> dict[str, Any]:
    """Worker: hand out clients of the same configs for ``seconds`` with the index at ``url``; count them."""
    import random

    from registry import Registry
    from schemas import OpenAISettings

    settings = [OpenAISettings(api_key=f"sk-fleet-{i:02d}") for i in range(PROFILES)]
    rng = random.Random(int(seed))
    handouts: dict[str, int] = {}
    reg = Registry(index_path=url, max_clients=PROFILES // 2)  # evictions too, not only uses
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        chosen = settings[rng.randrange(PROFILES)]
        reg.get_client(chosen)
        handouts[chosen.config_hash] = handouts.get(chosen.config_hash, 0) + 1
    reg.close()  # writes what is pending
    return {"handouts": handouts}


def _uses(url: str, hashes: list[str]) -> dict[str, int]:
    from registry.index import KeyIndex

    found = {}
    with KeyIndex(url) as index:
        for config_hash in hashes:
            record = index.get(config_hash)
            found[config_hash] = 0 if record is None else record.uses
    return found


WRITERS_ROW = Row(
    "fleet_writers_uses_lost",
    "{fleet_processes} processes writing one PostgreSQL index for {fleet_seconds:g} s: uses lost",
    "count",
    "0 (exact counts, no deadlock)",
    "{fleet_processes} processes (standing in for hosts) each handing out clients of the same 20 configs "
    "through Registry(index_path=URL, max_clients=10) as fast as one thread can, then closing; lost: the "
    "hand-outs counted by the processes minus the uses the index records (negative: over-counted)",
)


def measure_writers(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    row = ctx.row(WRITERS_ROW)
    with scratch_database() as url:
        command = [sys.executable, "-m", "benchmarks._worker", "fleet:writer", url, str(counts.fleet_seconds)]
        processes = [
            subprocess.Popen([*command, str(seed)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for seed in range(counts.fleet_processes)
        ]
        totals: dict[str, int] = {}
        hung = 0
        failures = []
        for process in processes:
            try:
                out, err = process.communicate(timeout=counts.fleet_seconds + 120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                hung += 1
                continue
            if process.returncode != 0:
                failures.append((err.strip().splitlines() or ["?"])[-1])
                continue
            for config_hash, n in json.loads(out.strip().splitlines()[-1])["handouts"].items():
                totals[config_hash] = totals.get(config_hash, 0) + n
        if failures:
            return [row.measured(None, error=f"{len(failures)} writers failed: {failures[0]}")]
        recorded = _uses(url, sorted(totals))
    handed = sum(totals.values())
    lost = handed - sum(recorded.values())
    wrong = sum(1 for h in totals if recorded[h] != totals[h])
    note = f"{handed:,} hand-outs; {wrong} of {len(totals)} configs with a count that differs; {hung} writers hung"
    return [row.measured(Sample((float(lost),)), passed=lost == 0 and wrong == 0 and hung == 0, note=note)]


# ---- a miss with the index on PostgreSQL --------------------------------------------------------

MISS_ROW = Row(
    "fleet_miss_index_on_vs_off",
    "miss with the PostgreSQL key index on vs off",
    "s",
    "<= 1.3x",
    "one thread, sequential; each miss a new api key on a warm pool (openai), settings built in the timing; "
    "a fresh registry per round, PostgreSQL on loopback, on and off alternating",
)


def measure_miss(ctx: Context) -> list[Figure]:
    from benchmarks.misses import registry_miss_seconds
    from registry import Registry
    from schemas import OpenAISettings

    counts = ctx.counts
    on: list[float] = []
    off: list[float] = []
    with scratch_database() as url:
        for round_no in range(counts.miss_rounds + 1):  # round 0 warms up
            for index_path, into in ((url, on), ("off", off)):
                with Registry(index_path=index_path) as reg:
                    reg.get_client(OpenAISettings(api_key=f"sk-warm-{uuid.uuid4().hex}"))
                    seconds = registry_miss_seconds(reg, OpenAISettings, counts.misses)
                if round_no:
                    into.append(seconds)
    ours, base = Sample(tuple(on)), Sample(tuple(off))
    return [ctx.row(MISS_ROW).measured(ours, [Baseline("index off", base)], passed=ours.median <= 1.3 * base.median)]


# ---- history on a big fleet record -------------------------------------------------------------

HISTORY_ROW = Row(
    "fleet_history",
    "clientreg history on PostgreSQL: {fleet_history_configs:,} configs, {fleet_history_events:,} events",
    "s",
    "<= 1 s",
    "the console script `clientreg history --index URL`, interpreter start included, PostgreSQL on loopback; "
    "the record written beforehand through KeyIndex.apply (configs of three providers, 8 hosts, evictions)",
)


def build_fleet_record(url: str, configs: int, events: int) -> float:
    """Write ``configs`` configs and about ``events`` events through the KeyIndex write API; seconds taken."""
    from registry.index import ConfigUse, KeyIndex, NewEvent
    from schemas import CerebrasSettings, GroqSettings, OpenAISettings, fingerprint

    providers = (OpenAISettings, GroqSettings, CerebrasSettings)
    templates = [cls(api_key="sk-template").canonical_dict() for cls in providers]
    per_config = max(0, events // configs - 2)  # each config brings first_seen and built
    now = time.time()
    started = time.perf_counter()
    with KeyIndex(url) as index:
        for first in range(0, configs, 2_000):
            uses: list[ConfigUse] = []
            extra: list[NewEvent] = []
            for i in range(first, min(first + 2_000, configs)):
                config: dict[str, Any] = {**templates[i % 3], "api_key": fingerprint(f"sk-fleet-{i:012d}")}
                canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
                config_hash = hashlib.sha256(canonical.encode()).hexdigest()
                host = f"host-{i % 8}"
                at = now - (configs - i)
                profile = f"tenant-{i % 50}" if i % 10 == 0 else None
                use = ConfigUse(config_hash, config["provider"], config, profile, at, uses=1 + i % 7, kind="built")
                uses.append(dataclasses.replace(use, host=host))
                extra.extend(NewEvent(at + k, config_hash, None, "evicted", host=host) for k in range(per_config))
            index.apply(uses, extra)
    return time.perf_counter() - started


def measure_history(ctx: Context) -> list[Figure]:
    from benchmarks.history import CONSOLE_SCRIPT

    counts = ctx.counts
    row = ctx.row(HISTORY_ROW)
    with scratch_database() as url:
        built = build_fleet_record(url, counts.fleet_history_configs, counts.fleet_history_events)
        values = []
        for _ in range(counts.history_rounds):
            started = time.perf_counter()
            command = [str(CONSOLE_SCRIPT), "history", "--index", url]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
            values.append(time.perf_counter() - started)
    sample = Sample(tuple(values))
    return [row.measured(sample, passed=sample.median <= 1.0, note=f"record written in {built:.0f} s")]


MEASUREMENTS = (
    Measurement("fleet", (WRITERS_ROW,), measure_writers),
    Measurement("fleet", (MISS_ROW,), measure_miss),
    Measurement("fleet", (HISTORY_ROW,), measure_history),
)
