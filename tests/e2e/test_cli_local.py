"""`docsync local`: a moto server in the foreground that prints its endpoint, stops on SIGTERM."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import threading
from pathlib import Path

import boto3

from tests.e2e.conftest import DOCSYNC, Cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_local_serves_until_sigterm(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    stderr = (tmp_path / "local.err").open("w")
    proc = subprocess.Popen(
        [str(DOCSYNC), "local", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=cli.env(),
        cwd=cli.cwd,
    )
    try:
        stdout = proc.stdout
        assert stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        first = lines.get(timeout=30)
        assert json.loads(first) == {"endpoint": f"http://127.0.0.1:{port}"}

        s3 = boto3.session.Session(region_name="us-east-1").client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}"
        )
        s3.create_bucket(Bucket="local-check")
        s3.put_object(Bucket="local-check", Key="k", Body=b"v")
        assert s3.get_object(Bucket="local-check", Key="k")["Body"].read() == b"v"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        stderr.close()
    with socket.socket() as sock:  # nothing listens on the port any more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
        sock.bind(("127.0.0.1", port))
        sock.listen()
