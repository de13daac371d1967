"""The index file is never a way to write elsewhere, never displaces data, and survives a tampered row.

Real files, links and databases; as root and as any other user (root ignores permission bits,
so "another user's file" is made with chown when the tests run as root).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from registry.index import (
    ConfigUse,
    IndexMissingError,
    IndexRefusedError,
    IndexUnavailableError,
    KeyIndex,
    NewEvent,
    SQLiteIndex,
)
from schemas import AzureOpenAISettings, GroqSettings, OpenAISettings, ProviderSettings


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "index.sqlite"


def _use(settings: ProviderSettings, profile: str | None = "fast", *, at: float = 1000.0, uses: int = 1) -> ConfigUse:
    return ConfigUse(settings.config_hash, settings.provider, settings.canonical_dict(), profile, at, uses, "built")


def _someone_elses_file(tmp_path: Path) -> Path:
    """A readable regular file that belongs to another user."""
    if os.geteuid() == 0:
        other = tmp_path / "someone-elses.txt"
        other.write_text("their notes\n")
        os.chown(other, 65534, 65534)  # nobody
        other.chmod(0o644)
        return other
    for candidate in (Path("/etc/hostname"), Path("/etc/passwd")):
        if candidate.exists() and candidate.stat().st_uid != os.geteuid():
            return candidate
    pytest.skip("no readable file of another user found")


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---- creation never follows a link, never writes another user's file ---------------------------


def test_a_dangling_link_is_never_followed_to_create_a_file(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    elsewhere = tmp_path / "elsewhere" / "planted.sqlite"
    elsewhere.parent.mkdir()
    (shared / "index.sqlite").symlink_to(elsewhere)
    with pytest.raises(IndexRefusedError, match="symbolic link to a missing file"):
        KeyIndex(shared / "index.sqlite")
    assert not elsewhere.exists()
    assert list(elsewhere.parent.iterdir()) == []


def test_a_link_to_another_users_file_is_refused_and_the_file_left_as_it_was(tmp_path: Path) -> None:
    theirs = _someone_elses_file(tmp_path)
    before = theirs.read_bytes()
    link = tmp_path / "index.sqlite"
    link.symlink_to(theirs)
    for target in (link, theirs):
        with pytest.raises(IndexRefusedError, match=r"belongs to another user \(uid \d+\)"):
            KeyIndex(target)
    assert theirs.read_bytes() == before
    assert not Path(f"{theirs}-wal").exists() and not Path(f"{link}-wal").exists()


def test_a_file_others_can_write_is_refused_with_the_fix(path: Path) -> None:
    KeyIndex(path).close()
    for mode in (0o664, 0o646):
        path.chmod(mode)
        with pytest.raises(IndexRefusedError, match=rf"writable by group or others \(mode {mode:04o}\).*chmod 600"):
            KeyIndex(path)
    path.chmod(0o600)
    KeyIndex(path).close()


def test_a_link_to_my_own_index_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real" / "index.sqlite"
    KeyIndex(real).close()
    link = tmp_path / "index.sqlite"
    link.symlink_to(real)
    s = OpenAISettings(api_key="sk-own")
    with KeyIndex(link) as index:
        index.apply([_use(s)])
    with KeyIndex(real, read_only=True) as index:
        assert index.get(s.config_hash) is not None


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_link_planted_beside_the_index_is_refused(tmp_path: Path, path: Path, suffix: str) -> None:
    KeyIndex(path).close()
    target = tmp_path / "target"
    Path(f"{path}{suffix}").symlink_to(target)
    with pytest.raises(IndexRefusedError, match=f"{suffix} is a symbolic link"):
        KeyIndex(path)
    assert not target.exists()


def test_a_new_index_is_created_exclusively_with_mode_0600(path: Path) -> None:
    with KeyIndex(path) as index:
        index.apply([_use(OpenAISettings(api_key="sk-a"))])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x636C7267
    conn.close()


# ---- readers never create, move, write or wait ---------------------------------------------------


def test_a_reader_never_creates_a_file_or_a_folder(path: Path) -> None:
    with pytest.raises(IndexMissingError):
        KeyIndex(path, read_only=True)
    assert not path.parent.exists()
    path.parent.mkdir()
    path.touch()
    with pytest.raises(IndexMissingError, match="empty"):
        KeyIndex(path, read_only=True)
    assert _listing(path.parent) == {"index.sqlite": b""}


def test_a_reader_leaves_every_byte_as_it_was(path: Path) -> None:
    s = OpenAISettings(api_key="sk-a")
    with KeyIndex(path) as index:
        index.apply([_use(s)])
    before = _listing(path.parent)
    with KeyIndex(path, read_only=True) as index:
        assert index.get(s.config_hash) is not None
        assert [r.config_hash for r in index.list_configs()] == [s.config_hash]
        with pytest.raises(IndexUnavailableError, match="read-only"):
            index.apply([_use(s)])
    assert _listing(path.parent) == before


def test_a_reader_does_not_wait_for_a_writer_holding_the_lock(path: Path) -> None:
    s = OpenAISettings(api_key="sk-a")
    with KeyIndex(path) as index:
        index.apply([_use(s)])
    holding, read_done = threading.Event(), threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
        holding.set()
        read_done.wait(60)  # the lock is held until the read is over: a reader that waits never ends
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(30)
    try:
        with KeyIndex(path, read_only=True, busy_timeout=0.05, retry_for=0.2) as index:
            assert [r.config_hash for r in index.list_configs()] == [s.config_hash]
            assert index.events(s.config_hash)
        with pytest.raises(IndexUnavailableError, match="locked"):  # while a writer does wait
            KeyIndex(path, busy_timeout=0.05, retry_for=0.2).apply([_use(s)])
    finally:
        read_done.set()
        thread.join(30)


def test_the_deadline_set_from_another_thread_ends_a_wait_for_the_lock(path: Path) -> None:
    KeyIndex(path).close()
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        holding.set()
        release.wait(60)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(30)
    index = KeyIndex(path, busy_timeout=0.05, retry_for=600.0)  # on its own it would wait ten minutes
    failed: list[BaseException] = []

    def write() -> None:
        try:
            index.apply([_use(OpenAISettings(api_key="sk-a"))])
        except BaseException as exc:
            failed.append(exc)

    writing = threading.Thread(target=write)
    writing.start()
    index.deadline = 0.0  # long past: give up now
    writing.join(30)
    release.set()
    thread.join(30)
    index.close()
    assert not writing.is_alive()
    assert len(failed) == 1 and isinstance(failed[0], IndexUnavailableError) and "locked" in str(failed[0])


# ---- rows that are not records ---------------------------------------------------------------------


def _tamper(path: Path, table: str, key: str, value: Any) -> None:
    conn = sqlite3.connect(path)
    if table == "events":  # its expression index refuses a value that is not JSON: a tamperer drops it first
        conn.execute('DROP INDEX IF EXISTS "events_config_hash"')
    conn.execute(f'INSERT OR REPLACE INTO "{table}" (key, value) VALUES (?, ?)', (key, value))
    conn.commit()
    conn.close()


TAMPERED: list[Any] = [
    "not json",
    b"\x80\x04\x95pickle",  # a BLOB: what a plain sqlitedict would write (a pickle)
    sqlite3.Binary(b'{"provider": "\xff"}'),  # JSON, but not UTF-8
    '{"provider": "openai"}',  # JSON of the wrong shape
    "[1, 2, 3]",
    "42",
]


@pytest.mark.parametrize("value", TAMPERED, ids=range(len(TAMPERED)))
def test_a_tampered_row_is_skipped_and_reported_and_everything_else_read(
    path: Path, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = OpenAISettings(api_key="sk-good"), GroqSettings(api_key="gsk-bad")
    with KeyIndex(path) as index:
        index.apply([_use(good, "fast"), _use(bad, "slow", at=1001.0)])
    if isinstance(value, bytes) and not isinstance(value, sqlite3.Binary):
        value = sqlite3.Binary(value)
    _tamper(path, "configs", bad.config_hash, value)
    _tamper(path, "events", "0000000000000000001-tampered", value)
    _tamper(path, "meta", "profile:slow", value)
    with caplog.at_level(logging.WARNING), KeyIndex(path, read_only=True) as index:
        assert [r.config_hash for r in index.list_configs()] == [good.config_hash]
        assert [s.config_hash for s in index.list_summaries()] == [good.config_hash]
        assert [json.loads(line)["config_hash"] for line in index.config_lines()] == [good.config_hash]
        assert [json.loads(line)["config_hash"] for line in index.export()] == [good.config_hash]
        assert index.get(bad.config_hash) is None and index.get(good.config_hash) is not None
        assert [r.profile for r in index.recent_profiles()] == ["fast"]
        assert [e.kind for e in index.events(good.config_hash)] == ["first_seen", "built"]
        assert index.prune(10**9, dry_run=True, now=2000.0) == []
    reported = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(bad.config_hash in m and "configs[" in m for m in reported), reported
    assert any("events['0000000000000000001-tampered']" in m for m in reported), reported
    assert any("meta['profile:slow']" in m for m in reported), reported
    assert len(reported) == len(set(reported))  # each row reported once


@pytest.mark.parametrize("value", TAMPERED[:3], ids=range(3))
def test_a_writer_keeps_a_tampered_rows_bytes_and_records_the_rest(path: Path, value: Any) -> None:
    good, bad = OpenAISettings(api_key="sk-good"), GroqSettings(api_key="gsk-bad")
    with KeyIndex(path) as index:
        index.apply([_use(good, "fast"), _use(bad, "slow")])
    stored = sqlite3.Binary(value) if isinstance(value, bytes) else value
    _tamper(path, "configs", bad.config_hash, stored)
    with KeyIndex(path) as index:
        index.apply([_use(good, "fast", uses=2), _use(bad, "slow", uses=5)])  # no exception: all recorded
        assert index.get(good.config_hash).uses == 3  # type: ignore[union-attr]
        assert index.get(bad.config_hash).uses == 5  # type: ignore[union-attr]  # a new row
    conn = sqlite3.connect(path)
    kept = conn.execute("SELECT key, value FROM meta WHERE key LIKE 'damaged:configs:%'").fetchall()
    conn.close()
    assert len(kept) == 1 and kept[0][0].startswith(f"damaged:configs:{bad.config_hash}:")
    raw = value if isinstance(value, str) else bytes(value).decode("utf-8", "backslashreplace")
    assert json.loads(kept[0][1]) == {"table": "configs", "key": bad.config_hash, "value": raw}


def test_an_unreadable_row_is_kept_aside_once_in_a_batch_of_any_size(path: Path) -> None:
    # Batches read their rows a chunk at a time, the chunk padded to a power of two by repeating
    # its last key; an unreadable row is then read key by key: once each, so it is kept once.
    settings = sorted((OpenAISettings(api_key=f"sk-{i}") for i in range(3)), key=lambda s: s.config_hash)
    last = settings[-1]  # the key that pads a chunk of three
    with KeyIndex(path) as index:
        index.apply([_use(s) for s in settings])
    _tamper(path, "configs", last.config_hash, sqlite3.Binary(b'{"provider": "\xff"}'))
    with KeyIndex(path) as index:
        index.apply([_use(s, uses=2) for s in settings])
        assert [index.get(s.config_hash).uses for s in settings] == [3, 3, 2]  # type: ignore[union-attr]
    conn = sqlite3.connect(path)
    kept = conn.execute("SELECT key FROM meta WHERE key LIKE 'damaged:configs:%'").fetchall()
    conn.close()
    assert len(kept) == 1 and kept[0][0].startswith(f"damaged:configs:{last.config_hash}:")


def _me() -> tuple[str, int]:
    import socket

    return socket.gethostname(), os.getpid()


# ---- the stored config is the canonical JSON ------------------------------------------------------


def _all_kinds() -> list[ProviderSettings]:
    return [
        OpenAISettings(
            api_key="sk-one",
            timeout=12.5,
            default_headers={"X-Team": "a", "Authorization": "Bearer t"},
            default_query={"b": "2", "a": "1"},
            proxy="http://user:pw@proxy.internal:3128",
        ),
        AzureOpenAISettings(api_key="k", azure_endpoint="https://r.openai.azure.com", api_version="2024-10-21"),
        GroqSettings(api_key="gsk-x", max_retries=7, keepalive_expiry=1e-05),
    ]


def test_every_stored_record_verifies_from_its_bytes_alone(path: Path) -> None:
    settings = _all_kinds()
    with KeyIndex(path) as index:
        index.apply([_use(s, f"p{n}") for n, s in enumerate(settings)])
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT key, json_extract(value, '$.config') FROM configs").fetchall()
    conn.close()
    assert len(rows) == len(settings)
    for key, config in rows:  # the stored config is the canonical JSON, byte for byte
        assert hashlib.sha256(config.encode("ascii")).hexdigest() == key
    assert {config for _, config in rows} == {s.canonical_json() for s in settings}


def test_a_version_1_index_is_read_as_it_is_and_upgraded_by_a_writer(path: Path) -> None:
    s = OpenAISettings(api_key="sk-old", timeout=30)
    config = s.canonical_dict()  # field order, not canonical order: how version 1 stored it
    assert json.dumps(config, separators=(",", ":")) != s.canonical_json()
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    for table in ("configs", "events", "meta"):
        conn.execute(f'CREATE TABLE "{table}" (key TEXT PRIMARY KEY, value BLOB)')
    row = {"provider": "openai", "config": config, "profiles": ["fast"], "first_seen": 1.0, "last_seen": 2.0, "uses": 3}
    conn.execute("INSERT INTO configs VALUES (?, ?)", (s.config_hash, json.dumps(row)))
    event = {"time": 1.0, "config_hash": s.config_hash, "profile": "fast", "kind": "built", "host": "h", "pid": 1}
    conn.execute("INSERT INTO events VALUES (?, ?)", ("0000000001000000000-0000001-000000-abcd", json.dumps(event)))
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.commit()
    conn.close()
    path.chmod(0o600)
    before = path.read_bytes()

    with KeyIndex(path, read_only=True) as index:
        (record,) = index.list_configs()
        assert json.dumps(record.config, separators=(",", ":")) == s.canonical_json()
        (line,) = index.config_lines()
        assert json.loads(line)["config"] == json.loads(s.canonical_json())
        assert [(e.kind, e.count) for e in index.events(s.config_hash)] == [("built", 1)]
    assert path.read_bytes() == before  # read, never upgraded by a reader

    with KeyIndex(path) as index:
        assert isinstance(index, SQLiteIndex) and index.schema_version == 2
        index.apply([], [NewEvent(5.0, s.config_hash, "fast", "evicted")])
    conn = sqlite3.connect(path)
    stored = conn.execute("SELECT json_extract(value, '$.config') FROM configs").fetchone()[0]
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    keys = [row[0] for row in conn.execute("SELECT key FROM events ORDER BY key")]
    conn.close()
    assert stored == s.canonical_json() and json.loads(version) == 2
    assert all(key.startswith(f"{s.config_hash}:") for key in keys) and len(keys) == 2  # one config, one range
    with KeyIndex(path, read_only=True) as index:
        assert [(e.kind, e.host, e.pid) for e in index.events(s.config_hash)] == [
            ("built", "h", 1),
            ("evicted", *_me()),
        ]
