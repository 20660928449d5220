"""engine/events/parse.py: S3 notifications in every wrapping → `ObjectEvent`s (invariant 3).

The fixtures are AWS's own examples (tests/fixtures, see the README beside DESIGN.md). All tests
here are pure except one, which captures real S3 → SQS messages from the moto server (moto's
shape differs from AWS: no sequencer, `/` encoded as `%2F`) and checks that every key decodes
back to exactly what was put.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.events.parse import (
    ObjectEvent,
    parse_body,
    parse_notification,
)
from engine.events.parse import TestEvent as S3TestEvent  # not a pytest class
from engine.events.sequencer import normalize_sequencer
from engine.exceptions import MalformedEventError
from tests.conftest import FIXTURES

from ._hyp import FAST

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def s3_record(key: str, name: str = "ObjectCreated:Put", **obj: Any) -> dict[str, Any]:
    """One S3 notification record (the s3-put.json record) with another key and name."""
    record: dict[str, Any] = copy.deepcopy(load("s3-put.json")["Records"][0])
    record["eventName"] = name
    record["s3"]["object"] = {"key": key, **obj}
    return record


def body_of(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)}, separators=(",", ":"))


def events_of(body: str) -> list[ObjectEvent]:
    """`parse_body` of a body of records (not S3's test event)."""
    events = parse_body(body)
    assert isinstance(events, list)
    return events


# -- every fixture, field by field ----------------------------------------------------------------

HAPPY_FACE_PUT = ObjectEvent(
    bucket="mybucket",
    key="HappyFace.jpg",
    kind="created",
    name="ObjectCreated:Put",
    event_time=EPOCH,
    sequencer="0055AED6DCD90281E5" + "0" * 22,
    etag=EMPTY_MD5,
    size=1024,
    version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
)
RED_FLOWER_PUT = ObjectEvent(
    bucket="mybucket",
    key="red flower.jpg",  # red+flower.jpg: `+` is a space in form encoding
    kind="created",
    name="ObjectCreated:Put",
    event_time=EPOCH,
    sequencer="00643717F9F8B85354" + "0" * 22,
    etag="2e3ad1e983318bbd8e73b080e2997980",
    size=104681,
    version_id="yd3d4HaWOT2zguDLvIQLU6ptDTwKBnQV",
)

EXPECTED: dict[str, list[ObjectEvent]] = {
    "s3-put.json": [HAPPY_FACE_PUT],
    "s3-delete.json": [
        ObjectEvent(
            bucket="lambda-artifacts-deafc19498e3f2df",
            key="b21b84d653bb07b05b1e6b33684dc11b",
            kind="removed",
            name="ObjectRemoved:Delete",
            event_time=datetime(2019, 9, 3, 19, 37, 27, 192000, tzinfo=UTC),
            sequencer="0C0F6F405D6ED209E1" + "0" * 22,
            etag=None,
            size=None,
            version_id=None,
        )
    ],
    "s3-delete-marker.json": [
        ObjectEvent(
            bucket="mybucket",
            key="HappyFace.jpg",
            kind="removed",
            name="ObjectRemoved:DeleteMarkerCreated",
            event_time=EPOCH,
            sequencer="617F0837B476E463" + "0" * 24,  # lower-case in the source
            etag=EMPTY_MD5,
            size=None,
            version_id="1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
        )
    ],
    "s3-lifecycle-expiration.json": [
        ObjectEvent(
            bucket="mybucket",
            key="expiration/delete",
            kind="removed",  # LifecycleExpiration:*, not ObjectRemoved:*
            name="LifecycleExpiration:Delete",
            event_time=EPOCH,
            sequencer="0055AED6DCD90281E5" + "0" * 22,
            etag=None,
            size=None,
            version_id=None,
        )
    ],
    "eventbridge-object-created.json": [
        ObjectEvent(
            bucket="amzn-s3-demo-bucket1",
            key="example-key",
            kind="created",
            name="Object Created",
            event_time=datetime(2021, 11, 12, tzinfo=UTC),
            sequencer="617F08299329D189" + "0" * 24,
            etag="b1946ac92492d2347c6235b4d2611184",
            size=5,
            version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        )
    ],
    "eventbridge-object-deleted.json": [
        ObjectEvent(
            bucket="amzn-s3-demo-bucket1",
            key="example-key",
            kind="removed",
            name="Object Deleted",
            event_time=datetime(2021, 11, 12, tzinfo=UTC),
            sequencer="617F0837B476E463" + "0" * 24,
            etag=EMPTY_MD5,
            size=None,
            version_id="1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
        )
    ],
    # The SQS message body of S3 → SNS → SQS (raw delivery off): the SNS envelope.
    "sns-sqs-wrapping-s3.json": [HAPPY_FACE_PUT],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_the_right_events(name: str) -> None:
    assert parse_notification(load(name)) == EXPECTED[name]
    # The same document as an SQS message body (S3 → SQS, EventBridge → SQS).
    assert parse_body(text(name)) == EXPECTED[name]


def test_expected_sequencers_are_the_normalized_fixture_values() -> None:
    """Guards the literals above: they are what normalize_sequencer makes of the sources."""
    assert HAPPY_FACE_PUT.sequencer == normalize_sequencer("0055AED6DCD90281E5")
    deleted = EXPECTED["eventbridge-object-deleted.json"][0]
    assert deleted.sequencer == normalize_sequencer("617f0837b476e463")


def test_lambda_sqs_event_flattens_every_record_body() -> None:
    event = load("sqs-wrapping-s3.json")
    assert parse_notification(event) == [HAPPY_FACE_PUT, RED_FLOWER_PUT]
    bodies = [record["body"] for record in event["Records"]]
    assert parse_body(bodies[0]) == [HAPPY_FACE_PUT]
    assert parse_body(bodies[1]) == [RED_FLOWER_PUT]


def test_test_event_is_recognised_not_an_object_event() -> None:
    assert parse_notification(load("s3-test-event.json")) == S3TestEvent("bucketname")
    assert parse_body(text("s3-test-event.json")) == S3TestEvent("bucketname")


def test_test_event_through_sns_is_recognised() -> None:
    envelope = load("sns-sqs-wrapping-s3.json")
    envelope["Message"] = text("s3-test-event.json")
    assert parse_body(json.dumps(envelope)) == S3TestEvent("bucketname")


def test_test_event_inside_a_lambda_sqs_batch_yields_no_object_event() -> None:
    event = load("sqs-wrapping-s3.json")
    event["Records"][0]["body"] = text("s3-test-event.json")
    assert parse_notification(event) == [RED_FLOWER_PUT]


def test_pretty_printed_sns_body_with_null_subject_parses() -> None:
    """Real SNS → SQS bodies are pretty-printed; Subject may be null or absent."""
    envelope = load("sns-sqs-wrapping-s3.json")
    envelope["Subject"] = None
    assert parse_body(json.dumps(envelope, indent=2)) == [HAPPY_FACE_PUT]
    del envelope["Subject"]
    assert parse_body(json.dumps(envelope, indent=4)) == [HAPPY_FACE_PUT]


# -- field rules on synthetic records -------------------------------------------------------------


def test_quoted_etag_loses_its_quotes() -> None:
    (event,) = events_of(body_of(s3_record("k", eTag='"abc123"', size=3)))
    assert event.etag == "abc123"


def test_removal_never_carries_a_size() -> None:
    # moto's delete events carry the deleted object's size and eTag; AWS's carry neither.
    (event,) = events_of(body_of(s3_record("k", "ObjectRemoved:Delete", size=2, eTag="e")))
    assert event.kind == "removed"
    assert event.size is None
    assert event.etag == "e"


def test_no_sequencer_and_bad_time_are_none() -> None:
    record = s3_record("k", size=1)
    record["eventTime"] = "not a time"
    (event,) = events_of(body_of(record))
    assert event.sequencer is None
    assert event.event_time is None


def test_event_time_is_utc() -> None:
    record = s3_record("k", size=1)
    record["eventTime"] = "2024-06-15T14:00:00.500+02:00"
    (event,) = events_of(body_of(record))
    assert event.event_time == datetime(2024, 6, 15, 12, 0, 0, 500000, tzinfo=UTC)
    assert event.event_time is not None and event.event_time.utcoffset() is not None


def test_newer_event_version_and_unknown_fields_are_tolerated() -> None:
    record = s3_record("k", size=1, sequencer="0A", somethingNew={"x": 1})
    record["eventVersion"] = "2.6"
    record["glacierEventData"] = {"restoreEventData": {}}
    (event,) = events_of(body_of(record))
    assert (event.key, event.kind, event.sequencer) == ("k", "created", "0A" + "0" * 38)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ObjectCreated:Put", "created"),
        ("ObjectCreated:Post", "created"),
        ("ObjectCreated:Copy", "created"),
        ("ObjectCreated:CompleteMultipartUpload", "created"),
        ("ObjectRemoved:Delete", "removed"),
        ("ObjectRemoved:DeleteMarkerCreated", "removed"),
        ("LifecycleExpiration:Delete", "removed"),
        ("LifecycleExpiration:DeleteMarkerCreated", "removed"),
    ],
)
def test_subscribed_event_names_map_to_kinds(name: str, kind: str) -> None:
    (event,) = events_of(body_of(s3_record("k", name)))
    assert (event.kind, event.name) == (kind, name)


