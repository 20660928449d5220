"""End-to-end helpers: run the installed `docsync` console script in a subprocess, as a user.

Every test starts from a reset moto server (the session's `moto_server`). Seeding that is not
itself under test goes through the engine in-process, which is much cheaper than a subprocess
(each CLI start costs about a second of imports).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from engine.app import Engine
from engine.documents import parse_document
from engine.infra import Infrastructure
from engine.keys import INDEX_PK
from engine.local_moto import TEST_CREDENTIALS, EmbeddedMoto
from engine.readmetrics.item import RESERVED_PK
from engine.settings import Settings, load_settings

DOCSYNC = Path(sys.executable).parent / "docsync"
BUCKET = "docsync-documents"
TABLE = "docsync-cache"
LEASES = "docsync-leases"
QUEUE = "docsync-events"
DLQ = "docsync-events-dlq"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass
class Run:
    """One finished CLI invocation."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # shown by failed assertions
        return (
            f"docsync {' '.join(self.args)} → exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr[-4000:]}"
        )

    def json(self) -> Any:
        """stdout as exactly one JSON document."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one JSON line on stdout\n{self}"
        return json.loads(lines[0])

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines on stderr (logs go to stderr, results to stdout)."""
        out = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out


@dataclass
class Cli:
    endpoint: str
    cwd: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        env = os.environ.copy()
        env.update(TEST_CREDENTIALS)
        env["DOCSYNC_ENDPOINT_URL"] = self.endpoint
        env["DOCSYNC_AWS_MAX_ATTEMPTS"] = "2"
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def __call__(
        self,
        *args: str | Path,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        expect: int | None = 0,
    ) -> Run:
        argv = [str(a) for a in args]
        proc = subprocess.run(
            [str(DOCSYNC), *argv],
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            env=self.env(**(env or {})),
            cwd=self.cwd,
            check=False,
        )
        run = Run(argv, proc.returncode, proc.stdout, proc.stderr)
        if expect is not None:
            assert run.returncode == expect, str(run)
        return run


@dataclass
class Aws:
    """boto3 clients straight against the moto server, to check what the CLI did."""

    s3: Any
    dynamodb: Any
    sqs: Any

    def bucket_names(self) -> set[str]:
        return {b["Name"] for b in self.s3.list_buckets()["Buckets"]}

    def table_names(self) -> set[str]:
        return set(self.dynamodb.list_tables()["TableNames"])

    def objects(self, bucket: str = BUCKET) -> dict[str, bytes]:
        out = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = self.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return out

    def items(self, table: str = TABLE) -> dict[str, dict[str, Any]]:
        """Every cache entry by pk, deserialized (customer-index entries: `index_items`; the
        read-metrics items that CLI processes flush are no documents' entries either)."""
        return {pk: i for pk, i in self.all_items(table).items() if not pk.startswith(RESERVED_PK)}

    def index_items(self, table: str = TABLE) -> dict[str, dict[str, Any]]:
        """The customer-index entries by pk."""
        return {pk: i for pk, i in self.all_items(table).items() if pk.startswith(INDEX_PK)}

    def all_items(self, table: str = TABLE) -> dict[str, dict[str, Any]]:
        """Every item of the table by pk, deserialized."""
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        out: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            response = self.dynamodb.scan(**kwargs)
            for raw in response.get("Items", []):
                item = {k: de.deserialize(v) for k, v in raw.items()}
                out[str(item["pk"])] = item
            if not response.get("LastEvaluatedKey"):
                return out
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


@pytest.fixture
def server(moto_server: EmbeddedMoto) -> Iterator[EmbeddedMoto]:
    """The session's moto server, emptied: no bucket, no table, no queue."""
    moto_server.reset()
    yield moto_server


@pytest.fixture
def cli(server: EmbeddedMoto, tmp_path: Path) -> Cli:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    return Cli(server.endpoint, workdir)


@pytest.fixture
def aws(server: EmbeddedMoto) -> Aws:
    session = boto3.session.Session(region_name="us-east-1")
    return Aws(
        s3=session.client("s3", endpoint_url=server.endpoint),
        dynamodb=session.client("dynamodb", endpoint_url=server.endpoint),
        sqs=session.client("sqs", endpoint_url=server.endpoint),
    )


def engine_settings(endpoint: str) -> Settings:
    return load_settings(None, endpoint_url=endpoint, aws={"max_attempts": 2}, concurrency=8)


@pytest.fixture
def ready(server: EmbeddedMoto) -> Engine:
    """An in-process engine on a server where every resource exists (init done in-process)."""
    settings = engine_settings(server.endpoint)
    engine = Engine.build(settings)
    Infrastructure(settings, engine.clients).init()
    return engine


def seed(engine: Engine, documents: Iterable[dict[str, Any]]) -> None:
    """Write documents through the engine's own pipeline (setup, not the thing under test)."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda doc: engine.pipeline.put(parse_document(doc)), documents))


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
