"""1,000 "agents" each sending one chat request to a loopback server: registry vs a client per agent."""

from __future__ import annotations

import time
from typing import Any

from benchmarks._stats import Sample
from registry import Registry
from schemas import OpenAISettings
from tests.fake_server import FakeServer

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _ask(client: Any) -> None:
    reply = client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert reply.choices[0].message.content == "echo: hi"


def run_registry(server: FakeServer, agents: int) -> tuple[float, int]:
    """Each agent asks a fresh registry for its client by settings, as framework code would."""
    server.reset()
    base_url = f"{server.url}/v1"
    started = time.perf_counter()
    with Registry(index_path="off") as reg:
        for _ in range(agents):
            _ask(reg.get_client(OpenAISettings(api_key="sk-agent", base_url=base_url)))
        seconds = time.perf_counter() - started
    return seconds, server.connections_opened


def run_plain(server: FakeServer, agents: int) -> tuple[float, int]:
    """Each agent builds, uses and closes its own ``openai.OpenAI``."""
    import openai

    server.reset()
    base_url = f"{server.url}/v1"
    started = time.perf_counter()
    for _ in range(agents):
        client = openai.OpenAI(api_key="sk-agent", base_url=base_url)
        _ask(client)
        client.close()
    return time.perf_counter() - started, server.connections_opened


def measure(*, agents: int, rounds: int, plain_rounds: int) -> dict[str, Sample]:
    """Wall seconds and TCP connections opened per run of ``agents`` agents, for both sides."""
    values: dict[str, list[float]] = {"registry_s": [], "registry_conn": [], "plain_s": [], "plain_conn": []}
    with FakeServer() as server:
        run_registry(server, 5)  # warm-up: imports, SSL context, server threads
        run_plain(server, 5)
        for round_no in range(rounds):
            seconds, connections = run_registry(server, agents)
            values["registry_s"].append(seconds)
            values["registry_conn"].append(connections)
            if round_no < plain_rounds:
                seconds, connections = run_plain(server, agents)
                values["plain_s"].append(seconds)
                values["plain_conn"].append(connections)
    return {name: Sample(tuple(v)) for name, v in values.items()}
