"""The fleet index when PostgreSQL is down, goes away, restarts, refuses the login or is slow: for real.

The server is the real one; "down" and "restart" are a loopback proxy in front of it that is
stopped (every connection cut, the port closed) and started again, so the server the other
tests share keeps running. Backends are killed with pg_terminate_backend, logins refused by
a role that may not log in, slowness made with a table lock and pg_sleep.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import Registry
from registry.index import KeyIndex
from registry.recorder import IndexRecorder
from schemas import OpenAISettings
from tests.postgres_helpers import BASE_URL, Proxy, Schema, admin, role, terminate, with_netloc, with_params

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "S3cr3t-Pa55w0rd-9f2c"


def _settings(n: int = 0) -> OpenAISettings:
    return OpenAISettings(api_key=f"sk-fault-{n}")


def _uses(schema: Schema, config_hash: str) -> int:
    with KeyIndex(schema.url, read_only=True) as index:
        record = index.get(config_hash)
        return -1 if record is None else record.uses


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _wait_until(condition: object, timeout: float = 30.0) -> bool:
    assert callable(condition)
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def created(pg_schema: Schema) -> Schema:
    """The schema with the index's tables already made (as an admin would, once)."""
    KeyIndex(pg_schema.url).close()
    return pg_schema


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with Proxy() as made:
        yield made


def _app(name: str) -> str:
    return f"clientreg-test-{name}-{uuid.uuid4().hex[:8]}"


def test_down_at_start_clients_are_handed_out_and_uses_wait_then_written_exactly(
    created: Schema, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "clientreg.index")
    url = created.at(f"postgres:{PASSWORD}@127.0.0.1:{proxy.port}")  # nothing listens there yet
    recorder = IndexRecorder(url, flush_interval=0.05, busy_timeout=1.0)
    s = _settings()
    counter = recorder.built(s, "fast")
    for _ in range(50):
        counter.hit()
    assert recorder.flush(10) is False
    stats = recorder.stats()
    assert (stats.pending_uses, stats.pending_events, stats.dropped_uses) == (50, 1, 0)
    assert stats.recording and "cannot connect" in (stats.last_error or "")
    for _ in range(30):
        counter.hit()
    assert recorder.flush(10) is False
    proxy.start()
    assert recorder.flush(10) is True
    assert _uses(created, s.config_hash) == 80
    recorder.close()
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "uses are kept in memory and retried" in warnings[0]
    assert "writable again" in caplog.text
    assert PASSWORD not in caplog.text and PASSWORD not in repr(recorder) and PASSWORD not in str(recorder.path)
    assert PASSWORD not in (recorder.stats().last_error or "")


