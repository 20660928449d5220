"""The AWS region as boto3 would find it, cached on what botocore's answer depends on."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def aws_default_region() -> str | None:
    """boto3's own chain: AWS_REGION (which the Lambda runtime sets, and which botocore itself
    does not read), then botocore's `region` (AWS_DEFAULT_REGION, then the profile's config)."""
    from botocore.exceptions import ProfileNotFound

    region = os.environ.get("AWS_REGION", "").strip()
    if region:
        return region
    try:
        return _botocore_region(_region_inputs())
    except ProfileNotFound as exc:
        raise ValueError(f"{exc} (AWS_PROFILE)") from exc


def _region_inputs() -> tuple[object, ...]:
    """What botocore's answer depends on: the key of its cache (a Session costs ~6 ms)."""
    names = ("AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE")
    config = Path(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config").expanduser()
    try:
        stamp: tuple[int, int] | None = (config.stat().st_mtime_ns, config.stat().st_size)
    except OSError:
        stamp = None
    return (*(os.environ.get(name) for name in names), stamp)


@functools.lru_cache(maxsize=16)
def _botocore_region(_inputs: tuple[object, ...]) -> str | None:
    import botocore.session

    found = botocore.session.Session().get_config_variable("region")
    return str(found) if found else None
