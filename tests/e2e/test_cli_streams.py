"""`docsync consume` and `docsync stats` as a user runs them, in subprocesses: a scripted
workload with a known answer, and a standby consumer taking over from a SIGKILLed one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.app import Engine
from engine.readmetrics.flush import MetricsFlusher
from engine.store.leases import checkpoint_key, consumer_key
from engine.streams.analytics import merge_rows
from engine.streams.sinks import ANALYTICS, FileRowSink
from tests.e2e.conftest import LEASES, Aws, Cli, Run
from tests.integration.test_streams_consumer import doc, seven_hits_three_misses, stream_records

# engine/cli/main.py loads engine.cli.streams_cmds once it is wired; until then, load it here.
LAUNCH = "import engine.cli.streams_cmds; from engine.cli.main import main; main()"


def docsync(cli: Cli, *args: str, env: dict[str, str] | None = None, expect: int | None = 0) -> Run:
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=cli.env(**(env or {})),
        cwd=cli.cwd,
        check=False,
    )
    run = Run(list(args), proc.returncode, proc.stdout, proc.stderr)
    if expect is not None:
        assert run.returncode == expect, str(run)
    return run


def test_consume_drain_then_stats(cli: Cli, ready: Engine) -> None:
    seven_hits_three_misses(ready)
    MetricsFlusher(ready.cache, ready.reader.stats).flush()
    written = len(stream_records(ready))  # consume's own exit flush comes after its drain
    counts = docsync(cli, "consume", "--drain", "--format", "json").json()
    assert counts["role"] == "active" and counts["records"] == written
    assert counts["cluster"]["hit_ratio"] == 0.7 and counts["fills"] == 3
    stats = docsync(cli, "stats", "--format", "json").json()
    assert (stats["hits"], stats["misses"], stats["hit_ratio"]) == (7, 3, 0.7)
    assert stats["read_latency_ms"]["count"] == 10 and stats["read_latency_ms"]["p99"] is not None
    assert stats["fills"] == 3 and stats["writes"] == {"backfill": 3, "write": 7}
    assert stats["changes"] == {"creates": 10, "updates": 0, "deletes": 0}
    assert stats["sync_lag_s"]["count"] == 10 and stats["ttl_expiries"] == 0
    assert (
        stats["consumer"]["active"] is False and stats["consumer"]["records"] == counts["records"]
    )
    assert stats["iterator_age_s"] is not None
    assert {w["type"] for w in stats["windows"]} == {"change"}
    assert stats["sources"]["analytics"].startswith("s3://")
    hot: dict[str, int] = {}
    for p in stats["hot_partitions"]:  # 10 creates, all of customer acme, all drafts
        assert p["partition"].startswith(("change#", "change#draft#", "acme#change#"))
        hot[p["index"]] = hot.get(p["index"], 0) + p["writes"]
    assert hot == {"time-index": 10, "status-index": 10, "customer-index": 10}
    assert stats["capacity_by_kind"]["scope"] == "cluster"
    text = docsync(cli, "stats", "--format", "text")
    assert "hit ratio" in text.stdout and "70.0%" in text.stdout
    assert "busiest GSI partitions" in text.stdout
    assert "latest analytics windows" in text.stdout
    since_first = len(stream_records(ready)) - written  # the first run's exit flush, if any
    again = docsync(cli, "consume", "--drain", "--format", "json").json()
    assert again["records"] == since_first  # resumed from the checkpoint


def test_invalid_settings_exit_2(cli: Cli, ready: Engine) -> None:
    bad = docsync(
        cli,
        "consume",
        "--drain",
        "--format",
        "json",
        env={"DOCSYNC_STREAMS_LEASE_TTL_S": "-1"},
        expect=2,
    )
    assert "DOCSYNC_STREAMS_LEASE_TTL_S" in bad.json()["error"]
    docsync(cli, "stats", "--since", "yesterday-ish", expect=2)


def lease(aws: Aws, arn: str) -> dict[str, Any]:
    item = aws.dynamodb.get_item(
        TableName=LEASES, Key={"lease_key": {"S": consumer_key(arn)}}, ConsistentRead=True
    ).get("Item", {})
    return {k: next(iter(v.values())) for k, v in item.items()}


def checkpoint(aws: Aws, arn: str, shard: str) -> dict[str, Any]:
    item = aws.dynamodb.get_item(
        TableName=LEASES, Key={"lease_key": {"S": checkpoint_key(arn, shard)}}, ConsistentRead=True
    ).get("Item", {})
    return {k: next(iter(v.values())) for k, v in item.items()}


def wait_for(check: Any, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_standby_takes_over_after_sigkill(
    cli: Cli, aws: Aws, ready: Engine, tmp_path: Path
) -> None:
    rows = tmp_path / "rows"
    env = cli.env(
        DOCSYNC_STREAMS_LEASE_TTL_S="4",  # a stall of a loaded machine stays inside it
        DOCSYNC_STREAMS_CHECKPOINT_INTERVAL_S="0.2",
        DOCSYNC_STREAMS_IDLE_WAIT_S="0.05",
        DOCSYNC_STREAMS_ANALYTICS_DIR=str(rows),
        DOCSYNC_LOG_FORMAT="json",
    )

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "consume", "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cli.cwd,
        )

    arn = aws.dynamodb.describe_table(TableName=ready.settings.table)["Table"]["LatestStreamArn"]
    streams = ready.clients.client("dynamodbstreams")
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    shard_id = shard["ShardId"]
    active = start()
    standby: subprocess.Popen[str] | None = None
    try:
        wait_for(
            lambda: f":{active.pid}:" in str(lease(aws, arn).get("owner")), what="active lease"
        )
        standby = start()
        time.sleep(1.5)
        assert f":{active.pid}:" in str(lease(aws, arn).get("owner"))  # the second one waits
        for n in range(3):
            ready.pipeline.put(doc(f"KILL-{n}", n=n))
        last = stream_records(ready)[-1]["dynamodb"]["SequenceNumber"]
        wait_for(lambda: checkpoint(aws, arn, shard_id).get("sequence") == last, what="checkpoint")
        active.send_signal(signal.SIGKILL)
        active.wait(timeout=10)
        for n in range(3, 6):
            ready.pipeline.put(doc(f"KILL-{n}", n=n))
        last = stream_records(ready)[-1]["dynamodb"]["SequenceNumber"]
        wait_for(lambda: f":{standby.pid}:" in str(lease(aws, arn).get("owner")), what="takeover")
        wait_for(lambda: checkpoint(aws, arn, shard_id).get("sequence") == last, what="catch up")
        standby.send_signal(signal.SIGTERM)
        out, err = standby.communicate(timeout=20)
        assert standby.returncode == 0, err[-3000:]
    finally:
        for proc in (active, standby):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["role"] == "active" and summary["takeovers"] == 1
    assert summary["creates"] == 3 and summary["duplicates"] == 0  # after the dead one's checkpoint
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any("standby" in entry["msg"] for entry in logs)
    assert any("lease acquired" in entry["msg"] for entry in logs)
    merged = merge_rows(
        FileRowSink(rows, "t").read(ANALYTICS, datetime.now(UTC) - timedelta(hours=1))
    )
    assert (
        sum(r["creates"] for r in merged) == 6
    )  # the dead one stored its rows before its checkpoint


def test_dry_run_consume_writes_nothing(cli: Cli, aws: Aws, ready: Engine) -> None:
    ready.pipeline.put(doc("DRY-1"))
    run = docsync(cli, "consume", "--drain", "--dry-run", "--format", "json")
    counts = run.json()
    assert counts["dry_run"] is True and counts["creates"] == 1
    assert aws.dynamodb.scan(TableName=LEASES)["Items"] == []  # no lease, no checkpoint
    assert not [k for k in aws.objects() if k.startswith("_docsync/")]  # no analytics rows
    logs = run.logs()
    assert logs and all(entry.get("dry_run") is True for entry in logs), logs
    assert any(entry.get("op") == "dynamodb.TransactWriteItems" for entry in logs)
