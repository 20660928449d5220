"""Lambda: the scheduled reconcile (an EventBridge rule per mode, deploy/template.yaml).

The event says what to do: `{"mode": "report"}` (default) or `{"mode": "repair"}`, and
`"enqueue": true` to fan the run out as shard tasks on the work queue instead of running it
here (buckets too large for one 15-minute invocation; `docsync reconcile --collect RUN_ID`
folds the results). A run takes the reconcile lease first, so it never overlaps `docsync serve`'s
scheduler or another invocation (EventBridge delivers at least once); a run that finds the lease
held does nothing and says so. The report is saved under the reserved prefix like every run's.

The figures the alarms watch (ReconcileRuns, DriftFound, DriftRepaired) are recorded by the run
itself (`Reconciler.run`) and flushed as EMF with only the Environment dimension
(docs/metrics.md) before the handler returns, whatever happened. So are the AWS calls' figures
(`awsmetrics.to_emf`, service "reconcile"): the dashboard's capacity-per-kind widget then covers
what a reconcile costs, as it does the listener and the stream consumer.
"""

from __future__ import annotations

from typing import Any, get_args

from aws_lambda_powertools.metrics import Metrics
from loguru import logger

from engine import awsmetrics
from engine.lambdas.runtime import engine as lambda_engine
from engine.lambdas.runtime import flush_alarm_metrics
from reconciler.run import Mode
from reconciler.schedule import locked_run
from reconciler.tasks import enqueue

MODES: tuple[str, ...] = get_args(Mode)
metrics = Metrics(namespace="docsync", service="reconcile")


def _mode(event: dict[str, Any]) -> Mode:
    mode = event.get("mode", "report")
    if mode not in MODES:
        raise ValueError(f"invalid reconcile event: mode {mode!r} is not one of {', '.join(MODES)}")
    return mode  # type: ignore[no-any-return]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge target. Raises (so the invocation counts as an error) on a bad event or a
    failed run; a lease held elsewhere is not an error."""
    try:
        return _handle(event if isinstance(event, dict) else {})
    finally:
        flush_aws_metrics(metrics)
        flush_alarm_metrics()


def flush_aws_metrics(target: Metrics) -> None:
    """This invocation's AWS figures (capacity per kind among them) as one EMF line; none when
    there are none (outside Lambda the figures are not kept: awsmetrics' EMF)."""
    awsmetrics.to_emf(target)
    if target.metric_set:
        target.flush_metrics()


def _handle(event: dict[str, Any]) -> dict[str, Any]:
    mode = _mode(event)
    engine = lambda_engine()
    if event.get("enqueue"):
        return {"mode": mode, "enqueued": enqueue(engine, mode)}
    result = locked_run(engine, mode)
    if result is None:
        logger.bind(op="reconcile.lambda", mode=mode).info("lease held elsewhere: not run")
        return {"mode": mode, "ran": False, "reason": "another reconcile holds the lease"}
    return {
        "mode": mode,
        "ran": True,
        "counts": {k: result.counts[k] for k in sorted(result.counts)},
        "repaired": {k: result.repaired[k] for k in sorted(result.repaired)},
        "remaining": result.remaining(),
    }
