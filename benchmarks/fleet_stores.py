"""The key index for a fleet: PostgreSQL side by side with the SQLite file, measured in one run.

    python -m benchmarks.fleet_stores                  # the figures of issue 13 (several minutes)
    python -m benchmarks.fleet_stores --quick          # a smoke run: small counts, a few seconds each
    python -m benchmarks.fleet_stores --json out.json  # also write the figures as JSON

Figures, each for PostgreSQL and for SQLite (one file all processes share):

- writers: N processes (standing in for hosts; each its own ``CLIENTREG_HOSTNAME``) hand out
  clients of the same 20 configs through ``Registry(index_path=..., max_clients=10)`` as fast
  as one thread can for S seconds, then close. Uses lost = hand-outs counted by the processes
  minus the uses the index holds; configs whose count differs; processes that hung.
- miss: seconds per miss (a new api key on a warm pool) with the index on vs off, a fresh
  registry per round, contenders alternating; and a hit (the same settings again) on vs off.
- history: ``clientreg history`` (the console script, interpreter start included) on an index
  holding C configs and E events, written beforehand through ``KeyIndex.apply``.

The PostgreSQL side uses a schema of its own on ``$CLIENTREG_BENCH_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLIENTREG = Path(sys.executable).with_name("clientreg")
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
CONFIGS = 20
KEY = "clientreg-fleet-benchmark-fingerprint-key"


@dataclass(frozen=True)
class Counts:
    processes: int = 8
    seconds: float = 60.0
    misses: int = 200
    rounds: int = 7
    history_configs: int = 100_000
    history_events: int = 1_000_000
    history_rounds: int = 3


QUICK = Counts(
    processes=4, seconds=2.0, misses=50, rounds=3, history_configs=2_000, history_events=20_000, history_rounds=2
)


def _server() -> str:
    return os.environ.get("CLIENTREG_BENCH_POSTGRES", DEFAULT_SERVER)


@contextlib.contextmanager
def postgres_location() -> Iterator[str]:
    """A URL naming a fresh schema on the benchmark's server; the schema is dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"clientreg_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    server = _server()
    url = f"{server}{'&' if '?' in server else '?'}schema={name}"
    try:
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@contextlib.contextmanager
def sqlite_location() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="clientreg-fleet-bench-") as folder:
        yield str(Path(folder) / "index.sqlite")


LOCATIONS = {"postgresql": postgres_location, "sqlite": sqlite_location}


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "CLIENTREG_FINGERPRINT_KEY": KEY, **extra}


# ---- many writers -----------------------------------------------------------------------------


def _settings() -> list[Any]:
    from schemas import OpenAISettings

    return [OpenAISettings(api_key=f"sk-fleet-bench-{i:02d}") for i in range(CONFIGS)]


