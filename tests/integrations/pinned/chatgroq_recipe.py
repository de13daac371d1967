"""LangChain ``ChatGroq`` on registry clients: ``ChatGroq(**langchain_kwargs(groq_settings))``.

Run by tests/integrations/test_pinned_frameworks.py in .venv-compat (every langchain-groq
release requires groq<1), through ``python -m tests.integrations.pinned``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_groq import ChatGroq

from registry import Registry
from registry.integrations import langchain_kwargs
from tests.integrations.helpers import AGENTS, gather_limited, run_in_threads
from tests.integrations.pinned import http_library
from tests.registry_helpers import settings_for

MODEL = "llama-3.3-70b-versatile"


def chat_model(reg: Registry, what: Any) -> ChatGroq:
    """The recipe of docs/integrations.md."""
    return ChatGroq(model=MODEL, **langchain_kwargs(what, registry=reg))


def recipe(reg: Registry, url: str) -> dict[str, Any]:
    what = settings_for("groq", url, "gsk-chatgroq")
    model = chat_model(reg, what)
    replies = [model.invoke("sync").content]
    replies += [asyncio.run(model.ainvoke(f"run {i}")).content for i in range(5)]

    async def in_a_thread() -> Any:
        return (await model.ainvoke("thread")).content

    replies += run_in_threads(in_a_thread)
    return {
        "replies": replies,
        "holds_registry_clients": [
            model.client is reg.get_client(what).chat.completions,
            model.async_client is reg.get_async_client(what).chat.completions,
        ],
        "pool_library": http_library(reg.get_http_client(what)),
    }


def many(reg: Registry, url: str) -> dict[str, Any]:
    models = [chat_model(reg, settings_for("groq", url, f"key-{i}")) for i in range(AGENTS)]
    sync = [m.invoke(f"model {i}").content for i, m in enumerate(models)]

    async def run() -> list[Any]:
        replies = await gather_limited([lambda m=m, i=i: m.ainvoke(f"async {i}") for i, m in enumerate(models)])
        return [reply.content for reply in replies]

    return {"sync": sync, "async": asyncio.run(run())}


def stream(reg: Registry, url: str) -> dict[str, Any]:
    model = chat_model(reg, settings_for("groq", url, "gsk-stream"))
    sync = [chunk.content for chunk in model.stream("a b c")]

    async def run() -> list[Any]:
        return [chunk.content async for chunk in model.astream("x y")]

    return {"sync": sync, "async": asyncio.run(run())}


def close(reg: Registry, url: str) -> dict[str, Any]:
    # ChatGroq has no close of its own: a user closes the groq client behind the model.
    what = settings_for("groq", url, "gsk-close")
    first, second = chat_model(reg, what), chat_model(reg, what)
    replies = [first.invoke("before").content]
    first.client._client.close()  # the Groq client that owns the `chat.completions` resource
    replies += [second.invoke("second").content, first.invoke("first").content]

    async def run() -> list[Any]:
        before = (await first.ainvoke("abefore")).content
        await first.async_client._client.close()
        return [before, (await second.ainvoke("asecond")).content]

    replies += asyncio.run(run())
    replies.append(asyncio.run(first.ainvoke("next loop")).content)
    return {"replies": replies}


SCENARIOS = {"recipe": recipe, "many": many, "stream": stream, "close": close}
DISTRIBUTIONS = ["langchain-groq", "langchain-core"]
