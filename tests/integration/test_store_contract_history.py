"""One contract, two history tables under the real `HistoryStore`: moto (over HTTP) and
`MemoryDynamoDB` (engine/store/memory/history.py).

Every case runs against both, so history tested on memory relies only on what the DynamoDB
table gives: entries keyed by (document, version) where a redelivered entry overwrites its
twin (the store's idempotence: no condition, a batch cannot carry one), a document's entries
newest first by the *number* of the version, batches past 25 entries, and values that come
back as they were stored.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.app import Engine
from engine.store.abc import History
from engine.store.history import HistoryStore
from engine.store.memory import memory_history

pytestmark = pytest.mark.integration


@pytest.fixture(params=["moto", "memory"])
def history(request: pytest.FixtureRequest) -> History:
    if request.param == "memory":
        return memory_history()
    engine: Engine = request.getfixturevalue("engine")
    return HistoryStore(engine.clients.dynamodb, engine.settings.history_table)


def entry(doc_id: str, version: int, **extra: Any) -> dict[str, Any]:
    return {
        "pk": f"change#{doc_id}",
        "version": version,
        "type": "change",
        "id": doc_id,
        "change": "create" if version == 1 else "update",
        "customers": ["acme", "globex"],
        "etag": f"etag-{version}",
        "at": "2026-01-01T00:00:00.000Z",  # a stored value, compared as text: any date will do
        "expires_at": 1_000_000 + version,
        **extra,
    }


def versions(entries: list[dict[str, Any]]) -> list[int]:
    return [e["version"] for e in entries]


def test_newest_first_by_the_number_of_the_version(history: History) -> None:
    history.put_many([entry("A", v) for v in (3, 10, 1, 12, 9, 2, 11)])
    assert versions(history.list("change", "A")) == [12, 11, 10, 9, 3, 2, 1]
    assert versions(history.list("change", "A", limit=3)) == [12, 11, 10]


def test_values_come_back_as_stored(history: History) -> None:
    stored = entry("V", 4, status_from="draft", status_to="approved", actor="alice")
    history.put_many([stored])
    assert history.get("change", "V", 4) == stored
    assert history.list("change", "V") == [stored]
    assert history.get("change", "V", 5) is None
    assert history.get("change", "W", 4) is None


def test_a_redelivered_entry_overwrites_and_the_last_of_a_repeated_key_wins(
    history: History,
) -> None:
    first = [entry("R", 1), entry("R", 2)]
    assert history.put_many(first) == 2
    assert history.put_many(first) == 2  # redelivered: the same items again
    assert history.list("change", "R") == list(reversed(first))
    assert history.put_many([entry("R", 2, etag="x"), entry("R", 2, etag="y")]) == 1
    assert [e["etag"] for e in history.list("change", "R")] == ["y", "etag-1"]


def test_documents_are_apart_and_a_scan_sees_every_entry(history: History) -> None:
    history.put_many([entry("A", 1), entry("AB", 1), entry("AB", 2), entry("B", 1)])
    assert versions(history.list("change", "A")) == [1]  # not AB's: the key is the document
    assert versions(history.list("change", "AB")) == [2, 1]
    assert history.list("change", "C") == []
    assert sorted((e["id"], e["version"]) for e in history.scan()) == [
        ("A", 1),
        ("AB", 1),
        ("AB", 2),
        ("B", 1),
    ]


def test_more_than_a_batch_is_stored_and_read_back_whole(history: History) -> None:
    many = [entry("M", v) for v in range(1, 61)]  # three BatchWriteItem calls
    assert history.put_many(many) == 60
    assert versions(history.list("change", "M")) == list(range(60, 0, -1))
    assert versions(history.list("change", "M", limit=26)) == list(range(60, 34, -1))
    assert sum(1 for _ in history.scan()) == 60
