"""The alarms' figures from the command line and from `docsync serve` (issue 10 §2): a CLI run
prints its EMF lines on stderr (stdout keeps exactly its result), serve prints them on stdout
(the container's log) while it runs and at shutdown."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx

from engine.app import Engine
from tests.e2e.conftest import DOCSYNC, Aws, Cli
from tests.e2e.test_serve import KEY, free_port
from tests.integration.test_listener_convergence import body
from tests.unit.test_cloudwatch import parse_emf

ENV = {"DOCSYNC_METRICS_NAMESPACE": "docsync-e2e", "DOCSYNC_METRICS_ENVIRONMENT": "stack-e2e"}


def test_a_cli_reconcile_prints_its_figures_on_stderr(cli: Cli, ready: Engine) -> None:
    for i in range(3):
        ready.objects.put(f"changes/E-{i}.json", body(f"E-{i}", i))

    run = cli("reconcile", "--repair", "--format", "json", env=ENV)

    assert run.json()["repaired"]["missing"] == 3  # stdout: the result alone
    assert parse_emf(run.stderr, "docsync-e2e", "stack-e2e") == {
        "DriftFound": [3.0],
        "DriftRepaired": [3.0],
        "ReconcileRuns": [1.0],
    }


def test_sink_off_prints_no_figures(cli: Cli, ready: Engine) -> None:
    run = cli("reconcile", "--format", "json", env={**ENV, "DOCSYNC_METRICS_SINK": "off"})
    assert run.json()["counts"]["missing"] == 0
    assert '"_aws"' not in run.stderr


def test_serve_prints_the_figures_on_stdout(cli: Cli, aws: Aws, ready: Engine) -> None:
    for i in range(3):
        ready.objects.put(f"changes/S-{i}.json", body(f"S-{i}", i))
    port = free_port()
    env = cli.env(
        DOCSYNC_SERVE_API_KEYS=KEY,
        DOCSYNC_LOG_FORMAT="json",
        DOCSYNC_SERVE_LISTENER="false",
        DOCSYNC_SERVE_CONSUMER="false",
        DOCSYNC_SERVE_SCHEDULER="false",
        DOCSYNC_METRICS_FLUSH_S="0.2",
        **ENV,
    )
    proc = subprocess.Popen(
        [str(DOCSYNC), "serve", "--port", str(port)],
        env=env,
        cwd=cli.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": KEY}, timeout=30
        ) as http:
            for _ in range(600):
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                time.sleep(0.1)
            for i in range(3):
                assert http.get(f"/v1/change/S-{i}").status_code == 200
            assert http.post("/v1/reconcile", json={"mode": "report"}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err[-3000:]
    figures = parse_emf(out, "docsync-e2e", "stack-e2e")
    assert len(figures.pop("QueryLatency")) == 3
    assert figures == {"DriftFound": [0.0], "ReconcileRuns": [1.0]}  # the gets filled the cache
