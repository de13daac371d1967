"""Measure clientreg next to the plain SDKs and Langroid's client cache; print and write the table.

python -m benchmarks                   # the full run (~15 min on 2 cores); rewrites RESULTS.md and the README's table
python -m benchmarks --quick           # tiny counts, under a minute: proves every row still runs
python -m benchmarks --only hot,loops  # some sections (never rewrites RESULTS.md or the README)
python -m benchmarks --render FILE     # rewrite RESULTS.md and the README from a saved run's JSON

A row whose feature is missing, or that cannot run here, is shown as ERROR or SKIP with the
reason, and the run goes on. The exit status is 0 unless the harness itself breaks (or
``--strict`` and a target was missed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import (
    connections,
    fleet,
    frameworks,
    hot_path,
    imports,
    index_growth,
    loops,
    machine,
    memory,
    metrics_overhead,
    misses,
    peer,
)
from benchmarks._context import QUICK, ROOT, Context, Counts
from benchmarks._figure import Figure, Measurement, Skip, describe_error
from benchmarks.report import render_conditions, render_markdown, render_table, render_tally, write_readme

HERE = Path(__file__).resolve().parent

# The order of the table. The key index's figures (sections "index", "history", "fleet") show
# the SQLite and PostgreSQL stores side by side.
MEASUREMENTS: tuple[Measurement, ...] = (
    *hot_path.MEASUREMENTS,
    *metrics_overhead.MEASUREMENTS,
    *misses.MEASUREMENTS,
    *memory.MEASUREMENTS,
    *connections.MEASUREMENTS,
    *loops.MEASUREMENTS,
    fleet.INDEX,
    *index_growth.MEASUREMENTS,
    *fleet.HISTORY,
    *fleet.WRITERS,
    *imports.MEASUREMENTS,
    *frameworks.MEASUREMENTS,
)
SECTIONS = tuple(dict.fromkeys(m.section for m in MEASUREMENTS))


def run_measurement(measurement: Measurement, ctx: Context, *, show_traceback: bool) -> list[Figure]:
    """The measurement's figures; its declared rows marked SKIP or ERROR if it could not run."""
    rows = [ctx.row(row) for row in measurement.rows]
    try:
        figures = measurement.run(ctx)
    except Skip as exc:
        return [row.failed("skipped", str(exc)) for row in rows]
    except Exception as exc:
        if show_traceback:
            traceback.print_exc()
        return [row.failed("error", describe_error(exc)) for row in rows]
    reported = {figure.key for figure in figures}
    missing = [row for row in rows if row.key not in reported]
    figures += [row.failed("error", "the measurement did not report this row") for row in missing]
    return figures


def peer_info(ctx: Context) -> dict[str, Any]:
    loaded = ctx.langroid()
    return {
        "name": peer.NAME,
        "version": peer.VERSION,
        "wheel": peer.WHEEL,
        "sha256": peer.WHEEL_SHA256,
        "loaded": loaded is not None,
        "reason": ctx.langroid_missing,
        "module": f"{peer.PACKAGE}.client_cache",
        "stand_ins": ["langroid", peer.PACKAGE],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that every row runs")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--json", type=Path, help="where to write the figures (default: benchmarks/results/)")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md and the README")
    parser.add_argument("--no-fetch", action="store_true", help="never download Langroid's wheel (use the cache)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed or a row errs")
    parser.add_argument("--traceback", action="store_true", help="print the traceback of a row that errs")
    parser.add_argument("--render", type=Path, metavar="FILE", help="only rewrite RESULTS.md and README from FILE")
    args = parser.parse_args(argv)

    if args.render:
        results = json.loads(args.render.read_text())
        _write_markdown(results)
        return 0

    selected = SECTIONS
    if args.only:
        selected = tuple(name.strip() for name in args.only.split(","))
        unknown = sorted(set(selected) - set(SECTIONS))
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    counts = QUICK if args.quick else Counts()

    with tempfile.TemporaryDirectory(prefix="clientreg-bench-") as tmp:
        scratch = Path(tmp)
        # The default registry (behind the keyword wrappers) records into a scratch index,
        # never into the user's own; one fingerprint key for the run and its workers, so no
        # key file is made in the user's data directory.
        os.environ["CLIENTREG_INDEX"] = str(scratch / "default-index.sqlite")
        os.environ["CLIENTREG_FINGERPRINT_KEY"] = "clientreg-benchmarks-fingerprint-key"
        ctx = Context(counts, fetch=not args.no_fetch, scratch=scratch)
        loaded = ctx.langroid()
        if loaded is None:
            print(f"... {ctx.langroid_missing}; its rows are skipped", file=sys.stderr)
        else:
            print(f"... {peer.NAME}: {peer.PACKAGE}.client_cache from {loaded.wheel}", file=sys.stderr)
        info = peer_info(ctx)

        started = time.perf_counter()
        load_before = os.getloadavg()
        figures: list[Figure] = []
        timings: dict[str, float] = {}
        for measurement in MEASUREMENTS:
            if measurement.section not in selected:
                continue
            keys = ", ".join(row.key for row in measurement.rows)
            print(f"... {measurement.section}: {keys}", file=sys.stderr, flush=True)
            began = time.perf_counter()
            done = run_measurement(measurement, ctx, show_traceback=args.traceback)
            timings[keys] = time.perf_counter() - began
            for figure in done:
                if figure.status != "measured" or figure.result == "FAIL":
                    print(f"    {figure.key}: {figure.result} {figure.reason}", file=sys.stderr, flush=True)
            figures.extend(done)
        elapsed = time.perf_counter() - started

    about = machine.describe()
    about["load_average_1m"] = {"start": load_before[0], "end": os.getloadavg()[0]}
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "sections": list(selected),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": elapsed,
        "machine": about,
        "peer": info,
        "counts": dataclasses.asdict(counts),
        "timings": timings,
        "all_targets_met": all(f.result in ("PASS", "-") for f in figures),
        "figures": {f.key: f.to_json() for f in figures},
    }
    print(render_table(results))
    print("\nHow each figure was measured (medians over rounds; ratio = clientreg / that baseline):")
    print(render_conditions(results))
    where = f"{about['cpu']} ({about['cores']} cores)"
    print(f"\n{results['mode']} run in {elapsed:.0f} s on {where}: {render_tally(results)}")

    out = args.json or HERE / "results" / ("quick.json" if args.quick else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {out}")
    if not args.quick and not args.only and not args.no_write:
        _write_markdown(results)
    if args.strict and not results["all_targets_met"]:
        return 1
    return 0


def _write_markdown(results: dict[str, Any]) -> None:
    (HERE / "RESULTS.md").write_text(render_markdown(results))
    write_readme(ROOT / "README.md", results)
    print(f"table written to {HERE / 'RESULTS.md'} and {ROOT / 'README.md'}")
