"""The wrappers' memo: a repeated call skips the settings model, and is never wrong for it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import registry
import registry._default
from registry import Registry, get_client, get_groq_client, get_openai_client
from registry import wrappers as wrappers_module
from registry.index import KeyIndex
from schemas import GroqSettings, OpenAISettings, SettingsError
from tests.fake_server import FakeServer
from tests.registry_helpers import chat


@pytest.fixture(autouse=True)
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    registry.default_registry().close()
    for wrapper in (wrappers_module._OPENAI, wrappers_module._GROQ):
        wrapper.memo.clear()
    yield
    registry.default_registry().close()


@pytest.fixture
def slow_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The calls get_openai_client answered by building settings (memo misses)."""
    calls: list[dict[str, Any]] = []
    wrapper = wrappers_module._OPENAI
    real = wrapper.settings

    def counting(kwargs: dict[str, Any]) -> Any:
        calls.append(dict(kwargs))
        return real(kwargs)

    monkeypatch.setattr(wrapper, "settings", counting)
    return calls


def test_a_repeated_call_is_a_memo_hit(server: FakeServer, slow_calls: list[dict[str, Any]]) -> None:
    kwargs = {"api_key": "sk-m", "base_url": f"{server.url}/v1", "timeout": 20, "default_headers": {"X-A": "1"}}
    first = get_openai_client(**kwargs)
    for _ in range(5):
        assert get_openai_client(**kwargs) is first
    assert len(slow_calls) == 1
    assert registry.default_registry().stats().hits == 5  # hits still count


def test_equal_header_dicts_in_another_order_hit(server: FakeServer, slow_calls: list[dict[str, Any]]) -> None:
    url = f"{server.url}/v1"
    first = get_openai_client(api_key="k", base_url=url, default_headers={"X-A": "1", "X-B": "2"})
    assert get_openai_client(api_key="k", base_url=url, default_headers={"X-B": "2", "X-A": "1"}) is first
    assert len(slow_calls) == 1


def test_changing_a_dict_after_the_call_does_not_change_the_memo(server: FakeServer) -> None:
    headers = {"X-Team": "a"}
    first = get_openai_client(api_key="k", base_url=f"{server.url}/v1", default_headers=headers)
    headers["X-Team"] = "b"
    second = get_openai_client(api_key="k", base_url=f"{server.url}/v1", default_headers=headers)
    assert second is not first
    chat(second)
    assert server.requests[-1].headers["x-team"] == "b"


def test_values_that_compare_equal_but_differ_are_not_confused(server: FakeServer) -> None:
    url = f"{server.url}/v1"
    one = get_openai_client(api_key="k", base_url=url, max_retries=1)
    assert get_openai_client(api_key="k", base_url=url, max_retries=1.0) is one  # the same number of retries
    with pytest.raises(SettingsError, match="max_retries"):
        get_openai_client(api_key="k", base_url=url, max_retries=True)  # True == 1, but not a number
    get_openai_client(api_key="k", base_url=url, timeout=1)
    with pytest.raises(SettingsError, match="timeout"):
        get_openai_client(api_key="k", base_url=url, timeout=True)
    # {"n": 1} == {"n": True}, but they are sent as n=1 and n=true.
    numeric = get_openai_client(api_key="k", base_url=url, default_query={"n": 1})
    boolean = get_openai_client(api_key="k", base_url=url, default_query={"n": True})
    assert numeric is not boolean
    chat(numeric)
    chat(boolean)
    assert [r.query["n"] for r in server.requests] == ["1", "true"]


