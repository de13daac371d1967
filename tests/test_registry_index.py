"""The registry and its key index: recording, location, warm start, faults."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry import Registry, register_key_provider
from registry.credentials import unregister_key_provider
from registry.index import KeyIndex
from schemas import OpenAISettings, RegistrySettings, load_settings
from tests.fake_server import FakeServer
from tests.registry_helpers import chat, settings_for

ROOT = Path(__file__).resolve().parent.parent


def _settings_file(tmp_path: Path, server: FakeServer, extra: str = "") -> Path:
    path = tmp_path / "clientreg.toml"
    path.write_text(
        f"""
[profiles.fast]
provider = "groq"
base_url = "{server.url}"
api_key_env = "FAST_KEY"

[profiles.main]
provider = "openai"
base_url = "{server.url}/v1"
api_key_env = "MAIN_KEY"
{extra}
"""
    )
    return path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAST_KEY", "gsk-fast")
    monkeypatch.setenv("MAIN_KEY", "sk-main")


def test_handed_out_clients_are_recorded_with_uses_and_profiles(tmp_path: Path, server: FakeServer, keys: None) -> None:
    index = tmp_path / "audit.sqlite"
    settings = load_settings(_settings_file(tmp_path, server))
    with Registry(settings, index_path=index) as reg:
        for _ in range(3):
            reg.get_client("main")
        reg.get_client("fast")
        reg.get_client(settings.profiles["main"])  # the same config, asked for without a profile
    with KeyIndex(index, create=False) as read:
        main = read.get(settings.profiles["main"].config_hash)
        fast = read.get(settings.profiles["fast"].config_hash)
    assert main is not None and fast is not None
    assert main.uses == 4 and fast.uses == 1
    assert "main" in main.profiles and fast.profiles == ("fast",)
    assert main.config == settings.profiles["main"].canonical_dict()
    with KeyIndex(index, create=False) as read:
        kinds = [e.kind for e in read.events(main.config_hash)]
    assert kinds.count("built") == 1  # asked for under two names, built once


def test_index_location_follows_argument_env_settings_then_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIENTREG_INDEX", str(tmp_path / "from-env.sqlite"))
    assert Registry(index_path=tmp_path / "arg.sqlite").index_path == tmp_path / "arg.sqlite"
    assert Registry(RegistrySettings()).index_path == tmp_path / "from-env.sqlite"
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    assert Registry(RegistrySettings()).index_path is None
    monkeypatch.delenv("CLIENTREG_INDEX")
    configured = RegistrySettings(index={"path": str(tmp_path / "configured.sqlite")})
    assert Registry(configured).index_path == tmp_path / "configured.sqlite"
    assert Registry(RegistrySettings(index={"enabled": False})).index_path is None
    data_home = Path(str(tmp_path / "xdg-data"))
    assert Registry(RegistrySettings()).index_path == data_home / "clientreg" / "index.sqlite"


def test_index_off_writes_no_file(tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    with Registry(RegistrySettings()) as reg:
        chat(reg.get_client(settings_for("openai", server.url)))
    assert not list(tmp_path.rglob("*.sqlite*"))


def test_warm_builds_recent_profiles_so_the_first_call_is_a_hit(tmp_path: Path, server: FakeServer, keys: None) -> None:
    index = tmp_path / "index.sqlite"
    path = _settings_file(tmp_path, server)
    with Registry(load_settings(path), index_path=index) as first:
        first.get_client("fast")
        first.get_client("main")
    server.reset()
    with Registry(load_settings(path), index_path=index) as second:
        assert second.warm() == 2
        stats = second.stats()
        assert (stats.builds, stats.misses, stats.hits) == (2, 0, 0)
        second.get_client("fast")
        second.get_client("main")
        stats = second.stats()
        assert (stats.builds, stats.misses, stats.hits) == (2, 0, 2)
        assert second.warm() == 0  # already built
    assert server.requests == []  # warm start made no network request


def test_warm_start_runs_in_the_background(tmp_path: Path, server: FakeServer, keys: None) -> None:
    index = tmp_path / "index.sqlite"
    path = _settings_file(tmp_path, server)
    with Registry(load_settings(path), index_path=index) as first:
        first.get_client("main")
    with Registry(load_settings(path), index_path=index, warm_start=True) as second:
        deadline = time.monotonic() + 10
        while second.stats().live_clients < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        second.get_client("main")
        assert second.stats().hits == 1 and second.stats().misses == 0


def test_warm_skips_profiles_whose_key_no_longer_resolves(
    tmp_path: Path, server: FakeServer, keys: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    index = tmp_path / "index.sqlite"
    path = _settings_file(tmp_path, server)
    with Registry(load_settings(path), index_path=index) as first:
        first.get_client("fast")
        first.get_client("main")
    monkeypatch.delenv("MAIN_KEY")
    with caplog.at_level(logging.INFO, logger="clientreg"), Registry(load_settings(path), index_path=index) as reg:
        assert reg.warm() == 1
    assert any("'main'" in r.getMessage() and "key" in r.getMessage() for r in caplog.records)


def test_warm_builds_profiles_whose_credential_is_a_provider_or_an_azure_token(
    tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_key_provider("warm-vault", lambda: "sk-from-vault")
    register_key_provider("warm-entra", lambda: "entra-token")
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "ad-token-from-env")
    path = tmp_path / "clientreg.toml"
    path.write_text(
        f"""
