"""1,000 agents per framework: each with the framework's default client, against registry clients.

    python -m benchmarks.frameworks                  # every framework installed, 1,000 agents
    python -m benchmarks.frameworks --agents 200 --frameworks pydantic-ai,langchain

Every agent has its own API key (one per tenant), so the registry builds 1,000 SDK clients too,
on one shared connection pool. "Default" is what the framework makes when given a key and a
URL rather than a client. Each (framework, side) runs in a fresh interpreter, so imports are
paid before the clock starts and RSS is not shared. Figures: wall time to build the agents
(for LiteLLM, which keeps no agent objects, the time of one completion per key against a
loopback server, where its default builds and caches an SDK client per key) and the RSS they
add, median over ``--rounds`` processes per side. No request leaves the machine: agents are
built, not run, and the URL is a loopback address.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

URL = "http://127.0.0.1:9/v1"  # never contacted: building an agent sends nothing
MODEL = "gpt-4o-mini"

# framework -> (the module that must be installed, what each side builds)
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "pydantic-ai": ("pydantic_ai", "Agent(OpenAIChatModel(provider=OpenAIProvider(...)))"),
    "langchain": ("langchain_openai", "ChatOpenAI(...)"),
    "langchain-azure": ("langchain_openai", "AzureChatOpenAI(...)"),
    "openai-agents": ("agents", "Agent(model=OpenAIChatCompletionsModel(openai_client=...))"),
    "autogen": ("autogen_ext.models.openai", "OpenAIChatCompletionClient / BaseOpenAIChatCompletionClient"),
    "litellm": ("litellm", "completion(model='openai/...') once per key"),
}
SIDES = ("default", "registry")


def rss_bytes() -> int:
    """Current resident set size, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---- one side of one framework, in a fresh interpreter --------------------------------------------


def _settings(key: str) -> Any:
    from schemas import OpenAISettings

    return OpenAISettings(api_key=key, base_url=URL)


def _pydantic_ai(side: str, reg: Any) -> Callable[[str], Any]:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    if side == "default":
        return lambda key: Agent(OpenAIChatModel(MODEL, provider=OpenAIProvider(api_key=key, base_url=URL)))
    return lambda key: Agent(
        OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=reg.get_async_client(_settings(key))))
    )


def _langchain(side: str, reg: Any) -> Callable[[str], Any]:
    from langchain_openai import ChatOpenAI

    from registry.integrations import langchain_kwargs

    if side == "default":
        return lambda key: ChatOpenAI(model=MODEL, api_key=key, base_url=URL)
    return lambda key: ChatOpenAI(model=MODEL, **langchain_kwargs(_settings(key), registry=reg))


def _langchain_azure(side: str, reg: Any) -> Callable[[str], Any]:
    from langchain_openai import AzureChatOpenAI

    from registry.integrations import langchain_kwargs
    from schemas import AzureOpenAISettings

    where: dict[str, Any] = {"azure_endpoint": URL[:-3], "azure_deployment": "dep", "api_version": "2024-10-21"}
    if side == "default":
        return lambda key: AzureChatOpenAI(api_key=key, **where)
    return lambda key: AzureChatOpenAI(**langchain_kwargs(AzureOpenAISettings(api_key=key, **where), registry=reg))


def _openai_agents(side: str, reg: Any) -> Callable[[str], Any]:
    import openai
    from agents import Agent, OpenAIChatCompletionsModel, set_tracing_disabled

    set_tracing_disabled(True)
    if side == "default":
        return lambda key: Agent(
            name="a",
            model=OpenAIChatCompletionsModel(MODEL, openai_client=openai.AsyncOpenAI(api_key=key, base_url=URL)),
        )
    return lambda key: Agent(
        name="a", model=OpenAIChatCompletionsModel(MODEL, openai_client=reg.get_async_client(_settings(key)))
    )


def _autogen(side: str, reg: Any) -> Callable[[str], Any]:
    from autogen_ext.models.openai import BaseOpenAIChatCompletionClient, OpenAIChatCompletionClient

    if side == "default":
        return lambda key: OpenAIChatCompletionClient(model=MODEL, api_key=key, base_url=URL)
    return lambda key: BaseOpenAIChatCompletionClient(
        client=reg.get_async_client(_settings(key)), create_args={"model": MODEL}
    )