@pytest.mark.parametrize(
    "name",
    [
        "ObjectRestore:Completed",
        "ObjectRestore:Post",
        "ObjectRestore:Delete",
        "ObjectTagging:Put",
        "ObjectAcl:Put",
        "LifecycleTransition",
        "ReducedRedundancyLostObject",
        "Replication:OperationFailedReplication",
        "IntelligentTiering",
    ],
)
def test_unsubscribed_event_names_are_skipped(name: str) -> None:
    assert parse_body(body_of(s3_record("k", name))) == []


def test_unsubscribed_record_is_skipped_beside_a_subscribed_one() -> None:
    body = body_of(s3_record("a", "ObjectRestore:Completed"), s3_record("b", "ObjectCreated:Copy"))
    assert [(e.key, e.name) for e in events_of(body)] == [("b", "ObjectCreated:Copy")]


def test_unsubscribed_eventbridge_detail_type_is_skipped() -> None:
    event = load("eventbridge-object-created.json")
    event["detail-type"] = "Object Restore Completed"
    assert parse_notification(event) == []


# -- keys: form-decoded, record by record ---------------------------------------------------------


def test_multi_record_body_gives_one_event_per_record_each_key_decoded() -> None:
    raw = ["a+b", "a%2Bb", "caf%C3%A9", "100%25", "a%2520b", "dir%2Fsub/x+y"]
    body = body_of(*(s3_record(key, size=1) for key in raw))
    events = parse_body(body)
    assert isinstance(events, list)
    # Decoded once: `%2520` is the literal `%20`, not a space.
    assert [e.key for e in events] == ["a b", "a+b", "café", "100%", "a%20b", "dir/sub/x y"]


