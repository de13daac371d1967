"""The aligned text table and the RESULTS.md page."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from benchmarks._stats import Sample

if TYPE_CHECKING:
    from benchmarks.run import Figure

HEADERS = ("figure", "clientreg median (min-max)", "baseline median (min-max)", "ratio", "target", "result")


def _sig(value: float) -> str:
    """Three significant digits, never in exponent notation."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def fmt(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{_sig(value / (1024 * 1024))} MB"
    if unit != "s":
        return f"{value:.0f}"
    for name, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{_sig(value / scale)} {name}"
    return f"{_sig(value / 1e-9)} ns"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.3g}x" if ratio >= 0.1 else f"{ratio:.2g}x = 1/{1 / ratio:,.0f}"


def cell(sample: Sample | None, unit: str) -> str:
    if sample is None:
        return "-"
    if len(sample.values) == 1:
        return fmt(sample.median, unit)
    return f"{fmt(sample.median, unit)} ({fmt(sample.low, unit)}-{fmt(sample.high, unit)})"


def render_table(figures: list[Figure]) -> str:
    rows = [HEADERS]
    for f in figures:
        ratio = fmt_ratio(f.ratio)
        result = "-" if f.passed is None else ("PASS" if f.passed else "MISS")
        rows.append((f.label, cell(f.ours, f.unit), cell(f.baseline, f.unit), ratio, f.target, result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_notes(results: dict[str, Any], *, bold: bool = False) -> str:
    """One line per figure that has a note: how it was measured."""
    mark = "**" if bold else ""
    return "\n".join(f"- {mark}{f['label']}{mark}: {f['note']}" for f in results["figures"].values() if f["note"])


def render_markdown(table: str, results: dict[str, Any]) -> str:
    machine = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items() if version)
    notes = render_notes(results, bold=True)
    load = machine["load_average_1m"]
    return f"""# Benchmark results

From a real run of `python -m benchmarks` ({results["mode"]} mode, {results["seconds"]:.0f} s) on
{time.strftime("%Y-%m-%d")}, commit `{machine["commit"]}`. Each figure is the median over repeated
rounds, with the min-max spread; ratio = clientreg median / baseline median, both measured in the
same run. The raw figures are in `benchmarks/results/latest.json` (not committed).

- CPU: {machine["cpu"]}, {machine["cores"]} cores
- OS: {machine["os"]}
- 1-minute load average (other work on the machine): {load["start"]:.2f} at the start, {load["end"]:.2f} at the end
- Python {machine["python"]}; {packages}

```
{table}
```

Notes:
{notes}
"""