def _litellm(side: str, reg: Any, url: str) -> Callable[[str], Any]:
    import litellm

    from schemas import OpenAISettings

    messages = [{"role": "user", "content": "hi"}]
    if side == "default":
        return lambda key: litellm.completion(model=f"openai/{MODEL}", messages=messages, api_key=key, api_base=url)
    return lambda key: litellm.completion(
        model=f"openai/{MODEL}", messages=messages, client=reg.get_client(OpenAISettings(api_key=key, base_url=url))
    )


def run_one(framework: str, side: str, agents: int) -> dict[str, Any]:
    """Build ``agents`` agents of ``framework`` on ``side``; seconds and RSS added. In a fresh process."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # LiteLLM: no price list from the network
    from registry import Registry

    server = None
    reg = Registry(index_path="off")
    if framework == "litellm":
        from tests.fake_server import FakeServer

        server = FakeServer()
        make = _litellm(side, reg, f"{server.url}/v1")
    else:
        make = {
            "pydantic-ai": _pydantic_ai,
            "langchain": _langchain,
            "langchain-azure": _langchain_azure,
            "openai-agents": _openai_agents,
            "autogen": _autogen,
        }[framework](side, reg)
    warm = [make(f"sk-warm-{i}") for i in range(3)]  # imports, SSL contexts, the registry's pool
    assert warm
    keys = [f"sk-tenant-{i:05d}" for i in range(agents)]
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    built = [make(key) for key in keys]
    seconds = time.perf_counter() - started
    gc.collect()
    added = rss_bytes() - before
    result = {
        "seconds": seconds,
        "rss_bytes": added,
        "built": len(built),
        "live_transports": reg.stats().live_transports,
        "connections": server.connections_opened if server is not None else None,
    }
    if server is not None:
        server.close()
    return result


# ---- the runner -------------------------------------------------------------------------------------


def installed(framework: str) -> bool:
    """True when the framework's package can be imported here."""
    module = FRAMEWORKS[framework][0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def measure(framework: str, side: str, agents: int) -> dict[str, Any]:
    """Run one side of one framework in a fresh interpreter."""
    command = [sys.executable, "-m", "benchmarks.frameworks", "--one", framework, side, "--agents", str(agents)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} ({side}) failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def rows(frameworks: list[str], agents: int, rounds: int) -> list[dict[str, Any]]:
    """One row per framework: median build time and RSS added, default client vs registry clients."""
    table = []
    for framework in frameworks:
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for _ in range(rounds):
            for side in SIDES:  # alternate, so load on the machine hits both sides alike
                runs[side].append(measure(framework, side, agents))
        row: dict[str, Any] = {"framework": framework, "agents": agents, "what": FRAMEWORKS[framework][1]}
        for side in SIDES:
            row[f"{side}_s"] = statistics.median(r["seconds"] for r in runs[side])
            row[f"{side}_rss_mb"] = statistics.median(r["rss_bytes"] for r in runs[side]) / 2**20
        row["registry_transports"] = runs["registry"][0]["live_transports"]
        row["time_ratio"] = row["registry_s"] / row["default_s"]
        row["rss_ratio"] = row["registry_rss_mb"] / row["default_rss_mb"] if row["default_rss_mb"] > 0 else None
        table.append(row)
    return table


def render(table: list[dict[str, Any]]) -> str:
    """The rows as a plain text table."""
    header = ("framework", "agents", "default build", "registry build", "ratio", "default RSS", "registry RSS", "ratio")
    lines = [header]
    for row in table:
        rss_ratio = "-" if row["rss_ratio"] is None else f"{row['rss_ratio']:.3f}x"
        lines.append(
            (
                row["framework"],
                f"{row['agents']:,}",
                f"{row['default_s']:.2f} s",
                f"{row['registry_s']:.2f} s",
                f"{row['time_ratio']:.3f}x",
                f"{row['default_rss_mb']:.1f} MB",
                f"{row['registry_rss_mb']:.1f} MB",
                rss_ratio,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frameworks", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000, help="agents per framework and side (default 1,000)")
    parser.add_argument("--rounds", type=int, default=1, help="fresh processes per side; the median is shown")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--one", nargs=2, metavar=("FRAMEWORK", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.agents)))
        return 0
    wanted = [name.strip() for name in args.frameworks.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(FRAMEWORKS))
    if unknown:
        parser.error(f"unknown framework(s) {', '.join(unknown)}; known: {', '.join(FRAMEWORKS)}")
    missing = [name for name in wanted if not installed(name)]
    for name in missing:
        print(f"{name}: not installed (pip install -e '.[integrations]'), skipped", file=sys.stderr)
    table = rows([name for name in wanted if name not in missing], args.agents, args.rounds)
    print(json.dumps(table, indent=2) if args.json else render(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