def test_eventbridge_keys_are_taken_as_they_are() -> None:
    event = load("eventbridge-object-created.json")
    event["detail"]["object"]["key"] = "changes/a+b.json"
    events = parse_notification(event)
    assert isinstance(events, list)
    (parsed,) = events
    assert parsed.key == "changes/a+b.json"


s3_keys = st.text(
    st.characters(blacklist_categories=["Cs"]),  # S3 keys are UTF-8: no lone surrogates
    min_size=1,
    max_size=200,
)


@FAST
@given(s3_keys, st.sampled_from(["/", ""]))
@example("red flower.jpg", "/")
@example("changes/a b+c%25é.json", "")
@example("+%+ %2B", "/")
@example("日本/語 ñ 🎉", "")
def test_any_form_encoded_key_decodes_back(key: str, safe: str) -> None:
    """AWS encodes with `/` literal (safe="/"); moto encodes it as %2F (safe="")."""
    encoded = quote_plus(key, safe=safe)
    events = parse_body(body_of(s3_record(encoded, size=1)))
    assert isinstance(events, list) and len(events) == 1
    assert events[0].key == key


@FAST
@given(st.lists(s3_keys, min_size=1, max_size=8))
def test_each_record_of_a_batch_decodes_independently(raw_keys: list[str]) -> None:
    body = body_of(*(s3_record(quote_plus(k), size=1) for k in raw_keys))
    events = parse_body(body)
    assert isinstance(events, list)
    assert [e.key for e in events] == raw_keys


def test_plain_percent_encoding_is_not_enough() -> None:
    """A `+` in a key arrives as %2B and a space as `+`: only form-decoding tells them apart."""
    events = parse_body(body_of(s3_record(quote("a+b c", safe="/").replace("%20", "+"), size=1)))
    assert isinstance(events, list)
    assert events[0].key == "a+b c"


# -- malformed bodies -----------------------------------------------------------------------------


def _without_key() -> str:
    record = s3_record("k")
    del record["s3"]["object"]["key"]
    return body_of(record)


def _without_bucket() -> str:
    record = s3_record("k")
    del record["s3"]["bucket"]
    return body_of(record)


