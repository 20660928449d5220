"""The Lambda adapter: one module per deployed function, over one runtime per container.

    runtime.py         what a container keeps: the engine, or the stream consumer's state
    listener.py        S3 events: SQS batches (`sqs_handler`) and direct S3 (`s3_handler`)
    stream.py          the stream consumer: DynamoDB stream and Kinesis batches
    reconcile.py       the scheduled reconcile (EventBridge)
    reconcile_tasks.py the reconcile shard tasks of the work queue (SQS)

Deployed functions may still name the paths from before this folder existed; they stay as
aliases of the same callables: engine.events.handlers.{sqs,s3}_handler,
engine.streams.lambda_handler.{stream,kinesis}_handler, reconciler.tasks.sqs_handler.
"""

from __future__ import annotations
