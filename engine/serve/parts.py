"""The parts `docsync serve` can run, each a `Part` (run until stopped, stop on request)
built fresh for every (re)start from the one shared Engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from engine.app import Engine
from engine.events.worker import SqsListener
from engine.serve.supervisor import Part

LISTENER_WAIT_S = 5  # long poll; also bounds how long a stop waits for the current receive


def listener_wait_s(read_timeout_s: float) -> int:
    """A long poll must end well before the client's read timeout, or it fails as a timeout
    (and botocore retries it, doubling the wait of a stop)."""
    return max(1, min(LISTENER_WAIT_S, int(read_timeout_s) - 2))


class ListenerPart:
    """The S3 event listener: on stop it receives nothing more, finishes the messages it
    holds, and leaves every unapplied message on the queue (SqsListener's contract)."""

    name = "listener"

    def __init__(self, engine: Engine, wait_s: int | None = None) -> None:
        wait = wait_s or listener_wait_s(engine.settings.aws.read_timeout_s)
        self.listener = SqsListener.for_engine(engine, wait_s=wait)

    def run(self) -> None:
        self.listener.run()

    def stop(self) -> None:
        self.listener.stop.set()


class SchedulerPart:
    """The reconcile schedule (APScheduler, background thread). On stop no new run starts;
    a run in progress is finished (its lease lock expires by itself if we are killed)."""

    name = "scheduler"

    def __init__(self, engine: Engine, poll_s: float = 1.0) -> None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

        from reconciler.schedule import build

        self.scheduler = build(engine)
        self._stop = threading.Event()
        self._poll_s = poll_s

        def on_job(event: JobExecutionEvent) -> None:
            log = logger.bind(op="serve.scheduler", job=event.job_id)
            if event.exception is not None:
                log.error("scheduled run failed: {!r}", event.exception)
            else:
                log.info("scheduled run done")

        self.scheduler.add_listener(on_job, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)

    def jobs(self) -> list[str]:
        return [f"{job.id}: {job.trigger}" for job in self.scheduler.get_jobs()]

    def run(self) -> None:
        self.scheduler.start()
        try:
            while not self._stop.wait(self._poll_s):
                if not self.scheduler.running:
                    raise RuntimeError("the scheduler stopped by itself")
        finally:
            if self.scheduler.running:
                self.scheduler.shutdown(wait=True)

    def stop(self) -> None:
        self._stop.set()


class ConsumerPart:
    """The DynamoDB stream consumer (`docsync consume`): on stop it reads no more records,
    checkpoints what it processed (analytics rows first, then sequence numbers) and releases
    its lease, so a standby replica takes over at once."""

    name = "consumer"

    def __init__(self, engine: Engine) -> None:
        from engine.streams.consumer import LocalConsumer

        self.consumer = LocalConsumer(
            engine.settings,
            engine.settings.streams,
            engine.clients,
            engine=engine,
            on_records=engine.l1.on_stream_records if engine.l1 is not None else None,
        )

    def run(self) -> None:
        self.consumer.run()

    def stop(self) -> None:
        self.consumer.stop.set()


def consumer_factory(engine: Engine) -> tuple[Callable[[], Part] | None, str]:
    """(factory, ""): the stream consumer ships with the engine, so there is always one (the
    pair's "why not" stays for the caller, which reports skipped parts)."""
    return (lambda: ConsumerPart(engine)), ""
