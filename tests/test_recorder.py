"""IndexRecorder on real sqlite files: recording, exact counts, faults, processes, fork, secrets."""

from __future__ import annotations

import gc
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.index import KeyIndex
from registry.recorder import IndexRecorder
from schemas import OpenAISettings, fingerprint_key_id

ROOT = Path(__file__).resolve().parent.parent


def _settings(n: int = 0, **extra: object) -> OpenAISettings:
    return OpenAISettings(api_key=f"sk-test-{n}", **extra)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "index" / "index.sqlite"


@pytest.fixture
def recorder(path: Path) -> Iterator[IndexRecorder]:
    rec = IndexRecorder(path, flush_interval=0.05)
    yield rec
    rec.close()


def _uses(path: Path, config_hash: str) -> int:
    with KeyIndex(path) as index:
        record = index.get(config_hash)
        return -1 if record is None else record.uses


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_construction_does_no_io_and_an_idle_flush_succeeds(path: Path) -> None:
    rec = IndexRecorder(path)
    assert rec.path == path and rec.flush() is True
    rec.close()
    assert not path.parent.exists()


def test_records_build_events_and_uses(recorder: IndexRecorder, path: Path) -> None:
    s = _settings()
    counter = recorder.built(s, "fast")
    for _ in range(5):
        counter.hit()
    assert recorder.flush() is True
    counter.hit()
    recorder.evicted(s.config_hash, "fast")
    rebuilt = recorder.built(s, "fast", kind="warm")
    assert rebuilt is counter  # counts accumulate across rebuilds
    rebuilt.hit()
    assert recorder.flush() is True
    with KeyIndex(path) as index:
        record = index.get(s.config_hash)
        assert record is not None
        assert (record.provider, record.profiles, record.uses) == ("openai", ("fast",), 7)
        assert record.config == s.canonical_dict()
        events = index.events(s.config_hash)
    assert [e.kind for e in events] == ["first_seen", "built", "evicted", "warm"]
    assert {(e.pid, e.profile) for e in events} == {(os.getpid(), "fast")}
    # A build records the fingerprint key's id: hosts whose keys differ (so whose hashes differ) show up.
    assert [e.detail for e in events] == [
        None,
        {"key_id": fingerprint_key_id()},
        None,
        {"key_id": fingerprint_key_id()},
    ]


def test_a_profile_and_a_settings_object_count_apart(recorder: IndexRecorder, path: Path) -> None:
    s = _settings()
    named, anonymous = recorder.built(s, "fast"), recorder.built(s, None)
    assert named is not anonymous
    named.hit()
    anonymous.hit()
    anonymous.hit()
    assert recorder.flush()
    assert _uses(path, s.config_hash) == 3


def test_counts_are_exact_across_threads(recorder: IndexRecorder, path: Path) -> None:
    s = _settings()
    counter = recorder.built(s, "fast")

    def hammer() -> None:
        for _ in range(20_000):
            counter.hit()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for _ in range(5):  # flushes race the hits
        recorder.flush()
    for t in threads:
        t.join()
    assert recorder.flush()
    assert _uses(path, s.config_hash) == 160_000


def test_drift_is_recorded_and_logged_once(
    recorder: IndexRecorder, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="clientreg.index")
    old, new = _settings(timeout=30), _settings(timeout=60, base_url="https://llm.example.com/v1")
    recorder.built(old, "fast").hit()
    assert recorder.flush()
    recorder.built(new, "fast").hit()
    assert recorder.flush()
    (line,) = _warnings(caplog)
    assert "'fast'" in line and "timeout 30.0 -> 60.0" in line and "base_url" in line
    assert old.config_hash[:12] in line and new.config_hash[:12] in line
    with KeyIndex(path) as index:
        (drift,) = [e for e in index.events(new.config_hash) if e.kind == "drift"]
    assert drift.detail == {"old_hash": old.config_hash, "new_hash": new.config_hash, "fields": ["base_url", "timeout"]}


