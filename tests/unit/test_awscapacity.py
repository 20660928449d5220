"""`ReturnConsumedCapacity` written into the serialized request (engine/awscapacity.py): the
bytes are the ones botocore writes when the parameter is passed, for every operation that
takes it and any attribute values; a caller's own mode is kept; the mode is INDEXES only
where an index can be charged; and a client whose protocol is not JSON gets the parameter."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from hypothesis import given
from hypothesis import strategies as st

from engine import awscapacity
from tests.unit._hyp import FAST


def _client() -> Any:
    return boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


PLAIN = _client()
ASKING = {setting: _client() for setting in ("INDEXES", "TOTAL", "NONE")}
for _setting, _asking in ASKING.items():
    awscapacity.ask(_asking, _setting)

names = st.text(alphabet="abcXYZ019._-", min_size=3, max_size=20)
text = st.text(max_size=12)  # any unicode: json.dumps escapes it the same way in both
values = st.recursive(
    st.one_of(
        st.builds(lambda s: {"S": s}, text),
        st.builds(lambda n: {"N": str(n)}, st.integers()),
        st.builds(lambda b: {"BOOL": b}, st.booleans()),
    ),
    lambda inner: st.one_of(
        st.builds(lambda m: {"M": m}, st.dictionaries(text, inner, max_size=3)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3)),
    ),
    max_leaves=6,
)
items = st.dictionaries(text, values, min_size=1, max_size=4)


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """An operation that takes ReturnConsumedCapacity (or not: DescribeTable) and valid
    parameters for it."""
    table, item = draw(names), draw(items)
    index = draw(st.one_of(st.none(), names))
    on_index = {"IndexName": index} if index else {}
    choices: list[tuple[str, dict[str, Any]]] = [
        ("GetItem", {"TableName": table, "Key": item}),
        ("PutItem", {"TableName": table, "Item": item, "ConditionExpression": "a <> b"}),
        ("DeleteItem", {"TableName": table, "Key": item}),
        ("UpdateItem", {"TableName": table, "Key": item, "UpdateExpression": "SET a = b"}),
        ("Query", {"TableName": table, "KeyConditionExpression": "pk = b", **on_index}),
        ("Scan", {"TableName": table, "Limit": 5, **on_index}),
        ("BatchGetItem", {"RequestItems": {table: {"Keys": [item]}}}),
        (
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"TableName": table, "Item": item}}]},
        ),
        ("DescribeTable", {"TableName": table}),
    ]
    call: tuple[str, dict[str, Any]] = draw(st.sampled_from(choices))
    return call


def _expected_mode(setting: str, operation: str, params: dict[str, Any]) -> str | None:
    if setting == "NONE" or operation == "DescribeTable":
        return None
    table_read = operation in ("GetItem", "BatchGetItem", "Query", "Scan")
    return "TOTAL" if setting == "INDEXES" and table_read and "IndexName" not in params else setting


def _body(client: Any, operation: str, params: dict[str, Any]) -> bytes:
    model = client.meta.service_model.operation_model(operation)
    body: bytes = client._serializer.serialize_to_request(dict(params), model)["body"]
    return body


def _sent(client: Any) -> list[bytes]:
    """The bodies `client` sends from now on; each call is answered at once (200, empty)."""
    sent: list[bytes] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        sent.append(params["body"])
        http = AWSResponse(url="test://", status_code=200, headers=HTTPHeaders(), raw=None)
        return http, {"ResponseMetadata": {"HTTPStatusCode": 200}}

    client.meta.events.register_first("before-call.*.*", answer)
    return sent


@FAST
@given(calls(), st.sampled_from(["INDEXES", "TOTAL", "NONE"]))
def test_the_bytes_sent_are_botocores_for_the_parameter(
    call: tuple[str, dict[str, Any]], setting: str
) -> None:
    operation, params = call
    mode = _expected_mode(setting, operation, params)
    asked = params if mode is None else {**params, "ReturnConsumedCapacity": mode}
    assert _body(ASKING[setting], operation, params) == _body(PLAIN, operation, asked)


@FAST
@given(calls(), st.sampled_from(["INDEXES", "TOTAL", "NONE"]))
def test_a_callers_own_mode_is_kept(call: tuple[str, dict[str, Any]], setting: str) -> None:
    operation, params = call
    if operation == "DescribeTable":
        return
    own = {**params, "ReturnConsumedCapacity": "NONE"}
    sent = _body(ASKING[setting], operation, own)
    assert sent == _body(PLAIN, operation, own)
    assert json.loads(sent)["ReturnConsumedCapacity"] == "NONE"


class _Serializer:
    """A stand-in for botocore's serializer that writes `json.dumps(parameters) + end`."""

    def __init__(self, end: bytes = b"") -> None:
        self.end = end

    def serialize_to_request(self, parameters: Any, operation_model: Any) -> dict[str, Any]:
        return {"body": json.dumps(parameters).encode() + self.end}


