"""Measurements that need a fresh interpreter; run as ``python -m benchmarks._worker KIND N``.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

SDK_ROOTS = ("openai", "groq", "cerebras")
HTTP_ROOTS = ("httpx", "httpx2", "httpcore")


def rss_bytes() -> int:
    """Current resident set size, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def imports(what: str) -> dict[str, Any]:
    started = time.perf_counter()
    if what == "clientreg":
        import registry  # noqa: F401
        import schemas  # noqa: F401
    else:
        import openai  # noqa: F401
    seconds = time.perf_counter() - started
    roots = {name.split(".")[0] for name in sys.modules}
    return {
        "seconds": seconds,
        "sdk_modules": sorted(roots & set(SDK_ROOTS)),
        "http_modules": sorted(roots & set(HTTP_ROOTS)),
    }


def rss_registry(count: int) -> dict[str, Any]:
    """RSS added by ``count`` distinct api keys through one registry (transport and SDK already warm)."""
    from registry import Registry
    from schemas import OpenAISettings

    reg = Registry(index_path="off")
    reg.get_client(OpenAISettings(api_key="sk-warm"))
    gc.collect()
    before = rss_bytes()
    for i in range(count):
        reg.get_client(OpenAISettings(api_key=f"sk-bench-{i:012d}"))
    gc.collect()
    added = rss_bytes() - before
    assert reg.stats().live_clients == count + 1
    return {"count": count, "added_bytes": added}


def rss_plain(count: int, batches: int) -> dict[str, Any]:
    """RSS per plain ``openai.OpenAI`` kept alive, over ``batches`` batches of ``count`` clients."""
    import openai

    kept = [openai.OpenAI(api_key="sk-warm")]
    per_client: list[float] = []
    serial = 0
    for _ in range(batches):
        gc.collect()
        before = rss_bytes()
        for _ in range(count):
            serial += 1
            kept.append(openai.OpenAI(api_key=f"sk-bench-{serial:012d}"))
        gc.collect()
        per_client.append((rss_bytes() - before) / count)
    for client in kept:
        client.close()
    return {"count": count, "per_client_bytes": per_client}


def main(argv: list[str]) -> None:
    kind, *args = argv
    if kind == "import":
        result = imports(args[0])
    elif kind == "rss-registry":
        result = rss_registry(int(args[0]))
    elif kind == "rss-plain":
        result = rss_plain(int(args[0]), int(args[1]))
    else:
        raise SystemExit(f"unknown measurement {kind!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
