"""Settings: one tree, loaded once (flags > DOCSYNC_* environment > TOML file > defaults).

model.py     the root `Settings` (core names) and `load_settings`
sections.py  one model per part: [aws] [dynamodb] [breaker] [query] [l1] [reconcile]
             [init] [serve] [metrics] [streams]
sources.py   the file and the environment, as pydantic-settings sources
legacy.py    the flat names of earlier releases, moved into the tree with a deprecation
region.py    the AWS region as boto3 finds it
"""

from __future__ import annotations

from engine.settings.model import (
    DEFAULT_CONFIG,
    Settings,
    describe_validation_error,
    env_names,
    load_settings,
    log_deprecations,
)
from engine.settings.region import aws_default_region
from engine.settings.sections import (
    AwsSettings,
    BreakerSettings,
    DynamoDBSettings,
    InitSettings,
    L1Settings,
    MetricsSettings,
    QuerySettings,
    ReconcileSettings,
    ServeSettings,
    StreamSettings,
)

__all__ = [
    "DEFAULT_CONFIG",
    "AwsSettings",
    "BreakerSettings",
    "DynamoDBSettings",
    "InitSettings",
    "L1Settings",
    "MetricsSettings",
    "QuerySettings",
    "ReconcileSettings",
    "ServeSettings",
    "Settings",
    "StreamSettings",
    "aws_default_region",
    "describe_validation_error",
    "env_names",
    "load_settings",
    "log_deprecations",
]
