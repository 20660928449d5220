"""Shared harness for the benchmarks: an embedded moto, the engine on it, raw boto3 beside it."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.app import Engine
from engine.aws import AwsClients, CallCounter
from engine.documents import Document
from engine.infra import Infrastructure
from engine.keys import cache_pk
from engine.local_moto import TEST_CREDENTIALS, EmbeddedMoto
from engine.logs import configure_logging
from engine.settings import Settings, load_settings
from engine.store.item import INLINE_BODY_LIMIT, live_attributes, serialize
from engine.store.objects import ObjectInfo

READ_PREFIXES = ("Get", "Query", "Scan", "Head", "List")
MOTO_CAVEAT = (
    "moto caveat (see ../shared/DESIGN.md, moto section): Query and Scan cost O(whole table)"
    " (~11 µs per item), and moto 5.2.5 spends ~1.8 ms serializing each item it returns; a LIST"
    " page re-sorts the whole bucket; requests are serialized (~200 calls/s in total, whatever"
    " the threads). On AWS a GSI query costs O(items returned): compare AWS calls as well as time."
)


class MotoServer(Protocol):
    @property
    def endpoint(self) -> str: ...

    def reset(self) -> None: ...


class MotoProcess:
    """`docsync local` in a child process: the server gets its own interpreter (and GIL), as
    AWS would, so the clients' own CPU does not slow the server down. BENCH_MOTO=thread runs
    it in this process instead (the tests' set-up)."""

    def __init__(self) -> None:
        docsync = Path(sys.executable).with_name("docsync")
        self._proc = subprocess.Popen(
            [str(docsync), "local", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"docsync local exited with {self._proc.wait()}")
        self._endpoint = str(json.loads(line)["endpoint"])

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def reset(self) -> None:
        request = urllib.request.Request(f"{self._endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    if os.environ.get("BENCH_MOTO", "process") == "thread":
        with EmbeddedMoto() as embedded:
            yield embedded
        return
    child = MotoProcess()
    try:
        yield child
    finally:
        child.stop()


class CallTimer:
    """The AWS calls of the current thread (botocore before-call → after-call), with durations."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._inflight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()  # most concurrent calls per service, since reset

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.*.*", self._before)
        client.meta.events.register("after-call.*.*", self._after)

    def start(self) -> None:
        self._local.calls = []

    def calls(self) -> list[tuple[str, float]]:
        """(operation, seconds) of this thread's calls since `start()`."""
        return list(getattr(self._local, "calls", []))

    def reset_peak(self) -> None:
        with self._lock:
            self.peak.clear()

    def _before(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        with self._lock:
            self._inflight[service] += 1
            self.peak[service] = max(self.peak[service], self._inflight[service])
        self._local.started = time.perf_counter()

    def _after(self, model: Any, **_: Any) -> None:
        with self._lock:
            self._inflight[model.service_model.service_name] -= 1
        calls = getattr(self._local, "calls", None)
        if calls is not None:
            calls.append((model.name, time.perf_counter() - self._local.started))


@dataclass
class Harness:
    server: MotoServer
    settings: Settings
    engine: Engine
    counter: CallCounter  # the engine's calls
    raw: AwsClients  # same client config as the engine, no engine code in the way
    raw_counter: CallCounter
    timer: CallTimer  # attached to the engine's and the raw clients alike
    admin: AwsClients  # uncounted, untimed housekeeping

    def drain_events(self) -> None:
        """Drop the S3 notifications nobody consumes here: moto's SendMessage is O(queue)."""
        sqs = self.admin.sqs
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=self.settings.queue)["QueueUrl"])

    def reset(self) -> None:
        """Back to a freshly initialized moto: everything dropped, `docsync init` run again
        (uncounted), the queue emptied (of the `s3:TestEvent`). The engine's clients stay."""
        self.server.reset()
        Infrastructure(self.settings, self.admin).init()
        self.drain_events()


@contextmanager
def harness(**overrides: Any) -> Iterator[Harness]:
    """A fresh embedded moto with every resource created by `docsync init` (`overrides`:
    settings, e.g. month_shards)."""
    for name in list(os.environ):
        if name.startswith(("DOCSYNC_", "AWS_ENDPOINT_URL")):
            del os.environ[name]
    os.environ.update(TEST_CREDENTIALS)
    os.environ["MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"] = "false"  # purge at will
    configure_logging("json", "WARNING")
    with moto_server() as server:
        settings = load_settings(
            None, endpoint_url=server.endpoint, aws={"max_attempts": 2}, concurrency=16, **overrides
        )
        counter, raw_counter = CallCounter(), CallCounter()
        engine = Engine.build(settings, counter)
        Infrastructure(settings, engine.clients).init()
        counter.reset()
        raw, timer = AwsClients(settings, raw_counter), CallTimer()
        for clients in (engine.clients, raw):
            timer.attach(clients.dynamodb)
            timer.attach(clients.s3)
        yield Harness(
            server, settings, engine, counter, raw, raw_counter, timer, AwsClients(settings)
        )


def reads(counts: Counter[str]) -> int:
    """Calls whose operation is a read (Get*, Query, Scan, Head*, List*)."""
    return sum(n for op, n in counts.items() if op.partition(".")[2].startswith(READ_PREFIXES))


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000 if samples else float("nan")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def progress(label: str, done: int, total: int, started: float) -> None:
    """One overwriting progress line on stderr."""
    rate = done / max(time.perf_counter() - started, 1e-9)
    end = "\n" if done >= total else ""
    print(f"\r{label}: {done}/{total} ({rate:,.0f}/s)", end=end, file=sys.stderr, flush=True)


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [[_fmt(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print(
            "  "
            + "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def cache_item(
    settings: Settings, doc: Document, info: ObjectInfo, source: str, **extra: Any
) -> dict[str, Any]:
    """A committed cache item (low-level attribute values) as the engine would write it:
    for loading corpora without the pipeline, and for raw baselines."""
    attrs = live_attributes(
        doc,
        info,
        prefix=settings.prefixes[doc.type],
        source=source,
        ttl_days=settings.cache_ttl_days,
        inline_limit=INLINE_BODY_LIMIT,
        month_shards=settings.month_shards,
    )
    item: dict[str, Any] = serialize(
        {**attrs, "pk": cache_pk(doc.type, doc.id), "version": 1, **extra}
    )
    return item
