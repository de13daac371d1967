"""load_settings: the TOML file, CLIENTREG_* variables, path resolution, bad input, the example."""

from __future__ import annotations

import os
import re
import sys
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

import schemas
from schemas import (
    AzureOpenAISettings,
    CerebrasSettings,
    GroqSettings,
    OpenAISettings,
    SettingsError,
    TimeoutParts,
    load_settings,
)
from schemas._paths import MAX_SETTINGS_FILE_SIZE, read_settings_file, user_config_dir

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "settings.example.toml"
ISOLATED_PREFIXES = ("OPENAI_", "AZURE_", "GROQ_", "CEREBRAS_", "CLIENTREG_", "TEAM_")

MAIN = """
[profiles.main]
provider = "openai"
timeout = 30
max_retries = 4
default_headers = { "X-Team" = "search" }
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) and name != "CLIENTREG_FINGERPRINT_KEY":
            monkeypatch.delenv(name)
    # No ./clientreg.toml and no user config file unless a test writes one.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "appdata"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- reading the file -----------------------------------------------------------------------


def test_loads_profiles_from_the_named_file(tmp_path: Path) -> None:
    file = write(tmp_path / "settings.toml", MAIN)
    settings = load_settings(file)
    profile = settings.profiles["main"]
    assert isinstance(profile, OpenAISettings)
    assert profile.timeout == 30.0
    assert profile.max_retries == 4
    assert dict(profile.default_headers) == {"X-Team": "search"}
    assert settings.path == file


def test_path_may_be_a_string(tmp_path: Path) -> None:
    file = write(tmp_path / "settings.toml", MAIN)
    assert load_settings(str(file)).profiles["main"].max_retries == 4


def test_profile_equals_the_same_settings_built_in_code(tmp_path: Path) -> None:
    file = write(tmp_path / "settings.toml", MAIN)
    built = OpenAISettings(timeout=30, max_retries=4, default_headers={"X-Team": "search"})
    assert load_settings(file).profiles["main"].config_hash == built.config_hash


def test_profiles_are_discriminated_by_provider(tmp_path: Path) -> None:
    file = write(
        tmp_path / "settings.toml",
        """
        [profiles.a]
        provider = "openai"
        organization = "org-1"
        [profiles.b]
        provider = "azure_openai"
        azure_endpoint = "https://x.openai.azure.com"
        api_version = "2024-10-21"
        [profiles.c]
        provider = "groq"
        [profiles.d]
        provider = "cerebras"
        warm_tcp_connection = true
        """,
    )
    profiles = load_settings(file).profiles
    assert isinstance(profiles["a"], OpenAISettings) and profiles["a"].organization == "org-1"
    assert isinstance(profiles["b"], AzureOpenAISettings) and profiles["b"].api_version == "2024-10-21"
    assert isinstance(profiles["c"], GroqSettings) and profiles["c"].timeout == GroqSettings().timeout
    assert isinstance(profiles["d"], CerebrasSettings) and profiles["d"].warm_tcp_connection is True


def test_timeout_parts_from_an_inline_table(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[profiles.x]\nprovider = "groq"\ntimeout = { connect = 2, read = 90 }\n')
    assert load_settings(file).profiles["x"].timeout == TimeoutParts(connect=2, read=90)


def test_index_table(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[index]\npath = "/data/clientreg.sqlite"\nenabled = false\n')
    index = load_settings(file).index
    assert index.path == "/data/clientreg.sqlite"
    assert index.enabled is False


def test_index_defaults_when_absent(tmp_path: Path) -> None:
    index = load_settings(write(tmp_path / "s.toml", MAIN)).index
    assert index.path is None
    assert index.enabled is True


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "s.toml", MAIN))
    with pytest.raises(ValueError):
        settings.index = schemas.IndexSettings(enabled=False)
    with pytest.raises(ValueError):
        settings.index.enabled = False  # type: ignore[misc]


def test_empty_file_gives_empty_settings(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "s.toml", ""))
    assert settings.profiles == {}
    assert settings.index.enabled is True


def test_profiles_take_sdk_variables_and_api_key_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    monkeypatch.setenv("TEAM_B_OPENAI_KEY", "sk-team-b")
    file = write(
        tmp_path / "s.toml",
        '[profiles.a]\nprovider = "openai"\n[profiles.b]\nprovider = "openai"\napi_key_env = "TEAM_B_OPENAI_KEY"\n',
    )
    profiles = load_settings(file).profiles
    assert profiles["a"].api_key is not None and profiles["a"].api_key.get_secret_value() == "sk-default"
    assert profiles["b"].api_key is not None and profiles["b"].api_key.get_secret_value() == "sk-team-b"
    assert profiles["a"].config_hash != profiles["b"].config_hash


# ---- the environment: CLIENTREG_ prefix, "__" nesting -----------------------------------------


def test_env_overrides_a_profile_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", MAIN)
    monkeypatch.setenv("CLIENTREG_PROFILES__MAIN__TIMEOUT", "45")
    profile = load_settings(file).profiles["main"]
    assert profile.timeout == 45.0
    # The rest of the profile still comes from the file.
    assert isinstance(profile, OpenAISettings)
    assert profile.max_retries == 4
    assert dict(profile.default_headers) == {"X-Team": "search"}


def test_env_overrides_nested_values_and_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", MAIN + '[index]\npath = "/from/file"\n')
    monkeypatch.setenv("CLIENTREG_PROFILES__MAIN__DEFAULT_HEADERS", '{"X-Team": "ranking"}')
    monkeypatch.setenv("CLIENTREG_PROFILES__MAIN__MAX_RETRIES", "0")
    monkeypatch.setenv("CLIENTREG_INDEX__ENABLED", "false")
    settings = load_settings(file)
    assert dict(settings.profiles["main"].default_headers) == {"X-Team": "ranking"}
    assert settings.profiles["main"].max_retries == 0
    assert settings.index.enabled is False
    assert settings.index.path == "/from/file"


def test_env_adds_a_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", MAIN)
    monkeypatch.setenv("CLIENTREG_PROFILES__EXTRA__PROVIDER", "cerebras")
    monkeypatch.setenv("CLIENTREG_PROFILES__EXTRA__TIMEOUT", "7")
    profiles = load_settings(file).profiles
    assert set(profiles) == {"main", "extra"}
    assert isinstance(profiles["extra"], CerebrasSettings) and profiles["extra"].timeout == 7.0


def test_env_alone_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTREG_PROFILES__FAST__PROVIDER", "groq")
    monkeypatch.setenv("CLIENTREG_PROFILES__FAST__API_KEY_ENV", "TEAM_GROQ")
    monkeypatch.setenv("TEAM_GROQ", "gsk-team")
    settings = load_settings()
    assert settings.path is None
    fast = settings.profiles["fast"]
    assert isinstance(fast, GroqSettings)
    assert fast.config_hash == GroqSettings(api_key="gsk-team").config_hash


def test_file_value_beats_default(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[profiles.a]\nprovider = "groq"\nmax_retries = 7\n')
    profile = load_settings(file).profiles["a"]
    assert profile.max_retries == 7
    assert profile.timeout == GroqSettings().timeout  # not in the file: the default


def test_init_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTREG_PROFILES__MAIN__PROVIDER", "openai")
    monkeypatch.setenv("CLIENTREG_PROFILES__MAIN__TIMEOUT", "45")
    monkeypatch.setenv("CLIENTREG_INDEX__PATH", "/from/env")
    settings = schemas.RegistrySettings(
        profiles={"main": {"provider": "openai", "timeout": 10}},
        index={"path": "/from/init"},
    )
    assert settings.profiles["main"].timeout == 10.0
    assert settings.index.path == "/from/init"


@pytest.mark.parametrize("value", ["off", "/somewhere/index.sqlite", "0", "false"])
def test_clientreg_index_is_not_a_settings_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    # CLIENTREG_INDEX is read by the registry, not merged into [index].
    file = write(tmp_path / "s.toml", MAIN + '[index]\npath = "/from/file"\n')
    monkeypatch.setenv("CLIENTREG_INDEX", value)
    settings = load_settings(file)
    assert settings.index.path == "/from/file"
    assert settings.index.enabled is True


def test_clientreg_settings_is_not_a_settings_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", MAIN)
    monkeypatch.setenv("CLIENTREG_SETTINGS", str(file))
    monkeypatch.setenv("CLIENTREG_INDEX", "off")
    settings = load_settings()
    assert settings.path == file
    assert set(settings.profiles) == {"main"}


# ---- where the file is found --------------------------------------------------------------------


def _profile_file(path: Path, marker: int) -> Path:
    return write(path, f'[profiles.which]\nprovider = "openai"\nmax_retries = {marker}\n')


def _which(settings: schemas.RegistrySettings) -> int:
    return settings.profiles["which"].max_retries


@pytest.fixture
def four_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    files = {
        "argument": _profile_file(tmp_path / "arg.toml", 1),
        "variable": _profile_file(tmp_path / "var.toml", 2),
        "cwd": _profile_file(Path.cwd() / "clientreg.toml", 3),
        "user": _profile_file(user_config_dir() / "clientreg.toml", 4),
    }
    monkeypatch.setenv("CLIENTREG_SETTINGS", str(files["variable"]))
    return files


def test_argument_comes_first(four_files: dict[str, Path]) -> None:
    settings = load_settings(four_files["argument"])
    assert _which(settings) == 1
    assert settings.path == four_files["argument"]


def test_then_the_clientreg_settings_variable(four_files: dict[str, Path]) -> None:
    settings = load_settings()
    assert _which(settings) == 2
    assert settings.path == four_files["variable"]


def test_then_clientreg_toml_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, four_files: dict[str, Path]
) -> None:
    monkeypatch.delenv("CLIENTREG_SETTINGS")
    settings = load_settings()
    assert _which(settings) == 3
    assert settings.path is not None and settings.path.resolve() == four_files["cwd"].resolve()


def test_then_the_user_config_dir(monkeypatch: pytest.MonkeyPatch, four_files: dict[str, Path], tmp_path: Path) -> None:
    monkeypatch.delenv("CLIENTREG_SETTINGS")
    four_files["cwd"].unlink()
    settings = load_settings()
    assert _which(settings) == 4
    assert settings.path == four_files["user"]
    if sys.platform.startswith("linux"):
        assert settings.path == tmp_path / "xdg-config" / "clientreg" / "clientreg.toml"


def test_no_file_anywhere_gives_empty_settings() -> None:
    settings = load_settings()
    assert settings.profiles == {}
    assert settings.path is None


def test_working_directory_is_read_when_changed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    _profile_file(first / "clientreg.toml", 5)
    _profile_file(second / "clientreg.toml", 6)
    monkeypatch.chdir(first)
    assert _which(load_settings()) == 5
    monkeypatch.chdir(second)
    assert _which(load_settings()) == 6


def test_missing_file_named_by_argument_is_an_error(tmp_path: Path) -> None:
    _profile_file(Path.cwd() / "clientreg.toml", 3)  # present, but not what was asked for
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError) as info:
        load_settings(missing)
    assert str(missing) in str(info.value)
    assert "not found" in str(info.value)
    assert info.value.path == str(missing)


def test_missing_file_named_by_variable_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _profile_file(Path.cwd() / "clientreg.toml", 3)
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("CLIENTREG_SETTINGS", str(missing))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(missing) in str(info.value)


def test_directory_instead_of_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path)
    assert str(tmp_path) in str(info.value)


# ---- only regular files of a sane size are read ------------------------------------------------


def _load_in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException | object]]:
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=20)
    return thread, outcome


def _unblock(fifo: Path) -> None:
    # A reader stuck in open() on the FIFO (the behaviour this guards against) is released.
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("how", ["argument", "CLIENTREG_SETTINGS"])
def test_a_fifo_is_refused_without_blocking(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str) -> None:
    fifo = tmp_path / "clientreg.toml"
    os.mkfifo(fifo)
    if how == "CLIENTREG_SETTINGS":
        monkeypatch.setenv("CLIENTREG_SETTINGS", str(fifo))
        thread, outcome = _load_in_thread(load_settings)
    else:
        thread, outcome = _load_in_thread(lambda: load_settings(fifo))
    blocked = thread.is_alive()
    _unblock(fifo)
    assert not blocked, "load_settings blocked on a FIFO"
    assert len(outcome) == 1 and isinstance(outcome[0], SettingsError), outcome
    assert str(fifo) in str(outcome[0]) and "FIFO" in str(outcome[0])
    assert outcome[0].path == str(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_device_is_refused_without_reading_it() -> None:
    thread, outcome = _load_in_thread(lambda: load_settings("/dev/zero"))
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], SettingsError), outcome
    assert "/dev/zero" in str(outcome[0]) and "device" in str(outcome[0])


def test_a_directory_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path)
    assert str(tmp_path) in str(info.value) and "a directory" in str(info.value)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"# padding\n" * (MAX_SETTINGS_FILE_SIZE // 10 + 1))
    with pytest.raises(SettingsError) as info:
        load_settings(big)
    assert str(big) in str(info.value) and "larger than 1 MiB" in str(info.value)
    # Just under the limit is fine.
    big.write_bytes(b"#" * (MAX_SETTINGS_FILE_SIZE - 1))
    assert load_settings(big).profiles == {}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_symlink_to_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "clientreg.toml"
    link.symlink_to(fifo)
    thread, outcome = _load_in_thread(lambda: read_settings_file(link))
    blocked = thread.is_alive()
    _unblock(fifo)
    assert not blocked
    assert isinstance(outcome[0], SettingsError) and str(link) in str(outcome[0])


def test_read_settings_file_reads_a_regular_file_and_a_symlink_to_one(tmp_path: Path) -> None:
    file = write(tmp_path / "real.toml", MAIN)
    link = tmp_path / "link.toml"
    link.symlink_to(file)
    assert read_settings_file(file) == read_settings_file(str(link)) == MAIN.encode()
    with pytest.raises(SettingsError) as info:
        read_settings_file(tmp_path / "missing.toml")
    assert "not found" in str(info.value) and info.value.path == str(tmp_path / "missing.toml")


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[profiles.main]\nprovider = "openai"\ntimeout = \n', 3),
        ('[profiles.main]\nprovider = "openai"\n\n\napi_key = "unterminated\n', 5),
        ('[profiles.main\nprovider = "openai"\n', 1),
        ('[profiles.main]\nprovider = "openai"\nprovider = "groq"\n', 3),
    ],
    ids=["missing value", "unterminated string", "unclosed table header", "duplicate key"],
)
def test_invalid_toml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    file = write(tmp_path / "broken.toml", text)
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert str(file) in message
    assert "invalid TOML" in message
    assert re.search(rf"\bline {line}\b", message), message
    assert info.value.path == str(file)


def test_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "latin1.toml"
    file.write_bytes('[profiles.main]\nprovider = "openai"\norganization = "\xe9"\n'.encode("latin-1"))
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    assert str(file) in str(info.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("timeout = -1", "timeout"),
        ('timeout = "soon"', "timeout"),
        ("max_retries = -1", "max_retries"),
        ('base_url = "ftp://files.example"', "base_url"),
        ('base_url = "localhost:8000"', "base_url"),
        ("default_headers = { X-Team = 1 }", "default_headers"),
        ("max_connections = 0", "max_connections"),
        ('verify = ["x"]', "verify"),
    ],
)
def test_validation_error_names_file_profile_and_field(tmp_path: Path, body: str, field: str) -> None:
    file = write(
        tmp_path / "s.toml", f'[profiles.ok]\nprovider = "groq"\n[profiles.main]\nprovider = "openai"\n{body}\n'
    )
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert str(file) in message
    assert "profile 'main'" in message
    assert f"field '{field}" in message
    assert "'ok'" not in message
    assert info.value.path == str(file)
    assert info.value.profile == "main"
    assert info.value.field is not None and info.value.field.startswith(field)


def test_unknown_profile_field_names_the_near_match(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[profiles.main]\nprovider = "openai"\nmax_retires = 3\n')
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert str(file) in message and "profile 'main'" in message
    assert "max_retires" in message and "did you mean 'max_retries'?" in message
    assert info.value.field == "max_retires"


def test_field_of_another_provider_is_unknown_in_a_profile(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[profiles.g]\nprovider = "groq"\norganization = "org-1"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    assert "profile 'g'" in str(info.value) and "organization" in str(info.value)


def test_unknown_provider_names_the_choices(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[profiles.main]\nprovider = "openia"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert str(file) in message and "profile 'main'" in message
    assert info.value.field == "provider"
    for provider in ("openai", "azure_openai", "groq", "cerebras"):
        assert f"'{provider}'" in message


def test_missing_provider_is_an_error(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", "[profiles.main]\ntimeout = 3\n")
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    assert "profile 'main'" in str(info.value)
    assert info.value.field == "provider"


def test_model_level_error_names_the_profile(tmp_path: Path) -> None:
    file = write(
        tmp_path / "s.toml",
        '[profiles.az]\nprovider = "azure_openai"\nazure_endpoint = "https://a.openai.azure.com"\n'
        'base_url = "https://b.openai.azure.com/openai"\n',
    )
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    assert str(file) in str(info.value)
    assert "profile 'az'" in str(info.value)
    assert info.value.profile == "az"


def test_unknown_table_is_an_error_with_a_hint(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", MAIN + '[indx]\npath = "x"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert str(file) in message and "indx" in message and "did you mean 'index'?" in message


def test_bad_index_value_names_the_index_field(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[index]\nenabled = "sometimes"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert str(file) in message and "[index]" in message and "enabled" in message
    assert info.value.field == "enabled"


def test_every_bad_profile_is_reported(tmp_path: Path) -> None:
    file = write(
        tmp_path / "s.toml",
        '[profiles.one]\nprovider = "openai"\ntimeout = -1\n[profiles.two]\nprovider = "groq"\nmax_retries = -2\n',
    )
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert "profile 'one', field 'timeout'" in message
    assert "profile 'two', field 'max_retries'" in message


def test_bad_env_value_names_the_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", MAIN)
    monkeypatch.setenv("CLIENTREG_PROFILES__MAIN__TIMEOUT", "-3")
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    assert "profile 'main', field 'timeout'" in str(info.value)


def test_env_value_that_is_not_json_is_a_settings_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLIENTREG_PROFILES", "{not json")
    with pytest.raises(SettingsError) as info:
        load_settings(write(tmp_path / "s.toml", MAIN))
    assert "environment" in str(info.value)


# ---- settings.example.toml ----------------------------------------------------------------------


def test_example_loads_and_every_profile_validates() -> None:
    settings = load_settings(EXAMPLE)
    profiles = settings.profiles
    providers = {type(p) for p in profiles.values()}
    assert providers == {OpenAISettings, AzureOpenAISettings, GroqSettings, CerebrasSettings}
    for name, profile in profiles.items():
        assert re.fullmatch(r"[0-9a-f]{64}", profile.config_hash), name
        # Round trip: the profile rebuilt from its own values is the same configuration.
        assert type(profile)(**profile.model_dump()).config_hash == profile.config_hash, name
    assert len({p.config_hash for p in profiles.values()}) == len(profiles)
    assert settings.index.enabled is True  # [index] is commented out


def test_example_has_a_local_openai_compatible_server() -> None:
    profiles = load_settings(EXAMPLE).profiles
    local = [
        p for p in profiles.values() if isinstance(p, OpenAISettings) and p.base_url == "http://localhost:11434/v1"
    ]
    assert len(local) == 1


def test_example_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = {
        "OPENAI_API_KEY": "sk-env-openai",
        "GROQ_API_KEY": "gsk-env-groq",
        "CEREBRAS_API_KEY": "csk-env-cerebras",
        "AZURE_OPENAI_API_KEY": "az-env-azure",
        "TEAM_B_OPENAI_KEY": "sk-env-team-b",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    profiles = load_settings(EXAMPLE).profiles
    keys = {p.api_key.get_secret_value() for p in profiles.values() if p.api_key is not None}
    assert set(variables.values()) <= keys
    for profile in profiles.values():
        if isinstance(profile, GroqSettings):
            assert profile.api_key is not None and profile.api_key.get_secret_value() == "gsk-env-groq"
        if isinstance(profile, CerebrasSettings):
            assert profile.warm_tcp_connection is False


def test_example_holds_no_secret() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for name, profile in data["profiles"].items():
        key = profile.get("api_key")
        # Only a placeholder for a local server that ignores keys.
        assert key is None or (len(key) < 12 and profile.get("base_url", "").startswith("http://localhost")), name
        proxy = profile.get("proxy", "")
        assert "@" not in proxy, name
    assert not re.search(r"\b(sk|gsk|csk)[-_][A-Za-z0-9]{8,}", text)
    assert not re.search(r"[0-9a-f]{32}", text)


def test_example_index_table_works_when_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    uncommented = re.sub(r"^# (\[index\]|path = |enabled = )", r"\1", text, flags=re.MULTILINE)
    assert uncommented != text
    settings = load_settings(write(tmp_path / "clientreg.toml", uncommented))
    assert settings.index.path is not None
    assert settings.index.enabled is True


# ---- overrides from the environment: the variable is named ---------------------------------------


def test_an_override_with_a_typo_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[profiles.fast]\nprovider = "openai"\n')
    monkeypatch.setenv("CLIENTREG_PROFILES__FAST__TIMOUT", "5")
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert message.startswith("CLIENTREG_PROFILES__FAST__TIMOUT: profile 'fast', field 'timout'")
    assert "did you mean 'timeout'?" in message
    assert str(file) not in message.split(":")[0]
    assert info.value.variable == "CLIENTREG_PROFILES__FAST__TIMOUT"
    assert (info.value.profile, info.value.field) == ("fast", "timout")


def test_a_bad_override_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", MAIN)
    monkeypatch.setenv("CLIENTREG_PROFILES__MAIN__TIMEOUT", "-3")
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    assert str(info.value).startswith("CLIENTREG_PROFILES__MAIN__TIMEOUT: profile 'main', field 'timeout'")


def test_a_bad_value_in_the_file_still_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", MAIN + "keepalive_expiry = -1\n")
    monkeypatch.setenv("CLIENTREG_PROFILES__MAIN__TIMEOUT", "45")  # fine, and not to blame
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    assert str(info.value).startswith(f"{file}: profile 'main', field 'keepalive_expiry'")
    assert info.value.variable is None


@pytest.mark.parametrize("with_file", [True, False])
def test_an_override_for_a_profile_not_in_the_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, with_file: bool
) -> None:
    file = write(tmp_path / "s.toml", MAIN) if with_file else None
    monkeypatch.setenv("CLIENTREG_PROFILES__FAST__TIMEOUT", "5")
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert message.startswith("CLIENTREG_PROFILES__FAST__TIMEOUT: profile 'fast'")
    assert "is not in" in message and "CLIENTREG_PROFILES__FAST__PROVIDER" in message
    if with_file:
        assert str(file) in message
    else:
        assert "none was found" in message


def test_a_misspelt_table_in_a_variable_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLIENTREG_PROFILE__MAIN__TIMEOUT", "5")
    with pytest.raises(SettingsError) as info:
        load_settings(write(tmp_path / "s.toml", MAIN))
    assert "CLIENTREG_PROFILE__MAIN__TIMEOUT" in str(info.value)
    assert "did you mean CLIENTREG_PROFILES__MAIN__TIMEOUT?" in str(info.value)


def test_clientregs_own_variables_are_not_taken_for_typos(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLIENTREG_SOMETHING__ELSE", "x")  # not near a table's name
    monkeypatch.setenv("CLIENTREG_FINGERPRINT_KEY", "a-key-of-the-deployment-000")
    assert set(load_settings(write(tmp_path / "s.toml", MAIN)).profiles) == {"main"}


# ---- profile names --------------------------------------------------------------------------------


def test_a_profile_name_with_capitals_is_refused_with_the_reason(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[profiles.Mixed]\nprovider = "openai"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    message = str(info.value)
    assert str(file) in message and "'Mixed'" in message
    assert "lower case" in message and "call it 'mixed'" in message


def test_a_lower_case_profile_is_reached_by_an_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(
        tmp_path / "s.toml", '[profiles.team-b]\nprovider = "openai"\n[profiles."eu.west"]\nprovider = "groq"\n'
    )
    monkeypatch.setenv("CLIENTREG_PROFILES__TEAM-B__TIMEOUT", "7")
    monkeypatch.setenv("CLIENTREG_PROFILES__EU.WEST__TIMEOUT", "8")
    profiles = load_settings(file).profiles
    assert (profiles["team-b"].timeout, profiles["eu.west"].timeout) == (7.0, 8.0)


@pytest.mark.parametrize(
    "name",
    ["with space", "tab\there", "esc\x1b[31m", "a__b", "_leading", "x" * 64, "sk-proj-Xy7Qm2Lp9Rt4Vw8Zb3Nc6Df1Gh5"],
)
def test_a_profile_name_outside_the_rules_is_refused(name: str) -> None:
    with pytest.raises(SettingsError) as info:
        schemas.RegistrySettings(profiles={name: {"provider": "openai"}})
    message = str(info.value)
    assert "profile" in message
    assert "\x1b" not in message and "\t" not in message
    assert "Xy7Qm2" not in message


# ---- files that are not what they seem ------------------------------------------------------------


def test_deeply_nested_toml_is_a_settings_error(tmp_path: Path) -> None:
    file = tmp_path / "deep.toml"
    file.write_text("x = " + "[" * 200_000 + "]" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    assert str(file) in str(info.value) and "nested too deeply" in str(info.value)


def test_deeply_nested_json_in_a_variable_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTREG_PROFILES", "[" * 200_000 + "]" * 200_000)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "CLIENTREG_" in str(info.value)


def test_relative_verify_in_a_file_is_relative_to_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "conf" / "clientreg.toml", '[profiles.a]\nprovider = "groq"\nverify = "certs/ca.pem"\n')
    for cwd in (tmp_path, tmp_path / "conf"):
        monkeypatch.chdir(cwd)
        assert load_settings(file).profiles["a"].verify == str(tmp_path / "conf" / "certs" / "ca.pem")
    # An override from the environment is relative to the working directory, like any argument.
    monkeypatch.setenv("CLIENTREG_PROFILES__A__VERIFY", "other.pem")
    assert load_settings(file).profiles["a"].verify == str(tmp_path / "conf" / "other.pem")
    monkeypatch.setenv("CLIENTREG_PROFILES__A__VERIFY", "false")
    assert load_settings(file).profiles["a"].verify is False


# ---- one exception type for bad configuration ----------------------------------------------------


def test_registry_settings_built_in_code_raise_settings_error() -> None:
    with pytest.raises(SettingsError) as info:
        schemas.RegistrySettings(profiles={"main": {"provider": "openai", "timeout": "soon"}})
    message = str(info.value)
    assert "profile 'main', field 'timeout'" in message
    assert "timeout.float" not in message and "TimeoutParts" not in message
    assert isinstance(info.value, ValueError)


def test_example_shows_the_new_fields_commented() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for field in (
        "api_key_provider",
        "strict_response_validation",
        "public_headers",
        "public_query",
        "admin_api_key",
        "webhook_secret",
        "websocket_base_url",
        "data_residency",
        "azure_ad_token",
        "azure_ad_token_provider",
    ):
        assert field in text, field
    uncommented = re.sub(
        r"^# (\[profiles\.rotating\]|provider = |api_key_provider = )", r"\1", text, flags=re.MULTILINE
    )
    uncommented = uncommented.replace(
        '# azure_ad_token_provider = "entra-openai"', 'azure_ad_token_provider = "entra-openai"'
    )
    uncommented = uncommented.replace('# data_residency = "eu"', 'data_residency = "eu"')
    profiles = load_settings(write(Path.cwd() / "uncommented.toml", uncommented)).profiles
    assert profiles["rotating"].api_key_provider == "vault-openai"
    assert isinstance(profiles["openai"], OpenAISettings) and profiles["openai"].data_residency == "eu"
    azure = profiles["azure"]
    assert isinstance(azure, AzureOpenAISettings) and azure.azure_ad_token_provider == "entra-openai"
