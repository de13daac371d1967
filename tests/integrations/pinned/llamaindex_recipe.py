"""LlamaIndex's recipe on registry clients: ``OpenAI(openai_client=, async_openai_client=)``.

Run by tests/integrations/test_pinned_frameworks.py in .venv-compat (llama-index-llms-openai
0.8 requires openai<3), through ``python -m tests.integrations.pinned``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from registry import Registry
from tests.integrations.helpers import AGENTS, gather_limited, run_in_threads
from tests.integrations.pinned import http_library
from tests.registry_helpers import settings_for

MODEL = "gpt-4o-mini"  # a name LlamaIndex knows (it looks up the context window)


def llm(reg: Registry, what: Any) -> OpenAI:
    """The recipe of docs/integrations.md: both clients from the registry."""
    return OpenAI(model=MODEL, openai_client=reg.get_client(what), async_openai_client=reg.get_async_client(what))


def say(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def recipe(reg: Registry, url: str) -> dict[str, Any]:
    what = settings_for("openai", url, "sk-llamaindex")
    model = llm(reg, what)
    replies = [model.chat(say("sync")).message.content, model.complete("complete").text]
    replies += [asyncio.run(model.achat(say(f"run {i}"))).message.content for i in range(5)]

    async def in_a_thread() -> Any:
        return (await model.achat(say("thread"))).message.content

    replies += run_in_threads(in_a_thread)
    replies.append(asyncio.run(model.acomplete("acomplete")).text)
    return {
        "replies": replies,
        "holds_registry_clients": [
            model._get_client() is reg.get_client(what),
            model._get_aclient() is reg.get_async_client(what),
        ],
        "pool_library": http_library(reg.get_http_client(what)),
    }


def many(reg: Registry, url: str) -> dict[str, Any]:
    models = [llm(reg, settings_for("openai", url, f"key-{i}")) for i in range(AGENTS)]
    sync = [m.chat(say(f"model {i}")).message.content for i, m in enumerate(models)]

    async def run() -> list[Any]:
        replies = await gather_limited([lambda m=m, i=i: m.achat(say(f"async {i}")) for i, m in enumerate(models)])
        return [reply.message.content for reply in replies]

    return {"sync": sync, "async": asyncio.run(run())}


def stream(reg: Registry, url: str) -> dict[str, Any]:
    model = llm(reg, settings_for("openai", url, "sk-stream"))
    sync = [chunk.delta for chunk in model.stream_chat(say("a b c"))]

    async def run() -> list[Any]:
        return [chunk.delta async for chunk in await model.astream_chat(say("x y"))]

    return {"sync": sync, "async": asyncio.run(run())}


def close(reg: Registry, url: str) -> dict[str, Any]:
    # LlamaIndex's OpenAI has no close of its own: a user closes the SDK clients it holds.
    what = settings_for("openai", url, "sk-close")
    first, second = llm(reg, what), llm(reg, what)
    replies = [first.chat(say("before")).message.content]
    first._get_client().close()
    replies += [second.chat(say("second")).message.content, first.chat(say("first")).message.content]

    async def run() -> list[Any]:
        before = (await first.achat(say("abefore"))).message.content
        await first._get_aclient().close()
        return [before, (await second.achat(say("asecond"))).message.content]

    replies += asyncio.run(run())
    replies.append(asyncio.run(first.achat(say("next loop"))).message.content)
    return {"replies": replies}


def one_client(reg: Registry, url: str) -> dict[str, Any]:
    # What docs/integrations.md warns about: given one client, LlamaIndex builds the other from
    # its own api_key and the environment; with reuse_client=False it ignores both.
    what = settings_for("openai", url, "sk-registry")
    os.environ["OPENAI_API_KEY"] = "sk-from-the-environment"
    only_sync = OpenAI(model=MODEL, openai_client=reg.get_client(what))
    own_async = only_sync._get_aclient()
    no_reuse = OpenAI(
        model=MODEL,
        openai_client=reg.get_client(what),
        async_openai_client=reg.get_async_client(what),
        reuse_client=False,
    )
    fresh = [no_reuse._get_client(), no_reuse._get_client()]
    return {
        "own_async_is_registry_client": own_async is reg.get_async_client(what),
        "own_async_key": own_async.api_key,
        "own_async_url": str(own_async.base_url),
        "no_reuse_is_registry_client": [c is reg.get_client(what) for c in fresh],
        "no_reuse_new_each_time": fresh[0] is not fresh[1],
    }


SCENARIOS = {"recipe": recipe, "many": many, "stream": stream, "close": close, "one-client": one_client}
DISTRIBUTIONS = ["llama-index-llms-openai", "llama-index-core"]
