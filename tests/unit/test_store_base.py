"""The store seam: botocore errors become the project's exceptions in one place."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from engine.breaker import CircuitBreaker
from engine.exceptions import (
    CacheUnavailableError,
    NotFoundError,
    ObjectStoreError,
    StoreError,
)
from engine.store.base import ConditionFailed, ErrorMap, StoreCall
from engine.store.errors import is_outage

DDB = ErrorMap("DynamoDB", StoreError, CacheUnavailableError, conditional=True)
S3 = ErrorMap("S3", ObjectStoreError, not_found=frozenset({"NoSuchKey"}))


def client_error(code: str, status: int = 400, **extra: Any) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "Op")


def test_conditional_failure_carries_the_item_as_it_was() -> None:
    exc = client_error("ConditionalCheckFailedException", Item={"pk": {"S": "a"}, "n": {"N": "2"}})
    out = DDB.translate("PutItem", exc)
    assert isinstance(out, ConditionFailed)
    assert out.item == {"pk": "a", "n": 2}


def test_transaction_cancelled_by_a_condition_is_a_condition_failure() -> None:
    reasons = [{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Item": {"pk": {"S": "b"}}}]
    exc = client_error("TransactionCanceledException", CancellationReasons=reasons)
    out = DDB.translate("TransactWriteItems", exc)
    assert isinstance(out, ConditionFailed)
    assert out.item == {"pk": "b"}


def test_transaction_cancelled_by_a_conflict_is_a_store_error() -> None:
    reasons = [{"Code": "TransactionConflict"}]
    exc = client_error("TransactionCanceledException", CancellationReasons=reasons)
    out = DDB.translate("TransactWriteItems", exc)
    assert type(out) is StoreError


def test_outage_and_failure_map_to_their_classes() -> None:
    assert isinstance(DDB.translate("GetItem", client_error("Boom", 500)), CacheUnavailableError)
    assert isinstance(
        DDB.translate("GetItem", client_error("ThrottlingException")), CacheUnavailableError
    )
    conn = EndpointConnectionError(endpoint_url="http://x")
    assert isinstance(DDB.translate("GetItem", conn), CacheUnavailableError)
    plain = DDB.translate("GetItem", client_error("ValidationException"))
    assert type(plain) is StoreError
    assert "DynamoDB GetItem failed" in str(plain)
    # without an unavailable class, an outage is the store's failure class
    assert type(S3.translate("GetObject", client_error("SlowDown", 503))) is ObjectStoreError


def test_not_found_codes_and_the_target_in_the_message() -> None:
    out = S3.translate("GetObject", client_error("NoSuchKey", 404), "docs/a.json")
    assert isinstance(out, NotFoundError)
    assert "S3 GetObject docs/a.json" in str(out)
    # a conditional failure is only a ConditionFailed where the map says so
    assert not isinstance(
        S3.translate("PutObject", client_error("ConditionalCheckFailedException")),
        ConditionFailed,
    )


def test_anything_but_botocore_passes_through() -> None:
    bug = KeyError("x")
    assert DDB.translate("GetItem", bug) is bug


def test_mapped_translates_inside_a_block() -> None:
    with pytest.raises(NotFoundError) as info, S3.mapped("ListObjectsV2", "docs/"):
        raise client_error("NoSuchKey", 404)
    assert isinstance(info.value.__cause__, ClientError)


def _breaker() -> CircuitBreaker:
    return CircuitBreaker(fail_max=2, reset_s=60, is_failure=is_outage, name="test")


def test_call_opens_the_breaker_and_then_fails_fast_without_calling() -> None:
    calls: list[str] = []

    def failing(**kwargs: Any) -> None:
        calls.append(kwargs["Key"])
        raise client_error("InternalError", 500)

    call = StoreCall(DDB, breaker=_breaker())
    for _ in range(2):
        with pytest.raises(CacheUnavailableError):
            call("GetItem", failing, Key="k")
    assert len(calls) == 2
    with pytest.raises(CacheUnavailableError, match="circuit breaker open"):
        call("GetItem", failing, Key="k")
    assert len(calls) == 2  # refused before the call


def test_call_returns_the_result_and_counts_a_success() -> None:
    breaker = _breaker()
    call = StoreCall(DDB, breaker=breaker)
    with pytest.raises(CacheUnavailableError):
        call("GetItem", lambda **_: (_ for _ in ()).throw(client_error("InternalError", 500)))
    assert call("GetItem", lambda **kw: kw, Key="k") == {"Key": "k"}
    assert breaker.state == "closed"


def test_a_bug_in_the_caller_is_not_wrapped() -> None:
    def wrong(**_: Any) -> None:
        raise ParamValidationError(report="Missing required parameter")

    out = StoreCall(DDB)
    with pytest.raises(StoreError):  # botocore's own validation: a store error, not an outage
        out("GetItem", wrong)

    def buggy(**_: Any) -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        out("GetItem", buggy)
