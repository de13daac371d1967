"""KeyIndex on real sqlite files: format, permissions, merging writes, reads, faults."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlitedict import SqliteDict  # type: ignore[import-untyped]

from registry.index import (
    SCHEMA_VERSION,
    ConfigUse,
    HashPrefixError,
    IndexCorruptError,
    IndexMissingError,
    IndexRefusedError,
    IndexUnavailableError,
    IndexVersionError,
    KeyIndex,
    NewEvent,
    changed_fields,
)


def _use(
    config_hash: str,
    profile: str | None = None,
    *,
    at: float = 1000.0,
    uses: int = 0,
    kind: Any = "built",
    **config: Any,
) -> ConfigUse:
    canonical = {"form": 1, "base_url": "https://api.example.com/v1", **config}
    return ConfigUse(config_hash, config.get("provider", "openai"), canonical, profile, at, uses, kind)


def _hash(prefix: str) -> str:
    return (prefix + "0" * 64)[:64]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "index.sqlite"


def test_new_file_and_its_wal_and_shm_are_mode_0600(path: Path) -> None:
    with KeyIndex(path) as index:
        index.apply([_use(_hash("aa"), "fast", uses=1)])
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_every_value_is_json_and_a_plain_sqlitedict_reads_it(path: Path) -> None:
    with KeyIndex(path) as index:
        index.apply([_use(_hash("aa"), "fast", uses=2)], [NewEvent(1001.0, _hash("aa"), "fast", "evicted")])
    conn = sqlite3.connect(path)
    for table in ("configs", "events", "meta"):
        rows = conn.execute(f'SELECT key, value FROM "{table}"').fetchall()
        assert rows, table
        for _key, value in rows:
            assert isinstance(value, str)
            json.loads(value)  # never a pickle
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    for table, key, field, expected in (("configs", _hash("aa"), "uses", 2), ("meta", "schema_version", None, 2)):
        plain = SqliteDict(str(path), tablename=table, decode=json.loads, flag="r", journal_mode="WAL")
        value = plain[key]
        plain.close()
        assert (value[field] if field else value) == expected
    assert SCHEMA_VERSION == 2


def test_apply_merges_uses_profiles_and_times(path: Path) -> None:
    h = _hash("ab")
    with KeyIndex(path) as index:
        index.apply([_use(h, "fast", at=10.0, uses=1)])
        index.apply([_use(h, "slow", at=20.0, uses=3)])
        index.apply([_use(h, "fast", at=15.0, uses=2, kind=None)])
        record = index.get(h)
        assert record is not None
        assert (record.uses, record.profiles, record.first_seen, record.last_seen) == (6, ("fast", "slow"), 10.0, 20.0)
        assert [e.kind for e in index.events(h)] == ["first_seen", "built", "built"]
        assert index.get(_hash("ff")) is None


@pytest.mark.parametrize("size", [1, 3, 512, 513, 1300])
def test_a_batch_of_any_size_is_written_once_with_exact_counts(path: Path, size: int) -> None:
    # Batches go in a few hundred rows per statement, padded to few shapes: no row is lost,
    # none is counted twice, whatever the size.
    hashes = [f"{i:064x}" for i in range(size)]
    with KeyIndex(path) as index:
        for _ in range(2):
            index.apply(
                [_use(h, "p" if i % 7 == 0 else None, uses=i % 5 + 1) for i, h in enumerate(hashes)],
                [NewEvent(1001.0, h, None, "evicted", count=2) for h in hashes],
            )
        records = {r.config_hash: r for r in index.list_configs(limit=size + 10)}
        assert set(records) == set(hashes)
        assert all(records[h].uses == 2 * (i % 5 + 1) for i, h in enumerate(hashes))
        for h in (hashes[0], hashes[-1]):
            evicted = [e for e in index.events(h) if e.kind == "evicted"]
            assert [e.count for e in evicted] == [4]


def test_drift_is_an_event_and_names_the_changed_fields(path: Path) -> None:
    old, new = _hash("a1"), _hash("b2")
    with KeyIndex(path) as index:
        assert index.apply([_use(old, "fast", timeout=30.0, transport={"proxy": "http://p:1"})]) == []
        drifts = index.apply([_use(new, "fast", at=2000.0, timeout=60.0, transport={"proxy": "http://q:1"})])
        assert [(d.profile, d.old_hash, d.new_hash) for d in drifts] == [("fast", old, new)]
        assert [c.field for c in drifts[0].changes] == ["timeout", "transport.proxy"]
        line = drifts[0].describe()
        assert "timeout 30.0 -> 60.0" in line and "transport.proxy" in line and "\n" not in line
        (drift_event,) = [e for e in index.events(new) if e.kind == "drift"]
        assert drift_event.detail == {"old_hash": old, "new_hash": new, "fields": ["timeout", "transport.proxy"]}
        # uses of the old config (a worker not yet restarted) do not flip the profile back
        assert index.apply([_use(old, "fast", at=3000.0, uses=5, kind=None)]) == []
        assert index.recent_profiles()[0].config_hash == new


def test_changed_fields_reports_added_and_removed_leaves() -> None:
    changes = changed_fields({"a": 1, "h": {"x": "1"}}, {"a": 1, "h": {"y": "2"}})
    assert [(c.field, c.old, c.new) for c in changes] == [("h.x", "1", None), ("h.y", None, "2")]


def test_resolve_hash_prefix_like_git(path: Path) -> None:
    with KeyIndex(path) as index:
        index.apply([_use(_hash("abcd1"), kind=None), _use(_hash("abcd2"), kind=None), _use(_hash("ef01"), kind=None)])
        assert index.resolve("EF01") == _hash("ef01")
        assert index.resolve("abcd1") == _hash("abcd1")
        with pytest.raises(HashPrefixError, match="ambiguous: 2 configs") as ambiguous:
            index.resolve("abcd")
        assert ambiguous.value.candidates == 2
        with pytest.raises(HashPrefixError, match="no config") as unknown:
            index.resolve("9999")
        assert unknown.value.candidates == 0
        for bad in ("abc", "xyz12", ""):
            with pytest.raises(HashPrefixError, match="4 to 64 hex digits"):
                index.resolve(bad)


def test_list_configs_filters_orders_and_limits(path: Path) -> None:
    with KeyIndex(path) as index:
        index.apply([_use(_hash("01"), "fast", at=100.0, provider="openai")])
        index.apply([_use(_hash("02"), "slow", at=200.0, provider="groq")])
        index.apply([_use(_hash("03"), "fast", at=300.0, provider="groq")])
        index.apply([_use(_hash("01"), "fast", at=400.0, uses=1, kind=None)])

        def hashes(**kw: Any) -> list[str]:
            return [r.config_hash[:2] for r in index.list_configs(**kw)]

        assert hashes() == ["01", "02", "03"]
        assert hashes(newest_first=True) == ["03", "02", "01"]
        assert hashes(profile="fast") == ["01", "03"]
        assert hashes(provider="groq") == ["02", "03"]
        assert hashes(since=250.0) == ["01", "03"]  # used since then
        assert hashes(limit=2) == ["02", "03"]  # the newest two
        assert hashes(profile="fast", provider="groq") == ["03"]
        assert index.list_configs()[0].to_dict().keys() >= {
            "config_hash",
            "provider",
            "profiles",
            "first_seen",
            "last_seen",
            "uses",
            "config",
        }


def test_recent_profiles_newest_first_within_max_age(path: Path) -> None:
    now = time.time()
    with KeyIndex(path) as index:
        index.apply([_use(_hash("01"), "old", at=now - 7200)])
        index.apply([_use(_hash("02"), "mid", at=now - 60)])
        index.apply([_use(_hash("03"), "new", at=now - 1)])
        index.apply([_use(_hash("04"), None, at=now)])  # not a profile
        assert [r.profile for r in index.recent_profiles(10)] == ["new", "mid", "old"]
        assert [r.profile for r in index.recent_profiles(10, 3600)] == ["new", "mid"]
        assert [r.profile for r in index.recent_profiles(1)] == ["new"]
        assert index.recent_profiles(1)[0].config_hash == _hash("03")


def test_prune_dry_run_then_for_real(path: Path) -> None:
    now = time.time()
    with KeyIndex(path) as index:
        index.apply([_use(_hash("01"), "gone", at=now - 40 * 86400)])
        index.apply([_use(_hash("02"), "kept", at=now - 3600)])
        assert index.prune(30 * 86400, dry_run=True) == [_hash("01")]
        assert index.get(_hash("01")) is not None
        assert index.prune(30 * 86400) == [_hash("01")]
        assert index.get(_hash("01")) is None and index.events(_hash("01")) == []
        assert [r.profile for r in index.recent_profiles()] == ["kept"]
        assert index.prune(30 * 86400) == []


def test_export_is_json_lines_with_events(path: Path) -> None:
    with KeyIndex(path) as index:
        index.apply([_use(_hash("01"), "fast", uses=2)], [NewEvent(1001.0, _hash("01"), "fast", "evicted")])
        lines = list(index.export())
    (record,) = [json.loads(line) for line in lines]
    assert record["uses"] == 2 and [e["kind"] for e in record["events"]] == ["first_seen", "built", "evicted"]


def _damage(path: Path) -> None:
    """Overwrite every page after the first (the schema) with garbage: a damaged clientreg index."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xde\xad\xbe\xef" * ((len(data) - page) // 4)
    path.write_bytes(bytes(data))


def test_a_damaged_index_is_moved_aside_by_a_writer_and_a_new_one_started(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with KeyIndex(path) as index:
        index.apply([_use(_hash("aa"), "fast", uses=1)])
    _damage(path)
    damaged = path.read_bytes()
    with pytest.raises(IndexCorruptError):
        KeyIndex(path, read_only=True)  # a reader reports it ...
    with pytest.raises(IndexCorruptError):
        KeyIndex(path, create=False)  # ... and so does a writer that may not start a new index (prune)
    assert path.read_bytes() == damaged
    with KeyIndex(path) as index:
        assert index.moved_aside is not None and index.moved_aside.name.startswith("index.sqlite.corrupt-")
        assert index.moved_aside.read_bytes() == damaged  # nothing lost
        index.apply([_use(_hash("01"), uses=1)])
        assert index.get(_hash("01")) is not None
    assert "moved it aside" in caplog.text


@pytest.mark.parametrize("read_only", [True, False])
def test_a_file_that_is_not_a_database_is_refused_and_left_as_it_is(path: Path, read_only: bool) -> None:
    path.parent.mkdir()
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexRefusedError, match="not a SQLite database; clientreg leaves it as it is"):
        KeyIndex(path, read_only=read_only)
    assert path.read_bytes() == b"this is not a database" * 100
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.sqlite"]


@pytest.mark.parametrize("read_only", [True, False])
def test_another_programs_database_is_refused_and_never_touched(path: Path, read_only: bool) -> None:
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE moz_places (url TEXT)")
        conn.execute("INSERT INTO moz_places VALUES ('https://example.com')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(IndexRefusedError, match=r"another program's SQLite database \(tables: moz_places\)"):
        KeyIndex(path, read_only=read_only)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.sqlite"]  # no -wal, no -shm, not moved
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    conn.close()


def test_a_newer_schema_is_refused_and_left_alone(path: Path) -> None:
    KeyIndex(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(IndexVersionError, match="schema version 99"):
        KeyIndex(path)
    assert list(path.parent.glob("*.corrupt-*")) == []


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    # Tests run as root, which ignores permission bits: a parent that is a regular file fails for anyone.
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexUnavailableError, match="cannot create"):
        KeyIndex(tmp_path / "file" / "index.sqlite")


def test_missing_file_is_not_created_when_create_is_false(path: Path) -> None:
    with pytest.raises(IndexMissingError):
        KeyIndex(path, create=False)
    assert not path.exists()


def _hold_exclusive_lock(path: Path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_locked_database_is_waited_for(path: Path) -> None:
    KeyIndex(path).close()
    ready = threading.Event()
    holder = threading.Thread(target=_hold_exclusive_lock, args=(path, 0.5, ready))
    holder.start()
    ready.wait()
    with KeyIndex(path, busy_timeout=0.05, retry_for=5.0) as index:  # backoff retries past the busy timeout
        index.apply([_use(_hash("01"), uses=3)])
        holder.join()
        record = index.get(_hash("01"))
        assert record is not None and record.uses == 3


def test_locked_too_long_is_a_clear_error(path: Path) -> None:
    with KeyIndex(path, busy_timeout=0.05, retry_for=0.2) as index:
        ready = threading.Event()
        holder = threading.Thread(target=_hold_exclusive_lock, args=(path, 1.0, ready))
        holder.start()
        ready.wait()
        with pytest.raises(IndexUnavailableError, match="locked"):
            index.apply([_use(_hash("01"), uses=3)])
        holder.join()
        index.apply([_use(_hash("01"), uses=3)])  # the connection is usable afterwards
        record = index.get(_hash("01"))
        assert record is not None and record.uses == 3