def _eventbridge_without_key() -> str:
    event = load("eventbridge-object-created.json")
    del event["detail"]["object"]["key"]
    return json.dumps(event)


def _sns_with_bad_message() -> str:
    envelope = load("sns-sqs-wrapping-s3.json")
    envelope["Message"] = "not json"
    return json.dumps(envelope)


MALFORMED = {
    "not JSON": "this is not json",
    "empty": "",
    "truncated": text("s3-put.json")[:-3],
    "a JSON list": json.dumps([load("s3-put.json")]),
    "a JSON string": json.dumps("Records"),
    "a JSON number": "42",
    "null": "null",
    "empty object": "{}",
    "unknown object": json.dumps({"hello": "world"}),
    "Records not a list": json.dumps({"Records": {"0": s3_record("k")}}),
    "a record is not an object": json.dumps({"Records": [s3_record("k"), "oops"]}),
    "a record is a list": json.dumps({"Records": [[1, 2]]}),
    "record without s3.object.key": _without_key(),
    "record without s3.bucket": _without_bucket(),
    "record without s3": json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
    "record with s3 a string": json.dumps(
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": "x"}]}
    ),
    "EventBridge without object key": _eventbridge_without_key(),
    "SNS envelope with a non-JSON Message": _sns_with_bad_message(),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_body_is_a_malformed_event_error(case: str) -> None:
    with pytest.raises(MalformedEventError):
        parse_body(MALFORMED[case])


def test_malformed_event_error_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        parse_body("{")


@pytest.mark.parametrize("size", ["abc", [1]], ids=["word", "list"])
def test_record_with_a_non_integer_size_is_malformed(size: Any) -> None:
    """The listener only catches MalformedEventError: anything else escapes and stops it."""
    with pytest.raises(MalformedEventError):
        parse_body(body_of(s3_record("k", size=size)))


def test_eventbridge_event_with_a_non_integer_size_is_malformed() -> None:
    event = load("eventbridge-object-created.json")
    event["detail"]["object"]["size"] = "abc"
    with pytest.raises(MalformedEventError):
        parse_body(json.dumps(event))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
RECORD_PATHS = [
    ("eventName",),
    ("eventTime",),
    ("s3",),
    ("s3", "bucket"),
    ("s3", "bucket", "name"),
    ("s3", "object"),
    ("s3", "object", "key"),
    ("s3", "object", "size"),
    ("s3", "object", "eTag"),
    ("s3", "object", "sequencer"),
    ("s3", "object", "versionId"),
]


@FAST
@given(st.sampled_from(RECORD_PATHS), json_values)
def test_a_damaged_record_parses_or_is_malformed_nothing_else(
    path: tuple[str, ...], value: Any
) -> None:
    """Whatever a record field holds, parse_body returns or raises MalformedEventError."""
    record = s3_record("k", size=1, eTag="e", sequencer="0A", versionId="v")
    target = record
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    try:
        parsed = parse_body(body_of(record))
    except MalformedEventError:
        return
    assert isinstance(parsed, list)
    for event in parsed:
        assert isinstance(event.key, str) and isinstance(event.bucket, str)
        assert event.size is None or isinstance(event.size, int)


EVENTBRIDGE_PATHS = [
    ("detail-type",),
    ("time",),
    ("detail",),
    ("detail", "bucket"),
    ("detail", "bucket", "name"),
    ("detail", "object"),
    ("detail", "object", "key"),
    ("detail", "object", "size"),
    ("detail", "object", "etag"),
    ("detail", "object", "sequencer"),
]


@FAST
@given(st.sampled_from(EVENTBRIDGE_PATHS), json_values)
def test_a_damaged_eventbridge_event_parses_or_is_malformed_nothing_else(
    path: tuple[str, ...], value: Any
) -> None:
    event = load("eventbridge-object-created.json")
    target = event
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    try:
        parsed = parse_body(json.dumps(event))
    except MalformedEventError:
        return
    assert isinstance(parsed, list)
    for parsed_event in parsed:
        assert isinstance(parsed_event.key, str) and isinstance(parsed_event.bucket, str)
        assert parsed_event.size is None or isinstance(parsed_event.size, int)


@FAST
@given(json_values)
def test_any_json_body_parses_or_is_malformed_nothing_else(value: Any) -> None:
    try:
        parsed = parse_body(json.dumps(value))
    except MalformedEventError:
        return
    assert isinstance(parsed, list | S3TestEvent)
