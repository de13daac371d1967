"""The CLI on hostile, foreign, locked, read-only and tampered index files, through the real console script."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from registry.index import ConfigUse, KeyIndex
from schemas import GroqSettings, OpenAISettings
from tests.cli_helpers import CLIENTREG, Seeded, clientreg, seed_index

READ_COMMANDS = [["history"], ["history", "--json"], ["show", "abcd0"], ["diff", "abcd0", "abcd9"], ["export"]]


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return seed_index(tmp_path / "seeded.sqlite", time.time())


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_read_commands_never_touch_another_programs_database(tmp_path: Path) -> None:
    folder = tmp_path / "profile"
    folder.mkdir()
    places = folder / "places.sqlite"
    conn = sqlite3.connect(places)
    conn.execute("PRAGMA journal_mode=WAL")  # as Firefox keeps it
    conn.execute("CREATE TABLE moz_places (url TEXT)")
    conn.execute("INSERT INTO moz_places VALUES ('https://example.com')")
    conn.commit()
    conn.close()
    before = _listing(folder)
    for args in [*READ_COMMANDS, ["prune", "--older-than", "1d"]]:
        result = clientreg(*args, "--index", places, cwd=tmp_path)
        assert result.code == 1 and result.out == "", args
        assert "another program's SQLite database (tables: moz_places); clientreg leaves it as it is" in result.err
        assert _listing(folder) == before, args  # not moved, not written, no -wal or -shm left behind


def test_read_commands_on_a_clientreg_index_leave_every_file_as_it_was(tmp_path: Path, seeded: Seeded) -> None:
    before = _listing(seeded.path.parent)
    for args in READ_COMMANDS:
        assert clientreg(*args, "--index", seeded.path, cwd=tmp_path).code == 0, args
    assert _listing(seeded.path.parent) == before


def test_reads_go_on_while_a_writer_holds_the_lock(tmp_path: Path, seeded: Seeded) -> None:
    holding, done = threading.Event(), threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(seeded.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
        holding.set()
        done.wait(120)  # held until every read below is over: a read that waited would never end
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(30)
    try:
        for args in READ_COMMANDS:
            result = clientreg(*args, "--index", seeded.path, cwd=tmp_path)
            assert result.code == 0, (args, result.err)
    finally:
        done.set()
        thread.join(30)


def _can_mount_read_only() -> str | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare(1) and mount(8) to make a read-only medium"
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30)
    return None if probe.returncode == 0 else "cannot make a mount namespace here (unshare -rm)"


def test_read_commands_work_on_a_read_only_medium(tmp_path: Path, seeded: Seeded) -> None:
    reason = _can_mount_read_only()
    if reason is not None:
        pytest.skip(reason)
    medium = seeded.path.parent
    before = _listing(medium)
    script = (
        f'mount --bind "{medium}" "{medium}" && mount -o remount,ro,bind "{medium}" "{medium}" && '
        f'touch "{medium}/probe" 2>/dev/null && echo writable; '
        f'"{CLIENTREG}" history --index "{seeded.path}" && "{CLIENTREG}" export --index "{seeded.path}"'
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "writable" not in done.stdout  # the medium really was read-only
    assert seeded.hashes["slow"][:12] in done.stdout and "Traceback" not in done.stderr
    assert _listing(medium) == before


def _tamper(path: Path, key: str, value: object) -> None:
    conn = sqlite3.connect(path)
    conn.execute("INSERT OR REPLACE INTO configs (key, value) VALUES (?, ?)", (key, value))
    conn.commit()
    conn.close()


def test_a_tampered_row_is_skipped_and_reported_by_every_read_command(tmp_path: Path, seeded: Seeded) -> None:
    bad = seeded.hashes["twin_a"]
    _tamper(seeded.path, bad, sqlite3.Binary(b'{"provider":"\xff\xfe"}'))
    for args in [["history"], ["history", "--json"], ["export"]]:
        result = clientreg(*args, "--index", seeded.path, cwd=tmp_path)
        assert result.code == 0, (args, result.err)
        assert f"skipped a row of the key index {seeded.path} that is not a record: configs['{bad}']" in result.err
        assert bad[:12] not in result.out and seeded.hashes["twin_b"][:12] in result.out
    assert clientreg("show", "abcd9", "--index", seeded.path, cwd=tmp_path).code == 0
    shown = clientreg("show", bad[:8], "--index", seeded.path, cwd=tmp_path)
    assert shown.code == 1 and "unexpected error" not in shown.err
    assert f"no config in {seeded.path} has a hash starting with" in shown.err


def test_control_characters_in_names_are_shown_escaped_never_sent_to_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\u202eevil\nsecond"
    s, other = OpenAISettings(api_key="sk-esc"), GroqSettings(api_key="gsk-esc")
    with KeyIndex(path) as index:
        index.apply([ConfigUse(s.config_hash, "openai", s.canonical_dict(), evil, 10.0, 2, "built", host=evil)])
        index.apply([ConfigUse(other.config_hash, "groq", other.canonical_dict(), evil, 20.0, 1, "built")])
    outputs = [
        clientreg("history", "--index", path, cwd=tmp_path),
        clientreg("history", "--index", path, "--json", cwd=tmp_path),
        clientreg("show", s.config_hash[:8], "--index", path, cwd=tmp_path),
        clientreg("show", s.config_hash[:8], "--index", path, "--json", cwd=tmp_path),
        clientreg("diff", s.config_hash[:8], other.config_hash[:8], "--index", path, cwd=tmp_path),
        clientreg("prune", "--older-than", "1d", "--dry-run", "--index", path, cwd=tmp_path),
        clientreg("export", "--index", path, cwd=tmp_path),
        clientreg("show", "\x1b[2J" + "abcd", "--index", path, cwd=tmp_path),
    ]
    for result in outputs:
        for stream in (result.out, result.err):
            assert not any(c in stream for c in "\x1b\x07\u202e"), stream
    table = outputs[0].out
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred\\u202eevil\\x0asecond" in table
    assert len(table.splitlines()) == 3  # a newline in a name does not make a row
    assert json.loads(outputs[1].out)[0]["profiles"] == [evil]  # JSON keeps the name exactly, escaped
    assert json.loads(outputs[3].out)[0]["events"][0]["host"] == evil


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "--older-than", "9" * 400 + "d"], "longer than 100 years"),
        (["prune", "--older-than", "36501d"], "longer than 100 years"),
        (["history", "--since", "99999999999999999999d"], "longer than 100 years"),
        (["history", "--limit", "1e23"], "'1e23' is not a positive whole number"),
        (["history", "--limit", "100000000000000000000000"], "is more than 1,000,000,000"),
    ],
)
def test_durations_and_limits_are_checked_before_anything_is_done(
    tmp_path: Path, seeded: Seeded, args: list[str], message: str
) -> None:
    before = _listing(seeded.path.parent)
    result = clientreg(*args, "--json", "--index", seeded.path, cwd=tmp_path)
    assert result.code == 2 and message in result.err and result.out == ""
    assert "unexpected error" not in result.err
    assert _listing(seeded.path.parent) == before


def test_the_longest_durations_and_limits_work(tmp_path: Path, seeded: Seeded) -> None:
    pruned = clientreg("prune", "--older-than", "36500d", "--index", seeded.path, "--json", cwd=tmp_path)
    assert pruned.code == 0 and pruned.json()["configs"] == [], pruned.err
    listed = clientreg("history", "--limit", "1000000000", "--json", "--index", seeded.path, cwd=tmp_path)
    assert listed.code == 0 and len(listed.json()) == 5


def _verify(config: object, config_hash: str) -> None:
    """docs/config-hash.md's recipe: the config as exported, serialised compactly, hashes to its hash."""
    text = json.dumps(config, separators=(",", ":"))
    assert hashlib.sha256(text.encode("ascii")).hexdigest() == config_hash


