"""The fold's batch update of the AWS-call duration histogram (engine/awsmetrics.py):
`observe_many` gives the figures that one `observe` per duration gives."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from engine.awsmetrics import _FoldedHistogram
from engine.readmetrics.buckets import AWS_CALL_LATENCY_S
from tests.unit._hyp import FAST

# durations on the bounds themselves (a bound is inclusive), either side of them, and above all
on_bounds = st.sampled_from(AWS_CALL_LATENCY_S)
near = st.floats(min_value=0.0, max_value=60.0, allow_nan=False, allow_infinity=False)
durations = st.lists(st.one_of(on_bounds, near), max_size=200)


def samples(metric: Histogram) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in metric.collect():
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[f"{s.name}{sorted(s.labels.items())}"] = s.value
    return out


@FAST
@given(first=durations, second=durations)
def test_observe_many_places_each_duration_as_observe_does(
    first: list[float], second: list[float]
) -> None:
    one_by_one = Histogram(
        "d", "d", ["op"], buckets=AWS_CALL_LATENCY_S, registry=CollectorRegistry()
    )
    batched = _FoldedHistogram(
        "d", "d", ["op"], buckets=AWS_CALL_LATENCY_S, registry=CollectorRegistry()
    )
    plain, folded = one_by_one.labels("GetItem"), batched.labels("GetItem")
    for batch in (first, second):  # two folds in a row
        for seconds in batch:
            plain.observe(seconds)
        folded.observe_many(batch)
    want, got = samples(one_by_one), samples(batched)
    assert want.keys() == got.keys()
    for name, value in want.items():
        assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-9), name