def test_a_changed_environment_variable_gives_the_new_client(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{server.url}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-1")
    first = get_openai_client(base_url=url)
    assert get_openai_client(base_url=url) is first
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-2")  # rotated in the environment
    second = get_openai_client(base_url=url)
    assert second is not first
    chat(second)
    assert server.requests[-1].credential == "sk-env-2"
    monkeypatch.setenv("OPENAI_ORG_ID", "org-later")  # a variable for a field left unset
    assert get_openai_client(base_url=url).organization == "org-later"
    monkeypatch.delenv("OPENAI_ORG_ID")
    assert get_openai_client(base_url=url) is second
    # A variable named by api_key_env is watched as well.
    monkeypatch.setenv("TEAM_KEY", "team-1")
    named = get_groq_client(api_key_env="TEAM_KEY", base_url=server.url)
    monkeypatch.setenv("TEAM_KEY", "team-2")
    renamed = get_groq_client(api_key_env="TEAM_KEY", base_url=server.url)
    assert renamed is not named
    chat(renamed)
    assert server.requests[-1].credential == "team-2"


def test_a_given_field_does_not_watch_its_variable(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, slow_calls: list[dict[str, Any]]
) -> None:
    kwargs = {"api_key": "sk-given", "base_url": f"{server.url}/v1"}
    first = get_openai_client(**kwargs)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert get_openai_client(**kwargs) is first
    assert len(slow_calls) == 1


def test_the_memo_is_bounded_and_keyed_by_no_string(server: FakeServer) -> None:
    for i in range(1500):
        get_openai_client(api_key=f"sk-tenant-{i:04d}", base_url=f"{server.url}/v1")
    memo = wrappers_module._OPENAI.memo
    assert sum(len(bucket) for bucket in memo.values()) <= 1024
    assert all(type(key) is int for key in memo)  # hash() of the arguments: no key or URL text


def test_a_closed_or_replaced_default_registry_is_never_used(server: FakeServer) -> None:
    kwargs = {"api_key": "sk-c", "base_url": f"{server.url}/v1"}
    first = get_openai_client(**kwargs)
    registry.default_registry().close()
    second = get_openai_client(**kwargs)
    assert second is not first
    assert chat(second) == "echo: hello"
    assert get_client(OpenAISettings(**kwargs)) is second  # the new default registry's client


def test_an_evicted_client_is_replaced(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    small = Registry(max_clients=1, index_path="off")
    monkeypatch.setattr(registry._default, "_default", small)
    try:
        a = get_groq_client(api_key="a", base_url=server.url)
        b = get_groq_client(api_key="b", base_url=server.url)  # evicts a
        assert small.stats().evictions == 1
        a_again = get_groq_client(api_key="a", base_url=server.url)
        assert a_again is not a and a_again is small.get_client(GroqSettings(api_key="a", base_url=server.url))
        assert chat(a_again) == chat(b) == "echo: hello"
    finally:
        small.close()


def test_threads_get_the_client_of_their_arguments(server: FakeServer) -> None:
    configs = [{"api_key": f"sk-{i}", "base_url": f"{server.url}/v1", "max_retries": i % 3} for i in range(20)]
    expected = [get_client(OpenAISettings(**c)) for c in configs]  # type: ignore[arg-type]
    barrier = threading.Barrier(8)
    wrong: list[int] = []

    def work(offset: int) -> None:
        barrier.wait(timeout=30)
        for round_ in range(50):
            i = (offset + round_) % len(configs)
            if get_openai_client(**configs[i]) is not expected[i]:
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert wrong == []


def test_a_memo_hit_is_a_registry_hit_in_every_respect(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, slow_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    # A memo hit takes the client from the registry's table itself: it must count the hit, the
    # use in the index, the least-recently-used order and the time of the hand-out, as
    # get_client does.
    index = tmp_path / "memo.sqlite"
    small = Registry(max_clients=2, index_path=index)
    monkeypatch.setattr(registry._default, "_default", small)
    url = f"{server.url}/v1"
    try:
        a = get_openai_client(api_key="sk-a", base_url=url)
        get_openai_client(api_key="sk-b", base_url=url)
        time.sleep(1.0)
        assert get_openai_client(api_key="sk-a", base_url=url) is a  # a memo hit
        assert len(slow_calls) == 2
        stats = small.stats()
        assert (stats.hits, stats.misses, stats.builds) == (1, 2, 2)
        assert small.prune(older_than=0.5) == 1  # b only: a was handed out after the pause
        assert small.stats().live_clients == 1
        get_openai_client(api_key="sk-b", base_url=url)  # rebuilt
        get_openai_client(api_key="sk-a", base_url=url)  # a memo hit: a is now the most recent
        get_openai_client(api_key="sk-c", base_url=url)  # evicts the least recent: b, not a
        assert get_openai_client(api_key="sk-a", base_url=url) is a
        assert small.stats().evictions == 2  # b pruned, b evicted
        small.close()
        with KeyIndex(index, create=False) as read:
            record = read.get(OpenAISettings(api_key="sk-a", base_url=url).config_hash)
        assert record is not None and record.uses == 4  # every hand-out of a, three of them memo hits
    finally:
        small.close()


def test_a_memo_hit_after_fork_uses_the_childs_registry(server: FakeServer) -> None:
    kwargs = {"api_key": "sk-fork", "base_url": f"{server.url}/v1"}
    parent_client = get_openai_client(**kwargs)
    get_openai_client(**kwargs)  # memoised
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its registry starts empty, so the memo must not hand out the parent's client
        try:
            child_client = get_openai_client(**kwargs)
            ok = child_client is not parent_client and chat(child_client) == "echo: hello"
            ok = ok and get_openai_client(**kwargs) is child_client
            os.write(write, b"ok" if ok else b"wrong")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert get_openai_client(**kwargs) is parent_client


def test_memo_hits_racing_the_default_registrys_close(server: FakeServer) -> None:
    # Threads take clients through the memo while the default registry is closed and replaced
    # under them: no call fails, and each lands on the registry live at the end.
    kwargs = {"api_key": "sk-race", "base_url": f"{server.url}/v1"}
    get_openai_client(**kwargs)
    stop = threading.Event()
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)

    def hammer() -> None:
        barrier.wait(timeout=30)
        while not stop.is_set():
            try:
                get_openai_client(**kwargs)
            except BaseException as exc:  # anything escaping the hit path is the bug
                errors.append(exc)
                return

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    for _ in range(50):
        registry.default_registry().close()
        get_openai_client(**kwargs)  # makes the next default registry
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    live = registry.default_registry()
    client = get_openai_client(**kwargs)
    assert client is live.get_client(OpenAISettings(**kwargs))
    assert chat(client) == "echo: hello"
