"""Shared fixtures: one moto server per session on 127.0.0.1, reset before every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics import Metrics
from hypothesis import settings as hypothesis_settings

from engine import awsmetrics
from engine.app import Engine
from engine.aws import CallCounter
from engine.cloudwatch import BUFFER
from engine.infra import Infrastructure
from engine.local_moto import TEST_CREDENTIALS, EmbeddedMoto
from engine.logs import configure_logging
from engine.settings import Settings, load_settings

FIXTURES = Path(__file__).parent / "fixtures"

# Every property test runs the same examples on every run (a fixed seed), with no deadline:
# a failure reproduces, and a pass on a loaded machine is the same pass as on a quiet one.
hypothesis_settings.register_profile("docsync", derandomize=True, database=None, deadline=None)
hypothesis_settings.load_profile("docsync")


LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked by its directory, so `-m unit` needs no marks written by hand."""
    for item in items:
        layer = next((p for p in item.path.parts if p in LAYERS), None)
        if layer is not None:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session", autouse=True)
def _aws_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (*TEST_CREDENTIALS, "AWS_REGION", "AWS_PROFILE")}
    os.environ.update(TEST_CREDENTIALS)  # AWS_DEFAULT_REGION=us-east-1: the region of tests
    for name in ("AWS_REGION", "AWS_PROFILE"):  # a developer's own would override it
        os.environ.pop(name, None)
    for name in list(os.environ):
        if name.startswith(("DOCSYNC_", "AWS_ENDPOINT_URL")):
            del os.environ[name]
    configure_logging("json", "WARNING")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _empty_buffers() -> None:
    BUFFER.reset()
    awsmetrics.EMF.take()
    # Powertools' Metrics instances share one metric set per process: a test that added to
    # any (the EMF test) left them for the next Lambda handler's flush in the same worker
    Metrics(namespace="docsync-test").clear_metrics()


@pytest.fixture(autouse=True)
def _empty_figures_buffer() -> Iterator[None]:
    """CloudWatch figures are buffered per process until a flush, and so are the AWS adapter's
    EMF delta and Powertools' metric set (Lambda): each test starts with none, whichever tests
    ran before it in the same worker (a test that switched the delta on left its counts
    behind for the next one)."""
    _empty_buffers()
    yield
    _empty_buffers()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[EmbeddedMoto]:
    with EmbeddedMoto() as server:
        yield server


def make_settings(endpoint: str, **overrides: Any) -> Settings:
    """Settings for tests: `overrides` are core names or sections as dicts (merged per key)."""
    values: dict[str, Any] = {
        "endpoint_url": endpoint,
        "aws": {"max_attempts": 2, "connect_timeout_s": 1.0, "read_timeout_s": 5.0},
        "concurrency": 8,
    }
    for name, value in overrides.items():
        merge = isinstance(value, dict) and isinstance(values.get(name), dict)
        values[name] = {**values[name], **value} if merge else value
    return load_settings(None, **values)


@pytest.fixture
def settings(moto_server: EmbeddedMoto) -> Settings:
    """A fresh moto (reset) with every resource created by `docsync init`."""
    moto_server.reset()
    s = make_settings(moto_server.endpoint)
    Infrastructure(s, Engine.build(s).clients).init()
    return s


@pytest.fixture
def counter() -> CallCounter:
    return CallCounter()


@pytest.fixture
def engine(settings: Settings, counter: CallCounter) -> Engine:
    return Engine.build(settings, counter)


def snapshot(engine: Engine) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Everything in the cache table and the bucket, for before/after comparisons."""
    items = sorted(engine.cache.scan_all(), key=lambda i: str(i["pk"]))
    objects = {info.key: engine.objects.get(info.key).body for info in engine.objects.list("")}
    return items, objects
