"""`bench/adapter_overhead.py` runs as a user runs it (a subprocess, its own moto) and reports
every variant on every transport. Only the shape of its answer is checked: timings are for the
benchmark to print, not for a test on a shared machine to assert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {"metrics", "tracing", "metrics+tracing"}


def test_the_adapter_benchmark_reports_each_variant_on_each_transport() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCSYNC_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "bench/adapter_overhead.py", "--ops", "3", "--rounds", "1"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["bench"] == "adapter_overhead"
    transports = {kind: [r["transport"] for r in report[kind]] for kind in ("get", "put")}
    assert transports == {
        "get": ["canned", "moto", "canned, unpinned", "canned, consumed_capacity=NONE"],
        "put": ["canned", "moto"],
    }
    for kind in ("get", "put"):
        for result in report[kind]:
            assert set(result["overhead"]) == VARIANTS, result
            assert set(result["cpu_overhead"]) == VARIANTS
            assert all(us > 0 for us in result["us_per_op"].values())
    assert "tracing" in done.stdout and "target ≤ +10%" in done.stdout
