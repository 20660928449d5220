"""A writer SIGKILLed right after its S3 put, its S3 event dropped: `docsync serve`, running its
stream consumer and neither listener nor reconcile, makes the new content a cache hit once
`inflight_grace_s` has passed. The bound stated (and measured in bench/streams.py): grace +
one consumer poll (`idle_wait_s`, 1 s) + the repair's calls (GetItem, GetObject, PutItem)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.app import Engine
from engine.documents import parse_document
from tests.e2e.conftest import Cli
from tests.e2e.test_cli_history import change
from tests.e2e.test_serve import serve

GRACE_S = 2.0

WRITER = """
import json, os, signal, sys
from engine.app import Engine
from engine.documents import parse_document
from engine.documents import parse_document
from engine.settings import load_settings

engine = Engine.build(load_settings(None))
put = engine.objects.put

def put_then_die(key, body):
    put(key, body)
    os.kill(os.getpid(), signal.SIGKILL)  # after step 2, before the commit

engine.objects.put = put_then_die
engine.pipeline.put(parse_document(json.loads(sys.stdin.read()), "change"))
"""


def test_a_writer_killed_after_its_s3_put_is_repaired_by_serve(
    cli: Cli, ready: Engine, tmp_path: Path
) -> None:
    ready.pipeline.put(parse_document(change("draft"), "change"))
    queue = ready.clients.sqs.get_queue_url(QueueName=ready.settings.queue)["QueueUrl"]
    env = {
        "DOCSYNC_SERVE_LISTENER": "false",  # the S3 event is as good as lost
        "DOCSYNC_SERVE_SCHEDULER": "false",  # no reconcile
        "DOCSYNC_INFLIGHT_GRACE_S": str(GRACE_S),
        "DOCSYNC_STREAMS_ANALYTICS_DIR": str(tmp_path / "rows"),
    }
    with serve(cli, **env) as served:
        writer = subprocess.run(
            [sys.executable, "-c", WRITER],
            input=json.dumps(change("approved")),
            env=cli.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert writer.returncode == -signal.SIGKILL, writer.stderr[-2000:]
        killed = time.monotonic()
        ready.clients.sqs.purge_queue(QueueUrl=queue)
        item = ready.cache.get_item("change", "CHG-H1") or {}
        assert item.get("p_tx") and item.get("status") == "draft"  # in flight, not committed
        with served.http() as http:
            deadline = killed + GRACE_S + 60  # an upper bound for a loaded machine
            while True:
                response = http.get("/v1/change/CHG-H1")
                assert response.status_code == 200, response.text
                if (
                    response.json()["status"] == "approved"
                    and response.headers["X-Docsync-Cache"] == "hit"
                ):
                    break
                assert time.monotonic() < deadline, "not repaired"
                time.sleep(0.1)
            while True:  # the repair's commit reaches history at the consumer's next read
                history = http.get("/v1/change/CHG-H1/history").json()["items"]
                if len(history) == 2:
                    break
                assert time.monotonic() < deadline, f"not in history: {history}"
                time.sleep(0.1)
        code, stderr, _ = served.terminate()
    assert code == 0
    assert [(e["version"], e["sync_source"]) for e in history] == [(2, "repair"), (1, "write")]
    repairs = [
        json.loads(line)
        for line in stderr.splitlines()
        if line.startswith("{") and '"stream.repair"' in line
    ]
    assert [(r.get("reason"), r.get("outcome")) for r in repairs] == [("stuck_intent", "committed")]
