"""engine/cloudwatch.py: the alarms' figures (docs/metrics.md) — aggregation, the EMF
documents checked against the embedded metric format's specification, PutMetricData's shape,
the sinks, and the circuit breaker reported open at every flush while it is."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from engine import cloudwatch
from engine.breaker import CircuitBreaker
from engine.cloudwatch import BUFFER, CONTRACT, Buffer, PeriodicFlush
from engine.settings import Settings, load_settings

UNITS = {"Count", "Milliseconds"}


def validate_emf(doc: dict[str, Any], namespace: str, environment: str) -> dict[str, Any]:
    """Check one document against the EMF specification and the contract; return its metric
    values by name (a number, or a list of at most 100)."""
    aws = doc["_aws"]
    assert isinstance(aws["Timestamp"], int)
    assert abs(aws["Timestamp"] - time.time() * 1000) < 600_000  # milliseconds, not seconds
    (directive,) = aws["CloudWatchMetrics"]
    assert directive["Namespace"] == namespace
    assert directive["Dimensions"] == [["Environment"]]  # exactly one set, one dimension
    assert doc["Environment"] == environment
    values = {}
    for metric in directive["Metrics"]:
        name = metric["Name"]
        assert metric["Unit"] == CONTRACT[name][0] and metric["Unit"] in UNITS
        value = doc[name]
        if isinstance(value, list):
            assert 1 < len(value) <= 100 and all(isinstance(v, int | float) for v in value)
        else:
            assert isinstance(value, int | float)
        values[name] = value
    assert set(doc) == {"_aws", "Environment", *values}  # no other dimension, no stray key
    return values


def parse_emf(text: str, namespace: str, environment: str) -> dict[str, list[float]]:
    """Every contract EMF line of `text` (other lines ignored) → name → all values, in order."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        if doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] != [["Environment"]]:
            continue  # Powertools' own documents (service dimension)
        for name, value in validate_emf(doc, namespace, environment).items():
            out.setdefault(name, []).extend(value if isinstance(value, list) else [value])
    return out


