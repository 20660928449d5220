"""`docsync serve` as a user runs it: a subprocess with every part on, S3 events written while
it runs reach the cache, its HTTP API answers, and SIGTERM with messages in flight exits 0
with every message either applied or back on the queue."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from engine.app import Engine
from tests.e2e.conftest import DOCSYNC, Aws, Cli
from tests.e2e.test_cli_listen import cached, put_direct, queue_depth

KEY = "e2e-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": KEY}, timeout=30)

    def terminate(self, timeout_s: float = 40) -> tuple[int, str, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, err, time.monotonic() - started


@contextmanager
def serve(cli: Cli, **env: str) -> Iterator[Served]:
    port = free_port()
    proc = subprocess.Popen(
        [str(DOCSYNC), "serve", "--port", str(port)],
        env=cli.env(DOCSYNC_SERVE_API_KEYS=KEY, DOCSYNC_LOG_FORMAT="json", **env),
        cwd=cli.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            try:
                if httpx.get(served.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def logs(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_events_written_while_serving_reach_the_cache(cli: Cli, aws: Aws, ready: Engine) -> None:
    # read metrics are flushed every 10 min here: the one flush seen is the shutdown's
    with serve(cli, DOCSYNC_STREAMS_FLUSH_INTERVAL_S="600") as served:
        with served.http() as http:
            parts = http.get("/readyz").json()["parts"]
            assert set(parts) == {"listener", "consumer", "scheduler", "api"}
            assert all(p["healthy"] for p in parts.values()), parts
            etags = put_direct(ready, 12, seed=21)  # another application writes to S3
            deadline = time.monotonic() + 60
            while cached(aws) != etags and time.monotonic() < deadline:
                time.sleep(0.1)
            assert cached(aws) == etags
            key = sorted(etags)[0]
            type_name = "change" if key.startswith("changes/") else "announcement"
            doc_id = key.split("/", 1)[1].removesuffix(".json")
            got = http.get(f"/v1/{type_name}/{doc_id}")
            assert got.status_code == 200 and got.headers["x-docsync-cache"] == "hit"
            metrics = http.get("/metrics").text
            assert 'docsync_events_total{outcome="applied"}' in metrics
            assert 'docsync_serve_part_up{part="listener"} 1.0' in metrics
        code, err, took = served.terminate()
    assert code == 0, err[-3000:]
    assert took < 25
    stopped = [line for line in logs(err) if line.get("msg") == "docsync serve stopped"]
    assert stopped and stopped[0]["clean"] is True
    assert KEY not in err
    assert queue_depth(aws) == 0
    flushed = [i for pk, i in aws.all_items().items() if pk.startswith("_docsync#metrics#")]
    assert sum(int(i.get("hits", 0)) for i in flushed) >= 1  # the GET above, flushed at stop


def test_sigterm_with_messages_in_flight_loses_none(cli: Cli, aws: Aws, ready: Engine) -> None:
    etags = put_direct(ready, 60, seed=22)
    env = {"DOCSYNC_SERVE_SCHEDULER": "false", "DOCSYNC_SERVE_SHUTDOWN_TIMEOUT_S": "20"}
    with serve(cli, **env) as served:
        deadline = time.monotonic() + 60
        while len(cached(aws)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        code, err, took = served.terminate()
    assert code == 0, err[-3000:]
    assert took < 20 + 2
    done = cached(aws)
    assert 3 <= len(done) < len(etags), "the SIGTERM should land mid-run"
    assert {k: etags[k] for k in done} == done  # what was applied is what S3 holds
    # every message is either applied (and deleted) or still on the queue
    assert queue_depth(aws) == len(etags) - len(done)


def test_serve_refuses_to_run_its_api_without_keys(cli: Cli, ready: Engine) -> None:
    run = cli("serve", "--port", str(free_port()), env={"DOCSYNC_SERVE_API_KEYS": ""}, expect=2)
    assert "at least one API key" in run.stderr
    short = cli("serve", env={"DOCSYNC_SERVE_API_KEYS": "short"}, expect=2)
    assert "shorter than 16" in short.stderr
