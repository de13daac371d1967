"""The ``clientreg`` console script on a PostgreSQL index: the same output as on a file, and the fleet commands."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from registry.index import ConfigUse, KeyIndex
from schemas import OpenAISettings, fingerprint_key_id
from tests.cli_helpers import Seeded, clientreg, seed_index
from tests.postgres_helpers import Schema, admin

HOUR = 3600.0


@pytest.fixture
def both(tmp_path: Path, pg_schema: Schema) -> tuple[Seeded, Seeded]:
    """The same five configs seeded into a SQLite file and into PostgreSQL."""
    now = time.time()
    return seed_index(tmp_path / "seeded.sqlite", now), seed_index(pg_schema.url, now)  # type: ignore[arg-type]


def _same(a: str, b: str, lite: Seeded, fleet: Seeded) -> None:
    def normal(text: str, where: object) -> str:
        # prune states its cutoff (now - AGE), which moves between the two runs.
        return re.sub(r"before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "before <cutoff>", text.replace(str(where), "<index>"))

    assert normal(a, lite.path) == normal(b, fleet.path)


def _times_dropped(value: Any) -> Any:
    """A --json value without its times (PostgreSQL keeps microseconds, a float keeps more)."""
    if isinstance(value, dict):
        return {
            k: _times_dropped(v)
            for k, v in value.items()
            if k not in {"time", "last_time", "first_seen", "last_seen", "cutoff"}
        }
    if isinstance(value, list):
        return [_times_dropped(v) for v in value]
    return value


@pytest.mark.parametrize(
    "args",
    [
        ["history"],
        ["history", "--profile", "fast"],
        ["history", "--provider", "groq", "--limit", "1"],
        ["history", "--since", "2h"],
        ["history", "--profile", "nobody"],
        ["show", "SLOW"],
        ["show", "abcd"],
        ["show", "0000"],
        ["diff", "FAST", "SLOW"],
        ["prune", "--older-than", "30d", "--dry-run"],
        ["hosts"],
        ["drift"],
    ],
)
def test_every_read_command_prints_the_same_for_both_stores(
    tmp_path: Path, both: tuple[Seeded, Seeded], args: list[str]
) -> None:
    lite, fleet = both
    args = [lite.hashes[a.lower()][:10] if a in {"SLOW", "FAST"} else a for a in args]
    a = clientreg(*args, "--index", lite.path, cwd=tmp_path)
    b = clientreg(*args, "--index", fleet.path, cwd=tmp_path)
    assert a.code == b.code
    _same(a.out, b.out, lite, fleet)
    _same(a.err, b.err, lite, fleet)
    if a.code == 0 and args[0] not in {"hosts", "drift"}:
        as_json_a = clientreg(*args, "--json", "--index", lite.path, cwd=tmp_path)
        as_json_b = clientreg(*args, "--json", "--index", fleet.path, cwd=tmp_path)
        assert _times_dropped(as_json_a.json()) == _times_dropped(as_json_b.json())


def test_prune_and_export_on_postgresql(tmp_path: Path, both: tuple[Seeded, Seeded]) -> None:
    _, fleet = both
    exported = [json.loads(line) for line in clientreg("export", "--index", fleet.path, cwd=tmp_path).out.splitlines()]
    assert exported[0]["config_hash"] == fleet.hashes["old"] and len(exported) == 5
    real = clientreg("prune", "--older-than", "720h", "--index", fleet.path, "--json", cwd=tmp_path)
    assert real.code == 0 and [item["config_hash"] for item in real.json()["configs"]] == [fleet.hashes["old"]]
    with KeyIndex(str(fleet.path), read_only=True) as index:
        assert index.get(fleet.hashes["old"]) is None and len(index.list_summaries()) == 4


def _fleet(url: str, now: float) -> dict[str, str]:
    """Three hosts: two resolve "fast" to timeout 30, one to timeout 60; "batch" agrees everywhere."""
    thirty = OpenAISettings(api_key="sk-cli-fleet", timeout=30)
    sixty = OpenAISettings(api_key="sk-cli-fleet", timeout=60)
    batch = OpenAISettings(api_key="sk-cli-batch")
    with KeyIndex(url) as index:
        for host, settings in (("web-1", thirty), ("web-2", thirty), ("web-3", sixty)):
            for profile, s in (("fast", settings), ("batch", batch)):
                index.apply(
                    [
                        ConfigUse(
                            s.config_hash,
                            "openai",
                            s.canonical_json(),
                            profile,
                            now - HOUR,
                            uses=3,
                            kind="built",
                            host=host,
                            detail={"key_id": "k-other" if host == "web-3" else "k-fleet"},
                        )
                    ]
                )
    return {"thirty": thirty.config_hash, "sixty": sixty.config_hash, "batch": batch.config_hash}


def test_drift_hosts_and_history_host_answer_fleet_questions(tmp_path: Path, pg_schema: Schema) -> None:
    hashes = _fleet(pg_schema.url, time.time())
    drift = clientreg("drift", "--index", pg_schema.url, cwd=tmp_path)
    assert drift.code == 0, drift.err
    lines = drift.out.splitlines()
    assert lines[0] == "1 profile resolves to different configs on different hosts:"
    assert lines[3].split()[:4] == ["fast", hashes["thirty"][:12], "web-1,", "web-2"]
    assert "(reference: most hosts)" in lines[3]
    assert lines[4].split()[:3] == ["fast", hashes["sixty"][:12], "web-3"] and "timeout 30.0 -> 60.0" in lines[4]
    assert "hosts use 2 fingerprint keys" in drift.out
    assert clientreg("drift", "--exit-code", "--index", pg_schema.url, cwd=tmp_path).code == 3
    (item,) = clientreg("drift", "--json", "--index", pg_schema.url, cwd=tmp_path).json()
    assert item["profile"] == "fast" and item["reference"] == hashes["thirty"]
    assert [c["hosts"] for c in item["configs"]] == [["web-1", "web-2"], ["web-3"]]
    assert {"field": "timeout", "a": 30.0, "b": 60.0} in item["configs"][1]["changes"]
    calm = clientreg("drift", "--profile", "batch", "--exit-code", "--index", pg_schema.url, cwd=tmp_path)
    assert calm.code == 0 and calm.out.startswith("no drift: profile 'batch' resolves to one config on all 3 hosts")
    recent = clientreg("drift", "--since", "1m", "--index", pg_schema.url, cwd=tmp_path)
    assert recent.out.startswith("no drift")  # nobody used it in the last minute

    hosts = clientreg("hosts", "--index", pg_schema.url, cwd=tmp_path)
    rows = [line.split() for line in hosts.out.splitlines()]
    assert [r[:2] for r in rows[1:]] == [["web-1", "k-fleet"], ["web-2", "k-fleet"], ["web-3", "k-other"]]
    assert hosts.out.splitlines()[3].endswith("another fingerprint key than most hosts")
    assert [h["host"] for h in clientreg("hosts", "--json", "--index", pg_schema.url, cwd=tmp_path).json()] == [
        "web-1",
        "web-2",
        "web-3",
    ]

    only = clientreg("history", "--host", "web-3", "--json", "--index", pg_schema.url, cwd=tmp_path).json()
    assert sorted(item["config_hash"] for item in only) == sorted([hashes["sixty"], hashes["batch"]])
    assert all("web-3" in item["hosts"] for item in only)
    show = clientreg("show", hashes["batch"][:8], "--index", pg_schema.url, cwd=tmp_path)
    assert "hosts       web-1, web-2, web-3\n" in show.out


def _host_history(path: Path, now: float) -> Seeded:
    """A host's own index: real configs (their hashes verify), profiles, uses, a drift and an eviction."""
    fast = OpenAISettings(api_key="sk-host-fast", timeout=30)
    slow = OpenAISettings(api_key="sk-host-fast", timeout=60)
    batch = OpenAISettings(api_key="sk-host-batch", max_retries=5)
    uses = [
        (fast, "fast", now - 2 * 86400, 4),
        (batch, "batch", now - 5 * HOUR, 2),
        (slow, "fast", now - 86400, 4),
        (fast, "fast", now - HOUR, 6),
        (batch, None, now - HOUR, 4),
    ]
    with KeyIndex(path) as index:
        for s, profile, at, n in uses:
            detail = {"key_id": fingerprint_key_id()}  # as the recorder writes a build
            use = ConfigUse(s.config_hash, "openai", s.canonical_json(), profile, at, n, "built", detail=detail)
            index.apply([use])
    return Seeded(path, {"fast": fast.config_hash, "slow": slow.config_hash, "batch": batch.config_hash}, now)


