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


def bench(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, f"bench/{script}", *args]
    return subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_adapter_benchmark_reports_each_variant_on_each_transport() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCSYNC_", "OTEL_"))}
    done = bench("adapter_overhead.py", "--ops", "3", "--rounds", "1", env=env)
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


def test_the_instruction_count_reads_cachegrind_and_says_when_valgrind_is_missing() -> None:
    """`bench/adapter_instructions.py` needs valgrind: without it on PATH, it says so and
    exits 2 (not a figure of zero); with it, the count is cachegrind's `I refs` total."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from adapter_instructions import instructions_of  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    stderr = "==1== \n==1== I   refs:      2,646,152,449\n==1== I1  misses: 11,532,249\n"
    assert instructions_of(stderr) == 2_646_152_449
    bare = Path(sys.executable).parent  # the venv's python, and no valgrind beside it
    env = {"PATH": str(bare), "HOME": os.environ.get("HOME", "/tmp")}
    done = bench("adapter_instructions.py", "--gets", "1", env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "valgrind not found" in done.stderr
    assert done.stdout == ""
