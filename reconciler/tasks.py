"""Reconcile across machines: shard tasks on an SQS work queue (competing consumers).

`enqueue` sends one message per shard of a run; any worker (`docsync reconcile --work`, or
the Lambda handler below) runs a shard and stores its partial result in S3 under the reserved
prefix; `collect` folds the partials of a run into one report, saying how many are missing.
A task is deleted only after its partial is stored; a crashed worker's task comes back.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from engine import cloudwatch, keys
from engine.app import Engine
from reconciler.run import Mode, Reconciler, ReconcileResult
from reconciler.shards import Shard

RUNS = "runs/"


def _url(engine: Engine) -> str:
    sqs = engine.clients.sqs
    return sqs.get_queue_url(QueueName=engine.settings.work_queue)["QueueUrl"]


def _partial_key(engine: Engine, run_id: str, index: int) -> str:
    return f"{engine.settings.reserved_prefix}{RUNS}{run_id}/{index:04d}.json"


def enqueue(engine: Engine, mode: Mode, types: list[str] | None = None) -> dict[str, Any]:
    shards = Reconciler(engine).plan(types)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    url = _url(engine)
    bodies = [
        json.dumps(
            {
                "kind": "reconcile-shard",
                "run_id": run_id,
                "mode": mode,
                "index": n,
                "of": len(shards),
                "shard": asdict(shard),
            }
        )
        for n, shard in enumerate(shards)
    ]
    for start in range(0, len(bodies), 10):
        engine.clients.sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": body}
                for i, body in enumerate(bodies[start : start + 10])
            ],
        )
    logger.bind(op="reconcile.enqueue", run_id=run_id, tasks=len(bodies)).info("enqueued")
    return {"run_id": run_id, "mode": mode, "tasks": len(bodies)}


def run_task(engine: Engine, body: str) -> dict[str, Any]:
    """One shard task; its partial result goes to S3. Raises on a malformed task."""
    task = json.loads(body)
    if task.get("kind") != "reconcile-shard":
        raise ValueError(f"not a reconcile task: {body[:200]!r}")
    shard = Shard(**task["shard"])
    result = Reconciler(engine).run(task["mode"], shards=[shard], emit="shard")
    partial = result.as_dict() | {
        "run_id": task["run_id"],
        "index": task["index"],
        "of": task["of"],
    }
    engine.objects.put(
        _partial_key(engine, task["run_id"], task["index"]), json.dumps(partial).encode()
    )
    return partial


def work(engine: Engine, drain: bool = True, stop: threading.Event | None = None) -> int:
    """Take tasks until the queue is empty (drain) or `stop` is set. Returns tasks done."""
    stop = stop or threading.Event()
    sqs, url, done = engine.clients.sqs, _url(engine), 0
    while not stop.is_set():
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=1 if drain else 10,
            VisibilityTimeout=300,
        ).get("Messages", [])
        if not messages:
            if drain:
                return done
            continue
        message = messages[0]
        beat = threading.Event()

        def heartbeat(
            receipt: str = message["ReceiptHandle"], beat: threading.Event = beat
        ) -> None:
            while not beat.wait(100):
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=300
                )

        threading.Thread(target=heartbeat, daemon=True).start()
        try:
            run_task(engine, message["Body"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.bind(op="reconcile.task").error("malformed task, dropped: {}", exc)
        finally:
            beat.set()
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        done += 1
    return done


def collect(engine: Engine, run_id: str) -> dict[str, Any]:
    """Fold the partial results of a run into one report (and say if any are missing)."""
    prefix = f"{engine.settings.reserved_prefix}{RUNS}{run_id}/"
    total: ReconcileResult | None = None
    expected, seen = 0, 0
    for info in engine.objects.list(prefix):
        data = json.loads(engine.objects.get(info.key).body)
        expected, seen = int(data["of"]), seen + 1
        part = ReconcileResult.from_dict(data)
        if total is None:
            total = part
        else:
            total.merge(part)
    if total is None:
        return {"run_id": run_id, "complete": False, "tasks_done": 0}
    total.items.sort(key=lambda item: str(item["key"]).encode())
    if seen == expected:
        cloudwatch.record("ReconcileRuns", 1)  # the shard tasks reported the drift
    return total.as_dict() | {
        "run_id": run_id,
        "complete": seen == expected,
        "tasks_done": seen,
        "tasks": expected,
        "collected_at": keys.iso(datetime.now(UTC)),
    }


def __getattr__(name: str) -> Any:
    """`reconciler.tasks.sqs_handler`, the shard worker's deprecated Lambda handler path
    (deployed functions name it): the handler is engine/lambdas/reconcile_tasks.py's, imported
    on first use so that this capability does not import its adapter."""
    if name == "sqs_handler":
        from engine.lambdas.reconcile_tasks import sqs_handler

        return sqs_handler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
