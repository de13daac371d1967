"""One record model, two stores: the same KeyIndex calls on a SQLite file and on the real PostgreSQL server."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.index import (
    ConfigUse,
    HashPrefixError,
    IndexMissingError,
    IndexRefusedError,
    IndexVersionError,
    KeyIndex,
    NewEvent,
)
from registry.index.fleet import fleet_drift, key_mismatch
from schemas import OpenAISettings
from tests.postgres_helpers import Schema, admin, new_schema_name, require_postgres, with_params

DAY = 86400.0


def _config(n: int = 0, **fields: Any) -> tuple[str, str]:
    """A real canonical JSON text and its hash (as the recorder writes them)."""
    settings = OpenAISettings(api_key=f"sk-store-{n:04d}", **fields)
    return settings.config_hash, settings.canonical_json()


def _use(
    n: int = 0,
    profile: str | None = "fast",
    *,
    at: float = 1000.0,
    uses: int = 0,
    kind: Any = "built",
    host: str = "web-1",
    pid: int = 11,
    key_id: str | None = "k1",
    **fields: Any,
) -> ConfigUse:
    config_hash, canonical = _config(n, **fields)
    detail = {"key_id": key_id} if kind is not None and key_id is not None else None
    return ConfigUse(config_hash, "openai", canonical, profile, at, uses, kind, host=host, pid=pid, detail=detail)


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    if request.param == "sqlite":
        yield tmp_path / "index.sqlite"
        return
    schema: Schema = request.getfixturevalue("pg_schema")
    yield schema.url


@pytest.fixture
def index(location: str | Path) -> Iterator[KeyIndex]:
    with KeyIndex(location) as opened:
        yield opened


def test_uses_profiles_hosts_and_times_merge_the_same_in_both(index: KeyIndex) -> None:
    h = _use().config_hash
    index.apply([_use(at=10.0, uses=1)])
    index.apply([_use(profile="slow", at=20.0, uses=3, host="web-2")])
    index.apply([_use(at=15.0, uses=2, kind=None)])
    record = index.get(h)
    assert record is not None
    assert (record.uses, record.profiles, record.hosts) == (6, ("fast", "slow"), ("web-1", "web-2"))
    assert (record.first_seen, record.last_seen) == (10.0, 20.0)
    assert record.config == json.loads(_config()[1])
    assert [e.kind for e in index.events(h)] == ["first_seen", "built", "built"]
    assert index.get("f" * 64) is None


def test_a_config_is_the_canonical_json_byte_for_byte(index: KeyIndex) -> None:
    index.apply([_use(7, timeout=12.5, max_retries=4)])
    config_hash, canonical = _config(7, timeout=12.5, max_retries=4)
    (line,) = index.config_lines()
    record = json.loads(line)
    again = json.dumps(record["config"], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert again == canonical and hashlib.sha256(again.encode()).hexdigest() == config_hash
    assert f'"config":{canonical}' in line  # spliced in as stored, not re-serialised


def test_drift_is_per_host(index: KeyIndex) -> None:
    old, new = _use(1, timeout=30.0), _use(2, timeout=60.0)
    assert index.apply([old]) == []
    # Another host building the other config is not this host's drift (it is the fleet's: below).
    assert index.apply([_use(2, at=2000.0, timeout=60.0, host="web-2")]) == []
    drifts = index.apply([_use(2, at=3000.0, timeout=60.0, host="web-1")])
    assert [(d.profile, d.old_hash, d.new_hash) for d in drifts] == [("fast", old.config_hash, new.config_hash)]
    assert ("timeout", 30.0, 60.0) in [(c.field, c.old, c.new) for c in drifts[0].changes]
    (event,) = [e for e in index.events(new.config_hash) if e.kind == "drift"]
    assert event.host == "web-1" and event.detail is not None and "timeout" in event.detail["fields"]
    heads = {(h.host, h.config_hash) for h in index.host_heads("fast")}
    assert heads == {("web-1", new.config_hash), ("web-2", new.config_hash)}


def test_a_drift_within_one_batch_compares_the_batchs_own_configs(index: KeyIndex) -> None:
    # The store takes the canonical JSON of a config the batch holds from the batch (not read back).
    old, new = _use(1, at=1000.0, timeout=30.0), _use(2, at=2000.0, timeout=60.0)
    again = _use(1, at=3000.0, uses=2, kind=None, timeout=30.0)
    drifts = index.apply([new, old, again])  # out of order: taken in time order
    assert [(d.old_hash, d.new_hash) for d in drifts] == [(old.config_hash, new.config_hash)]
    assert ("timeout", 30.0, 60.0) in [(c.field, c.old, c.new) for c in drifts[0].changes]
    assert [e.kind for e in index.events(new.config_hash)] == ["first_seen", "built", "drift"]
    assert [(e.kind, e.count) for e in index.events(old.config_hash)] == [("first_seen", 1), ("built", 1)]
    record = index.get(old.config_hash)
    assert record is not None and (record.uses, record.first_seen, record.last_seen) == (2, 1000.0, 3000.0)
    (head,) = index.host_heads("fast")
    assert (head.host, head.config_hash, head.since) == ("web-1", new.config_hash, 2000.0)
    # The head's config outside the batch is read from the index: drift back to the first config.
    (back,) = index.apply([_use(1, at=4000.0, timeout=30.0)])
    assert (back.old_hash, back.new_hash) == (new.config_hash, old.config_hash)


def test_hosts_that_disagree_at_the_same_time_are_the_fleets_drift(index: KeyIndex) -> None:
    now = time.time()
    index.apply([_use(1, at=now - 3600, uses=5, host="web-1", timeout=30.0)])
    index.apply([_use(1, at=now - 3500, uses=5, host="web-2", timeout=30.0)])
    index.apply([_use(2, at=now - 1800, uses=5, host="web-3", timeout=60.0)])
    index.apply([_use(1, at=now - 60, uses=1, host="web-1", kind=None, timeout=30.0)])
    index.apply([_use(1, at=now - 60, uses=1, host="web-2", kind=None, timeout=30.0)])
    index.apply([_use(2, at=now - 60, uses=1, host="web-3", kind=None, timeout=60.0)])
    # A host retired long before the others were started does not disagree with them.
    index.apply([_use(3, at=now - 30 * DAY, uses=1, host="old-1", timeout=5.0)])

    (drift,) = fleet_drift(index.host_heads(), index.get)
    reference, other = drift.configs
    assert drift.profile == "fast"
    assert (reference.config_hash, reference.hosts) == (_config(1, timeout=30.0)[0], ("web-1", "web-2"))
    assert (other.config_hash, other.hosts) == (_config(2, timeout=60.0)[0], ("web-3",))
    changed = {c.field: (c.old, c.new) for c in other.changes}
    assert changed["timeout"] == (30.0, 60.0) and "api_key" in changed
    assert fleet_drift(index.host_heads(), index.get, since=now + 1) == []
    assert fleet_drift(index.host_heads("slow"), index.get) == []


def test_history_filters_by_host_profile_provider_time_and_limit(index: KeyIndex) -> None:
    index.apply([_use(1, at=100.0, host="a")])
    index.apply([_use(2, "slow", at=200.0, host="b")])
    index.apply([_use(3, at=300.0, host="b")])
    index.apply([_use(1, at=400.0, uses=1, kind=None, host="c")])
    names = {_config(n)[0]: n for n in (1, 2, 3)}

    def listed(**kw: Any) -> list[int]:
        found = [names[r.config_hash] for r in index.list_configs(**kw)]
        summaries = [names[s.config_hash] for s in index.list_summaries(**kw)]
        lines = (
            [names[json.loads(line)["config_hash"]] for line in index.config_lines(**kw)]
            if "newest_first" not in kw
            else summaries
        )
        assert found == summaries == lines
        return found

    assert listed() == [1, 2, 3]
    assert listed(newest_first=True) == [3, 2, 1]
    assert listed(host="b") == [2, 3]
    assert listed(host="c") == [1]
    assert listed(host="nobody") == []
    assert listed(profile="fast") == [1, 3]
    assert listed(since=250.0) == [1, 3]
    assert listed(limit=2) == [2, 3]
    assert listed(profile="fast", host="b") == [3]
    assert listed(provider="groq") == []


def test_history_rows_are_the_summaries_as_the_history_table_shows_them(index: KeyIndex) -> None:
    index.apply([_use(1, at=100.75, host="a")])
    index.apply([_use(1, "slow\nline", at=250.5, uses=2, host="b")])
    index.apply([_use(2, None, at=299.999, uses=5)])
    index.apply([_use(3, "", at=1_700_000_000.25)])
    for kw in ({}, {"limit": 2}, {"profile": "fast"}, {"host": "b"}, {"since": 250.0}, {"profile": "nobody"}):
        summaries = index.list_summaries(**kw)
        rows = index.history_rows(**kw)
        assert len(rows) == len(summaries)
        for row, s in zip(rows, summaries, strict=True):
            config_hash, provider, profiles, first, last, uses = row
            assert s.config_hash.startswith(config_hash) and len(config_hash) >= 12
            assert (provider, profiles, uses) == (s.provider, ",".join(s.profiles), s.uses)
            assert (int(first), int(last)) == (int(s.first_seen), int(s.last_seen))
    assert [r[2] for r in index.history_rows()] == ["fast,slow\nline", "", ""]


def test_prefixes_recent_profiles_prune_and_retention(index: KeyIndex) -> None:
    now = time.time()
    index.apply([_use(1, "gone", at=now - 40 * DAY)])
    index.apply([_use(2, "kept", at=now - 3600)])
    index.apply([_use(2, "kept", at=now - 60, uses=3, kind=None)])
    h1, h2 = _config(1)[0], _config(2)[0]
    assert index.resolve(h2[:8].upper()) == h2
    with pytest.raises(HashPrefixError, match="no config"):
        index.resolve("0000" if not h1.startswith("0000") and not h2.startswith("0000") else "ffff")
    assert [(r.profile, r.config_hash) for r in index.recent_profiles(10)] == [("kept", h2), ("gone", h1)]
    assert [r.profile for r in index.recent_profiles(10, 86400)] == ["kept"]
    assert index.prune(30 * DAY, dry_run=True) == [h1]
    assert index.get(h1) is not None
    assert index.prune(30 * DAY) == [h1]
    assert index.get(h1) is None and index.events(h1) == []
    assert [r.profile for r in index.recent_profiles()] == ["kept"]
    assert index.prune_events(30 * 60, dry_run=True) == 2  # first_seen and built, an hour ago
    assert index.prune_events(30 * 60) == 2
    record = index.get(h2)
    assert record is not None and record.uses == 3 and index.events(h2) == []


def test_hosts_and_their_fingerprint_key_ids(index: KeyIndex) -> None:
    index.apply([_use(1, at=100.0, host="web-1", key_id="k1")])
    index.apply([_use(1, at=200.0, host="web-2", key_id="k1")])
    index.apply([_use(1, at=300.0, host="web-3", key_id="k2"), _use(1, at=50.0, uses=1, kind=None, host="web-4")])
    found = {h.host: (h.key_id, h.first_seen, h.last_seen) for h in index.hosts()}
    assert found == {
        "web-1": ("k1", 100.0, 100.0),
        "web-2": ("k1", 200.0, 200.0),
        "web-3": ("k2", 300.0, 300.0),
        "web-4": (None, 50.0, 50.0),
    }
    hosts = index.hosts()
    assert key_mismatch(hosts, "web-1", "k1") is None
    warning = key_mismatch(hosts, "web-3", "k2")
    assert warning is not None and "web-1, web-2" in warning and "CLIENTREG_FINGERPRINT_KEY" in warning


def test_event_repeats_coalesce_and_a_stored_event_keeps_its_id(index: KeyIndex) -> None:
    h = _use().config_hash
    index.apply([_use(at=1000.0)], [NewEvent(1001.0, h, "fast", "evicted", "web-1", 11)])
    index.apply([], [NewEvent(1500.0, h, "fast", "evicted", "web-1", 11, count=3, last_time=1600.0)])
    evicted = [e for e in index.events(h) if e.kind == "evicted"]
    assert [(e.count, e.time, e.until) for e in evicted] == [(4, 1001.0, 1600.0)]


def test_both_stores_export_the_same_lines_for_the_same_writes(tmp_path: Path, pg_schema: Schema) -> None:
    def write(index: KeyIndex) -> list[str]:
        index.apply(
            [_use(1, at=1000.0, uses=2, timeout=30.0)],
            [NewEvent(1001.0, _config(1, timeout=30.0)[0], "fast", "evicted", "web-1", 11)],
        )
        index.apply([_use(2, at=2000.0, uses=1, timeout=60.0)])  # drift on web-1
        index.apply([_use(2, "slow", at=2500.0, uses=4, host="web-2", timeout=60.0)])
        return list(index.export())

    with KeyIndex(tmp_path / "index.sqlite") as lite, KeyIndex(pg_schema.url) as fleet:
        # The same records, fields and values (a JSONB detail may list its keys in another order).
        assert [json.loads(line) for line in write(lite)] == [json.loads(line) for line in write(fleet)]
        assert list(lite.config_lines()) == list(fleet.config_lines())  # byte for byte
        assert lite.host_heads() == fleet.host_heads()
        assert lite.hosts() == fleet.hosts()
        assert lite.recent_profiles() == fleet.recent_profiles()


# ---- PostgreSQL only -------------------------------------------------------------------------------


def test_the_fleet_store_is_real_tables_with_jsonb_and_indexes(pg_schema: Schema) -> None:
    with KeyIndex(pg_schema.url) as index:
        index.apply([_use(1, uses=2)])
        assert index.location == pg_schema.url
    with admin() as conn:
        columns = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s",
                (pg_schema.name,),
            ).fetchall()
        )
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg_schema.name,))
        }
        config = conn.execute(
            f'SELECT f.config->>\'api_key\', f.config->\'transport\'->>\'verify\', c.uses '
            f'FROM "{pg_schema.name}".configs c JOIN "{pg_schema.name}".canonical_forms f USING (config_hash)'
        ).fetchone()
        versions = conn.execute(f'SELECT version FROM "{pg_schema.name}".clientreg_migrations').fetchall()
    assert columns["canonical_forms.config"] == "jsonb" and columns["events.detail"] == "jsonb"
    assert columns["canonical_forms.canonical"] == "text"
    assert columns["configs.first_seen"] == "timestamp with time zone"
    assert columns["configs.profiles"] == "ARRAY" and columns["configs.uses"] == "bigint"
    assert {"profile_heads.host", "hosts.key_id", "imports.source"} <= columns.keys()
    assert {"configs_first_seen", "configs_last_seen", "configs_hosts", "events_config", "events_last_time"} <= indexes
    assert config is not None and config[0].startswith("hmac-sha256:") and config[1:] == ("true", 2)
    assert versions == [(1,)]


def test_schemas_keep_tenants_apart(pg_schema: Schema) -> None:
    other = new_schema_name("other")
    try:
        with KeyIndex(pg_schema.url) as a, KeyIndex(with_params(pg_schema.url.split("?")[0], schema=other)) as b:
            a.apply([_use(1, uses=1)])
            b.apply([_use(2, uses=1)])
            assert [r.config_hash for r in a.list_configs()] == [_config(1)[0]]
            assert [r.config_hash for r in b.list_configs()] == [_config(2)[0]]
    finally:
        from tests.postgres_helpers import drop_schema

        drop_schema(other)


def test_a_reader_creates_nothing_and_never_writes(pg_schema: Schema) -> None:
    with pytest.raises(IndexMissingError, match=r"no clientreg index at postgresql://.*schema=clientreg_t_"):
        KeyIndex(pg_schema.url, read_only=True)
    with pytest.raises(IndexMissingError):
        KeyIndex(pg_schema.url, create=False)
    with admin() as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema.name,)).fetchone() is None
    KeyIndex(pg_schema.url).close()
    with KeyIndex(pg_schema.url, read_only=True) as reader:
        assert reader.list_configs() == []
        from registry.index import IndexUnavailableError

        with pytest.raises(IndexUnavailableError, match="read-only"):
            reader.apply([_use(1)])


def test_a_newer_layout_and_someone_elses_tables_are_refused_and_left_alone(pg_schema: Schema) -> None:
    KeyIndex(pg_schema.url).close()
    with admin() as conn:
        conn.execute(
            f'INSERT INTO "{pg_schema.name}".clientreg_migrations (version, description) VALUES (99, %s)', ("x",)
        )
    for read_only in (False, True):
        with pytest.raises(IndexVersionError, match="schema version 99"):
            KeyIndex(pg_schema.url, read_only=read_only)
    foreign = new_schema_name("foreign")
    try:
        with admin() as conn:
            conn.execute(f'CREATE SCHEMA "{foreign}"; CREATE TABLE "{foreign}".orders (id int)')
        with pytest.raises(IndexRefusedError, match=r"holds tables that are not a clientreg index \(orders\)"):
            KeyIndex(with_params(pg_schema.url.split("?")[0], schema=foreign))
        with admin() as conn:
            tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (foreign,)).fetchall()
        assert tables == [("orders",)]
    finally:
        from tests.postgres_helpers import drop_schema

        drop_schema(foreign)


@pytest.mark.parametrize("name", ["bad-name", "1st", "pg_catalog", "x" * 64, "a;drop"])
def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(name: str) -> None:
    with pytest.raises(IndexRefusedError, match="is not a schema name"):
        KeyIndex(f"postgresql://u:pw-secret@127.0.0.1:1/test?schema={name}")


def test_writers_racing_to_create_the_layout_make_one(pg_schema: Schema) -> None:
    require_postgres()
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_and_write(n: int) -> None:
        try:
            barrier.wait()
            # Lock waits far shorter than creating the layout takes: the losers retry, none fails.
            with KeyIndex(pg_schema.url, busy_timeout=0.001, retry_for=60) as index:
                index.apply([_use(1, uses=1, host=f"h{n}")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with KeyIndex(pg_schema.url, read_only=True) as index:
        record = index.get(_config(1)[0])
        assert record is not None and record.uses == 6 and len(record.hosts) == 6
        assert [e.kind for e in index.events(record.config_hash)].count("first_seen") == 1


def test_concurrent_writers_on_the_same_configs_lose_and_double_nothing(pg_schema: Schema) -> None:
    KeyIndex(pg_schema.url).close()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with KeyIndex(pg_schema.url, busy_timeout=0.05) as index:
                barrier.wait()
                for round_ in range(25):
                    # Each batch touches the same configs in a different order: rows are locked in one order.
                    order = list(range(6)) if (n + round_) % 2 else list(range(5, -1, -1))
                    index.apply(
                        [_use(k, f"p{k % 3}", at=1000.0 + round_, uses=1, kind=None, host=f"h{n}") for k in order]
                        + [_use(k, f"p{k % 3}", at=1000.0 + round_, host=f"h{n}", pid=n) for k in order[:2]]
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with KeyIndex(pg_schema.url, read_only=True) as index:
        assert sorted(r.uses for r in index.list_configs()) == [100] * 6
        assert sum(e.count for r in index.list_configs() for e in index.events(r.config_hash) if e.kind == "built") == (
            4 * 25 * 2
        )


def test_names_with_a_nul_character_are_stored_not_lost(pg_schema: Schema) -> None:
    with KeyIndex(pg_schema.url) as index:
        index.apply([_use(1, "bad\x00profile", uses=2, host="host\x00x")])
        (record,) = index.list_configs()
    assert record.uses == 2 and record.profiles == ("bad\ufffdprofile",) and record.hosts == ("host\ufffdx",)


def test_a_nul_in_an_event_detail_or_a_canonical_form_is_kept_as_text(pg_schema: Schema) -> None:
    config = {"provider": "openai", "default_headers": {"x-odd": "a\x00b"}}
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    config_hash = hashlib.sha256(canonical.encode()).hexdigest()
    detail = {"key_id": "k\x00", "nested": [{"x\x00": 1}]}
    use = ConfigUse(config_hash, "openai", canonical, "p", 1000.0, 1, "built", host="h", pid=1, detail=detail)
    evicted = NewEvent(1001.0, config_hash, "p", "evicted", "h", 1, {"why": "\x00"})
    with KeyIndex(pg_schema.url) as index:
        index.apply([use], [evicted, evicted])  # two of one event in one batch: one row, counted twice
        record = index.get(config_hash)
        events = {e.kind: e for e in index.events(config_hash)}
    assert record is not None and record.config == config  # the text form, exactly
    assert events["built"].detail == {"key_id": "k\ufffd", "nested": [{"x\ufffd": 1}]}
    assert (events["evicted"].detail, events["evicted"].count) == ({"why": "\ufffd"}, 2)
    with admin() as conn:
        (jsonb,) = conn.execute(
            f'SELECT config FROM "{pg_schema.name}".canonical_forms WHERE config_hash = %s', (config_hash,)
        ).fetchone()
    assert jsonb is None  # jsonb cannot hold NUL: no jsonb copy of this one
