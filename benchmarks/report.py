"""Render a run's results (the JSON it writes): the text table, RESULTS.md and the README's blocks.

Everything here reads the JSON form, so ``python -m benchmarks --render results.json`` can
rewrite RESULTS.md and the README from a saved run without measuring again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HEADERS = ("figure", "clientreg", "compared with", "ratio", "target", "result")
MB = 1024 * 1024

README_BEGIN = "<!-- benchmarks:table begin: written by `python -m benchmarks`, do not edit by hand -->"
README_END = "<!-- benchmarks:table end -->"
SUMMARY_BEGIN = "<!-- benchmarks:summary begin: written by `python -m benchmarks`, do not edit by hand -->"
SUMMARY_END = "<!-- benchmarks:summary end -->"
# The frameworks whose default builds a client per agent (the judged rows), as the summary names them.
FRAMEWORK_SUMMARY = (
    ("pydantic-ai", "pydantic_ai"),
    ("AzureChatOpenAI", "langchain_azure"),
    ("openai-agents", "openai_agents"),
    ("AutoGen", "autogen"),
)
STORE_SUMMARY = (("PostgreSQL", "postgresql"), ("SQLite", "sqlite"))


def _sig(value: float) -> str:
    """Three significant digits, never in exponent notation."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def fmt(value: float, unit: str) -> str:
    """A value in its unit: bytes as MB, seconds scaled to s/ms/us/ns, counts as integers."""
    if unit == "bytes":
        return f"{_sig(value / MB)} MB"
    if unit != "s":
        return f"{value:,.0f}"
    for name, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{_sig(value / scale)} {name}"
    return f"{_sig(value / 1e-9)} ns"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    if ratio == 0:
        return "0x"
    return f"{ratio:.3g}x" if ratio >= 0.1 else f"{ratio:.2g}x = 1/{1 / ratio:,.0f}"


def cell(sample: dict[str, Any] | None, unit: str) -> str:
    """Median, with the min-max spread when there was more than one round."""
    if sample is None:
        return "-"
    if len(sample["rounds"]) == 1 or sample["min"] == sample["max"]:
        return fmt(sample["median"], unit)
    return f"{fmt(sample['median'], unit)} ({fmt(sample['min'], unit)}-{fmt(sample['max'], unit)})"


def table_rows(figures: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for figure in figures.values():
        unit = figure["unit"]
        baselines = figure["baselines"] or [None]
        for i, baseline in enumerate(baselines):
            if baseline is None:
                compared, ratio = "-", "-"
            elif baseline["sample"] is None:
                compared, ratio = f"{baseline['name']}: n/a", "-"
            else:
                compared, ratio = f"{baseline['name']}: {cell(baseline['sample'], unit)}", fmt_ratio(baseline["ratio"])
            if i == 0:
                ours = cell(figure["clientreg"], unit)
                rows.append((figure["label"], ours, compared, ratio, figure["target"], figure["result"]))
            else:
                rows.append(("", "", compared, ratio, "", ""))
    return rows


def render_table(results: dict[str, Any]) -> str:
    rows = [HEADERS, *table_rows(results["figures"])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_conditions(results: dict[str, Any], *, markdown: bool = False) -> str:
    """One line per figure: its conditions, what the run noted, and why a row was not measured."""
    lines = []
    for figure in results["figures"].values():
        label = f"**{figure['label']}**" if markdown else figure["label"]
        text = f"- {label} [{figure['result']}]: {figure['conditions']}"
        if figure["note"]:
            text += f". Run: {figure['note']}"
        if figure["reason"]:
            text += f". Not measured: {figure['reason']}"
        missing = [f"{b['name']}: {b['missing']}" for b in figure["baselines"] if b["missing"]]
        if missing:
            text += ". No baseline: " + "; ".join(missing)
        lines.append(text)
    return "\n".join(lines)


def render_tally(results: dict[str, Any]) -> str:
    """``N PASS, N FAIL, ...`` over every figure."""
    counts: dict[str, int] = {}
    for figure in results["figures"].values():
        counts[figure["result"]] = counts.get(figure["result"], 0) + 1
    order = ("PASS", "FAIL", "ERROR", "SKIP", "-")
    return ", ".join(f"{counts[r]} {'context' if r == '-' else r}" for r in order if r in counts)


def render_run(results: dict[str, Any]) -> str:
    """Mode, duration, date, commit, machine, load and peer: the conditions every figure shares."""
    machine = results["machine"]
    load = machine["load_average_1m"]
    peer = results["peer"]
    peer_text = (
        f"Langroid {peer['version']} loaded from its published wheel (sha256 {peer['sha256'][:12]}...)"
        if peer["loaded"]
        else f"Langroid not loaded ({peer['reason']})"
    )
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items() if version)
    return (
        f"- Run: `python -m benchmarks` ({results['mode']}, {results['seconds']:.0f} s) on {results['date']}, "
        f"commit `{machine['commit']}`\n"
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}; 1-minute load average "
        f"{load['start']:.2f} at the start, {load['end']:.2f} at the end (other work on the machine)\n"
        f"- Python {machine['python']}; {packages}\n"
        f"- Peer: {peer_text}\n"
        f"- Result: {render_tally(results)}"
    )