[profiles.vault]
provider = "groq"
base_url = "{server.url}"
api_key_provider = "warm-vault"

[profiles.entra]
provider = "azure_openai"
azure_endpoint = "{server.url}"
api_version = "2024-10-21"
azure_ad_token_provider = "warm-entra"

[profiles.ad_token]
provider = "azure_openai"
azure_endpoint = "{server.url}"
api_version = "2024-10-21"
"""
    )
    index = tmp_path / "index.sqlite"
    try:
        with Registry(load_settings(path), index_path=index) as first:
            for name in ("vault", "entra", "ad_token"):
                first.get_client(name)
        server.reset()
        with Registry(load_settings(path), index_path=index) as second:
            assert second.warm() == 3  # none of them has an api_key, each has a credential
            assert server.requests == []  # no provider was asked, no request sent
            chat(second.get_client("vault"))
            chat(second.get_client("entra"))
            assert second.stats().misses == 0
        assert [r.credential for r in server.requests] == ["sk-from-vault", "entra-token"]
    finally:
        unregister_key_provider("warm-vault")
        unregister_key_provider("warm-entra")


def test_an_unusable_index_location_never_breaks_clients(
    tmp_path: Path, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the index's folder should be")
    with caplog.at_level(logging.WARNING), Registry(index_path=blocker / "index.sqlite") as reg:
        for i in range(5):
            assert chat(reg.get_client(settings_for("openai", server.url, key=f"k{i}"))) == "echo: hello"
        reg.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings  # one when it failed, one at close saying what was not written
    assert "cannot record to the key index" in warnings[0]
    assert "5 uses and 5 events were not written to the key index" in warnings[1]


def test_a_profile_whose_config_changed_records_drift(
    tmp_path: Path, server: FakeServer, keys: None, caplog: pytest.LogCaptureFixture
) -> None:
    index = tmp_path / "index.sqlite"
    with Registry(load_settings(_settings_file(tmp_path, server)), index_path=index) as reg:
        reg.get_client("main")
    changed = load_settings(_settings_file(tmp_path, server, extra="timeout = 12"))
    with caplog.at_level(logging.WARNING), Registry(changed, index_path=index) as reg:
        reg.get_client("main")
    with KeyIndex(index, create=False) as read:
        events = read.events(changed.profiles["main"].config_hash)
    assert [e.kind for e in events if e.kind == "drift"] == ["drift"]
    assert any("timeout" in r.getMessage() for r in caplog.records)


def test_secrets_never_reach_the_index_file(tmp_path: Path, server: FakeServer) -> None:
    index = tmp_path / "index.sqlite"
    secret_settings = OpenAISettings(
        api_key="sk-SECRET-123456",
        base_url=f"{server.url}/v1",
        default_headers={"X-Api-Key": "hdr-SECRET-999"},
        proxy="http://user:proxy-SECRET-pw@127.0.0.1:3128",
    )
    with Registry(index_path=index) as reg:
        reg.get_client(secret_settings)
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("index.sqlite*"))
    assert blob
    for secret in (b"sk-SECRET-123456", b"hdr-SECRET-999", b"proxy-SECRET-pw"):
        assert secret not in blob


def test_a_registry_without_settings_finds_the_index_in_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLIENTREG_INDEX")
    path = tmp_path / "clientreg.toml"
    path.write_text(f'[index]\npath = "{tmp_path / "team.sqlite"}"\n')
    monkeypatch.setenv("CLIENTREG_SETTINGS", str(path))
    assert Registry().index_path == tmp_path / "team.sqlite"
    path.write_text("[index]\nenabled = false\n")
    assert Registry().index_path is None


# ---- the settings file is never a trap, the index never blocks close or exit ----------------------

_GET_CLIENT = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, resource.RLIM_INFINITY))  # /dev/zero must not eat the host
from registry import Registry, register_key_provider
from registry.credentials import unregister_key_provider
from schemas import OpenAISettings
with Registry() as reg:
    reg.get_client(OpenAISettings(api_key="sk-x", base_url="http://127.0.0.1:9/v1"))
    print("index:", reg.index_path)
"""


