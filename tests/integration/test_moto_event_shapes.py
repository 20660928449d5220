"""moto's own S3 → SQS notifications decode to the keys that were put (moto's event shapes
differ from AWS's: the parser is tested against both, AWS's in tests/unit/test_events_parse.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import boto3

from engine.app import Engine
from engine.events.parse import TestEvent as S3TestEvent  # not a pytest class
from engine.events.parse import parse_body
from engine.infra import Infrastructure
from engine.local_moto import EmbeddedMoto
from tests.conftest import make_settings

MOTO_KEYS = [
    "changes/a b+c%25é.json",
    "changes/100% pure+simple.json",
    "changes/x~y!*'()&=?#@[];:,$.json",
    "changes/日本/語 ñ 🎉.json",
    "changes/%2F not a slash.json",
    "changes/CHG-1.json",
]


def _receive_all(sqs: Any, url: str, expected: int) -> list[str]:
    bodies: list[str] = []
    for _ in range(20):  # never a long poll: the embedded server handles one request at a time
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = response.get("Messages", [])
        if not messages and len(bodies) >= expected:
            break
        bodies.extend(m["Body"] for m in messages)
    return bodies


def test_moto_s3_to_sqs_messages_decode_to_the_keys_that_were_put(
    moto_server: EmbeddedMoto,
) -> None:
    moto_server.reset()
    settings = make_settings(moto_server.endpoint)
    Infrastructure(settings, Engine.build(settings).clients).init()
    s3 = boto3.client("s3", endpoint_url=settings.endpoint_url, region_name=settings.region)
    sqs = boto3.client("sqs", endpoint_url=settings.endpoint_url, region_name=settings.region)
    bodies = {key: f'{{"n": {n}}}'.encode() for n, key in enumerate(MOTO_KEYS)}
    for key, data in bodies.items():
        s3.put_object(Bucket=settings.bucket, Key=key, Body=data)
    deleted = MOTO_KEYS[0]
    s3.delete_object(Bucket=settings.bucket, Key=deleted)
    # Outside the notification prefixes: no message.
    s3.put_object(Bucket=settings.bucket, Key="elsewhere/a b.json", Body=b"{}")

    url = sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
    raw = _receive_all(sqs, url, expected=len(MOTO_KEYS) + 2)

    test_events = [p for p in map(parse_body, raw) if isinstance(p, S3TestEvent)]
    assert test_events and all(t.bucket == settings.bucket for t in test_events)
    events = [e for p in map(parse_body, raw) if isinstance(p, list) for e in p]
    created = sorted(e.key for e in events if e.kind == "created")
    removed = [e.key for e in events if e.kind == "removed"]
    assert created == sorted(MOTO_KEYS)
    assert removed == [deleted]
    for event in events:
        assert event.bucket == settings.bucket
        assert event.event_time is not None
        assert abs((datetime.now(UTC) - event.event_time).total_seconds()) < 300
        assert event.sequencer is None  # moto sends none (AWS does)
        assert event.version_id is None
        if event.kind == "created":
            assert event.name == "ObjectCreated:Put"
            assert event.etag == hashlib.md5(bodies[event.key]).hexdigest()
            assert event.size == len(bodies[event.key])
        else:
            assert event.name == "ObjectRemoved:Delete"
            assert event.size is None
    # The shape this test relies on: moto form-encodes `/` too (AWS leaves it literal).
    raw_keys = [
        r["s3"]["object"]["key"]
        for b in raw
        if "Records" in (d := json.loads(b))
        for r in d["Records"]
    ]
    assert "changes%2Fa+b%2Bc%2525%C3%A9.json" in raw_keys
