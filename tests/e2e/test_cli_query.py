"""`docsync query`: filters, newest-first order, page tokens, the cache window and S3."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine import keys
from engine.app import Engine
from engine.sample import sample_documents
from tests.e2e.conftest import Cli, Run, seed

# 45 documents over 120 days (28 changes, 23 of them in the 90-day cache window, 7 documents
# outside it); seeded in-process, since every test starts from an empty server.
CORPUS_SIZE, CORPUS_SEED = 45, 7


@pytest.fixture
def corpus(ready: Engine) -> list[dict[str, Any]]:
    docs = sample_documents(CORPUS_SIZE, CORPUS_SEED)
    seed(ready, docs)
    return docs


def modified(doc: dict[str, Any]) -> datetime:
    return keys.parse_iso(doc["modified_at"])


def newest_first(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(docs, key=lambda d: (modified(d), d["id"]), reverse=True)


def timed_query(cli: Cli, *args: str, expect: int | None = 0) -> tuple[Run, datetime, datetime]:
    """Run a query and bracket it in time, so relative ranges can be checked without races."""
    start = datetime.now(UTC)
    run = cli("query", *args, expect=expect)
    return run, start, datetime.now(UTC)


def check_page_shape(items: list[dict[str, Any]]) -> None:
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), "duplicate items"
    stamps = [(modified(i), i["id"]) for i in items]
    assert stamps == sorted(stamps, reverse=True), "not newest first"


def check_relative_range(
    items: list[dict[str, Any]],
    corpus: list[dict[str, Any]],
    match: Callable[[dict[str, Any]], bool],
    days: int,
    start: datetime,
    end: datetime,
) -> None:
    """Items are exactly the matching documents since `days` ago (as of the invocation)."""
    ids = {i["id"] for i in items}
    surely_in = {d["id"] for d in corpus if match(d) and modified(d) >= end - timedelta(days=days)}
    maybe_in = {d["id"] for d in corpus if match(d) and modified(d) >= start - timedelta(days=days)}
    assert surely_in <= ids <= maybe_in, (sorted(surely_in - ids), sorted(ids - maybe_in))


def test_query_filters_by_type_customer_status_and_since(
    cli: Cli, corpus: list[dict[str, Any]]
) -> None:
    recent = [
        d
        for d in corpus
        if d["object_type"] == "change" and modified(d) >= datetime.now(UTC) - timedelta(days=29)
    ]
    combos = Counter((c, d["status"]) for d in recent for c in d["customer_codes"])
    (customer, status), count = combos.most_common(1)[0]
    assert count >= 2, combos

    run, start, end = timed_query(
        cli,
        "--type",
        "change",
        "--customer",
        customer,
        "--status",
        status,
        "--since",
        "30d",
        "--limit",
        "100",
    )

    page = run.json()
    assert page["source"] == "cache"
    assert page["next_page_token"] is None
    items = page["items"]
    assert len(items) >= count
    for item in items:
        assert item["object_type"] == "change"
        assert customer in item["customer_codes"]
        assert item["status"] == status
        assert modified(item) >= start - timedelta(days=30)
    check_page_shape(items)

    def match(d: dict[str, Any]) -> bool:
        return (
            d["object_type"] == "change"
            and customer in d["customer_codes"]
            and d["status"] == status
        )

    check_relative_range(items, corpus, match, 30, start, end)
    by_id = {d["id"]: d for d in corpus}
    assert all(item == by_id[item["id"]] for item in items)  # the documents as written


def test_query_pages_through_with_page_tokens(cli: Cli, corpus: list[dict[str, Any]]) -> None:
    changes = newest_first([d for d in corpus if d["object_type"] == "change"])

    first, start, _ = timed_query(cli, "--type", "change", "--limit", "10")
    page = first.json()
    assert [i["id"] for i in page["items"]] == [d["id"] for d in changes[:10]]
    token = page["next_page_token"]
    assert isinstance(token, str) and token

    rest_run, _, end = timed_query(
        cli, "--type", "change", "--limit", "10", "--page-token", token, "--all"
    )
    rest = rest_run.json()
    assert rest["next_page_token"] is None
    assert rest["source"] == "cache"
    assert len(rest["items"]) > 10  # more than one further page was followed
    items = page["items"] + rest["items"]
    check_page_shape(items)  # no duplicate across pages, order kept across the boundary
    check_relative_range(items, corpus, lambda d: d["object_type"] == "change", 90, start, end)

    # One character changed in the signed payload: refused, not silently mis-paged.
    position = len(token) // 3
    replacement = "A" if token[position] != "A" else "B"
    corrupted = token[:position] + replacement + token[position + 1 :]
    bad = cli("query", "--type", "change", "--limit", "10", "--page-token", corrupted, expect=2)
    assert "page token" in bad.stderr, str(bad)
    assert bad.json()["exit_code"] == 2

    # A token is bound to its query's filters.
    foreign = cli("query", "--type", "announcement", "--page-token", token, expect=2)
    assert "page token" in foreign.stderr, str(foreign)


def test_query_all_pages_every_type_newest_first(cli: Cli, corpus: list[dict[str, Any]]) -> None:
    run, start, end = timed_query(cli, "--limit", "7", "--all")

    result = run.json()
    assert result["next_page_token"] is None
    assert result["source"] == "cache"
    items = result["items"]
    assert len(items) > 7
    assert {i["object_type"] for i in items} == {"change", "announcement"}
    check_page_shape(items)
    check_relative_range(items, corpus, lambda d: True, 90, start, end)


def test_query_before_the_cache_window_needs_s3(cli: Cli, corpus: list[dict[str, Any]]) -> None:
    old = [d for d in corpus if modified(d) < datetime.now(UTC) - timedelta(days=91)]
    assert old, "the corpus should reach past the 90-day window"

    refused = cli("query", "--since", "200d", expect=2)
    assert "cache window" in refused.stderr, str(refused)
    error = refused.json()
    assert error["exit_code"] == 2
    assert "cache window" in error["error"]

    run = cli("query", "--since", "200d", "--source", "s3", "--limit", "1000")
    result = run.json()
    assert result["source"] == "s3"
    assert result["next_page_token"] is None
    # Every document is younger than 200 days, those outside the cache window included.
    assert [i["id"] for i in result["items"]] == [d["id"] for d in newest_first(corpus)]
    assert {d["id"] for d in old} <= {i["id"] for i in result["items"]}


def test_count_matches_the_pages(cli: Cli, corpus: list[dict[str, Any]]) -> None:
    for args in (("--customer", "acme"), ("--customer", "acme", "--status", "draft"), ()):
        pages = cli("query", "--type", "change", "--all", *args).json()
        counted = cli("query", "--type", "change", "--count", *args).json()
        assert counted == {"total": len(pages["items"]), "source": "cache"}, args
    bad = cli("query", "--count", "--all", expect=2)
    assert "--count" in bad.stderr


def test_a_range_backwards_names_the_flags(cli: Cli, ready: Engine) -> None:
    """The library names fields (`since is after until`); the CLI writes them as its flags,
    exit 2, with the fields in the JSON error."""
    run = cli("query", "--since", "1d", "--until", "2d", "--format", "json", expect=2)
    assert "docsync: error: --since is after --until" in run.stderr
    assert run.json() == {
        "error": "--since is after --until",
        "exit_code": 2,
        "fields": ["since", "until"],
    }
