"""The recipes that need the pinned environment, run for real: instructor, LlamaIndex, LangChain ChatGroq.

instructor (jiter<0.15), llama-index-llms-openai 0.8 (openai<3) and langchain-groq (groq<1)
cannot be installed beside the main environment's openai 3 and groq 1. clientreg supports
openai>=1.40 and groq>=0.9, so they run in a second environment, ``.venv-compat``, with the
versions pinned in tests/integrations/compat-requirements.txt (.ci/run builds it). Each
scenario is a script of tests/integrations/pinned/ run by that environment's Python against
this session's loopback server: the script reports what the framework returned, the test
checks it and what the server saw (credentials, paths, TCP connections).

Without ``.venv-compat`` the tests skip, saying how to make it; under ``CI=true`` they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fake_server import FakeServer
from tests.integrations.helpers import AGENTS, CONCURRENCY

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "tests" / "integrations" / "compat-requirements.txt"
VENV = ROOT / ".venv-compat"
MAKE_IT = f"python3 -m venv .venv-compat && .venv-compat/bin/pip install -e . -r {REQUIREMENTS.relative_to(ROOT)}"

RECIPES = ["instructor_recipe", "llamaindex_recipe", "chatgroq_recipe"]
PATHS = {  # the server paths each recipe's requests take
    "instructor_recipe": {"/v1/chat/completions", "/openai/v1/chat/completions"},
    "llamaindex_recipe": {"/v1/chat/completions"},
    "chatgroq_recipe": {"/openai/v1/chat/completions"},
}


def pins(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of the requirements file."""
    found = {}
    for line in requirements.read_text().splitlines():
        name, separator, version = line.partition("#")[0].strip().partition("==")
        if separator:
            found[name.strip().lower()] = version.strip()
    return found


