"""Settings from the command line's point of view: wrong values exit 2 and say which one;
flags > DOCSYNC_* env > TOML file > defaults."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Aws, Cli


def test_a_wrong_env_setting_exits_2_and_names_it(cli: Cli, aws: Aws) -> None:
    run = cli("query", env={"DOCSYNC_CACHE_TTL_DAYS": "abc"}, expect=2)

    assert "cache_ttl_days" in run.stderr, str(run)
    assert "DOCSYNC_CACHE_TTL_DAYS" in run.stderr
    assert "Traceback" not in run.stderr
    error = run.json()
    assert error["exit_code"] == 2
    assert "cache_ttl_days" in error["error"]


def test_a_missing_config_file_exits_2(cli: Cli, aws: Aws) -> None:
    run = cli("query", "--config", "missing.toml", expect=2)

    assert "missing.toml" in run.stderr, str(run)
    assert "Traceback" not in run.stderr
    assert run.json()["exit_code"] == 2


def test_flags_beat_env_beat_the_config_file(cli: Cli, aws: Aws, tmp_path: Path) -> None:
    config = tmp_path / "docsync.toml"
    config.write_text(
        'bucket = "file-bucket"\ntable = "file-table"\nleases_table = "file-leases"\n'
        'history_table = "file-history"\n'
        'queue = "file-events"\ndlq = "file-events-dlq"\n',
        encoding="utf-8",
    )

    report = cli(
        "init",
        "--config",
        config,
        "--table",
        "flag-table",
        env={"DOCSYNC_BUCKET": "env-bucket", "DOCSYNC_TABLE": "env-table"},
    ).json()

    created = {(r["kind"], r["name"]) for r in report["resources"] if r["status"] == "created"}
    assert {
        ("bucket", "env-bucket"),
        ("table", "flag-table"),
        ("table", "file-leases"),
        ("queue", "file-events"),
        ("queue", "file-events-dlq"),
    } <= created
    assert aws.bucket_names() == {"env-bucket"}
    assert aws.table_names() == {"flag-table", "file-leases", "file-history"}