def lite_host(seeded: Seeded) -> str:
    """The host the file's history names (this machine, or $CLIENTREG_HOSTNAME)."""
    from registry.index.records import current_host

    return current_host()


def test_export_from_a_file_imported_twice_into_postgresql_counts_once(tmp_path: Path, pg_schema: Schema) -> None:
    lite = _host_history(tmp_path / "host.sqlite", time.time())
    export = clientreg("export", "--index", lite.path, cwd=tmp_path)
    (tmp_path / "host.jsonl").write_text(export.out)
    first = clientreg("import", "host.jsonl", "--index", pg_schema.url, "--json", cwd=tmp_path)
    assert first.code == 0, first.err
    assert first.json()["configs"] == 3 and first.json()["created"] == 3 and first.json()["uses_added"] == 20
    again = clientreg("import", "host.jsonl", "--index", pg_schema.url, cwd=tmp_path)
    assert again.code == 0 and "0 new, 0 uses added" in again.out
    (host,) = clientreg("hosts", "--json", "--index", pg_schema.url, cwd=tmp_path).json()
    assert host["host"] == lite_host(lite) and host["key_id"] == fingerprint_key_id()
    before = clientreg("history", "--json", "--index", lite.path, cwd=tmp_path).json()
    after = clientreg("history", "--json", "--index", pg_schema.url, cwd=tmp_path).json()
    assert [(i["config_hash"], i["uses"], i["profiles"]) for i in before] == [
        (i["config_hash"], i["uses"], i["profiles"]) for i in after
    ]
    for a, b in zip(before, after, strict=True):
        assert abs(a["first_seen"] - b["first_seen"]) < 1e-5 and abs(a["last_seen"] - b["last_seen"]) < 1e-5
    events = [
        json.loads(line)["events"]
        for line in clientreg("export", "--index", pg_schema.url, cwd=tmp_path).out.splitlines()
    ]
    assert [[e["kind"] for e in ev] for ev in events] == [
        [e["kind"] for e in json.loads(line)["events"]] for line in export.out.splitlines()
    ]

    # The host went on using its file; a later export adds only what grew.
    with KeyIndex(lite.path) as index:
        fast = index.get(lite.hashes["fast"])
        assert fast is not None
        index.apply([ConfigUse(fast.config_hash, "openai", fast.config, "fast", time.time(), uses=7)])
    (tmp_path / "later.jsonl").write_text(clientreg("export", "--index", lite.path, cwd=tmp_path).out)
    later = clientreg("import", "later.jsonl", "--index", pg_schema.url, "--json", cwd=tmp_path).json()
    assert (later["created"], later["uses_added"]) == (0, 7)
    with KeyIndex(pg_schema.url, read_only=True) as index:
        record = index.get(lite.hashes["fast"])
        assert record is not None and record.uses == 17 and record.hosts == fast.hosts