def _run(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", ["fifo", "device", "nested", "not utf-8", "directory"])
def test_a_settings_object_needs_no_settings_file_whatever_is_at_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.delenv("CLIENTREG_INDEX")
    target = tmp_path / "settings"
    if kind == "fifo":
        os.mkfifo(target)  # opened for reading, it would wait for a writer for ever
    elif kind == "device":
        target = Path("/dev/zero")  # read to the end, it would fill memory
    elif kind == "nested":
        target.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    elif kind == "not utf-8":
        target.write_bytes(b"[index]\npath = '\xff\xfe'\n")
    else:
        target.mkdir()
    done = _run(_GET_CLIENT, {"CLIENTREG_SETTINGS": str(target), "XDG_DATA_HOME": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr
    assert f"index: {tmp_path / 'data' / 'clientreg' / 'index.sqlite'}" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if str(target) in line]
    assert len(warnings) == 1 and "the index is found without it" in warnings[0], done.stderr


def test_an_index_path_that_is_not_ours_leaves_it_alone_and_clients_are_handed_out(
    tmp_path: Path, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    places = tmp_path / "places.sqlite"
    with sqlite3.connect(places) as conn:
        conn.execute("CREATE TABLE moz_places (url TEXT)")
    conn.close()
    before = places.read_bytes()
    with caplog.at_level(logging.WARNING), Registry(index_path=places) as reg:
        for i in range(5):
            assert chat(reg.get_client(settings_for("openai", server.url, key=f"k{i}"))) == "echo: hello"
    assert places.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["places.sqlite"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "not recording to the key index" in warnings[0] and "moz_places" in warnings[0]


_LOCKED_EXIT = """
import logging, sys, time
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from registry import Registry, register_key_provider
from registry.credentials import unregister_key_provider
from schemas import OpenAISettings
registries = [Registry(index_path=sys.argv[1]) for _ in range(5)]
for n, reg in enumerate(registries):
    reg.get_client(OpenAISettings(api_key=f"sk-{n}", base_url="http://127.0.0.1:9/v1"))
time.sleep(0.5)  # every recorder is now waiting for the lock
print(f"end {time.monotonic()}", flush=True)
"""


def _hold_lock(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "conn.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def test_exit_waits_about_a_second_in_all_for_a_locked_index_and_says_what_was_lost(tmp_path: Path) -> None:
    index = tmp_path / "index.sqlite"
    KeyIndex(index).close()
    holder = _hold_lock(index)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LOCKED_EXIT, str(index)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        end = float(proc.stdout.readline().split()[1])
        _, err = proc.communicate(timeout=60)
        exited = time.monotonic()
    finally:
        holder.communicate("", timeout=30)
    assert proc.returncode == 0, err
    # One shared deadline of one second for five recorders (it was three seconds each, 15 s):
    # the bound is generous for a loaded machine, and far below what one wait per registry costs.
    assert exited - end < 4.0, exited - end
    lost = [line for line in err.splitlines() if "were not written to the key index" in line]
    assert len(lost) == 5 and all("1 uses and 1 events" in line and "locked" in line for line in lost), err


def test_closing_many_registries_on_a_locked_index_waits_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = tmp_path / "index.sqlite"
    KeyIndex(index).close()
    holder = _hold_lock(index)
    try:
        registries = [Registry(index_path=index) for _ in range(5)]
        for n, reg in enumerate(registries):
            reg.get_client(OpenAISettings(api_key=f"sk-{n}", base_url="http://127.0.0.1:9/v1"))
        started = time.monotonic()
        for reg in registries:
            reg.close()
        elapsed = time.monotonic() - started
        for reg in registries:  # a close that did not wait leaves its thread to give up and count
            recorder = reg._recorder
            assert recorder is not None
            deadline = time.monotonic() + 30
            while recorder.stats().dropped_uses == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            stats = recorder.stats()
            assert (stats.dropped_uses, stats.dropped_events, stats.recording) == (1, 1, False)
    finally:
        holder.communicate("", timeout=30)
    assert elapsed < 4.0, elapsed  # about one second for the first close, the others do not wait
    lost = [r.getMessage() for r in caplog.records if "were not written to the key index" in r.getMessage()]
    assert len(lost) == 5