def pinned_python(venv: Path = VENV) -> Path:
    """The pinned environment's Python; skip without it (fail under CI=true), saying how to make it."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    reason = f"the pinned framework environment {venv} is missing; make it with: {MAKE_IT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required under CI=true (.ci/run makes it): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def python() -> Path:
    return pinned_python()


def run(python: Path, recipe: str, scenario: str, server: FakeServer, tmp_path: Path) -> dict[str, Any]:
    """Run ``scenario`` of ``recipe`` in the pinned environment; its report, checked for what every run must hold."""
    env = {
        **os.environ,  # already without OPENAI_*/GROQ_*/tracing variables (the conftests' fixtures)
        "CLIENTREG_TEST_SERVER": server.url,
        "CLIENTREG_INDEX": "off",
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "LLAMA_INDEX_CACHE_DIR": str(tmp_path / "llama-index-cache"),
        "NLTK_DATA": str(tmp_path / "nltk-data"),
    }
    command = [str(python), "-m", "tests.integrations.pinned", recipe, scenario]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"{recipe} {scenario} exited {done.returncode}:\n{done.stderr[-6000:]}", pytrace=False)
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["refused"] == [], f"the recipe tried to reach the network: {report['refused']}"
    wanted = pins()
    for name, version in report["versions"].items():
        assert version == wanted[name], f"{VENV} has {name} {version}, not the pinned {wanted[name]}: remake it"
    assert {r.path for r in server.requests} <= PATHS[recipe]
    return report


def user(name: str, age: int) -> dict[str, Any]:
    return {"name": name, "age": age}


# ---- the recipe as documented: the framework's answer, the registry's clients, every loop ---------

RECIPE_REPLIES = {
    "instructor_recipe": [
        user("sync", 1),
        *(user(f"run {i}", i) for i in range(5)),
        *[user("thread", 7)] * 3,
        user("groq", 2),
        user("agroq 0", 0),
        user("agroq 1", 1),
        user("cerebras", 3),
        user("acerebras", 4),
    ],
    "llamaindex_recipe": [
        "echo: sync",
        "echo: complete",
        *(f"echo: run {i}" for i in range(5)),
        *["echo: thread"] * 3,
        "echo: acomplete",
    ],
    "chatgroq_recipe": ["echo: sync", *(f"echo: run {i}" for i in range(5)), *["echo: thread"] * 3],
}
# One connection for the sync requests of each pool, one per event loop: 5 asyncio.run() calls, 3 threads' loops.
RECIPE_CONNECTIONS = {
    # instructor: then groq (its own pool: 1 sync, 2 asyncio.run()), then Cerebras, whose sync client
    # shares groq's pool (both httpx, equal transport settings), and one asyncio.run().
    "instructor_recipe": 1 + 5 + 3 + 1 + 2 + 1,
    "llamaindex_recipe": 1 + 5 + 3 + 1,
    "chatgroq_recipe": 1 + 5 + 3,
}


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_recipe_answers_on_the_registry_clients_on_every_loop(
    python: Path, server: FakeServer, tmp_path: Path, recipe: str
) -> None:
    report = run(python, recipe, "recipe", server, tmp_path)
    value = report["value"]
    assert value["replies"] == RECIPE_REPLIES[recipe]
    assert value["holds_registry_clients"] == [True, True]
    # openai 2 and groq 0.x speak httpx: the registry's pools must be httpx ones for them.
    assert value["pool_library"] == "httpx"
    assert server.connections_opened == RECIPE_CONNECTIONS[recipe]
    keys = {
        "instructor_recipe": {"sk-instructor", "gsk-instructor", "csk-instructor"},
        "llamaindex_recipe": {"sk-llamaindex"},
        "chatgroq_recipe": {"gsk-chatgroq"},
    }
    assert {r.credential for r in server.requests} == keys[recipe]
    if recipe == "instructor_recipe":
        assert value["is_openai_client"] == [True, True]  # instructor's isinstance check holds
        assert value["sdk_create_untouched"] == [True, True]  # from_openai does not patch the registry client
        assert value["groq_pool_library"] == "httpx"
        assert value["cerebras_holds_registry_clients"] == [True, True]  # from_cerebras on the registry's clients
        # instructor's default mode forces a function call: the requests asked for one.
        assert {r.body["tool_choice"]["function"]["name"] for r in server.requests} == {"User"}


# ---- 100 models on one pool ------------------------------------------------------------------------


def many_expected(recipe: str, kind: str) -> list[Any]:
    if recipe == "instructor_recipe":
        return [f"user {i}" if kind == "sync" else f"auser {i}" for i in range(AGENTS)]
    return [f"echo: model {i}" if kind == "sync" else f"echo: async {i}" for i in range(AGENTS)]


@pytest.mark.parametrize("recipe", RECIPES)
def test_many_models_share_one_pool_and_a_few_connections(
    python: Path, server: FakeServer, tmp_path: Path, recipe: str
) -> None:
    report = run(python, recipe, "many", server, tmp_path)
    assert report["value"]["sync"] == many_expected(recipe, "sync")
    assert report["value"]["async"] == many_expected(recipe, "async")
    assert (report["live_clients"], report["live_transports"]) == (2 * AGENTS, 2)  # a sync and an async pool
    assert server.connections_opened <= 1 + CONCURRENCY  # a client per model would open 200
    keys = [f"key-{i}" for i in range(AGENTS)]
    assert sorted(r.credential or "" for r in server.requests) == sorted(keys * 2)  # sync and async


# ---- streaming -------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", RECIPES)
def test_streaming(python: Path, server: FakeServer, tmp_path: Path, recipe: str) -> None:
    value = run(python, recipe, "stream", server, tmp_path)["value"]
    if recipe == "instructor_recipe":  # create_partial: the object fills in as the call's arguments arrive
        assert value["sync"][-1] == user("streamed", 3)
        assert value["async"][-1] == user("astreamed", 4)
        assert len(value["sync"]) > 2
        assert len(value["async"]) > 2
    else:
        assert "".join(value["sync"]) == "echo: a b c"
        assert "".join(value["async"]) == "echo: x y"
        assert len([delta for delta in value["sync"] if delta]) == 4  # it arrived in pieces
    assert [r.body["stream"] for r in server.requests] == [True, True]


# ---- closing what the framework holds --------------------------------------------------------------


@pytest.mark.parametrize("recipe", RECIPES)
def test_closing_the_client_a_model_holds_breaks_no_other(
    python: Path, server: FakeServer, tmp_path: Path, recipe: str
) -> None:
    value = run(python, recipe, "close", server, tmp_path)["value"]
    said = ["before", "second", "first", "abefore", "asecond", "next loop"]
    if recipe == "instructor_recipe":
        assert value["names"] == said
    else:
        assert value["replies"] == [f"echo: {text}" for text in said]
    # The sync pool kept its connection through the close; each event loop had one.
    assert server.connections_opened == 3
    assert len(server.requests) == 6


# ---- what docs/integrations.md warns about LlamaIndex -----------------------------------------------


def test_llamaindex_given_one_client_builds_the_other_itself(python: Path, server: FakeServer, tmp_path: Path) -> None:
    value = run(python, "llamaindex_recipe", "one-client", server, tmp_path)["value"]
    assert value["own_async_is_registry_client"] is False
    assert value["own_async_key"] == "sk-from-the-environment"
    assert value["own_async_url"] == "https://api.openai.com/v1/"
    assert value["no_reuse_is_registry_client"] == [False, False]  # reuse_client=False ignores both
    assert value["no_reuse_new_each_time"] is True
    assert server.requests == []


# ---- the environment itself ------------------------------------------------------------------------


def test_without_the_environment_the_tests_skip_with_the_way_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"missing; make it with: python3 -m venv \.venv-compat"):
        pinned_python(tmp_path / "nothing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI=true"):
        pinned_python(tmp_path / "nothing")


def test_the_requirements_pin_the_sdks_below_the_main_environment() -> None:
    pinned = pins()
    assert int(pinned["openai"].split(".")[0]) < 3  # llama-index-llms-openai 0.8 requires openai<3
    assert int(pinned["groq"].split(".")[0]) < 1  # langchain-groq requires groq<1
    assert {"instructor", "llama-index-llms-openai", "llama-index-core", "langchain-groq"} <= set(pinned)