def render_markdown(results: dict[str, Any]) -> str:
    """The whole of benchmarks/RESULTS.md."""
    return f"""# Benchmark results

{render_run(results)}

Each figure is the median over its rounds, with the min-max spread when there was more than
one; ratio = clientreg's median / that baseline's median, measured side by side in the same run.
PASS/FAIL judges the target; `-` is context only; ERROR means clientreg's side could not be
measured (the reason is below), SKIP that the row cannot run on this machine. The raw figures
are in `benchmarks/results/latest.json` (not committed).

```
{render_table(results)}
```

## How each figure was measured

{render_conditions(results, markdown=True)}
"""


def render_readme_table(results: dict[str, Any]) -> str:
    """The README's generated table block (between its markers)."""
    return f"""{README_BEGIN}
{render_run(results)}

```
{render_table(results)}
```

<details><summary>How each figure was measured (conditions, and why a row was not measured)</summary>

{render_conditions(results, markdown=True)}

</details>
{README_END}"""


def _figure(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    figure: dict[str, Any] | None = results["figures"].get(key)
    if figure is None or figure["clientreg"] is None:
        return None
    return figure


def _baseline(figure: dict[str, Any], prefix: str) -> str:
    for baseline in figure["baselines"]:
        if baseline["name"].startswith(prefix) and baseline["sample"] is not None:
            return fmt(baseline["sample"]["median"], figure["unit"])
    return "not measured"


def render_summary(results: dict[str, Any]) -> str:
    """The README's headline figures, each with its conditions, from the same run."""
    lines = []

    def value(figure: dict[str, Any]) -> str:
        return fmt(figure["clientreg"]["median"], figure["unit"])

    def what(figure: dict[str, Any]) -> str:
        return str(figure["label"]).split(":")[0]

    hit, wrapper = _figure(results, "hit_settings_object"), _figure(results, "hit_wrapper_vs_langroid")
    if hit is not None:
        line = f"- A hit with a reused settings object costs {value(hit)} (one thread)"
        if wrapper is not None:
            line += (
                f"; through the keyword wrapper {value(wrapper)}, against {_baseline(wrapper, 'Langroid')} for "
                "Langroid's own `get_openai_client` on the same arguments"
            )
        lines.append(line + ".")
    miss = _figure(results, "miss_warm_transport_openai")
    if miss is not None:
        lines.append(
            f"- A new key's client on a warm pool costs {value(miss)}, against {_baseline(miss, 'plain')} "
            "for `openai.OpenAI(...)` (one thread, index off)."
        )
    keys = _figure(results, "distinct_keys_connections")
    if keys is not None:
        plural = "" if keys["clientreg"]["median"] == 1 else "s"
        lines.append(
            f"- {what(keys)}: {value(keys)} TCP connection{plural}; plain SDK {_baseline(keys, 'plain')}, "
            f"Langroid {_baseline(keys, 'Langroid')}."
        )
    agents, wall = _figure(results, "agents_concurrent_connections"), _figure(results, "agents_concurrent_wall")
    if agents is not None and wall is not None:
        lines.append(
            f"- {what(agents)}: {value(agents)} connections in {value(wall)}; plain SDK "
            f"{_baseline(agents, 'plain')} in {_baseline(wall, 'plain')}, Langroid {_baseline(agents, 'Langroid')} "
            f"in {_baseline(wall, 'Langroid')}."
        )
    held = _figure(results, "rss_10000_keys")
    if held is not None:
        counts = results["counts"]
        lines.append(
            f"- {held['label']}: {value(held)}; a plain client each: about {_baseline(held, 'plain')} "
            f"(extrapolated from the RSS of {counts['rss_plain']} clients x {counts['rss_plain_batches']} "
            "batches, not measured at that size)."
        )
    for key in ("async_runs_errors", "async_threads_errors"):
        loops = _figure(results, key)
        if loops is not None:
            lines.append(
                f"- {what(loops)[0].upper()}{what(loops)[1:]} taken outside any loop: {value(loops)} failed uses "
                f"(a request and a stream each); plain SDK {_baseline(loops, 'plain')}, Langroid "
                f"{_baseline(loops, 'Langroid')}."
            )
    built = [
        (name, key.replace("_", "-"), figure)
        for name, key in FRAMEWORK_SUMMARY
        if (figure := _figure(results, f"framework_{key}_build")) is not None
    ]
    if built:
        agents = results["counts"]["framework_agents"]
        each = ", ".join(f"{name} {value(f)} vs {_baseline(f, default)}" for name, default, f in built)
        lines.append(f"- {agents:,} agents built on registry clients vs each framework's default client: {each}.")
    history = [(name, _figure(results, f"history_{store}")) for name, store in STORE_SUMMARY]
    if any(figure is not None for _, figure in history):
        counts = results["counts"]
        each = ", ".join(f"{value(figure)} on {name}" for name, figure in history if figure is not None)
        lines.append(
            f"- `clientreg history` on {counts['history_configs']:,} configs and {counts['history_events']:,} "
            f"events: {each} (interpreter start included)."
        )
    writers = [(name, _figure(results, f"fleet_writers_{store}")) for name, store in STORE_SUMMARY]
    if any(figure is not None for _, figure in writers):
        counts = results["counts"]
        each = ", ".join(f"{value(figure)} on {name}" for name, figure in writers if figure is not None)
        lines.append(
            f"- {counts['fleet_processes']} processes handing out clients for {counts['fleet_seconds']:g} s into one "
            f"index: uses lost {each}."
        )
    metrics = _figure(results, "hit_metrics_on_vs_off")
    if metrics is not None:
        lines.append(
            f"- A hit with OpenTelemetry metrics on: {value(metrics)}, against {_baseline(metrics, 'metrics off')} "
            "off (fresh interpreters, both importing the OpenTelemetry SDK)."
        )
    not_measured = [f for f in results["figures"].values() if f["status"] != "measured"]
    if not_measured:
        lines.append(f"- Not measured in this run: {len(not_measured)} figures (the table says why for each).")
    return f"{SUMMARY_BEGIN}\n{chr(10).join(lines)}\n{SUMMARY_END}"


def replace_block(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with the block from ``begin`` to ``end`` (markers included) replaced by ``block``."""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"marker {begin[:40]!r}... not found")
    return pattern.sub(lambda _: block, text, count=1)


def write_readme(readme: Path, results: dict[str, Any]) -> None:
    """Rewrite the README's generated blocks from these results."""
    text = readme.read_text()
    text = replace_block(text, README_BEGIN, README_END, render_readme_table(results))
    text = replace_block(text, SUMMARY_BEGIN, SUMMARY_END, render_summary(results))
    readme.write_text(text)
