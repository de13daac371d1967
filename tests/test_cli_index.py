"""``clientreg history/show/diff/prune/export`` through the real console script, on real index files."""

from __future__ import annotations

import json
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pytest

from registry.index import KeyIndex
from tests.cli_helpers import CLIENTREG, DAY, Seeded, clientreg, seed_index

CONFIG_KEYS = {"config_hash", "provider", "profiles", "first_seen", "last_seen", "uses", "config"}


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return seed_index(tmp_path / "seeded.sqlite", time.time())


def _local(at: float) -> str:
    return datetime.fromtimestamp(int(at)).strftime("%Y-%m-%d %H:%M:%S")


def test_console_script_is_the_one_next_to_this_python(tmp_path: Path) -> None:
    assert CLIENTREG.exists()
    version = clientreg("--version", cwd=tmp_path)
    assert (version.code, version.out) == (0, f"clientreg {metadata.version('clientreg')}\n")
    usage = clientreg(cwd=tmp_path)
    assert usage.code == 2 and "clientreg: the following arguments are required: COMMAND" in usage.err


def test_history_table_in_first_seen_order_with_local_times(tmp_path: Path, seeded: Seeded) -> None:
    result = clientreg("history", "--index", seeded.path, cwd=tmp_path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["FIRST", "SEEN", "LAST", "SEEN", "CONFIG", "PROVIDER", "USES", "PROFILES"]
    order = ["old", "fast", "slow", "twin_a", "twin_b"]
    assert [line.split()[4] for line in lines[1:]] == [seeded.hashes[n][:12] for n in order]
    fast = lines[2].split()
    assert " ".join(fast[:2]) == _local(seeded.now - 2 * DAY)
    assert " ".join(fast[2:4]) == _local(seeded.now - 3600)
    assert fast[5:] == ["openai", "10", "fast"]
    assert lines[4].split()[5:] == ["groq", "1", "-"]
    # Aligned: every row's CONFIG column starts where the header's does.
    column = lines[0].index("CONFIG")
    assert all(line[column : column + 12] in {seeded.hashes[n][:12] for n in order} for line in lines[1:])
    # USES is right-aligned under its header.
    end = lines[0].index("USES") + len("USES")
    assert {line[end - 1] for line in lines[1:]} <= set("0123456789")


def test_history_filters_and_json(tmp_path: Path, seeded: Seeded) -> None:
    def hashes(*args: str) -> list[str]:
        result = clientreg("history", "--index", seeded.path, "--json", *args, cwd=tmp_path)
        assert result.code == 0, result.err
        items = result.json()
        assert all(item.keys() >= CONFIG_KEYS for item in items)
        return [item["config_hash"] for item in items]

    h = seeded.hashes
    assert hashes() == [h["old"], h["fast"], h["slow"], h["twin_a"], h["twin_b"]]
    assert hashes("--profile", "fast") == [h["fast"], h["slow"]]
    assert hashes("--provider", "groq", "--limit", "1") == [h["twin_b"]]
    assert hashes("--since", "2h") == [h["fast"], h["slow"]]
    assert hashes("--since", datetime.fromtimestamp(seeded.now - 3 * DAY).isoformat()) == hashes()[1:]
    full = clientreg("history", "--index", seeded.path, "--json", "--limit", "1", cwd=tmp_path).json()[0]
    assert full["profiles"] == ["batch"] and full["uses"] == 2 and full["config"]["max_retries"] == 9
    none = clientreg("history", "--index", seeded.path, "--profile", "nobody", cwd=tmp_path)
    assert (none.code, none.out) == (0, f"no configs match in {seeded.path}\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "--since", "yesterday"], "clientreg: history: argument --since: 'yesterday' is neither"),
        (["history", "--limit", "0"], "clientreg: history: argument --limit: '0' is not a positive whole number"),
        (["prune", "--older-than", "30"], "clientreg: prune: argument --older-than: '30' is not a duration"),
        (["prune"], "clientreg: prune: the following arguments are required: --older-than"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, seeded: Seeded, args: list[str], message: str) -> None:
    result = clientreg(*args, "--index", seeded.path, cwd=tmp_path)
    assert result.code == 2 and message in result.err and result.out == ""


def test_show_by_prefix_with_redacted_config_and_events(tmp_path: Path, seeded: Seeded) -> None:
    slow = seeded.hashes["slow"]
    result = clientreg("show", slow[:6].upper(), "--index", seeded.path, cwd=tmp_path)
    assert result.code == 0, result.err
    assert f"config      {slow}\n" in result.out
    assert "profiles    fast\n" in result.out and "uses        4\n" in result.out
    assert "\nmax_retries                          5\n" in result.out
    assert "\ntransport.proxy_credentials          null\n" in result.out
    assert '"hmac-sha256:' in result.out and "sk-seed" not in result.out
    events = [line.split()[2] for line in result.out.split("TIME ")[1].splitlines()[1:]]
    assert events == ["first_seen", "built", "drift"]
    assert f"old_hash={seeded.hashes['fast']}" in result.out

    as_json = clientreg("show", slow, "--index", seeded.path, "--json", cwd=tmp_path)
    [item] = as_json.json()
    assert item.keys() >= CONFIG_KEYS and item["config_hash"] == slow
    assert [e["kind"] for e in item["events"]] == ["first_seen", "built", "drift"]


def test_show_unknown_ambiguous_and_malformed_prefixes_exit_1(tmp_path: Path, seeded: Seeded) -> None:
    ambiguous = clientreg("show", "abcd", "--index", seeded.path, cwd=tmp_path)
    assert ambiguous.code == 1 and ambiguous.out == ""
    assert ambiguous.err.startswith("clientreg: hash prefix 'abcd' is ambiguous: 2 configs match (abcd01111111, ")
    unknown = clientreg("show", "0000", "--index", seeded.path, cwd=tmp_path)
    assert (
        unknown.code == 1 and unknown.err == f"clientreg: no config in {seeded.path} has a hash starting with '0000'\n"
    )
    short = clientreg("diff", "abc", "abcd9", "--index", seeded.path, cwd=tmp_path)
    assert short.code == 1 and "'abc' is not a config hash prefix: give 4 to 64 hex digits" in short.err
    assert clientreg("show", "abcd0", "--index", seeded.path, cwd=tmp_path).code == 0


def test_diff_names_changed_fields_redacted(tmp_path: Path, seeded: Seeded) -> None:
    fast, slow = seeded.hashes["fast"], seeded.hashes["slow"]
    result = clientreg("diff", fast[:8], slow[:8], "--index", seeded.path, cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out.startswith(f"A  {fast[:12]}  openai  profiles: fast\nB  {slow[:12]}  openai  profiles: fast\n")
    rows = {line.split()[0]: line.split()[1:] for line in result.out.split("FIELD")[1].splitlines()[1:]}
    assert rows["max_retries"] == ["2", "5"] and rows["timeout"] == ["30.0", "60.0"]
    assert set(rows) == {"api_key", "max_retries", "timeout"}
    assert all(v.startswith('"hmac-sha256:') for v in rows["api_key"])

    changes = clientreg("diff", fast[:8], slow[:8], "--index", seeded.path, "--json", cwd=tmp_path).json()
    assert {c["field"]: (c["a"], c["b"]) for c in changes}["timeout"] == (30.0, 60.0)
    same = clientreg("diff", fast[:8], fast, "--index", seeded.path, cwd=tmp_path)
    assert same.code == 0 and "A and B are the same config" in same.out


def test_prune_dry_run_changes_nothing_then_prune_removes(tmp_path: Path, seeded: Seeded) -> None:
    old = seeded.hashes["old"]
    dry = clientreg("prune", "--older-than", "30d", "--dry-run", "--index", seeded.path, cwd=tmp_path)
    assert dry.code == 0, dry.err
    assert old[:12] in dry.out and "would remove 1 config " in dry.out and "(dry run: nothing removed)" in dry.out
    with KeyIndex(seeded.path, create=False) as index:
        assert index.get(old) is not None and index.events(old)

    real = clientreg("prune", "--older-than", "720h", "--index", seeded.path, "--json", cwd=tmp_path)
    assert real.code == 0 and [item["config_hash"] for item in real.json()] == [old]
    with KeyIndex(seeded.path, create=False) as index:
        assert index.get(old) is None and index.events(old) == []
        assert len(index.list_summaries()) == 4
    again = clientreg("prune", "--older-than", "30d", "--index", seeded.path, cwd=tmp_path)
    assert again.code == 0 and again.out.startswith("removed 0 configs last used before ")


def test_export_is_json_lines_with_events(tmp_path: Path, seeded: Seeded) -> None:
    result = clientreg("export", "--index", seeded.path, cwd=tmp_path)
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines[0]["config_hash"] == seeded.hashes["old"] and len(lines) == 5
    assert all(item.keys() >= CONFIG_KEYS | {"events"} for item in lines)
    assert [e["kind"] for e in lines[0]["events"]] == ["first_seen", "built"]


def test_read_commands_without_an_index_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "index.sqlite"  # the conftest's CLIENTREG_INDEX: the default location
    expected = f"clientreg: no index at {missing} yet: run `clientreg warm` or use the library\n"
    for args in (["history"], ["show", "abcd"], ["diff", "abcd", "abce"], ["prune", "--older-than", "1d"], ["export"]):
        result = clientreg(*args, cwd=tmp_path)
        assert (result.code, result.out, result.err) == (1, "", expected), args
    assert not missing.exists()  # reading never creates an index
    off = clientreg("history", cwd=tmp_path, env={"CLIENTREG_INDEX": "off"})
    assert off.code == 1 and "the key index is off" in off.err and "--index PATH" in off.err


def test_default_index_comes_from_the_settings_file(tmp_path: Path, seeded: Seeded) -> None:
    (tmp_path / "clientreg.toml").write_text(f'[index]\npath = "{seeded.path}"\n')
    env = {"CLIENTREG_INDEX": ""}  # empty: not set, so the settings' [index] path decides
    result = clientreg("history", "--limit", "1", cwd=tmp_path, env=env)
    assert result.code == 0 and seeded.hashes["twin_b"][:12] in result.out, result.err


def test_history_imports_no_sdk_and_no_pydantic_settings(tmp_path: Path, seeded: Seeded) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from registry.cli import main\n"
        f"assert main(['history', '--index', {str(seeded.path)!r}, '--profile', 'fast']) == 0\n"
        "heavy = [m for m in ('pydantic_settings', 'openai', 'groq', 'cerebras', 'httpx') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert seeded.hashes["slow"][:12] in done.stdout
