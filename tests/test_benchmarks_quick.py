"""The benchmark command still runs: quick mode end to end, every figure in well-formed JSON.

Timings are not asserted here: targets belong to the benchmark's own report, not to pass/fail.
The run is told never to fetch Langroid's wheel (no network in tests): with the wheel already
cached its rows are measured, without it they say why they are missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fleet import build_record, count_events
from benchmarks.frameworks import installed
from benchmarks.report import README_BEGIN, README_END, SUMMARY_BEGIN, SUMMARY_END, render_markdown, write_readme
from benchmarks.run import MEASUREMENTS
from tests import postgres_helpers

ROOT = Path(__file__).resolve().parent.parent

FIGURES = {
    "hit_settings_object",
    "hit_wrapper_vs_langroid",
    "hit_async_vs_sync",
    "settings_construction",
    "hit_fresh_equal_object",
    "hit_metrics_on_vs_off",
    "miss_warm_transport_openai",
    "miss_warm_transport_groq",
    "miss_warm_transport_cerebras",
    "rss_1000_keys",
    "rss_10000_keys",
    "rss_churn_index_on_vs_off",
    "distinct_keys_connections",
    "distinct_keys_wall",
    "agents_concurrent_connections",
    "agents_concurrent_wall",
    "streams_sync_connections",
    "streams_sync_wall",
    "streams_async_connections",
    "streams_async_wall",
    "async_runs_errors",
    "async_runs_connections",
    "async_runs_sockets",
    "async_threads_errors",
    "async_threads_connections",
    "async_threads_sockets",
    "miss_index_on_vs_off",
    "miss_postgresql_index_on_vs_off",
    "hit_index_on_vs_off",
    "hit_postgresql_index_on_vs_off",
    "index_bytes_churn_1h",
    "history_sqlite",
    "history_postgresql",
    "fleet_writers_sqlite",
    "fleet_writers_postgresql",
    "import",
    *(
        f"framework_{name}_{figure}"
        for name in ("pydantic_ai", "langchain", "langchain_azure", "openai_agents", "autogen", "litellm")
        for figure in ("build", "rss")
    ),
}
# Rows measured by clientreg's own code with nothing optional: these must never be SKIP.
ALWAYS_MEASURABLE = {
    "hit_settings_object",
    "settings_construction",
    "miss_warm_transport_openai",
    "miss_index_on_vs_off",
    "hit_index_on_vs_off",
    "rss_10000_keys",
    "distinct_keys_connections",
    "agents_concurrent_connections",
    "history_sqlite",
    "fleet_writers_sqlite",
    "import",
}
POSTGRES_ROWS = {
    "miss_postgresql_index_on_vs_off",
    "hit_postgresql_index_on_vs_off",
    "history_postgresql",
    "fleet_writers_postgresql",
}


def _check_sample(sample: object) -> None:
    assert isinstance(sample, dict)
    rounds = sample["rounds"]
    assert rounds and all(isinstance(v, int | float) for v in rounds)
    assert sample["min"] <= sample["median"] <= sample["max"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    readme_before = (ROOT / "README.md").read_text()
    results_before = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-fetch", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (ROOT / "README.md").read_text() == readme_before, "a quick run must not rewrite the README"
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == results_before
    return json.loads(out.read_text()), done.stdout


def test_quick_mode_reports_every_figure_well_formed(quick: tuple[dict[str, Any], str]) -> None:
    results, stdout = quick
    assert results["mode"] == "quick"
    assert {"cpu", "cores", "python", "packages", "commit"} <= results["machine"].keys()
    assert set(results["figures"]) == FIGURES
    for key, figure in results["figures"].items():
        assert figure["unit"] in ("s", "bytes", "count"), key
        assert figure["target"] and figure["label"] and figure["conditions"], key
        assert figure["label"] in stdout, key  # every row is in the printed table
        assert figure["result"] in ("PASS", "FAIL", "-", "SKIP", "ERROR"), key
        if figure["status"] == "measured":
            _check_sample(figure["clientreg"])
            assert figure["reason"] == "", key
        else:
            assert figure["reason"], f"{key} was not measured and does not say why"
            assert figure["result"] == ("SKIP" if figure["status"] == "skipped" else "ERROR"), key
        for baseline in figure["baselines"]:
            assert baseline["name"], key
            if baseline["sample"] is None:
                assert baseline["missing"], f"{key}: baseline {baseline['name']} has neither a sample nor a reason"
            else:
                _check_sample(baseline["sample"])
    for key in ALWAYS_MEASURABLE:
        assert results["figures"][key]["status"] == "measured", (key, results["figures"][key]["reason"])


def test_every_row_is_declared_once() -> None:
    # One implementation per figure: a key declared twice would hide one measurement behind the other.
    keys = [row.key for measurement in MEASUREMENTS for row in measurement.rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == FIGURES


def test_optional_rows_are_measured_where_their_parts_are_installed(quick: tuple[dict[str, Any], str]) -> None:
    results, _ = quick
    figures = results["figures"]
    unreachable = postgres_helpers._why_unreachable()
    for key in POSTGRES_ROWS:
        figure = figures[key]
        if unreachable is None or os.environ.get("CI", "").lower() == "true":
            assert figure["status"] == "measured", (key, figure["reason"])
        else:
            assert figure["status"] == "skipped", key
            assert "PostgreSQL" in figure["reason"] or "psycopg" in figure["reason"], figure["reason"]
    if importlib.util.find_spec("opentelemetry.sdk") is not None:
        assert figures["hit_metrics_on_vs_off"]["status"] == "measured", figures["hit_metrics_on_vs_off"]["reason"]
    for name in ("pydantic-ai", "langchain", "langchain-azure", "openai-agents", "autogen", "litellm"):
        rows = [f"framework_{name.replace('-', '_')}_{figure}" for figure in ("build", "rss")]
        for key in rows:
            if installed(name):
                assert figures[key]["status"] == "measured", (key, figures[key]["reason"])
                # Every agent on one shared pool (LangChain: one sync and one async).
                pools = re.search(r"every agent on (\d+) shared pool", figures[key]["note"])
                assert pools is not None and 1 <= int(pools.group(1)) <= 2, figures[key]["note"]
            else:
                assert figures[key]["status"] == "skipped" and "not installed" in figures[key]["reason"], key


def test_the_history_record_holds_the_event_rows_its_row_names(tmp_path: Path) -> None:
    # Evictions by one process on one day coalesce into one counted row; the record gives each a
    # pid of its own so that "1,000,000 events" are a million rows, not one per config.
    path = str(tmp_path / "index.sqlite")
    build_record(path, 30, 300)
    assert count_events("sqlite", path) == 300


def test_the_history_record_holds_the_event_rows_its_row_names_in_postgresql() -> None:
    with postgres_helpers.schema("bench") as where:
        build_record(where.url, 30, 300)
        assert count_events("postgresql", where.url) == 300


def test_langroid_rows_are_measured_or_say_why(quick: tuple[dict[str, Any], str]) -> None:
    results, _ = quick
    peer = results["peer"]
    assert peer["version"] and len(peer["sha256"]) == 64
    figure = results["figures"]["distinct_keys_connections"]
    langroid = [b for b in figure["baselines"] if b["name"].startswith("Langroid")]
    assert len(langroid) == 1
    if peer["loaded"]:
        assert langroid[0]["sample"] is not None
        # Langroid caches one client, with its own pool, per api key: one connection per key.
        assert langroid[0]["sample"]["median"] == results["counts"]["distinct_keys"]
    else:
        assert peer["reason"] and langroid[0]["missing"] == peer["reason"]


def test_the_plain_sdk_baseline_is_measured_not_assumed(quick: tuple[dict[str, Any], str]) -> None:
    results, _ = quick
    figure = results["figures"]["distinct_keys_connections"]
    plain = next(b for b in figure["baselines"] if b["name"] == "plain SDK")
    # A new openai.OpenAI per key opens a connection per key, counted by the loopback server.
    assert plain["sample"]["median"] == results["counts"]["distinct_keys"]
    assert figure["clientreg"]["median"] <= 2


def test_rendering_fills_the_readme_blocks_and_results_page(quick: tuple[dict[str, Any], str], tmp_path: Path) -> None:
    results, _ = quick
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    write_readme(readme, results)
    text = readme.read_text()
    table = text[text.index(README_BEGIN) : text.index(README_END)]
    summary = text[text.index(SUMMARY_BEGIN) : text.index(SUMMARY_END)]
    for figure in results["figures"].values():
        assert figure["label"] in table
    assert results["machine"]["commit"] in table and results["machine"]["cpu"] in table
    assert "hit with a reused settings object" in summary
    write_readme(readme, results)  # rewriting replaces the blocks, never duplicates them
    assert readme.read_text() == text
    page = render_markdown(results)
    assert all(figure["conditions"] in page for figure in results["figures"].values())