def test_a_tampered_export_is_refused_whole_with_the_line(tmp_path: Path, pg_schema: Schema) -> None:
    lite = _host_history(tmp_path / "host.sqlite", time.time())
    lines = clientreg("export", "--index", lite.path, cwd=tmp_path).out.splitlines()
    record = json.loads(lines[2])
    record["config"]["timeout"] = 1.0  # altered after export: no longer the config its hash names
    lines[2] = json.dumps(record)
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    bad = clientreg("import", "bad.jsonl", "--index", pg_schema.url, cwd=tmp_path)
    assert bad.code == 1 and bad.out == ""
    assert bad.err == (
        f"clientreg: bad.jsonl:3: config {record['config_hash'][:12]} does not hash to its config_hash "
        "(altered, or not an export)\n"
    )
    (tmp_path / "junk.jsonl").write_text("hello\n")
    junk = clientreg("import", "junk.jsonl", "--index", pg_schema.url, cwd=tmp_path)
    assert junk.code == 1 and "junk.jsonl:1: not a JSON object" in junk.err
    with admin() as conn:  # nothing was written, not even the tables
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema.name,)).fetchone() is None
    into_file = clientreg("import", "bad.jsonl", "--index", tmp_path / "other.sqlite", cwd=tmp_path)
    assert into_file.code == 1 and "bad.jsonl:3" in into_file.err
    lines[2] = json.dumps(json.loads(clientreg("export", "--index", lite.path, cwd=tmp_path).out.splitlines()[2]))
    (tmp_path / "good.jsonl").write_text("\n".join(lines) + "\n")
    not_fleet = clientreg("import", "good.jsonl", "--index", tmp_path / "other.sqlite", cwd=tmp_path)
    assert not_fleet.code == 1 and "clientreg import writes into a fleet index" in not_fleet.err


