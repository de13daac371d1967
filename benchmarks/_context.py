"""What every measurement is given: how much work to do, the peer, a scratch directory, workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._figure import Baseline, Row, Skip

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Counts:
    """How much work each measurement does; ``QUICK`` only proves that everything runs."""

    hot_seconds: float = 0.04  # short rounds, many of them: a median that rides out other load
    hot_rounds: int = 21
    metrics_processes: int = 10  # fresh interpreters per mode
    misses: int = 200
    plain_builds: int = 5
    miss_rounds: int = 5
    index_rounds: int = 15  # index off / SQLite / PostgreSQL, a fresh registry each per round
    index_hits: int = 20_000
    rss_keys: tuple[int, int] = (1_000, 10_000)
    rss_rounds: int = 3
    rss_plain: int = 60
    rss_plain_batches: int = 3
    churn_keys: int = 100_000
    churn_max_clients: int = 100
    distinct_keys: int = 100
    distinct_rounds: int = 3
    agents: int = 1_000
    agents_in_flight: int = 50
    agent_rounds: int = 3
    agent_plain_rounds: int = 1
    stream_agents: int = 200
    server_delay: float = 0.02  # seconds the loopback server takes per response: keeps requests in flight
    loop_runs: int = 100
    loop_threads: int = 8
    loop_thread_requests: int = 25
    index_churn_seconds: float = 20.0
    index_churn_configs: int = 200
    index_churn_max_clients: int = 50
    import_rounds: int = 5
    history_configs: int = 100_000
    history_events: int = 1_000_000
    history_rounds: int = 3
    fleet_processes: int = 8
    fleet_seconds: float = 60.0
    framework_agents: int = 1_000
    framework_rounds: int = 1
    framework_fresh_processes: bool = True  # quick: every framework and side in one interpreter


QUICK = Counts(
    hot_seconds=0.002,
    hot_rounds=2,
    metrics_processes=1,
    misses=5,
    plain_builds=1,
    miss_rounds=2,
    index_rounds=1,
    index_hits=200,
    rss_keys=(10, 100),
    rss_rounds=1,
    rss_plain=3,
    rss_plain_batches=1,
    churn_keys=300,
    churn_max_clients=20,
    distinct_keys=5,
    distinct_rounds=1,
    agents=20,
    agents_in_flight=5,
    agent_rounds=1,
    agent_plain_rounds=1,
    stream_agents=10,
    server_delay=0.005,
    loop_runs=3,
    loop_threads=2,
    loop_thread_requests=2,
    index_churn_seconds=1.0,
    index_churn_configs=20,
    index_churn_max_clients=5,
    import_rounds=1,
    history_configs=300,
    history_events=3_000,
    history_rounds=1,
    fleet_processes=2,
    fleet_seconds=1.0,
    framework_agents=5,
    framework_rounds=1,
    framework_fresh_processes=False,
)


class Context:
    """Shared by the measurements of one run."""

    def __init__(self, counts: Counts, *, fetch: bool, scratch: Path) -> None:
        self.counts = counts
        self.fetch = fetch
        self.scratch = scratch
        self._peer: Any = None
        self._peer_missing = ""

    def row(self, row: Row) -> Row:
        """The row with this run's counts filled into its label and conditions."""
        return row.for_counts(self.counts)

    def langroid(self) -> Any:
        """The loaded peer (`benchmarks.peer.Peer`), or None when it is unavailable (see `langroid_missing`)."""
        if self._peer is None and not self._peer_missing:
            from benchmarks import peer

            try:
                self._peer = peer.load(fetch=self.fetch)
            except peer.PeerUnavailable as exc:
                self._peer_missing = f"Langroid unavailable: {exc}"
        return self._peer

    @property
    def langroid_missing(self) -> str:
        """Why the peer is unavailable ('' when it loaded)."""
        self.langroid()
        return self._peer_missing

    def langroid_name(self) -> str:
        from benchmarks.peer import NAME

        return NAME

    def missing_langroid(self) -> Baseline:
        """The Langroid baseline of a row when the peer could not be loaded."""
        return Baseline(self.langroid_name(), None, self.langroid_missing)

    def require_langroid(self) -> Any:
        """The peer, or `Skip` with the reason (for rows that only compare with Langroid)."""
        loaded = self.langroid()
        if loaded is None:
            raise Skip(self.langroid_missing)
        return loaded


def worker(*args: object, env: dict[str, str] | None = None, timeout: float = 900) -> dict[str, Any]:
    """Run ``module:function ARGS...`` in a fresh interpreter (`benchmarks._worker`); return its JSON.

    A worker that fails raises RuntimeError with the last line of its stderr.
    """
    command = [sys.executable, "-m", "benchmarks._worker", *map(str, args)]
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment, timeout=timeout)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(f"worker {args[0]} failed: {lines[-1]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
