"""engine/settings.py: defaults, precedence flags > env > file > defaults, clear errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.cli.output import exit_code
from engine.exceptions import ConfigError
from engine.settings import Settings, load_settings
from engine.streams.config import load_stream_settings

SHIPPED_TOML = Path(__file__).resolve().parents[2] / "config" / "docsync.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No DOCSYNC_* from outside, and a working directory without config/docsync.toml."""
    for name in list(os.environ):
        if name.startswith("DOCSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield
    for name in list(os.environ):
        if name.startswith("DOCSYNC_"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "docsync-test.toml"
    path.write_text(text)
    return path


def config_error(config: Path | str | None = None, **flags: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(config, **flags)
    assert exit_code(info.value) == 2
    return str(info.value)


def test_defaults() -> None:
    s = load_settings(None)
    assert s.endpoint_url is None
    assert s.region == "us-east-1"
    assert s.bucket == "docsync-documents"
    assert s.table == "docsync-cache"
    assert s.queue == "docsync-events"
    assert s.cache_ttl_days == 90
    assert s.dry_run is False
    assert s.log_format == "auto"
    assert s.retry_mode == "standard"
    assert s.prefixes() == {"change": "changes/", "announcement": "announcements/"}
    assert s.reserved_prefix == "_docsync/"
    assert s.tags == {"app": "docsync"}


def test_shipped_config_file_matches_the_defaults() -> None:
    shipped = load_settings(SHIPPED_TOML)
    assert shipped.model_dump() == load_settings(None).model_dump()
    assert shipped.config_file == SHIPPED_TOML
    assert load_stream_settings(shipped.config_file) == load_stream_settings(None)


def test_streams_table_precedence_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, 'table = "t"\n[streams]\nwindow_s = 300\nlease_ttl_s = 9.0\n')
    settings = load_settings(path)
    assert settings.table == "t"  # the core settings ignore the [streams] table
    assert load_stream_settings(settings.config_file).window_s == 300  # file > default
    monkeypatch.setenv("DOCSYNC_STREAMS_WINDOW_S", "120")
    conf = load_stream_settings(settings.config_file)
    assert conf.window_s == 120 and conf.lease_ttl_s == 9.0  # env > file
    assert load_stream_settings(settings.config_file, window_s=30).window_s == 30  # flag > env
    assert load_stream_settings(load_settings(None).config_file).lease_ttl_s == 30.0

    monkeypatch.delenv("DOCSYNC_STREAMS_WINDOW_S")
    bad = write_toml(tmp_path, "[streams]\nwindow_s = 0\nleases = 1\n")
    with pytest.raises(ConfigError) as info:
        load_stream_settings(load_settings(bad).config_file)
    message = str(info.value)
    assert "streams.window_s [DOCSYNC_STREAMS_WINDOW_S]" in message
    assert "streams.leases" in message


def test_default_config_file_is_read_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "docsync.toml").write_text('table = "from-default-file"\n')
    assert load_settings(None).table == "from-default-file"


def test_precedence_flags_over_env_over_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(
        tmp_path,
        'table = "file-table"\nbucket = "file-bucket"\nqueue = "file-queue"\ncache_ttl_days = 30\n',
    )
    monkeypatch.setenv("DOCSYNC_TABLE", "env-table")
    monkeypatch.setenv("DOCSYNC_BUCKET", "env-bucket")
    s = load_settings(path, table="flag-table", dry_run=None)
    assert s.table == "flag-table"  # flag > env > file
    assert s.bucket == "env-bucket"  # env > file
    assert s.queue == "file-queue"  # file > default
    assert s.cache_ttl_days == 30
    assert s.region == "us-east-1"  # default
    assert s.dry_run is False  # a flag left at None is not "passed"


def test_env_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_DRY_RUN", "1")
    monkeypatch.setenv("DOCSYNC_CACHE_TTL_DAYS", "7")
    monkeypatch.setenv("DOCSYNC_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("DOCSYNC_LOG_FORMAT", "json")
    s = load_settings(None)
    assert s.dry_run is True
    assert s.cache_ttl_days == 7
    assert s.endpoint_url == "http://127.0.0.1:5000"
    assert s.log_format == "json"


def test_empty_endpoint_means_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_ENDPOINT_URL", "")
    assert load_settings(None).endpoint_url is None


def test_page_token_secret_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_PAGE_TOKEN_SECRET", "hunter2")
    s = load_settings(None)
    assert s.page_token_secret.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s)


def test_settings_are_frozen() -> None:
    s = load_settings(None)
    with pytest.raises(ValidationError):
        s.table = "other"  # type: ignore[misc]
    assert isinstance(s, Settings)


def test_bad_env_value_names_setting_and_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_CACHE_TTL_DAYS", "abc")
    msg = config_error()
    assert "cache_ttl_days" in msg
    assert "DOCSYNC_CACHE_TTL_DAYS" in msg
    assert "abc" in msg


def test_out_of_range_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_CACHE_TTL_DAYS", "0")
    assert "DOCSYNC_CACHE_TTL_DAYS" in config_error()


def test_bogus_retry_mode_in_file(tmp_path: Path) -> None:
    msg = config_error(write_toml(tmp_path, 'retry_mode = "bogus"\n'))
    assert "retry_mode" in msg
    assert "DOCSYNC_RETRY_MODE" in msg


def test_bogus_retry_mode_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_RETRY_MODE", "bogus")
    msg = config_error()
    assert "retry_mode" in msg
    assert "DOCSYNC_RETRY_MODE" in msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("change_prefix", "changes"),
        ("announcement_prefix", "/announcements/"),
        ("reserved_prefix", "_docsync"),
    ],
)
def test_prefix_without_trailing_slash_or_with_leading_slash(name: str, value: str) -> None:
    msg = config_error(**{name: value})
    assert name in msg
    assert "DOCSYNC_" + name.upper() in msg