def test_reading_a_missing_fleet_index_creates_nothing_and_migrate_creates_it(
    tmp_path: Path, pg_schema: Schema
) -> None:
    missing = clientreg("history", "--index", pg_schema.url, cwd=tmp_path)
    assert (missing.code, missing.out) == (1, "")
    assert missing.err == f"clientreg: no index at {pg_schema.url} yet: run `clientreg warm` or use the library\n"
    with admin() as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema.name,)).fetchone() is None
    made = clientreg("migrate", "--index", pg_schema.url, cwd=tmp_path)
    assert (made.code, made.out) == (0, f"{pg_schema.url}: clientreg index, schema version 1\n")
    empty = clientreg("history", "--index", pg_schema.url, cwd=tmp_path)
    assert (empty.code, empty.out) == (0, f"no configs recorded in {pg_schema.url}\n")


def test_the_index_url_from_the_environment_and_from_the_settings_file(tmp_path: Path, pg_schema: Schema) -> None:
    settings = tmp_path / "clientreg.toml"
    settings.write_text(
        f'[index]\nurl = "{pg_schema.url}"\n\n[profiles.fast]\nprovider = "openai"\napi_key = "sk-cli-settings"\n'
    )
    warm = clientreg("warm", settings, cwd=tmp_path, env={"CLIENTREG_INDEX": ""})
    assert warm.code == 0, warm.err
    assert f"recorded in {pg_schema.url} (1 config in the index)" in warm.out
    from_env = clientreg("history", cwd=tmp_path, env={"CLIENTREG_INDEX": pg_schema.url})
    assert from_env.code == 0 and "fast" in from_env.out
    settings.write_text(
        f'[index]\nurl = "{pg_schema.url}"\npath = "x.sqlite"\n\n[profiles.fast]\nprovider = "openai"\n'
    )
    both = clientreg("check", settings, cwd=tmp_path)
    assert both.code == 1 and "set [index] url or [index] path, not both" in both.err


def test_the_index_option_also_goes_before_the_command(tmp_path: Path, both: tuple[Seeded, Seeded]) -> None:
    _, fleet = both
    after = clientreg("history", "--index", fleet.path, cwd=tmp_path)
    before = clientreg("--index", fleet.path, "history", cwd=tmp_path)
    assert before.code == after.code == 0 and before.out == after.out
    assert clientreg("--index", fleet.path, "hosts", "--json", cwd=tmp_path).code == 0
