"""``clientreg check`` and ``clientreg warm`` through the real console script, and secrets in all output."""

from __future__ import annotations

import time
from pathlib import Path

from registry.index import KeyIndex
from schemas import load_settings
from tests.cli_helpers import EXAMPLE, clientreg, seed_index

SECRET_KEY = "sk-live-Zq8v3Rk2Xw9PmT4n7HbY1cJd"
PROXY_PASSWORD = "pr0xy-Pa55w0rd-Vt6y"
HEADER_TOKEN = "tok-HeaderBearer-55aa71c3"
QUERY_KEY = "qk-QueryApiKey-19f0e2b7"
SECRETS = (SECRET_KEY, PROXY_PASSWORD, HEADER_TOKEN, QUERY_KEY)


def _secret_settings(tmp_path: Path) -> Path:
    path = tmp_path / "secret.toml"
    path.write_text(
        f"""
[profiles.main]
provider = "openai"
api_key = "{SECRET_KEY}"
base_url = "http://127.0.0.1:9/v1"
proxy = "http://svc-user:{PROXY_PASSWORD}@proxy.internal:3128"
default_headers = {{ "Authorization" = "Bearer {HEADER_TOKEN}", "X-Team" = "blue" }}
default_query = {{ "api_key" = "{QUERY_KEY}" }}

[profiles.slower]
provider = "openai"
api_key = "{SECRET_KEY}"
base_url = "http://127.0.0.1:9/v1"
timeout = 90
"""
    )
    return path


def test_check_example_with_no_keys_reports_them_and_exits_0(tmp_path: Path) -> None:
    result = clientreg("check", EXAMPLE, cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.err == ""
    expected = load_settings(EXAMPLE).profiles
    assert result.out.startswith(f"{EXAMPLE}: {len(expected)} profiles valid, {len(expected) - 1} without a key\n")
    table = result.out.split("\n\n")[1].splitlines()
    assert table[0].split() == ["PROFILE", "PROVIDER", "CONFIG", "KEY"]
    rows = {line.split()[0]: line.split(None, 3)[1:] for line in table[1:]}
    assert rows.keys() == expected.keys()
    for name, settings in expected.items():
        assert rows[name][:2] == [settings.provider, settings.config_hash[:12]]
    assert rows["openai"][2] == "no key: set OPENAI_API_KEY"
    assert rows["team_b"][2] == "no key: set TEAM_B_OPENAI_KEY"
    assert rows["groq"][2] == "no key: set GROQ_API_KEY"
    assert rows["local"][2] == "yes"
    assert f"\nlocal         {expected['local'].canonical_json()}\n" in result.out

    as_json = clientreg("check", EXAMPLE, "--json", cwd=tmp_path).json()
    by_name = {item["profile"]: item for item in as_json}
    assert by_name["groq"]["key"] is False and by_name["local"]["key"] is True
    assert by_name["cerebras"]["config"] == expected["cerebras"].canonical_dict()
    assert by_name["azure"]["config_hash"] == expected["azure"].config_hash


def test_check_finds_clientreg_toml_and_a_key_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "clientreg.toml").write_text('[profiles.fast]\nprovider = "groq"\n')
    result = clientreg("check", cwd=tmp_path, env={"GROQ_API_KEY": "gsk-from-the-environment-123"})
    assert result.code == 0 and "1 profile valid\n" in result.out and "fast     groq      " in result.out
    assert "gsk-from-the-environment-123" not in result.out
    (tmp_path / "elsewhere").mkdir()
    nothing = clientreg("check", cwd=tmp_path / "elsewhere")
    assert nothing.code == 1 and nothing.err.startswith(
        "clientreg: no settings file: pass FILE, set CLIENTREG_SETTINGS"
    )


