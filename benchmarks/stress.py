"""The long stress runs of issue 8: pool ownership under churn and close(), and fork from a busy process.

The test suite runs short, bounded versions of both; these are the long ones.
"""

from __future__ import annotations

import os
import random
import select
import signal
import threading
import time
from typing import Any

from benchmarks._context import Context
from benchmarks._figure import Figure, Measurement, Row, describe_error
from benchmarks._stats import Sample
from tests.fake_server import FakeServer

# ---- ownership --------------------------------------------------------------------------------

KEYS = 200
HOT_KEYS = 45  # fit under the bound: most hand-outs are hits, the rest evict
HOT_SHARE = 0.9
MAX_CLIENTS = 50

OWNERSHIP_ROW = Row(
    "ownership_stress",
    "ownership stress: bad hand-outs in {stress_handouts:,} (eviction + close() mid-run)",
    "count",
    "0",
    "{stress_threads} threads calling get_client on 200 keys over 2 pools through Registry(max_clients=50), "
    "90% of calls on 45 hot keys, the rest evicting; index off; the hand-outs split over {stress_closes} "
    "registries, each closed by another thread while the callers run; bad: a client whose pool was already "
    "closed when handed out while close() had not begun, a client handed out by a call that began after "
    "close() returned, an error other than RegistryClosedError, a pool left open after close()",
)


