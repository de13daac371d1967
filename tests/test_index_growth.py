"""Churn costs neither memory nor index size: coalesced events, forgotten records, retention, exact counts."""

from __future__ import annotations

import gc
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from registry import Registry
from registry.index import ConfigUse, KeyIndex, NewEvent
from registry.locations import index_table_from_file, parse_retention, resolve_index, resolve_index_path
from registry.recorder import DEFAULT_RETENTION, IndexRecorder
from schemas import GroqSettings, OpenAISettings, RegistrySettings, SettingsError, load_settings

DAY = 86_400.0


def _settings(n: int) -> OpenAISettings:
    return OpenAISettings(api_key=f"sk-churn-{n:06d}", base_url="http://127.0.0.1:9/v1")


def _rows(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    finally:
        conn.close()


# ---- the store coalesces repeated events ---------------------------------------------------------


def test_repeated_events_share_one_row_per_day_with_their_count(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    h = _settings(0).config_hash
    base = 10 * DAY + 100.0
    with KeyIndex(path) as index:
        for n in range(300):  # 300 batches, as 300 flushes would write them
            index.apply([], [NewEvent(base + n, h, "fast", "evicted", host="h", pid=1)])
        index.apply([], [NewEvent(base + n, h, "fast", "evicted", host="h", pid=2) for n in range(5)])
        index.apply(
            [], [NewEvent(base + DAY, h, "fast", "evicted", host="h", pid=1, count=7, last_time=base + DAY + 9)]
        )
        events = index.events(h)
    assert sorted((e.time, e.pid, e.count, e.until) for e in events) == [
        (base, 1, 300, base + 299),
        (base, 2, 5, base + 4),
        (base + DAY, 1, 7, base + DAY + 9),
    ]
    assert _rows(path, "events") == 3


def test_prune_events_removes_old_events_of_configs_still_in_use(tmp_path: Path) -> None:
    s = _settings(0)
    now = 100 * DAY + 5000.0
    with KeyIndex(tmp_path / "index.sqlite") as index:
        index.apply([ConfigUse(s.config_hash, "openai", s.canonical_dict(), "fast", now - 40 * DAY, 1, "built")])
        for age in (39, 31, 30.5, 29.9, 1):
            index.apply([], [NewEvent(now - age * DAY, s.config_hash, "fast", "evicted", pid=int(age * 10))])
        index.apply([ConfigUse(s.config_hash, "openai", s.canonical_dict(), "fast", now, 1)])  # still in use
        assert index.prune(30 * DAY, now=now) == []  # the config stays ...
        assert index.prune_events(30 * DAY, dry_run=True, now=now) == 5  # first_seen, built, 39, 31, 30.5
        assert index.prune_events(30 * DAY, now=now) == 5  # ... its events older than 30 days go
        assert sorted(round((now - e.time) / DAY, 1) for e in index.events(s.config_hash)) == [1.0, 29.9]
        record = index.get(s.config_hash)
        assert record is not None and (record.uses, record.first_seen) == (2, now - 40 * DAY)


# ---- the recorder under churn --------------------------------------------------------------------


def test_churn_through_a_small_registry_writes_every_event_and_few_rows(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    configs = [_settings(n) for n in range(200)]
    with Registry(index_path=path, max_clients=50) as reg:
        for _ in range(10):
            for s in configs:
                reg.get_client(s)
                reg.get_client(s)
        stats = reg.stats()
        recorder = reg._recorder
        assert recorder is not None and recorder.flush(60)
        recorded = recorder.stats()
    assert stats.builds == 2000 and stats.evictions == 1950 and stats.hits == 2000
    with KeyIndex(path, read_only=True) as index:
        records = index.list_configs()
        events = [e for r in records for e in index.events(r.config_hash)]
    assert len(records) == 200 and sum(r.uses for r in records) == 4000
    assert sum(e.count for e in events if e.kind == "built") == 2000
    assert sum(e.count for e in events if e.kind == "evicted") == 1950  # none dropped, none lost
    assert sum(e.count for e in events if e.kind == "first_seen") == 200
    assert len(events) == _rows(path, "events") <= 3 * 200  # one row per config and kind, not per eviction
    assert recorded.dropped_uses == recorded.dropped_events == recorded.pending_uses == 0


def test_records_of_clients_let_go_are_forgotten_once_written(tmp_path: Path) -> None:
    with Registry(index_path=tmp_path / "index.sqlite", max_clients=10) as reg:
        for n in range(2000):
            reg.get_client(_settings(n))
        recorder = reg._recorder
        assert recorder is not None
        gc.collect()
        assert recorder.flush(60)
        stats = recorder.stats()
        assert stats.tracked <= 10  # one record per client held, not per config ever seen
        assert stats.pending_uses == stats.pending_events == 0
        assert stats.written_uses == 2000 and stats.dropped_uses == 0
        assert len(recorder._core.retired) == len(recorder._core.dirty) == 0
        reg.get_client(_settings(0))  # built again: a fresh counter, counted from one
        assert recorder.flush(60)
    with KeyIndex(tmp_path / "index.sqlite", read_only=True) as index:
        record = index.get(_settings(0).config_hash)
        assert record is not None and record.uses == 2


def test_past_the_pending_bound_records_are_dropped_counted_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the index's folder should be")
    recorder = IndexRecorder(blocker / "index.sqlite", flush_interval=0.01, max_pending=50)
    for n in range(400):
        counter = recorder.built(_settings(n), "p")
        counter.hit()
        recorder.evicted(_settings(n).config_hash, "p")
        del counter
        if n % 50 == 0:
            recorder.flush(10)
    gc.collect()
    recorder.flush(10)
    stats = recorder.stats()
    assert stats.dropped_uses > 0 and stats.dropped_events > 0
    assert stats.pending_uses <= 50 and stats.pending_uses + stats.dropped_uses == 400
    assert stats.failed_flushes > 0 and stats.recording
    blocker.unlink()
    blocker.mkdir()  # the index can be written again: what was kept lands
    assert recorder.flush(10)
    recorder.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("cannot record" in w for w in warnings) == 1
    assert sum("the oldest are dropped and counted" in w for w in warnings) == 1
    with KeyIndex(blocker / "index.sqlite", read_only=True) as index:
        assert sum(r.uses for r in index.list_configs()) == stats.pending_uses


# ---- retention ----------------------------------------------------------------------------------


def test_the_recorder_removes_events_older_than_the_retention(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    s, now = _settings(0), time.time()
    with KeyIndex(path) as index:
        index.apply([ConfigUse(s.config_hash, "openai", s.canonical_dict(), "fast", now - 10 * DAY, 3, "built")])
    recorder = IndexRecorder(path, flush_interval=3600, retention=7 * DAY)
    recorder.built(s, "fast").hit()
    assert recorder.flush(30)
    recorder.close()
    with KeyIndex(path, read_only=True) as index:
        assert [round((now - e.time) / DAY) for e in index.events(s.config_hash)] == [0]
        record = index.get(s.config_hash)
        assert record is not None and record.uses == 4 and record.first_seen == pytest.approx(now - 10 * DAY)


def test_retention_comes_from_the_settings_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DEFAULT_RETENTION == parse_retention("90d") == 90 * DAY
    assert parse_retention("forever") is None and parse_retention(" 12H ") == 12 * 3600
    for bad in ("90", "3 weeks", "-1d", "99999999999d", "1e9d"):
        with pytest.raises(ValueError, match=r"duration|100 years"):
            parse_retention(bad)
    monkeypatch.delenv("CLIENTREG_INDEX")
    file = tmp_path / "clientreg.toml"
    file.write_text(f'[index]\npath = "{tmp_path / "i.sqlite"}"\nretention = "7d"\n')
    monkeypatch.setenv("CLIENTREG_SETTINGS", str(file))
    location = resolve_index(None, index_table_from_file)
    assert location is not None and location.retention == 7 * DAY
    assert resolve_index(None, load_settings(file).index) == location
    monkeypatch.setenv("CLIENTREG_INDEX__RETENTION", "forever")
    assert resolve_index(None, index_table_from_file) == type(location)(tmp_path / "i.sqlite", None)
    assert resolve_index(None, load_settings(file).index) == type(location)(tmp_path / "i.sqlite", None)
    reg = Registry(load_settings(file))
    reg.get_client(GroqSettings(api_key="gsk-r"))
    assert reg._recorder is not None and reg._recorder._core.retention is None
    reg.close()
    monkeypatch.delenv("CLIENTREG_INDEX__RETENTION")
    default = resolve_index(None, RegistrySettings().index)
    assert default is not None and default.retention == 90 * DAY


def test_a_location_given_or_in_the_environment_reads_no_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []

    def table() -> None:
        read.append("read")
        return None

    monkeypatch.delenv("CLIENTREG_INDEX", raising=False)
    assert resolve_index_path(tmp_path / "given.sqlite", table) == tmp_path / "given.sqlite"
    assert resolve_index_path("off", table) is None
    monkeypatch.setenv("CLIENTREG_INDEX", str(tmp_path / "env.sqlite"))
    assert resolve_index_path(None, table) == tmp_path / "env.sqlite"
    assert read == []  # `clientreg history --index X` does not read (or import the loader for) a settings file
    location = resolve_index(tmp_path / "given.sqlite", table)  # the registry's: the retention is the file's
    assert location is not None and location.retention == DEFAULT_RETENTION and read == ["read"]
    monkeypatch.delenv("CLIENTREG_INDEX")
    assert resolve_index_path(None, table) is not None and read == ["read", "read"]


def test_a_bad_retention_in_the_settings_file_is_a_clear_error(tmp_path: Path) -> None:
    file = tmp_path / "clientreg.toml"
    file.write_text('[index]\nretention = "3 weeks"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(file)
    assert str(file) in str(caught.value) and "retention" in str(caught.value)
    assert "90d, 12h, 30m or 45s, or 'forever'" in str(caught.value)


def test_a_config_rebuilt_many_times_before_a_write_waits_as_one_record(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    recorder = IndexRecorder(path, flush_interval=3600, max_pending=300)  # writes only when asked
    configs = [_settings(n) for n in range(200)]
    for _ in range(50):  # 10,000 builds, uses and evictions of 200 configs, none written yet
        for s in configs:
            counter = recorder.built(s, None)
            counter.hit()
            recorder.evicted(s.config_hash, None)
            del counter  # let go, as the registry does on eviction
    gc.collect()
    waiting = recorder.stats()
    assert waiting.pending_uses == 10_000 and waiting.pending_events == 20_000
    assert waiting.dropped_uses == waiting.dropped_events == 0  # 200 records waited, not 10,000
    assert recorder.flush(60)
    recorder.close()
    with KeyIndex(path, read_only=True) as index:
        records = index.list_configs()
        events = [e for r in records for e in index.events(r.config_hash)]
    assert sum(r.uses for r in records) == 10_000
    assert sum(e.count for e in events if e.kind in ("built", "evicted")) == 20_000


def test_what_is_written_and_what_is_dropped_add_up_to_every_use(tmp_path: Path) -> None:
    # Many distinct configs let go faster than a small bound allows: some are dropped, and every
    # use is either in the index or counted as dropped, never both, never neither.
    path = tmp_path / "index.sqlite"
    recorder = IndexRecorder(path, flush_interval=0.001, max_pending=20)
    for n in range(3000):
        counter = recorder.built(_settings(n), None)
        counter.hit()
        counter.hit()
        recorder.evicted(_settings(n).config_hash, None)
        del counter
    gc.collect()
    assert recorder.flush(60)
    recorder.close()
    stats = recorder.stats()
    assert stats.pending_uses == stats.pending_events == 0
    assert stats.written_uses + stats.dropped_uses == 6000
    assert stats.written_events + stats.dropped_events == 6000  # 3000 builds and 3000 evictions
    with KeyIndex(path, read_only=True) as index:
        records = index.list_configs()
        events = [e for r in records for e in index.events(r.config_hash)]
    assert sum(r.uses for r in records) == stats.written_uses
    assert sum(e.count for e in events if e.kind != "first_seen") == stats.written_events