def test_check_bad_files_exit_1_naming_file_profile_field(tmp_path: Path) -> None:
    (tmp_path / "typo.toml").write_text('[profiles.fast]\nprovider = "openai"\ntimout = 30\n')
    typo = clientreg("check", "typo.toml", cwd=tmp_path)
    assert (typo.code, typo.out) == (1, "")
    assert typo.err == (
        "clientreg: typo.toml: profile 'fast', field 'timout': unknown field 'timout'; did you mean 'timeout'?\n"
    )
    (tmp_path / "broken.toml").write_text('[profiles.fast]\nprovider = "openai"\ntimeout = \n')
    broken = clientreg("check", "broken.toml", cwd=tmp_path)
    assert broken.code == 1 and broken.err.startswith("clientreg: broken.toml: invalid TOML: ")
    assert "line 3" in broken.err
    (tmp_path / "provider.toml").write_text('[profiles.fast]\nprovider = "opnai"\n')
    provider = clientreg("check", "provider.toml", cwd=tmp_path)
    assert provider.code == 1 and "profile 'fast', field 'provider'" in provider.err
    missing = clientreg("check", "nope.toml", cwd=tmp_path)
    assert (missing.code, missing.err) == (1, "clientreg: nope.toml: settings file not found\n")
    (tmp_path / "empty.toml").write_text("# nothing yet\n")
    empty = clientreg("check", "empty.toml", cwd=tmp_path)
    assert empty.code == 1 and "empty.toml: no profiles" in empty.err


def test_warm_example_with_no_keys_builds_what_it_can_and_history_shows_it(tmp_path: Path) -> None:
    index = tmp_path / "index.sqlite"  # the conftest's CLIENTREG_INDEX: warm and history agree by default
    result = clientreg("warm", EXAMPLE, cwd=tmp_path)
    assert result.code == 0, result.err
    local = load_settings(EXAMPLE).profiles["local"]
    lines = result.out.splitlines()
    assert lines[0].split() == ["PROFILE", "PROVIDER", "CONFIG", "IMPORT", "MS", "BUILD", "MS", "RESULT"]
    rows = {line.split()[0]: line for line in lines[1:8]}
    assert rows["local"].split()[2] == local.config_hash[:12] and rows["local"].endswith("  built")
    assert float(rows["local"].split()[4]) > 0
    assert rows["groq"].endswith("  skipped: no key: set GROQ_API_KEY")
    assert rows["azure"].endswith("  skipped: no key: set AZURE_OPENAI_API_KEY")
    assert "built 1 of 7 profiles in " in result.out and f"; recorded in {index} (1 config in the index)" in result.out
    with KeyIndex(index, create=False) as opened:
        record = opened.get(local.config_hash)
        assert record is not None and record.profiles == ("local",)

    history = clientreg("history", "--json", cwd=tmp_path)
    assert [item["config_hash"] for item in history.json()] == [local.config_hash]
    again = clientreg("warm", EXAMPLE, "--index", tmp_path / "other.sqlite", cwd=tmp_path)
    assert again.code == 0 and f"recorded in {tmp_path / 'other.sqlite'} " in again.out


_PROVIDER_PROFILES = """
[profiles.vault]
provider = "openai"
api_key_provider = "vault-openai"

[profiles.imported]
provider = "groq"
api_key_provider = "getpass:getuser"

[profiles.entra]
provider = "azure_openai"
azure_endpoint = "https://r.openai.azure.com"
api_version = "2024-10-21"
azure_ad_token_provider = "entra"

[profiles.ad_token]
provider = "azure_openai"
azure_endpoint = "https://r.openai.azure.com"
api_version = "2024-10-21"

[profiles.nothing]
provider = "cerebras"
"""