def test_no_secret_reaches_any_byte_of_the_index_files(
    recorder: IndexRecorder, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = OpenAISettings(
        api_key="sk-live-SECRETKEY-0123456789",
        proxy="http://proxyuser:hunter2-PROXYPASS@proxy.internal:3128",
        default_headers={"Authorization": "Bearer HEADER-TOKEN-42", "X-Custom-Api-Key": "CUSTOM-KEY-77"},
        default_query={"signature": "QUERY-SIG-99"},
    )
    values = secret.secret_values()
    assert "hunter2-PROXYPASS" in values and "QUERY-SIG-99" in values
    recorder.built(secret, "prod").hit()
    assert recorder.flush()
    drifted = secret.model_copy(update={"timeout": 5.0})
    recorder.built(drifted, "prod").hit()
    assert recorder.flush()
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert all(f.exists() for f in files)  # scanned while open, WAL and all

    def scan() -> None:
        for f in path.parent.iterdir():
            data = f.read_bytes()
            for value in values:
                assert value.encode() not in data, (f.name, value)

    scan()
    recorder.close()
    scan()
    with KeyIndex(path) as index:
        exported = "\n".join(index.export())
    assert not any(v in exported or v in caplog.text for v in values)


def test_unwritable_location_warns_once_and_keeps_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # As root, permission bits are ignored; a parent that is a regular file fails for root too.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    path = blocker / "index.sqlite"
    rec = IndexRecorder(path, flush_interval=0.05)
    s = _settings()
    counter = rec.built(s, "fast")  # no exception, ever
    counter.hit()
    assert rec.flush() is False
    counter.hit()
    time.sleep(0.2)  # several background flushes fail meanwhile
    assert rec.flush() is False
    assert len(_warnings(caplog)) == 1 and "cannot record" in _warnings(caplog)[0]
    blocker.unlink()
    blocker.mkdir()  # the place becomes writable: everything kept in memory lands
    assert rec.flush() is True
    rec.close()
    assert _uses(path, s.config_hash) == 2
    assert len(_warnings(caplog)) == 1


def _hold_exclusive_lock(path: Path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_locked_database_loses_nothing(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    KeyIndex(path).close()
    rec = IndexRecorder(path, flush_interval=0.05, busy_timeout=0.1)
    ready = threading.Event()
    holder = threading.Thread(target=_hold_exclusive_lock, args=(path, 0.8, ready))
    holder.start()
    ready.wait()
    s = _settings()
    counter = rec.built(s, "fast")
    for _ in range(10):
        counter.hit()
    assert rec.flush(timeout=0.5) is False  # still locked
    holder.join()
    assert rec.flush() is True
    rec.close()
    assert _uses(path, s.config_hash) == 10
    assert len(_warnings(caplog)) == 1 and "locked" in _warnings(caplog)[0]


def test_a_damaged_index_is_moved_aside_and_recording_goes_on(path: Path, recorder: IndexRecorder) -> None:
    KeyIndex(path).close()
    data = bytearray(path.read_bytes())
    data[4096:] = b"\x00garbage" * ((len(data) - 4096) // 8)
    path.write_bytes(bytes(data))
    s = _settings()
    recorder.built(s, "fast").hit()
    assert recorder.flush() is True
    (moved,) = path.parent.glob("index.sqlite.corrupt-*")
    assert moved.read_bytes() == bytes(data)
    assert _uses(path, s.config_hash) == 1


def test_a_file_that_is_not_an_index_is_left_alone_and_recording_stops_with_one_warning(
    path: Path, recorder: IndexRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir()
    path.write_bytes(b"\x00garbage" * 1000)
    for n in range(3):
        recorder.built(_settings(n), "fast").hit()
        assert recorder.flush() is False
    assert path.read_bytes() == b"\x00garbage" * 1000 and len(list(path.parent.iterdir())) == 1
    (warning,) = _warnings(caplog)
    assert "not recording to the key index" in warning and "not a SQLite database" in warning
    stats = recorder.stats()
    assert not stats.recording and stats.dropped_uses == 1 and stats.dropped_events == 3  # counted, never kept


def test_recent_profiles_through_the_recorder(recorder: IndexRecorder, tmp_path: Path) -> None:
    assert recorder.recent_profiles(limit=5, max_age=None) == []  # no file yet: empty, not created
    for n, name in enumerate(["a", "b", "c"]):
        recorder.built(_settings(n), name).hit()
        assert recorder.flush()
        time.sleep(0.01)
    assert [r.profile for r in recorder.recent_profiles(limit=2, max_age=3600)] == ["c", "b"]


def test_close_is_idempotent_and_later_records_are_dropped(recorder: IndexRecorder, path: Path) -> None:
    s = _settings()
    recorder.built(s, "fast").hit()
    recorder.close()
    recorder.close()
    recorder.built(_settings(1), "late").hit()  # never raises
    recorder.evicted(s.config_hash, "fast")
    assert _uses(path, s.config_hash) == 1


def test_a_collected_recorder_writes_what_it_counted(path: Path) -> None:
    rec = IndexRecorder(path, flush_interval=60)
    s = _settings()
    rec.built(s, "fast").hit()
    thread = rec._core.thread
    assert thread is not None
    del rec
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()
    assert _uses(path, s.config_hash) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_writes_only_its_own_counts(recorder: IndexRecorder, path: Path) -> None:
    s, child_only = _settings(), _settings(1)
    counter = recorder.built(s, "fast")
    for _ in range(3):
        counter.hit()
    assert recorder.flush()
    counter.hit()
    counter.hit()  # unflushed at fork: the parent's to write
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 2
        try:
            for _ in range(5):
                counter.hit()
            recorder.built(child_only, "child").hit()
            code = 0 if recorder.flush(10) else 1
            recorder.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert recorder.flush()
    assert _uses(path, s.config_hash) == 3 + 2 + 5
    with KeyIndex(path) as index:
        assert {e.pid for e in index.events(child_only.config_hash)} == {pid}


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", textwrap.dedent(code), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


WORKER = """
    import sys
    from registry.recorder import IndexRecorder
    from schemas import OpenAISettings
    path, worker = sys.argv[1], int(sys.argv[2])
    rec = IndexRecorder(path, flush_interval=0.005)
    shared = rec.built(OpenAISettings(api_key="sk-shared"), "shared")
    for j in range(50):
        counter = rec.built(OpenAISettings(api_key=f"sk-w{worker}-{j}"), f"w{worker}-{j}")
        for _ in range(j + 1):
            counter.hit()
        shared.hit()
    assert rec.flush(60)
    rec.close()
"""


def test_eight_processes_write_one_index_and_lose_nothing(path: Path) -> None:
    workers = [_python(WORKER, str(path), str(w)) for w in range(8)]
    for proc in workers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err
    with KeyIndex(path) as index:
        configs = {r.profiles[0]: r for r in index.list_configs()}
    assert len(configs) == 8 * 50 + 1
    assert configs["shared"].uses == 8 * 50
    for w in range(8):
        for j in range(50):
            assert configs[f"w{w}-{j}"].uses == j + 1


def test_interpreter_exit_flushes(path: Path) -> None:
    proc = _python(
        """
        import sys
        from registry.recorder import IndexRecorder
        from schemas import OpenAISettings
        rec = IndexRecorder(sys.argv[1], flush_interval=3600)
        counter = rec.built(OpenAISettings(api_key="sk-exit"), "exit")
        for _ in range(4):
            counter.hit()
        print(OpenAISettings(api_key="sk-exit").config_hash)
        """,
        str(path),
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _uses(path, out.strip()) == 4


def test_full_disk_warns_once_and_retries(path: Path) -> None:
    # A full disk, simulated without root tricks: RLIMIT_FSIZE makes every write past the
    # limit fail (EFBIG, which SQLite reports like a full disk); lifting it frees the "disk".
    proc = _python(
        """
        import json, logging, resource, signal, sys
        from registry.index import KeyIndex
        from registry.recorder import IndexRecorder
        from schemas import OpenAISettings
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        rec = IndexRecorder(sys.argv[1], flush_interval=0.05)
        rec.built(OpenAISettings(api_key="sk-first"), "first").hit()
        assert rec.flush()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
        settings = [OpenAISettings(api_key=f"sk-{i}") for i in range(200)]
        for s in settings:
            rec.built(s, None).hit()
        full = [rec.flush(5), rec.flush(5)]
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        ok = rec.flush(5)
        rec.close()
        with KeyIndex(sys.argv[1]) as index:
            counts = [index.get(s.config_hash).uses for s in settings]
        print(json.dumps({"full": full, "ok": ok, "counts": counts}))
        """,
        str(path),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result == {"full": [False, False], "ok": True, "counts": [1] * 200}
    warnings = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "full" in warnings[0], err
