"""engine/documents.py: validation, field-level errors, exact preservation of the body."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.cli.output import exit_code
from engine.documents import Document, parse_document
from engine.exceptions import InvalidDocumentError

from ._hyp import FAST

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
REQUIRED = ("id", "title", "customer_codes", "status", "created_at", "modified_at")


def valid(type_name: str = "change", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "CHG-2024.001_a",
        "object_type": type_name,
        "title": "Maintenance window",
        "customer_codes": ["acme", "globex"],
        "status": "open",
        "created_at": "2024-01-02T03:04:05Z",
        "modified_at": "2024-01-03T04:05:06.123456+00:00",
    }
    data.update(overrides)
    return data


def refused(raw: Any, type_name: str | None = None) -> InvalidDocumentError:
    with pytest.raises(InvalidDocumentError) as info:
        parse_document(raw, type_name)
    assert exit_code(info.value) == 2
    return info.value


@pytest.mark.parametrize("type_name", ["change", "announcement"])
def test_valid_document_of_each_builtin_type(type_name: str) -> None:
    doc = parse_document(valid(type_name), type_name)
    assert isinstance(doc, Document)
    assert doc.type == type_name
    assert doc.id == "CHG-2024.001_a"
    assert doc.title == "Maintenance window"
    assert doc.status == "open"
    assert doc.customer_codes == ("acme", "globex")
    assert doc.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert doc.modified_at == datetime(2024, 1, 3, 4, 5, 6, 123456, tzinfo=UTC)
    assert doc.as_dict() == valid(type_name)


def test_type_taken_from_object_type_when_not_given() -> None:
    assert parse_document(valid("announcement")).type == "announcement"


def test_str_bytes_and_dict_inputs_give_the_same_body() -> None:
    data = valid(extra={"ü": "ñ"})
    as_dict = parse_document(data)
    as_str = parse_document(json.dumps(data))
    as_bytes = parse_document(json.dumps(data, indent=2).encode())
    assert as_dict.body == as_str.body == as_bytes.body
    assert json.loads(as_dict.body) == data


def test_timestamps_with_offsets_are_normalised_to_utc() -> None:
    doc = parse_document(valid(modified_at="2024-03-01T01:30:00+02:00"))
    assert doc.modified_at == datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    assert doc.modified_at.utcoffset() is not None
    assert doc.modified_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    # ...while the body keeps what the user wrote.
    assert doc.as_dict()["modified_at"] == "2024-03-01T01:30:00+02:00"


def test_extra_fields_are_preserved_exactly() -> None:
    extras: dict[str, Any] = {
        "priority": 3,
        "ratio": 0.125,
        "flag": False,
        "nothing": None,
        "nested": {"list": [1, "two", {"three": [None, True]}], "empty": {}},
        "unicode": "Grüße — 日本語 🚀",
        "Title": "case-sensitive key beside 'title'",
    }
    data = valid(**extras)
    doc = parse_document(data)
    assert json.loads(doc.body) == data
    assert doc.as_dict() == data


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
extra_fields = st.dictionaries(
    st.text().filter(lambda k: k not in {*REQUIRED, "object_type"}), json_values, max_size=6
)


@FAST
@given(extra_fields)
def test_any_extra_fields_round_trip_through_the_body(extras: dict[str, Any]) -> None:
    data = valid(**extras)
    doc = parse_document(json.dumps(data))
    assert json.loads(doc.body) == data


@pytest.mark.parametrize("field", REQUIRED)
def test_each_missing_required_field_is_named(field: str) -> None:
    data = valid()
    del data[field]
    err = refused(data)
    assert field in err.fields
    assert field in str(err)


def test_missing_object_type_is_named_with_and_without_type() -> None:
    data = valid()
    del data["object_type"]
    assert refused(data).fields == ["object_type"]
    assert "object_type" in refused(data, "change").fields


def test_several_wrong_fields_are_all_named() -> None:
    data = valid()
    del data["title"]
    data["id"] = "bad id"
    assert set(refused(data).fields) >= {"title", "id"}


@pytest.mark.parametrize(
    "bad_id",
    ["", "a" * 129, "with space", "slash/inside", "ümlaut", "semi;colon", "tab\t", "hash#", "a\n"],
)
def test_id_outside_the_allowed_set_is_refused(bad_id: str) -> None:
    err = refused(valid(id=bad_id))
    assert err.fields == ["id"]


def test_id_of_128_chars_is_accepted() -> None:
    assert parse_document(valid(id="x" * 128)).id == "x" * 128


@FAST
@given(st.from_regex(r"[A-Za-z0-9._-]{1,128}", fullmatch=True))
def test_any_valid_id_is_accepted(doc_id: str) -> None:
    assert parse_document(valid(id=doc_id)).id == doc_id


@FAST
@given(
    st.text(ID_CHARS, max_size=60),
    st.characters().filter(lambda c: c not in ID_CHARS),
    st.text(ID_CHARS, max_size=60),
)
@example("abc", "\n", "")
def test_any_id_with_a_character_outside_the_set_is_refused(head: str, bad: str, tail: str) -> None:
    err = refused(valid(id=head + bad + tail))
    assert err.fields == ["id"]


@pytest.mark.parametrize("field", ["created_at", "modified_at"])
@pytest.mark.parametrize("value", ["2024-01-02T03:04:05", "2024-01-02 03:04:05", "2024-01-02"])
def test_naive_datetimes_are_refused(field: str, value: str) -> None:
    assert refused(valid(**{field: value})).fields == [field]


@pytest.mark.parametrize("field", ["created_at", "modified_at"])
def test_garbage_datetimes_are_refused(field: str) -> None:
    assert refused(valid(**{field: "yesterday"})).fields == [field]


def test_object_type_that_disagrees_with_the_type_is_refused() -> None:
    err = refused(valid("announcement"), "change")
    assert err.fields == ["object_type"]
    assert "announcement" in str(err)
    assert "change" in str(err)


def test_unknown_type_is_refused_naming_type() -> None:
    assert refused(valid("memo")).fields == ["type"]
    assert refused(valid(), "memo").fields == ["type"]


def test_object_type_not_a_string_is_refused() -> None:
    assert refused(valid(object_type=7)).fields == ["object_type"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_codes", "acme"),
        ("customer_codes", ["acme", ""]),
        ("customer_codes", ["  "]),
        ("customer_codes", ["a#b"]),
        ("status", ""),
        ("status", "open#1"),
        ("title", None),
    ],
)
def test_wrong_field_values_are_refused_naming_the_field(field: str, value: Any) -> None:
    err = refused(valid(**{field: value}))
    assert all(f == field or f.startswith(field + ".") for f in err.fields), err.fields
    assert err.fields


@pytest.mark.parametrize("raw", ["", "{", "not json", b"\xff\xfe\x00", "{'id': 1}", '{"a":1'])
def test_body_that_is_not_json_is_refused(raw: str | bytes) -> None:
    assert refused(raw).fields == ["<body>"]


@pytest.mark.parametrize("raw", ["[]", "[1, 2]", "1", '"text"', "null", "true"])
def test_body_that_is_not_an_object_is_refused(raw: str) -> None:
    assert refused(raw).fields == ["<body>"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(literal: str) -> None:
    """BUG: json.loads accepts NaN/Infinity (and 1e400 becomes inf); the body is then stored
    as `NaN`/`Infinity`, which is not JSON (RFC 8259) for any other reader."""
    body = json.dumps(valid())[:-1] + f', "x": {literal}}}'
    refused(body)


def test_lone_surrogate_is_refused_as_invalid_document() -> None:
    """BUG: a JSON escape of a lone surrogate parses, then body encoding raises a bare
    UnicodeEncodeError instead of InvalidDocumentError."""
    body = json.dumps(valid())[:-1] + ', "x": "\\ud800"}'
    refused(body)


def test_etag_is_the_md5_of_the_body() -> None:
    doc = parse_document(valid(extra=[1, 2, 3]))
    assert doc.etag == hashlib.md5(doc.body).hexdigest()
    assert len(doc.etag) == 32


@FAST
@given(extra_fields)
def test_etag_always_matches_body(extras: dict[str, Any]) -> None:
    doc = parse_document(valid(**extras))
    assert doc.etag == hashlib.md5(doc.body).hexdigest()
