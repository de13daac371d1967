"""Run every benchmark of issue 5, print the table, write the JSON (and RESULTS.md for a full run).

python -m benchmarks            # the full run, about 3-4 minutes on 2 cores
python -m benchmarks --quick    # tiny counts, a few seconds: proves everything still runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import agents, history, hot_path, machine, misses
from benchmarks._stats import Sample
from benchmarks.report import render_markdown, render_notes, render_table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 1024 * 1024


@dataclass(frozen=True)
class Counts:
    """How much work each measurement does; ``QUICK`` only proves that everything runs."""

    hot_seconds: float = 0.04  # short rounds, many of them: a median that rides out other load
    hot_rounds: int = 21
    misses: int = 200
    plain_builds: int = 5
    miss_rounds: int = 5
    rss_keys: tuple[int, int] = (1_000, 10_000)
    rss_rounds: int = 3
    rss_plain: int = 60
    rss_plain_batches: int = 3
    agents: int = 1_000
    agent_rounds: int = 5
    agent_plain_rounds: int = 2
    import_rounds: int = 5
    history_configs: int = 100_000
    history_rounds: int = 3


QUICK = Counts(
    hot_seconds=0.002,
    hot_rounds=2,
    misses=5,
    plain_builds=1,
    miss_rounds=2,
    rss_keys=(10, 100),
    rss_rounds=1,
    rss_plain=3,
    rss_plain_batches=1,
    agents=10,
    agent_rounds=2,
    agent_plain_rounds=1,
    import_rounds=1,
    history_configs=300,
    history_rounds=1,
)


@dataclass(frozen=True)
class Figure:
    """One row of the table: clientreg next to its baseline, and the target it must meet."""

    key: str
    label: str
    unit: str  # "s", "bytes" or "count"
    ours: Sample
    baseline: Sample | None
    target: str
    passed: bool | None  # None: shown for context, no target
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """clientreg's median over the baseline's median."""
        if self.baseline is None or self.baseline.median == 0:
            return None
        return self.ours.median / self.baseline.median

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "clientreg": self.ours.to_json(),
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "ratio": self.ratio,
            "target": self.target,
            "passed": self.passed,
            "note": self.note,
        }


def worker(*args: object) -> dict[str, Any]:
    """Run one measurement of `benchmarks._worker` in a fresh interpreter and return its JSON."""
    command = [sys.executable, "-m", "benchmarks._worker", *map(str, args)]
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def hot_figures(counts: Counts) -> list[Figure]:
    s = hot_path.measure(seconds=counts.hot_seconds, rounds=counts.hot_rounds)
    hit, seed = s["hit_reused"], s["seed_cache"]
    return [
        Figure(
            "hit_reused_vs_seed_cache",
            "hit, reused settings object vs seed-style cache",
            "s",
            hit,
            seed,
            "<= 1 us and <= 0.25x",
            hit.median <= 1e-6 and hit.median * 4 <= seed.median,
            "seed-style: sha256(str(sorted(kwargs.items()))) then a dict, per call",
        ),
        Figure(
            "hit_reused_vs_dict",
            "hit, reused settings object vs plain dict lookup",
            "s",
            hit,
            s["dict_lookup"],
            "(context)",
            None,
            "the dict lookup is the floor: a precomputed key",
        ),
        Figure(
            "settings_construction",
            "settings construction vs plain pydantic model",
            "s",
            s["settings_construct"],
            s["plain_construct"],
            "<= 5x",
            s["settings_construct"].median <= 5 * s["plain_construct"].median,
            "plain: same field names and types, no validators",
        ),
        Figure(
            "hit_fresh_equal_object",
            "hit, fresh equal settings object vs plain pydantic model",
            "s",
            s["hit_fresh"],
            s["plain_construct"],
            "<= 6x",
            s["hit_fresh"].median <= 6 * s["plain_construct"].median,
            "ours: construct OpenAISettings + hash + lookup; baseline: construct the plain model",
        ),
    ]


def miss_figures(counts: Counts) -> list[Figure]:
    figures = []
    measured = misses.measure_warm_miss(misses=counts.misses, plain=counts.plain_builds, rounds=counts.miss_rounds)
    for provider, (ours, plain) in measured.items():
        figures.append(
            Figure(
                f"miss_warm_transport_{provider}",
                f"miss on a warm transport vs plain SDK construction: {provider}",
                "s",
                ours,
                plain,
                "<= 0.025x (>= 40x cheaper)",
                ours.median * 40 <= plain.median,
                "ours includes constructing the settings object; plain close() is not timed"
                + (
                    "; plain Cerebras with warm_tcp_connection=False, as the registry" if provider == "cerebras" else ""
                ),
            )
        )
    on, off = misses.measure_index_miss(misses=counts.misses, rounds=counts.miss_rounds)
    figures.append(
        Figure(
            "miss_index_on_vs_off",
            "miss with the key index on vs off",
            "s",
            on,
            off,
            "<= 1.3x",
            on.median <= 1.3 * off.median,
            "openai, warm transport; fresh registry and index per round",
        )
    )
    return figures


def rss_figures(counts: Counts) -> list[Figure]:
    plain = worker("rss-plain", counts.rss_plain, counts.rss_plain_batches)["per_client_bytes"]
    figures = []
    for key, keys in zip(("rss_1000_keys", "rss_10000_keys"), counts.rss_keys, strict=True):
        ours = Sample(tuple(worker("rss-registry", keys)["added_bytes"] for _ in range(counts.rss_rounds)))
        baseline = Sample(tuple(per_client * keys for per_client in plain))
        budget = 50 * MB * keys / 10_000  # the target for 10,000 keys, scaled in quick mode
        judged = key == "rss_10000_keys"
        figures.append(
            Figure(
                key,
                f"RSS added by {keys:,} distinct api keys vs plain openai.OpenAI",
                "bytes",
                ours,
                baseline,
                f"<= {budget / MB:.3g} MB" if judged else "(context)",
                ours.median <= budget if judged else None,
                f"plain measured on {counts.rss_plain} clients x {counts.rss_plain_batches} batches "
                f"and extrapolated to {keys:,}; fresh interpreter per run",
            ),
        )
    return figures


def agent_figures(counts: Counts) -> list[Figure]:
    s = agents.measure(agents=counts.agents, rounds=counts.agent_rounds, plain_rounds=counts.agent_plain_rounds)
    note = f"{counts.agents:,} agents, one chat request each, in sequence, to a loopback server"
    return [
        Figure(
            "agents_wall_time",
            f"{counts.agents:,} agents: wall time, registry vs a client per agent",
            "s",
            s["registry_s"],
            s["plain_s"],
            "<= 0.2x (>= 5x less)",
            s["registry_s"].median * 5 <= s["plain_s"].median,
            note,
        ),
        Figure(
            "agents_tcp_connections",
            f"{counts.agents:,} agents: TCP connections opened",
            "count",
            s["registry_conn"],
            s["plain_conn"],
            "<= 2",
            s["registry_conn"].high <= 2,
            "the same runs; counted by the server as TCP connections accepted",
        ),
    ]


def import_figures(counts: Counts) -> list[Figure]:
    ours: list[float] = []
    theirs: list[float] = []
    leaked: set[str] = set()
    for _ in range(counts.import_rounds):
        mine = worker("import", "clientreg")
        ours.append(mine["seconds"])
        leaked.update(mine["sdk_modules"])
        theirs.append(worker("import", "openai")["seconds"])
    sample, baseline = Sample(tuple(ours)), Sample(tuple(theirs))
    return [
        Figure(
            "import",
            "import registry, schemas vs import openai",
            "s",
            sample,
            baseline,
            "<= 0.5x, no SDK imported",
            sample.median <= 0.5 * baseline.median and not leaked,
            "fresh interpreter per import; "
            + (
                f"SDK modules imported: {', '.join(sorted(leaked))}"
                if leaked
                else "checked: no openai, groq or cerebras module in sys.modules"
            ),
        ),
    ]


def history_figures(counts: Counts) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="clientreg-bench-") as tmp:
        path = Path(tmp, "index.sqlite")
        build_seconds = history.build_index(path, counts.history_configs)
        sample, what = history.measure(path, rounds=counts.history_rounds)
    return [
        Figure(
            "history",
            f"clientreg history on {counts.history_configs:,} configs",
            "s",
            sample,
            None,
            "<= 2 s",
            sample.median <= 2.0,
            f"timed: {what}, interpreter start included; index built in {build_seconds:.1f} s",
        ),
    ]


SECTIONS = (hot_figures, miss_figures, rss_figures, agent_figures, import_figures, history_figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that everything runs")
    parser.add_argument("--json", type=Path, help="where to write the figures (default: benchmarks/results/)")
    parser.add_argument("--no-markdown", action="store_true", help="do not rewrite benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else Counts()

    started = time.perf_counter()
    load_before = os.getloadavg()
    figures: list[Figure] = []
    for section in SECTIONS:
        print(f"... {section.__name__.removesuffix('_figures')}", file=sys.stderr, flush=True)
        figures.extend(section(counts))
    elapsed = time.perf_counter() - started

    info = machine.describe()
    info["load_average_1m"] = {"start": load_before[0], "end": os.getloadavg()[0]}
    results = {
        "mode": "quick" if args.quick else "full",
        "seconds": elapsed,
        "machine": info,
        "all_targets_met": all(f.passed is not False for f in figures),
        "figures": {f.key: f.to_json() for f in figures},
    }
    table = render_table(figures)
    print(table)
    print("\nHow each figure was measured (medians over rounds; ratio = clientreg / baseline):")
    print(render_notes(results))
    print(f"\n{'quick' if args.quick else 'full'} run in {elapsed:.0f} s on {info['cpu']} ({info['cores']} cores)")

    out = args.json or HERE / "results" / ("quick.json" if args.quick else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {out}")
    if not args.quick and not args.no_markdown:
        (HERE / "RESULTS.md").write_text(render_markdown(table, results))
        print(f"table written to {HERE / 'RESULTS.md'}")
    return 0