def test_a_backend_terminated_between_writes_is_replaced_without_a_warning(
    created: Schema, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app("terminated")
    recorder = IndexRecorder(with_params(created.url, application_name=app), flush_interval=0.05, busy_timeout=1.0)
    s = _settings()
    counter = recorder.built(s, "fast")
    for _ in range(5):
        for _ in range(10):
            counter.hit()
        assert recorder.flush(10) is True
        assert terminate(app) == 1  # the recorder's own session, killed by the server
    for _ in range(7):
        counter.hit()
    assert recorder.flush(10) is True
    recorder.close()
    assert _uses(created, s.config_hash) == 57
    assert _warnings(caplog) == []


def test_a_restart_mid_run_loses_nothing_and_each_outage_warns_once(
    created: Schema, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.start()
    recorder = IndexRecorder(created.at(f"postgres@127.0.0.1:{proxy.port}"), flush_interval=0.05, busy_timeout=1.0)
    configs = [_settings(n) for n in range(4)]
    counters = [recorder.built(s, f"p{n}") for n, s in enumerate(configs)]
    handed = [0] * 4

    def hand_out(times: int) -> None:
        for i in range(times):
            counters[i % 4].hit()
            handed[i % 4] += 1

    for outage in range(2):
        hand_out(40)
        assert recorder.flush(10) is True
        proxy.stop()  # the server goes down: connections cut, port closed
        hand_out(40)
        assert recorder.flush(10) is False
        hand_out(40)
        assert recorder.flush(10) is False
        proxy.start()  # and comes back
        hand_out(40)
        assert recorder.flush(10) is True
        assert len(_warnings(caplog)) == outage + 1
    recorder.close()
    assert [_uses(created, s.config_hash) for s in configs] == handed
    assert recorder.stats().dropped_uses == 0 and recorder.stats().failed_flushes >= 4


def test_a_refused_login_is_waited_out(created: Schema, caplog: pytest.LogCaptureFixture) -> None:
    with role(login=False, grants_on=created.name) as name:
        recorder = IndexRecorder(created.at(f"{name}:{PASSWORD}@127.0.0.1:5432"), flush_interval=0.05, busy_timeout=1.0)
        s = _settings()
        counter = recorder.built(s, None)
        counter.hit()
        assert recorder.flush(10) is False
        assert "not permitted to log in" in (recorder.stats().last_error or "")
        counter.hit()
        with admin() as conn:
            conn.execute(f'ALTER ROLE "{name}" LOGIN')
        assert recorder.flush(10) is True
        recorder.close()
    assert _uses(created, s.config_hash) == 2
    assert len(_warnings(caplog)) == 1 and PASSWORD not in caplog.text


def test_a_role_with_only_the_documented_grants_records(created: Schema) -> None:
    with role(grants_on=created.name) as name:
        url = created.at(f"{name}@127.0.0.1:5432")
        with Registry(index_path=url) as registry:
            s = _settings()
            for _ in range(3):
                registry.get_client(s)
        assert _uses(created, s.config_hash) == 3
        # It cannot create a layout: a clear error says what it needs and who can.
        other = with_params(with_netloc(BASE_URL, f"{name}@127.0.0.1:5432"), schema=f"{created.name}_x")
        from registry.index import IndexUnavailableError

        with pytest.raises(IndexUnavailableError, match=r"permission denied.*clientreg migrate"):
            KeyIndex(other)


def test_a_role_that_may_only_read_runs_the_read_commands(created: Schema, tmp_path: Path) -> None:
    with KeyIndex(created.url) as index:
        index.apply([])
    s = _settings()
    with Registry(index_path=created.url) as registry:
        registry.get_client(s)
    with role(grants_on=created.name, read_only=True) as name:
        url = created.at(f"{name}@127.0.0.1:5432")
        clientreg = str(Path(sys.executable).with_name("clientreg"))
        history = subprocess.run([clientreg, "history", "--json", "--index", url], capture_output=True, text=True)
        assert history.returncode == 0, history.stderr
        assert [item["config_hash"] for item in json.loads(history.stdout)] == [s.config_hash]
        prune = subprocess.run(
            [clientreg, "prune", "--older-than", "1s", "--index", url], capture_output=True, text=True
        )
        assert prune.returncode == 1 and "permission denied for table configs" in prune.stderr
        assert _uses(created, s.config_hash) == 1


def test_a_locked_table_never_blocks_a_client_and_is_written_after(
    created: Schema, caplog: pytest.LogCaptureFixture
) -> None:
    holder = admin()
    holder.autocommit = False
    holder.execute(f'LOCK TABLE "{created.name}".configs IN ACCESS EXCLUSIVE MODE')
    released = threading.Event()
    timer = threading.Timer(60, released.set)  # a safety net only: the test releases the lock itself
    timer.start()
    settings = [_settings(n) for n in range(20)]
    try:
        with Registry(index_path=created.url) as registry:
            for s in settings:  # misses, while the index cannot be written
                registry.get_client(s)
                registry.get_client(s)
            assert not released.is_set()  # handing out never waited for the lock
            recorder = registry._recorder
            assert recorder is not None
            assert recorder.flush(0.5) is False  # the write waits for the lock, in the background
            assert recorder.stats().pending_uses == 40
            holder.rollback()  # the lock goes
            assert recorder.flush(30) is True
    finally:
        timer.cancel()
        holder.close()
    assert [_uses(created, s.config_hash) for s in settings] == [2] * 20
    assert _warnings(caplog) == []  # a wait, not a failure


def test_a_server_slower_than_the_statement_timeout_is_retried_later(created: Schema) -> None:
    with admin() as conn:
        conn.execute(
            f'CREATE FUNCTION "{created.name}".slow() RETURNS trigger LANGUAGE plpgsql AS '
            "$$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$"
        )
        conn.execute(
            f'CREATE TRIGGER slow AFTER INSERT OR UPDATE ON "{created.name}".configs '
            f'FOR EACH STATEMENT EXECUTE FUNCTION "{created.name}".slow()'
        )
    recorder = IndexRecorder(created.url, flush_interval=0.05, busy_timeout=1.0)
    s = _settings()
    counter = recorder.built(s, "fast")
    counter.hit()
    assert recorder.flush(30) is False
    assert "did not answer in time" in (recorder.stats().last_error or "")
    with admin() as conn:
        conn.execute(f'DROP TRIGGER slow ON "{created.name}".configs')
    counter.hit()
    assert recorder.flush(30) is True
    recorder.close()
    assert _uses(created, s.config_hash) == 2


def _slow_commit(schema: Schema) -> None:
    """Make every COMMIT that wrote a config sleep while ``slow_commit.on`` is true (a deferred trigger)."""
    with admin() as conn:
        conn.execute(f'CREATE TABLE "{schema.name}".slow_commit (on_ boolean NOT NULL)')
        conn.execute(f'INSERT INTO "{schema.name}".slow_commit VALUES (true)')
        conn.execute(
            f'CREATE FUNCTION "{schema.name}".slow_commit() RETURNS trigger LANGUAGE plpgsql AS '
            f'$$ BEGIN IF (SELECT on_ FROM "{schema.name}".slow_commit) THEN PERFORM pg_sleep(1.5); END IF; '
            "RETURN NULL; END $$"
        )
        conn.execute(
            f'CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT OR UPDATE ON "{schema.name}".configs '
            f'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "{schema.name}".slow_commit()'
        )


def _sleeping_in_commit(app: str) -> bool:
    with admin() as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event = 'PgSleep'", (app,)
        ).fetchone()
    return found is not None


def _fast_commits(schema: Schema) -> None:
    with admin() as conn:
        conn.execute(f'UPDATE "{schema.name}".slow_commit SET on_ = false')


def test_a_commit_whose_answer_is_lost_is_counted_once(created: Schema, proxy: Proxy) -> None:
    _slow_commit(created)
    proxy.start()
    app = _app("in-doubt")
    url = created.at(f"postgres@127.0.0.1:{proxy.port}", application_name=app)
    recorder = IndexRecorder(url, flush_interval=3600, busy_timeout=5.0)
    s = _settings()
    counter = recorder.built(s, "fast")
    for _ in range(10):
        counter.hit()
    flushed: list[bool] = []
    flusher = threading.Thread(target=lambda: flushed.append(recorder.flush(30)))
    flusher.start()
    assert _wait_until(lambda: _sleeping_in_commit(app))
    proxy.stop()  # the answer to COMMIT never arrives; the server goes on and commits
    proxy.start()
    _fast_commits(created)
    flusher.join(60)
    assert flushed == [True]  # settled by asking the server: it had committed
    counter.hit()
    assert recorder.flush(30) is True
    recorder.close()
    assert _uses(created, s.config_hash) == 11
    with KeyIndex(created.url, read_only=True) as index:
        assert [e.kind for e in index.events(s.config_hash)].count("built") == 1


def test_a_commit_left_in_doubt_through_an_outage_is_settled_when_the_server_is_back(
    created: Schema, proxy: Proxy
) -> None:
    _slow_commit(created)
    proxy.start()
    app = _app("in-doubt-outage")
    url = created.at(f"postgres@127.0.0.1:{proxy.port}", application_name=app)
    recorder = IndexRecorder(url, flush_interval=3600, busy_timeout=0.5)
    s = _settings()
    counter = recorder.built(s, "fast")
    for _ in range(10):
        counter.hit()
    flushed: list[bool] = []
    flusher = threading.Thread(target=lambda: flushed.append(recorder.flush(30)))
    flusher.start()
    assert _wait_until(lambda: _sleeping_in_commit(app))
    proxy.stop()  # and stays down longer than the store asks
    _fast_commits(created)
    flusher.join(60)
    assert flushed == [False]  # not known yet: the records wait in memory
    for _ in range(5):
        counter.hit()
    assert _wait_until(lambda: not _sleeping_in_commit(app))  # the server finished that COMMIT meanwhile
    proxy.start()
    assert recorder.flush(30) is True
    recorder.close()
    # The first write did commit: what it held is not written a second time.
    assert _uses(created, s.config_hash) == 15
    with KeyIndex(created.url, read_only=True) as index:
        assert [e.kind for e in index.events(s.config_hash)].count("built") == 1
        (built,) = [e for e in index.events(s.config_hash) if e.kind == "built"]
        assert built.count == 1


def test_past_the_bound_records_are_dropped_and_counted_and_the_rest_is_written(created: Schema, proxy: Proxy) -> None:
    recorder = IndexRecorder(
        created.at(f"postgres@127.0.0.1:{proxy.port}"), flush_interval=3600, busy_timeout=1.0, max_pending=5
    )
    handed = 0
    configs = [_settings(n) for n in range(12)]
    for s in configs:  # clients built, used and let go while the database is down
        counter = recorder.built(s, None)
        for _ in range(3):
            counter.hit()
            handed += 1
        del counter
        gc.collect()
        recorder.flush(5)
    proxy.start()
    assert recorder.flush(30) is True
    recorder.close()
    stats = recorder.stats()
    written = sum(max(_uses(created, s.config_hash), 0) for s in configs)
    assert stats.dropped_uses > 0 and written == stats.written_uses
    assert stats.written_uses + stats.dropped_uses == handed


def test_the_password_appears_nowhere(created: Schema, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = [
        with_params(with_netloc(BASE_URL, f"postgres:{PASSWORD}@127.0.0.1:1"), schema=created.name),
        with_params(with_netloc(BASE_URL, "postgres@127.0.0.1:1"), schema=created.name, password=PASSWORD),
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test?schema=bad-name",
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:notaport/test",
    ]
    seen: list[str] = []
    from registry.index import KeyIndexError

    for url in bad:
        with pytest.raises(KeyIndexError) as failure:
            KeyIndex(url)
        seen.append(str(failure.value))
        with Registry(index_path=url) as registry:
            registry.get_client(_settings())
            seen.extend([repr(registry._recorder), str(registry.index_path)])
            assert registry._recorder is not None
            registry._recorder.flush(5)
            seen.append(str(registry._recorder.stats()))
    good = created.at(f"postgres:{PASSWORD}@127.0.0.1:5432", sslmode="disable")
    with Registry(index_path=good) as registry:
        registry.get_client(_settings())
    env = {**os.environ, "PGPASSWORD": PASSWORD, "CLIENTREG_INDEX": good}
    for args in (["history"], ["history", "--json"], ["export"], ["hosts"], ["drift"], ["migrate"]):
        for index in (good, bad[0], bad[1]):
            done = subprocess.run(
                [str(Path(sys.executable).with_name("clientreg")), *args, "--index", index],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                cwd=tmp_path,
            )
            seen.extend([done.stdout, done.stderr])
    seen.append(caplog.text)
    assert any("cannot connect" in text for text in seen)
    assert [text for text in seen if PASSWORD in text] == []
    with admin() as conn:
        stored = conn.execute(f"SELECT string_agg(t::text, '') FROM \"{created.name}\".configs t").fetchone()
        stored_events = conn.execute(f"SELECT string_agg(t::text, '') FROM \"{created.name}\".events t").fetchone()
    assert PASSWORD not in str(stored) and PASSWORD not in str(stored_events)


def test_without_psycopg_the_error_names_the_extra_and_clients_are_still_handed_out(
    created: Schema, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'psycopg'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(ROOT)])}
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "from registry import Registry\n"
        "from schemas import OpenAISettings\n"
        "with Registry(index_path=sys.argv[1]) as reg:\n"
        "    import openai; print(isinstance(reg.get_client(OpenAISettings(api_key='sk-x')), openai.OpenAI))\n"
        "    reg._recorder.flush(5)\n"
        "    print(reg._recorder.stats().recording)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, created.url], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
    assert done.stderr.count("pip install 'clientreg[postgres]'") == 1
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("clientreg")), "history", "--index", created.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert "needs psycopg 3" in cli.stderr and "pip install 'clientreg[postgres]'" in cli.stderr


