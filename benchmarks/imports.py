"""``import registry, schemas`` next to ``import openai``, each in a fresh interpreter."""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks._context import Context, worker
from benchmarks._figure import Baseline, Figure, Measurement, Row
from benchmarks._stats import Sample

SDK_ROOTS = ("openai", "groq", "cerebras")
HTTP_ROOTS = ("httpx", "httpx2", "httpcore")


def imports(what: str) -> dict[str, Any]:
    """Worker: seconds to import clientreg's packages (or openai), and which SDK modules came along."""
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


ROW = Row(
    "import",
    "import registry, schemas vs import openai",
    "s",
    "<= 0.5x, no SDK imported",
    "a fresh interpreter per import, {import_rounds} rounds alternating",
)


def measure(ctx: Context) -> list[Figure]:
    ours: list[float] = []
    theirs: list[float] = []
    leaked: set[str] = set()
    for _ in range(ctx.counts.import_rounds):
        mine = worker("imports:imports", "clientreg")
        ours.append(mine["seconds"])
        leaked.update(mine["sdk_modules"])
        theirs.append(worker("imports:imports", "openai")["seconds"])
    sample, baseline = Sample(tuple(ours)), Sample(tuple(theirs))
    note = (
        f"SDK modules imported: {', '.join(sorted(leaked))}"
        if leaked
        else "checked: no openai, groq or cerebras module in sys.modules"
    )
    passed = sample.median <= 0.5 * baseline.median and not leaked
    return [ctx.row(ROW).measured(sample, [Baseline("import openai", baseline)], passed=passed, note=note)]


MEASUREMENTS = (Measurement("import", (ROW,), measure),)
