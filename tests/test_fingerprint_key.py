"""The fingerprint key: where it comes from, how its file is made, and that processes agree."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from schemas import OpenAISettings, fingerprint, fingerprint_key_id
from schemas._fingerprint import DEFAULT_KEY, KEY_FILENAME, _Key, find_key, reset_fingerprint_key

REPO = Path(__file__).resolve().parents[1]
POSIX = hasattr(os, "getuid")

# A fresh process: which key it uses, the hash of a settings object full of secrets, and
# how many warnings it logged on the way.
_CHILD = r"""
import json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="WARNING %(name)s %(message)s")
from schemas import OpenAISettings, fingerprint_key_id
from schemas._fingerprint import fingerprint_key_source
s = OpenAISettings(api_key="sk-child-key", proxy="http://u:p@proxy.local:3128", default_headers={"X-Auth": "t"})
first = s.config_hash
again = OpenAISettings(api_key="sk-child-key-2").config_hash  # a second fingerprint: no second warning
json.dump({"id": fingerprint_key_id(), "source": fingerprint_key_source(), "hash": first}, sys.stdout)
"""


def _child(data_home: Path, key: str | None = None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTREG_")}
    env["XDG_DATA_HOME"] = str(data_home)
    if key is not None:
        env["CLIENTREG_FINGERPRINT_KEY"] = key
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    result["warnings"] = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    return result


def _key_file(data_home: Path) -> Path:
    return data_home / "clientreg" / KEY_FILENAME


@pytest.fixture
def fresh_key() -> Any:
    """Let a test load keys in this process; put the suite's key back afterwards."""
    reset_fingerprint_key()
    yield
    reset_fingerprint_key()


# ---- the key file ------------------------------------------------------------------------------


