"""engine/settings/: the tree, precedence flags > env > file > defaults, clear errors, and the
flat names of earlier releases (moved into the tree, with a deprecation)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.cli.output import exit_code
from engine.exceptions import ConfigError
from engine.settings import Settings, load_settings
from engine.settings.legacy import env_name, moved

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
    assert s.aws.retry_mode == "standard"
    assert s.prefixes == {"change": "changes/", "announcement": "announcements/"}
    assert s.reserved_prefix == "_docsync/"
    assert s.init.tags == {"app": "docsync"}


def test_shipped_config_file_matches_the_defaults() -> None:
    shipped = load_settings(SHIPPED_TOML)
    assert shipped.model_dump() == load_settings(None).model_dump()
    assert shipped.config_file == SHIPPED_TOML
    assert shipped.deprecations == ()  # the shipped file uses the tree, no old name


def test_streams_table_precedence_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, 'table = "t"\n[streams]\nwindow_s = 300\nlease_ttl_s = 9.0\n')
    settings = load_settings(path)
    assert settings.table == "t"
    assert settings.streams.window_s == 300  # file > default
    monkeypatch.setenv("DOCSYNC_STREAMS_WINDOW_S", "120")
    conf = load_settings(path).streams
    assert conf.window_s == 120 and conf.lease_ttl_s == 9.0  # env > file, per key
    assert load_settings(path, streams={"window_s": 30}).streams.window_s == 30  # flag > env
    assert load_settings(None).streams.lease_ttl_s == 30.0

    monkeypatch.delenv("DOCSYNC_STREAMS_WINDOW_S")
    bad = write_toml(tmp_path, "[streams]\nwindow_s = 0\nleases = 1\n")
    message = config_error(bad)
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
    msg = config_error(write_toml(tmp_path, '[aws]\nretry_mode = "bogus"\n'))
    assert "aws.retry_mode" in msg
    assert "DOCSYNC_AWS_RETRY_MODE" in msg


def test_bogus_retry_mode_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_AWS_RETRY_MODE", "bogus")
    msg = config_error()
    assert "retry_mode" in msg
    assert "DOCSYNC_AWS_RETRY_MODE" in msg


@pytest.mark.parametrize(
    ("flags", "name", "env"),
    [
        ({"prefixes": {"change": "changes"}}, "prefixes.change", "DOCSYNC_PREFIXES_CHANGE"),
        (
            {"prefixes": {"announcement": "/announcements/"}},
            "prefixes.announcement",
            "DOCSYNC_PREFIXES_ANNOUNCEMENT",
        ),
        ({"reserved_prefix": "_docsync"}, "reserved_prefix", "DOCSYNC_RESERVED_PREFIX"),
    ],
)
def test_prefix_without_trailing_slash_or_with_leading_slash(
    flags: dict[str, object], name: str, env: str
) -> None:
    msg = config_error(None, **flags)
    assert f"{name} [{env}]" in msg


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
    monkeypatch.setenv("DOCSYNC_AWS_RETRY_MODE", "bogus")
    assert load_settings(None, aws={"retry_mode": "adaptive"}).aws.retry_mode == "adaptive"


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


# -- the tree: sections, type prefixes from the registry, one load ------------------------


def test_a_section_given_in_part_keeps_its_other_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, "[serve]\nport = 9000\n[reconcile]\nworkers = 3\n")
    monkeypatch.setenv("DOCSYNC_SERVE_HOST", "0.0.0.0")
    s = load_settings(path, serve={"api": False})
    assert (s.serve.port, s.serve.host, s.serve.api) == (9000, "0.0.0.0", False)
    assert s.serve.shutdown_timeout_s == 25.0 and s.reconcile.workers == 3
    assert s.reconcile.shards_per_type == 4
    assert s.deprecations == ()


def test_type_prefixes_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.documents import TYPES

    defaults = load_settings(None).prefixes
    assert defaults == {name: t.default_prefix for name, t in TYPES.items()}
    monkeypatch.setenv("DOCSYNC_PREFIXES_CHANGE", "chg/")
    assert load_settings(None).prefixes == {**defaults, "change": "chg/"}  # the rest kept
    msg = config_error(prefixes={"incident": "incidents/"})
    assert "unknown document type 'incident'" in msg


def test_an_unknown_key_in_a_section_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "serve.prot" in config_error(write_toml(tmp_path, "[serve]\nprot = 1\n"))
    monkeypatch.setenv("DOCSYNC_SERVE_PROT", "1")
    assert "serve.prot [DOCSYNC_SERVE_PROT]" in config_error()


def test_cors_origins_from_the_environment_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCSYNC_SERVE_CORS_ORIGINS", "https://a.example, https://b.example")
    assert load_settings(None).serve.cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("DOCSYNC_SERVE_CORS_ORIGINS", '["https://c.example"]')
    assert load_settings(None).serve.cors_origins == ["https://c.example"]


def test_replace_takes_dotted_paths_and_validates() -> None:
    s = load_settings(None)
    changed = s.replace({"serve.port": 0, "aws.max_attempts": 1, "bucket": "b"})
    assert (changed.serve.port, changed.aws.max_attempts, changed.bucket) == (0, 1, "b")
    assert changed.serve.host == s.serve.host and s.serve.port == 8080  # a copy
    with pytest.raises(KeyError, match=r"serve\.prot"):
        s.replace({"serve.prot": 1})
    with pytest.raises(KeyError, match="nope"):
        s.replace({"nope.port": 1})
    with pytest.raises(ConfigError, match=r"aws\.max_attempts"):
        s.replace({"aws.max_attempts": 0})


def test_the_tombstone_rule_spans_sections() -> None:
    msg = config_error(tombstone_ttl_days=3, init={"queue_retention_days": 4})
    assert "tombstone_ttl_days must be >= init.queue_retention_days" in msg


# -- the flat names of earlier releases: still read, each with one deprecation line -------


def _default_at(section: str, key: str) -> object:
    value = getattr(getattr(Settings.build(None, {}), section), key, None)
    if section == "prefixes":
        return Settings.build(None, {}).prefixes[key]
    return value


@pytest.mark.parametrize("old", sorted(moved()))
def test_every_old_file_key_moves_into_its_table(tmp_path: Path, old: str) -> None:
    section, key = moved()[old]
    given = {
        "l1": "on",
        "serve_port": 9001,
        "reconcile_workers": 5,
        "max_attempts": 4,
        "api_keys": "k" * 32,
        "api_keys_file": "/run/secrets/keys",
        "report_dir": "reports",
    }
    value = given[old] if old in given else _default_at(section, key)
    assert value is not None, f"give {old} a value to write"
    with pytest.warns(DeprecationWarning, match=old):
        s = load_settings(write_toml(tmp_path, f"{old} = {_toml(_plain(value))}\n"))
    got = s.prefixes[key] if section == "prefixes" else getattr(getattr(s, section), key)
    assert _plain(got) == _plain(value)
    assert len(s.deprecations) == 1 and f"`{old}`" in s.deprecations[0]
    assert f"{key} in [{section}]" in s.deprecations[0]


def _toml(value: object) -> str:
    """One TOML value (JSON's strings, numbers and arrays are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _plain(value: object) -> object:
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    return value


@pytest.mark.parametrize(
    ("old_env", "value", "path", "expected"),
    [
        ("DOCSYNC_L1", "on", ("l1", "mode"), "on"),
        ("DOCSYNC_MAX_ATTEMPTS", "3", ("aws", "max_attempts"), 3),
        ("DOCSYNC_SHUTDOWN_TIMEOUT_S", "7", ("serve", "shutdown_timeout_s"), 7.0),
        (
            "DOCSYNC_CORS_ORIGINS",
            "https://a.example",
            ("serve", "cors_origins"),
            ["https://a.example"],
        ),
        ("DOCSYNC_CHANGE_PREFIX", "chg/", ("prefixes", "change"), "chg/"),
        ("DOCSYNC_REPORT_DIR", "/tmp/r", ("reconcile", "report_dir"), "/tmp/r"),
        ("DOCSYNC_TAGS", '{"team": "docs"}', ("init", "tags"), {"team": "docs"}),
    ],
)
def test_old_environment_names_still_work_with_a_deprecation(
    monkeypatch: pytest.MonkeyPatch,
    old_env: str,
    value: str,
    path: tuple[str, str],
    expected: object,
) -> None:
    monkeypatch.setenv(old_env, value)
    with pytest.warns(DeprecationWarning, match=old_env):
        s = load_settings(None)
    section, key = path
    got = s.prefixes[key] if section == "prefixes" else getattr(getattr(s, section), key)
    assert got == expected
    assert s.deprecations == (f"{old_env} is deprecated, set {env_name(section, key)}",)


def test_the_new_name_wins_over_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("DOCSYNC_AWS_MAX_ATTEMPTS", "5")
    with pytest.warns(DeprecationWarning, match="is ignored"):
        s = load_settings(None)
    assert s.aws.max_attempts == 5
    assert s.deprecations == ("DOCSYNC_MAX_ATTEMPTS is ignored, DOCSYNC_AWS_MAX_ATTEMPTS is set",)


def test_unchanged_environment_names_need_no_deprecation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most names keep their spelling: DOCSYNC_<SECTION>_<KEY> was the flat name already."""
    same = [o for o, (s, k) in moved().items() if env_name(None, o) == env_name(s, k)]
    assert "serve_port" in same and "reconcile_workers" in same and "metrics_sink" in same
    monkeypatch.setenv("DOCSYNC_SERVE_PORT", "9002")
    monkeypatch.setenv("DOCSYNC_RECONCILE_WORKERS", "2")
    s = load_settings(None)
    assert (s.serve.port, s.reconcile.workers, s.deprecations) == (9002, 2, ())


def test_old_keyword_arguments_still_work_with_a_deprecation() -> None:
    with pytest.warns(DeprecationWarning) as caught:
        s = load_settings(None, max_attempts=2, serve_port=0)
    assert (s.aws.max_attempts, s.serve.port) == (2, 0)
    assert [str(w.message) for w in caught] == list(s.deprecations)
    assert s.deprecations == (
        "load_settings(max_attempts=…) is deprecated, pass aws={'max_attempts': …}",
        "load_settings(serve_port=…) is deprecated, pass serve={'port': …}",
    )


def test_every_environment_name_reaches_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each name env_names() lists (the deployment template's test uses it) sets its path: a
    different value lands there, or an invalid one is refused naming the path and the name."""
    from engine.settings import env_names

    defaults = Settings.build(None, {})
    names = env_names()
    assert names["DOCSYNC_SERVE_PORT"] == "serve.port"
    assert names["DOCSYNC_PREFIXES_CHANGE"] == "prefixes.change"
    assert names["DOCSYNC_STREAMS_WINDOW_S"] == "streams.window_s"
    assert "DOCSYNC_MAX_ATTEMPTS" not in names  # an old name is not a current one
    for variable, path in names.items():
        default = _value_at(defaults, path)
        if isinstance(default, dict):
            text = json.dumps({"zz": "1"})
        elif isinstance(default, list):
            text = json.dumps(["zz"])
        else:
            text = "zz" + _env_text(default)
        monkeypatch.setenv(variable, text)
        try:
            loaded = Settings.build(None, {})
        except ConfigError as exc:
            assert f"{path} [{variable}]" in str(exc), (variable, str(exc))
        else:
            assert _value_at(loaded, path) != default, variable
            assert loaded.deprecations == (), variable
        finally:
            monkeypatch.delenv(variable)


def _value_at(settings: Settings, path: str) -> object:
    node: object = settings
    for part in path.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return _plain(node)


def _env_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "model_dump_json"):
        return value.model_dump_json()  # type: ignore[no-any-return]
    return str(value)
