"""One contract, two object stores: S3 (moto over HTTP) and the in-memory twin.

Every case runs against both, so a logic test that uses `MemoryObjectStore` relies only on
behaviour S3 has (engine/store/abc.py).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.app import Engine
from engine.exceptions import NotFoundError
from engine.store.abc import Objects
from engine.store.memory import MemoryObjectStore
from tests.unit._hyp import FAST


@pytest.fixture(params=["s3", "memory"])
def objects(request: pytest.FixtureRequest) -> Objects:
    if request.param == "memory":
        return MemoryObjectStore("docsync-documents")
    engine: Engine = request.getfixturevalue("engine")
    return engine.objects


def near_now(ts: datetime) -> bool:
    return abs(datetime.now(UTC) - ts) < timedelta(minutes=5)


def test_put_then_get_and_head_agree(objects: Objects) -> None:
    body = b'{"id": "CHG-1"}'
    info = objects.put("docs/CHG-1.json", body)
    assert info.etag == hashlib.md5(body).hexdigest()
    assert info.size == len(body) and near_now(info.last_modified)
    got = objects.get("docs/CHG-1.json")
    assert got.body == body and got.info.etag == info.etag
    head = objects.head("docs/CHG-1.json")
    assert head is not None and head.etag == info.etag and head.size == len(body)
    assert head.last_modified == got.info.last_modified
    assert head.last_modified.microsecond == 0  # S3's times are to the second


def test_missing_object(objects: Objects) -> None:
    assert objects.head("docs/none.json") is None
    with pytest.raises(NotFoundError):
        objects.get("docs/none.json")
    with pytest.raises(NotFoundError):
        objects.get_if_changed("docs/none.json", "0" * 32)


def test_get_if_changed_sends_nothing_while_the_etag_holds(objects: Objects) -> None:
    first = objects.put("docs/a.json", b"1")
    assert objects.get_if_changed("docs/a.json", first.etag) is None
    second = objects.put("docs/a.json", b"2")
    changed = objects.get_if_changed("docs/a.json", first.etag)
    assert changed is not None and changed.body == b"2" and changed.info.etag == second.etag


def test_delete_is_idempotent(objects: Objects) -> None:
    objects.put("docs/a.json", b"1")
    assert near_now(objects.delete("docs/a.json"))
    assert objects.head("docs/a.json") is None
    assert near_now(objects.delete("docs/a.json"))  # S3 answers 204 for a missing key too


def test_an_overwrite_replaces_the_body(objects: Objects) -> None:
    objects.put("docs/a.json", b"old")
    objects.put("docs/a.json", b"new")
    assert objects.get("docs/a.json").body == b"new"
    assert [i.key for i in objects.list("docs/")] == ["docs/a.json"]


KEYS = st.lists(
    st.text(alphabet="aZ09-_./é日~ ", min_size=1, max_size=8), min_size=0, max_size=8, unique=True
)


@FAST
@given(names=KEYS, after=st.text(alphabet="aZ09é", max_size=3))
def test_list_is_utf8_byte_order_after_start_after(names: list[str], after: str) -> None:
    """The order the reconciler's merge depends on (on memory only: moto's is checked below)."""
    store = MemoryObjectStore()
    for name in [*names, "other"]:
        store.put(f"p/{name}" if name != "other" else "q/x", b"x")
    start = f"p/{after}" if after else ""
    listed = [i.key for i in store.list("p/", start)]
    expected = sorted((f"p/{n}" for n in names), key=str.encode)
    assert listed == [k for k in expected if k.encode() > start.encode()]


def test_list_order_prefix_and_start_after(objects: Objects) -> None:
    names = ["b.json", "a.json", "é.json", "Z.json", "日.json", "a/b.json", "a-b.json"]
    for name in names:
        objects.put(f"docs/{name}", b"{}")
    objects.put("elsewhere/a.json", b"{}")
    expected = sorted((f"docs/{n}" for n in names), key=str.encode)
    assert [i.key for i in objects.list("docs/")] == expected
    assert [i.key for i in objects.list("docs/", "docs/a.json")] == [
        k for k in expected if k.encode() > b"docs/a.json"
    ]
    listed = {i.key: i for i in objects.list("docs/")}
    head = objects.head("docs/b.json")
    assert head is not None and listed["docs/b.json"].etag == head.etag


@pytest.fixture(params=["s3", "memory"])
def versioned(request: pytest.FixtureRequest) -> Objects:
    if request.param == "memory":
        return MemoryObjectStore("docsync-documents", versioning=True)
    engine: Engine = request.getfixturevalue("engine")
    engine.clients.s3.put_bucket_versioning(  # what `init` does with versioning = true
        Bucket=engine.settings.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return engine.objects


def test_versions_when_versioning_is_on(versioned: Objects) -> None:
    first = versioned.put("docs/a.json", b"1")
    second = versioned.put("docs/a.json", b"2")
    assert first.version_id and second.version_id and first.version_id != second.version_id
    assert versioned.get_version("docs/a.json", first.version_id).body == b"1"
    assert versioned.get("docs/a.json").info.version_id == second.version_id
    assert all(i.version_id is None for i in versioned.list("docs/"))