def settings(metrics: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    section = {"namespace": "ops-test", "environment": "stack-a"} | (metrics or {})
    return load_settings(None, metrics=section, **overrides)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counts_are_summed_maxima_kept_and_samples_listed() -> None:
    buffer = Buffer()
    for n in (3, 4):
        buffer.record("CacheHits", n)
    buffer.record("CacheMisses", 0)
    buffer.record("CircuitBreakerOpen", 1)
    buffer.record("CircuitBreakerOpen", 1)
    for ms in (5.0, 1.5, 700.0):
        buffer.record("QueryLatency", ms)
    assert buffer.take() == {
        "CacheHits": [7.0],
        "CacheMisses": [0.0],
        "CircuitBreakerOpen": [1.0],
        "QueryLatency": [5.0, 1.5, 700.0],
    }
    assert buffer.take() == {}


def test_a_name_outside_the_contract_is_refused() -> None:
    with pytest.raises(ValueError, match="CacheHit"):
        cloudwatch.record("CacheHit", 1)


def test_samples_past_the_bound_are_a_uniform_sample_not_a_leak() -> None:
    buffer = Buffer(samples_max=100)
    for n in range(5000):
        buffer.record("StreamIteratorAge", n)
    kept = buffer.take()["StreamIteratorAge"]
    assert len(kept) == 100 and set(kept) <= set(map(float, range(5000)))
    assert max(kept) > 200  # not simply the first hundred


def test_emf_documents_follow_the_spec_and_split_past_100_values() -> None:
    figures = {"DriftFound": [4.0], "QueryLatency": [float(n) for n in range(250)]}
    docs = cloudwatch.emf_documents(figures, "ns", "env", int(time.time() * 1000))
    assert len(docs) == 3
    values = [validate_emf(doc, "ns", "env") for doc in docs]
    assert values[0]["DriftFound"] == 4.0 and "DriftFound" not in values[1]
    assert [len(v["QueryLatency"]) for v in values] == [100, 100, 50]
    assert [x for v in values for x in v["QueryLatency"]] == figures["QueryLatency"]


def test_flush_writes_emf_lines_under_the_configured_namespace_and_environment() -> None:
    cloudwatch.record("ReconcileRuns", 1)
    cloudwatch.record("DriftFound", 2)
    cloudwatch.record("DriftRepaired", 2)
    cloudwatch.record("QueryLatency", 12.5)
    cloudwatch.record("QueryLatency", 30.0)
    out = io.StringIO()
    cloudwatch.flush(settings(), stream=out)
    assert parse_emf(out.getvalue(), "ops-test", "stack-a") == {
        "DriftFound": [2.0],
        "DriftRepaired": [2.0],
        "QueryLatency": [12.5, 30.0],
        "ReconcileRuns": [1.0],
    }
    assert len(out.getvalue().splitlines()) == 1
    out = io.StringIO()
    cloudwatch.flush(settings(), stream=out)
    assert out.getvalue() == ""  # nothing new, nothing written


@pytest.mark.parametrize(
    ("overrides", "stream"),
    [
        ({"metrics": {"sink": "off"}}, io.StringIO()),
        ({"dry_run": True}, io.StringIO()),
        ({}, Tty()),
    ],
    ids=["sink-off", "dry-run", "terminal"],
)
def test_no_emf_when_off_in_a_dry_run_or_on_a_terminal(
    overrides: dict[str, Any], stream: io.StringIO
) -> None:
    cloudwatch.record("ReconcileRuns", 1)
    taken = cloudwatch.flush(settings(**overrides), stream=stream)
    assert taken == {"ReconcileRuns": [1.0]}  # taken from the buffer all the same
    assert stream.getvalue() == ""


def test_metric_data_has_the_same_names_units_and_only_the_environment_dimension() -> None:
    data = cloudwatch.metric_data(
        {"CacheHits": [7.0], "QueryLatency": [float(n) for n in range(200)]}, "stack-a"
    )
    assert [(d["MetricName"], d["Unit"]) for d in data] == [
        ("CacheHits", "Count"),
        ("QueryLatency", "Milliseconds"),
        ("QueryLatency", "Milliseconds"),
    ]
    assert all(d["Dimensions"] == [{"Name": "Environment", "Value": "stack-a"}] for d in data)
    assert data[0]["Value"] == 7.0
    assert [len(d["Values"]) for d in data[1:]] == [150, 50]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_open_breaker_is_reported_when_it_opens_and_at_every_flush_while_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, lambda exc: isinstance(exc, ConnectionError), clock)
    assert BUFFER.take() == {}  # a closed breaker reports nothing
    for _ in range(2):
        breaker.before_call()
        breaker.on_error(ConnectionError())
    assert breaker.state == "open"
    assert BUFFER.take() == {"CircuitBreakerOpen": [1.0]}
    assert BUFFER.take() == {"CircuitBreakerOpen": [1.0]}  # still open: again
    clock.now = 10.0
    breaker.before_call()  # half-open trial: still not closed
    assert BUFFER.take() == {"CircuitBreakerOpen": [1.0]}
    breaker.on_success()
    assert BUFFER.take() == {}


def test_periodic_flush_writes_while_running_and_once_more_on_stop() -> None:
    out = io.StringIO()
    flusher = PeriodicFlush(settings({"flush_s": 0.05}), stream=out).start()
    try:
        cloudwatch.record("DriftFound", 1)
        deadline = time.monotonic() + 30
        while "DriftFound" not in out.getvalue():
            assert time.monotonic() < deadline, "no periodic flush"
            time.sleep(0.01)
        cloudwatch.record("ReconcileRuns", 1)
    finally:
        flusher.stop()
    assert parse_emf(out.getvalue(), "ops-test", "stack-a") == {
        "DriftFound": [1.0],
        "ReconcileRuns": [1.0],
    }


def test_the_shipped_settings_are_the_contract_defaults() -> None:
    s = load_settings(None)
    assert (s.metrics.namespace, s.metrics.environment) == ("docsync", "default")
    assert (s.metrics.sink, s.metrics.flush_s) == ("emf", 60.0)