@pytest.mark.parametrize("end", [b"", b"\n"], ids=["as botocore writes it", "unexpected end"])
def test_an_empty_body_or_an_unexpected_one_still_asks_once(end: bytes) -> None:
    """b"{}" gets the member alone; a body that does not end in `}` (no botocore today writes
    one) is serialized again with the parameter rather than cut."""
    model = PLAIN.meta.service_model.operation_model("GetItem")
    serializer = awscapacity.AppendingSerializer(
        _Serializer(end), awscapacity.CapacityModes("TOTAL")
    )
    body = serializer.serialize_to_request({}, model)["body"]
    assert json.loads(body) == {"ReturnConsumedCapacity": "TOTAL"}
    body = serializer.serialize_to_request({"TableName": "tbl"}, model)["body"]
    assert json.loads(body) == {"TableName": "tbl", "ReturnConsumedCapacity": "TOTAL"}


def test_a_client_that_does_not_speak_json_gets_the_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Were botocore to move DynamoDB to another protocol (CBOR), the body could not be
    appended to: the parameter is passed instead, and botocore serializes it."""
    client = _client()
    model_type = type(client.meta.service_model)
    monkeypatch.setattr(model_type, "protocol", property(lambda self: "smithy-rpc-v2-cbor"))
    serializer = client._serializer
    awscapacity.ask(client, "INDEXES")
    monkeypatch.undo()
    assert client._serializer is serializer  # not wrapped
    sent = _sent(client)
    client.put_item(TableName="tbl", Item={"pk": {"S": "a"}})
    client.get_item(TableName="tbl", Key={"pk": {"S": "a"}})
    assert [json.loads(body)["ReturnConsumedCapacity"] for body in sent] == ["INDEXES", "TOTAL"]


@pytest.mark.parametrize("protocol", ["json", "smithy-rpc-v2-cbor"])
def test_asked_again_the_last_setting_wins_and_the_member_is_sent_once(
    protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client()
    monkeypatch.setattr(type(client.meta.service_model), "protocol", property(lambda _: protocol))
    for setting in ("TOTAL", "INDEXES", "NONE", "INDEXES"):
        awscapacity.ask(client, setting)
    monkeypatch.undo()
    sent = _sent(client)
    client.put_item(TableName="tbl", Item={"pk": {"S": "a"}})
    assert sent[0].count(b"ReturnConsumedCapacity") == 1
    assert json.loads(sent[0])["ReturnConsumedCapacity"] == "INDEXES"


def test_other_services_are_left_as_they_are() -> None:
    s3: Any = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    serializer = s3._serializer
    awscapacity.ask(s3, "INDEXES")
    assert s3._serializer is serializer


def test_none_on_a_fresh_client_wraps_nothing() -> None:
    """NONE asks nothing, so a client that never asked keeps botocore's serializer as it is
    (no wrapper to pay for on every call)."""
    client = _client()
    serializer = client._serializer
    awscapacity.ask(client, "NONE")
    assert client._serializer is serializer
    sent = _sent(client)
    client.get_item(TableName="tbl", Key={"pk": {"S": "a"}})
    assert b"ReturnConsumedCapacity" not in sent[0]
