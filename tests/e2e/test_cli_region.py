"""The region (issue 10 §4): with DOCSYNC_REGION unset the CLI follows boto3's chain
(AWS_REGION, which the Lambda runtime sets, then AWS_DEFAULT_REGION, then the profile);
DOCSYNC_REGION wins; with no region at all it refuses to start (exit 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3

from tests.e2e.conftest import BUCKET, DOCSYNC, TABLE, Cli

REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "DOCSYNC_REGION")


def run(cli: Cli, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`docsync ARGS` with no region in its environment but the ones given (and an empty AWS
    config file, so the developer's own profile cannot supply one)."""
    full = cli.env()
    for name in REGION_VARS:
        full.pop(name, None)
    empty = tmp_path / "aws-config"
    empty.write_text("")
    full.update(AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty), **env)
    return subprocess.run(
        [str(DOCSYNC), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full,
        cwd=cli.cwd,
        check=False,
    )


def where(endpoint: str) -> tuple[str, set[str]]:
    """The bucket's location, and the regions where moto (one backend per region) holds the
    cache table."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    location = s3.get_bucket_location(Bucket=BUCKET).get("LocationConstraint") or "us-east-1"
    regions = {
        region
        for region in ("us-east-1", "eu-west-1", "ap-southeast-2")
        if TABLE
        in boto3.client("dynamodb", endpoint_url=endpoint, region_name=region).list_tables()[
            "TableNames"
        ]
    }
    return location, regions


def test_aws_region_is_honoured_when_docsync_region_is_unset(cli: Cli, tmp_path: Path) -> None:
    proc = run(cli, tmp_path, "init", "--format", "json", AWS_REGION="eu-west-1")

    assert proc.returncode == 0, proc.stderr
    assert where(cli.endpoint) == ("eu-west-1", {"eu-west-1"})


def test_docsync_region_wins_over_aws_region(cli: Cli, tmp_path: Path) -> None:
    proc = run(
        cli,
        tmp_path,
        "init",
        "--format",
        "json",
        AWS_REGION="eu-west-1",
        AWS_DEFAULT_REGION="eu-west-1",
        DOCSYNC_REGION="ap-southeast-2",
    )

    assert proc.returncode == 0, proc.stderr
    assert where(cli.endpoint) == ("ap-southeast-2", {"ap-southeast-2"})


def test_no_region_at_all_refuses_to_start(cli: Cli, tmp_path: Path) -> None:
    proc = run(cli, tmp_path, "init", "--format", "json")

    assert proc.returncode == 2, proc.stderr
    assert "DOCSYNC_REGION" in proc.stderr
    assert "AWS_REGION" in proc.stderr
    assert "Traceback" not in proc.stderr
    s3 = boto3.client("s3", endpoint_url=cli.endpoint, region_name="us-east-1")
    assert s3.list_buckets()["Buckets"] == []  # nothing was created anywhere