def test_key_file_is_made_once_private_and_reused_by_later_processes(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    first = _child(data_home)
    key_file = _key_file(data_home)
    assert first["source"] == "file" and first["warnings"] == []
    text = key_file.read_text()
    assert len(text.strip()) == 64 and int(text, 16) >= 0 and text.endswith("\n")
    if POSIX:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    second = _child(data_home)
    assert second == first  # same key id, same hash
    assert key_file.read_text() == text  # not made again
    # The id names that key, and copying the file's text into the variable gives the same hashes.
    assert first["id"] == _Key(text.strip(), "file").id
    assert _child(tmp_path / "elsewhere", key=text)["hash"] == first["hash"]


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTREG_")}
    env["XDG_DATA_HOME"] = str(data_home)
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    results = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    assert len({(r["id"], r["hash"]) for r in results}) == 1
    assert {r["source"] for r in results} == {"file"}


def test_different_users_data_dirs_give_different_keys(tmp_path: Path) -> None:
    one, two = _child(tmp_path / "one"), _child(tmp_path / "two")
    assert one["id"] != two["id"] and one["hash"] != two["hash"]


@pytest.mark.skipif(not POSIX, reason="symbolic links need privileges on Windows")
def test_a_planted_dangling_link_is_not_followed(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    (data_home / "clientreg").mkdir(parents=True, mode=0o700)
    target = tmp_path / "victim" / "created-by-clientreg"
    target.parent.mkdir()
    _key_file(data_home).symlink_to(target)
    result = _child(data_home)
    assert not target.exists()  # nothing was created through the link
    assert result["source"] == "default"
    assert len(result["warnings"]) == 1 and "symbolic link" in result["warnings"][0]
    assert "CLIENTREG_FINGERPRINT_KEY" in result["warnings"][0]


@pytest.mark.skipif(not POSIX, reason="symbolic links need privileges on Windows")
def test_a_link_to_another_file_is_neither_read_nor_written(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    (data_home / "clientreg").mkdir(parents=True, mode=0o700)
    other = tmp_path / "someone-elses-key"
    other.write_text("a key chosen by whoever planted the link\n")
    _key_file(data_home).symlink_to(other)
    result = _child(data_home)
    assert result["source"] == "default"
    assert result["id"] != _Key("a key chosen by whoever planted the link", "file").id
    assert other.read_text() == "a key chosen by whoever planted the link\n"


@pytest.mark.skipif(not POSIX or os.geteuid() != 0, reason="needs root to make a file owned by another user")
def test_a_key_file_or_directory_of_another_user_is_not_used(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    key_file = _key_file(data_home)
    key_file.parent.mkdir(parents=True, mode=0o700)
    key_file.write_text("f" * 64 + "\n")
    os.chmod(key_file, 0o600)
    os.chown(key_file, 65534, 65534)
    result = _child(data_home)
    assert result["source"] == "default" and "another user" in result["warnings"][0]
    os.chown(key_file, 0, 0)
    os.chown(key_file.parent, 65534, 65534)
    result = _child(data_home)
    assert result["source"] == "default" and "another user" in result["warnings"][0]


def test_a_widely_readable_key_file_is_used_with_a_warning(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    first = _child(data_home)
    os.chmod(_key_file(data_home), 0o644)
    second = _child(data_home)
    assert second["id"] == first["id"]
    if POSIX:
        assert any("chmod 600" in w for w in second["warnings"])


@pytest.mark.parametrize("content", ["", "\n", "short\n"])
def test_an_empty_or_short_key_file_is_not_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str, fresh_key: None
) -> None:
    directory = tmp_path / "clientreg"
    directory.mkdir(mode=0o700)
    (directory / KEY_FILENAME).write_text(content)
    os.chmod(directory / KEY_FILENAME, 0o600)
    hour_ago = time.time() - 3600  # not a file another process is writing right now
    os.utime(directory / KEY_FILENAME, (hour_ago, hour_ago))
    monkeypatch.delenv("CLIENTREG_FINGERPRINT_KEY")
    assert find_key(directory) == (DEFAULT_KEY, "default")


def test_threads_of_a_fresh_process_agree_on_one_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_key: None
) -> None:
    monkeypatch.delenv("CLIENTREG_FINGERPRINT_KEY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def first_fingerprint() -> None:
        barrier.wait(timeout=30)
        ids.append(fingerprint_key_id())

    threads = [threading.Thread(target=first_fingerprint) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 8 and len(set(ids)) == 1
    assert ids[0] == _Key(_key_file(tmp_path / "data").read_text().strip(), "file").id


# ---- no usable data directory, and the variable --------------------------------------------------


def test_without_a_usable_data_dir_processes_still_agree(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "data"
    not_a_directory.write_text("a file where the data directory should be")
    one, two = _child(not_a_directory), _child(not_a_directory)
    assert one["source"] == two["source"] == "default"
    assert one["hash"] == two["hash"] and one["id"] == two["id"] == _Key(DEFAULT_KEY, "default").id
    assert len(one["warnings"]) == 1  # one warning per process, however many fingerprints
    assert "not keyed" in one["warnings"][0] and "CLIENTREG_FINGERPRINT_KEY" in one["warnings"][0]
    # The default key is public: setting it by hand gives the same hashes.
    assert _child(tmp_path / "fresh", key=DEFAULT_KEY)["hash"] == one["hash"]


def test_processes_with_one_key_agree_and_with_two_keys_differ(tmp_path: Path) -> None:
    a1 = _child(tmp_path / "host-1", key="fleet-key-0123456789abcdef")
    a2 = _child(tmp_path / "host-2", key="  fleet-key-0123456789abcdef\n")  # whitespace is ignored
    b = _child(tmp_path / "host-1", key="other-fleet-key-0123456789")
    assert a1 == a2 and a1["source"] == "environment"
    assert b["hash"] != a1["hash"] and b["id"] != a1["id"]
    assert not _key_file(tmp_path / "host-1").exists()  # the variable wins: no file is made


def test_a_short_key_is_used_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fresh_key: None
) -> None:
    monkeypatch.setenv("CLIENTREG_FINGERPRINT_KEY", "short")
    with caplog.at_level(logging.WARNING, logger="clientreg.fingerprint"):
        assert fingerprint_key_id() == _Key("short", "environment").id
    assert "shorter than 16" in caplog.text


def test_the_key_changes_fingerprints_and_hashes(monkeypatch: pytest.MonkeyPatch, fresh_key: None) -> None:
    s = OpenAISettings(api_key="sk-same")
    before = (fingerprint("sk-same"), s.config_hash)
    monkeypatch.setenv("CLIENTREG_FINGERPRINT_KEY", "another-deployment-key-0001")
    reset_fingerprint_key()
    after = (fingerprint("sk-same"), OpenAISettings(api_key="sk-same").config_hash)
    assert after[0] != before[0] and after[1] != before[1]
