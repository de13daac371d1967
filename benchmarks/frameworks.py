"""1,000 agents per framework (issue 12): each with the framework's default client, against registry clients.

Every agent has its own API key (one per tenant), so the registry builds 1,000 SDK clients too,
on one shared connection pool. "Default" is what the framework makes when given a key and a
URL rather than a client. Each (framework, side) runs in a fresh interpreter, so imports are
paid before the clock starts and RSS is not shared. Figures: wall time to build the agents
(for LiteLLM, which keeps no agent objects, the time of one completion per key against a
loopback server, where its default builds and caches an SDK client per key) and the RSS they
add, median over the rounds (one process per side each). No request leaves the machine: agents are
built, not run, and the URL is a loopback address.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

from benchmarks._context import Context, worker
from benchmarks._figure import CONTEXT, Baseline, Figure, Measurement, Row, describe_error
from benchmarks._proc import rss_bytes
from benchmarks._stats import Sample

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
    """Build ``agents`` agents of ``framework`` on ``side``; seconds, RSS added, the registry's pools."""
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
    keys = [f"sk-tenant-{side}-{i:05d}" for i in range(agents)]
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
    reg.close()
    return result


def build(framework: str, side: str, agents: str) -> dict[str, Any]:
    """Worker: one side of one framework in this fresh interpreter."""
    return run_one(framework, side, int(agents))


def build_all(agents: str, *frameworks: str) -> dict[str, Any]:
    """Worker (quick mode): every side of every framework given, one after another in this interpreter."""
    results: dict[str, Any] = {}
    for framework in frameworks:
        try:
            results[framework] = {side: run_one(framework, side, int(agents)) for side in SIDES}
        except Exception as exc:
            results[framework] = {"error": describe_error(exc)}
    return results


# ---- rows -------------------------------------------------------------------------------------------

# Where the default builds an HTTP client (its own pool and SSL context) per agent, issue 12's
# point is that registry clients remove that cost: those rows are judged "< 1x default".
# LangChain's ChatOpenAI already shares one HTTP client per base URL and timeout by default, and
# LiteLLM caches an SDK client per key itself: there the figure is context.
LABELS: dict[str, tuple[str, bool]] = {
    "pydantic-ai": ("{framework_agents:,} pydantic-ai agents", True),
    "langchain": ("{framework_agents:,} LangChain ChatOpenAI models", False),
    "langchain-azure": ("{framework_agents:,} LangChain AzureChatOpenAI models", True),
    "openai-agents": ("{framework_agents:,} openai-agents agents", True),
    "autogen": ("{framework_agents:,} AutoGen model clients", True),
    "litellm": ("{framework_agents:,} LiteLLM completion() calls, a key each", False),
}
COMMON = (
    "each agent with its own api key (one per tenant); default: {what}, given a key and a loopback URL "
    "(never contacted); registry: the same built from registry clients (Registry(index_path='off'): shared "
    "pools); each framework and side in a fresh interpreter, imports and 3 warm-up agents before the "
    "clock, sides alternating, median of {framework_rounds} rounds; RSS: resident memory after the agents "
    "are built (gc.collect()) minus before, the agents kept alive"
)
WHY = {
    True: "; judged: the default builds an HTTP client (pool, SSL context) per agent, registry clients share one",
    False: "",
}
LITELLM = (
    "; LiteLLM keeps no agent objects: the figure is one completion() per key against the loopback server "
    "(which answers at once), where its default builds and caches an SDK client per key"
)
LANGCHAIN = "; context: ChatOpenAI's default already shares one HTTP client per base URL and timeout"


def _rows(framework: str) -> tuple[Row, Row]:
    label, judged = LABELS[framework]
    what = FRAMEWORKS[framework][1]
    extra = WHY[judged] + {"litellm": LITELLM, "langchain": LANGCHAIN}.get(framework, "")
    conditions = COMMON.replace("{what}", what) + extra
    target = "< 1x default" if judged else CONTEXT
    timed = "wall time" if framework == "litellm" else "build time"
    key = f"framework_{framework.replace('-', '_')}"
    return (
        Row(f"{key}_build", f"{label}: {timed}, registry clients vs default", "s", target, conditions),
        Row(f"{key}_rss", f"{label}: RSS added, registry clients vs default", "bytes", target, conditions),
    )


ROWS = {framework: _rows(framework) for framework in FRAMEWORKS}


def installed(framework: str) -> bool:
    """True when the framework's package can be imported here."""
    module = FRAMEWORKS[framework][0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _figures(ctx: Context, framework: str, runs: dict[str, list[dict[str, Any]]], note: str) -> list[Figure]:
    build_row, rss_row = (ctx.row(row) for row in ROWS[framework])
    judged = build_row.target != CONTEXT
    figures = []
    for row, field in ((build_row, "seconds"), (rss_row, "rss_bytes")):
        ours = Sample(tuple(float(run[field]) for run in runs["registry"]))
        theirs = Sample(tuple(float(run[field]) for run in runs["default"]))
        passed = ours.median < theirs.median if judged else None
        figures.append(row.measured(ours, [Baseline(f"{framework} default", theirs)], passed=passed, note=note))
    return figures


def _pools_note(runs: dict[str, list[dict[str, Any]]]) -> str:
    pools = max(run["live_transports"] for run in runs["registry"])
    plural = "s" if pools != 1 else ""
    return f"registry side: every agent on {pools} shared pool{plural} (a sync and an async pool count apart)"


def measure(ctx: Context) -> list[Figure]:
    counts = ctx.counts
    wanted = [framework for framework in FRAMEWORKS if installed(framework)]
    figures: list[Figure] = []
    quick: dict[str, Any] = {}
    if not counts.framework_fresh_processes and wanted:
        quick = worker("frameworks:build_all", counts.framework_agents, *wanted, timeout=1800)
    for framework in FRAMEWORKS:
        rows = [ctx.row(row) for row in ROWS[framework]]
        if framework not in wanted:
            module = FRAMEWORKS[framework][0]
            reason = f"{module} is not installed (the [integrations] extra: pip install -e '.[dev]')"
            figures += [row.failed("skipped", reason) for row in rows]
            continue
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        try:
            if counts.framework_fresh_processes:
                for _ in range(counts.framework_rounds):
                    for side in SIDES:  # alternating, so load on the machine falls on both sides alike
                        runs[side].append(worker("frameworks:build", framework, side, counts.framework_agents))
                note = _pools_note(runs)
            else:
                result = quick[framework]
                if "error" in result:
                    raise RuntimeError(result["error"])
                for side in SIDES:
                    runs[side].append(result[side])
                note = _pools_note(runs) + "; quick run: every framework and side in one interpreter"
        except Exception as exc:
            figures += [row.failed("error", describe_error(exc)) for row in rows]
            continue
        figures += _figures(ctx, framework, runs, note)
    return figures


MEASUREMENTS = (Measurement("frameworks", tuple(row for pair in ROWS.values() for row in pair), measure),)
