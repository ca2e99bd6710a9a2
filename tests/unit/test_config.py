"""Configuration: precedence, conversion, validation and masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.config import Config, load_config, settings
from jobrunner.errors import ConfigError


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    """Each source overrides the ones below it, and the source is recorded."""
    toml = tmp_path / "jobrunner.toml"
    toml.write_text('concurrency = 3\ntube = ["from-file"]\ngrace = 5\nretry_base = 7\n')
    config = load_config(
        flags={"concurrency": "9"},
        env={"JOBRUNNER_TUBE": "a,b", "JOBRUNNER_GRACE": "12"},
        config_file=toml,
    )
    assert config.concurrency == 9
    assert config.tube == ("a", "b")
    assert config.grace == 12.0
    assert config.retry_base == 7.0
    assert config.max_attempts == 3
    assert config.sources["concurrency"] == "flag"
    assert config.sources["tube"] == "env"
    assert config.sources["retry_base"] == "file"
    assert config.sources["max_attempts"] == "default"


def test_config_file_from_environment(tmp_path: Path) -> None:
    """JOBRUNNER_CONFIG names the TOML file when --config is not given."""
    toml = tmp_path / "c.toml"
    toml.write_text("[jobrunner]\nbase_url = 'https://w1.example/results/'\n")
    config = load_config(env={"JOBRUNNER_CONFIG": str(toml)})
    assert config.base_url == "https://w1.example/results/"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"JOBRUNNER_CONCURRENCY": "many"}, "JOBRUNNER_CONCURRENCY"),
        ({"JOBRUNNER_CONCURRENCY": "0"}, "concurrency must be at least 1"),
        ({"JOBRUNNER_BEANSTALK": "localhost"}, "HOST:PORT"),
        ({"JOBRUNNER_FSYNC": "maybe"}, "true or false"),
        ({"JOBRUNNER_BASE_URL": "ftp://x/"}, "base_url"),
        ({"JOBRUNNER_LOG_LEVEL": "loud"}, "log_level"),
    ],
)
def test_invalid_values_are_named(env: dict[str, str], fragment: str) -> None:
    """A bad value fails at start-up with a message naming the setting and its source."""
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert fragment in str(info.value)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    """A typo in the TOML file is reported, not ignored."""
    toml = tmp_path / "c.toml"
    toml.write_text("concurrancy = 2\n")
    with pytest.raises(ConfigError, match="concurrancy"):
        load_config(config_file=toml, env={})


def test_broken_toml_is_reported(tmp_path: Path) -> None:
    """A TOML syntax error names the file."""
    toml = tmp_path / "c.toml"
    toml.write_text("concurrency = \n")
    with pytest.raises(ConfigError, match=str(toml)):
        load_config(config_file=toml, env={})


def test_secrets_are_masked() -> None:
    """as_dict masks secret settings unless asked not to."""
    config = load_config(env={"JOBRUNNER_HTTP_TOKEN": "s3cret"})
    assert config.as_dict()["http_token"] == "********"
    assert config.as_dict(mask=False)["http_token"] == "s3cret"


def test_settings_have_flags_and_env_names() -> None:
    """Every setting has a flag and an environment twin derived from its name."""
    names = {s.name: s for s in settings()}
    assert names["allow_host"].flag == "--allow-host"
    assert names["allow_host"].env == "JOBRUNNER_ALLOW_HOST"
    assert names["allow_host"].is_list
    fields = {f.name for f in Config.__attrs_attrs__}  # type: ignore[attr-defined]
    assert set(names) == fields - {"sources"}


def test_bad_allow_host_fails_at_start_up() -> None:
    """An --allow-host entry that is neither a host, *.suffix nor CIDR is a config error."""
    with pytest.raises(ConfigError):
        load_config(env={"JOBRUNNER_ALLOW_HOST": "10.0.0.0/33"})
