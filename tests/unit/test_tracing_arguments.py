"""`tracing.argument_reader`: span attributes from the named arguments of a call, by position
or keyword, never a default left alone, a None or a document's content."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from engine import tracing


@dataclass
class _Doc:
    type: str
    id: str
    body: bytes


def _entry(self: Any, type_name: str, doc_id: str, limit: int = 10, doc: Any = None) -> None:
    pass


READ = tracing.argument_reader(inspect.signature(_entry), ("type_name", "doc_id", "limit", "doc"))


def test_positional_and_keyword_arguments_are_read_alike() -> None:
    by_position = READ((object(), "note", "n1", 5), {})
    by_keyword = READ((object(),), {"type_name": "note", "doc_id": "n1", "limit": 5})
    expected = {"docsync.type_name": "note", "docsync.doc_id": "n1", "docsync.limit": 5}
    assert by_position == by_keyword == expected


def test_defaults_and_none_are_left_out() -> None:
    assert READ((object(), "note", None), {}) == {"docsync.type_name": "note"}


def test_a_document_is_its_type_and_id_never_its_body() -> None:
    found = READ((object(), "note", "n1"), {"doc": _Doc("note", "n1", b"secret")})
    assert found["docsync.doc.type"] == "note" and found["docsync.doc.id"] == "n1"
    assert not any("secret" in str(v) for v in found.values())