def writer(location: str, seconds: float, seed: int) -> dict[str, Any]:
    """One process: hand out clients of the same configs for ``seconds`` after the go signal; count them."""
    from registry import Registry

    settings = _settings()
    rng = random.Random(seed)
    handouts = [0] * CONFIGS
    registry = Registry(index_path=location, max_clients=CONFIGS // 2)  # evictions too, not only uses
    registry.get_client(settings[0])
    handouts[0] += 1
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()  # every process starts at once
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(100):
            i = rng.randrange(CONFIGS)
            registry.get_client(settings[i])
            handouts[i] += 1
    recorder = registry._recorder
    registry.close()  # writes what is pending, as an application's shutdown does
    stats = recorder.stats() if recorder is not None else None
    return {
        "handouts": {s.config_hash: n for s, n in zip(settings, handouts, strict=True)},
        "dropped_uses": stats.dropped_uses if stats else None,
        "failed_flushes": stats.failed_flushes if stats else None,
    }


def measure_writers(store: str, counts: Counts) -> dict[str, Any]:
    from registry.index import KeyIndex

    with LOCATIONS[store]() as location:
        command = [sys.executable, "-m", "benchmarks.fleet_stores", "--worker", location, str(counts.seconds)]
        processes = [
            subprocess.Popen(
                [*command, str(seed)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(CLIENTREG_HOSTNAME=f"host-{seed}"),
                cwd=ROOT,
            )
            for seed in range(counts.processes)
        ]
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a writer did not start: {process.stderr.read() if process.stderr else ''}")
        started = time.monotonic()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        totals: dict[str, int] = {}
        hung = failed = dropped = failed_flushes = 0
        warnings: list[str] = []
        for process in processes:
            try:
                out, err = process.communicate(timeout=counts.seconds + 120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                hung += 1
                continue
            warnings.extend(line for line in err.splitlines() if "clientreg" in line)
            if process.returncode != 0:
                failed += 1
                continue
            result = json.loads(out.strip().splitlines()[-1])
            dropped += result["dropped_uses"] or 0
            failed_flushes += result["failed_flushes"] or 0
            for config_hash, n in result["handouts"].items():
                totals[config_hash] = totals.get(config_hash, 0) + n
        wall = time.monotonic() - started
        with KeyIndex(location, read_only=True) as index:
            recorded = {h: (r.uses if (r := index.get(h)) is not None else 0) for h in totals}
            hosts = len(index.hosts())
    handed = sum(totals.values())
    return {
        "store": store,
        "processes": counts.processes,
        "seconds": counts.seconds,
        "handouts": handed,
        "handouts_per_second": handed / wall,
        "uses_recorded": sum(recorded.values()),
        "uses_lost": handed - sum(recorded.values()),
        "configs_wrong": sum(1 for h in totals if recorded[h] != totals[h]),
        "hung": hung,
        "failed": failed,
        "dropped_uses_reported": dropped,
        "failed_flushes": failed_flushes,
        "hosts_recorded": hosts,
        "warnings": warnings[:5],
    }


# ---- a miss and a hit with the index on ---------------------------------------------------------


def measure_miss_and_hit(counts: Counts) -> dict[str, Any]:
    from registry import Registry
    from schemas import OpenAISettings

    serial = iter(range(10**9))
    miss: dict[str, list[float]] = {"off": [], "postgresql": [], "sqlite": []}
    hit: dict[str, list[float]] = {"off": [], "postgresql": [], "sqlite": []}
    with postgres_location() as pg, sqlite_location() as lite:
        locations = {"off": "off", "postgresql": pg, "sqlite": lite}
        for round_no in range(counts.rounds + 1):  # round 0 warms up
            for name, location in locations.items():
                with Registry(index_path=location) as registry:
                    same = OpenAISettings(api_key=f"sk-fleet-hit-{round_no}")
                    registry.get_client(same)  # imports the SDK, warms the pool
                    keys = [f"sk-fleet-miss-{next(serial):012d}" for _ in range(counts.misses)]
                    started = time.perf_counter()
                    for key in keys:
                        registry.get_client(OpenAISettings(api_key=key))
                    seconds = (time.perf_counter() - started) / counts.misses
                    timer = timeit.Timer(lambda r=registry, s=same: r.get_client(s))
                    per_hit = min(timer.repeat(3, 20_000)) / 20_000
                if round_no:
                    miss[name].append(seconds)
                    hit[name].append(per_hit)
    med = {k: statistics.median(v) for k, v in miss.items()}
    hmed = {k: statistics.median(v) for k, v in hit.items()}
    return {
        "miss_seconds": med,
        "miss_rounds": miss,
        "miss_ratio_postgresql_vs_off": med["postgresql"] / med["off"],
        "miss_ratio_sqlite_vs_off": med["sqlite"] / med["off"],
        "hit_seconds": hmed,
        "hit_rounds": hit,
        "hit_ratio_postgresql_vs_off": hmed["postgresql"] / hmed["off"],
        "hit_ratio_sqlite_vs_off": hmed["sqlite"] / hmed["off"],
    }


# ---- history on a big record -------------------------------------------------------------------


def build_record(location: str, configs: int, events: int) -> float:
    """Write ``configs`` configs and about ``events`` events through ``KeyIndex.apply``; seconds taken."""
    from registry.index import ConfigUse, KeyIndex, NewEvent
    from schemas import CerebrasSettings, GroqSettings, OpenAISettings

    kinds = (OpenAISettings, GroqSettings, CerebrasSettings)
    per_config = max(0, events // configs - 2)  # each config brings first_seen and built
    now = time.time()
    started = time.perf_counter()
    with KeyIndex(location) as index:
        for first in range(0, configs, 1_000):
            uses: list[ConfigUse] = []
            extra: list[NewEvent] = []
            for i in range(first, min(first + 1_000, configs)):
                settings = kinds[i % 3](api_key=f"sk-fleet-history-{i:09d}")
                at = now - (configs - i)
                host = f"host-{i % 8}"
                profile = f"tenant-{i % 50}" if i % 10 == 0 else None
                use = ConfigUse(
                    settings.config_hash, settings.provider, settings.canonical_json(), profile, at, 1 + i % 7, "built"
                )
                uses.append(replace(use, host=host))
                # Evictions by distinct processes: rows that do not coalesce into one.
                extra.extend(
                    NewEvent(at + k, settings.config_hash, profile, "evicted", host=host, pid=1000 + k)
                    for k in range(per_config)
                )
            index.apply(uses, extra)
    return time.perf_counter() - started


def measure_history(store: str, counts: Counts) -> dict[str, Any]:
    from registry.index import KeyIndex

    with LOCATIONS[store]() as location:
        built = build_record(location, counts.history_configs, counts.history_events)
        with KeyIndex(location, read_only=True) as index:
            stored_configs = len(index.list_summaries())
        stored_events = _count_events(store, location)
        timings: dict[str, list[float]] = {"table": [], "json": []}
        for _ in range(counts.history_rounds):
            for name, extra in (("table", []), ("json", ["--json"])):
                started = time.perf_counter()
                subprocess.run(
                    [str(CLIENTREG), "history", "--index", location, *extra],
                    check=True,
                    stdout=subprocess.DEVNULL,
                    env=_env(),
                    timeout=600,
                )
                timings[name].append(time.perf_counter() - started)
    return {
        "store": store,
        "configs": stored_configs,
        "events": stored_events,
        "record_written_seconds": built,
        "history_seconds": statistics.median(timings["table"]),
        "history_json_seconds": statistics.median(timings["json"]),
        "rounds": timings,
    }


def _count_events(store: str, location: str) -> int:
    if store == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(location)) as conn:
            return int(conn.execute('SELECT count(*) FROM "events"').fetchone()[0])
    import psycopg

    from registry.index.dsn import parse_postgres_url

    where = parse_postgres_url(location)
    with psycopg.connect(where.conninfo) as conn:
        found = conn.execute(f'SELECT count(*) FROM "{where.schema}".events').fetchone()  # a name we made
        return int(found[0]) if found else 0


# ---- the run ----------------------------------------------------------------------------------


def conditions() -> dict[str, Any]:
    import psycopg

    with psycopg.connect(_server()) as conn:
        server = conn.execute("SHOW server_version").fetchone()
    return {
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "postgresql": server[0] if server else None,
        "sqlite": __import__("sqlite3").sqlite_version,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_stores", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--only", choices=["writers", "miss", "history"], action="append", help="run only these")
    parser.add_argument("--worker", nargs=3, metavar=("LOCATION", "SECONDS", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        location, seconds, seed = args.worker
        print(json.dumps(writer(location, float(seconds), int(seed))))
        return 0
    os.environ["CLIENTREG_FINGERPRINT_KEY"] = KEY
    counts = QUICK if args.quick else Counts()
    wanted = set(args.only or ["writers", "miss", "history"])
    report: dict[str, Any] = {"conditions": conditions(), "counts": counts.__dict__}
    if "writers" in wanted:
        report["writers"] = [measure_writers(store, counts) for store in ("postgresql", "sqlite")]
        for row in report["writers"]:
            print(
                f"writers  {row['store']:<10}  {row['processes']} processes x {row['seconds']:g} s: "
                f"{row['handouts']:,} hand-outs ({row['handouts_per_second']:,.0f}/s), uses lost {row['uses_lost']}, "
                f"configs wrong {row['configs_wrong']}, hung {row['hung']}, failed {row['failed']}, "
                f"dropped (reported) {row['dropped_uses_reported']}, failed flushes {row['failed_flushes']}",
                flush=True,
            )
    if "miss" in wanted:
        report["miss"] = miss = measure_miss_and_hit(counts)
        print(
            f"miss     on/off: postgresql {miss['miss_ratio_postgresql_vs_off']:.2f}x, sqlite "
            f"{miss['miss_ratio_sqlite_vs_off']:.2f}x (off {miss['miss_seconds']['off'] * 1e6:.1f} us, postgresql "
            f"{miss['miss_seconds']['postgresql'] * 1e6:.1f} us, sqlite {miss['miss_seconds']['sqlite'] * 1e6:.1f} us)",
            flush=True,
        )
        print(
            f"hit      on/off: postgresql {miss['hit_ratio_postgresql_vs_off']:.2f}x, sqlite "
            f"{miss['hit_ratio_sqlite_vs_off']:.2f}x (off {miss['hit_seconds']['off'] * 1e9:.0f} ns)",
            flush=True,
        )
    if "history" in wanted:
        report["history"] = [measure_history(store, counts) for store in ("postgresql", "sqlite")]
        for row in report["history"]:
            print(
                f"history  {row['store']:<10}  {row['configs']:,} configs, {row['events']:,} events: "
                f"{row['history_seconds']:.2f} s table, {row['history_json_seconds']:.2f} s --json "
                f"(record written in {row['record_written_seconds']:.0f} s)",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
