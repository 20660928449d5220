"""CloudWatch PutMetricData for the `putmetricdata` metrics sink (engine/cloudwatch.py).

The figures are shaped by the caller; the store sends them within the API's limit of datums
per call, errors through the seam (a `StoreError` naming the call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.exceptions import StoreError
from engine.store.base import ErrorMap, StoreCall

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

METRICS_ERRORS = ErrorMap("CloudWatch", StoreError)
PUT_DATA_MAX = 100  # datums of one PutMetricData call


class MetricsStore:
    def __init__(self, client: CloudWatchClient) -> None:
        self._cw = client
        self._call = StoreCall(METRICS_ERRORS)

    def put(self, namespace: str, data: Sequence[MetricDatumTypeDef]) -> int:
        """Every datum, in as few calls as the limit allows; returns the number of calls."""
        calls = 0
        for start in range(0, len(data), PUT_DATA_MAX):
            self._call(
                "PutMetricData",
                self._cw.put_metric_data,
                namespace,
                Namespace=namespace,
                MetricData=list(data[start : start + PUT_DATA_MAX]),
            )
            calls += 1
        return calls