def test_every_record_verifies_as_stored_and_as_exported(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    configs = [
        OpenAISettings(api_key="sk-v1", timeout=12.5, default_headers={"X-B": "2", "X-A": "1"}),
        OpenAISettings(api_key="sk-v2", proxy="http://u:p@proxy:3128", default_query={"z": "1", "a": "2"}),
        GroqSettings(api_key="gsk-v3", keepalive_expiry=1e-05, max_retries=0),
    ]
    with KeyIndex(path) as index:
        index.apply([ConfigUse(s.config_hash, s.provider, s.canonical_dict(), None, 1.0, 1, "built") for s in configs])
    exported = [json.loads(line) for line in clientreg("export", "--index", path, cwd=tmp_path).out.splitlines()]
    history = clientreg("history", "--json", "--index", path, cwd=tmp_path).json()
    shown = [clientreg("show", s.config_hash, "--json", "--index", path, cwd=tmp_path).json()[0] for s in configs]
    for records in (exported, history, shown):
        assert len(records) == 3
        for record in records:
            _verify(record["config"], record["config_hash"])
    conn = sqlite3.connect(path)
    stored = conn.execute("SELECT key, json_extract(value, '$.config') FROM configs").fetchall()
    conn.close()
    for key, text in stored:
        assert hashlib.sha256(text.encode("ascii")).hexdigest() == key


def test_prune_also_trims_old_events_of_configs_still_in_use(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    s, now = OpenAISettings(api_key="sk-p"), time.time()
    with KeyIndex(path) as index:
        index.apply([ConfigUse(s.config_hash, "openai", s.canonical_dict(), "fast", now - 60 * 86400, 1, "built")])
        index.apply([ConfigUse(s.config_hash, "openai", s.canonical_dict(), "fast", now - 3600, 1, "built")])
    dry = clientreg("prune", "--older-than", "30d", "--dry-run", "--index", path, cwd=tmp_path)
    assert (
        dry.code == 0
        and "would remove 0 configs" in dry.out
        and "and 2 older events of configs still in use" in dry.out
    )
    real = clientreg("prune", "--older-than", "30d", "--json", "--index", path, cwd=tmp_path)
    assert real.code == 0 and real.json()["events"] == 2 and real.json()["configs"] == []
    with KeyIndex(path, read_only=True) as index:
        assert [e.kind for e in index.events(s.config_hash)] == ["built"]
        record = index.get(s.config_hash)
        assert record is not None and record.uses == 2


def test_history_json_on_many_configs_is_the_stored_rows(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    template = OpenAISettings(api_key="sk-t").canonical_dict()
    uses = []
    for n in range(2000):
        config = {**template, "api_key": f"sha256:{n:016x}"}
        text = json.dumps(config, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()
        uses.append(ConfigUse(digest, "openai", config, f"p{n % 7}", float(n), n, "built"))
    with KeyIndex(path) as index:
        index.apply(uses)
        expected = [r.to_dict() for r in index.list_configs(profile="p3", limit=100)]
    result = clientreg("history", "--json", "--profile", "p3", "--limit", "100", "--index", path, cwd=tmp_path)
    assert result.code == 0 and result.json() == expected
    for record in result.json():
        _verify(record["config"], record["config_hash"])


def test_the_settings_file_for_index_reads_is_only_read_when_it_is_a_regular_file(
    tmp_path: Path, seeded: Seeded
) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs os.mkfifo")
    fifo = tmp_path / "settings.fifo"
    os.mkfifo(fifo)
    env = {"CLIENTREG_SETTINGS": str(fifo), "CLIENTREG_INDEX": str(seeded.path)}
    result = clientreg("history", cwd=tmp_path, env=env)  # never blocks on the FIFO (timeout 60 s in the helper)
    assert result.code == 0 and seeded.hashes["slow"][:12] in result.out