def test_check_counts_key_providers_and_azure_tokens_as_credentials(tmp_path: Path) -> None:
    (tmp_path / "clientreg.toml").write_text(_PROVIDER_PROFILES)
    token = "ad-token-from-the-environment-0123456789"
    result = clientreg("check", cwd=tmp_path, env={"AZURE_OPENAI_AD_TOKEN": token})
    assert result.code == 0, result.err
    assert "5 profiles valid, 1 without a key\n" in result.out
    table = result.out.split("\n\n")[1].splitlines()
    keys = {line.split()[0]: line.split(None, 3)[3] for line in table[1:]}
    assert keys == {
        "vault": "key provider 'vault-openai': registered in code, not resolvable here",
        "imported": "key provider getpass:getuser",
        "entra": "token provider 'entra': registered in code, not resolvable here",
        "ad_token": "yes: Azure AD token",
        "nothing": "no key: set CEREBRAS_API_KEY",
    }
    assert token not in result.out
    as_json = {item["profile"]: item for item in clientreg("check", "--json", cwd=tmp_path).json()}
    assert {name: (item["key"], item["key_source"]) for name, item in as_json.items()} == {
        "vault": (True, "api_key_provider"),
        "imported": (True, "api_key_provider"),
        "entra": (True, "azure_ad_token_provider"),
        "ad_token": (False, None),  # no AZURE_OPENAI_AD_TOKEN in this run
        "nothing": (False, None),
    }


def test_warm_builds_profiles_with_import_references_and_says_why_it_skips_registered_names(
    tmp_path: Path,
) -> None:
    (tmp_path / "clientreg.toml").write_text(_PROVIDER_PROFILES)
    result = clientreg("warm", cwd=tmp_path, env={"AZURE_OPENAI_AD_TOKEN": "ad-token-0123456789abcdef"})
    assert result.code == 0, result.err
    rows = {line.split()[0]: line for line in result.out.splitlines()[1:6]}
    assert rows["imported"].endswith("  built")  # the provider is imported; asked for per request
    assert rows["ad_token"].endswith("  built")
    assert rows["vault"].endswith("  skipped: key provider 'vault-openai': registered in code, not resolvable here")
    assert rows["entra"].endswith("  skipped: token provider 'entra': registered in code, not resolvable here")
    assert rows["nothing"].endswith("  skipped: no key: set CEREBRAS_API_KEY")
    assert "built 2 of 5 profiles" in result.out


def test_warm_with_the_index_off_records_nothing(tmp_path: Path) -> None:
    result = clientreg("warm", EXAMPLE, cwd=tmp_path, env={"CLIENTREG_INDEX": "off"})
    assert result.code == 0 and "; the index is off, nothing recorded" in result.out
    assert not (tmp_path / "index.sqlite").exists()


def test_python_dash_m_registry_is_the_same_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "registry", "check", str(EXAMPLE)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0 and "7 profiles valid" in done.stdout


def test_no_secret_from_a_settings_file_reaches_any_output(tmp_path: Path) -> None:
    settings = _secret_settings(tmp_path)
    index = tmp_path / "index.sqlite"
    profiles = load_settings(settings).profiles
    main, slower = profiles["main"].config_hash, profiles["slower"].config_hash
    seed_index(tmp_path / "other.sqlite", time.time())
    bad = tmp_path / "bad.toml"
    bad.write_text(settings.read_text().replace("timeout = 90", f'timeout = "{SECRET_KEY}"'))
    runs = [
        clientreg("check", settings, cwd=tmp_path),
        clientreg("check", settings, "--json", cwd=tmp_path),
        clientreg("check", bad, cwd=tmp_path),
        clientreg("warm", settings, cwd=tmp_path),
        clientreg("history", cwd=tmp_path),
        clientreg("history", "--json", cwd=tmp_path),
        clientreg("show", main[:8], cwd=tmp_path),
        clientreg("show", slower[:8], "--json", cwd=tmp_path),
        clientreg("diff", main[:8], slower[:8], cwd=tmp_path),
        clientreg("diff", main[:8], slower[:8], "--json", cwd=tmp_path),
        clientreg("prune", "--older-than", "0s", "--dry-run", cwd=tmp_path),
        clientreg("export", cwd=tmp_path),
    ]
    assert [r.code for r in runs] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [r.err for r in runs]
    assert "built 2 of 2 profiles" in runs[3].out
    assert "proxy.internal:3128" in runs[6].out and "authorization" in runs[6].out  # shown, redacted
    for result in runs:
        for secret in SECRETS:
            assert secret not in result.out and secret not in result.err
    assert SECRET_KEY not in index.read_bytes().decode("utf-8", "replace")