def test_a_few_keys_churning_through_an_outage_never_fill_the_bound(created: Schema, proxy: Proxy) -> None:
    recorder = IndexRecorder(
        created.at(f"postgres@127.0.0.1:{proxy.port}"), flush_interval=3600, busy_timeout=1.0, max_pending=5
    )
    configs = [_settings(n) for n in range(3)]
    for round_ in range(600):  # built, used, let go and built again, 200 times per key, while the database is down
        counter = recorder.built(configs[round_ % 3], f"p{round_ % 3}", kind="built")
        counter.hit()
        counter.hit()
        recorder.evicted(configs[round_ % 3].config_hash, f"p{round_ % 3}")
        del counter
        if round_ % 50 == 0:
            gc.collect()
            assert recorder.flush(5) is False
    gc.collect()
    assert recorder.flush(5) is False
    stats = recorder.stats()
    assert (stats.dropped_uses, stats.dropped_events, stats.pending_uses) == (0, 0, 1200)
    proxy.start()
    assert recorder.flush(30) is True
    recorder.close()
    assert [_uses(created, s.config_hash) for s in configs] == [400, 400, 400]
    with KeyIndex(created.url, read_only=True) as index:
        for s in configs:
            counts = {e.kind: 0 for e in index.events(s.config_hash)}
            for e in index.events(s.config_hash):
                counts[e.kind] += e.count
            assert counts == {"first_seen": 1, "built": 200, "evicted": 200}


