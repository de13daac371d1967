"""instructor's recipe on registry clients: ``from_openai``, ``from_groq``, ``from_cerebras``, streams, close.

Run by tests/integrations/test_pinned_frameworks.py in .venv-compat (instructor cannot be
installed beside openai 3), through ``python -m tests.integrations.pinned``. The loopback
server answers a forced function call with the last message's text as its arguments, so
each request chooses the object it gets back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import instructor
import openai
import pydantic

from registry import Registry
from tests.integrations.helpers import AGENTS, gather_limited, run_in_threads
from tests.integrations.pinned import http_library
from tests.registry_helpers import settings_for

MODEL = "gpt-4o-mini"


class User(pydantic.BaseModel):
    name: str
    age: int


def ask(name: str, age: int) -> dict[str, Any]:
    """The create() arguments that make the server answer ``User(name, age)``."""
    content = json.dumps({"name": name, "age": age})
    return {"model": MODEL, "response_model": User, "messages": [{"role": "user", "content": content}]}


def sdk_create_untouched(client: Any) -> bool:
    """True when the registry client's ``chat.completions.create`` is still the SDK's own method."""
    create = client.chat.completions.create
    return getattr(create, "__func__", None) is type(client.chat.completions).create


def recipe(reg: Registry, url: str) -> dict[str, Any]:
    what = settings_for("openai", url, "sk-instructor")
    client, aclient = reg.get_client(what), reg.get_async_client(what)
    sync, asynchronous = instructor.from_openai(client), instructor.from_openai(aclient)  # the documented recipe
    replies = [sync.chat.completions.create(**ask("sync", 1)).model_dump()]
    replies += [asyncio.run(asynchronous.chat.completions.create(**ask(f"run {i}", i))).model_dump() for i in range(5)]

    async def in_a_thread() -> dict[str, Any]:
        return (await asynchronous.chat.completions.create(**ask("thread", 7))).model_dump()

    replies += run_in_threads(in_a_thread)
    groq_what = settings_for("groq", url, "gsk-instructor")
    groq_sync = instructor.from_groq(reg.get_client(groq_what))
    groq_async = instructor.from_groq(reg.get_async_client(groq_what))
    replies.append(groq_sync.chat.completions.create(**ask("groq", 2)).model_dump())
    replies += [asyncio.run(groq_async.chat.completions.create(**ask(f"agroq {i}", i))).model_dump() for i in range(2)]
    cerebras_what = settings_for("cerebras", url, "csk-instructor")
    cerebras_sync = instructor.from_cerebras(reg.get_client(cerebras_what))
    cerebras_async = instructor.from_cerebras(reg.get_async_client(cerebras_what))
    replies.append(cerebras_sync.chat.completions.create(**ask("cerebras", 3)).model_dump())
    replies.append(asyncio.run(cerebras_async.chat.completions.create(**ask("acerebras", 4))).model_dump())
    return {
        "replies": replies,
        "holds_registry_clients": [sync.client is client, asynchronous.client is aclient],
        "is_openai_client": [isinstance(client, openai.OpenAI), isinstance(aclient, openai.AsyncOpenAI)],
        "sdk_create_untouched": [sdk_create_untouched(c) for c in (client, aclient)],
        "pool_library": http_library(reg.get_http_client(what)),
        "groq_pool_library": http_library(reg.get_http_client(groq_what)),
        "cerebras_holds_registry_clients": [
            cerebras_sync.client is reg.get_client(cerebras_what),
            cerebras_async.client is reg.get_async_client(cerebras_what),
        ],
    }


def many(reg: Registry, url: str) -> dict[str, Any]:
    clients = [instructor.from_openai(reg.get_client(settings_for("openai", url, f"key-{i}"))) for i in range(AGENTS)]
    aclients = [
        instructor.from_openai(reg.get_async_client(settings_for("openai", url, f"key-{i}"))) for i in range(AGENTS)
    ]
    sync = [c.chat.completions.create(**ask(f"user {i}", i)).name for i, c in enumerate(clients)]

    async def run() -> list[Any]:
        calls = [lambda c=c, i=i: c.chat.completions.create(**ask(f"auser {i}", i)) for i, c in enumerate(aclients)]
        return [user.name for user in await gather_limited(calls)]

    return {"sync": sync, "async": asyncio.run(run())}


def stream(reg: Registry, url: str) -> dict[str, Any]:
    what = settings_for("openai", url, "sk-stream")
    sync = instructor.from_openai(reg.get_client(what))
    asynchronous = instructor.from_openai(reg.get_async_client(what))
    partials = [p.model_dump() for p in sync.chat.completions.create_partial(**ask("streamed", 3))]

    async def run() -> list[dict[str, Any]]:
        return [p.model_dump() async for p in asynchronous.chat.completions.create_partial(**ask("astreamed", 4))]

    return {"sync": partials, "async": asyncio.run(run())}


def close(reg: Registry, url: str) -> dict[str, Any]:
    # instructor has no close of its own: a user closes the SDK client it holds (or exits `with client.client:`).
    what = settings_for("openai", url, "sk-close")
    first, second = instructor.from_openai(reg.get_client(what)), instructor.from_openai(reg.get_client(what))
    afirst, asecond = (instructor.from_openai(reg.get_async_client(what)) for _ in range(2))
    names = [first.chat.completions.create(**ask("before", 1)).name]
    with first.client:
        pass
    names.append(second.chat.completions.create(**ask("second", 2)).name)
    names.append(first.chat.completions.create(**ask("first", 3)).name)

    async def run() -> list[str]:
        before = (await afirst.chat.completions.create(**ask("abefore", 4))).name
        await afirst.client.close()
        return [before, (await asecond.chat.completions.create(**ask("asecond", 5))).name]

    names += asyncio.run(run())
    names.append(asyncio.run(afirst.chat.completions.create(**ask("next loop", 6))).name)
    return {"names": names}


SCENARIOS = {"recipe": recipe, "many": many, "stream": stream, "close": close}
DISTRIBUTIONS = ["instructor", "jiter"]
