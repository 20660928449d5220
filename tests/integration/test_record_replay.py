"""Record a small workload through the engine on the moto server, then replay it with no
server at all (an endpoint where nothing listens): same results, and no credential in the file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.documents import parse_document
from engine.exceptions import NotFoundError
from engine.reader import Query
from engine.recording import ReplayMismatchError
from engine.sample import sample_documents
from engine.settings import Settings

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
NOW = datetime.now(UTC)


def workload(engine: Engine) -> list[Any]:
    docs = [parse_document(d) for d in sample_documents(4, seed=3, now=NOW)]
    out: list[Any] = [engine.pipeline.put(d).as_dict() for d in docs]
    first = docs[0]
    got = engine.reader.get(first.type, first.id)
    out.append((got.document, got.cache))
    page = engine.reader.query(Query(types=(first.type,), limit=10))
    out.append(page.as_dict())
    out.append(engine.pipeline.delete(first.type, first.id).as_dict())
    try:
        engine.reader.get(first.type, first.id)
    except NotFoundError as exc:
        out.append(str(exc))
    return out


def test_a_recorded_run_replays_with_no_server(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    recorded = workload(Engine.build(settings.model_copy(update={"record": path})))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {(e["service"], e["operation"]) for e in lines} >= {
        ("dynamodb", "UpdateItem"),
        ("s3", "PutObject"),
        ("dynamodb", "TransactWriteItems"),  # the commit, with its customer-index entries
        ("dynamodb", "GetItem"),
        ("dynamodb", "Query"),
    }
    assert "AKIA" not in path.read_text() and "Signature=" not in path.read_text()
    assert all(e["request"]["headers"].get("Authorization") == "<redacted>" for e in lines)

    replay = settings.model_copy(update={"replay": path, "endpoint_url": CLOSED})
    assert workload(Engine.build(replay)) == recorded
    # and again: a replay is deterministic
    assert workload(Engine.build(replay)) == recorded


def test_a_call_the_recording_lacks_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text("")
    engine = Engine.build(settings.model_copy(update={"replay": path, "endpoint_url": CLOSED}))
    with pytest.raises(ReplayMismatchError, match=r"dynamodb\.DescribeTable"):
        engine.clients.dynamodb.describe_table(TableName=settings.table)


def test_redacted_bodies_stay_out_of_the_recording(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    update = {"record": path, "record_redact_bodies": True}
    engine = Engine.build(settings.model_copy(update=update))
    d = parse_document(sample_documents(1, seed=4, now=NOW)[0])
    engine.pipeline.put(d)
    engine.reader.get(d.type, d.id)
    text = path.read_text()
    assert d.title not in text and "<redacted>" in text