class _Tally:
    """Counts shared by the stress threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handouts = 0
        self.closed_pool = 0
        self.after_close = 0
        self.racing = 0
        self.errors: list[str] = []
        self.pools: dict[int, Any] = {}


def _ownership_phase(settings: list[Any], quota: int, threads: int, tally: _Tally, seed: int) -> None:
    from registry import Registry, RegistryClosedError

    reg = Registry(index_path="off", max_clients=MAX_CLIENTS)
    closing = threading.Event()
    closed = threading.Event()
    progress = [0] * threads

    def caller(slot: int) -> None:
        rng = random.Random(seed * 100 + slot)
        done = 0
        closed_pool = after_close = racing = 0
        errors: list[str] = []
        pools: dict[int, Any] = {}
        while True:
            which = rng.randrange(HOT_KEYS) if rng.random() < HOT_SHARE else rng.randrange(HOT_KEYS, KEYS)
            began_after_close = closed.is_set()
            try:
                client = reg.get_client(settings[which])
            except RegistryClosedError:
                if closing.is_set():
                    break
                errors.append("RegistryClosedError before close() began")
                break
            except Exception as exc:
                errors.append(describe_error(exc))
                if closing.is_set():
                    break
                continue
            pool = client._client
            if began_after_close:
                after_close += 1
            elif pool.is_closed:
                if closing.is_set():
                    racing += 1  # the call overlapped close(): reported, not judged
                else:
                    closed_pool += 1
            pools[id(pool)] = pool
            done += 1
            if done % 256 == 0:
                progress[slot] = done
        with tally.lock:
            tally.handouts += done
            tally.closed_pool += closed_pool
            tally.after_close += after_close
            tally.racing += racing
            tally.errors.extend(errors)
            tally.pools.update(pools)

    running = [threading.Thread(target=caller, args=(slot,)) for slot in range(threads)]
    for thread in running:
        thread.start()
    while sum(progress) < quota and any(t.is_alive() for t in running):
        time.sleep(0.01)
    closing.set()
    reg.close()
    closed.set()
    for thread in running:
        thread.join()


def measure_ownership(ctx: Context) -> list[Figure]:
    from schemas import OpenAISettings

    counts = ctx.counts
    row = ctx.row(OWNERSHIP_ROW)
    settings = [OpenAISettings(api_key=f"sk-own-{i:04d}", max_connections=100 + i % 2) for i in range(KEYS)]
    tally = _Tally()
    started = time.perf_counter()
    quota = counts.stress_handouts // counts.stress_closes
    for phase in range(counts.stress_closes):
        _ownership_phase(settings, quota, counts.stress_threads, tally, phase)
    seconds = time.perf_counter() - started
    left_open = sum(1 for pool in tally.pools.values() if not pool.is_closed)
    bad = tally.closed_pool + tally.after_close + len(tally.errors) + left_open
    note = (
        f"{tally.handouts:,} hand-outs in {seconds:.0f} s over {len(tally.pools):,} pools; closed-pool hand-outs "
        f"{tally.closed_pool}, hand-outs after close() {tally.after_close}, other errors {len(tally.errors)}"
        + (f" (first: {tally.errors[0]})" if tally.errors else "")
        + f", pools left open {left_open}; {tally.racing} hand-outs overlapping close() got a pool close() "
        "had already closed (not judged: the call and close() ran at once)"
    )
    enough = tally.handouts >= counts.stress_handouts
    if not enough:
        note += f"; fewer hand-outs than asked ({tally.handouts:,} < {counts.stress_handouts:,})"
    return [row.measured(Sample((float(bad),)), passed=bad == 0 and enough, note=note)]


# ---- fork -------------------------------------------------------------------------------------

MAX_HANGS = 5  # a broken build would otherwise spend the run waiting for children

FORK_ROW = Row(
    "fork_stress",
    "fork stress: children that hang, in {forks:,} forks of a busy parent",
    "count",
    "0",
    "the parent's {fork_threads} threads get clients of 100 keys through Registry(max_clients=50) with the "
    "SQLite index on, one in ten sending a request to a loopback server, while the main thread forks; "
    "each child gets a client from the inherited registry, sends one request and exits; a child not done "
    "within {fork_timeout:g} s counts as hung and is killed; stops after 5 hangs",
)


def measure_fork(ctx: Context) -> list[Figure]:
    from registry import Registry
    from schemas import OpenAISettings

    counts = ctx.counts
    row = ctx.row(FORK_ROW)
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    with FakeServer() as server:
        base_url = f"{server.url}/v1"
        keys = [OpenAISettings(api_key=f"sk-fork-{i:03d}", base_url=base_url) for i in range(100)]
        child_settings = OpenAISettings(api_key="sk-fork-child", base_url=base_url)
        reg = Registry(index_path=ctx.scratch / "fork-index.sqlite", max_clients=MAX_CLIENTS)
        stop = threading.Event()
        busy_errors: list[str] = []

        def busy(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                try:
                    client = reg.get_client(keys[rng.randrange(len(keys))])
                    if rng.random() < 0.1:
                        client.chat.completions.create(model="fake-model", messages=messages)
                except Exception as exc:
                    busy_errors.append(describe_error(exc))

        threads = [threading.Thread(target=busy, args=(seed,), daemon=True) for seed in range(counts.fork_threads)]
        for thread in threads:
            thread.start()
        hangs = failed = forks = 0
        slowest = 0.0
        try:
            for _ in range(counts.forks):
                if hangs >= MAX_HANGS:
                    break
                started = time.monotonic()
                pid = os.fork()
                if pid == 0:  # the child: use the inherited registry, then leave without cleanup
                    code = 1
                    try:
                        reply = reg.get_client(child_settings).chat.completions.create(
                            model="fake-model", messages=messages
                        )
                        code = 0 if reply.choices[0].message.content == "echo: hi" else 1
                    finally:
                        os._exit(code)
                forks += 1
                status = _wait(pid, started + counts.fork_timeout)
                slowest = max(slowest, time.monotonic() - started)
                if status is None:
                    hangs += 1
                elif status != 0:
                    failed += 1
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            reg.close()
    note = (
        f"{forks:,} forks; {hangs} hung, {failed} children failed their request, slowest child {slowest:.2f} s; "
        f"{len(busy_errors)} errors in the parent's threads" + (f" (first: {busy_errors[0]})" if busy_errors else "")
    )
    ok = hangs == 0 and failed == 0 and not busy_errors and forks == counts.forks
    return [row.measured(Sample((float(hangs),)), passed=ok, note=note)]


def _wait(pid: int, deadline: float) -> int | None:
    """The child's exit status, or None if it was still running at the deadline (then killed).

    Waits on a pidfd, which wakes as the child exits, without polling (and without the GIL).
    """
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        os.close(pidfd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


MEASUREMENTS = (
    Measurement("stress", (OWNERSHIP_ROW,), measure_ownership),
    Measurement("stress", (FORK_ROW,), measure_fork),
)