def test_a_forked_child_writes_on_its_own_connection_and_leaves_the_parents_alone(
    created: Schema, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app("fork")
    recorder = IndexRecorder(with_params(created.url, application_name=app), flush_interval=0.05, busy_timeout=2.0)
    s = _settings()
    counter = recorder.built(s, "fast")
    counter.hit()
    assert recorder.flush(10) is True  # the parent's connection is open
    with admin() as conn:
        (parent_backend,) = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchone()
    pid = os.fork()
    if pid == 0:  # the child: its own uses, its own connection, then exit (closing what is its own)
        code = 1
        try:
            for _ in range(5):
                counter.hit()
            code = 0 if recorder.flush(10) else 2
            recorder.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    counter.hit()
    assert recorder.flush(10) is True
    with admin() as conn:
        backends = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,))]
    assert backends == [parent_backend]  # the parent's session survived the child, untouched
    recorder.close()
    assert _uses(created, s.config_hash) == 1 + 5 + 1
    assert _warnings(caplog) == []


def test_warm_start_reads_the_profiles_the_fleet_used(created: Schema, tmp_path: Path) -> None:
    from schemas import load_settings

    file = tmp_path / "clientreg.toml"
    file.write_text('[profiles.fast]\nprovider = "openai"\napi_key = "sk-warm-fleet"\n')
    with Registry(load_settings(file), index_path=created.url) as first:
        first.get_client("fast")
    with Registry(load_settings(file), index_path=created.url) as second:
        assert second.warm() == 1
        assert second.stats().builds == 1 and second.stats().misses == 0


def test_close_gives_up_in_bounded_time_when_the_server_stops_answering(
    created: Schema, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.start()
    recorder = IndexRecorder(created.at(f"postgres@127.0.0.1:{proxy.port}"), flush_interval=3600, busy_timeout=5.0)
    s = _settings()
    counter = recorder.built(s, "fast")
    counter.hit()
    assert recorder.flush(10) is True
    counter.hit()
    proxy.frozen.set()  # the server's answers stop arriving: no error, no reset, just silence
    started = time.monotonic()
    recorder.close()  # waits about a second in all, then says what was not written
    assert time.monotonic() - started < 3.0
    proxy.frozen.clear()
    proxy.stop()
    assert _uses(created, s.config_hash) in (1, 2)  # the last write may land after close gave up