def test_bad_flag_value() -> None:
    msg = config_error(endpoint_url="localhost:5000")
    assert "endpoint_url" in msg
    assert "DOCSYNC_ENDPOINT_URL" in msg


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert str(missing) in config_error(missing)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    msg = config_error(write_toml(tmp_path, 'tabel = "typo"\n'))
    assert "tabel" in msg


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "table = [unclosed\n")
    assert str(path) in config_error(path)


def test_flag_fixes_a_bad_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_RETRY_MODE", "bogus")
    assert load_settings(None, retry_mode="adaptive").retry_mode == "adaptive"


# -- the region (issue 10 §4): boto3's chain unless DOCSYNC_REGION / --region / the file --


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No region anywhere: no AWS_* region variable, an empty AWS config file."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return config


def test_region_follows_aws_region_then_aws_default_region(
    no_region: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert load_settings(None).region == "eu-central-1"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # the Lambda runtime sets this one
    assert load_settings(None).region == "eu-west-1"


def test_region_from_the_aws_profile(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_region.write_text("[profile ops]\nregion = sa-east-1\n")
    monkeypatch.setenv("AWS_PROFILE", "ops")
    assert load_settings(None).region == "sa-east-1"


def test_docsync_region_flag_and_file_win_over_the_aws_chain(
    no_region: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    path = write_toml(tmp_path, 'region = "ap-south-1"\n')
    assert load_settings(path).region == "ap-south-1"  # file > AWS_REGION
    monkeypatch.setenv("DOCSYNC_REGION", "ap-southeast-2")
    assert load_settings(path).region == "ap-southeast-2"  # env > file
    assert load_settings(path, region="us-west-2").region == "us-west-2"  # flag > env


def test_no_region_at_all_is_a_config_error(no_region: Path) -> None:
    msg = config_error()
    assert "DOCSYNC_REGION" in msg
    assert "AWS_REGION" in msg


def test_an_unknown_aws_profile_is_a_config_error(
    no_region: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    assert "nope" in config_error()
