"""registry.instrument(): the registry's figures through the real OpenTelemetry SDK and Prometheus exporter.

The figures are process-wide (every registry, alive or collected), so each scripted scenario
runs in a fresh interpreter (a child process running a ``scenario_*`` function of this module)
where they hold only what the script did, and every value is checked exactly here.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fake_server import FakeServer
from tests.registry_helpers import achat, settings_for

REPO = Path(__file__).resolve().parents[1]
MARK = "@@clientreg-metrics@@"

# ---- running a scenario in a fresh interpreter ------------------------------------------------


def _child(name: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``name(*args)`` of this module in a new interpreter; return what it returned (JSON)."""
    code = (
        "import json, sys\n"
        "from tests import test_metrics as t\n"
        f"print({MARK!r} + json.dumps(getattr(t, sys.argv[1])(*sys.argv[2:])), flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, name, *args],
        cwd=REPO,
        env={**os.environ, "CLIENTREG_INDEX": "off", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-6000:]}"
    line = next(line for line in done.stdout.splitlines() if line.startswith(MARK))
    return json.loads(line[len(MARK) :])


def _labels(attributes: Any) -> str:
    if not attributes:
        return ""
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(attributes.items())) + "}"


def _read(reader: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The clientreg points an in-memory reader collects now, and each metric's (type, monotonic, unit)."""
    points: dict[str, Any] = {}
    shapes: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            if scope.scope.name != "clientreg":
                continue
            for metric in scope.metrics:
                shapes[metric.name] = [
                    type(metric.data).__name__,
                    getattr(metric.data, "is_monotonic", None),
                    metric.unit,
                ]
                for point in metric.data.data_points:
                    key = metric.name + _labels(point.attributes)
                    if hasattr(point, "bucket_counts"):
                        points[key] = {
                            "count": point.count,
                            "sum": point.sum,
                            "bounds": list(point.explicit_bounds),
                            "buckets": list(point.bucket_counts),
                        }
                    else:
                        points[key] = point.value
    return points, shapes


def _tidy_all(*registries: Any) -> None:
    """Let collected clients release their pools, so pool counts are exact (stats() tidies)."""
    gc.collect()
    for reg in registries:
        reg.stats()


def _build_seconds(*registries: Any) -> float:
    return float(sum(reg.stats().build_seconds for reg in registries))


def _wait(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# ---- scenario 1: the in-memory reader, every value ----------------------------------------------


def scenario_in_memory(tmp: str) -> dict[str, Any]:
    """Hits, misses, lru/idle/close evictions, an unwritable index; collected at checkpoints."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import registry
    from registry import Registry

    out: dict[str, Any] = {}
    with FakeServer() as server:
        url = server.url
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])

        # Made before instrument(): its history counts too (counters run from each registry's start).
        r0 = Registry(index_path="off")
        r0.get_client(settings_for("openai", url, key="sk-r0"))
        r0.get_client(settings_for("openai", url, key="sk-r0"))

        handle = registry.instrument(meter_provider=provider)
        out["idempotent"] = registry.instrument(meter_provider=provider) is handle and handle.active
        out["global_handle_differs"] = registry.instrument() is not handle
        registry.instrument().uninstrument()  # the global (no-op) provider's: not this reader's business

        # The default registry (made by the first get_client, after instrument()).
        registry.get_client(settings_for("openai", url, key="sk-default"))
        registry.get_client(settings_for("openai", url, key="sk-default"))
        registry.get_async_client(settings_for("azure_openai", url, key="sk-default-azure"))
        default = registry.default_registry()

        # r1: an lru eviction, idle evictions by prune, an async client used on a running loop.
        r1 = Registry(index_path="off", max_clients=2)
        a, b, c = (settings_for(p, url, key=f"sk-r1-{p}") for p in ("openai", "groq", "cerebras"))
        r1.get_client(a)
        r1.get_client(b)
        r1.get_client(a)
        r1.get_client(c)  # sync table full: b, least recently used, is evicted
        r1.get_async_client(settings_for("groq", url, key="sk-r1-async"))
        assert r1.prune(older_than=0) == 3
        r1.get_client(a)
        async_azure = r1.get_async_client(settings_for("azure_openai", url, key="sk-r1-azure"))
        loop = asyncio.new_event_loop()
        loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
        loop_thread.start()
        assert asyncio.run_coroutine_threadsafe(achat(async_azure), loop).result(60) == "echo: hello"

        # r4: an idle eviction by max_idle (the janitor thread).
        r4 = Registry(index_path="off", max_idle=0.05)
        r4.get_client(settings_for("openai", url, key="sk-r4"))
        _wait(lambda: r4.stats().live_clients == 0)

        # r2: an index that cannot be created (its directory is a file).
        blocker = Path(tmp) / "blocker"
        blocker.write_text("not a directory")
        r2 = Registry(index_path=blocker / "index.sqlite")
        x = settings_for("openai", url, key="sk-r2")
        for _ in range(3):
            r2.get_client(x)
        r2.get_async_client(settings_for("groq", url, key="sk-r2-async"))
        recorder = r2._recorder
        assert recorder is not None
        out["flushed"] = recorder.flush(timeout=60)

        live = (r0, default, r1, r4, r2)
        _tidy_all(*live)
        for _ in range(20):  # a write attempt (once a second) takes events out while it runs: read between
            before = recorder.stats().failed_flushes
            points, shapes = _read(reader)
            if recorder.stats().failed_flushes == before:
                break
        out["checkpoint1"] = points
        out["shapes"] = shapes
        out["failures1"] = before
        out["build_seconds1"] = _build_seconds(default, r1, r4, r2)
        out["stats_live_transports1"] = sum(reg.stats().live_transports for reg in live)

        # r3: made, used, closed and garbage collected between two collections.
        r3 = Registry(index_path="off")
        z = settings_for("cerebras", url, key="sk-r3")
        r3.get_async_client(z)
        r3.get_async_client(z)
        r3.close()
        r3_seconds = r3.stats().build_seconds
        del r3
        r2.close()  # the index is still unwritable: what waited is dropped
        gc.collect()
        _tidy_all(*live)
        out["checkpoint2"], _ = _read(reader)
        out["failures2"] = recorder.stats().failed_flushes
        out["dropped2"] = [recorder.stats().dropped_uses, recorder.stats().dropped_events]
        out["build_seconds2"] = _build_seconds(default, r1, r4, r2) + r3_seconds

        handle.uninstrument()
        out["checkpoint3"], _ = _read(reader)
        out["stopped"] = not handle.active
        registry.get_client(settings_for("groq", url, key="sk-gap"))  # a miss and a build while stopped
        out["same_handle"] = registry.instrument(meter_provider=provider) is handle
        _tidy_all(*live)
        out["checkpoint4"], _ = _read(reader)

        # A forked child starts from zero: its registries were reset, so are the figures.
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(read_end)
                first, _ = _read(reader)
                registry.get_client(settings_for("openai", url, key="sk-in-child"))
                second, _ = _read(reader)
                os.write(write_end, json.dumps([first, second]).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            out["forked"] = json.loads(pipe.read())
        os.waitpid(pid, 0)

        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(10)
    return out


PROVIDERS = {"openai": "openai", "azure_openai": "azure.ai.openai", "groq": "groq", "cerebras": "cerebras"}


def _clients(**held: int) -> dict[str, int]:
    """clientreg.client.count points: every provider and kind, zeros included; ``openai_sync=2``..."""
    points = {}
    for provider, name in PROVIDERS.items():
        for kind in ("sync", "async"):
            points[f"clientreg.client.count{{gen_ai.provider.name={name},kind={kind}}}"] = held.get(
                f"{provider}_{kind}", 0
            )
    return points


def _counters(
    *, hits: int, misses: int, builds: int, lru: int, idle: int, close: int, failures: int, dropped: tuple[int, int]
) -> dict[str, int]:
    return {
        "clientreg.client.gets{result=hit}": hits,
        "clientreg.client.gets{result=miss}": misses,
        "clientreg.client.builds": builds,
        "clientreg.client.evictions{reason=lru}": lru,
        "clientreg.client.evictions{reason=idle}": idle,
        "clientreg.client.evictions{reason=close}": close,
        "clientreg.index.write.failures": failures,
        "clientreg.index.dropped{record=use}": dropped[0],
        "clientreg.index.dropped{record=event}": dropped[1],
    }


def _gauges(*, pools: int, loops: int, pending: tuple[int, int]) -> dict[str, int]:
    return {
        "clientreg.pool.count": pools,
        "clientreg.event_loop.count": loops,
        "clientreg.index.pending{record=use}": pending[0],
        "clientreg.index.pending{record=event}": pending[1],
    }


def _histograms(points: dict[str, Any]) -> dict[str, int]:
    return {k: v["count"] for k, v in points.items() if k.startswith("clientreg.client.build.duration")}


def _scalars(points: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in points.items() if not k.startswith("clientreg.client.build.duration")}


def _duration(provider: str, kind: str) -> str:
    return f"clientreg.client.build.duration{{gen_ai.provider.name={provider},kind={kind}}}"


def test_every_instrument_reads_exactly_what_the_registries_did(tmp_path: Path) -> None:
    from registry.metrics import BUILD_BUCKETS

    out = _child("scenario_in_memory", str(tmp_path))
    assert out["idempotent"] and out["global_handle_differs"] and out["flushed"] is False

    # Checkpoint 1: r0 (before instrument) 1 hit 1 miss; default 1 hit 2 misses; r1 1 hit 6 misses,
    # 1 lru and 3 idle; r4 1 miss, 1 idle; r2 (unwritable index) 2 hits 2 misses, 4 uses and 2
    # builds waiting. Held: openai sync in r0, default, r1, r2; azure async in default and r1;
    # groq async in r2. Pools: r0 1, default 2, r1 2 (one with a connection on the loop), r2 2.
    first = out["checkpoint1"]
    assert out["failures1"] >= 1
    assert _scalars(first) == {
        **_counters(hits=5, misses=12, builds=12, lru=1, idle=4, close=0, failures=out["failures1"], dropped=(0, 0)),
        **_clients(openai_sync=4, azure_openai_async=2, groq_async=1),
        **_gauges(pools=7, loops=1, pending=(4, 2)),
    }
    assert out["stats_live_transports1"] == 7  # the registries' own stats() agree
    # Builds after instrument() (r0's came before): default 2, r1 6, r4 1, r2 2.
    assert _histograms(first) == {
        _duration("openai", "sync"): 5,
        _duration("azure.ai.openai", "async"): 2,
        _duration("groq", "sync"): 1,
        _duration("cerebras", "sync"): 1,
        _duration("groq", "async"): 2,
    }
    durations = [v for k, v in first.items() if k.startswith("clientreg.client.build.duration")]
    assert sum(d["sum"] for d in durations) == pytest.approx(out["build_seconds1"], rel=1e-9)
    assert all(d["bounds"] == list(BUILD_BUCKETS) and sum(d["buckets"]) == d["count"] for d in durations)

    assert out["shapes"] == {
        "clientreg.client.gets": ["Sum", True, "{get}"],
        "clientreg.client.builds": ["Sum", True, "{build}"],
        "clientreg.client.build.duration": ["Histogram", None, "s"],
        "clientreg.client.evictions": ["Sum", True, "{client}"],
        "clientreg.client.count": ["Sum", False, "{client}"],
        "clientreg.pool.count": ["Sum", False, "{pool}"],
        "clientreg.event_loop.count": ["Sum", False, "{event_loop}"],
        "clientreg.index.pending": ["Sum", False, "{record}"],
        "clientreg.index.write.failures": ["Sum", True, "{write}"],
        "clientreg.index.dropped": ["Sum", True, "{record}"],
    }

    # Checkpoint 2: r3 (1 hit, 1 miss, 1 close eviction) was collected and still counts; r2 closed
    # (2 close evictions) and dropped the 4 uses and 2 events its index never took.
    second = out["checkpoint2"]
    assert out["dropped2"] == [4, 2] and out["failures2"] >= out["failures1"]
    assert _scalars(second) == {
        **_counters(hits=6, misses=13, builds=13, lru=1, idle=4, close=3, failures=out["failures2"], dropped=(4, 2)),
        **_clients(openai_sync=3, azure_openai_async=2),
        **_gauges(pools=5, loops=1, pending=(0, 0)),
    }
    assert _histograms(second) == {**_histograms(first), _duration("cerebras", "async"): 1}
    durations = [v for k, v in second.items() if k.startswith("clientreg.client.build.duration")]
    assert sum(d["sum"] for d in durations) == pytest.approx(out["build_seconds2"], rel=1e-9)

    # Stopped: the observable instruments report nothing. OpenTelemetry cannot remove an
    # instrument, so the histogram keeps its figures (and records nothing while stopped).
    assert out["stopped"] and _scalars(out["checkpoint3"]) == {}
    assert _histograms(out["checkpoint3"]) == _histograms(second)

    # Started again (the same handle): the counters resume where the registries are, the gap's
    # miss and build included; the gap's build is not in the histogram.
    assert out["same_handle"]
    assert _scalars(out["checkpoint4"]) == {
        **_counters(hits=6, misses=14, builds=14, lru=1, idle=4, close=3, failures=out["failures2"], dropped=(4, 2)),
        **_clients(openai_sync=3, azure_openai_async=2, groq_sync=1),
        **_gauges(pools=6, loops=1, pending=(0, 0)),
    }
    assert _histograms(out["checkpoint4"]) == _histograms(second)

    # A forked child: its registries start empty, and its figures from zero.
    before, after = out["forked"]
    zeros = _counters(hits=0, misses=0, builds=0, lru=0, idle=0, close=0, failures=0, dropped=(0, 0))
    registry_counters = [k for k in zeros if k.startswith("clientreg.client.")]
    assert {k: before[k] for k in registry_counters} == {k: 0 for k in registry_counters}
    assert {k: before[k] for k in _clients()} == _clients()
    assert before["clientreg.pool.count"] == 0 and before["clientreg.event_loop.count"] == 0
    assert after["clientreg.client.gets{result=miss}"] == 1 and after["clientreg.client.builds"] == 1
    assert after["clientreg.client.count{gen_ai.provider.name=openai,kind=sync}"] == 1


# ---- scenario 2: the Prometheus exporter, scraped over loopback ---------------------------------

SECRETS = {
    "openai": "sk-proj-Zq8XvN3mB7kL2pR9tY4wE6uI1oA5sD0fG",
    "groq": "gsk_Vb2Nm8Qw4Er6Ty0Ui3Op7As9Df1Gh5Jk",
    "cerebras": "csk-Lp3Ko9Ij7Uh5Yg1Tf8Rd2Es4Wa6Qz0Xc",
    "azure_openai": "3f9e8d7c6b5a49382716a5b4c3d2e1f0",
}
PROFILE = "tenant-acme-prod"


def scenario_prometheus(tmp: str) -> dict[str, Any]:
    """A registry with secret keys and a profile, scraped through PrometheusMetricReader over HTTP."""
    import urllib.request

    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import start_http_server

    import registry
    from registry import Registry
    from schemas import RegistrySettings

    http_server, _ = start_http_server(0, addr="127.0.0.1")
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    registry.instrument(meter_provider=provider)
    hashes: list[str] = []
    with FakeServer() as server:
        settings = {p: settings_for(p, server.url, key=secret) for p, secret in SECRETS.items()}
        hashes = [s.config_hash for s in settings.values()]
        fingerprints = [f for s in settings.values() for f in re.findall(r"hmac-sha256:[0-9a-f]+", s.canonical_json())]
        profiles = RegistrySettings(profiles={PROFILE: settings["openai"]})
        reg = Registry(profiles, index_path="off", max_clients=1)
        reg.get_client(PROFILE)  # miss
        reg.get_client(PROFILE)  # hit
        reg.get_client(settings["openai"])  # the same client, first asked for without the profile: a miss, no build
        reg.get_client(settings["groq"])  # miss; evicts the openai client (lru)
        reg.get_async_client(settings["azure_openai"])  # miss
        reg.get_async_client(settings["cerebras"])  # miss; evicts the azure client (lru)
        blocker = Path(tmp) / "blocker"
        blocker.write_text("not a directory")
        faulty = Registry(index_path=blocker / "index.sqlite")
        faulty.get_client(settings["openai"])  # miss
        faulty.close()  # 1 use and 1 build never written; 1 close eviction
        recorder = faulty._recorder
        assert recorder is not None
        _tidy_all(reg)
        port = http_server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
        failures = recorder.stats().failed_flushes
    http_server.shutdown()
    return {
        "text": text,
        "hashes": hashes,
        "fingerprints": fingerprints,
        "failures": failures,
        "version": registry.metrics._version(),
        "stats": dict(reg.stats()),
    }


def test_prometheus_scrape_reads_clientreg_names_and_values(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    out = _child("scenario_prometheus", str(tmp_path))
    text = out["text"]
    families = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("clientreg_")}
    assert {name: f.type for name, f in families.items()} == {
        "clientreg_client_gets": "counter",
        "clientreg_client_builds": "counter",
        "clientreg_client_build_duration_seconds": "histogram",
        "clientreg_client_evictions": "counter",
        "clientreg_client_count": "gauge",
        "clientreg_pool_count": "gauge",
        "clientreg_event_loop_count": "gauge",
        "clientreg_index_pending": "gauge",
        "clientreg_index_write_failures": "counter",
        "clientreg_index_dropped": "counter",
    }
    scope = {"otel_scope_name": "clientreg", "otel_scope_version": out["version"] or "", "otel_scope_schema_url": ""}
    values: dict[str, float] = {}
    for family in families.values():
        for sample in family.samples:
            labels = dict(sample.labels)
            assert {k: labels.pop(k, None) for k in scope} == scope
            values[sample.name + _labels(labels)] = sample.value

    scalar = {k: v for k, v in values.items() if not k.startswith("clientreg_client_build_duration")}
    assert scalar == {
        "clientreg_client_gets_total{result=hit}": 1,
        "clientreg_client_gets_total{result=miss}": 6,
        "clientreg_client_builds_total": 5,
        "clientreg_client_evictions_total{reason=lru}": 2,
        "clientreg_client_evictions_total{reason=idle}": 0,
        "clientreg_client_evictions_total{reason=close}": 1,
        **{
            f"clientreg_client_count{{gen_ai_provider_name={name},kind={kind}}}": float(
                (provider, kind) in {("groq", "sync"), ("cerebras", "async")}
            )
            for provider, name in PROVIDERS.items()
            for kind in ("sync", "async")
        },
        "clientreg_pool_count": 2,  # reg's httpx pools, sync and async; the evicted clients' pools closed
        "clientreg_event_loop_count": 0,
        "clientreg_index_pending{record=use}": 0,
        "clientreg_index_pending{record=event}": 0,
        "clientreg_index_write_failures_total": out["failures"],
        "clientreg_index_dropped_total{record=use}": 1,
        "clientreg_index_dropped_total{record=event}": 1,
    }
    assert out["failures"] >= 1
    assert out["stats"]["hits"] == 1 and out["stats"]["misses"] == 5  # reg's own share of the gets
    counts = {k: v for k, v in values.items() if k.startswith("clientreg_client_build_duration_seconds_count")}
    assert counts == {
        "clientreg_client_build_duration_seconds_count{gen_ai_provider_name=openai,kind=sync}": 2,
        "clientreg_client_build_duration_seconds_count{gen_ai_provider_name=groq,kind=sync}": 1,
        "clientreg_client_build_duration_seconds_count{gen_ai_provider_name=azure.ai.openai,kind=async}": 1,
        "clientreg_client_build_duration_seconds_count{gen_ai_provider_name=cerebras,kind=async}": 1,
    }
    assert values["clientreg_client_build_duration_seconds_bucket{gen_ai_provider_name=openai,kind=sync,le=+Inf}"] == 2

    # No key, hash, fingerprint or profile name reaches a label: every clientreg label value
    # comes from a small fixed vocabulary, and none of those strings appears anywhere.
    vocabulary = {"hit", "miss", "lru", "idle", "close", "sync", "async", "use", "event", *PROVIDERS.values()}
    for family in families.values():
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name in scope:
                    continue
                if name == "le":
                    float(value)  # a bucket bound
                else:
                    assert value in vocabulary, (sample.name, name, value)
    assert len(out["fingerprints"]) == len(SECRETS)  # one key fingerprint per configuration
    leaks = [*SECRETS.values(), PROFILE, *out["hashes"], *(h[:12] for h in out["hashes"]), *out["fingerprints"]]
    leaks += ["hmac-sha256", str(tmp_path)]
    assert [leak for leak in leaks if leak in text] == []


# ---- scenario 3: registries made and dropped while collections run --------------------------------


def scenario_churn(rounds: str) -> dict[str, Any]:
    """Threads make, use, close or drop registries while another collects: counters never go down."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import registry
    from registry import Registry

    reader = InMemoryMetricReader()
    registry.instrument(meter_provider=MeterProvider(metric_readers=[reader]))
    expected = {"hits": 0, "misses": 0, "builds": 0, "lru": 0, "idle": 0, "close": 0}
    lock = threading.Lock()
    stop = threading.Event()
    decreases: list[str] = []
    collections = 0

    with FakeServer() as server:
        keys = [settings_for("openai", server.url, key=f"sk-churn-{i}") for i in range(3)]

        def work(worker: int) -> None:
            for n in range(int(rounds)):
                reg = Registry(index_path="off", max_clients=2)
                for key in (keys[0], keys[1], keys[0], keys[2], keys[2]):  # 2 hits, 3 misses, 1 lru
                    reg.get_client(key)
                if n % 3 == 0:
                    reg.prune(older_than=0)
                if n % 2 == 0:
                    reg.close()
                stats = reg.stats()
                evictions = reg._counters().evictions
                with lock:
                    expected["hits"] += stats.hits
                    expected["misses"] += stats.misses
                    expected["builds"] += stats.builds
                    for reason in ("lru", "idle", "close"):
                        expected[reason] += evictions[reason]
                del reg  # dropped open or closed; collected now or by a later gc pass

        def collect() -> None:
            nonlocal collections
            last: dict[str, float] = {}
            while not stop.is_set():
                points, _ = _read(reader)
                for key, value in points.items():
                    if isinstance(value, dict) or key.startswith(("clientreg.client.count", "clientreg.pool")):
                        continue
                    if key in last and value < last[key]:
                        decreases.append(f"{key}: {last[key]} -> {value}")
                    last[key] = value
                collections += 1

        workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        collector = threading.Thread(target=collect)
        collector.start()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        stop.set()
        collector.join()
        gc.collect()
        final, _ = _read(reader)
    return {"expected": expected, "final": final, "decreases": decreases, "collections": collections}


def test_counters_never_go_down_while_registries_come_and_go() -> None:
    out = _child("scenario_churn", "25")
    assert out["decreases"] == []
    assert out["collections"] > 1
    expected, final = out["expected"], out["final"]
    assert expected["hits"] == 100 * 2 and expected["misses"] == 100 * 3  # 25 rounds x 4 threads
    assert {
        "hits": final["clientreg.client.gets{result=hit}"],
        "misses": final["clientreg.client.gets{result=miss}"],
        "builds": final["clientreg.client.builds"],
        **{reason: final[f"clientreg.client.evictions{{reason={reason}}}"] for reason in ("lru", "idle", "close")},
    } == expected
    assert sum(v for k, v in final.items() if k.startswith("clientreg.client.count")) == 0  # all collected


# ---- the global provider, the optional dependency, names ---------------------------------------


def scenario_global_provider() -> dict[str, Any]:
    """instrument() before the application sets its global MeterProvider: the figures still arrive."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import registry

    with FakeServer() as server:
        handle = registry.instrument()
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        registry.get_client(settings_for("groq", server.url))
        registry.get_client(settings_for("groq", server.url))
        points, _ = _read(reader)
        registry.uninstrument()
        after, _ = _read(reader)
    return {"points": points, "after": after, "same": registry.instrument() is handle}


def test_instrument_without_a_provider_follows_the_global_one_set_later() -> None:
    out = _child("scenario_global_provider")
    points = out["points"]
    assert points["clientreg.client.gets{result=hit}"] == 1 and points["clientreg.client.gets{result=miss}"] == 1
    assert points["clientreg.client.build.duration{gen_ai.provider.name=groq,kind=sync}"]["count"] == 1
    assert _scalars(out["after"]) == {}  # registry.uninstrument() stops every handle
    assert out["same"]


def test_importing_registry_imports_no_opentelemetry() -> None:
    code = (
        "import sys, registry, registry.metrics, schemas\n"
        "assert registry.instrument is registry.metrics.instrument\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_instrument_without_the_otel_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import registry

    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if opentelemetry-api were not installed
    with pytest.raises(ImportError, match=r"pip install 'clientreg\[otel\]'"):
        registry.instrument()


def test_provider_names_are_the_semantic_conventions_values() -> None:
    from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues

    from registry.metrics import PROVIDER_NAMES, provider_name
    from registry.providers import BUILDERS

    spec = {v.value for v in GenAiProviderNameValues}
    assert set(PROVIDER_NAMES) == set(BUILDERS)
    assert provider_name("azure_openai") == "azure.ai.openai"
    for ours, name in PROVIDER_NAMES.items():
        # A provider the spec names gets the spec's value; one it does not keeps its own name
        # (if the spec adds it, this fails and the mapping should follow).
        assert name in spec or (name == ours and not any(ours in v for v in spec)), (ours, name)


# ---- the hit path --------------------------------------------------------------------------------


def scenario_hit_trace() -> dict[str, Any]:
    """Every call (Python and C) a hit makes, with metrics off and then on."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import registry
    from registry import Registry

    def trace(reg: Any, settings: Any) -> list[str]:
        calls: list[str] = []

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
            elif event == "c_call":
                calls.append(f"C:{arg.__qualname__}")

        sys.setprofile(profile)
        try:
            reg.get_client(settings)
            reg.get_async_client(settings)
        finally:
            sys.setprofile(None)
        return calls[:-1]  # without sys.setprofile itself

    with FakeServer() as server:
        settings = settings_for("openai", server.url)
        reader = InMemoryMetricReader()
        with Registry() as before, Registry(max_clients=10) as bounded:  # the index on: a use count per hit
            for reg in (before, bounded):
                reg.get_client(settings)
                reg.get_async_client(settings)
            off = [trace(before, settings), trace(bounded, settings)]
            registry.instrument(meter_provider=MeterProvider(metric_readers=[reader]))
            with Registry() as after:  # made while metrics are on
                after.get_client(settings)
                after.get_async_client(settings)
                on = [trace(before, settings), trace(bounded, settings), trace(after, settings)]
                points, _ = _read(reader)
    return {"off": off, "on": on, "hits": points["clientreg.client.gets{result=hit}"]}


def test_a_hit_makes_the_same_calls_with_metrics_on(tmp_path: Path) -> None:
    out = _child("scenario_hit_trace", env={"CLIENTREG_INDEX": str(tmp_path / "index.sqlite")})
    off, on = out["off"], out["on"]
    assert off[0] and off[0] == on[0] and off[0] == on[2]  # a registry made before and one made after
    assert off[1] == on[1]  # and one kept in use order (max_clients)
    assert [call.rsplit("/", 1)[-1] for call in on[2]] == ["_registry.py:get_client", "_registry.py:get_async_client"]
    assert not any("registry/metrics.py" in call or "/opentelemetry/" in call for trace in on for call in trace)
    assert out["hits"] == 10  # 2 hits in each of the 5 traces: counted from each registry's start
